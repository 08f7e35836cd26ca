"""Fixtures of the koboldcpp plugin's tests: the dialect test servers (``tests/dialects``), for the replays of
the recorded exchanges with a real koboldcpp (``test_koboldcpp_recorded.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

# `python -m pytest` from the repository root puts the root on sys.path; a bare `pytest` may not.
_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.dialects.fixtures import dialect_server, dialect_servers  # noqa: E402,F401
