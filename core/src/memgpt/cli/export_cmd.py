"""``memgpt export agent NAME`` and ``memgpt import FILE``: an agent as one JSON file.

The file (format ``memgpt-agent``, version 1) holds the agent record (settings with its model settings and
any pending message, core memory, which messages are in the context window), every recall message with its
time and function call, and every archival passage with its text, metadata and embedding (base64 of
little-endian float32, with the embedder's name and dimensions). Only the ``Storage`` protocol is used, so
it works with any storage engine. An import is one storage transaction: a failed import leaves nothing.

The export writes the embeddings the store holds (``Storage.passage_batches``, read a batch at a time),
labelled with the configured embedder (the one the agent's archival memory was built with) when their size
is that embedder's; nothing is embedded. An import stores the file's embeddings as they are when its
embedder has the same name and dimensions, and embeds the passages again (and says so) when it differs, or
when the file's embeddings carry no embedder's name. Passage times are not kept by ``add_passages``: an
imported passage is dated at the import.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer

from memgpt.cli.app import fail
from memgpt.cli.completion_cmd import agent_names

FORMAT = "memgpt-agent"
VERSION = 1
#: Passages embedded per call when an import embeds them again.
EMBED_BATCH = 64


def _embedder_name(config: Any) -> str:
    from memgpt.errors import UnknownNameError
    from memgpt.plugins import get_registry

    model = config.embedding.model
    if model is None:
        try:
            model = get_registry().embedder(config.embedding.provider).default_model
        except UnknownNameError:
            model = None
    return f"{config.embedding.provider}/{model or 'default'}"


def open_embedder(config: Any) -> Any:
    """The configured embedder (the one the agent's archival memory is searched with)."""
    from memgpt.plugins import get_registry

    return get_registry().embedder(config.embedding.provider).factory(config.embedding.model)


def _embed(embedder: Any, texts: list[str]) -> Any:
    import numpy as np

    parts = [np.asarray(embedder.embed(texts[i : i + EMBED_BATCH]), dtype=np.float32) for i in range(0, len(texts), EMBED_BATCH)]
    return np.vstack(parts) if parts else np.zeros((0, int(embedder.dimensions)), dtype=np.float32)


def export_agent(storage: Any, config: Any, name: str) -> dict[str, Any]:
    """The export document of agent ``name`` (which must exist)."""
    import base64

    from memgpt import __version__

    record = storage.get_agent(name)
    if record is None:
        raise LookupError(name)
    count = storage.count_messages(name)
    messages = storage.recent_messages(name, count) if count else []  # the whole conversation, oldest first
    index = {m.id: i for i, m in enumerate(messages)}
    passages: list[dict[str, Any]] = []
    dimensions: int | None = None
    for batch, vectors in storage.passage_batches(name):
        dimensions = int(vectors.shape[1])
        passages.extend(
            {
                "text": p.text,
                "metadata": p.metadata,
                "created_at": p.created_at.isoformat(),
                "embedding": base64.b64encode(vectors[i].astype("<f4").tobytes()).decode("ascii"),
            }
            for i, p in enumerate(batch)
        )
    embedder_info: dict[str, Any] | None = None
    if dimensions is not None:
        # The stored embeddings are the configured embedder's when they have its size; else whose they are is
        # unknown (no name), and an import embeds them again.
        same_size = int(open_embedder(config).dimensions) == dimensions
        embedder_info = {"name": _embedder_name(config) if same_size else None, "dimensions": dimensions}
    return {
        "format": FORMAT,
        "version": VERSION,
        "memgpt_version": __version__,
        "exported_at": datetime.now().astimezone().isoformat(),
        "agent": {
            "name": record.name,
            "settings": record.settings,
            "core_memory": record.core_memory,
            # positions in "messages", not storage ids: an import gives the messages new ids
            "in_context": [index[i] for i in record.in_context if i in index],
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(),
        },
        "messages": [m.model_dump(mode="json", exclude={"id"}) for m in messages],
        "embedder": embedder_info,
        "passages": passages,
    }


class BadExport(ValueError):
    """The file is not a readable export of this version (the message says why, in one line)."""


def _parse(data: Any) -> tuple[Any, list[Any], list[dict[str, Any]], Any, dict[str, Any] | None]:
    """Validate an export document: (record, messages, passages, embeddings or None, embedder info)."""
    import base64

    import numpy as np

    from memgpt.contract.types import Message
    from memgpt.storage.base import AgentRecord

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadExport('not a memgpt agent export (no "format": "memgpt-agent")')
    if data.get("version") != VERSION:
        raise BadExport(f"export format version {data.get('version')!r}; this memgpt reads version {VERSION}")
    try:
        agent = data["agent"]
        messages = [Message.model_validate(m) for m in data["messages"]]
        in_context = [int(i) for i in agent["in_context"]]
        if any(not 0 <= i < len(messages) for i in in_context):
            raise BadExport("damaged export: agent.in_context names a message the file does not have")
        settings, core = agent["settings"], agent["core_memory"]
        if not isinstance(settings, dict) or not isinstance(core, dict) or not all(isinstance(v, str) for v in core.values()):
            raise BadExport("damaged export: agent.settings and agent.core_memory must be objects (core memory of text)")
        record = AgentRecord(
            name=str(agent["name"]),
            settings=settings,
            core_memory=core,
            in_context=in_context,
        )
        if agent.get("created_at"):
            record.created_at = datetime.fromisoformat(agent["created_at"])
        passages = list(data["passages"])
        embedder = data.get("embedder")
        for p in passages:
            if not isinstance(p, dict) or not isinstance(p.get("text"), str) or not isinstance(p.get("metadata", {}), dict):
                raise BadExport("damaged export: a passage without text")
        vectors = None
        if passages and isinstance(embedder, dict) and all(p.get("embedding") for p in passages):
            dims = int(embedder["dimensions"])
            rows = [np.frombuffer(base64.b64decode(p["embedding"], validate=True), dtype="<f4") for p in passages]
            if dims < 1 or any(r.shape != (dims,) for r in rows):
                raise BadExport(f"damaged export: a passage's embedding does not have {dims} dimensions")
            vectors = np.vstack(rows).astype(np.float32)
    except BadExport:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise BadExport(f"damaged export ({what})") from None
    return record, messages, passages, vectors, embedder if isinstance(embedder, dict) else None


def import_agent(storage: Any, config: Any, data: Any, name: str | None = None) -> tuple[str, int, int, bool]:
    """Create the agent of export ``data`` (under ``name`` when given) in one transaction; returns
    (name, messages, passages, whether the passages were embedded again)."""
    record, messages, passages, vectors, embedder_info = _parse(data)
    if name is not None:
        record.name = name
    if storage.get_agent(record.name) is not None:
        raise FileExistsError(record.name)
    reembedded = False
    if passages:
        embedder = open_embedder(config)
        same = (
            vectors is not None
            and embedder_info is not None
            and embedder_info.get("name") == _embedder_name(config)
            and int(embedder.dimensions) == vectors.shape[1]
        )
        if not same:
            vectors = _embed(embedder, [p["text"] for p in passages])
            reembedded = True
    positions = record.in_context
    record.in_context = []
    with storage.transaction():
        storage.save_agent(record)
        stored = storage.add_messages(record.name, messages) if messages else []
        record.in_context = [stored[i].id for i in positions]
        storage.save_agent(record)
        if passages:
            storage.add_passages(record.name, [p["text"] for p in passages], vectors, [p.get("metadata") or {} for p in passages])
    return record.name, len(messages), len(passages), reembedded


def export_command(
    kind: str = typer.Argument(..., help="agent"),
    name: str = typer.Argument(..., help="Name of the agent (see `memgpt list agents`).", autocompletion=agent_names),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: NAME.json; - for stdout)."),
) -> None:
    """Write an agent (settings, core memory, the whole conversation, archival memory) to one JSON file."""
    from memgpt.config import load_config
    from memgpt.session import open_storage

    if kind != "agent":
        fail(f"unknown kind {kind!r}; only `memgpt export agent NAME` is supported", code=2)
    config = load_config()
    storage = open_storage(config)
    try:
        try:
            data = export_agent(storage, config, name)
        except LookupError:
            fail(f"no agent named {name!r} (see `memgpt list agents`)")
    finally:
        storage.close()
    text = json.dumps(data, ensure_ascii=False, indent=1)
    if output is not None and str(output) == "-":
        sys.stdout.write(text + "\n")
        return
    path = output or Path(f"{name}.json")
    try:
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path} ({exc.strerror or exc})")
    typer.echo(f"Exported agent {name!r} ({len(data['messages'])} messages, {len(data['passages'])} passages) to {path}")


