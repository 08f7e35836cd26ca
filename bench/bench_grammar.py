"""Grammar-constrained turns with the real model: validity and speed.

SmolLM2-135M-Instruct in process (llama-cpp-python, 1 thread), the ``chatml-grammar`` prompt, varied user
messages and function sets (the agent's eight function schemas, see ``memgpt.testing.wrapper``):

0. 200 turns under the call grammar through the default backend (``llamacpp-embedded``: its own sampler,
   every token sampled, the path ``memgpt run`` takes): how many parse and validate (target 200/200), how
   many needed no repair and stopped by themselves;
1. the same turns through llama-cpp-python's high-level ``Llama(grammar=...)`` (the reference, in the same
   process): validity and decode speed;
2. the same turns without a grammar (the ``chatml`` wrapper with its JSON prefill, parsed with repair):
   decode speed, so the grammar's cost is a ratio on the same machine, and how many turns parse;
3. the GBNF design: sampler set-up time of the grammar with strings bounded by ``{0,N}`` repetitions against
   unbounded ``char*`` strings, and decode speed of each on the same turns.

Decode speed excludes prompt processing: each prompt is evaluated once beforehand (llama.cpp then reuses
it from its cache), and the timed call only decodes.

    .venv/bin/python bench/bench_grammar.py [--turns 200] [--threads 1] [--design-turns 40]

writes ``bench/results/bench_grammar.json`` (machine, versions, date and every figure printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from memgpt.testing.wrapper import USER_MESSAGES

MAX_TOKENS = 256
SYSTEM = "You are Sam. Think, then act by calling exactly one function."
MEMORY = "persona: I am Sam, a curious and kind companion.\nhuman: First name: Chad. Likes tea."
SETS = [
    ["send_message"],
    ["send_message", "core_memory_append"],
    ["send_message", "core_memory_append", "core_memory_replace"],
    ["send_message", "conversation_search", "conversation_search_date"],
    ["send_message", "archival_memory_insert", "archival_memory_search"],
    ["send_message", "pause_heartbeats"],
    ["send_message", "core_memory_append", "conversation_search", "archival_memory_search"],
    None,  # all eight
]


def plan(turns: int) -> list[tuple[int, int, bool]]:
    """(set, message, first?) triples, grouped by function set so the prompt prefix stays cached."""
    per_set = max(1, turns // len(SETS))
    out = [(s, (7 * s + i) % len(USER_MESSAGES), i == 0) for s in range(len(SETS)) for i in range(per_set)]
    return out[:turns] + [(len(SETS) - 1, i % len(USER_MESSAGES), False) for i in range(turns - len(out))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--design-turns", type=int, default=40)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("MEMGPT_THREADS", "1")))
    args = parser.parse_args()

    import llama_cpp
    from llama_cpp import Llama, LlamaGrammar

    from memgpt.contract.types import Message
    from memgpt.grammar.call import build_call_constraint, shape_for_budget
    from memgpt.parsing import parse_call
    from memgpt.testing.wrapper import sample_functions
    from memgpt_backend_llamacpp.grammar_check import check_gbnf
    from memgpt_backend_llamacpp.models import default_model_path
    from memgpt_wrappers_builtin.families import WRAPPER_NAMES
    from memgpt_wrappers_builtin.render import FamilyWrapper

    model_path = default_model_path()
    llm = Llama(
        model_path=str(model_path), n_ctx=4096, n_threads=args.threads, n_threads_batch=args.threads, verbose=False, seed=1234
    )
    by_name = {f.name: f for f in sample_functions()}
    function_sets = [[by_name[n] for n in names] if names else list(by_name.values()) for names in SETS]
    shapes = [shape_for_budget(fs, MAX_TOKENS) for fs in function_sets]
    constraints = [build_call_constraint(fs, shape) for fs, shape in zip(function_sets, shapes, strict=True)]
    for constraint in constraints:
        check_gbnf(constraint.gbnf)  # an invalid grammar would segfault inside llama.cpp

    def prompt_for(wrapper_name: str, set_index: int, message_index: int, first: bool) -> Any:
        event = json.dumps({"type": "user_message", "message": USER_MESSAGES[message_index]}, ensure_ascii=False)
        messages = [Message(role="system", content=MEMORY), Message(role="user", content=event)]
        return FamilyWrapper.from_name(WRAPPER_NAMES[wrapper_name]).format(
            SYSTEM, messages, function_sets[set_index], first_message=first
        )

    def decode(text: str, seed: int, grammar: str | None) -> tuple[dict[str, Any], float]:
        llm.create_completion(text, max_tokens=1, temperature=0.0)  # evaluate the prompt; the timed call only decodes
        started = time.perf_counter()
        out = llm.create_completion(
            text,
            max_tokens=MAX_TOKENS,
            temperature=0.8,
            seed=seed,
            grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
        )
        return out, time.perf_counter() - started

    turns = plan(args.turns)
    print(
        f"SmolLM2-135M-Instruct Q4_1, llama-cpp-python {llama_cpp.__version__}, {args.threads} thread(s), max_tokens {MAX_TOKENS}"
    )
    print(
        f"string bounds per function set (so every call closes within {MAX_TOKENS} tokens): {[s.max_string_chars for s in shapes]}"
    )

    report: dict[str, Any] = {
        "command": f"MEMGPT_THREADS={args.threads} .venv/bin/python bench/bench_grammar.py --turns {args.turns} "
        f"--design-turns {args.design_turns}",
        "turns": len(turns),
        "max_tokens": MAX_TOKENS,
        "threads": args.threads,
    }

    # 0. the default backend, as `memgpt run` uses it
    from memgpt.contract.backend import BackendSettings
    from memgpt.contract.types import CompletionRequest, SamplingParams
    from memgpt.plugins import get_registry

    backend = (
        get_registry()
        .backend("llamacpp-embedded")
        .factory(BackendSettings(threads=args.threads, context_window=4096, options={"persist_state": False}))
    )
    backend.check()
    valid = clean = 0
    called_default: Counter[str] = Counter()
    problems_default: list[str] = []
    started = time.perf_counter()
    for n, (s, m, first) in enumerate(turns):
        prompt = prompt_for("chatml-grammar", s, m, first)
        request = CompletionRequest(
            prompt=prompt.text,
            stop=prompt.stop,
            max_tokens=MAX_TOKENS,
            constraint=constraints[s],
            sampling=SamplingParams(temperature=0.8, seed=1000 + n),
        )
        completion = backend.complete(request)
        try:
            parsed = parse_call(completion.text, function_sets[s], shapes[s])
        except Exception as exc:
            problems_default.append(f"  turn {n}: {type(exc).__name__}: {exc} :: {completion.text[:120]!r}")
            continue
        valid += 1
        clean += not parsed.repairs and completion.finish_reason == "stop"
        called_default[parsed.call.name] += 1
    backend.close()
    report["default_backend"] = {
        "valid": valid,
        "no_repair_natural_stop": clean,
        "functions_called": dict(called_default.most_common()),
        "seconds": round(time.perf_counter() - started, 1),
        "problems": problems_default[:10],
    }
    print(
        f"\nthe default backend (llamacpp-embedded) under the grammar: valid {valid}/{len(turns)}, with no repair and a natural stop {clean}/{len(turns)}"
    )
    print(f"  functions called: {dict(called_default.most_common())}")
    print("\n".join(problems_default[:10]))

    # 1. under the grammar, llama-cpp-python's own grammar path
    valid = clean = 0
    tokens = seconds = 0.0
    called: Counter[str] = Counter()
    problems: list[str] = []
    for n, (s, m, first) in enumerate(turns):
        prompt = prompt_for("chatml-grammar", s, m, first)
        out, took = decode(prompt.text, 1000 + n, constraints[s].gbnf)
        choice = out["choices"][0]
        tokens += out["usage"]["completion_tokens"]
        seconds += took
        try:
            parsed = parse_call(choice["text"], function_sets[s], shapes[s])
        except Exception as exc:
            problems.append(f"  turn {n}: {type(exc).__name__}: {exc} :: {choice['text'][:120]!r}")
            continue
        valid += 1
        clean += not parsed.repairs and choice["finish_reason"] == "stop"
        called[parsed.call.name] += 1
    grammar_rate = tokens / seconds
    report["llama_cpp_python"] = {
        "valid": valid, "no_repair_natural_stop": clean, "functions_called": dict(called.most_common()),
        "decode_tokens_per_s": round(grammar_rate, 1), "tokens": tokens,
    }  # fmt: skip
    print(
        f"\nllama-cpp-python's Llama(grammar=...): valid {valid}/{len(turns)}, with no repair and a natural stop {clean}/{len(turns)}"
    )
    print(f"  functions called: {dict(called.most_common())}")
    print(f"  decode {grammar_rate:.1f} tok/s ({tokens:.0f} tokens, mean {tokens / len(turns):.1f} per turn)")
    print("\n".join(problems[:10]))

    # 2. without a grammar: the plain wrapper's JSON prefill, parsed with repair
    valid_free = 0
    tokens = seconds = 0.0
    repairs: Counter[str] = Counter()
    for n, (s, m, first) in enumerate(turns):
        prompt = prompt_for("chatml", s, m, first)
        out, took = decode(prompt.text, 1000 + n, None)
        tokens += out["usage"]["completion_tokens"]
        seconds += took
        try:
            parsed = parse_call(prompt.prefill + out["choices"][0]["text"], function_sets[s])
        except Exception:
            continue
        valid_free += 1
        repairs.update(parsed.repairs)
    free_rate = tokens / seconds
    report["without_grammar"] = {
        "valid": valid_free, "repairs": dict(repairs), "decode_tokens_per_s": round(free_rate, 1), "tokens": tokens,
        "speed_ratio_grammar_over_free": round(grammar_rate / free_rate, 2),
    }  # fmt: skip
    print(
        f"\nwithout a grammar (chatml + prefill, parsed with repair): valid {valid_free}/{len(turns)}; repairs used {dict(repairs)}"
    )
    print(f"  decode {free_rate:.1f} tok/s ({tokens:.0f} tokens)")
    print(f"\ndecode speed with / without grammar: {grammar_rate:.1f} / {free_rate:.1f} tok/s = {grammar_rate / free_rate:.2f}x")

    # 3. the GBNF design: bounded {0,N} strings against unbounded char*
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    everything = constraints[-1].gbnf
    unbounded = everything
    for bound in sorted({shapes[-1].max_string_chars, 200}):
        for low in (0, 1):
            unbounded = unbounded.replace(f"char{{{low},{bound}}}", "char*" if low == 0 else "char+")

    def setup_ms(grammar: str) -> float:
        samples = []
        for _ in range(20):
            started = time.perf_counter()
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            samples.append(time.perf_counter() - started)
            llama_cpp.llama_sampler_free(sampler)
        return statistics.median(samples) * 1000

    from memgpt.contract.types import CallShape
    from memgpt.grammar.call import call_gbnf

    full_1200 = call_gbnf(function_sets[-1], CallShape(max_string_chars=1200))
    report["design"] = {
        "setup_ms_strings_1200": round(setup_ms(full_1200), 2),
        f"setup_ms_strings_{shapes[-1].max_string_chars}": round(setup_ms(everything), 2),
        "setup_ms_unbounded": round(setup_ms(unbounded), 2),
    }
    print("\nGBNF design (all eight functions):")
    print(
        f"  sampler set-up: {{0,1200}} strings {setup_ms(full_1200):.2f} ms, {{0,{shapes[-1].max_string_chars}}} strings {setup_ms(everything):.2f} ms, unbounded char* {setup_ms(unbounded):.2f} ms"
    )
    design_turns = [t for t in turns if t[0] == len(SETS) - 1][: args.design_turns] or turns[: args.design_turns]
    for label, grammar in (("bounded", everything), ("unbounded", unbounded)):
        tokens = seconds = 0.0
        for n, (_set, m, first) in enumerate(design_turns):
            out, took = decode(prompt_for("chatml-grammar", len(SETS) - 1, m, first).text, 5000 + n, grammar)
            tokens += out["usage"]["completion_tokens"]
            seconds += took
        print(f"  decode with {label} strings: {tokens / seconds:.1f} tok/s over {len(design_turns)} turns ({tokens:.0f} tokens)")
        report.setdefault("design", {})[f"{label}_decode_tokens_per_s"] = round(tokens / seconds, 1)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _results

    print(f"\nwrote {_results.write('bench_grammar', {**report, **_results.machine()})}")


if __name__ == "__main__":
    main()
