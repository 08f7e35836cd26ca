"""The PostgreSQL schema, its version table and the migrations that bring an older database up to date.

``MIGRATIONS[i]`` turns a version-``i`` database into version ``i + 1`` (version 0 = no memgpt tables).
Each runs in one transaction together with the version bump, under a session advisory lock, and reads
the version again under that lock: when several processes (or machines) open a new database at
once, each migration runs once, and an interrupted one leaves the previous version (PostgreSQL's DDL is
transactional). To change the schema, append a function; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Migration = Callable[[Any], None]  # takes a psycopg.Connection inside the migration's transaction

#: Key of the advisory lock migrations run under (the (int, int) form: a key space apart from agents' locks).
MIGRATION_LOCK = (0x6D656D67, 1)  # "memg", 1

#: The text-search configuration recall uses: English stemming (Snowball) and no stop words, as SQLite's
#: ``porter unicode61`` tokenizer (a query for "the" finds "the", not nothing).
TEXT_SEARCH = "memgpt_english"


def create_v1(conn: Any) -> None:
    """pgvector, the recall text-search configuration, agents, messages (+ GIN full-text index) and passages."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.execute("CREATE TEXT SEARCH DICTIONARY memgpt_english_stem (TEMPLATE = snowball, LANGUAGE = english)")
    conn.execute(f"CREATE TEXT SEARCH CONFIGURATION {TEXT_SEARCH} (COPY = english)")
    conn.execute(
        f"ALTER TEXT SEARCH CONFIGURATION {TEXT_SEARCH} ALTER MAPPING "
        "FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part WITH memgpt_english_stem"
    )
    # JSON kept as text, as written: jsonb would reorder keys (core memory blocks have an order).
    conn.execute(
        """
        CREATE TABLE agents (
            name text PRIMARY KEY,
            settings text NOT NULL,
            core_memory text NOT NULL,
            in_context text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        )
        """
    )
    # An identity column never hands out an id twice, so a stale list of ids cannot point at a newer message.
    conn.execute(
        """
        CREATE TABLE messages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            agent text NOT NULL REFERENCES agents(name) ON DELETE CASCADE,
            role text NOT NULL,
            content text,
            function_call text,
            name text,
            created_at timestamptz NOT NULL,
            search_text text,
            search_vector tsvector
        )
        """
    )
    conn.execute("CREATE INDEX messages_agent_id ON messages (agent, id)")
    conn.execute("CREATE INDEX messages_agent_created ON messages (agent, created_at) WHERE search_text IS NOT NULL")
    conn.execute("CREATE INDEX messages_search ON messages USING gin (search_vector)")
    # Embeddings of any size (each agent keeps one); the HNSW indexes are per size, made on first use.
    conn.execute(
        """
        CREATE TABLE passages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            agent text NOT NULL REFERENCES agents(name) ON DELETE CASCADE,
            text text NOT NULL,
            embedding vector NOT NULL,
            dims integer NOT NULL,
            created_at timestamptz NOT NULL,
            metadata text NOT NULL DEFAULT '{}'
        )
        """
    )
    conn.execute("CREATE INDEX passages_agent_id ON passages (agent, id)")


def passage_counts_v2(conn: Any) -> None:
    """``agents.passage_count``: how many passages the agent has, so that archival search need not count them
    (it picks the exact scan or the HNSW index by it), filled in here for the agents already stored.
    ``add_passages`` raises it in its insert's transaction, by one ``UPDATE`` for the whole batch (a row
    trigger would update the agent's row once per passage). A trigger lowers it in the transaction of any
    ``DELETE`` of passages, once per statement; deleting an agent takes its row, and the count, with it."""
    conn.execute("ALTER TABLE agents ADD COLUMN passage_count bigint NOT NULL DEFAULT 0")
    conn.execute(
        """
        CREATE FUNCTION memgpt_passages_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE agents SET passage_count = agents.passage_count - gone.n
            FROM (SELECT agent, count(*) AS n FROM deleted GROUP BY agent) AS gone
            WHERE agents.name = gone.agent;
            RETURN NULL;
        END
        $$
        """
    )
    conn.execute(
        "CREATE TRIGGER passages_deleted AFTER DELETE ON passages REFERENCING OLD TABLE AS deleted "
        "FOR EACH STATEMENT EXECUTE FUNCTION memgpt_passages_deleted()"
    )
    conn.execute(
        "UPDATE agents SET passage_count = counted.n "
        "FROM (SELECT agent, count(*) AS n FROM passages GROUP BY agent) AS counted WHERE agents.name = counted.agent"
    )


MIGRATIONS: tuple[Migration, ...] = (create_v1, passage_counts_v2)


def hnsw_index_name(dims: int) -> str:
    return f"passages_hnsw_{int(dims)}"


def hnsw_index_sql(dims: int) -> str:
    """The HNSW index (cosine) over the passages whose embeddings have ``dims`` dimensions."""
    d = int(dims)
    return (
        f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(d)} ON passages "
        f"USING hnsw ((embedding::vector({d})) vector_cosine_ops) WHERE dims = {d}"
    )


def read_version(conn: Any) -> int:
    if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def write_version(conn: Any, version: int) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
    conn.execute("DELETE FROM schema_version")
    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
