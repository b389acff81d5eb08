"""Thread sizing: size torch, OpenMP (``synthperf._native``), BLAS, numba and faiss threads to
the cores that are actually free.

On a shared machine a parallel region with more threads than free cores waits, at every
barrier, for threads the scheduler has descheduled; for the many small ops of a small model
that turns a 2-minute job into an hour (issue 13, item 5). So long-running commands call
:func:`configure_threads` once at the start (and may call it again between stages):

- ``SYNTHPERF_NUM_THREADS`` (or, failing that, ``OMP_NUM_THREADS``) set by the user wins;
- otherwise the count is the cores this process may run on (``os.sched_getaffinity``) minus
  the cores other processes keep busy (sampled from ``/proc/stat`` over ``sample_s``),
  divided by the number of worker processes, and at least 1.

Nothing here is global state of the package: the thread counts live in torch, libgomp and the
BLAS libraries, which is where they act.
"""
from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["available_cores", "busy_cores", "free_cores", "recommended_threads", "configure_threads",
           "thread_limits", "preserved_threads", "current_threads", "ThreadGovernor"]

# Set in the environment (to the count written) when the thread variables below were written by an
# automatic (free-core) sizing, so a later automatic sizing re-samples instead of reading its own
# value back as a user's choice; an OMP_NUM_THREADS that differs from it is the user's again.
# Cleared by an explicit count. Inherited by worker processes.
AUTO_MARKER = "SYNTHPERF_THREADS_AUTO"


