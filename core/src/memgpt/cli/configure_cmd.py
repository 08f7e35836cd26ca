"""``memgpt configure``: choose backend, endpoint, wrapper, context, embeddings, defaults and storage.

Every choice list comes from what plugins registered (and the persona / human / preset files). Each
question has a flag, so scripts and tests configure without a terminal (``--yes`` or no TTY = ask nothing).
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from memgpt.cli.app import fail, stdin_is_terminal


def _choose(label: str, choices: list[str], default: str | None, interactive: bool) -> str:
    if not choices:
        fail(f"no {label} is available: install a plugin that provides one (see `memgpt plugins`)")
    if default not in choices:
        default = choices[0]
    if not interactive:
        return default  # type: ignore[return-value]
    from rich.prompt import Prompt

    answer = Prompt.ask(f"Select {label}", choices=choices, default=default, case_sensitive=False)
    return next((c for c in choices if c.casefold() == str(answer).casefold()), answer)


def _context_window(answer: str) -> int | None:
    """The answer to the context-window question: blank = ask the backend, else a whole number >= 256."""
    text = str(answer).strip()
    if not text:
        return None
    if not text.isdigit():
        raise typer.BadParameter(f"{text!r} is not a whole number of tokens (e.g. 8192), or leave it blank")
    if int(text) < 256:
        raise typer.BadParameter(f"{text} tokens is too small; give at least 256 (e.g. 8192), or leave it blank")
    return int(text)


def _endpoint(answer: str) -> str:
    from memgpt.config import check_endpoint

    try:
        return check_endpoint(str(answer))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _check_name(kind: str, value: str | None, choices: list[str]) -> None:
    if value is not None and value not in choices:
        fail(f"unknown {kind} {value!r}; choose one of: {', '.join(sorted(choices)) or '(none installed)'}", code=2)


def configure(
    model_endpoint_type: Optional[str] = typer.Option(None, "--model-endpoint-type", "--backend", help="LLM backend name."),
    model_endpoint: Optional[str] = typer.Option(None, "--model-endpoint", help="Server URL (server backends)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name, or GGUF path for in-process backends."),
    model_wrapper: Optional[str] = typer.Option(None, "--model-wrapper", help="Prompt wrapper name."),
    context_window: Optional[int] = typer.Option(
        None, "--context-window", min=256, help="Context size in tokens (default: ask the backend)."
    ),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for in-process models."),
    max_tokens: Optional[int] = typer.Option(
        None, "--max-tokens", min=16, help="Tokens reserved for each model turn (default 1024)."
    ),
    embedding_provider: Optional[str] = typer.Option(None, "--embedding-provider", help="Embedder name."),
    embedding_model: Optional[str] = typer.Option(None, "--embedding-model", help="Embedding model name or path."),
    preset: Optional[str] = typer.Option(None, "--preset"),
    persona: Optional[str] = typer.Option(None, "--persona"),
    human: Optional[str] = typer.Option(None, "--human"),
    storage: Optional[str] = typer.Option(None, "--storage", help="Storage engine name."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="API key for the backend (stored 0600, never printed)."),
    check: bool = typer.Option(False, "--check", help="Probe the backend before saving."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Ask nothing: take flags, then saved values, then defaults."),
) -> None:
    """Write ~/.memgpt/config.toml (or $MEMGPT_HOME/config.toml)."""
    from memgpt import catalog
    from memgpt.config import load_config, save_api_key, save_config
    from memgpt.errors import ConfigError
    from memgpt.plugins import get_registry

    registry = get_registry()
    interactive = not yes and stdin_is_terminal()
    if interactive:
        from memgpt.cli.line_input import enable_line_editing

        enable_line_editing()
    try:
        config = load_config()
    except ConfigError as exc:
        if not interactive and not yes:
            raise
        typer.echo(f"Warning: {exc}; starting from defaults.", err=True)
        from memgpt.config import Config

        config = Config()

    model_endpoint_type = registry.canonical("backends", model_endpoint_type) if model_endpoint_type else None
    model_wrapper = registry.canonical("wrappers", model_wrapper) if model_wrapper else None
    if model_endpoint is not None:
        from memgpt.config import check_endpoint

        try:
            model_endpoint = check_endpoint(model_endpoint)
        except ValueError as exc:
            fail(f"--model-endpoint: {exc}", code=2)
    backends = sorted(registry.backends)
    wrappers = sorted(registry.wrappers)
    embedders = sorted(registry.embedders)
    engines = sorted(registry.storage)
    for kind, value, choices in (
        ("backend", model_endpoint_type, backends),
        ("wrapper", model_wrapper, wrappers),
        ("embedder", embedding_provider, embedders),
        ("storage engine", storage, engines),
        ("preset", preset, catalog.names("presets")),
        ("persona", persona, catalog.names("personas")),
        ("human", human, catalog.names("humans")),
    ):
        _check_name(kind, value, choices)

    def pick(label: str, flag: Any, choices: list[str], current: str | None) -> str:
        return flag if flag is not None else _choose(label, choices, current, interactive)

    m = config.model
    backend = pick("LLM backend", model_endpoint_type, backends, m.backend)
    spec = registry.backend(backend)
    if model_endpoint is not None and not spec.needs_endpoint:
        servers = ", ".join(n for n in backends if registry.backends[n].needs_endpoint) or "(none installed)"
        fail(
            f"--model-endpoint does not apply to backend {backend!r}, which runs in process; "
            f"give --model-endpoint-type with a server backend ({servers})",
            code=2,
        )
    endpoint = model_endpoint
    if endpoint is None and spec.needs_endpoint:
        default = m.endpoint if (m.backend == backend and m.endpoint) else spec.default_endpoint
        endpoint = typer.prompt("Model endpoint", default=default, value_proc=_endpoint) if interactive else default
    if spec.needs_endpoint and not endpoint:
        fail(f"backend {backend!r} needs --model-endpoint (a server URL)", code=2)
    if model is None and interactive:
        model = (
            typer.prompt("Model (name or GGUF path; blank = backend default)", default=m.model or "", show_default=bool(m.model))
            or None
        )
    elif model is None and m.backend == backend:
        model = m.model
    wrapper = pick("model wrapper", model_wrapper, wrappers, m.wrapper)
    if context_window is None and interactive:
        context_window = typer.prompt(
            "Context window (blank = ask the backend)",
            default=str(m.context_window or ""),
            show_default=False,
            value_proc=_context_window,
        )
    elif context_window is None:
        context_window = m.context_window

    e = config.embedding
    provider = pick("embedding provider", embedding_provider, embedders, e.provider) if embedders else e.provider
    d = config.defaults
    updated = config.model_copy(
        update={
            "model": m.model_copy(
                update={
                    "backend": backend,
                    "endpoint": endpoint if spec.needs_endpoint else None,
                    "model": model,
                    "wrapper": wrapper,
                    "context_window": context_window,
                    "threads": threads if threads is not None else m.threads,
                    "max_tokens": max_tokens if max_tokens is not None else m.max_tokens,
                }
            ),
            "embedding": e.model_copy(
                update={"provider": provider, "model": embedding_model or (e.model if provider == e.provider else None)}
            ),
            "defaults": d.model_copy(
                update={
                    "preset": pick("preset", preset, catalog.names("presets"), d.preset),
                    "persona": pick("persona", persona, catalog.names("personas"), d.persona),
                    "human": pick("human", human, catalog.names("humans"), d.human),
                }
            ),
            "storage": config.storage.model_copy(
                update={"engine": pick("storage", storage, engines, config.storage.engine) if engines else config.storage.engine}
            ),
        }
    )
    # Re-validate the whole model: model_copy(update=...) skips validation.
    from memgpt.config import Config

    updated = Config.model_validate(updated.model_dump())
    if api_key is not None:
        save_api_key(backend, api_key)
    if check:
        from memgpt.runtime import open_backend

        status = open_backend(updated).check()
        typer.echo(status.line())
        if not status.ok:
            fail("backend check failed; config not saved")
    path = save_config(updated)
    typer.echo(f"Saved {path}")
