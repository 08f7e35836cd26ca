"""``WrapperContract``: what every prompt wrapper must do. A wrapper plugin's tests subclass it::

    from memgpt.testing.wrapper import WrapperContract

    class TestMine(WrapperContract):
        wrapper_name = "mine"        # looked up in the plugin registry; or override make_wrapper()

The contract is behavioural and holds for any prompt layout: the system text and every function name are
in the prompt; core memory follows the system text; every past call is replayed with its arguments (the
original MemGPT replayed its own calls as empty turns); results and events are there verbatim; the prompt
ends with its prefill (none under a grammar); a canonical call written after the prompt parses back to
itself; an unknown function is a typed error; stop strings cannot cut a call short; and the layout keeps
a stable prefix as the conversation grows (llama.cpp reuses its KV cache for it).

Import this module only from tests: it imports pytest.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from memgpt.agent import events
from memgpt.contract.types import CallShape, FunctionCall, FunctionSchema, Message
from memgpt.contract.wrapper import Prompt, Wrapper, WrapperOptions
from memgpt.errors import ParseError, UnknownFunctionError

_THOUGHTS = {"type": "string", "description": "Your private inner monologue."}
_HEARTBEAT = {"type": "boolean", "description": "true to continue right after this call."}


def _function(name: str, description: str, params: dict[str, Any], required: list[str], heartbeat: bool = True) -> FunctionSchema:
    properties = {"inner_thoughts": _THOUGHTS, **params}
    required = ["inner_thoughts", *required]
    if heartbeat:
        properties["request_heartbeat"] = _HEARTBEAT
        required.append("request_heartbeat")
    return FunctionSchema(
        name=name,
        description=description,
        parameters={"type": "object", "properties": properties, "required": required, "additionalProperties": False},
    )


def sample_functions() -> list[FunctionSchema]:
    """Schemas shaped like the agent's eight memory functions (the contract's fixture data)."""
    text = {"type": "string", "maxLength": 1200}
    content = {"type": "string", "minLength": 1, "maxLength": 1200}
    block = {"type": "string", "enum": ["persona", "human"], "description": "Which core memory block."}
    page = {"type": "integer", "minimum": 0, "maximum": 1000, "description": "Result page, from 0."}
    day = {"type": "string", "format": "date", "description": "A day, YYYY-MM-DD."}
    return [
        _function(
            "send_message",
            "Send a message to the user.",
            {"message": {**text, "description": "What the user sees."}},
            ["message"],
            heartbeat=False,
        ),
        _function(
            "pause_heartbeats",
            "Pause timed heartbeats.",
            {"minutes": {"type": "integer", "minimum": 0, "maximum": 360}},
            ["minutes"],
            heartbeat=False,
        ),
        _function(
            "core_memory_append", "Append to a core memory block.", {"name": block, "content": content}, ["name", "content"]
        ),
        _function(
            "core_memory_replace",
            "Replace text in a core memory block.",
            {"name": block, "old_content": content, "new_content": text},
            ["name", "old_content", "new_content"],
        ),
        _function(
            "conversation_search",
            "Search past messages.",
            {"query": {"type": "string", "maxLength": 200}, "page": page},
            ["query"],
        ),
        _function(
            "conversation_search_date",
            "Past messages between two dates.",
            {"start_date": day, "end_date": day, "page": page},
            ["start_date", "end_date"],
        ),
        _function("archival_memory_insert", "Store text in archival memory.", {"content": content}, ["content"]),
        _function(
            "archival_memory_search",
            "Search archival memory.",
            {"query": {"type": "string", "maxLength": 200}, "page": page},
            ["query"],
        ),
    ]


#: User messages of the kinds real users send (plain, multilingual, quotes and backslashes, dates), for
#: generation tests and the grammar benchmark.
USER_MESSAGES = [
    "hi!",
    "My name is Ana and I play chess on Sundays.",
    "What did I tell you about my cat last week?",
    "Please remember that I am allergic to peanuts.",
    "Wie geht es dir heute? 😊",
    "search your memory for anything about Paris",
    'He said "no" to me \\ what now?',
    "Forget it. Just tell me a joke.",
    "I moved to Zürich in May.",
    "ok",
    "Can you look up what we talked about on 2024-03-01?",
    "My sister's name is Léa, please don't forget it.",
    "Pause for an hour, I'm busy.",
    "Tell me something you know about me.",
    "Ich heiße Jonas.",
    "what's 2+2",
    "I changed my mind: I actually like coffee, not tea.",
    "Store this for later: the wifi password is hunter2",
    "Do you remember my favourite colour?",
    "bye for now",
]
SYSTEM = "You are MemGPT, a digital companion with self-editing memory."
CORE_MEMORY = "### Core memory\n<persona>I am Sam.</persona>\n<human>Name: Chad. Likes tea.</human>"

#: Calls with the text that trips naive renderers: quotes, backslashes, newlines, non-ASCII.
CANONICAL_CALLS = (
    FunctionCall(
        name="send_message",
        arguments={"inner_thoughts": "Greet him; he likes tea.", "message": 'Hi Chad! "Tea" time? ☕ naïve \\ path\nnew line'},
    ),
    FunctionCall(
        name="core_memory_append",
        arguments={"inner_thoughts": "Remember this.", "name": "human", "content": "Lives in Zürich.", "request_heartbeat": True},
    ),
    FunctionCall(
        name="conversation_search",
        arguments={"inner_thoughts": "Look back.", "query": "tea", "page": 1, "request_heartbeat": False},
    ),
)


_SAID_AT = datetime(2024, 5, 17, 10, 0, 0, tzinfo=UTC)


def _result(message: str) -> str:
    return events.function_result("OK", message, moment=_SAID_AT + timedelta(seconds=1))


def sample_conversation() -> list[Message]:
    """Core memory, then user events, the agent's past calls and their results, as the agent passes them."""
    send, append, search = CANONICAL_CALLS
    return [
        Message(role="system", content=CORE_MEMORY),
        Message(role="user", content=events.login(moment=_SAID_AT)),
        Message(role="user", content=events.user_message("hey, I moved to Zürich — any tea tips?", moment=_SAID_AT)),
        Message(role="assistant", function_call=send),
        Message(role="function", name="send_message", content=_result("None")),
        Message(role="assistant", function_call=append),
        Message(role="function", name="core_memory_append", content=_result("Appended to human.")),
        Message(role="user", content=events.heartbeat(events.HEARTBEAT_REQUESTED, moment=_SAID_AT)),
        Message(role="assistant", function_call=search),
        Message(role="function", name="conversation_search", content=_result("No recall results.")),
    ]


