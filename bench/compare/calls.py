"""One judge for both systems: is a raw completion a valid MemGPT function call?

The proxy gives us the exact prompt and the exact text the server generated. The model's whole turn is the
prefill the wrapper put after the ChatML assistant header (``{"function":`` and the like, none under a
grammar) followed by the generated text. It is a valid call when that text is exactly one JSON object
(strict ``json.loads``, no repair) of the shape ``{"function": NAME, "params": {...}}`` where NAME is one of
the MemGPT functions documented in that prompt. Neither system's own repair heuristics play a part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

ASSISTANT_HEADER = "<|im_start|>assistant"

#: The functions of MemGPT's default preset, on both sides.
FUNCTIONS = (
    "send_message",
    "pause_heartbeats",
    "core_memory_append",
    "core_memory_replace",
    "conversation_search",
    "conversation_search_date",
    "archival_memory_insert",
    "archival_memory_search",
)

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


def turn_text(prompt: str, content: str) -> str:
    """The model's whole turn: the wrapper's prefill after the last assistant header, then the generated text."""
    at = prompt.rfind(ASSISTANT_HEADER)
    prefill = prompt[at + len(ASSISTANT_HEADER) :].lstrip("\n") if at >= 0 else ""
    return prefill + content


def judge(prompt: str, content: str) -> Verdict:
    if any(marker in prompt for marker in SUMMARY_MARKERS):
        return Verdict("summary", True, None, "")
    text = turn_text(prompt, content).strip()
    try:
        value = json.loads(text)
    except ValueError as exc:
        return Verdict("call", False, None, f"not one strict JSON object ({exc.msg})")
    if not isinstance(value, dict) or not isinstance(value.get("function"), str):
        return Verdict("call", False, None, "no string 'function'")
    name = value["function"]
    if name not in FUNCTIONS or name not in prompt:
        return Verdict("call", False, name, f"unknown function {name!r}")
    if not isinstance(value.get("params"), dict):
        return Verdict("call", False, name, "no object 'params'")
    return Verdict("call", True, name, "")
