"""The in-process llama.cpp backend (``llamacpp-embedded``) on the default SmolLM2-135M model.

Prints: model load time; prefill and decode tokens/s; decode tokens/s with and without the call grammar
(our loop, the binding's grammar-first order, and llama-cpp-python's high-level API as the baseline); wall
time of a constrained vs an unconstrained turn producing the same call; prompt tokens re-evaluated per
turn over a 20-turn MemGPT-style conversation (with a summarizer call in the middle); 100 consecutive
constrained turns checked as JSON; and what persisting the KV state to disk would save.

Run: MEMGPT_THREADS=1 .venv/bin/python bench/bench_embedded.py [--speed-only]   (1 thread unless MEMGPT_THREADS
says more). Speeds are given in wall time and in this process's CPU time: on a shared machine the wall
figures drift with other load, the CPU figures much less; modes are interleaved for the same reason.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

THREADS = int(os.environ.get("MEMGPT_THREADS", "1"))

from memgpt.contract.backend import BackendSettings  # noqa: E402
from memgpt.contract.types import CompletionRequest, Constraint, FunctionSchema, SamplingParams  # noqa: E402
from memgpt.grammar.call import build_call_constraint  # noqa: E402
from memgpt_backend_llamacpp.models import default_model_path  # noqa: E402

SAMPLING = SamplingParams(temperature=0.7, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, seed=11)
GREEDY = SamplingParams(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=1)
DECODE_TOKENS = 96


# ---- a MemGPT-style prompt (ChatML, stable prefix first), written for this bench ----


def _params(properties: dict, required: list[str]) -> dict:
    properties = {"inner_thoughts": {"type": "string", "description": "Private thoughts, never shown to the user."}, **properties}
    properties["request_heartbeat"] = {"type": "boolean", "description": "true to run again right after this call."}
    return {"type": "object", "properties": properties, "required": ["inner_thoughts", *required, "request_heartbeat"]}


FUNCTIONS = [
    FunctionSchema(
        name="send_message",
        description="Send a message to the user; the only way they hear you.",
        parameters=_params({"message": {"type": "string", "description": "What to say."}}, ["message"]),
    ),
    FunctionSchema(
        name="core_memory_append",
        description="Append text to a core memory block (persona or human).",
        parameters=_params(
            {"name": {"type": "string", "enum": ["persona", "human"]}, "content": {"type": "string"}}, ["name", "content"]
        ),
    ),
    FunctionSchema(
        name="core_memory_replace",
        description="Replace text in a core memory block.",
        parameters=_params(
            {
                "name": {"type": "string", "enum": ["persona", "human"]},
                "old_content": {"type": "string"},
                "new_content": {"type": "string"},
            },
            ["name", "old_content", "new_content"],
        ),
    ),
    FunctionSchema(
        name="conversation_search",
        description="Search past messages (recall memory) for a phrase.",
        parameters=_params({"query": {"type": "string"}, "page": {"type": "integer", "minimum": 0}}, ["query"]),
    ),
    FunctionSchema(
        name="archival_memory_insert",
        description="Store a passage in archival memory for later.",
        parameters=_params({"content": {"type": "string"}}, ["content"]),
    ),
    FunctionSchema(
        name="archival_memory_search",
        description="Semantic search over archival memory.",
        parameters=_params({"query": {"type": "string"}, "page": {"type": "integer", "minimum": 0}}, ["query"]),
    ),
]
CALL_SHAPE_FUNCTIONS = [f.name for f in FUNCTIONS]

SYSTEM = """You are a conversational agent with a memory that outlives this conversation. You think before you
act, and every turn you take is exactly one function call written as JSON: {"function": NAME, "params": {...}}.
The user never sees your inner thoughts; they only see what you send with send_message.

How your mind works. You do not run continuously. You wake up when the user writes to you, when a function you
called returns, or when you asked for a heartbeat. Each time you wake up you see the whole context window: these
instructions, your core memory, and the most recent messages. Older messages are not lost: they are stored in
recall memory and you can search them with conversation_search. When your context window gets full, the oldest
messages are summarized and removed from the window; you will see the summary as a system alert.

