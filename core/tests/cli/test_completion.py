"""``memgpt completion bash|zsh|fish``: the printed script, sourced by a real bash, completes commands and
agent names (the console script with the test backends stands in for ``memgpt`` on PATH)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LAUNCHER = Path(__file__).parent / "scripted_memgpt.py"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """PATH with a ``memgpt`` that runs the test console script; a home with agents sam and sally."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "memgpt"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{LAUNCHER}" "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "MEMGPT_HOME": str(tmp_path / "home")}
    from memgpt.storage.base import AgentRecord
    from memgpt.storage.sqlite import SQLiteStorage

    (tmp_path / "home").mkdir()
    storage = SQLiteStorage(tmp_path / "home" / "memgpt.db")
    try:
        for name in ("sam", "sally", "bob"):
            storage.save_agent(AgentRecord(name=name))
    finally:
        storage.close()
    return env


def bash_complete(env: dict[str, str], *words: str) -> list[str]:
    """What bash offers for the command line ``words`` (the last one being completed), with the script of
    ``memgpt completion bash`` loaded as a user's ~/.bashrc loads it."""
    script = (
        'eval "$(memgpt completion bash)"\n'
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        '_memgpt_completion memgpt\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_and_agent_names(env: dict[str, str]) -> None:
    assert {"search", "show"} <= set(bash_complete(env, "memgpt", "s"))
    assert bash_complete(env, "memgpt", "run", "--agent", "sa") == ["sally", "sam"]
    assert bash_complete(env, "memgpt", "search", "--agent", "b") == ["bob"]
    assert bash_complete(env, "memgpt", "export", "agent", "") == ["bob", "sally", "sam"]


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete_bash"), ("zsh", "#compdef memgpt"), ("fish", "complete_fish")])
def test_completion_prints_each_shells_script(shell: str, marker: str, env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, str(LAUNCHER), "completion", shell], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and marker in result.stdout and "_MEMGPT_COMPLETE" in result.stdout


def test_zsh_completes_agent_names(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, str(LAUNCHER)],
        capture_output=True,
        text=True,
        env={**env, "_MEMGPT_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "memgpt run --agent sa"},
    )
    assert result.returncode == 0 and '"sally"' in result.stdout and '"sam"' in result.stdout and "bob" not in result.stdout


def test_an_unknown_shell_is_one_line(env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, str(LAUNCHER), "completion", "tcsh"], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: unknown shell 'tcsh'; choose one of: bash, zsh, fish"
