"""CPU seconds (user + system) of processes: a figure that the other engineers' load on this shared machine
disturbs far less than wall time does."""

from __future__ import annotations

import os
import resource

_TICKS = os.sysconf("SC_CLK_TCK")


def of_pid(pid: int | None) -> float:
    """CPU seconds used so far by process ``pid`` (all its threads); 0.0 once it is gone."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields after the command name: state is [0], utime [11], stime [12] (stat(5) fields 14 and 15)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def of_children() -> float:
    """CPU seconds of every waited-for child of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
