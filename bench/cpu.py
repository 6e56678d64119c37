"""CPU time the whole machine spends busy, from /proc/stat.

The lab's nodes are containers on the same machine as the controller, so a run's cost is the
CPU time of ansible on the controller plus sshd, Python and the modules inside every node. On a
quiet machine the machine-wide busy time during a run is that cost; divided by the core count it
is the shortest wall time the run could take here, however parallel it is.
"""

from __future__ import annotations

import os
from pathlib import Path

STAT = Path("/proc/stat")
# /proc/stat's "cpu" line: user nice system idle iowait irq softirq steal guest guest_nice.
# guest time is already counted in user; idle and iowait are not busy.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


def busy_seconds(stat: Path = STAT) -> float:
    """Seconds of CPU time, summed over all cores, spent busy since boot."""
    for line in stat.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(v) for v in fields[1:]]
            return sum(ticks[i] for i in _BUSY_FIELDS if i < len(ticks)) / os.sysconf("SC_CLK_TCK")
    raise ValueError(f"{stat}: no aggregate cpu line")
