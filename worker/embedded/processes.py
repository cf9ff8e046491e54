"""Child processes that are started together and always stopped together.

Each child gets its own session (process group), so stopping it also stops whatever it
forked: Celery's pool processes, uvicorn's workers.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

# prctl(PR_SET_PDEATHSIG): Linux sends the child a signal when the process that started it
# dies, however it dies. Elsewhere a parent killed with SIGKILL can leave its children.
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class StartFailed(RuntimeError):
    """A child process did not come up."""


def _ends_with(parent: int) -> Callable[[], None]:
    """What a child runs before its program: SIGTERM for it when `parent` dies."""

    def arrange() -> None:
        if _LIBC is None:
            return
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)  # the parent died before the request took effect

    return arrange


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_tool(name: str) -> str:
    """A console script installed beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise StartFailed(f"{name} is not installed")
    return found


OWNER_FILE = "owner.pid"


def fresh_workdir(prefix: str, parent: Path | None = None) -> Path:
    """A new folder for one run's servers and logs, marked with this process's pid.

    A run killed with SIGKILL cannot remove its folder, and a benchmark's store in it can
    hold gigabytes: the next run removes the folders of the same prefix whose owner is gone.
    """
    base = parent or Path(tempfile.gettempdir())
    for stale in base.glob(f"{prefix}*"):
        if _owner_gone(stale / OWNER_FILE):
            shutil.rmtree(stale, ignore_errors=True)
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    (workdir / OWNER_FILE).write_text(str(os.getpid()))
    return workdir


@contextmanager
def group_in(prefix: str, parent: Path | None = None) -> Iterator[Group]:
    """A group of processes in a fresh folder; on the way out both are gone."""
    group = Group(fresh_workdir(prefix, parent))
    try:
        yield group
    finally:
        group.stop()
        shutil.rmtree(group.workdir, ignore_errors=True)


def _owner_gone(owner_file: Path) -> bool:
    # A folder without the file may be a run that has only just created it: left alone.
    try:
        os.kill(int(owner_file.read_text()), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


@dataclass
class Group:
    """Processes started in order and stopped in reverse order."""

    workdir: Path
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    # The signal that asks each child (by pid) to stop, where it is not SIGTERM.
    stop_signals: dict[int, int] = field(default_factory=dict)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        child = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=_ends_with(os.getpid()),
        )
        self.children.append((name, child))
        self.stop_signals[child.pid] = stop_signal

    def check(self) -> None:
        for name, child in self.children:
            if child.poll() is not None:
                log = self.workdir / f"{name}.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise StartFailed(f"{name} exited with {child.returncode}:\n{tail}")

    def wait_until(self, what: str, ready: Callable[[], bool], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            if ready():
                return
            time.sleep(0.2)
        raise StartFailed(f"{what} was not ready after {timeout_s:.0f} s")

    def stop(self, grace_s: float = 10) -> None:
        """Stop the children one at a time, the last started first.

        A server stopped under a worker or an API mid-request leaves that request waiting
        for an answer until the grace runs out; stopped first, they finish it at once.
        """
        for _, child in reversed(self.children):
            self._end(child, grace_s)
        self.children.clear()

    def stop_child(self, name: str, grace_s: float = 10) -> None:
        """Stop the children started under `name`, leaving the others running."""
        for named, child in self.children:
            if named == name:
                self._end(child, grace_s)
        self.children = [(named, child) for named, child in self.children if named != name]

    def _end(self, child: subprocess.Popen[bytes], grace_s: float) -> None:
        _signal(child, self.stop_signals.pop(child.pid, signal.SIGTERM))
        try:
            child.wait(grace_s)
        except subprocess.TimeoutExpired:
            _signal(child, signal.SIGKILL)
            child.wait()
        # Whatever the child left in its group (pool processes) goes with it.
        _signal(child, signal.SIGKILL)


def _signal(child: subprocess.Popen[bytes], signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)


def interrupt_on_signals() -> None:
    """Make a plain `kill` or a closed terminal stop this process the way Ctrl-C does, so
    that its `finally` blocks stop the processes it started."""
    for signum in STOPPING:
        signal.signal(signum, _interrupt)


STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """Raised in the main thread by a stopping signal, which it names."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, frame: object) -> None:
    # Once stopping, further signals are ignored, so that a second Ctrl-C cannot cut the
    # clean-up short and leave processes or files behind.
    for other in STOPPING:
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)
