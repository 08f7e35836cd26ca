"""Every builtin wrapper, and ``auto`` in each of its outcomes, meets core's ``WrapperContract``."""

from __future__ import annotations

from memgpt.llm.wrapper import WrapperOptions
from memgpt.testing.wrapper import WrapperContract
from memgpt_wrappers_builtin.families import WRAPPER_NAMES

# An unknown family's template (Phi-3 layout): ``auto`` renders it itself.
PHI3_TEMPLATE = (
    "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

for _name in WRAPPER_NAMES:
    _class = f"TestWrapper_{_name.replace('-', '_').replace('.', '_')}"
    globals()[_class] = type(_class, (WrapperContract,), {"wrapper_name": _name})


class TestAutoWithNothingKnown(WrapperContract):
    wrapper_name = "auto"


class TestAutoFromLlama3Name(WrapperContract):
    wrapper_name = "auto"
    options = WrapperOptions(model_name="Meta-Llama-3-8B-Instruct.Q5_K_M.gguf")


class TestAutoWithAnUnknownTemplate(WrapperContract):
    wrapper_name = "auto"
    options = WrapperOptions(model_name="phi-3-mini", chat_template=PHI3_TEMPLATE)
