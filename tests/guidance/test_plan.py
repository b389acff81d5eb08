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
    rows = build_plan(classes_from_names(["cat", "dog"]), target=2, output_dir="out")
    assert [r.class_name for r in rows] == ["cat", "cat", "dog", "dog"]
    assert rows[2].output_path == "out/0001/0000002.png"


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


# ---------------------------------------------------------------- issue 17: path escapes, template access
@pytest.mark.parametrize("bad", ["../x.png", "a/../../x.png", "/abs/out/0000000.png", "..\\x.png",
                                 "C:/out/x.png", "\\\\host\\share\\x.png", "~/x.png"])
def test_output_path_escapes_are_refused_naming_column_and_row(tmp_path, bad):
    good = write_plan(build_plan(classes_from_names(["a"]), target=2, output_dir="o"), tmp_path / "g.csv")
    header, first, second = good.read_text().splitlines()
    row = second.replace("o/0000/0000001.png", bad)
    assert row != second
    plan = _write(tmp_path, f"{header}\n{first}\n{row}\n")
    match = r"line 3 \(row_id 1\): column 'output_path' must (be a relative path|stay inside)"
    with pytest.raises(ValueError, match=match):
        read_plan(plan)


def test_build_plan_refuses_an_escaping_output_dir():
    for bad in ("/abs/out", "../out", "a/../../out", "C:\\out"):
        with pytest.raises(ValueError, match="output_dir must"):
            build_plan(classes_from_names(["a"]), target=1, output_dir=bad)
    rows = build_plan(classes_from_names(["a"]), target=1, output_dir="a/b/..c")  # '..c' is a name, not '..'
    assert rows[0].output_path == "a/b/..c/0000/0000000.png"


@pytest.mark.parametrize("template", ["{name.__class__}", "{name[0]}", "{id.real}", "{}", "{0}", "{name!r}",
                                      "{name:>10}", "{name:{id}}", "{label}", "{name", "a photo of {name.upper}"])
def test_prompt_template_allows_only_plain_fields(template):
    with pytest.raises(ValueError, match="prompt_template"):
        build_plan(classes_from_names(["a"]), target=1, output_dir="o", prompt_template=template)


def test_prompt_template_plain_fields_and_escapes():
    rows = build_plan(classes_from_names(["cat"]), target=1, output_dir="o",
                      prompt_template="{{literal}} {name} #{id}")
    assert rows[0].prompt == "{literal} cat #0"
    with pytest.raises(TypeError, match="prompt_template must be a string"):
        build_plan(classes_from_names(["cat"]), target=1, output_dir="o", prompt_template=3)


# ---------------------------------------------------------------- issue 16: upstream's fakes.csv schema
UPSTREAM_HEADER = ("prompt,cls_name,full_text,class_folder_name,img_id,cfg,fg_criterion,fg_scale,cls_index,"
                   "image_save_path,count_per_cls,cls_directory")


def _upstream_row(img_id, cls, wnid, text, root="/checkpoint/u/out", crit="entropy", scale="0.03"):
    return (f"{text},{text},{text},{wnid},{img_id},5,{crit},{scale},{cls},{root}/{wnid}/{img_id}.png,2,"
            f"{root}/{wnid}")


def test_reads_upstream_fakes_csv_and_maps_the_columns(tmp_path):
    """Shuffled upstream rows (spec §5): ids, classes, criterion, scales and the image path
    rebased under the plan's folder; upstream's unlogged knobs from read_plan's keywords."""
    tench = ("n01440764", "tench Tinca tinca")
    lines = [UPSTREAM_HEADER, _upstream_row(3, 1, "n01443537", "goldfish"), _upstream_row(0, 0, *tench),
             _upstream_row(1, 0, *tench)]
    plan = _write(tmp_path, "\n".join(lines) + "\n")
    rows = read_plan(plan, seed_base=100)
    assert [(r.row_id, r.class_id, r.class_name, r.seed) for r in rows] == [
        (3, 1, "goldfish", 103), (0, 0, "tench Tinca tinca", 100), (1, 0, "tench Tinca tinca", 101)]
    r = rows[0]
    assert (r.prompt, r.criterion, r.scale, r.cfg, r.guidance_freq, r.steps, r.size) == (
        "goldfish", "entropy", 0.03, 5.0, 5, 30, 512)
    assert r.output_path == "n01443537/3.png"  # upstream's <output_dir> is the folder holding fakes.csv
    assert [x.row_id for x in shard(rows, 1, 2)] == [0]  # sharded by file position, as upstream
    assert read_plan(plan, steps=50, size=256)[0].steps == 50
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        read_plan(plan, steps=0)
    # a pandas index column and a minimal upstream header (only the mapped columns)
    idx = _write(tmp_path, ",img_id,cls_index,prompt,fg_criterion,fg_scale,cfg,image_save_path\n"
                           "0,7,2,a fox,loss,0.1,1,out/n02119789/7.png\n")
    (row,) = read_plan(idx)
    assert (row.row_id, row.class_id, row.class_name, row.criterion, row.output_path) == (
        7, 2, "2", "loss", "n02119789/7.png")


def test_upstream_plan_errors_name_upstream_columns(tmp_path):
    def plan(*rows, header=UPSTREAM_HEADER):
        return _write(tmp_path, "\n".join([header, *rows]) + "\n")

    with pytest.raises(ValueError, match=r"lacks columns \['fg_scale'\]"):
        read_plan(plan("0,0,a,loss,0,x/0.png", header="img_id,cls_index,prompt,fg_criterion,cfg,image_save_path"))
    with pytest.raises(ValueError, match=r"unknown columns \['colour'\]"):
        read_plan(plan("0,0,a,loss,0,0,x/0.png,red", header="img_id,cls_index,prompt,fg_criterion,fg_scale,cfg,"
                                                             "image_save_path,colour"))
    with pytest.raises(ValueError, match="column 'fg_scale' must be float"):
        read_plan(plan(_upstream_row(0, 0, "n1", "a", scale="big")))
    with pytest.raises(ValueError, match="column 'fg_scale' must be finite"):
        read_plan(plan(_upstream_row(0, 0, "n1", "a", scale="inf")))
    with pytest.raises(ValueError, match="column 'image_save_path' must end in <class folder>"):
        read_plan(plan(_upstream_row(0, 0, "..", "a")))
    with pytest.raises(ValueError, match="img_id 0 appears twice"):
        read_plan(plan(_upstream_row(0, 0, "n1", "a"), _upstream_row(0, 0, "n2", "a")))
    bad_folder = _upstream_row(0, 0, "n1", "a").replace(",n1,", ",n9,", 1)
    with pytest.raises(ValueError, match="not inside class_folder_name 'n9'"):
        read_plan(plan(bad_folder))
