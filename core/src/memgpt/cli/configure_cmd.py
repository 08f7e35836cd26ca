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
        return default
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


def _storage_settings(current: Any, engine: str, uri: str | None, registry: Any) -> Any:
    """The storage section for ``engine``: the URI given (password already split off), else the saved one
    if the engine is unchanged; an engine that needs a URI and has none is refused."""
    if uri is None and engine == current.engine:
        uri = current.uri
    spec = registry.storage.get(engine)
    if spec is not None and spec.needs_uri and not uri:
        fail(f"storage {engine!r} needs --storage-uri (e.g. postgresql://user:password@host:5432/memgpt)", code=2)
    return current.model_copy(update={"engine": engine, "uri": uri})


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
    storage_uri: Optional[str] = typer.Option(
        None, "--storage-uri", help="The storage engine's database, e.g. postgresql://user:password@host/db (password kept 0600)."
    ),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="API key for the backend (stored 0600, never printed)."),
    check: bool = typer.Option(
        False, "--check", help="Probe the configured backend (or the one the flags name) and report; saves nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="With --check: the report as JSON."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Ask nothing: take flags, then saved values, then defaults."),
) -> None:
    """Write ~/.memgpt/config.toml (or $MEMGPT_HOME/config.toml)."""
    if check:
        check_backend(model_endpoint_type, model_endpoint, model, context_window, threads, api_key, as_json)
        return
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
    uri_password: str | None = None
    if storage_uri is not None:
        from memgpt.config import split_uri_password

        try:
            storage_uri, uri_password = split_uri_password(storage_uri)
        except ValueError as exc:
            fail(f"--storage-uri: {exc}", code=2)

    def pick(label: str, flag: Any, choices: list[str], current: str | None) -> str:
        return flag if flag is not None else _choose(label, choices, current, interactive)

    m = config.model
    if interactive and model_endpoint_type is None:
        show_backends(registry)
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
            "storage": _storage_settings(
                config.storage,
                pick("storage", storage, engines, config.storage.engine) if engines else config.storage.engine,
                storage_uri,
                registry,
            ),
        }
    )
    # Re-validate the whole model: model_copy(update=...) skips validation.
    from memgpt.config import Config

    updated = Config.model_validate(updated.model_dump())
    if api_key is not None:
        save_api_key(backend, api_key)
    if storage_uri is not None:
        from memgpt.config import save_storage_password

        save_storage_password(updated.storage.engine, uri_password)
    path = save_config(updated)
    typer.echo(f"Saved {path}")


# -- `memgpt configure --check` / `memgpt doctor` and the backend list (memgpt.doctor does the probing) ----------


def show_backends(registry: Any) -> None:
    """Every installed backend with its default endpoint (or "in process") and what it is."""
    typer.echo("Installed backends:")
    for name in sorted(registry.backends):
        spec = registry.backends[name]
        where = spec.default_endpoint if spec.needs_endpoint else "in process"
        typer.echo(f"  {name:<18} {where or '(give --model-endpoint)':<24} {spec.description}".rstrip())


def check_backend(
    backend: Optional[str],
    endpoint: Optional[str],
    model: Optional[str],
    context_window: Optional[int],
    threads: Optional[int],
    api_key: Optional[str],
    as_json: bool,
) -> None:
    """Probe the configured backend, or the one the flags name, print the report, exit 1 on any problem."""
    from pydantic import SecretStr

    from memgpt.config import ModelSettings, check_endpoint, load_config
    from memgpt.doctor import doctor
    from memgpt.plugins import get_registry
    from memgpt.session import backend_settings

    registry = get_registry()
    saved = load_config().model
    name = registry.canonical("backends", backend) if backend else saved.backend
    _check_name("backend", name, sorted(registry.backends))
    spec = registry.backend(name)
    same = name == saved.backend
    if endpoint is not None:
        if not spec.needs_endpoint:
            fail(f"--model-endpoint does not apply to backend {name!r}, which runs in process", code=2)
        try:
            endpoint = check_endpoint(endpoint)
        except ValueError as exc:
            fail(f"--model-endpoint: {exc}", code=2)
    elif spec.needs_endpoint:
        endpoint = (saved.endpoint if same else None) or spec.default_endpoint
        if not endpoint:
            fail(f"backend {name!r} needs --model-endpoint (a server URL)", code=2)
    settings = backend_settings(
        ModelSettings.model_validate(
            {
                **saved.model_dump(),
                "backend": name,
                "endpoint": endpoint if spec.needs_endpoint else None,
                "model": model if model is not None else (saved.model if same else None),
                "context_window": context_window if context_window is not None else (saved.context_window if same else None),
                "threads": threads if threads is not None else saved.threads,
            }
        )
    )
    if api_key is not None:
        settings = settings.model_copy(update={"api_key": SecretStr(api_key)})
    if not as_json:
        where = endpoint if spec.needs_endpoint else "in process"
        typer.echo(f"Checking {name} ({where}): a few tiny completions, this may take a minute on a slow server...", err=True)
    report = doctor(spec, settings, fix_command=f"memgpt configure --backend {name}")
    typer.echo(report.to_json() if as_json else "\n".join(report.lines()))
    problems = sum(p.severity == "problem" for p in report.problems)
    if problems:
        fail(
            f"{problems} problem{'s' * (problems != 1)} found with backend {name!r}"
            + ("" if as_json else "; see the fixes above")
        )


def doctor_command(
    backend: Optional[str] = typer.Option(
        None, "--backend", "--model-endpoint-type", help="Backend to check (default: the configured one)."
    ),
    model_endpoint: Optional[str] = typer.Option(None, "--model-endpoint", help="Server URL to check."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name, or GGUF path for in-process backends."),
    context_window: Optional[int] = typer.Option(None, "--context-window", min=256, help="Context size to check against."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for in-process models."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="API key for this check (not saved)."),
    as_json: bool = typer.Option(False, "--json", help="The report as JSON."),
) -> None:
    """Probe the configured backend (same as `memgpt configure --check`): reachable, model, context, tokenizer, constraints."""
    check_backend(backend, model_endpoint, model, context_window, threads, api_key, as_json)
