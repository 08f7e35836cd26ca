"""The ``auto`` wrapper: pick the wrapper from the model's own chat template or its name.

1. Ask every plugin through the ``wrapper_for_model`` hook (first answer wins). This plugin's answer: the
   family whose rendering of a probe conversation equals the template's rendering byte for byte (so a
   template is recognised by what it produces, not by guessing at its source), else a family named by
   the model name; always the ``-grammar`` variant, the most reliable way to get a valid call.
2. A template no plugin knows is rendered itself, in jinja2's sandbox (``TemplateWrapper``).
3. With neither a known template nor a known name: ``chatml-grammar``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from memgpt.plugin import (
    CallShape,
    FunctionCall,
    FunctionSchema,
    Message,
    Prompt,
    Wrapper,
    WrapperOptions,
    parse_call,
    system_text,
)
from memgpt_wrappers_builtin.families import (
    DEFAULT,
    FAMILIES,
    GPT_OSS_CHANNELS,
    THINK,
    THINK_OPENED,
    WRAPPER_NAMES,
    Reasoning,
    Variant,
)
from memgpt_wrappers_builtin.jinja import TemplateFailure, render
from memgpt_wrappers_builtin.render import FamilyWrapper, call_json, function_result, thinking_shape

log = logging.getLogger("memgpt.wrappers")

_PROBE_SYSTEM = "probe system text"
_PROBE_TURNS = (("user", "probe user 1"), ("assistant", "probe assistant 1"), ("user", "probe user 2"))
_SENTINEL = "\u2063probe-end\u2063"
_THINK_PROBE = ("<think>\n", "\n</think>\n\n")

#: Model-name patterns → family, for when a backend cannot show the template (most servers).
NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"deepseek[-_ .]?r1|r1[-_ .]distill", "deepseek-r1"),
    (r"qwen[-_ .]?3(?![-_ .]?vl)|qwq", "qwen3"),
    (r"llama[-_ .]?3", "llama3"),
    (r"dolphin", "dolphin-2.1-mistral-7b"),
    (r"zephyr|tinyllama.*chat", "zephyr-7B"),
    (r"airoboros.*\b2\.\d", "airoboros-l2-70b-2.1"),
    (r"hermes|qwen|chatml|smollm|\byi\b", "chatml"),
)


def _probe_messages() -> list[dict[str, str]]:
    return [{"role": "system", "content": _PROBE_SYSTEM}] + [{"role": r, "content": c} for r, c in _PROBE_TURNS]


def reasoning_for_template(template: str) -> Reasoning | None:
    """How the template's model thinks, read from what the template does: a ``<think>`` model's template
    drops the thinking of past answers (and may open the block in its generation prompt); a gpt-oss
    (harmony) template writes ``analysis`` / ``final`` channels."""
    if "<|channel|>" in template and "analysis" in template:
        return GPT_OSS_CHANNELS
    thought = f"{_THINK_PROBE[0]}probe thought{_THINK_PROBE[1]}probe assistant 1"
    messages = _probe_messages()
    messages[2] = {"role": "assistant", "content": thought}
    try:
        rendered = render(template, messages, add_generation_prompt=True)
    except TemplateFailure:
        return None
    if "probe assistant 1" not in rendered or "probe thought" in rendered:
        return None
    return THINK_OPENED if rendered.rstrip().endswith(_THINK_PROBE[0].strip()) else THINK


def family_for_template(template: str) -> str | None:
    """The key of the family that renders a probe conversation exactly as ``template`` does, and thinks as
    it does (Qwen3's template renders a conversation like ChatML, but drops past thinking)."""
    try:
        rendered = render(template, _probe_messages(), add_generation_prompt=True)
    except TemplateFailure:
        return None
    matching = [
        key
        for key, family in FAMILIES.items()
        if FamilyWrapper(key, family, Variant()).format_chat(_PROBE_SYSTEM, _PROBE_TURNS).text == rendered
    ]
    if len(matching) > 1:
        reasoning = reasoning_for_template(template)
        return next((key for key in matching if FAMILIES[key].reasoning == reasoning), matching[0])
    return matching[0] if matching else None


def family_for_name(model_name: str) -> str | None:
    lowered = model_name.lower()
    return next((family for pattern, family in NAME_RULES if re.search(pattern, lowered)), None)


def wrapper_for(model_name: str | None, chat_template: str | None) -> str | None:
    """This plugin's answer to ``wrapper_for_model``."""
    family = family_for_template(chat_template) if chat_template else None
    if family is None and model_name:
        family = family_for_name(model_name)
    return f"{family}-grammar" if family else None


def make_auto(options: WrapperOptions) -> Wrapper:
    """The ``auto`` wrapper factory (see the module docstring)."""
    from memgpt.plugins import get_registry

    registry = get_registry()
    name = registry.suggest_wrapper(options.model_name, options.chat_template)
    if name is not None:
        log.info("auto wrapper: %s for model %s", name, options.model_name or "(unnamed)")
        return registry.wrappers[name].factory(options)
    if options.chat_template:
        try:
            return TemplateWrapper(options.chat_template)
        except TemplateFailure as exc:
            log.warning("auto wrapper: cannot use the model's chat template (%s); using %s", exc, DEFAULT)
    return FamilyWrapper.from_name(WRAPPER_NAMES[DEFAULT])


class TemplateWrapper(Wrapper):
    """Renders with the model's own chat template (sandboxed jinja2); the turn runs under the grammar, after
    a bounded thinking section where the template shows that its model thinks (``reasoning_for_template``).

    Probed once at construction: whether it takes a system turn (first, or also later), whether two turns
    of one role may follow each other, and what ends an assistant turn (the stop string). What the template
    cannot take is adapted (system text becomes a user turn, consecutive turns of one role merge); a
    template that cannot render a plain conversation even so raises ``TemplateFailure``.
    """

    name = "auto-template"
    uses_grammar = True

    def __init__(self, template: str, shape: CallShape = CallShape()) -> None:
        self.template = template
        self.reasoning = reasoning_for_template(template)
        self.call_shape = thinking_shape(shape, self.reasoning)
        system = {"role": "system", "content": _PROBE_SYSTEM}
        user, answer = {"role": "user", "content": "probe user"}, {"role": "assistant", "content": "probe answer"}
        self.system_turns = self._accepts([system, user])
        self.late_system = self.system_turns and self._accepts([system, user, answer, system, user])
        self.repeated_roles = self._accepts([user, user])
        plain = self._adapt([("system", _PROBE_SYSTEM), *_PROBE_TURNS])
        render(template, plain, add_generation_prompt=True)  # a template that cannot even do this says why
        with_turn = render(template, [*plain, {"role": "assistant", "content": _SENTINEL}], add_generation_prompt=False)
        if _SENTINEL not in with_turn:
            raise TemplateFailure("the chat template drops assistant messages")
        end = with_turn.split(_SENTINEL, 1)[1].strip()
        self.stop = tuple(s for s in (end, "</s>") if s)

    def _accepts(self, messages: list[dict[str, str]]) -> bool:
        try:
            render(self.template, messages, add_generation_prompt=True)
        except TemplateFailure:
            return False
        return True

    def _adapt(self, turns: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for role, content in turns:
            if role == "system" and not (self.system_turns and (not out or self.late_system)):
                role = "user"
            if out and out[-1]["role"] == role and not self.repeated_roles:
                out[-1] = {"role": role, "content": f"{out[-1]['content']}\n\n{content}"}
                continue
            out.append({"role": role, "content": content})
        return out

    def _turn(self, message: Message) -> tuple[str, str]:
        if message.role == "assistant":
            call = message.function_call
            return "assistant", call_json(call, self.call_shape) if call is not None else (message.content or "")
        if message.role == "function":
            return "user", function_result(message)
        return message.role, message.content or ""

    def format(
        self,
        system: str,
        messages: Sequence[Message],
        functions: Sequence[FunctionSchema],
        *,
        first_message: bool = False,
    ) -> Prompt:
        turns = [("system", system_text(system, functions, self.call_shape)), *(self._turn(m) for m in messages)]
        return Prompt(text=render(self.template, self._adapt(turns), add_generation_prompt=True), stop=self.stop)

    def format_chat(self, system: str, turns: Sequence[tuple[str, str]]) -> Prompt:
        all_turns = [("system", system)] if system else []
        return Prompt(text=render(self.template, self._adapt([*all_turns, *turns]), add_generation_prompt=True), stop=self.stop)

    def parse(self, text: str, functions: Sequence[FunctionSchema], prompt: Prompt | None = None) -> FunctionCall:
        return parse_call((prompt.prefill if prompt else "") + text, functions, self.call_shape).call
