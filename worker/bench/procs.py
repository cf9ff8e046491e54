"""What the benchmark reads about other processes: CPU time and memory, from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

from redis import Redis

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def redis_cpu_seconds(redis: Redis) -> float:
    info = redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def rss_mb(pid: int) -> float:
    return _status_kib(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """The peak resident set since the last `reset_peak` (or since the process started)."""
    return _status_kib(pid, "VmHWM") / 1024


def reset_peak(pid: int) -> None:
    # Writing 5 to clear_refs resets the peak the kernel reports as VmHWM.
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")
