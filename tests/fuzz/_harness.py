"""Property-based fuzz harness (issue 17 item 2): bad inputs and unusual layouts per entry point.

A :class:`Target` is one public entry point with a generator of valid arguments. Cases:

- ``bad`` cases replace one argument by a bad value (array kinds from :data:`ARRAY_KINDS`, or a
  bad scalar). The outcome is ``clear`` (ValueError/TypeError whose message names the argument),
  ``unclear`` (ValueError/TypeError not naming it), ``other`` (another exception type),
  ``accepted`` (returned normally: a silently wrong answer) or ``hang`` (over the per-call limit).
  ``requires_grad`` and ``float16`` are "either" kinds: a clear error or exactly the answer of
  the detached / upcast input are both fine; any other answer is ``wrong``.
- ``layout`` cases pass an array argument Fortran-ordered, transposed, strided or reversed
  (views of the same values) and compare with the contiguous answer exactly (``equal`` /
  ``wrong``).

Hypothesis draws the seed and the size of each example (``derandomize=True``, no database), so a
run is deterministic. :func:`run_module` runs every case of one module and returns the counts;
run as a script (``python _harness.py MODULE OUT.json``) it does so in a child process (the
parent, :func:`run_in_subprocess`, turns a signal death or a timeout into a ``crash``/``hang``
row naming the case and resumes after it).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
#: examples hypothesis draws per case (each example is one input tried)
EXAMPLES = int(os.environ.get("SYNTHPERF_FUZZ_EXAMPLES", "3"))
CALL_LIMIT_S = float(os.environ.get("SYNTHPERF_FUZZ_CALL_LIMIT", "20"))  # a longer call is a hang

#: bad array kinds; "either" kinds may also give the reference answer.
ARRAY_KINDS = ("nan", "inf", "empty", "0d", "3d", "ragged", "object", "bool", "str", "complex", "mismatch",
               "requires_grad", "float16")
EITHER_KINDS = ("requires_grad", "float16")
LAYOUTS = ("fortran", "transposed", "strided", "reversed")
BAD_SCALARS = {  # name -> values
    "alpha": [0.0, 1.0, float("nan"), -0.1, 1.5, float("inf"), None, "0.1", True, [[0.1, 0.2]]],
    "prob": [0.0, 1.0, float("nan"), -0.1, 1.5, None, "x", True],
    "positive": [0.0, -1.0, float("nan"), float("inf"), None, "1", True],
    "count": [0, -1, 1.5, float("nan"), True, None, "3", 10 ** 30],
    "huge": [2 ** 62, 10 ** 18, 10 ** 30],
}


@dataclass
class Target:
    name: str
    call: Callable[..., Any]  # call(**args) -> result
    make: Callable[[np.random.Generator, int], dict]  # valid args
    arrays: dict[str, tuple[str, ...]] = field(default_factory=dict)  # arg -> bad kinds
    scalars: dict[str, str | list] = field(default_factory=dict)  # arg -> BAD_SCALARS key or values
    layouts: tuple[str, ...] = ()  # array args whose layout is varied
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # arg -> words an error may use
    extra: list[tuple[str, Callable[[dict], dict]]] = field(default_factory=list)  # (case, args -> bad args)
    errors: tuple[type, ...] = (ValueError, TypeError)  # exception types that count as a clear error


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _to_numpy(x: Any) -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, dict):
        return {k: _to_numpy(v) for k, v in sorted(x.items())}
    if isinstance(x, (tuple, list)):
        return [_to_numpy(v) for v in x]
    if hasattr(x, "__dataclass_fields__"):
        return {k: _to_numpy(getattr(x, k)) for k in x.__dataclass_fields__}
    return x


def same(a: Any, b: Any) -> bool:
    a, b = _to_numpy(a), _to_numpy(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, np.generic, float, int)):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    return a == b


def _copy_args(args: dict) -> dict:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()}


def _partner(args: dict, arg: str) -> bool:
    """Whether another array argument shares arg's first axis (so 'mismatch' is meaningful)."""
    x = args[arg]
    return any(isinstance(v, np.ndarray) and k != arg and v.ndim >= 1 and np.ndim(x) >= 1
               and v.shape[0] == np.shape(x)[0] for k, v in args.items())


