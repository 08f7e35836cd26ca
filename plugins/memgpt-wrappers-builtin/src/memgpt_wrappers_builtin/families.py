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

    @property
    def meaning(self) -> str:
        if self.grammar:
            how = "generated under the call grammar (no prefill)"
        else:
            how = 'prefilled with {"function": (a grammar-free call)'
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
)

WRAPPER_NAMES: dict[str, WrapperName] = {
    key + variant.suffix: WrapperName(key + variant.suffix, FAMILIES[key], variant)
    for key, variants in _NAMES
    for variant in variants
}

DEFAULT = "chatml-grammar"
