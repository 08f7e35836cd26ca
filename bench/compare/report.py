"""Figures from the runs, and the one table (Markdown) the script prints."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import calls
from llama_server import Exchange
from results import Run, Turn


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def p90(values: list[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


#: Guards that end a chain (ours' ``stopped_by``); "invalid_output" (no valid call after re-asks) is not one.
GUARDS = ("repeat", "failures", "chain_limit")


@dataclass(frozen=True)
class Outcome:
    """What the user got from one turn."""

    answered: bool  # a reply (send_message) reached the user
    guard_stopped: bool  # a guard (ours) or the driver's cap (pymemgpt) ended it with nothing said
    reply_step: bool | None  # answered only by the final send_message-only step (None: no such step)
    calls: int  # calls run
    thoughts: int  # of those, with non-empty inner thoughts
    memory_edits: int
    searches: int


@dataclass(frozen=True)
class Figures:
    label: str
    side: str
    # Outcome (None: not recorded, in results from before these fields)
    answered: int | None  # turns in which the user received a reply
    guard_stopped: int | None  # turns a guard ended with nothing said to the user
    reply_step_turns: int | None  # turns answered only by the reply step (None for pymemgpt: it has none)
    calls_run: int | None
    calls_with_thoughts: int | None
    memory_edits: int | None
    searches: int | None
    outcome_source: str  # "self" (ours: its events and turn line) or "judge" (pymemgpt: its valid calls)
    help_ms: float | None
    help_cpu_ms: float | None
    ready_s: float
    ready_cpu_s: float
    turns: int
    turn_median_s: float | None
    turn_p90_s: float | None
    turn_cpu_median_s: float | None  # the system's process + llama-server, per turn
    valid_turn_median_s: float | None  # latency over the turns with a valid call only (failed turns can be instant)
    evaluated_median: float | None  # prompt tokens evaluated per turn
    evaluated_total: int | None
    evaluated_source: str  # "server" (proxy, timings.prompt_n) or "self" (the system's own usage report)
    completions: int | None
    valid_turns: int
    valid_source: str  # "judge" (strict check of the raw output) or "self" (the system's own events)
    valid_calls: int | None
    call_attempts: int | None
    exceptions: int
    refused: int  # requests the server refused (HTTP status other than 200), e.g. a prompt over the context
    aborted: int
    failed: str


def _turn_evaluated(turn: Turn) -> int | None:
    if turn.exchanges:
        counted = [x.prompt_n for x in turn.exchanges if x.prompt_n is not None]
        return sum(counted) if counted else None
    return turn.evaluated_tokens


def _completions(turn: Turn) -> list[Exchange]:
    """The exchanges the server answered with a completion (a refused request, e.g. over the context, is not one)."""
    return [x for x in turn.exchanges if x.status == 200]


def _verdicts(turn: Turn) -> list[calls.Verdict]:
    return [calls.judge(x.prompt, x.content, x.stopping_word) for x in _completions(turn)]


def outcome(turn: Turn, side: str) -> Outcome | None:
    """Ours: its own account (events and the ``turn`` line). pymemgpt: the strict judge's valid calls, each of
    which it runs (a valid send_message answers the turn); it has no guards, only the driver's cap."""
    if side == "theirs":
        valid = [v for v in _verdicts(turn) if v.kind == "call" and v.valid]
        answered = any(v.function == "send_message" for v in valid)
        return Outcome(
            answered=answered,
            guard_stopped=bool(turn.aborted) and not answered,
            reply_step=None,
            calls=len(valid),
            thoughts=sum(v.thoughts for v in valid),
            memory_edits=sum(v.function in calls.MEMORY_EDITS for v in valid),
            searches=sum(v.function in calls.SEARCHES for v in valid),
        )
    if turn.answered is None:
        return None
    return Outcome(
        answered=turn.answered,
        guard_stopped=(turn.stopped_by in GUARDS or bool(turn.aborted)) and not turn.answered,
        reply_step=bool(turn.reply_step),
        calls=turn.calls or 0,
        thoughts=turn.thoughts or 0,
        memory_edits=turn.memory_edits or 0,
        searches=turn.searches or 0,
    )


