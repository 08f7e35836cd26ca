"""The kill -9 fault suite (``tests/test_fault_kill.py``) on PostgreSQL: a real agent on a scripted backend,
killed at random points mid-step, 50 times. After every kill: every step the child reported as committed
is there, core memory matches the last committed edit, the in-context ids all point at stored messages,
and the agent's session lock (which each child takes) is free again without anyone unlocking it."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from memgpt_storage_postgres.storage import PostgresStorage
from tests.figures import record as record_figure
from tests.test_fault_kill import CHILD, KILLS, Zygote, committed_intact

SQLITE_OPEN = "storage = SQLiteStorage(Path(sys.argv[1]))\n"
assert SQLITE_OPEN in CHILD, "tests/test_fault_kill.py changed how its child opens the store"
# The same child, on PostgreSQL, holding the agent's session lock as `memgpt run` does.
PG_CHILD = CHILD.replace(
    SQLITE_OPEN,
    "import time\n"
    "from memgpt.errors import AgentBusyError\n"
    "from memgpt_storage_postgres.storage import PostgresStorage\n"
    "storage = PostgresStorage(sys.argv[1])\n"
    "try:\n"
    "    lock = storage.lock_agent('crash').acquire()\n"
    "except AgentBusyError:\n"
    "    sys.exit('the previous (killed) session still holds the lock')\n",
)


@pytest.mark.slow
def test_kill_9_mid_step_loses_nothing_committed_on_postgres(postgres_uri: str, tmp_path: Path) -> None:
    rng = random.Random(20261202)
    zygote = Zygote(PG_CHILD, tmp_path)
    survived = 0
    try:
        for round_ in range(KILLS):
            with zygote.child(postgres_uri) as (pid, out, log):
                first = out.readline()
                if not first:
                    pytest.fail(f"round {round_}: the child committed nothing: {log.read_text()}")
                time.sleep(rng.uniform(0.0, 0.25))
                zygote.kill(pid)
                committed = [first, *out.read().splitlines()]
            messages, facts = (int(x) for x in committed[-1].split())

            storage = PostgresStorage(postgres_uri)
            try:
                record = committed_intact(storage, round_, messages, facts)
                # every stored message is in the context window: no half-committed step left rows behind
                assert storage.count_messages("crash") == len(record.in_context), f"round {round_}: a torn step"
            finally:
                storage.close()
            survived += 1
    finally:
        zygote.close()
    record_figure("kill -9 rounds survived on PostgreSQL (no committed step lost, no torn step)", f"{survived}/{KILLS}")
    assert survived == KILLS
