"""``memgpt eval``: scenario suites run on throwaway agents, scored per wrapper.

A suite (``suites/*.json``, or a user's own file) is data: documents for archival memory, sessions of
user turns, and checks on some turns (an expected answer, the memory functions that should have found it,
how many searches, whether the turn must stay valid under adversarial input). The runner drives the real
agent through ``memgpt.session.open_session`` in a MEMGPT_HOME of its own; the scorer reads what each turn
did (``TurnResult.outcome()`` and its events) and what the agent's memory held.
"""

from memgpt.eval.runner import RunResult, run_suite
from memgpt.eval.scoring import scoreboard
from memgpt.eval.suite import Suite, builtin_suites, load_suite

__all__ = ["RunResult", "Suite", "builtin_suites", "load_suite", "run_suite", "scoreboard"]
