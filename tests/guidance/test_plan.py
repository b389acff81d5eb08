"""Generation plans (spec §5): top-up counts, CSV round trip, sharding, corrupt-plan errors."""
from __future__ import annotations

import json

import pytest

from synthperf.guidance.plan import (PLAN_COLUMNS, build_plan, classes_from_names, load_class_info, read_plan,
                                     shard, write_plan)


def _info(tmp_path):
    path = tmp_path / "info.json"
    path.write_text(json.dumps({"0": {"count": 5, "cls_folder": "n01440764", "text": "tench Tinca tinca"},
                                "1": {"count": 9, "cls_folder": "n01443537", "text": "goldfish"},
                                "2": {"count": 12, "cls_folder": "n01484850", "text": "great white shark"}}))
    return path


def test_top_up_long_tail_from_class_counts(tmp_path):
    classes = load_class_info(_info(tmp_path))
    rows = build_plan(classes, target=10, output_dir="imgs", criterion="loss", scale=0.05, seed_base=100,
                      prompt_template="a photo of {name}")
    per = {c: sum(r.class_id == c for r in rows) for c in (0, 1, 2)}
    assert per == {0: 5, 1: 1, 2: 0}                       # max(10 - count, 0)
    assert [r.row_id for r in rows] == list(range(6)) and [r.seed for r in rows] == list(range(100, 106))
    assert rows[0].prompt == "a photo of tench Tinca tinca" and rows[0].output_path == "imgs/n01440764/0000000.png"
    upstream = build_plan(classes, target=10, output_dir="imgs", min_per_class=1)
    assert sum(r.class_id == 2 for r in upstream) == 1      # upstream's max(max_count - count, 1)
    path = write_plan(rows, tmp_path / "plan.csv")
    assert path.read_text().splitlines()[0] == ",".join(PLAN_COLUMNS)
    assert read_plan(path) == rows
    assert not list(tmp_path.glob(".*tmp*"))


def test_plain_counts_and_names(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"1": 3, "0": 0}))
    classes = load_class_info(p, class_names=["zero", "one"])
    assert [(c.class_id, c.name, c.count) for c in classes] == [(0, "zero", 0), (1, "one", 3)]
    rows = build_plan(classes_from_names(["cat", "dog"]), target=2, output_dir="/abs/out")
    assert [r.class_name for r in rows] == ["cat", "cat", "dog", "dog"]
    assert rows[2].output_path == "/abs/out/0001/0000002.png"


def test_shards_partition_the_plan():
    rows = build_plan(classes_from_names(list("abc")), target=3, output_dir="o")
    parts = [shard(rows, i, 4) for i in range(4)]
    assert sorted(r.row_id for p in parts for r in p) == list(range(9))
    assert [r.row_id for r in parts[1]] == [1, 5]
    with pytest.raises(ValueError, match=r"worker must be an integer in \[0, 4\)"):
        shard(rows, 4, 4)
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        shard(rows, 0, 0)


def _write(tmp_path, text):
    p = tmp_path / "plan.csv"
    p.write_text(text)
    return p


def test_corrupt_plans_raise(tmp_path):
    good = write_plan(build_plan(classes_from_names(["a"]), target=2, output_dir="o"), tmp_path / "g.csv")
    lines = good.read_text().splitlines()
    with pytest.raises(ValueError, match=r"unknown columns \['colour'\]"):
        read_plan(_write(tmp_path, lines[0] + ",colour\n" + lines[1] + ",red\n"))
    with pytest.raises(ValueError, match=r"lacks columns \['output_path'\]"):
        read_plan(_write(tmp_path, "\n".join(ln.rsplit(",", 1)[0] for ln in lines) + "\n"))
    with pytest.raises(ValueError, match="line 2: column 'seed' must be int, got 'x'"):
        read_plan(_write(tmp_path, lines[0] + "\n" + lines[1].replace(",0,entropy", ",x,entropy") + "\n"))
    with pytest.raises(ValueError, match="line 2: wrong number of fields"):
        read_plan(_write(tmp_path, lines[0] + "\n" + lines[1] + ",extra\n"))
    with pytest.raises(ValueError, match="line 3: wrong number of fields"):
        read_plan(_write(tmp_path, lines[0] + "\n" + lines[1] + "\n0,0,a\n"))
    with pytest.raises(ValueError, match="row_id 0 appears twice"):
        read_plan(_write(tmp_path, lines[0] + "\n" + lines[1] + "\n" + lines[1].replace("0000000.png", "x.png") + "\n"))
    with pytest.raises(ValueError, match="scale' must be finite"):
        read_plan(_write(tmp_path, lines[0] + "\n" + lines[1].replace(",0.03,", ",nan,") + "\n"))
    with pytest.raises(ValueError, match="not a readable CSV"):
        (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
        read_plan(tmp_path / "bin.csv")
    with pytest.raises(ValueError, match="does not exist"):
        read_plan(tmp_path / "nope.csv")


def test_bad_plan_arguments(tmp_path):
    classes = classes_from_names(["a"])
    with pytest.raises(ValueError, match="target must be a non-negative integer"):
        build_plan(classes, target=-1, output_dir="o")
    with pytest.raises(ValueError, match="prompt_template"):
        build_plan(classes, target=1, output_dir="o", prompt_template="{label}")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        build_plan(classes, target=1, output_dir="o", steps=0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"zero": 3}))
    with pytest.raises(ValueError, match="key 'zero' is not an integer class id"):
        load_class_info(bad)
    bad.write_text(json.dumps({"0": -3}))
    with pytest.raises(ValueError, match="count of class '0' must be a non-negative integer"):
        load_class_info(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_class_info(bad)
