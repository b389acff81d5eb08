"""benchmarks/compare.py: exact full-name matching within a group, clear failure when nothing matches."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"


def _bench(name: str, group: str | None, median: float, module: str = "bench_a.py") -> dict:
    return {"group": group, "name": name, "fullname": f"benchmarks/{module}::{name}",
            "stats": {"median": median, "mean": median, "min": median}}


def _write(path: Path, benches: list[dict]) -> Path:
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": benches}))
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture()
def two_groups(tmp_path: Path) -> Path:
    # The same test names in two groups with different medians, and a name that is a
    # substring of another (test_cpu is a prefix of test_cpu_backend): substring matching
    # or matching across groups would pick the wrong pair.
    return _write(tmp_path / "bench.json", [
        _bench("test_cpu_backend", "order_statistics", 0.002),
        _bench("test_cpu", "order_statistics", 0.050),
        _bench("test_numpy_sort_axis1", "order_statistics", 0.016),
        _bench("test_cpu_backend", "sppi", 0.004, "bench_b.py"),
        _bench("test_numpy_sort_axis1", "sppi", 0.020, "bench_b.py"),
    ])


def test_pair_matched_by_full_name_within_each_group(two_groups: Path) -> None:
    res = _run(str(two_groups), "--base", "test_numpy_sort_axis1", "--target", "test_cpu_backend")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines == [
        "[order_statistics] test_cpu_backend is 8.00x faster than test_numpy_sort_axis1 "
        "(median 2.000 ms vs 16.000 ms)",
        "[sppi] test_cpu_backend is 5.00x faster than test_numpy_sort_axis1 (median 4.000 ms vs 20.000 ms)",
    ]


def test_exact_name_is_not_a_substring_match(two_groups: Path) -> None:
    res = _run(str(two_groups), "--base", "test_numpy_sort_axis1", "--target", "test_cpu")
    assert res.returncode == 0, res.stderr
    # only order_statistics has a benchmark named exactly test_cpu: 0.016 / 0.050
    assert res.stdout.strip() == ("[order_statistics] test_cpu is 0.32x faster than test_numpy_sort_axis1 "
                                  "(median 50.000 ms vs 16.000 ms)")


def test_group_and_fullname_select_one_pair(two_groups: Path) -> None:
    res = _run(str(two_groups), "--base", "benchmarks/bench_b.py::test_numpy_sort_axis1",
               "--target", "benchmarks/bench_b.py::test_cpu_backend", "--group", "sppi")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("[sppi] test_cpu_backend is 5.00x faster")


@pytest.mark.parametrize("args, message", [
    (("--base", "test_numpy", "--target", "test_cpu_backend"), "no group holds both --base 'test_numpy'"),
    (("--base", "test_numpy_sort_axis1", "--target", "test_cpu", "--group", "sppi"), "no group holds both"),
    (("--base", "test_cpu", "--target", "test_cpu_backend", "--group", "nope"), "no group 'nope'"),
    (("--group", "nope"), "no benchmark in group 'nope'"),
])
def test_nothing_matches_fails_clearly(two_groups: Path, args: tuple[str, ...], message: str) -> None:
    res = _run(str(two_groups), *args)
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.startswith("error: ") and message in res.stderr


def test_no_match_lists_the_names_on_offer(two_groups: Path) -> None:
    res = _run(str(two_groups), "--base", "x", "--target", "y")
    assert res.returncode == 2
    assert "order_statistics: test_cpu_backend" in res.stderr and "sppi: test_numpy_sort_axis1" in res.stderr


def test_ambiguous_name_in_a_group_asks_for_the_fullname(tmp_path: Path) -> None:
    path = _write(tmp_path / "amb.json", [
        _bench("test_cpu_backend", "g", 0.002, "bench_a.py"),
        _bench("test_cpu_backend", "g", 0.003, "bench_b.py"),
        _bench("test_numpy", "g", 0.010),
    ])
    res = _run(str(path), "--base", "test_numpy", "--target", "test_cpu_backend")
    assert res.returncode == 2
    assert "matches 2 benchmarks in group 'g'" in res.stderr and "pass the fullname" in res.stderr
    ok = _run(str(path), "--base", "test_numpy", "--target", "benchmarks/bench_b.py::test_cpu_backend")
    assert ok.returncode == 0 and "3.33x faster" in ok.stdout


def test_group_table_ratios_to_fastest(two_groups: Path) -> None:
    res = _run(str(two_groups))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "[order_statistics]"
    assert lines[1].split()[0] == "test_cpu_backend" and lines[1].endswith("x   1.00 of fastest")
    assert lines[3].split()[0] == "test_cpu" and lines[3].endswith("x  25.00 of fastest")
    assert lines[4] == "[sppi]" and lines[6].endswith("x   5.00 of fastest")


@pytest.mark.parametrize("content, message", [
    ("not json", "is not JSON"),
    ('{"other": 1}', "no 'benchmarks' list"),
    ('{"benchmarks": []}', "holds no benchmarks"),
])
def test_bad_files_fail_clearly(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    res = _run(str(path))
    assert res.returncode == 2 and message in res.stderr


def test_base_without_target_is_a_usage_error(two_groups: Path) -> None:
    res = _run(str(two_groups), "--base", "test_cpu")
    assert res.returncode == 2 and "--base and --target go together" in res.stderr