def call_text(call: FunctionCall, shape: CallShape) -> str:
    return json.dumps({shape.function_key: call.name, shape.params_key: call.arguments}, ensure_ascii=False)


class WrapperContract:
    """Base class of a wrapper's contract tests; set ``wrapper_name`` or override ``make_wrapper``."""

    wrapper_name: str = ""
    options: WrapperOptions = WrapperOptions()

    def make_wrapper(self) -> Wrapper:
        from memgpt.plugins import get_registry

        return get_registry().wrapper(self.wrapper_name).factory(self.options)

    @pytest.fixture
    def wrapper(self) -> Wrapper:
        return self.make_wrapper()

    @pytest.fixture
    def functions(self) -> list[FunctionSchema]:
        return sample_functions()

    @pytest.fixture
    def conversation(self) -> list[Message]:
        return sample_conversation()

    @pytest.fixture
    def prompt(self, wrapper: Wrapper, functions: list[FunctionSchema], conversation: list[Message]) -> Prompt:
        return wrapper.format(SYSTEM, conversation, functions)

    def test_format_returns_a_prompt_with_system_text_and_every_function(
        self, prompt: Prompt, functions: list[FunctionSchema]
    ) -> None:
        assert isinstance(prompt, Prompt)
        assert SYSTEM in prompt.text
        for function in functions:
            assert function.name in prompt.text, f"{function.name} is not documented in the prompt"

    def test_core_memory_follows_the_system_text_and_precedes_the_conversation(
        self, prompt: Prompt, conversation: list[Message]
    ) -> None:
        first_user = conversation[1].content or ""
        assert prompt.text.index(SYSTEM) < prompt.text.index(CORE_MEMORY) < prompt.text.index(first_user)

    def test_every_past_call_is_replayed_with_its_arguments(self, prompt: Prompt, conversation: list[Message]) -> None:
        for message in conversation:
            if message.function_call is None:
                continue
            call = message.function_call
            assert call.name in prompt.text
            for key, value in call.arguments.items():
                forms = {json.dumps(value, ensure_ascii=False), json.dumps(value), str(value)}
                assert key in prompt.text and any(f in prompt.text for f in forms), (
                    f"{call.name}: argument {key}={value!r} is not replayed"
                )

    def test_results_and_events_are_in_the_prompt_verbatim_and_in_order(
        self, prompt: Prompt, conversation: list[Message]
    ) -> None:
        position = 0
        for message in conversation:
            if message.role in ("user", "function") and message.content:
                found = prompt.text.find(message.content, position)
                assert found >= 0, f"{message.role} content missing or out of order: {message.content[:60]!r}"
                position = found + len(message.content)

    def test_prompt_ends_with_its_prefill_and_grammar_wrappers_have_none(self, wrapper: Wrapper, prompt: Prompt) -> None:
        assert prompt.text.endswith(prompt.prefill)
        if wrapper.uses_grammar:
            assert prompt.prefill == "", "a grammar-constrained turn must start at the grammar's root, not after a prefill"

    @staticmethod
    def _completion_after(prompt: Prompt, call: FunctionCall, shape: CallShape) -> str:
        """What a model writes after ``prompt`` to produce ``call`` (the call minus the prefill)."""
        full = call_text(call, shape)
        prefill = prompt.prefill.lstrip()
        assert full.startswith(prefill), f"the prefill {prompt.prefill!r} cannot begin {full[:60]!r}"
        return full[len(prefill) :]

    @pytest.mark.parametrize("index", range(len(CANONICAL_CALLS)))
    def test_a_canonical_call_written_after_the_prompt_parses_back_to_itself(
        self, wrapper: Wrapper, functions: list[FunctionSchema], prompt: Prompt, index: int
    ) -> None:
        call = CANONICAL_CALLS[index]
        assert wrapper.parse(self._completion_after(prompt, call, wrapper.call_shape), functions, prompt) == call

    def test_the_first_message_prompt_accepts_a_send_message_call(
        self, wrapper: Wrapper, functions: list[FunctionSchema], conversation: list[Message]
    ) -> None:
        call = CANONICAL_CALLS[0]
        prompt = wrapper.format(SYSTEM, conversation[:3], functions, first_message=True)
        assert prompt.text.endswith(prompt.prefill)
        assert wrapper.parse(self._completion_after(prompt, call, wrapper.call_shape), functions, prompt) == call

    def test_an_unknown_function_is_a_typed_error(
        self, wrapper: Wrapper, functions: list[FunctionSchema], prompt: Prompt
    ) -> None:
        full = call_text(FunctionCall(name="launch_rockets", arguments={"inner_thoughts": "!"}), wrapper.call_shape)
        prefill = prompt.prefill.lstrip()
        with pytest.raises(UnknownFunctionError, match="send_message"):
            if full.startswith(prefill):
                wrapper.parse(full[len(prefill) :], functions, prompt)
            else:  # a prefill that steers elsewhere: parse the whole call on its own
                wrapper.parse(full, functions, None)

    def test_text_without_a_call_is_a_parse_error(self, wrapper: Wrapper, functions: list[FunctionSchema]) -> None:
        with pytest.raises(ParseError):
            wrapper.parse("I would rather chat in prose.", functions, None)

    def test_stop_strings_cannot_cut_a_call_short(self, wrapper: Wrapper, prompt: Prompt) -> None:
        assert prompt.stop, "a wrapper must say what ends the model's turn"
        for call in CANONICAL_CALLS:
            text = call_text(call, wrapper.call_shape)
            assert not any(stop in text for stop in prompt.stop)

    def test_the_prompt_prefix_is_stable_as_the_conversation_grows(
        self, wrapper: Wrapper, functions: list[FunctionSchema], conversation: list[Message]
    ) -> None:
        shorter = wrapper.format(SYSTEM, conversation[:-2], functions).text
        longer = wrapper.format(SYSTEM, conversation, functions).text
        last = conversation[-3].content or ""
        kept = shorter.index(last) + len(last)
        assert longer[:kept] == shorter[:kept], "earlier turns must render identically when more follow (KV-cache reuse)"

    def test_format_is_deterministic(
        self, wrapper: Wrapper, functions: list[FunctionSchema], conversation: list[Message]
    ) -> None:
        assert wrapper.format(SYSTEM, conversation, functions) == wrapper.format(SYSTEM, conversation, functions)

    def test_format_chat_keeps_the_turns_in_order_and_ends_with_the_assistant_opening(self, wrapper: Wrapper) -> None:
        turns = [("user", "Summarize: they talked about tea."), ("assistant", "Tea was discussed."), ("user", "Shorter?")]
        prompt = wrapper.format_chat("You summarize conversations.", turns)
        position = 0
        for _, text in turns:
            position = prompt.text.index(text, position) + len(text)
        # What opens the assistant's turn is what precedes an assistant answer in the same layout.
        opened = wrapper.format_chat("You summarize conversations.", turns[:1]).text
        answered = wrapper.format_chat("You summarize conversations.", turns[:2]).text
        assert answered.startswith(opened), "the assistant opening must be where an answer goes"
        assert answered[len(opened) :].lstrip(" ").startswith(turns[1][1])
