"""Stopping the demo's process group leaves nothing running, grandchildren included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pymongo import MongoClient
from pymongo.errors import AutoReconnect

from worker import cli
from worker.embedded import demo
from worker.embedded.audiences import DEMO_AUDIENCES
from worker.embedded.processes import OWNER_FILE, Group, StartFailed, Stopped, fresh_workdir
from worker.settings import get_settings

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


# Records the signal that asks it to stop, takes argv[3] seconds to wind down, records that.
STOPPABLE = """
import signal, sys, time
log, name, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
def stop(signum, frame):
    open(log, "a").write(f"{name} {signum}\\n")
    time.sleep(delay)
    open(log, "a").write(f"{name} gone\\n")
    sys.exit(0)
for signum in (signal.SIGTERM, signal.SIGQUIT):
    signal.signal(signum, stop)
open(f"{log}.{name}", "w").close()
time.sleep(600)
"""


def test_stop_ends_the_last_started_first_each_by_its_own_signal(tmp_path: Path) -> None:
    """A worker stops while the server it reads is still there, so it need not wait."""
    log = tmp_path / "stops"
    group = Group(tmp_path)
    group.start("server", [sys.executable, "-c", STOPPABLE, str(log), "server", "0"])
    worker = [sys.executable, "-c", STOPPABLE, str(log), "worker", "0.3"]
    group.start("worker", worker, stop_signal=signal.SIGQUIT)
    for name in ("server", "worker"):
        group.wait_until(name, Path(f"{log}.{name}").exists, timeout_s=10)

    group.stop(grace_s=5)

    assert log.read_text().splitlines() == [
        f"worker {int(signal.SIGQUIT)}",
        "worker gone",
        f"server {int(signal.SIGTERM)}",
        "server gone",
    ]


def test_stop_child_ends_only_the_named_child(tmp_path: Path) -> None:
    group = Group(tmp_path)
    group.start("store", [sys.executable, "-c", "import time; time.sleep(600)"])
    group.start("worker", [sys.executable, "-c", "import time; time.sleep(600)"])
    store, worker = (child for _, child in group.children)
    try:
        group.stop_child("store", grace_s=2)

        assert store.poll() is not None
        assert worker.poll() is None
        assert [name for name, _ in group.children] == ["worker"]
    finally:
        group.stop(grace_s=2)
    assert worker.poll() is not None


def test_the_demo_stops_waiting_for_an_audience_when_a_child_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = Group(tmp_path)
    group.start("worker", [sys.executable, "-c", "print('gone'); raise SystemExit(3)"])
    group.children[0][1].wait(timeout=10)
    # An API that says the run is still pending, for ever.
    pending = {"materialization": {"state": "pending"}, "countNFT": None}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=pending))
    monkeypatch.setattr(
        demo, "_client", lambda url, key: httpx.Client(base_url=url, transport=transport)
    )
    started = time.monotonic()
    with pytest.raises(StartFailed, match="worker exited with 3"):
        demo._wait(group, "http://api", "key", {"name": "x"}, "id", started, timeout_s=300)
    assert time.monotonic() - started < 10


# A parent that starts one sleeping child in a group, records its pid, and sleeps.
PARENT = """
import sys, time
from pathlib import Path
from worker.embedded.processes import Group
group = Group(Path(sys.argv[1]))
group.start("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"])
Path(sys.argv[2]).write_text(str(group.children[0][1].pid))
time.sleep(600)
"""


def test_a_parent_killed_outright_takes_its_children_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path), str(pid_file)])
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert _alive(child)
    finally:
        parent.kill()  # SIGKILL: the parent's own clean-up never runs
        parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopping_signal_ends_the_command_with_its_own_exit_code(
    monkeypatch: pytest.MonkeyPatch, signum: int, code: int
) -> None:
    def stopped(args: object) -> int:
        raise Stopped(signum)

    monkeypatch.setattr(cli, "_dispatch", stopped)
    assert cli.main(["status"]) == code


def test_a_server_gone_while_cleaning_up_after_a_stop_still_ends_as_the_stop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def stopped_then_lost(args: object) -> int:
        try:
            raise Stopped(signal.SIGINT)
        finally:
            # The clean-up's own request finds the store already stopped.
            raise AutoReconnect("127.0.0.1:1: connection closed")

    monkeypatch.setattr(cli, "_dispatch", stopped_then_lost)
    assert cli.main(["status"]) == 130
    assert capsys.readouterr().err.strip() == "audience-worker status: stopped"


def test_a_lost_server_without_a_stop_is_reported_as_itself(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def lost(args: object) -> int:
        raise AutoReconnect("127.0.0.1:1: connection closed")

    monkeypatch.setattr(cli, "_dispatch", lost)
    assert cli.main(["status"]) == 2
    assert "connection closed" in capsys.readouterr().err


def test_a_new_workdir_removes_only_those_whose_owner_is_gone(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # its pid now names no process
    stale, live, unmarked, other = (
        tmp_path / name for name in ("run-a", "run-b", "run-c", "other-a")
    )
    for folder, owner in ((stale, ended.pid), (live, os.getpid()), (other, ended.pid)):
        folder.mkdir()
        (folder / OWNER_FILE).write_text(str(owner))
    unmarked.mkdir()  # a run that has not written its pid yet

    made = fresh_workdir("run-", tmp_path)

    assert not stale.exists()
    assert live.exists() and unmarked.exists()
    assert other.exists()  # another prefix is another program's
    assert made.parent == tmp_path and made.name.startswith("run-")
    assert (made / OWNER_FILE).read_text() == str(os.getpid())


def test_a_demo_stopped_by_kill_exits_143_and_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def killed(group: Group, data_dir: Path) -> None:
        assert group.workdir.parent == tmp_path
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(demo, "interrupt_on_signals", lambda: None)  # not in the test process
    monkeypatch.setattr(demo, "_start", killed)
    assert cli.main(["demo", "--exit"]) == 143
    assert capsys.readouterr().err.strip() == "audience-worker demo: stopped"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_the_demo_uses_the_servers_it_is_given_and_keeps_to_its_own_names(
    mongo_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With MONGO_URL and REDIS_URL set, the demo starts neither server; it starts from an
    empty database of its own and leaves a deployment's keys alone."""
    cache = redis.Redis.from_url(redis_url, decode_responses=True)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    cache.set("audience:{kept}:meta", "a deployment's")
    client[demo.DEMO].audiences.insert_one({"name": "left by an earlier demo"})
    cache.set(f"{demo.DEMO}:{{earlier}}:meta", "left by an earlier demo")

    def not_started(group: Group, *args: object) -> str:
        raise AssertionError("the demo started a server of its own")

    for name in ("start_store", "start_cache"):
        monkeypatch.setattr(demo, name, not_started)
    monkeypatch.setenv("MONGO_URL", mongo_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(demo, "interrupt_on_signals", lambda: None)  # not in the test process
    get_settings.cache_clear()
    try:
        assert cli.main(["demo", "--exit"]) == 0, capsys.readouterr()
        names = sorted(doc["name"] for doc in client[demo.DEMO].audiences.find())
        assert names == sorted(str(body["name"]) for _, body in DEMO_AUDIENCES)
        assert cache.get("audience:{kept}:meta") == "a deployment's"
        assert any(cache.scan_iter(f"{demo.DEMO}:*"))
        assert cache.get(f"{demo.DEMO}:{{earlier}}:meta") is None
    finally:
        get_settings.cache_clear()
        client.drop_database(demo.DEMO)
        client.close()
        bindings = [f"_kombu.binding{kind}.{demo.DEMO}" for kind in ("", "_permanent")]
        cache.delete("audience:{kept}:meta", *bindings, *cache.scan_iter(f"{demo.DEMO}:*"))
