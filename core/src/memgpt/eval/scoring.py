"""Scoring: what one turn did (from its ``TurnResult``), whether a check passed, and the scoreboard."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from memgpt.eval.suite import Check

_NON_WORD = re.compile(r"[^\w]+")


def normalise(text: str) -> str:
    """Casefolded, accents and punctuation dropped, whitespace collapsed: ``"Québec,  CITY!"`` → ``"quebec city"``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", plain).split())


def mentions(text: str, answer: str) -> bool:
    """``answer`` appears in ``text`` as whole words, both normalised."""
    needle = normalise(answer)
    return bool(needle) and f" {needle} " in f" {normalise(text)} "


@dataclass
class TurnRecord:
    """What one user turn led to, and (for a checked turn) whether it passed."""

    session: int
    kind: str
    said: str  # the user's text, cut for display
    replies: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # function names, in order (send_message included)
    steps: int = 0
    attempts: int = 0  # generations for steps (summaries excluded): valid calls + invalid outputs
    valid_calls: int = 0
    memory_edits: int = 0
    searches: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0
    stopped_by: str | None = None
    unregistered: list[str] = field(default_factory=list)
    error: str | None = None
    summarized: int = 0  # summaries made during the turn
    checked: bool = False
    success: bool | None = None
    answer_ok: bool | None = None
    memory_used: bool | None = None
    why: str = ""  # what a failed check missed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def record_turn(record: TurnRecord, result: Any, registered: set[str]) -> None:
    """Fill ``record`` from a ``memgpt.agent.TurnResult``."""
    outcome = result.outcome()
    record.replies = list(result.replies)
    record.calls = [e.function for e in result.events if e.kind in ("call", "assistant") and e.function]
    record.steps = result.steps
    record.memory_edits = outcome["memory_edits"]
    record.searches = outcome["searches"]
    record.valid_calls = outcome["calls"]
    record.summarized = sum(1 for e in result.events if e.kind == "alert" and "summary" in e.data)
    invalid = sum(1 for e in result.events if e.kind == "error")
    # Each completion is a step's generation (valid or re-asked) or a summary.
    record.attempts = max(len(result.usage) - record.summarized, record.valid_calls + invalid)
    record.prompt_tokens = sum(u.prompt_tokens for u in result.usage)
    record.stopped_by = result.stopped_by
    record.unregistered = [name for name in record.calls if name not in registered]


def score_turn(record: TurnRecord, check: Check, core_memory_text: str) -> None:
    """Decide a checked turn: the answer, the memory function, the searches, robustness."""
    record.checked = True
    said = " ".join(record.replies)
    misses: list[str] = []
    record.answer_ok = not check.expect or any(mentions(said, a) for a in check.expect)
    if not record.answer_ok:
        misses.append(f"no reply said {' / '.join(check.expect)}")
    if check.use:
        used = {name for name in record.calls if name in check.use}
        if "core_memory" in check.use and any(mentions(core_memory_text, a) for a in check.expect):
            used.add("core_memory")
        record.memory_used = bool(used)
        if not used:
            misses.append(f"used none of {', '.join(check.use)}")
    if record.searches < check.min_searches:
        misses.append(f"{record.searches} searches, {check.min_searches} needed")
    if check.robust:
        if record.error:
            misses.append(f"error: {record.error}")
        if record.unregistered:
            misses.append(f"ran unregistered {', '.join(record.unregistered)}")
        if record.valid_calls < record.attempts or record.stopped_by == "invalid_output":
            misses.append(f"{record.attempts - record.valid_calls} invalid outputs")
        if not record.replies:
            misses.append("no reply")
    elif record.error:
        misses.append(f"error: {record.error}")
    record.success = not misses
    record.why = "; ".join(misses)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def scoreboard(runs: list[Any]) -> list[dict[str, Any]]:
    """One row per (suite, wrapper): task success (share of checks passed), valid-call rate, memory edits
    and searches made (per run), steps, prompt tokens and seconds per turn, errors."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for run in runs:
        groups.setdefault((run.suite, run.wrapper), []).append(run)
    rows = []
    for (suite, wrapper), group in groups.items():
        turns = [t for run in group for t in run.turns]
        checks = [t for t in turns if t.checked]
        attempts = sum(t.attempts for t in turns)
        rows.append(
            {
                "suite": suite,
                "wrapper": wrapper,
                "runs": len(group),
                "success": _mean([1.0 if t.success else 0.0 for t in checks]),
                "checks_passed": sum(1 for t in checks if t.success),
                "checks": len(checks),
                "valid_call_rate": (sum(t.valid_calls for t in turns) / attempts) if attempts else None,
                "memory_edits": sum(t.memory_edits for t in turns) / len(group),
                "searches": sum(t.searches for t in turns) / len(group),
                "steps_per_turn": _mean([t.steps for t in turns]),
                "prompt_tokens_per_turn": _mean([t.prompt_tokens for t in turns]),
                "seconds_per_turn": _mean([t.seconds for t in turns]),
                "turns": len(turns),
                "errors": sum(1 for t in turns if t.error),
                "pushed_out": all(run.pushed_out is not False for run in group),
            }
        )
    return rows
