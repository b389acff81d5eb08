"""``synthperf selective select`` end to end on .npy / .safetensors files."""
from __future__ import annotations

import json

import numpy as np
import torch
from typer.testing import CliRunner

from synthperf.selective import EuclideanScore
from synthperf.selective.cli import app


def test_select_command(tmp_path):
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    ref, cal, q = (rng.standard_normal((n, 4)).astype(np.float32) for n in (200, 50, 20))
    np.save(tmp_path / "ref.npy", ref)
    save_file({"embeddings": torch.from_numpy(cal)}, str(tmp_path / "cal.safetensors"))
    np.save(tmp_path / "q.npy", q)
    out = tmp_path / "res" / "sel.csv"
    result = CliRunner().invoke(app, ["select", str(tmp_path / "ref.npy"), str(tmp_path / "q.npy"), "-c",
                                      str(tmp_path / "cal.safetensors"), "-o", str(out), "--k", "3", "--q", "0.8"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    s = EuclideanScore(k=3, stat="mean").fit(X=ref, Y=cal)
    assert summary["threshold"] == float(s.set_threshold(0.8)) and summary["calibrated"]
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    expected = s.select(torch.from_numpy(q))
    np.testing.assert_allclose(table[:, 1], expected["score"].numpy(), rtol=1e-6)
    assert table[:, 2].astype(bool).tolist() == expected["selected"].tolist()
    bad = CliRunner().invoke(app, ["select", str(tmp_path / "ref.npy"), str(tmp_path / "q.npy"), "--score", "l1"])
    assert bad.exit_code != 0 and "--score" in bad.output