def import_command(
    file: Path = typer.Argument(..., help="A file written by `memgpt export agent`."),
    name: Optional[str] = typer.Option(None, "--name", help="Create the agent under this name (default: the exported name)."),
) -> None:
    """Create an agent from a file written by `memgpt export agent` (nothing is created if it fails)."""
    from memgpt.config import load_config
    from memgpt.session import agent_lock, open_storage

    if name is not None and not name.strip():
        fail("--name must not be empty", code=2)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file} ({exc.strerror or exc})")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        fail(f"{file} is not a memgpt agent export (damaged JSON: {str(exc).splitlines()[0]})")
    config = load_config()
    storage = open_storage(config)
    try:
        target = name or (
            data.get("agent", {}).get("name") if isinstance(data, dict) and isinstance(data.get("agent"), dict) else None
        )
        lock = agent_lock(storage, str(target)).acquire() if isinstance(target, str) and target else None
        try:
            created, n_messages, n_passages, reembedded = import_agent(storage, config, data, name)
        except BadExport as exc:
            fail(f"{file}: {exc}")
        except FileExistsError:
            fail(f"an agent named {target!r} already exists; import it under another name with --name NEW")
        finally:
            if lock is not None:
                lock.release()
    finally:
        storage.close()
    again = (
        f"; passages embedded again with {_embedder_name(config)}: the file's embeddings are not from it" if reembedded else ""
    )
    typer.echo(f"Imported agent {created!r} ({n_messages} messages, {n_passages} passages{again})")
