"""Every command, run as the console script, against the inputs that used to end in a Python traceback:
a config file with a non-UTF-8 byte, a read-only MEMGPT_HOME, a ``\\xff`` byte on stdin, stdin closed
(``<&-``) and a backend plugin whose factory raises. Each run must end in one ``Error:`` line or succeed;
a traceback (or an "internal error", the last-resort catch) fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

LAUNCHER = Path(__file__).parent / "scripted_memgpt.py"


def memgpt(
    *args: str, home: Path, stdin: bytes | None = b"", close_stdin: bool = False, read_only: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the console script (with the test backends) as a user would."""
    command = [sys.executable, str(LAUNCHER), *args]
    if close_stdin:
        command = ["sh", "-c", 'exec "$0" "$@" <&-', *command]
    if read_only:
        command = read_only_wrapper(home) + command
    env = {**os.environ, "MEMGPT_HOME": str(home), "COLUMNS": "100"}
    env.pop("MEMGPT_TRACEBACK", None)
    result = subprocess.run(command, input=None if close_stdin else stdin, capture_output=True, env=env, timeout=180)
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")
    )


def read_only_wrapper(home: Path) -> list[str]:
    """A prefix that runs a command with ``home`` read-only: a read-only bind mount in a private mount
    namespace (root ignores permission bits), else the permission bits."""
    if os.geteuid() != 0:
        home.chmod(0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: cannot make a read-only home")
    return [
        "unshare",
        "-m",
        "sh",
        "-c",
        'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && shift && exec "$@"',
        str(home),
        "--",
    ]


def assert_clean(result: subprocess.CompletedProcess[str], what: str) -> None:
    output = result.stdout + result.stderr
    assert "Traceback (most recent call last)" not in output, f"{what}:\n{output}"
    assert "internal error" not in output, f"{what}:\n{output}"
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, f"{what}: exit {result.returncode} without one Error: line\n{output}"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Ren\xe9e lives in K\xf6ln and likes cr\xe8me br\xfbl\xe9e.".encode("latin-1"))
    notes = tmp_path / "notes.txt"
    notes.write_text("The tomatoes are planted along the south fence.")
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"format": "memgpt-agent", "version": 1, "agent": {"name": "x"')
    export = tmp_path / "export.json"
    export.write_text(
        json.dumps(
            {
                "format": "memgpt-agent",
                "version": 1,
                "agent": {"name": "sam", "settings": {}, "core_memory": {"persona": "p"}, "in_context": [0]},
                "messages": [{"role": "user", "content": "hello", "created_at": "2026-01-01T00:00:00+00:00"}],
                "embedder": None,
                "passages": [],
            }
        )
    )
    return {"latin1": latin1, "notes": notes, "damaged": damaged, "export": export, "out": tmp_path / "out.json"}


def commands(files: dict[str, Path]) -> list[list[str]]:
    return [
        ["--help"],
        ["plugins"],
        ["plugins", "--json"],
        ["configure"],
        ["configure", "--yes", "--backend", "scripted"],
        ["configure", "--yes", "--check"],
        ["list", "agents"],
        ["list", "agents", "--json"],
        ["list", "personas"],
        ["show", "agent", "sam"],
        ["show", "persona", "sam_pov"],
        ["add", "persona", "--name", "renee", "--file", str(files["latin1"])],
        ["add", "human", "--name", "bob", "--text", "Bob likes tea."],
        ["load", "--agent", "sam", str(files["notes"])],
        ["run", "--agent", "sam", "--first", "--message", "/memory"],
        ["run", "--agent", "sam", "--non-interactive"],
        ["run", "--first"],
        ["delete", "agent", "sam", "--yes"],
        ["export", "agent", "sam", "-o", str(files["out"])],
        ["import", str(files["export"]), "--name", "sam2"],
        ["import", str(files["export"])],
        ["import", str(files["damaged"])],
        ["search", "--agent", "sam", "hello"],
        ["search", "--agent", "sam", "--archival", "hello", "--json"],
        ["completion", "bash"],
        ["completion", "tcsh"],
        # bytes that are not UTF-8 in arguments (Python hands them over as lone surrogates)
        ["run", "--agent", "b\udcff", "--first", "--message", "caf\udcff"],
        ["show", "agent", "b\udcff"],
        ["add", "human", "--name", "x", "--text", "caf\udcff"],
    ]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a config on the scripted backend and an agent called sam (made once, copied per run)."""
    home = tmp_path_factory.mktemp("template") / "home"
    home.mkdir()
    assert memgpt("configure", "--yes", "--backend", "scripted", home=home).returncode == 0
    created = memgpt("run", "--agent", "sam", "--first", "--message", "hello", home=home)
    assert created.returncode == 0, created.stderr
    return home


@pytest.fixture
def prepared_home(template: Path) -> Callable[[Path], Path]:
    def copy(where: Path) -> Path:
        shutil.copytree(template, where / "home")
        return where / "home"

    return copy


def break_config(home: Path) -> None:
    path = home / "config.toml"
    path.write_bytes(path.read_bytes() + b"\n# caf\xe9\n")


def words_embedder(home: Path) -> None:
    """The launcher's ``words`` test embedder instead of the real model, which takes seconds to load in every
    ``memgpt load`` and tells these conditions nothing; the ``plain`` sweep keeps the real one, so the console
    script loads with the default embedder once."""
    text = (home / "config.toml").read_text().replace('provider = "sentence-transformers"', 'provider = "words"')
    (home / "config.toml").write_text(text)


def broken_backend(home: Path) -> None:
    text = (home / "config.toml").read_text().replace('backend = "scripted"', 'backend = "broken"')
    (home / "config.toml").write_text(text)


CONDITIONS: dict[str, tuple[Callable[[Path], None] | None, dict[str, object]]] = {
    "plain": (None, {}),
    "config-not-utf8": (break_config, {}),
    "read-only-home": (None, {"read_only": True}),
    "stdin-xff": (None, {"stdin": b"caf\xff ok\n/memory\n"}),
    "stdin-closed": (None, {"close_stdin": True}),
    "backend-factory-raises": (broken_backend, {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_no_command_ends_in_a_traceback(
    condition: str, tmp_path: Path, files: dict[str, Path], prepared_home: Callable[[Path], Path]
) -> None:
    setup, options = CONDITIONS[condition]

    def run(numbered: tuple[int, list[str]]) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        i, args = numbered
        (tmp_path / str(i)).mkdir()
        home = prepared_home(tmp_path / str(i))
        if condition != "plain":
            words_embedder(home)
        if setup is not None:
            setup(home)
        return args, memgpt(*args, home=home, **options)  # type: ignore[arg-type]

    # Every command has its own home, so the runs are independent: as many at once as there are cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for args, result in pool.map(run, enumerate(commands(files))):
            assert_clean(result, f"{condition}: memgpt {' '.join(args)}")


def test_a_non_utf8_byte_on_stdin_keeps_the_message(tmp_path: Path, prepared_home: Callable[[Path], Path]) -> None:
    home = prepared_home(tmp_path)
    result = memgpt("run", "--agent", "sam", "--first", "--non-interactive", home=home, stdin=b"caf\xff au lait\nsecond line\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(line["type"] == "info" and "input line 1 is not UTF-8 (byte 0xff)" in line["text"] for line in lines)
    assert [line["type"] for line in lines].count("turn") == 2  # both messages were sent
    from memgpt.storage.sqlite import SQLiteStorage

    storage = SQLiteStorage(home / "memgpt.db")
    try:
        said = [m.content for m in storage.recent_messages("sam", 50) if m.role == "user"]
    finally:
        storage.close()
    assert any("caf\ufffd au lait" in (text or "") for text in said) and any("second line" in (text or "") for text in said)


def test_configure_yes_rewrites_a_config_that_is_not_utf8(tmp_path: Path, prepared_home: Callable[[Path], Path]) -> None:
    home = prepared_home(tmp_path)
    break_config(home)
    listed = memgpt("list", "agents", home=home)
    assert (
        listed.returncode == 1 and "is not UTF-8 text (byte 0xe9" in listed.stderr and "memgpt configure --yes" in listed.stderr
    )
    repaired = memgpt("configure", "--yes", home=home)
    assert repaired.returncode == 0, repaired.stderr
    assert "starting from defaults" in repaired.stderr
    assert memgpt("list", "agents", home=home).returncode == 0


def test_a_read_only_home_is_one_line_naming_the_folder(tmp_path: Path, prepared_home: Callable[[Path], Path]) -> None:
    home = prepared_home(tmp_path)
    result = memgpt("add", "human", "--name", "ro", "--text", "x", home=home, read_only=True)
    assert result.returncode != 0
    assert_clean(result, "add on a read-only home")
    assert str(home) in result.stderr


def test_a_backend_factory_that_raises_names_the_plugin(tmp_path: Path, prepared_home: Callable[[Path], Path]) -> None:
    home = prepared_home(tmp_path)
    broken_backend(home)
    result = memgpt("run", "--agent", "newcomer", "--first", "--message", "hi", home=home)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: backend 'broken' (plugin 'test-backends') failed to start: RuntimeError: the broken test backend always fails"
        " — see `memgpt plugins`, or choose another with `memgpt configure`"
    )


def test_arguments_that_are_not_utf8_are_one_line_errors(tmp_path: Path, prepared_home: Callable[[Path], Path]) -> None:
    home = prepared_home(tmp_path)
    run = memgpt("run", "--agent", "b\udcff", "--first", "--message", "hi", home=home)
    assert run.returncode == 1 and run.stderr.strip() == "Error: 'b\\xff' is not UTF-8 text; give names and text in UTF-8"
    add = memgpt("add", "human", "--name", "x", "--text", "caf\udcff", home=home)
    assert add.returncode == 2 and "--text is not UTF-8 (byte 0xff)" in add.stderr


def test_stdin_closed_runs_the_scripted_session_on_nothing(tmp_path: Path, prepared_home: Callable[[Path], Path]) -> None:
    home = prepared_home(tmp_path)
    result = memgpt("run", "--agent", "sam", "--first", home=home, close_stdin=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["type"] == "session"


INTERACTIVE = (["configure"], ["run"], ["run", "--agent", "sam"], ["delete", "agent", "sam"])


@pytest.mark.slow
@pytest.mark.parametrize("condition", ["plain", "config-not-utf8", "read-only-home", "backend-factory-raises"])
def test_no_interactive_command_ends_in_a_traceback(
    condition: str, tmp_path: Path, prepared_home: Callable[[Path], Path]
) -> None:
    """The same in a terminal (questions asked, the chat prompt shown): every question gets its default,
    the chat gets /exit."""
    pexpect = pytest.importorskip("pexpect")
    for i, args in enumerate(INTERACTIVE):
        (tmp_path / str(i)).mkdir()
        home = prepared_home(tmp_path / str(i))
        setup, options = CONDITIONS[condition]
        if setup is not None:
            setup(home)
        command = [sys.executable, str(LAUNCHER), *args]
        if options.get("read_only"):
            command = read_only_wrapper(home) + command
        env = {**os.environ, "MEMGPT_HOME": str(home), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
        child = pexpect.spawn(
            command[0], command[1:], env=env, encoding="utf-8", codec_errors="replace", timeout=120, dimensions=(40, 120)
        )
        seen = []
        while True:
            answer = child.expect([pexpect.EOF, r"you(\x1b\[0m)?:", r": "])
            seen.append(child.before + (child.after if isinstance(child.after, str) else ""))
            if answer == 0:
                break
            child.send("/exit\r" if answer == 1 else "\r")
        child.close()
        output = "".join(seen)
        assert "Traceback (most recent call last)" not in output and "internal error" not in output, (
            f"{condition}: {args}\n{output}"
        )
