"""What `memgpt run` does with the options it is given: nothing ignored or capped silently, endpoints that
need a backend, names in any case, and agent names that never collide (scripted backend, no model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from memgpt.cli.agent_choice import new_agent_name
from memgpt.config import home

LAUNCHER = Path(__file__).parent / "scripted_memgpt.py"


def memgpt(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args], input=stdin, capture_output=True, text=True, env=os.environ.copy(), timeout=180
    )


def events(result: subprocess.CompletedProcess[str]) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def infos(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [e["text"] for e in events(result) if e["type"] == "info"]


def test_options_an_existing_agent_ignores_are_reported() -> None:
    assert memgpt("configure", "--yes", "--backend", "scripted").returncode == 0
    events(memgpt("run", "--agent", "sam", "--first", "--message", "/memory"))
    again = infos(
        memgpt("run", "--agent", "sam", "--persona", "memgpt_starter", "--human", "cs_phd", "--first", "--message", "/memory")
    )
    assert any(
        t.startswith("--persona 'memgpt_starter' is ignored: agent 'sam' already exists (created with persona 'sam_pov')")
        for t in again
    )
    assert any(t.startswith("--human 'cs_phd' is ignored") for t in again)
    same = infos(memgpt("run", "--agent", "sam", "--persona", "sam_pov", "--first", "--message", "/memory"))
    assert not any("is ignored" in t for t in same)


def test_a_context_window_the_backend_caps_is_reported() -> None:
    assert memgpt("configure", "--yes", "--backend", "scripted").returncode == 0
    result = memgpt("run", "--agent", "big", "--context-window", "100000", "--first", "--message", "/memory")
    (session, *_) = events(result)
    assert session["context_window"] == 8192
    assert "context window is 8192 tokens, not the 100000 asked for: the backend's model allows no more" in infos(result)


def test_model_endpoint_without_a_backend_that_takes_one_is_refused() -> None:
    result = memgpt("run", "--agent", "x", "--model-endpoint", "http://127.0.0.1:9", "--message", "hi")
    assert result.returncode == 2
    assert (
        "--model-endpoint needs --model-endpoint-type: the backend in use, 'llamacpp-embedded', runs in process" in result.stderr
    )
    assert "llamacpp" in result.stderr.split("server backends:")[1]
    bad = memgpt("run", "--agent", "x", "--backend", "llamacpp", "--model-endpoint", "not a url", "--message", "hi")
    assert bad.returncode == 2 and "'not a url' is not a server URL" in bad.stderr


def test_backend_and_wrapper_names_are_accepted_in_any_case() -> None:
    result = memgpt("configure", "--yes", "--backend", "SCRIPTED", "--model-wrapper", "ChatML-Grammar")
    assert result.returncode == 0, result.stderr
    session, *_ = events(memgpt("run", "--agent", "c", "--model-wrapper", "CHATML-grammar", "--first", "--message", "/memory"))
    assert (session["backend"], session["wrapper"]) == ("scripted", "chatml-grammar")


def test_generated_names_differ_within_one_second_and_skip_taken_ones() -> None:
    moment = datetime(2026, 12, 2, 1, 2, 3)
    first, second = new_agent_name(set(), now=moment, pid=101), new_agent_name(set(), now=moment, pid=102)
    assert first == "agent_20261202_010203_101" and second != first
    assert new_agent_name({first}, now=moment, pid=101) == "agent_20261202_010203_101_2"


def test_two_runs_started_together_create_two_agents() -> None:
    assert memgpt("configure", "--yes", "--backend", "scripted").returncode == 0
    # the database exists first: what is tested is the names (two first-ever opens race on the schema)
    assert memgpt("list", "agents").returncode == 0
    command = [sys.executable, str(LAUNCHER), "run", "--first", "--message", "/memory"]
    runs = [
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    names = set()
    for run in runs:
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, err
        names.add(json.loads(out.splitlines()[0])["agent"])
    assert len(names) == 2
    listed = json.loads(memgpt("list", "agents", "--json").stdout)
    assert {row["name"] for row in listed} == names
    assert home().is_dir()


def test_heartbeats_asked_for_in_a_scripted_run_are_reported_as_ignored() -> None:
    assert memgpt("configure", "--yes", "--backend", "scripted").returncode == 0
    notes = infos(memgpt("run", "--agent", "h", "--heartbeat-every", "1", "--first", "--message", "/memory"))
    assert any(t.startswith("--heartbeat-every is ignored: timed heartbeats are for interactive sessions") for t in notes)


def test_debug_writes_prompts_raw_output_and_token_counts_to_a_log_file_it_names() -> None:
    assert memgpt("configure", "--yes", "--backend", "scripted").returncode == 0
    result = memgpt("run", "--agent", "dbg", "--first", "--debug", "--message", "hello there")
    assert result.returncode == 0, result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("memgpt: debug log: ")]
    path = Path(line.removeprefix("memgpt: debug log: "))
    assert path.parent == home() / "logs" and (path.stat().st_mode & 0o777) == 0o600
    text = path.read_text(encoding="utf-8")
    assert "step prompt (attempt 1" in text and "hello there" in text  # the whole prompt, the user's words in it
    assert "raw output (finish" in text and "tokens: prompt" in text and '"send_message"' in text
    assert [e["type"] for e in events(result)][-1] == "turn"  # stdout stays JSON only
