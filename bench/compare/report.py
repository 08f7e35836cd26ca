"""Figures from the runs, and the one table (Markdown) the script prints."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Figures:
    label: str
    side: str
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
    return Figures(
        label=run.label,
        side=run.side,
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


def table(rows: list[Figures]) -> str:
    head = (
        "| system | CLI `--help` ms, median (CPU) | start → ready s (CPU) | turns | turn latency median s | p90 s "
        "| median s, turns with a valid call | turn CPU median s | prompt tokens evaluated / turn, median; total | completions | turns with a valid call "
        "| valid calls / call attempts | exceptions | requests refused by the server | turns aborted |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for f in rows:
        evaluated = f"{_num(f.evaluated_median, 0)}; {f.evaluated_total if f.evaluated_total is not None else '—'}"
        if f.evaluated_source == "self":
            evaluated += " ¹"
        valid = f"{f.valid_turns}/{f.turns}" + (" ¹" if f.valid_source == "self" else "")
        ratio = f"{f.valid_calls}/{f.call_attempts}" if f.call_attempts is not None else "—"
        name = f.label + (f" (FAILED: {f.failed[:80]})" if f.failed else "")
        lines.append(
            f"| {name} | {_num(f.help_ms, 0)} ({_num(f.help_cpu_ms, 0)}) | {_num(f.ready_s)} ({_num(f.ready_cpu_s)}) | {f.turns} "
            f"| {_num(f.turn_median_s, 2)} | {_num(f.turn_p90_s, 2)} | {_num(f.valid_turn_median_s, 2)} | {_num(f.turn_cpu_median_s, 2)} "
            f"| {evaluated} | {f.completions if f.completions is not None else '—'} | {valid} | {ratio} | {f.exceptions} | {f.refused} | {f.aborted} |"
        )
    return "\n".join(lines)


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "—"
    return f"{ours / theirs:.2f}"


def ratios(rows: list[Figures], pairs: list[tuple[str, str]]) -> str:
    """ours/theirs for each (our label, their label) pair; < 1 means ours is smaller (faster, fewer tokens)."""
    by_label = {f.label: f for f in rows}
    lines = [
        "| ours / theirs | CLI `--help` (CPU) | start → ready (CPU) | turn median | turn p90 | median, turns with a valid call "
        "| turn CPU median | tokens evaluated / turn (median) | turns with a valid call |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for ours_label, theirs_label in pairs:
        o, t = by_label.get(ours_label), by_label.get(theirs_label)
        if o is None or t is None:
            continue
        o_valid = o.valid_turns / o.turns if o.turns else None
        t_valid = t.valid_turns / t.turns if t.turns else None
        lines.append(
            f"| {o.label} / {t.label} | {_ratio(o.help_ms, t.help_ms)} ({_ratio(o.help_cpu_ms, t.help_cpu_ms)}) "
            f"| {_ratio(o.ready_s, t.ready_s)} ({_ratio(o.ready_cpu_s, t.ready_cpu_s)}) "
            f"| {_ratio(o.turn_median_s, t.turn_median_s)} | {_ratio(o.turn_p90_s, t.turn_p90_s)} "
            f"| {_ratio(o.valid_turn_median_s, t.valid_turn_median_s)} | {_ratio(o.turn_cpu_median_s, t.turn_cpu_median_s)} "
            f"| {_ratio(o.evaluated_median, t.evaluated_median)} | {_ratio(o_valid, t_valid)} |"
        )
    return "\n".join(lines)
