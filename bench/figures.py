"""The figures the README, the docs and the plugin READMEs quote, generated from the results files.

A document marks each generated passage with the name of a renderer below:

    <!-- figure: memory-edits -->
    ...text this script writes...
    <!-- /figure -->

Each renderer reads results files under ``bench/results/`` (written by the bench named inside them, with the
machine, versions and date) and returns the passage. ``make figures`` (``python bench/figures.py``) rewrites
every marked passage; ``--check`` changes nothing and exits 1 naming each passage that differs from its file,
or a renderer or results file that is missing (``tests/test_figures.py`` runs it, so a table and its file cannot
drift apart).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCUMENTS = ["README.md", "bench/README.md", "docs/*.md", "plugins/*/README.md"]
BLOCK = re.compile(r"(<!-- figure: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /figure -->)", re.S)

RENDERERS: dict[str, Callable[[], str]] = {}


def renderer(name: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    def register(function: Callable[[], str]) -> Callable[[], str]:
        RENDERERS[name] = function
        return function

    return register


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / name).read_text(encoding="utf-8"))
    return data


def source(name: str, data: dict[str, Any]) -> str:
    """Where a figure comes from: the results file, the command that wrote it and its date."""
    when = str(data.get("date") or data.get("measured") or "")[:10]
    command = data.get("command") or " ".join([f".venv/bin/python bench/{name.removesuffix('.json')}.py", *data["argv"]])
    return f"`bench/results/{name}`, written by `{command.strip()}` on {when}"


def _machine(data: dict[str, Any]) -> str:
    machine = data.get("machine")
    if isinstance(machine, str):
        return machine
    return f"{machine['cores']} cores ({machine['cpu'] or 'unknown CPU'}), Python {machine['python']}"


# ---- the renderers ----


def _compare(name: str) -> str:
    sys.path.insert(0, str(ROOT / "bench" / "compare"))
    import report

    data = load(name)
    return f"From {source(name, data)}:\n\n{report.text(data)}\n"


@renderer("compare")
def compare() -> str:
    return _compare("compare-2026-12-02.json")


@renderer("compare-default")
def compare_default() -> str:
    return _compare("compare-2026-12-02-default.json")


def _default_turns() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = load("compare-2026-12-02-default.json")
    [run] = [r for r in data["runs"] if "embedded" in r["label"]]
    return data, run["turns"]


@renderer("agent-evaluated")
def agent_evaluated() -> str:
    data, turns = _default_turns()
    evaluated = [t["evaluated_tokens"] for t in turns[1:]]
    answered = sum(bool(t["answered"]) for t in turns)
    return (
        f"On the default path (`memgpt run`, in process), after the first turn a turn evaluates a median "
        f"{statistics.median(evaluated):.0f} prompt tokens (the new input and the previous call; the rest comes from "
        f"the KV cache), and it answered {answered} of {len(turns)} messages ({source('compare-2026-12-02-default.json', data)}).\n"
    )


@renderer("embedded-speed")
def embedded_speed() -> str:
    data = load("bench_embedded_speed.json")
    figures = data["figures"]
    plain = figures["decode, call grammar, sample then check (ours, the default)"]
    return (
        f"It samples under the grammar as llama-server does, every token from its own logits; decode speed under "
        f"the grammar against unconstrained sampling: {plain} ({source('bench_embedded_speed.json', data)}; "
        f"{data['threads']} thread, {_machine(data)}).\n"
    )


@renderer("grammar-validity")
def grammar_validity() -> str:
    data = load("bench_grammar.json")
    ours, reference, free = data["default_backend"], data["llama_cpp_python"], data["without_grammar"]
    n = data["turns"]
    return (
        f"{ours['valid']}/{n} SmolLM2 turns under the call grammar, sampled by the default in-process backend, parse "
        f"and validate ({ours['no_repair_natural_stop']}/{n} with no repair and a natural stop); through "
        f"llama-cpp-python's own grammar path {reference['valid']}/{n}; without a grammar {free['valid']}/{n} "
        f"({source('bench_grammar.json', data)}).\n"
    )


@renderer("memory-edits")
def memory_edits() -> str:
    data = load("bench_memory_edits.json")
    ours, ref, ratios = data["ours"], data["reference"], data["ratios"]
    return (
        f"| layout | prompt tokens evaluated per step, median | total over {ours['steps']} steps | share of prompt tokens | wall |\n"
        f"|---|---|---|---|---|\n"
        f"| append-only (ours) | {ours['median']:.0f} of a {ours['prompt']:.0f}-token prompt | {ours['total']:,.0f} "
        f"| {ours['share']:.1%} | {ours['wall']:.1f} s |\n"
        f"| re-render on each edit (reference) | {ref['median']:.0f} of a {ref['prompt']:.0f}-token prompt | {ref['total']:,.0f} "
        f"| {ref['share']:.1%} | {ref['wall']:.1f} s |\n"
        f"| ours / reference | | {ratios['evaluated_total']:.2f}× | | {ratios['wall']:.2f}× |\n\n"
        f"{data['turns']} turns, each an edit with a heartbeat and a reply, SmolLM2 in process, {data['threads']} thread, "
        f"{_machine(data)} ({source('bench_memory_edits.json', data)}).\n"
    )


@renderer("memory-edits-ratio")
def memory_edits_ratio() -> str:
    data = load("bench_memory_edits.json")
    return (
        f"{data['ratios']['evaluated_total']:.2f}× the prompt tokens of re-rendering memory on each edit "
        f"({source('bench_memory_edits.json', data)}).\n"
    )


@renderer("inner-thoughts")
def inner_thoughts() -> str:
    data = load("bench_inner_thoughts.json")
    free, required = data["by_min_inner_thoughts_chars"]["0"], data["by_min_inner_thoughts_chars"]["1"]
    n = free["calls"]
    return (
        f"Requiring non-empty `inner_thoughts` costs {required['completion_tokens_median'] - free['completion_tokens_median']:.1f} "
        f"completion tokens per call at the median on the first turn ({free['completion_tokens_median']} → "
        f"{required['completion_tokens_median']}, {n} seeds), turns {n - free['non_empty_thoughts']} empty thoughts in {n} "
        f"into written ones, and leaves the share of `send_message` first turns at {free['send_message']}/{n} → "
        f"{required['send_message']}/{n} ({source('bench_inner_thoughts.json', data)}).\n"
    )


@renderer("schema-suite")
def schema_suite() -> str:
    data = load("bench_schema_suite.json")
    ours, theirs = data["schema_suite"]["totals"]["ours"], data["schema_suite"]["totals"]["llama.cpp"]
    fuzz = data["fuzz"]

    def row(label: str, t: dict[str, Any], refusals: str) -> str:
        return (
            f"| {label} | {t['accepted']} / {t['refused']} ({refusals}) | {t['valid_in_type_accepted']} / {t['valid_in_type']} "
            f"| {t['invalid_rejected']} / {t['invalid']} |"
        )

    other = theirs.get("refused_not_grammar_error", theirs["refused"])
    return (
        "| | schemas accepted / refused | valid instances accepted (of the type an untyped schema implies) "
        "| invalid instances rejected |\n|---|---|---|---|\n"
        f"{row('ours', ours, 'every refusal a `GrammarError`')}\n"
        f"{row('llama.cpp' + chr(39) + 's converter', theirs, f'{other} of them other exceptions')}\n\n"
        f"Mutation fuzz: {fuzz['inputs']:,} mutated calls, {fuzz['calls']:,} calls returned, {fuzz['wrong']} wrong calls "
        f"(a value or key the text does not hold), {fuzz['crashes']} crashes ({source('bench_schema_suite.json', data)}; "
        f"{_machine(data)}).\n"
    )


@renderer("server-load")
def server_load() -> str:
    rows = []
    notes = []
    for backend, label in (
        ("scripted", "scripted backend"),
        ("llamacpp", "llama-server, SmolLM2"),
        ("embedded", "SmolLM2 in process"),
    ):
        name = f"bench_server-{backend}.json"
        data = load(name)
        p, alone, under, kill = data["parameters"], data["alone"], data["load"], data["kill"]
        store, after = under["storage"], kill["storage_after_restart"]
        setup = f"{label}, {p['agents']} agents × {p['messages']} messages" + (
            f", `-np {p['slots']}`" if backend == "llamacpp" else ""
        )
        rows.append(
            f"| {setup} | {store['answered_and_in_recall']} of {under['sent']} | {store['lost']} "
            f"| {under['p50_s']:.2f} / {under['p95_s']:.2f} s | {alone['p50_s']:.2f} / {alone['p95_s']:.2f} s "
            f"| {under['throughput_vs_alone']:.2f}× | {kill['answered_before_kill']} kept, "
            f"{after['unanswered_and_pending']} pending, {kill['retried_and_answered']} retried, {after['lost']} lost |"
        )
        notes.append(f"{label}: {_machine(data)}, {source(name, data)}")
    return (
        "| setup | answered and in recall | lost | turn p50 / p95 under load | alone | throughput vs alone "
        "| kill -9 mid-load, restart |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n" + ".\n".join(notes) + ".\n"
    )


@renderer("storage-engines")
def storage_engines() -> str:
    rnd, clu = load("bench_storage_engines.json"), load("bench_storage_engines-clustered-archival.json")
    a, c = rnd["archival"], clu["archival"]

    def cells(key: str) -> str:
        return f"{a[key]['p50_ms']:.0f} | {a[key]['p95_ms']:.0f} | {c[key]['p50_ms']:.0f} | {c[key]['p95_ms']:.0f}"

    recall, both = rnd["recall"], rnd["two_processes_postgres"]
    return (
        f"Archival search, {rnd['passages']:,} passages of {rnd['dims']}-d vectors, top 10 (ms):\n\n"
        "| | random vectors p50 | p95 | clustered vectors p50 | p95 |\n|---|---|---|---|---|\n"
        f"| SQLite (exact) | {cells('sqlite')} |\n| PostgreSQL exact scan | {cells('postgres_exact')} |\n"
        f"| PostgreSQL HNSW | {cells('postgres_hnsw')} |\n\n"
        f"- HNSW recall@10 against the exact answer: {c['postgres_hnsw_recall_at_10']} on clustered vectors (near "
        f"neighbours much nearer than the rest, as with sentence embeddings), but {a['postgres_hnsw_recall_at_10']} on "
        "random ones (every point about as far from every other: the worst case for a graph index). Check recall on "
        "your own embeddings before relying on it; raise `exact_below` to keep exact answers.\n"
        f"- Building the index over {rnd['passages']:,} passages took {c['postgres_hnsw_build_seconds']} s (clustered) and "
        f"{a['postgres_hnsw_build_seconds']} s (random); once it exists PostgreSQL inserts "
        f"{a['postgres_insert_passages_per_second_with_hnsw']}–{c['postgres_insert_passages_per_second_with_hnsw']} "
        f"passages/s, against {a['insert_passages_per_second']['postgres']:,}/s before it (SQLite: "
        f"{a['insert_passages_per_second']['sqlite']:,}/s).\n"
        f"- Recall full-text search over {rnd['messages']:,} messages: SQLite p50 {recall['sqlite']['search']['p50_ms']:.0f} ms / "
        f"p95 {recall['sqlite']['search']['p95_ms']:.0f} ms, PostgreSQL p50 {recall['postgres']['search']['p50_ms']:.0f} ms / "
        f"p95 {recall['postgres']['search']['p95_ms']:.0f} ms.\n"
        f"- Two processes each stepping its own agent on one database: {both['turns_each']} turns each in "
        f"{both['wall_seconds_both']} s together ({both['turns_per_second_total']} turns/s, scripted backend); every turn "
        f"stored: {both['every_turn_stored']}; a third process asking for a held agent was refused: {both['same_agent_refused']}.\n\n"
        f"From {source('bench_storage_engines.json', rnd)} and {source('bench_storage_engines-clustered-archival.json', clu)}; "
        f"{_machine(rnd)}, with other work loading it (read them as ratios, not absolutes).\n"
    )


@renderer("reasoning")
def reasoning() -> str:
    data = load("bench_reasoning.json")
    labels = {
        "constrained": "grammar from token 0",
        "think_grammar": "think then call, one grammar",
        "think_fallback": "two-request fallback (JSON schema only)",
        "repair": "no constraint, repair",
    }
    rows = [
        f"| {labels.get(name, name)} | {m['valid_calls']}/{m['turns']} | {m['with_thinking']}/{m['turns']} "
        f"| {m['completion_tokens_mean']:.0f} | {m['seconds_mean']:.1f} ({m['seconds_median']:.1f}) |"
        for name, m in data["modes"].items()
    ]
    return (
        "| mode | valid calls | with thinking | completion tokens, mean | seconds per turn, mean (median) |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"SmolLM2 in process, {len(data['messages'])} messages × {data['seeds']} seeds, max_tokens {data['max_tokens']}, "
        f"thinking bounded to {data['max_think_chars']} characters, {data['threads']} thread, {_machine(data)} "
        f"({source('bench_reasoning.json', data)}).\n"
    )


# ---- the documents ----


def documents() -> list[Path]:
    return sorted({p for pattern in DOCUMENTS for p in ROOT.glob(pattern) if p.is_file()})


def regenerate(text: str) -> tuple[str, list[str]]:
    """The text with every marked passage rendered again, and the problems found (unknown renderer, missing file)."""
    problems: list[str] = []

    def render(match: re.Match[str]) -> str:
        name = match.group("name")
        function = RENDERERS.get(name)
        if function is None:
            problems.append(f"no renderer named {name!r}")
            return match.group(0)
        try:
            body = function()
        except (OSError, KeyError, ValueError) as exc:
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            return match.group(0)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(render, text), problems


def main() -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) the figures quoted in the docs from bench/results.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a passage differs from its file")
    args = parser.parse_args()
    failed = False
    for path in documents():
        text = path.read_text(encoding="utf-8")
        new, problems = regenerate(text)
        name = path.relative_to(ROOT)
        for problem in problems:
            print(f"{name}: {problem}")
            failed = True
        if new != text:
            if args.check:
                stale = [m.group("name") for m in BLOCK.finditer(text) if m.group(0) not in new]
                print(f"{name}: out of date with its results file: {', '.join(stale)} (run `make figures`)")
                failed = True
            else:
                path.write_text(new, encoding="utf-8")
                print(f"{name}: rewritten")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