def bad_array(x: np.ndarray, kind: str, rng: np.random.Generator) -> Any:
    """``x`` turned into the bad ``kind``; None when the kind does not apply to x."""
    x = np.asarray(x)
    if kind in ("nan", "inf"):
        if x.size == 0:
            return None
        y = x.astype(np.float64 if x.dtype.kind != "f" else x.dtype)
        y.flat[int(rng.integers(y.size))] = np.nan if kind == "nan" else np.inf
        return y
    if kind == "empty":
        return x[:0]
    if kind == "0d":
        return x.flat[0].copy() if x.size else np.float64(0.5)
    if kind == "3d":
        return x[None] if x.ndim >= 2 else x.reshape(1, 1, -1)
    if kind == "ragged":
        rows = x.tolist() if x.ndim >= 2 else [x.tolist(), x.tolist()]
        if len(rows) < 2 or not rows[0]:
            return None
        rows[0] = rows[0][:-1]
        return rows
    if kind == "object":
        return x.astype(object)
    if kind == "bool":
        return x.astype(bool) if x.dtype != bool else None
    if kind == "str":
        return x.astype(str)
    if kind == "complex":
        return x.astype(np.complex128) + 1j
    if kind == "mismatch":
        return x[:-1] if x.ndim >= 1 and x.shape[0] >= 2 else None
    if kind == "requires_grad":
        import torch

        return torch.tensor(x, requires_grad=True) if x.dtype.kind == "f" else None
    if kind == "float16":
        return x.astype(np.float16) if x.dtype.kind == "f" else None
    raise KeyError(kind)


def layout(x: np.ndarray, kind: str) -> np.ndarray:
    """A view equal to x with another memory layout."""
    if kind == "fortran":
        return np.asfortranarray(x)
    if kind == "transposed":
        return np.ascontiguousarray(x.T).T
    if kind == "strided":
        wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype) if x.ndim else x
        if x.ndim == 0:
            return x
        wide[..., ::2] = x
        return wide[..., ::2]
    if kind == "reversed":
        return np.ascontiguousarray(x[::-1])[::-1] if x.ndim else x
    raise KeyError(kind)


def classify(target: Target, arg: str, exc: BaseException | None) -> str:
    if exc is None:
        return "accepted"
    if isinstance(exc, _Hang):
        return "hang"
    if isinstance(exc, (ValueError, TypeError) + target.errors):
        words = (arg,) + target.names.get(arg, ())
        msg = str(exc)
        return "clear" if any(w in msg for w in words) else "unclear"
    return "other"


def _call(target: Target, args: dict) -> tuple[Any, BaseException | None]:
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CALL_LIMIT_S)
    try:
        return target.call(**args), None
    except _Hang as exc:
        return None, exc
    except Exception as exc:  # classified by the caller
        return None, exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def cases(target: Target) -> list[tuple[str, str, Any]]:
    """(kind of case, arg, detail) for every case of ``target`` in a fixed order."""
    out: list[tuple[str, str, Any]] = []
    for arg, kinds in target.arrays.items():
        out += [("bad", arg, k) for k in kinds]
    for arg, vals in target.scalars.items():
        values = BAD_SCALARS[vals] if isinstance(vals, str) else vals
        out += [("scalar", arg, i) for i in range(len(values))]
    out += [("extra", name, i) for i, (name, _) in enumerate(target.extra)]
    out += [("layout", arg, k) for arg in target.layouts for k in LAYOUTS]
    return out


def run_case(target: Target, case: tuple[str, str, Any], seed: int, size: int) -> tuple[str, str]:
    """(outcome, note) of one example of one case; outcome 'skip' when it does not apply."""
    what, arg, detail = case
    rng = np.random.default_rng(seed)
    args = target.make(rng, size)
    if what == "layout":
        ref, exc = _call(target, _copy_args(args))
        if exc is not None:
            return "skip", f"valid call failed: {exc!r}"
        x = np.asarray(args[arg])
        if x.ndim < 1:
            return "skip", ""
        got, exc = _call(target, {**_copy_args(args), arg: layout(x, detail)})
        if exc is not None:
            return ("hang" if isinstance(exc, _Hang) else "wrong"), f"{type(exc).__name__}: {exc}"
        return ("equal", "") if same(got, ref) else ("wrong", "differs from the contiguous answer")
    if what == "scalar":
        vals = target.scalars[arg]
        value = (BAD_SCALARS[vals] if isinstance(vals, str) else vals)[detail]
        _, exc = _call(target, {**args, arg: value})
        return classify(target, arg, exc), f"{arg}={value!r}: {exc!r}"[:300]
    if what == "extra":
        _, exc = _call(target, target.extra[detail][1](_copy_args(args)))
        return classify(target, arg, exc), f"{exc!r}"[:300]
    if detail == "mismatch" and not _partner(args, arg):
        return "skip", ""
    bad = bad_array(args[arg], detail, rng)
    if bad is None:
        return "skip", ""
    got, exc = _call(target, {**args, arg: bad})
    if detail in EITHER_KINDS and exc is None:
        if detail == "float16":
            refs = [_call(target, {**args, arg: bad.astype(t)}) for t in (np.float32, np.float64)]
        else:
            refs = [_call(target, {**args, arg: bad.detach().numpy()})]
        ok = any(e is None and same(got, r) for r, e in refs)
        return ("equal" if ok else "wrong"), "" if ok else f"{detail}: differs from the upcast/detached answer"
    return classify(target, arg, exc), f"{detail}: {exc!r}"[:300]


