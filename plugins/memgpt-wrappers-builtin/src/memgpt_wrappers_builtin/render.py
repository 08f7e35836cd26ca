"""One generic renderer for every family in ``families.FAMILIES``: the wrappers differ only in data."""

from __future__ import annotations

import json
from collections.abc import Sequence

from memgpt.plugin import (
    CallShape,
    FunctionCall,
    FunctionSchema,
    Message,
    Prompt,
    UnknownNameError,
    Wrapper,
    parse_call,
    system_text,
)
from memgpt_wrappers_builtin.families import MAX_THINK_CHARS, Family, Reasoning, Variant, WrapperName

ROLES = ("system", "user", "assistant")
FIRST_FUNCTION = "send_message"
#: Functions the hint names when the agent has them: the ones that keep what the agent learns.
MEMORY_FUNCTIONS = ("core_memory_append", "core_memory_replace", "archival_memory_insert")


def call_json(call: FunctionCall, shape: CallShape) -> str:
    """A past call exactly as the grammar lays calls out (``json.dumps``), so the history the model reads
    looks like what it is asked to write."""
    return json.dumps({shape.function_key: call.name, shape.params_key: call.arguments}, ensure_ascii=False)


def function_result(message: Message) -> str:
    """A function result as a JSON event naming the function; the result JSON itself is kept verbatim."""
    body = message.content or ""
    try:
        json.loads(body)
    except ValueError:
        body = json.dumps(body, ensure_ascii=False)
    return '{"type": "function_result", "function": ' + json.dumps(message.name, ensure_ascii=False) + ', "result": ' + body + "}"


def thinking_shape(shape: CallShape, reasoning: Reasoning | None) -> CallShape:
    """``shape`` for a model that thinks as ``reasoning`` says: a bounded thinking section before the call
    (``memgpt.grammar.call``), whose text the parser makes the call's inner thoughts when it has none, so
    the call's own may be empty. ``channels`` reasoning is left to the backend (no grammar for harmony)."""
    if reasoning is None or reasoning.kind != "think":
        return shape
    return shape.model_copy(
        update={
            "think_open": "" if reasoning.opened_by_prompt else reasoning.open,
            "think_close": reasoning.close,
            "max_think_chars": MAX_THINK_CHARS,
            "min_inner_thoughts_chars": 0,
        }
    )


def hint_text(functions: Sequence[FunctionSchema], first_message: bool) -> str:
    """The ``-hints`` reminder that opens the assistant's turn: short comment lines about the functions at hand."""
    names = [f.name for f in functions]
    lines = ["# Answer with one JSON function call; inner_thoughts stay private."]
    if FIRST_FUNCTION in names:
        lines[0] += f" Only {FIRST_FUNCTION} reaches the user."
    memory = [n for n in MEMORY_FUNCTIONS if n in names]
    if memory:
        lines.append(f"# Save new facts about the user or yourself with {' / '.join(memory)}.")
    if first_message and FIRST_FUNCTION in names:
        lines.append(
            f"# This is your first message: greet the user with {FIRST_FUNCTION}, using what core memory says about them."
        )
    return "\n".join(lines) + "\n"


class FamilyWrapper(Wrapper):
    """A wrapper for one ``Family`` and one ``Variant`` (see ``families``)."""

    def __init__(self, name: str, family: Family, variant: Variant, shape: CallShape = CallShape()) -> None:
        self.name = name
        self.family = family
        self.variant = variant
        self.uses_grammar = variant.grammar
        self.call_shape = thinking_shape(shape, family.reasoning)

    @classmethod
    def from_name(cls, spec: WrapperName) -> FamilyWrapper:
        return cls(spec.name, spec.family, spec.variant)

    # ---- rendering ----

    def _render(self, turns: Sequence[tuple[str, str]]) -> str:
        out = []
        for role, content in turns:
            before, after = self.family.turns[role]
            out.append(before + (content.strip() if self.family.trim else content) + after)
        return "".join(out)

    def _place(self, turns: list[tuple[str, str]], role: str, content: str) -> None:
        """Append a turn; a family without system turns mid-conversation merges or demotes them."""
        if role == "system" and not self.family.system_anywhere:
            if turns and all(r == "system" for r, _ in turns):
                turns[-1] = ("system", f"{turns[-1][1]}\n\n{content}" if turns[-1][1] else content)
                return
            role = "user"
        turns.append((role, content))

    def _message_turn(self, message: Message) -> tuple[str, str]:
        if message.role == "assistant":
            if message.function_call is not None:
                return "assistant", call_json(message.function_call, self.call_shape)
            return "assistant", message.content or ""
        if message.role == "function":
            return self.family.function_role, function_result(message)
        return message.role, message.content or ""

    def _prefill(self, functions: Sequence[FunctionSchema], first_message: bool) -> str:
        shape = self.call_shape
        if first_message and any(f.name == FIRST_FUNCTION for f in functions):
            thoughts = f'{{"{shape.inner_thoughts_key}": "' if shape.inner_thoughts_key else "{"
            return f'{{"{shape.function_key}": "{FIRST_FUNCTION}", "{shape.params_key}": {thoughts}'
        return f'{{"{shape.function_key}":'

    def format(
        self,
        system: str,
        messages: Sequence[Message],
        functions: Sequence[FunctionSchema],
        *,
        first_message: bool = False,
    ) -> Prompt:
        turns: list[tuple[str, str]] = [("system", system_text(system, functions, self.call_shape))]
        for message in messages:
            role, content = self._message_turn(message)
            self._place(turns, role, content)
        text = self._render(turns) + self.family.generation
        hint = self.family.answer_lead + hint_text(functions, first_message) if self.variant.hints else ""
        reasoning = self.family.reasoning
        if reasoning is not None:
            # The model thinks first, so nothing of the call is prefilled (a block the generation prompt
            # opened ends at its closing tag: the parser finds it without the opening one).
            return Prompt(text=text + hint, stop=self.family.stop)
        prefill = ""
        if not self.variant.grammar:
            prefill = ("" if hint else self.family.answer_lead) + self._prefill(functions, first_message)
        return Prompt(text=text + hint + prefill, stop=self.family.stop, prefill=prefill)

    def format_chat(self, system: str, turns: Sequence[tuple[str, str]]) -> Prompt:
        rendered: list[tuple[str, str]] = [("system", system)] if system else []
        for role, content in turns:
            if role not in ROLES:
                raise UnknownNameError("chat role", role, list(ROLES))
            self._place(rendered, role, content)
        return Prompt(text=self._render(rendered) + self.family.generation, stop=self.family.stop)

    # ---- parsing ----

    def parse(self, text: str, functions: Sequence[FunctionSchema], prompt: Prompt | None = None) -> FunctionCall:
        prefill = prompt.prefill if prompt is not None else ""
        return parse_call(prefill + text, functions, self.call_shape).call
