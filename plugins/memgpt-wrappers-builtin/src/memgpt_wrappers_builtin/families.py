"""The model families as data: each one's turn layout, copied from its official chat template, and the
wrapper names built from it.

A family is how its models were trained to see a conversation; a wrapper name is a family plus a variant
(``-hints``: a guiding hint opens the assistant's turn; ``-grammar``: the turn is generated under the call
grammar, so no JSON prefill). ``tests/templates/`` holds the official templates; the template-fidelity
tests render the same conversation with them (jinja2) and with ``render.FamilyWrapper`` and compare bytes.

BOS tokens are left out of the text on purpose: every backend's tokenizer adds the model's BOS itself
(llama.cpp does for a GGUF whose ``add_bos_token`` is set), and a second one in the text would double it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Turn = tuple[str, str]  # (text before the content, text after it)

#: Characters of thinking a reasoning wrapper allows before the call (``shape_for_budget`` lowers it to a
#: third of the turn's token budget).
MAX_THINK_CHARS = 600


@dataclass(frozen=True)
class Reasoning:
    """How a family's models think before they answer.

    - ``kind``: ``think`` (a ``<think>`` block in the answer's text) or ``channels`` (gpt-oss's harmony
      format: an ``analysis`` channel message, then a ``final`` one).
    - ``open`` / ``close``: the text around the thinking, as the model writes it.
    - ``opened_by_prompt``: the template's generation prompt already holds ``open`` (DeepSeek-R1's ends
      with ``<think>\n``), so every answer starts inside the block.
    """

    kind: str
    open: str
    close: str
    opened_by_prompt: bool = False


THINK = Reasoning("think", "<think>\n", "\n</think>\n\n")
THINK_OPENED = Reasoning("think", "<think>\n", "\n</think>\n\n", opened_by_prompt=True)
#: gpt-oss (harmony): known for detection; no family renders harmony turns yet.
GPT_OSS_CHANNELS = Reasoning("channels", "<|channel|>analysis<|message|>", "<|end|><|start|>assistant<|channel|>final<|message|>")


@dataclass(frozen=True)
class Family:
    """One chat-template family.

    - ``turns``: per role (system, user, assistant) the text around the content.
    - ``generation``: what opens the assistant's turn for the model to continue (the template's
      ``add_generation_prompt``); ``answer_lead`` separates it from the answer when it ends without one
      (airoboros writes ``ASSISTANT: answer`` but ends its prompt with ``ASSISTANT:``).
    - ``trim``: the template strips each message's content (Llama 3 does).
    - ``system_anywhere``: system turns may appear after the conversation started; when false, leading
      system messages merge into the first system turn and later ones become user turns.
    - ``function_role``: the role function results are rendered in (no family here was trained with a
      function role, so results travel as JSON in a user turn, like every other event).
    - ``stop``: strings that end the model's turn when the backend does not stop at EOS by itself.
    - ``reasoning``: how its models think before answering (``None``: they do not).
    """

    key: str
    title: str
    turns: dict[str, Turn]
    generation: str
    stop: tuple[str, ...]
    answer_lead: str = ""
    trim: bool = False
    system_anywhere: bool = True
    function_role: str = "user"
    models: str = ""
    reasoning: Reasoning | None = None


def _chatml() -> dict[str, Turn]:
    return {role: (f"<|im_start|>{role}\n", "<|im_end|>\n") for role in ("system", "user", "assistant")}


def _llama3() -> dict[str, Turn]:
    return {role: (f"<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>") for role in ("system", "user", "assistant")}


FAMILIES: dict[str, Family] = {
    family.key: family
    for family in (
        Family(
            key="chatml",
            title="ChatML",
            turns=_chatml(),
            generation="<|im_start|>assistant\n",
            stop=("<|im_end|>", "<|im_start|>"),
            models="Qwen 1.5/2/2.5, OpenHermes 2.5, Nous Hermes 2, SmolLM2, Yi chat, any model whose template uses <|im_start|>",
        ),
        Family(
            key="llama3",
            title="Llama 3",
            turns=_llama3(),
            generation="<|start_header_id|>assistant<|end_header_id|>\n\n",
            stop=("<|eot_id|>", "<|end_of_text|>"),
            trim=True,
            models="Meta-Llama-3-8B/70B-Instruct and Llama 3.1/3.2 instruct models used without tool calling, and their fine-tunes",
        ),
        Family(
            key="airoboros-l2-70b-2.1",
            title="Airoboros 2.x (USER:/ASSISTANT:)",
            turns={"system": ("", "\n"), "user": ("USER: ", "\n"), "assistant": ("ASSISTANT: ", "\n")},
            generation="ASSISTANT:",
            answer_lead=" ",
            stop=("\nUSER:", "</s>"),
            system_anywhere=False,
            models="airoboros-l2-70b-2.1 and the other airoboros 2.x (llama-2 based) models; vicuna-style USER:/ASSISTANT: models",
        ),
        Family(
            key="dolphin-2.1-mistral-7b",
            title="Dolphin 2.x (ChatML)",
            turns=_chatml(),
            generation="<|im_start|>assistant\n",
            stop=("<|im_end|>", "<|im_start|>", "</s>"),
            models="dolphin-2.1/2.2.1-mistral-7b and other Dolphin 2.x models (ChatML with a Mistral tokenizer)",
        ),
        Family(
            key="zephyr-7B",
            title="Zephyr",
            turns={role: (f"<|{role}|>\n", "</s>\n") for role in ("system", "user", "assistant")},
            generation="<|assistant|>\n",
            stop=("</s>", "<|user|>"),
            models="zephyr-7b-alpha/beta, TinyLlama-1.1B-Chat v1.0, other HuggingFaceH4 recipes' models",
        ),
        Family(
            key="qwen3",
            title="Qwen3 (ChatML, thinks in <think>)",
            turns=_chatml(),
            generation="<|im_start|>assistant\n",
            stop=("<|im_end|>", "<|im_start|>"),
            models="Qwen3 (thinking mode), QwQ-32B and other ChatML models that open their answer with <think>",
            reasoning=THINK,
        ),
        Family(
            key="deepseek-r1",
            title="DeepSeek-R1 (thinks in <think>, opened by the prompt)",
            turns={
                "system": ("", ""),
                "user": ("<\uff5cUser\uff5c>", ""),
                "assistant": ("<\uff5cAssistant\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>"),
            },
            generation="<\uff5cAssistant\uff5c><think>\n",
            stop=("<\uff5cend\u2581of\u2581sentence\uff5c>", "<\uff5cUser\uff5c>"),
            system_anywhere=False,
            models="DeepSeek-R1 and its distills (R1-Distill-Qwen/Llama 1.5B-70B)",
            reasoning=THINK_OPENED,
        ),
    )
}


@dataclass(frozen=True)
class Variant:
    """How a wrapper opens the assistant's turn."""

    grammar: bool = False
    hints: bool = False

    @property
    def suffix(self) -> str:
        return ("-hints" if self.hints else "") + ("-grammar" if self.grammar else "")

    def meaning(self, family: Family | None = None) -> str:
        thinks = family is not None and family.reasoning is not None
        if self.grammar:
            how = (
                "thinks (bounded), then the call under the grammar" if thinks else "generated under the call grammar (no prefill)"
            )
        else:
            how = "thinks, then a grammar-free call" if thinks else 'prefilled with {"function": (a grammar-free call)'
        return how + (", with a guiding hint" if self.hints else "")


@dataclass(frozen=True)
class WrapperName:
    name: str
    family: Family
    variant: Variant = field(default_factory=Variant)


#: Every registered name: the ones MemGPT users know, plus the ChatML family (the default).
_NAMES: tuple[tuple[str, tuple[Variant, ...]], ...] = (
    ("chatml", (Variant(), Variant(grammar=True), Variant(hints=True), Variant(hints=True, grammar=True))),
    ("llama3", (Variant(), Variant(grammar=True), Variant(hints=True, grammar=True))),
    ("airoboros-l2-70b-2.1", (Variant(), Variant(grammar=True))),
    ("dolphin-2.1-mistral-7b", (Variant(), Variant(grammar=True))),
    ("zephyr-7B", (Variant(), Variant(grammar=True))),
    ("qwen3", (Variant(), Variant(grammar=True))),
    ("deepseek-r1", (Variant(), Variant(grammar=True))),
)

WRAPPER_NAMES: dict[str, WrapperName] = {
    key + variant.suffix: WrapperName(key + variant.suffix, FAMILIES[key], variant)
    for key, variants in _NAMES
    for variant in variants
}

DEFAULT = "chatml-grammar"