def case_id(target: Target, case: tuple) -> str:
    return f"{target.name}|{case[0]}|{case[1]}|{case[2]}"


def run_module(targets: list[Target], *, skip: set[str] = frozenset(), progress: Path | None = None) -> list[dict]:
    """Every case of ``targets`` (hypothesis examples per case); one record per case."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    records = []
    for target in targets:
        for case in cases(target):
            cid = case_id(target, case)
            if cid in skip:
                continue
            if progress is not None:
                with open(progress, "a") as fh:
                    fh.write(cid + "\n")
            outcomes: list[tuple[str, str]] = []

            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck), phases=[__import__("hypothesis").Phase.generate])
            @given(seed=st.integers(0, 2 ** 16), size=st.integers(3, 12))
            def one(seed, size):
                outcomes.append(run_case(target, case, seed, size))

            one()
            rec = {"id": cid, "target": target.name, "case": case[0], "arg": case[1], "detail": str(case[2]),
                   "outcomes": [o for o, _ in outcomes], "notes": sorted({n for o, n in outcomes
                                                                          if o not in ("clear", "equal", "skip")})}
            records.append(rec)
            if progress is not None:
                with open(progress, "a") as fh:
                    fh.write("DONE " + json.dumps(rec) + "\n")
    return records


def run_in_subprocess(module: str, timeout_s: float = 150.0, env: dict | None = None) -> list[dict]:
    """Run module's fuzz in children; a signal death or a timeout becomes a crash/hang record
    naming the case, and the run resumes after it. Returns all records."""
    import tempfile

    records: list[dict] = []
    done: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        prog = Path(tmp) / "progress.txt"
        for _ in range(20):
            child_env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNTHPERF_NUM_THREADS": "1", **(env or {})}
            cmd = [sys.executable, str(HERE / "_harness.py"), module, str(prog), json.dumps(sorted(done))]
            t0 = time.monotonic()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=child_env)
                rc, err = proc.returncode, proc.stderr[-2000:]
            except subprocess.TimeoutExpired as exc:
                rc, err = None, (exc.stderr or b"")[-2000:] if isinstance(exc.stderr, bytes) else str(exc.stderr)
            lines = prog.read_text().splitlines() if prog.exists() else []
            started = None
            for line in lines:
                if line.startswith("DONE "):
                    rec = json.loads(line[5:])
                    if rec["id"] not in done:
                        records.append(rec)
                        done.add(rec["id"])
                    started = None
                else:
                    started = line
            prog.write_text("")
            if rc == 0:
                return records
            outcome = "hang" if rc is None else ("crash" if rc < 0 else "error")
            if started is None:  # died outside a case (import error, harness bug)
                raise RuntimeError(f"fuzz child for {module} exited {rc} outside a case "
                                   f"after {time.monotonic() - t0:.0f} s:\n{err}")
            t, c, a, d = started.split("|")
            records.append({"id": started, "target": t, "case": c, "arg": a, "detail": d, "outcomes": [outcome],
                            "notes": [f"child {'timed out' if rc is None else f'exited {rc}'}: {str(err)[-500:]}"]})
            done.add(started)
    raise RuntimeError(f"fuzz of {module}: too many child deaths")


def summarize(records: list[dict]) -> dict[str, int]:
    """Counts per outcome over every example (skips excluded); 'tried' counts bad inputs."""
    counts: dict[str, int] = {}
    for rec in records:
        for o in rec["outcomes"]:
            if o != "skip":
                key = ("layout_" + o) if rec["case"] == "layout" else o
                counts[key] = counts.get(key, 0) + 1
    counts["tried"] = sum(v for k, v in counts.items() if not k.startswith("layout_"))
    counts["layouts"] = sum(v for k, v in counts.items() if k.startswith("layout_"))
    return counts


def _child_main(module: str, progress: str, skip_json: str) -> None:
    sys.path.insert(0, str(HERE))
    import _targets

    run_module(_targets.MODULES[module](), skip=set(json.loads(skip_json)), progress=Path(progress))


if __name__ == "__main__":
    _child_main(*sys.argv[1:4])
