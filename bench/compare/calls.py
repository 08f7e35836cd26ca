"""One judge for both systems: is a raw completion a valid MemGPT function call?

The proxy gives us the exact prompt and the exact text the server generated. The model's whole turn is the
prefill the wrapper put after the ChatML assistant header (``{"function":`` and the like, none under a
grammar) followed by the generated text. It is a valid call when that text is exactly one JSON object
(strict ``json.loads``, no repair) of the shape ``{"function": NAME, "params": {...}}`` where NAME is one of
the MemGPT functions documented in that prompt and ``params`` holds that function's required arguments.
Neither system's own repair heuristics play a part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# Calls that change memory, and calls that search it: the agent's own sets, so both sides count alike
# (re-exported for report.py and ours.py).
from memgpt.agent.agent import MEMORY_EDITS as MEMORY_EDITS
from memgpt.agent.agent import SEARCHES as SEARCHES

ASSISTANT_HEADER = "<|im_start|>assistant"

#: The functions of MemGPT's default preset and their required arguments (the same on both sides).
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "send_message": ("message",),
    "pause_heartbeats": ("minutes",),
    "core_memory_append": ("name", "content"),
    "core_memory_replace": ("name", "old_content", "new_content"),
    "conversation_search": ("query",),
    "conversation_search_date": ("start_date", "end_date"),
    "archival_memory_insert": ("content",),
    "archival_memory_search": ("query",),
}

#: Openings of the summarizer prompts (pymemgpt's gpt_summarize.SYSTEM, ours agent/summarize.SUMMARY_SYSTEM):
#: those completions are plain text by design and are not call attempts.
SUMMARY_MARKERS = (
    "Your job is to summarize a history of previous messages",
    "You summarize conversations for an AI assistant",
)


@dataclass(frozen=True)
class Verdict:
    kind: str  # "call" (a call attempt) or "summary"
    valid: bool
    function: str | None
    reason: str  # why not valid ("" when valid)
    thoughts: bool = False  # a non-empty string ``inner_thoughts`` (top level or in ``params``: wrappers differ)


def turn_text(prompt: str, content: str) -> str:
    """The model's whole turn: the wrapper's prefill after the last assistant header, then the generated text."""
    at = prompt.rfind(ASSISTANT_HEADER)
    prefill = prompt[at + len(ASSISTANT_HEADER) :].lstrip("\n") if at >= 0 else ""
    return prefill + content


def judge(prompt: str, content: str, stopping_word: str = "") -> Verdict:
    """``stopping_word``: the stop string that ended generation. The model did write it, but the server
    leaves it out of ``content``; pymemgpt stops on ``"  }\n}\n"`` and puts the braces back itself."""
    if any(marker in prompt for marker in SUMMARY_MARKERS):
        return Verdict("summary", True, None, "")
    text = turn_text(prompt, content)
    missing = object()
    value, error = missing, ""
    for candidate in (text, text + stopping_word) if stopping_word else (text,):
        try:
            value = json.loads(candidate.strip())
            break
        except ValueError as exc:
            error = exc.msg
    if value is missing:
        return Verdict("call", False, None, f"not one strict JSON object ({error})")
    if not isinstance(value, dict) or not isinstance(value.get("function"), str):
        return Verdict("call", False, None, "no string 'function'")
    name = value["function"]
    if name not in FUNCTIONS or name not in prompt:
        return Verdict("call", False, name, f"unknown function {name!r}")
    params = value.get("params")
    if not isinstance(params, dict):
        return Verdict("call", False, name, "no object 'params'")
    missing_args = [a for a in FUNCTIONS[name] if params.get(a) is None]
    if missing_args:
        return Verdict("call", False, name, f"{name} without {', '.join(missing_args)}")
    thoughts = any(isinstance(t, str) and t.strip() for t in (value.get("inner_thoughts"), params.get("inner_thoughts")))
    return Verdict("call", True, name, "", thoughts=thoughts)
