"""``python -m memgpt`` is the same as the ``memgpt`` command."""

from memgpt.cli.app import run

run()