def _turn_valid(turn: Turn, judged: bool) -> bool:
    if judged:
        return any(v.kind == "call" and v.valid for v in _verdicts(turn))
    return bool(turn.reported_call)


def figures(run: Run, help_ms: tuple[float, float] | None) -> Figures:
    judged = any(t.exchanges for t in run.turns)  # server backends; the embedded one has no proxy to read
    verdicts = [v for t in run.turns for v in _verdicts(t)]
    attempts = [v for v in verdicts if v.kind == "call"]
    evaluated = [e for e in (_turn_evaluated(t) for t in run.turns) if e is not None]
    seconds = [t.seconds for t in run.turns]
    outcomes = [outcome(t, run.side) for t in run.turns]

    def total(name: str) -> int | None:
        """Sum over the turns; None when any turn lacks it (an older results file, pymemgpt's reply step)."""
        values = [None if o is None else getattr(o, name) for o in outcomes]
        return None if any(v is None for v in values) else sum(int(v) for v in values)

    return Figures(
        label=run.label,
        side=run.side,
        answered=total("answered"),
        guard_stopped=total("guard_stopped"),
        reply_step_turns=total("reply_step"),
        calls_run=total("calls"),
        calls_with_thoughts=total("thoughts"),
        memory_edits=total("memory_edits"),
        searches=total("searches"),
        outcome_source="judge" if run.side == "theirs" else "self",
        help_ms=help_ms[0] if help_ms else None,
        help_cpu_ms=help_ms[1] if help_ms else None,
        ready_s=run.ready_seconds,
        ready_cpu_s=run.ready_cpu_seconds,
        turns=len(run.turns),
        turn_median_s=median(seconds),
        turn_p90_s=p90(seconds),
        turn_cpu_median_s=median([t.cpu_seconds for t in run.turns]),
        valid_turn_median_s=median([t.seconds for t in run.turns if _turn_valid(t, judged)]),
        evaluated_median=median([float(e) for e in evaluated]),
        evaluated_total=sum(evaluated) if evaluated else None,
        evaluated_source="server" if judged else "self",
        completions=len(verdicts) if judged else None,
        valid_turns=sum(_turn_valid(t, judged) for t in run.turns),
        valid_source="judge" if judged else "self",
        valid_calls=sum(v.valid for v in attempts) if judged else None,
        call_attempts=len(attempts) if judged else None,
        exceptions=sum(len(t.exceptions) for t in run.turns),
        refused=sum(x.status != 200 for t in run.turns for x in t.exchanges),
        aborted=sum(bool(t.aborted) for t in run.turns),
        failed=run.failed,
    )


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _count(value: int | None, of: int | None = None) -> str:
    if value is None:
        return "—"
    return f"{value}/{of}" if of is not None else str(value)


HEAD = (
    "| system | turns answered | turns stopped by a guard, nothing said | turns answered only by the reply step "
    "| calls with inner thoughts / calls | memory edits | searches | turns with a valid call | valid calls / call attempts "
    "| CLI `--help` ms, median (CPU) | start → ready s (CPU) | turns | turn latency median s | p90 s "
    "| median s, turns with a valid call | turn CPU median s | prompt tokens evaluated / turn, median; total | completions "
    "| exceptions | requests refused by the server | turns aborted |"
)


def table(rows: list[Figures]) -> str:
    lines = [HEAD, "|" + "---|" * (HEAD.count("|") - 1)]
    for f in rows:
        evaluated = f"{_num(f.evaluated_median, 0)}; {f.evaluated_total if f.evaluated_total is not None else '—'}"
        if f.evaluated_source == "self":
            evaluated += " ¹"
        valid = f"{f.valid_turns}/{f.turns}" + (" ¹" if f.valid_source == "self" else "")
        ratio = f"{f.valid_calls}/{f.call_attempts}" if f.call_attempts is not None else "—"
        mark = " ²" if f.outcome_source == "judge" else ""
        answered = _count(f.answered, f.turns) + (mark if f.answered is not None else "")
        name = f.label + (f" (FAILED: {f.failed[:80]})" if f.failed else "")
        lines.append(
            f"| {name} | {answered} | {_count(f.guard_stopped, f.turns)} | {_count(f.reply_step_turns, f.turns)} "
            f"| {_count(f.calls_with_thoughts, f.calls_run)} | {_count(f.memory_edits)} | {_count(f.searches)} | {valid} | {ratio} "
            f"| {_num(f.help_ms, 0)} ({_num(f.help_cpu_ms, 0)}) | {_num(f.ready_s)} ({_num(f.ready_cpu_s)}) | {f.turns} "
            f"| {_num(f.turn_median_s, 2)} | {_num(f.turn_p90_s, 2)} | {_num(f.valid_turn_median_s, 2)} | {_num(f.turn_cpu_median_s, 2)} "
            f"| {evaluated} | {f.completions if f.completions is not None else '—'} | {f.exceptions} | {f.refused} | {f.aborted} |"
        )
    return "\n".join(lines)


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or (theirs == 0 and ours == 0):
        return "—"
    return "∞" if theirs == 0 else f"{ours / theirs:.2f}"


