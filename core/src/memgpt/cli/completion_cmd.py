"""``memgpt completion bash|zsh|fish``: the shell's completion script, and the completion of agent names.

The app is built without typer's ``--install-completion`` options (``add_completion=False``): they cost
every start-up a shell detection. The script printed here calls ``memgpt`` back with ``_MEMGPT_COMPLETE``
set; only then are typer's completion classes loaded (``prepare``).
"""

from __future__ import annotations

import os

import typer

from memgpt.cli.app import fail

PROG = "memgpt"
COMPLETE_VAR = "_MEMGPT_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def completing() -> bool:
    """Whether this process was started by the shell to complete a command line."""
    return bool(os.environ.get(COMPLETE_VAR))


def prepare() -> None:
    """Register typer's completion classes (the format its scripts expect); called only when completing."""
    from typer._completion_classes import completion_init

    completion_init()


def agent_names(incomplete: str) -> list[str]:
    """Saved agents whose name starts with ``incomplete`` (nothing when the store cannot be read)."""
    try:
        from memgpt.config import load_config
        from memgpt.session import open_storage

        storage = open_storage(load_config())
        try:
            return [r.name for r in storage.list_agents() if r.name.startswith(incomplete)]
        finally:
            storage.close()
    except Exception:  # a completion never prints an error into the user's command line
        return []


def completion(shell: str = typer.Argument(..., help="bash | zsh | fish")) -> None:
    """Print the shell completion script: `eval "$(memgpt completion bash)"` in ~/.bashrc, or save it where the
    shell looks (bash: ~/.local/share/bash-completion/completions/memgpt; zsh: _memgpt on $fpath; fish:
    ~/.config/fish/completions/memgpt.fish). Commands, options and agent names (--agent) complete."""
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        fail(f"unknown shell {shell!r}; choose one of: {', '.join(SHELLS)}", code=2)
    typer.echo(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell))