def available_cores() -> int:
    """Cores this process may run on (affinity mask; ``os.cpu_count()`` where unsupported)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies summed over all CPUs from ``/proc/stat``, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    vals = [float(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def busy_cores(sample_s: float = 0.2) -> float:
    """Cores kept busy by *other* processes, averaged over ``sample_s`` seconds.

    Sampled from ``/proc/stat`` (this process's own CPU time is subtracted); falls back to the
    1-minute load average where ``/proc/stat`` is unavailable. Returns a float >= 0.
    """
    if not (isinstance(sample_s, (int, float)) and math.isfinite(sample_s) and 0 < sample_s <= 10):
        raise ValueError(f"sample_s must be a number in (0, 10], got {sample_s!r}")
    first = _cpu_times()
    if first is None:
        try:
            return max(0.0, float(os.getloadavg()[0]))
        except (AttributeError, OSError):
            return 0.0
    own0, t0 = _own_cpu_seconds(), time.perf_counter()
    time.sleep(sample_s)
    second = _cpu_times()
    own1, t1 = _own_cpu_seconds(), time.perf_counter()
    other = _other_busy(first, second, own1 - own0, t1 - t0)
    return 0.0 if other is None else other


def _other_busy(first: tuple[float, float], second: tuple[float, float], own_s: float,
                wall_s: float) -> float | None:
    """Cores other processes kept busy between two ``_cpu_times()`` readings, this process's
    ``own_s`` CPU seconds over ``wall_s`` subtracted; None when no time passed."""
    d_busy, d_total = second[0] - first[0], second[1] - first[1]
    if d_total <= 0:
        return None
    busy_total = d_busy / d_total * (os.cpu_count() or 1)  # busy cores, all processes
    own = max(0.0, own_s / max(wall_s, 1e-9))               # cores this process used meanwhile
    return max(0.0, busy_total - own)


def _free_given(busy: float) -> int:
    """The free-core rule: a core counts as busy when other processes use more than a quarter
    of it, so a light background load does not halve the thread count (>= 1)."""
    avail = available_cores()
    return max(1, min(avail, avail - int(math.floor(busy + 0.75))))


def free_cores(sample_s: float = 0.2) -> int:
    """Cores of this process's affinity set not kept busy by other processes (>= 1), by
    :func:`busy_cores` and the quarter-core rule of ``_free_given``."""
    return _free_given(busy_cores(sample_s))


def _env_threads() -> int | None:
    """The user's thread count from the environment; ``OMP_NUM_THREADS`` written by an
    automatic sizing of this package (``AUTO_MARKER`` set) is not a user's choice."""
    ours = os.environ.get(AUTO_MARKER)
    for var in ("SYNTHPERF_NUM_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(var, "").strip()
        if var == "OMP_NUM_THREADS" and ours is not None and raw == ours:
            continue  # written by an automatic sizing, not chosen by the user
        if not raw:
            continue
        try:
            n = int(raw.split(",")[0])
        except ValueError:
            raise ValueError(f"environment variable {var} must be a positive integer, got {raw!r}") from None
        if n < 1:
            raise ValueError(f"environment variable {var} must be a positive integer, got {raw!r}")
        return n
    return None


def recommended_threads(workers: int = 1, *, sample_s: float = 0.2) -> int:
    """Threads per worker process: the user's ``SYNTHPERF_NUM_THREADS`` / ``OMP_NUM_THREADS``,
    else ``free_cores() // workers`` (at least 1)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    env = _env_threads()
    if env is not None:
        return env
    return max(1, free_cores(sample_s) // workers)


def current_threads() -> dict[str, int]:
    """The thread counts in force: ``torch``, ``openmp`` (synthperf._native) and ``blas``."""
    out: dict[str, int] = {}
    if "torch" in sys.modules:
        out["torch"] = int(sys.modules["torch"].get_num_threads())
    from . import _native

    out["openmp"] = int(_native.max_threads())
    try:
        from threadpoolctl import threadpool_info

        blas = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            out["blas"] = int(max(blas))
    except Exception:  # threadpoolctl can fail to introspect exotic BLAS builds
        pass
    return out


_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _apply(n: int) -> None:
    """Set ``n`` threads in every library loaded now, and in the environment for those loaded
    later (torch reads ``OMP_NUM_THREADS`` when it is first imported; worker processes inherit
    it). torch is not imported here: a command that never needs it does not pay for it."""
    from . import _native

    for var in _ENV_VARS:
        os.environ[var] = str(n)
    _native.set_num_threads(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)  # global: applies to the BLAS/OpenMP libraries loaded now
    except Exception:  # no BLAS visible to threadpoolctl: nothing to limit
        pass
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        except Exception:  # numba's threading layer not initialisable here
            pass
    faiss = sys.modules.get("faiss")
    if faiss is not None and hasattr(faiss, "omp_set_num_threads"):
        faiss.omp_set_num_threads(n)


def configure_threads(n: int | None = None, *, workers: int = 1, sample_s: float = 0.2) -> int:
    """Set torch, OpenMP, BLAS, numba and faiss thread counts; returns the count used.

    ``n=None`` takes :func:`recommended_threads` (the user's environment, else the free cores
    divided by ``workers``). ``n`` is an integer >= 1 otherwise.
    """
    auto = False
    if n is None:
        auto = _env_threads() is None
        n = recommended_threads(workers, sample_s=sample_s)
    elif isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be None or an integer >= 1, got {n!r}")
    _apply(n)
    if auto:
        os.environ[AUTO_MARKER] = str(n)
    else:
        os.environ.pop(AUTO_MARKER, None)
    return n


class ThreadGovernor:
    """Keeps torch's intra-op thread count, inside a long loop, at the count that runs the loop's
    steps fastest among those the free cores allow.

    Two effects decide it on a small CPU machine. Load comes and goes within a stage, and a loop
    of small ops that keeps 2 threads while another process takes a core waits at every barrier.
    And even on idle cores, ops this small can run slower on 2 threads than on 1 (measured on the
    2-vCPU machine: 300 flows steps 7 s on 1 thread, 23 s on 2 at light load; the quiet demo's
    flows training took 139 s on 2 threads against 33 s on 1). So, called once per step,
    :meth:`tick`:

    - every ``interval_s`` seconds reads ``/proc/stat`` without sleeping (the CPU time other
      processes used since the last look) and caps the count at the free cores (the rule of
      :func:`free_cores`), re-tuning when that cap changes;
    - times the steps (the time between ticks) at each candidate count, the cap and 1
      (``warmup`` steps skipped, then the median of ``probe_steps``), keeps the faster, and
      times them again every ``retune_s`` seconds.

    It acts only when the thread count is automatic (:func:`configure_threads` with no count
    and no user environment variable); a user's ``SYNTHPERF_NUM_THREADS`` /
    ``OMP_NUM_THREADS`` / ``--threads`` is never changed. A changing count can change float
    round-off, so bit-reproducible runs pin the count. ``changes`` counts the re-sizings and
    ``timings`` holds the last probe's median step seconds per count.
    """

    def __init__(self, interval_s: float = 1.0, *, probe_steps: int = 8, warmup: int = 2,
                 retune_s: float = 30.0) -> None:
        for name, v in (("interval_s", interval_s), ("retune_s", retune_s)):
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name, v, lo in (("probe_steps", probe_steps, 1), ("warmup", warmup, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        self.interval_s, self.retune_s = float(interval_s), float(retune_s)
        self.probe_steps, self.warmup = probe_steps, warmup
        try:
            automatic = AUTO_MARKER in os.environ and _env_threads() is None
        except ValueError:  # a malformed user variable: not ours to override
            automatic = False
        self.active = automatic and "torch" in sys.modules
        self.changes = 0
        self.timings: dict[int, float] = {}
        self._cap = available_cores()
        self._queue: list[int] = []
        self._steps: list[float] = []
        self._seen = 0
        self._tuned_at = -math.inf
        self._last_tick: float | None = None
        self._mark()

    def _mark(self) -> None:
        self._times = _cpu_times()
        self._own = _own_cpu_seconds()
        self._t = time.perf_counter()

    def _set(self, n: int) -> None:
        torch = sys.modules["torch"]
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
            self.changes += 1

    def _free_now(self) -> int | None:
        first, own0 = self._times, self._own
        t0 = self._t
        self._mark()
        if first is None or self._times is None:
            return None
        other = _other_busy(first, self._times, self._own - own0, self._t - t0)
        return None if other is None else _free_given(other)

    def _start_probe(self, now: float) -> None:
        self._queue = sorted({self._cap, 1}, reverse=True)
        self.timings = {}
        self._begin(self._queue[0])
        self._tuned_at = now

    def _begin(self, n: int) -> None:
        self._set(n)
        self._steps, self._seen = [], 0

    def tick(self) -> None:
        if not self.active:
            return
        now = time.perf_counter()
        step = None if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        if now - self._t >= self.interval_s:
            free = self._free_now()
            if free is not None and free != self._cap:
                self._cap = free
                self._start_probe(now)
                return
        if not self._queue:
            if now - self._tuned_at >= self.retune_s:
                self._start_probe(now)
            return
        if step is None:
            return
        self._seen += 1
        if self._seen > self.warmup:
            self._steps.append(step)
        if len(self._steps) < self.probe_steps:
            return
        ordered = sorted(self._steps)
        self.timings[self._queue.pop(0)] = ordered[len(ordered) // 2]
        if self._queue:
            self._begin(self._queue[0])
        else:
            self._set(min(self.timings, key=lambda n: (self.timings[n], n)))


@contextmanager
def preserved_threads() -> Iterator[None]:
    """Restore torch's and OpenMP's thread counts and the thread environment variables on exit
    (for library calls that re-size threads per stage, e.g. the demo)."""
    from . import _native

    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    old_omp = int(_native.max_threads())
    old_env = {v: os.environ.get(v) for v in _ENV_VARS}
    try:
        yield
    finally:
        _apply(old_omp)
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(old_torch if old_torch is not None else old_omp)
        for var, val in old_env.items():
            if val is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = val


@contextmanager
def thread_limits(n: int) -> Iterator[int]:
    """Run a block with ``n`` threads everywhere, then restore the previous counts and the
    thread environment variables."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    with preserved_threads():
        _apply(n)
        yield n
