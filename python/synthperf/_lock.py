"""The run lock: one writer per output directory (``OUT/.synthperf.lock``); used by ``synthperf run``
(:mod:`synthperf.experiments.runner`), ``guidance generate`` (one lock per shard), ``flows
train``/``simulate`` and ``synthperf demo`` (the whole demo folder, :func:`synthperf.experiments.demo.run_demo`).

:class:`RunLock` holds an exclusive ``flock`` on ``OUT/.synthperf.lock`` for the whole run
and writes its holder into it as JSON (pid, host, start time, the pid's kernel start tick and
the command line). A second process on the same directory is refused with
:class:`OutputLockedError` naming the directory and the holder. The kernel drops a ``flock``
when its process dies (even by SIGKILL), so a killed run never blocks the next one; the file
then still names the dead holder, and the next run takes it over with one log line.

``force=True`` takes over a lock the kernel lock cannot vouch for: one naming another host
(its pid cannot be checked from here) or a holder that is dead although the ``flock`` is still
held (an inherited descriptor). A live holder on this host is never taken over. Where the
filesystem has no ``flock`` (some network mounts) the pid/host record alone decides.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["LOCK_NAME", "RunLock", "OutputLockedError", "read_holder"]

log = logging.getLogger("synthperf.experiments")
LOCK_NAME = ".synthperf.lock"


class OutputLockedError(OSError):
    """Another run holds the output directory (the message names the directory and the holder)."""


def _start_ticks(pid: int) -> int | None:
    """Kernel start time of ``pid`` in clock ticks (``/proc/<pid>/stat`` field 22); None off Linux."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(holder: dict) -> bool:
    """Whether the holder process (on this host) still runs (pid exists and, where known, same start tick)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    ticks = holder.get("start_ticks")
    now = _start_ticks(pid)
    return not (isinstance(ticks, int) and now is not None and now != ticks)  # a reused pid is not the holder


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid')} on host {holder.get('host')!r}, started {holder.get('started')}"
            + (f" ({holder.get('command')})" if holder.get("command") else ""))


def read_holder(path: str | os.PathLike) -> dict | None:
    """The holder recorded in lock file ``path`` (a dict), or None when empty, missing or unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        doc = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


class RunLock:
    """Exclusive lock on run directory ``out`` (a context manager; see the module docstring).

    ``out``: the run directory (created when missing). ``force``: take over a lock whose holder
    cannot be shown alive (another host, or a dead pid). Raises :class:`OutputLockedError`
    (an ``OSError``) when another run holds ``out``.
    """

    def __init__(self, out: str | os.PathLike, *, force: bool = False) -> None:
        if not isinstance(force, bool):
            raise TypeError(f"force must be a bool, got {type(force).__name__}")
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self.force = force
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _refuse(self, fd: int, holder: dict | None, why: str) -> None:
        os.close(fd)
        who = _describe(holder) if holder else "a process that left no record"
        raise OutputLockedError(f"{self.out} is in use by another synthperf run ({who}; lock file {self.path}): "
                                f"{why}")

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        host = socket.gethostname()
        flocked, taken = True, False
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX
            flocked = False
        except BlockingIOError:
            holder = read_holder(self.path)
            here = holder is not None and holder.get("host") == host
            if here and _alive(holder):
                self._refuse(fd, holder, "wait for it to finish (a live run is never taken over)")
            if not self.force:
                self._refuse(fd, holder, "wait for it to finish, or pass --force (force=True) if that process "
                                         "is dead")
            log.warning("%s: taking over the lock of %s (--force)", self.out, _describe(holder or {}))
            taken = True
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            flocked = False  # no flock on this filesystem: the record alone decides
        holder = read_holder(self.path)
        if holder and holder.get("pid") != os.getpid() and not taken:
            here = holder.get("host") == host
            if not flocked and (not here or _alive(holder)) and not self.force:
                self._refuse(fd, holder, "wait for it to finish, or pass --force (force=True) if that process "
                                         "is dead")
            if flocked and not here and not self.force:  # the record names another host: cannot check it
                self._refuse(fd, holder, "it was started on another host, whose pid cannot be checked from "
                                         "here; pass --force (force=True) if that run is gone")
            log.warning("%s: taking over the stale lock of %s (it ended without releasing it)", self.out,
                        _describe(holder))
        me = {"pid": os.getpid(), "host": host, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "start_ticks": _start_ticks(os.getpid()), "command": " ".join(sys.argv[:6])[:200]}
        data = json.dumps(me).encode("utf-8")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)  # a record, not data: no fsync (the flock is what excludes)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Clear the record and drop the lock (the file stays: removing it would race a waiting opener)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the last descriptor drops the flock
