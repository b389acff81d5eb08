"""KNN engine: faiss against the numpy brute force, leave-one-out, padding, persistence, GPU path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthperf.selective import EuclideanScore, KNNIndex, knn_search
from synthperf.selective import knn as knn_mod
from synthperf.selective.knn import brute_force_knn


def _sorted_rows(d: np.ndarray) -> np.ndarray:
    return np.sort(d, axis=1)


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("n,m,d,k", [(1, 3, 4, 1), (37, 11, 5, 4), (300, 257, 17, 7)])
def test_faiss_matches_brute_force(metric, n, m, d, k):
    rng = np.random.default_rng(n * 1000 + m)
    ref, q = rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((m, d)).astype(np.float32)
    kk = min(k, n)
    fd, fi = KNNIndex(metric=metric, backend="cpu", chunk_size=13).build(ref).search(q, kk)
    rd, ri = brute_force_knn(ref, q, kk, metric=metric)
    np.testing.assert_allclose(fd.numpy(), rd, rtol=1e-4, atol=1e-4)
    # the neighbour sets agree (up to ties, which random floats do not have)
    assert np.array_equal(np.sort(fi.numpy(), 1), np.sort(ri, 1))


def test_reference_backend_matches_faiss_chunked():
    rng = np.random.default_rng(1)
    ref, q = rng.standard_normal((120, 6)), rng.standard_normal((50, 6))
    a = KNNIndex(backend="reference", chunk_size=7).build(ref).search(q, 3)
    b = KNNIndex(backend="cpu").build(ref).search(q, 3)
    np.testing.assert_allclose(a[0].numpy(), b[0].numpy(), rtol=1e-4, atol=1e-5)
    assert torch.equal(a[1], b[1])


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_leave_one_out_with_duplicates(backend):
    # rows 0,1,2 identical; row 3 distinct. LOO k=2 for row 0: the two duplicates at 0 distance.
    ref = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [3.0, 4.0 + 1e-3]], dtype=np.float32)
    d, i = KNNIndex(backend=backend).build(ref).search(ref, 2, exclude_self=True)
    for row in range(5):
        assert row not in i[row].tolist()
    np.testing.assert_allclose(d[:3].numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(d[3].numpy(), [1e-6, 25.0], rtol=1e-2)  # 1e-3² and |(3,4)|²
    # k=3: rows 0..2 see the other two duplicates then the (3,4) point at squared distance 25
    d3, _ = KNNIndex(backend=backend).build(ref).search(ref, 3, exclude_self=True)
    np.testing.assert_allclose(d3[0].numpy(), [0.0, 0.0, 25.0], atol=1e-3)


def test_leave_one_out_many_duplicates_self_not_returned():
    # 10 identical rows: with k=2, faiss may return 3 duplicates that do not include the row itself
    ref = np.zeros((10, 3), dtype=np.float32)
    d, i = KNNIndex(backend="cpu").build(ref).search(ref, 2, exclude_self=True)
    assert (i != torch.arange(10)[:, None]).all()
    assert float(d.abs().max()) == 0.0


def test_loo_scores_match_brute_force_random():
    rng = np.random.default_rng(5)
    ref = rng.standard_normal((200, 8)).astype(np.float32)
    ref[100:110] = ref[0]  # duplicates of row 0
    fd, _ = KNNIndex(backend="cpu").build(ref).search(ref, 4, exclude_self=True)
    rd, _ = brute_force_knn(ref, ref, 4, self_offset=0)
    np.testing.assert_allclose(fd.numpy(), rd, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_padding_when_k_exceeds_reference(backend):
    ref = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)
    with pytest.warns(UserWarning, match="padded"):
        d, i = KNNIndex(backend=backend).build(ref).search(np.array([[0.0]], dtype=np.float32), 5)
    np.testing.assert_allclose(d.numpy(), [[0.0, 1.0, 9.0, 9.0, 9.0]], atol=1e-6)
    assert i[0, 3:].tolist() == [-1, -1]
    with pytest.warns(UserWarning, match="padded"):
        d, _ = KNNIndex(backend=backend).build(ref).search(ref, 3, exclude_self=True)
    np.testing.assert_allclose(d[0].numpy(), [1.0, 9.0, 9.0], atol=1e-6)
    assert float(d.max()) < 100.0  # no FLT_MAX garbage


def test_single_point_leave_one_out_raises():
    with pytest.raises(ValueError, match="no neighbour"):
        KNNIndex(backend="cpu").build(np.zeros((1, 2), np.float32)).search(np.zeros((1, 2), np.float32), 1,
                                                                           exclude_self=True)


def test_factory_string_opt_in_and_invalid():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((500, 8)).astype(np.float32)
    idx = KNNIndex(index_factory="HNSW16").build(ref)
    import faiss

    assert isinstance(idx.index_, faiss.IndexHNSWFlat)
    assert isinstance(KNNIndex().build(ref).index_, knn_mod.ExactKNN)  # exact torch engine by default
    assert isinstance(KNNIndex(engine="faiss").build(ref).index_._faiss, faiss.IndexFlatL2)
    d, i = idx.search(ref[:20], 1)
    assert (i[:, 0] == torch.arange(20)).float().mean() >= 0.9  # approximate, but finds itself
    with pytest.raises(ValueError, match="factory"):
        KNNIndex(index_factory="NotAnIndex").build(ref)
    with pytest.raises(ValueError, match="faiss backend"):
        KNNIndex(index_factory="HNSW16", backend="reference")


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_save_load_roundtrip(tmp_path, backend):
    rng = np.random.default_rng(3)
    ref, q = rng.standard_normal((64, 5)).astype(np.float32), rng.standard_normal((9, 5)).astype(np.float32)
    a = KNNIndex(backend=backend).build(ref)
    path = a.save(tmp_path / "sub" / "idx.bin")
    b = KNNIndex(backend=backend).load(path)
    assert (b.ntotal_, b.d_) == (64, 5)
    torch.testing.assert_close(a.search(q, 3)[0], b.search(q, 3)[0])
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a faiss index")
    with pytest.raises(ValueError, match="corrupt"):
        KNNIndex().load(bad)
    with pytest.raises(FileNotFoundError):
        KNNIndex().load(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="metric"):
        KNNIndex(metric="ip").load(path)


def test_gpu_path_taken_when_faiss_has_gpus(monkeypatch):
    """The GPU branch (index_cpu_to_gpu) is shared code: emulate a GPU faiss on CPU."""
    import faiss

    calls = []
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: object(), raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", lambda res, dev, index: calls.append(dev) or index, raising=False)
    monkeypatch.setattr(faiss, "index_gpu_to_cpu", lambda index: index, raising=False)
    assert knn_mod.faiss_gpu_usable("cuda:0")
    assert not knn_mod.faiss_gpu_usable("cpu")
    rng = np.random.default_rng(4)
    ref, q = rng.standard_normal((40, 4)).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32)
    idx = KNNIndex(device="cuda:0", engine="faiss").build(ref)
    assert idx.on_gpu_ and calls == [0]
    rd, _ = brute_force_knn(ref, q, 2)
    np.testing.assert_allclose(idx.search(q, 2)[0].numpy(), rd, rtol=1e-4, atol=1e-5)


def test_no_gpu_means_cpu_index():
    assert not knn_mod.faiss_gpu_usable(None)
    idx = KNNIndex(device="cpu").build(np.zeros((3, 2), np.float32))
    assert not idx.on_gpu_


def test_bad_inputs():
    idx = KNNIndex().build(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="dimension"):
        idx.search(np.zeros((2, 4), np.float32), 1)
    with pytest.raises(ValueError, match="NaN"):
        idx.search(np.full((2, 3), np.nan, np.float32), 1)
    with pytest.raises(ValueError, match="exclude_self"):
        idx.search(np.zeros((2, 3), np.float32), 1, exclude_self=True)
    with pytest.raises(RuntimeError, match="build"):
        KNNIndex().search(np.zeros((2, 3), np.float32), 1)
    with pytest.raises(ValueError, match="metric"):
        KNNIndex(metric="cosine")
    with pytest.raises(ValueError, match="k must be"):
        idx.search(np.zeros((2, 3), np.float32), 0)
    with pytest.raises(ValueError, match="backend"):
        KNNIndex(backend="triton")


def test_knn_search_helper_returns_torch():
    d, i = knn_search(torch.eye(3), torch.eye(3), 1)
    assert d.dtype == torch.float32 and i.dtype == torch.int64
    assert i[:, 0].tolist() == [0, 1, 2]


def test_acceptance_5000x32_matches_brute_force():
    """Acceptance: 5000x32 reference, EuclideanScore scores (rel 1e-4) and selections vs brute force."""
    g = torch.Generator().manual_seed(11)
    ref, cal, q = (torch.randn(n, 32, generator=g) for n in (5000, 500, 700))
    score = EuclideanScore(k=5, stat="mean").fit(X=ref, Y=cal)
    thr = score.set_threshold(0.9)

    def brute(x):
        d2 = torch.cdist(x.double(), ref.double()).pow(2)
        return d2.topk(5, largest=False).values.sqrt().mean(1)  # arithmetic mean of distances

    ref_cal, ref_q = brute(cal), brute(q)
    torch.testing.assert_close(score.scores.double(), ref_cal, rtol=1e-4, atol=0)
    out = score.select(q)
    torch.testing.assert_close(out["score"].double(), ref_q, rtol=1e-4, atol=0)
    expected_thr = torch.quantile(ref_cal, 0.9)
    torch.testing.assert_close(thr.double(), expected_thr, rtol=1e-4, atol=0)
    far = (ref_q - expected_thr).abs() > 1e-3 * expected_thr  # skip knife-edge ties with the threshold
    assert torch.equal(out["selected"][far], (ref_q < expected_thr)[far])
    # no calibration set: leave-one-out self-scores
    loo = EuclideanScore(k=5, stat="mean").fit(X=ref[:1000]).scores
    d2 = torch.cdist(ref[:1000].double(), ref[:1000].double()).pow(2)
    d2.fill_diagonal_(float("inf"))
    torch.testing.assert_close(loo.double(), d2.topk(5, largest=False).values.sqrt().mean(1), rtol=1e-4, atol=0)


def test_progress_enabled_search_and_index_give_same_results():
    import synthperf

    rng = np.random.default_rng(9)
    ref, q = rng.standard_normal((50, 3)).astype(np.float32), rng.standard_normal((20, 3)).astype(np.float32)
    quiet = KNNIndex(chunk_size=8).build(ref).search(q, 2)
    synthperf.enable_progress()
    try:
        loud = KNNIndex(chunk_size=8).build(ref).search(q, 2)
    finally:
        synthperf.disable_progress()
    assert torch.equal(quiet[0], loud[0]) and torch.equal(quiet[1], loud[1])


@pytest.mark.gpu
def test_faiss_gpu_index_matches_reference():
    """On a CUDA machine with faiss-gpu: GpuIndexFlat results equal the numpy reference (CPU twin:
    test_gpu_path_taken_when_faiss_has_gpus)."""
    if not knn_mod.faiss_gpu_usable("cuda"):
        pytest.skip("the installed faiss is a CPU build (install the faiss-gpu extra)")
    rng = np.random.default_rng(10)
    ref, q = rng.standard_normal((3000, 16)).astype(np.float32), rng.standard_normal((500, 16)).astype(np.float32)
    idx = KNNIndex(device="cuda", engine="faiss").build(torch.from_numpy(ref).cuda())
    assert idx.on_gpu_
    d, i = idx.search(torch.from_numpy(q).cuda(), 4)
    assert d.device.type == "cuda"
    rd, _ = brute_force_knn(ref, q, 4)
    np.testing.assert_allclose(d.cpu().numpy(), rd, rtol=1e-4, atol=1e-4)
    dl, _ = idx.search(torch.from_numpy(ref).cuda(), 4, exclude_self=True)
    np.testing.assert_allclose(dl.cpu().numpy(), brute_force_knn(ref, ref, 4, self_offset=0)[0], rtol=1e-4, atol=1e-4)