Inner thoughts. Use inner_thoughts to plan, to reflect on what the user said and to decide which memory to update.
Keep them short, under fifty words, and in the first person. Never put your inner thoughts into a message.

Heartbeats. Set request_heartbeat to true when you need to run again right away, for example to send a message
after you searched your memory or edited a memory block. Otherwise set it to false and wait for the user.

Core memory. Core memory is always in your context. It has two blocks. The persona block holds who you are:
your personality, how you speak, what you care about. The human block holds what you know about the person you
talk with: their name, what they like, what they told you about their life. Keep both blocks accurate and
concise. When you learn something important about the user, add it with core_memory_append; when something
changes, correct it with core_memory_replace. Each block has a size limit shown next to it.

Recall memory. Every message of the conversation is stored, even the ones that left your context window. Search
it with conversation_search when the user refers to something you cannot see anymore, or when you want to check
what was said. Results come in pages; ask for the next page when you need more.

Archival memory. Archival memory is a long-term store of passages that you write and search by meaning. Use it for
facts, documents and reflections that do not belong in core memory, for example the details of a story the user
told, or notes you want to keep for much later. Insert with archival_memory_insert, search with
archival_memory_search. Results come in pages.

Style. Speak like a real person: warm, curious, brief. Do not say you are an AI model unless you are asked. Do not
repeat yourself; if you notice that you said the same thing twice, say something new. Ask questions when you want
to know more. Remember that the user may come back days later, so store what matters.

Login. The first event you see is a login event. Greet the user by name if you know it from core memory, and
refer to something you remember about them.

Available functions (call exactly one per turn):
"""


def system_text() -> str:
    docs = "\n".join(json.dumps({"name": f.name, "description": f.description, "parameters": f.parameters}) for f in FUNCTIONS)
    memory = (
        '<persona characters="402/2000">\nI am Sam, a curious and friendly companion. I like astronomy, old films and long walks. '
        "I speak casually, I make small jokes, and I always try to remember the details people share with me. I never "
        "pretend to know what I do not know, and I ask when something is unclear. I keep my messages short.\n</persona>\n"
        '<human characters="118/2000">\nFirst name: Chad\nLikes: hiking, coffee, science fiction novels\n'
        "Works as a nurse on night shifts.\n</human>"
    )
    return SYSTEM + docs + "\n\n### Core memory\n" + memory


def event(kind: str, text: str) -> tuple[str, str]:
    key = "message" if kind == "user_message" else "reason"
    return ("user", json.dumps({"type": kind, key: text, "time": "2024-01-01 10:00:00 AM"}))


def chatml(system: str, turns: list[tuple[str, str]]) -> str:
    rendered = [f"<|im_start|>system\n{system}<|im_end|>"]
    rendered += [f"<|im_start|>{role}\n{content}<|im_end|>" for role, content in turns]
    return "\n".join(rendered) + "\n<|im_start|>assistant\n"


def call_constraint() -> Constraint:
    return build_call_constraint(FUNCTIONS)


LINES: dict[str, str] = {}  # what was printed, for the results file


def line(label: str, value: str) -> None:
    LINES[label] = value
    print(f"{label:<58} {value}")


def write_results() -> None:
    """``bench/results/bench_embedded.json`` (``--speed-only``: ``bench_embedded_speed.json``): every line printed."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _results

    name = "bench_embedded_speed" if "--speed-only" in sys.argv else "bench_embedded"
    command = f"MEMGPT_THREADS={THREADS} .venv/bin/python bench/bench_embedded.py" + (
        " --speed-only" * ("--speed-only" in sys.argv)
    )
    path = _results.write(name, {"command": command, **_results.machine(), "threads": THREADS, "figures": LINES})
    print(f"\nwrote {path}")


