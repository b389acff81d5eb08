"""Fault-injection driver: ``python _harness.py <synthperf CLI args...>``.

Runs ``synthperf.cli.main()`` after wrapping :func:`synthperf._io.atomic_write` (every file the
package writes through the shared layer):

- ``SYNTHPERF_FAULT_LOG=<file>``: append one line per atomic write, ``<index> <path>``;
- ``SYNTHPERF_FAULT_KILL=<n>:<phase>``: at the n-th atomic write (1-based) SIGKILL this process,
  ``mid``: after writing half of the temp file (a kill during a write), ``after``: right after the
  file was published (a kill between two files, e.g. between a shard and its sidecar or between
  the tensors and the JSON of a checkpoint);
- ``SYNTHPERF_FAULT_PAUSE=<n>:<flag file>``: before the n-th atomic write create ``<flag file>.waiting``
  and wait (at most 300 s) until ``<flag file>`` exists: the process is then mid-run, holding
  whatever lock it holds, so a concurrent second writer can be started at a known moment;
- ``SYNTHPERF_FAULT_KILL_AFTER_S=<seconds>``: SIGKILL this process after that long (timing kills
  also hit writes that do not go through the shared layer).
"""
from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time


def install() -> None:
    from synthperf import _io

    original = _io.atomic_write
    log_path = os.environ.get("SYNTHPERF_FAULT_LOG")
    kill = os.environ.get("SYNTHPERF_FAULT_KILL")
    n_kill, phase = (int(kill.split(":")[0]), kill.split(":")[1]) if kill else (0, "")
    count = [0]
    pause = os.environ.get("SYNTHPERF_FAULT_PAUSE")
    n_pause, flag = (int(pause.split(":", 1)[0]), pause.split(":", 1)[1]) if pause else (0, "")

    def atomic_write(path, writer):
        count[0] += 1
        if count[0] == n_pause:
            open(flag + ".waiting", "w").close()
            deadline = time.time() + 300
            while not os.path.exists(flag) and time.time() < deadline:
                time.sleep(0.02)
        if log_path:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(f"{count[0]} {os.fspath(path)}\n")
        if count[0] == n_kill and phase == "mid":
            def half(fh):
                buf = io.BytesIO()
                writer(buf)
                data = buf.getvalue()
                fh.write(data[: len(data) // 2])
                fh.flush()
                os.fsync(fh.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            return original(path, half)
        out = original(path, writer)
        if count[0] == n_kill:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    _io.atomic_write = atomic_write
    delay = os.environ.get("SYNTHPERF_FAULT_KILL_AFTER_S")
    if delay:
        def later():
            time.sleep(float(delay))
            os.kill(os.getpid(), signal.SIGKILL)
        threading.Thread(target=later, daemon=True).start()


if __name__ == "__main__":
    install()
    from synthperf.cli import main

    sys.argv = ["synthperf", *sys.argv[1:]]
    main()
