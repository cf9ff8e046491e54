"""Stopping the demo's process group leaves nothing running, grandchildren included."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from worker.embedded.processes import Group

# A child that forks a grandchild, records its pid, and both sleep.
SPAWNER = """
import os, sys, time
pid = os.fork()
if pid == 0:
    time.sleep(600)
else:
    open(sys.argv[1], "w").write(str(pid))
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not collected it yet.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_stop_ends_children_and_their_children(tmp_path: Path) -> None:
    group = Group(tmp_path)
    pid_file = tmp_path / "grandchild.pid"
    group.start("spawner", [sys.executable, "-c", SPAWNER, str(pid_file)])
    group.wait_until("the grandchild", pid_file.exists, timeout_s=10)
    time.sleep(0.1)
    child = group.children[0][1].pid
    grandchild = int(pid_file.read_text())

    group.stop(grace_s=2)

    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    assert not _alive(grandchild)
    assert group.children == []