def main() -> None:
    from memgpt_backend_llamacpp.embedded import EmbeddedBackend

    print(f"model {default_model_path().name}, {THREADS} thread(s), llama-cpp-python in process\n")
    started = time.perf_counter()
    backend = EmbeddedBackend(BackendSettings(threads=THREADS, options={"quiet": True, "persist_state": False}))
    status = backend.check()
    line("model load (first use, includes vocabulary tables)", f"{time.perf_counter() - started:.2f} s  [{status.line()}]")
    engine = backend.engine()
    rt, decoder = engine.rt, engine.decoder
    constraint = call_constraint()
    gbnf = engine.grammars.gbnf_for(constraint)[0]

    # ---- prefill ----
    system = system_text()
    turns = [event("login", "First login."), event("user_message", "Hi! My name is Chad and I like hiking.")]
    prompt_text = chatml(system, turns)
    prompt = rt.tokenize(prompt_text, add_special=True, parse_special=True)
    rt.truncate(0)
    engine.states.clear()
    t0 = time.perf_counter()
    engine.prepare(prompt)
    prefill = time.perf_counter() - t0
    line(f"prefill ({len(prompt)}-token MemGPT prompt, cold)", f"{len(prompt) / prefill:.0f} tok/s ({prefill:.2f} s)")

    # ---- decode speed, with and without the grammar (modes interleaved: the machine's load drifts) ----
    from llama_cpp import llama_cpp as C

    modes = {
        "unconstrained": (None, False, False),
        "call grammar, sample then check (ours, the default)": (gbnf, False, False),
        "call grammar over the full vocabulary first (binding's order)": (gbnf, False, True),
        "call grammar, forced text as a verified draft (fast_forward)": (gbnf, True, False),
    }
    totals = {name: [0, 0.0, 0.0, 0] for name in modes}  # tokens, wall s, cpu s, forced
    for run in range(3):
        for name, (grammar_text, ff, first) in modes.items():
            engine.prepare(prompt)
            grammar = engine.grammars.sampler(grammar_text) if grammar_text else None
            params = SAMPLING.model_copy(update={"seed": 100 + run})
            wall, cpu = time.perf_counter(), time.process_time()
            gen = decoder.generate(
                max_tokens=DECODE_TOKENS, stop=(), params=params, grammar=grammar, fast_forward=ff, grammar_first=first
            )
            total = totals[name]
            total[0] += len(gen.tokens)
            total[1] += time.perf_counter() - wall
            total[2] += time.process_time() - cpu
            total[3] += gen.drafted_tokens
            if grammar is not None:
                C.llama_sampler_free(grammar)
    base_wall, base_cpu = (totals["unconstrained"][0] / totals["unconstrained"][i] for i in (1, 2))
    for name, (tokens, wall, cpu, forced) in totals.items():
        ratio = f" = {tokens / wall / base_wall:.2f}x wall, {tokens / cpu / base_cpu:.2f}x cpu" if name != "unconstrained" else ""
        extra = f", {forced} from drafts" if forced else ""
        line(f"decode, {name}", f"{tokens / wall:.1f} tok/s wall, {tokens / cpu:.1f} tok/s cpu{ratio} ({tokens} tokens{extra})")
    high_level_baseline(prompt_text, gbnf)

    # ---- one turn: constrained vs unconstrained, same call ----
    same_call_turn(engine, prompt, constraint)
    if "--speed-only" in sys.argv:  # the long sections below measure reuse and validity, not speed
        write_results()
        return

    # ---- re-evaluated prompt tokens over a conversation ----
    conversation(backend, system, constraint)

    # ---- 100 constrained turns ----
    hundred_turns(backend, system, constraint)

    # ---- persistence ----
    persistence(engine, prompt, prefill)
    backend.close()
    write_results()