def ratios(rows: list[Figures], pairs: list[tuple[str, str]]) -> str:
    """ours/theirs for each (our label, their label) pair; < 1 means ours is smaller (faster, fewer tokens; for
    the share of turns answered or with a valid call, > 1 means ours does better)."""
    by_label = {f.label: f for f in rows}
    lines = [
        "| ours / theirs | turns answered | CLI `--help` (CPU) | start → ready (CPU) | turn median | turn p90 | median, turns with a valid call "
        "| turn CPU median | tokens evaluated / turn (median) | turns with a valid call |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ours_label, theirs_label in pairs:
        o, t = by_label.get(ours_label), by_label.get(theirs_label)
        if o is None or t is None:
            continue
        o_valid = o.valid_turns / o.turns if o.turns else None
        t_valid = t.valid_turns / t.turns if t.turns else None
        o_answered = o.answered / o.turns if o.turns and o.answered is not None else None
        t_answered = t.answered / t.turns if t.turns and t.answered is not None else None
        lines.append(
            f"| {o.label} / {t.label} | {_ratio(o_answered, t_answered)} | {_ratio(o.help_ms, t.help_ms)} ({_ratio(o.help_cpu_ms, t.help_cpu_ms)}) "
            f"| {_ratio(o.ready_s, t.ready_s)} ({_ratio(o.ready_cpu_s, t.ready_cpu_s)}) "
            f"| {_ratio(o.turn_median_s, t.turn_median_s)} | {_ratio(o.turn_p90_s, t.turn_p90_s)} "
            f"| {_ratio(o.valid_turn_median_s, t.valid_turn_median_s)} | {_ratio(o.turn_cpu_median_s, t.turn_cpu_median_s)} "
            f"| {_ratio(o.evaluated_median, t.evaluated_median)} | {_ratio(o_valid, t_valid)} |"
        )
    return "\n".join(lines)


def _theirs_for(label: str) -> str:
    """The pymemgpt configuration an ours row is set against: the same wrapper on llama-server."""
    wrapper = label.rsplit(" ", 1)[-1]
    return f"pymemgpt 0.3.25 llamacpp {wrapper}"


def text(results: dict[str, Any]) -> str:
    """What ``run.py`` prints for a results file: the heading line, the table, the ratios and the notes."""
    runs = [Run.from_dict(r) for r in results["runs"]]
    rows = [figures(r, results["help"].get(r.side)) for r in runs]
    pairs = [(f.label, _theirs_for(f.label)) for f in rows if f.side == "ours"]
    heading = (
        f"Measured {results['measured']} on {results['machine']}; llama-server {results['server']}, "
        f"SmolLM2-135M-Instruct Q4_1, 1 thread, context {results['context']}; {results['messages']} messages per run."
    )
    notes = (
        "¹ embedded backend: no server to read, so tokens evaluated and calls are the system's own report.\n"
        "² pymemgpt: turns answered, calls, thoughts, edits and searches from the strict judge's valid calls (it runs each;"
        " a completion its own parser repairs and runs is not counted); ours: its own events and `turn` line;"
        " — : not recorded in this results file."
    )
    parts = [heading, table(rows)]
    if any(t.side == "theirs" for t in rows):
        parts.append(ratios(rows, pairs))
    return "\n\n".join([*parts, notes])
