"""The ``llamacpp`` backend on the real native llama-server (SmolLM2-135M, one slot).

Prints: decode tokens/s without and with the agent's call grammar (GBNF) and with the same constraint as a
JSON schema; and, for a MemGPT-style conversation (chatml-grammar wrapper, the memory functions), the prompt
tokens the server took from its KV cache vs evaluated on the first and second turns, and on a second turn
that follows an unrelated call (a summarizer) which evicts the single slot's cache (current llama-server
builds restore it from their host-memory prompt cache, ``--cache-ram``).

Run: MEMGPT_THREADS=1 .venv/bin/python bench/bench_llama_server.py   (1 thread unless MEMGPT_THREADS says more;
MEMGPT_LLAMA_SERVER points at another llama-server binary).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

THREADS = int(os.environ.get("MEMGPT_THREADS", "1"))
ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("MEMGPT_LLAMA_SERVER") or ROOT / ".cache/llama-server/bin/llama-server")
RUNS = 3
DECODE_TOKENS = 128

from memgpt.contract import BackendSettings, CallShape, CompletionRequest, Constraint, FunctionCall, Message, SamplingParams  # noqa: E402
from memgpt.functions.memory import FUNCTIONS  # noqa: E402
from memgpt.grammar.call import build_call_constraint  # noqa: E402
from memgpt.session import open_wrapper  # noqa: E402
from memgpt_backend_llamacpp.models import default_model_path  # noqa: E402
from memgpt_backend_llamacpp.server import LlamaServerBackend  # noqa: E402

SCHEMAS = [spec.schema for spec in FUNCTIONS]


def start_server(model: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        str(BINARY),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-t",
        str(THREADS),
        "-tb",
        str(THREADS),
        "-c",
        "4096",
        "-np",
        "1",
        "--no-webui",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"llama-server exited with {process.returncode}; see {log}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    sys.exit(f"llama-server did not become healthy; see {log}")


def decode_rate(backend: LlamaServerBackend, prompt: str, constraint: Constraint | None) -> tuple[float, float]:
    """Median tokens/s and tokens per run, over RUNS runs after a warm-up that puts the prompt in the cache
    (so the time is decoding, not prompt processing)."""
    backend.complete(CompletionRequest(prompt=prompt, max_tokens=4, constraint=None))
    rates, counts = [], []
    for seed in range(RUNS):
        sampling = SamplingParams(temperature=0.8, seed=seed)
        done = backend.complete(
            CompletionRequest(prompt=prompt, max_tokens=DECODE_TOKENS, constraint=constraint, sampling=sampling)
        )
        if constraint is not None and done.constrained_by is None and done.finish_reason == "stop":
            sys.exit(f"constrained output did not match the constraint: {done.text!r}")
        rates.append(done.usage.completion_tokens / (done.seconds or 1e-9))
        counts.append(done.usage.completion_tokens)
    return statistics.median(rates), statistics.mean(counts)


def conversation(backend: LlamaServerBackend) -> None:
    wrapper = open_wrapper("chatml-grammar")
    constraint = build_call_constraint(SCHEMAS, CallShape(max_string_chars=120))
    system = "You are Sam, a friendly companion with a memory that lasts. Think before you act, then call a function."
    memory = Message(
        role="system", content="### Core memory\n<persona>I am Sam. I like puzzles.</persona>\n<human>First name: Ada.</human>"
    )
    first_user = Message(
        role="user", content=json.dumps({"type": "user_message", "message": "Hi Sam, I just adopted a cat called Turing."})
    )

    def turn(messages: list[Message], label: str) -> tuple[FunctionCall, str]:
        prompt = wrapper.format(system, messages, SCHEMAS, first_message=len(messages) == 2)
        done = backend.complete(
            CompletionRequest(
                prompt=prompt.text, stop=prompt.stop, max_tokens=200, constraint=constraint, sampling=SamplingParams(seed=3)
            )
        )
        u = done.usage
        print(
            f"  {label:<40} prompt {u.prompt_tokens:5d}  cached {u.cached_tokens:5d}  evaluated {u.evaluated_tokens or 0:5d}  ({done.seconds:.2f}s)"
        )
        return wrapper.parse(done.text, SCHEMAS, prompt), done.text

    messages = [memory, first_user]
    call, _ = turn(messages, "turn 1 (cold)")
    result = Message(
        role="function", name=call.name, content=json.dumps({"status": "OK", "message": "None", "time": "2026-01-01 10:00"})
    )
    second_user = Message(role="user", content=json.dumps({"type": "user_message", "message": "What is my cat's name?"}))
    messages = [*messages, Message(role="assistant", function_call=call), result, second_user]
    turn(messages, "turn 2 (shared prefix)")
    summary = "<|im_start|>user\nSummarize in one line: Ada adopted a cat named Turing.<|im_end|>\n<|im_start|>assistant\n"
    backend.complete(CompletionRequest(prompt=summary, max_tokens=24))
    turn(messages, "turn 2 again, after a summarizer call")


def main() -> None:
    if not BINARY.is_file():
        sys.exit(f"llama-server not built at {BINARY}: run `make server`")
    model = default_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_server(model, Path(tmp) / "server.log")
        try:
            backend = LlamaServerBackend(BackendSettings(endpoint=url, timeout=300))
            print(f"llama-server {url}, {model.name}, {THREADS} thread(s), context {backend.context_window()}")
            call = build_call_constraint(SCHEMAS, CallShape(max_string_chars=400))
            prompt = (
                "<|im_start|>user\nTell me a long story about a dragon who learns to sail.<|im_end|>\n<|im_start|>assistant\n"
            )
            print(f"decode tokens/s (median of {RUNS} runs, up to {DECODE_TOKENS} tokens each):")
            for label, constraint in (
                ("no grammar", None),
                ("call grammar (GBNF)", Constraint(gbnf=call.gbnf)),
                ("call constraint as JSON schema", Constraint(json_schema=call.json_schema)),
            ):
                rate, tokens = decode_rate(backend, prompt, constraint)
                print(f"  {label:<32} {rate:7.1f} tok/s  ({tokens:.0f} tokens/run)")
            print("prompt tokens on a MemGPT-style conversation (chatml-grammar, memory functions):")
            conversation(backend)
        finally:
            process.terminate()
            process.wait(timeout=15)


if __name__ == "__main__":
    main()