def high_level_baseline(prompt_text: str, gbnf: str) -> None:
    """llama-cpp-python's ``Llama.create_completion`` with and without ``LlamaGrammar`` (what we replaced)."""
    from llama_cpp import Llama, LlamaGrammar

    llm = Llama(model_path=str(default_model_path()), n_ctx=4096, n_threads=THREADS, n_threads_batch=THREADS, verbose=False)
    llm.create_completion(prompt_text, max_tokens=1)  # prefill once; later calls reuse the prefix

    grammar = LlamaGrammar.from_string(gbnf, verbose=False)
    totals = {"free": [0, 0.0, 0.0], "grammar": [0, 0.0, 0.0]}
    for run in range(3):
        for name, used in (("free", None), ("grammar", grammar)):
            wall, cpu = time.perf_counter(), time.process_time()
            out = llm.create_completion(
                prompt_text,
                max_tokens=DECODE_TOKENS,
                temperature=0.7,
                top_k=40,
                top_p=0.95,
                min_p=0.05,
                repeat_penalty=1.1,
                seed=100 + run,
                grammar=used,
            )
            totals[name][0] += out["usage"]["completion_tokens"]
            totals[name][1] += time.perf_counter() - wall
            totals[name][2] += time.process_time() - cpu
    (fn, fw, fc), (gn, gw, gc) = totals["free"], totals["grammar"]
    line("baseline: Llama.create_completion unconstrained", f"{fn / fw:.1f} tok/s wall, {fn / fc:.1f} tok/s cpu")
    line(
        "baseline: Llama.create_completion with LlamaGrammar",
        f"{gn / gw:.1f} tok/s wall, {gn / gc:.1f} tok/s cpu = {gn / gw / (fn / fw):.2f}x wall, {gn / gc / (fn / fc):.2f}x cpu",
    )
    llm.close()


def same_call_turn(engine, prompt: list[int], constraint: Constraint) -> None:
    """Wall time to produce one call: constrained (the grammar, every token sampled: the backend's default) vs
    unconstrained sampling of the same tokens (each sampled from the full distribution, then the call's
    token appended)."""
    from llama_cpp import llama_cpp as C

    from memgpt_backend_llamacpp.sampling import build_chain

    rt, decoder = engine.rt, engine.decoder
    gbnf = engine.grammars.gbnf_for(constraint)[0]
    constrained, unconstrained, cpu_c, cpu_u = [], [], [], []
    for run in range(5):
        params = SAMPLING.model_copy(update={"seed": 300 + run})
        engine.prepare(prompt)
        grammar = engine.grammars.sampler(gbnf)
        t, cpu = time.perf_counter(), time.process_time()
        gen = decoder.generate(max_tokens=256, stop=(), params=params, grammar=grammar, fast_forward=False)
        constrained.append(time.perf_counter() - t)
        cpu_c.append(time.process_time() - cpu)
        C.llama_sampler_free(grammar)
        json.loads(gen.text)
        # The same call, unconstrained: every token goes through the full sampler, as a free turn would.
        call_tokens = rt.tokenize(gen.text, add_special=False, parse_special=False)
        engine.prepare(prompt)
        chain = build_chain(params, rt.n_vocab)
        t, cpu = time.perf_counter(), time.process_time()
        for token in call_tokens:
            decoder._sample(chain, None, False)
            C.llama_sampler_accept(chain, token)
            rt.decode([token])
        unconstrained.append(time.perf_counter() - t)
        cpu_u.append(time.process_time() - cpu)
        C.llama_sampler_free(chain)
    c, u = statistics.median(constrained), statistics.median(unconstrained)
    cc, cu = statistics.median(cpu_c), statistics.median(cpu_u)
    line("turn producing the same call: unconstrained (median of 5)", f"{u * 1000:.0f} ms wall, {cu * 1000:.0f} ms cpu")
    line(
        "turn producing the same call: constrained (every token sampled)",
        f"{c * 1000:.0f} ms wall = {c / u:.2f}x, {cc * 1000:.0f} ms cpu = {cc / cu:.2f}x",
    )


def conversation(backend, system: str, constraint: Constraint) -> None:
    """20 agent turns, append-only history; a summarizer call (an unrelated prompt) after turn 10."""
    engine = backend.engine()
    engine.rt.truncate(0)
    engine.states.clear()
    turns = [event("login", "First login.")]
    ratios, after_summary, first_len = [], None, 0
    for n in range(1, 21):
        turns.append(event("user_message", f"Message {n}: tell me something about topic number {n}, please."))
        request = CompletionRequest(
            prompt=chatml(system, turns), max_tokens=96, sampling=SAMPLING.model_copy(update={"seed": n}), constraint=constraint
        )
        completion = backend.complete(request)
        usage = completion.usage
        if n == 2:
            first_len = usage.prompt_tokens
        if n == 11:
            after_summary = usage
        elif n > 1:
            ratios.append(100.0 * (usage.evaluated_tokens or 0) / usage.prompt_tokens)
        turns.append(("assistant", completion.text))
        turns.append(("function", json.dumps({"status": "OK", "message": None, "time": f"2024-01-01 10:{n:02d}:00"})))
        if n == 10:
            summary = (
                "<|im_start|>system\nSummarize this conversation in one sentence.<|im_end|>\n<|im_start|>user\n"
                + " ".join(t[1][:200] for t in turns[1:])
                + "<|im_end|>\n<|im_start|>assistant\n"
            )
            backend.complete(CompletionRequest(prompt=summary, max_tokens=24, sampling=GREEDY))
    line("conversation: prompt length at turn 2 / turn 20", f"{first_len} / {usage.prompt_tokens} tokens")
    line("re-evaluated prompt tokens, steady turns (median / max)", f"{statistics.median(ratios):.1f} % / {max(ratios):.1f} %")
    if after_summary is not None:
        line(
            "turn after the summarizer call (saved state restored)",
            f"{after_summary.evaluated_tokens}/{after_summary.prompt_tokens} evaluated "
            f"= {100.0 * (after_summary.evaluated_tokens or 0) / after_summary.prompt_tokens:.1f} %",
        )


def hundred_turns(backend, system: str, constraint: Constraint) -> None:
    """100 turns under the call grammar (a short system prompt: this checks validity, not speed)."""
    system = "You are a helpful assistant with memory. Reply with exactly one JSON function call."
    ok = cut = 0
    names = {f for f in CALL_SHAPE_FUNCTIONS}
    t = time.perf_counter()
    for n in range(100):
        turns = [event("user_message", f"Question {n}: what should I remember about item {n}?")]
        completion = backend.complete(
            CompletionRequest(
                prompt=chatml(system, turns),
                max_tokens=160,
                sampling=SAMPLING.model_copy(update={"seed": 1000 + n}),
                constraint=constraint,
            )
        )
        if completion.finish_reason == "length":
            cut += 1
            continue
        value = json.loads(completion.text)  # raises (and fails the bench) if the grammar let bad JSON through
        assert value["function"] in names and isinstance(value["params"], dict), completion.text
        ok += 1
    line(
        "100 constrained turns (max_tokens 160): valid calls",
        f"{ok} valid, {cut} cut by max_tokens, 0 invalid ({time.perf_counter() - t:.0f} s)",
    )


def persistence(engine, prompt: list[int], cold_prefill: float) -> None:
    """Does keeping the KV state on disk between runs pay off? Save + load it vs the cold prefill."""
    from memgpt_backend_llamacpp import persist

    rt = engine.rt
    engine.prepare(prompt)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agent.kv"
        t = time.perf_counter()
        persist.save(rt, path, max_bytes=2**31)
        saved = time.perf_counter() - t
        size = path.stat().st_size
        rt.truncate(0)
        t = time.perf_counter()
        restored = persist.load(rt, path)
        loaded = time.perf_counter() - t
    line(
        f"persisted KV state ({restored} tokens, {size / 2**20:.0f} MiB): save / load",
        f"{saved * 1000:.0f} ms / {loaded * 1000:.0f} ms vs cold prefill {cold_prefill * 1000:.0f} ms",
    )


if __name__ == "__main__":
    main()
