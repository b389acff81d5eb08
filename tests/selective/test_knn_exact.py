"""Exact torch KNN engine (issue 15 item 3, issue 17): certified re-ranking against the float64
brute force, leave-one-out, float64 inputs at extreme scale/offset, fingerprinted save_index,
memory-mapped shards, the faiss screening engine and the CUDA selection logic."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthperf.selective import EuclideanScore, KNNIndex
from synthperf.selective.knn import brute_force_knn, meta_path
from synthperf.selective.knn_exact import ExactKNN, ShardedReference, data_fingerprint, screen_unit_roundoff


def _gauss(n, d, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("margin", [0, 8])
def test_matches_float64_brute_force_small_blocks(metric, margin):
    ref, q = _gauss(2500, 24, 1, np.float32), _gauss(300, 24, 2, np.float32)
    eng = ExactKNN(metric=metric, margin=margin, block_elems=4096, threads=1).build(torch.from_numpy(ref))
    d, i = eng.search(torch.from_numpy(q), 6)
    rd, ri = brute_force_knn(ref, q, 6, metric=metric)
    assert np.array_equal(i.numpy(), ri)
    np.testing.assert_allclose(d.numpy(), rd, rtol=1e-12, atol=1e-12)  # float64 re-ranking


@pytest.mark.parametrize("n", [64, 416, 2048, 2051])
def test_grouped_block_topk_equals_topk(n):
    from synthperf.selective.knn_exact import _block_topk

    g = torch.Generator().manual_seed(n)
    K = torch.randn(37, n, generator=g)
    K[:, ::5] = K[:, :1]  # many ties
    v, i = _block_topk(K, 13)
    want = K.topk(13, dim=1, largest=False).values
    torch.testing.assert_close(v.sort(1).values, want, rtol=0, atol=0)
    torch.testing.assert_close(K.gather(1, i), v, rtol=0, atol=0)
    assert all(len(set(r.tolist())) == 13 for r in i)


def test_certificate_falls_back_on_near_ties():
    """Points on a sphere around the query: gaps far below float32 screening error -> the
    certificate fails and the float64 brute force gives the exact order."""
    rng = np.random.default_rng(3)
    u = rng.standard_normal((400, 16))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    ref = u * (1.0 + 1e-9 * np.arange(400))[:, None]   # radii differ by 1e-9 relative
    q = np.zeros((2, 16))
    eng = ExactKNN(margin=2, threads=1).build(torch.from_numpy(ref))
    d, i = eng.search(torch.from_numpy(q), 3)
    assert eng.fallback_rows_ == 2
    assert i.tolist() == [[0, 1, 2], [0, 1, 2]]
    np.testing.assert_allclose(d.numpy()[0], (1.0 + 1e-9 * np.arange(3)) ** 2, rtol=1e-14)


def test_leave_one_out_by_identity_and_padding():
    ref = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    d, i = ExactKNN(threads=1).build(torch.from_numpy(ref)).search(torch.from_numpy(ref), 2, exclude_self=True)
    for row in range(4):
        assert row not in i[row].tolist()
    assert d[:3].abs().max() == 0.0 and d[3].tolist() == [25.0, 25.0]
    d, i = ExactKNN(threads=1).build(torch.from_numpy(ref)).search(torch.from_numpy(ref[:1]), 6)
    assert i[0, 4:].tolist() == [-1, -1] and torch.isinf(d[0, 4:]).all()
    rnd = _gauss(300, 5, 4)
    d, i = ExactKNN(margin=3, block_elems=2048, threads=1).build(torch.from_numpy(rnd)).search(
        torch.from_numpy(rnd[100:200]), 4, exclude_self=True, row_offset=100)
    rd, ri = brute_force_knn(rnd, rnd[100:200], 4, self_offset=100)
    assert np.array_equal(i.numpy(), ri)


@pytest.mark.parametrize("scale,offset", [(1e-30, 0.0), (1.0, 1e8), (1e30, -3e31)])
def test_float64_extreme_scale_and_offset(scale, offset):
    """Issue 17: float64 data are centred/scaled before screening and never cast down."""
    base, qb = _gauss(600, 6, 5), _gauss(40, 6, 6)
    ref, q = base * scale + offset, qb * scale + offset
    idx = KNNIndex(backend="cpu").build(ref)
    d, i = idx.search(q, 3)
    assert d.dtype == torch.float64
    want = np.argsort(((q[:, None] - ref[None]) ** 2).sum(-1), axis=1, kind="stable")[:, :3]
    assert np.array_equal(i.numpy(), want)
    exact = np.take_along_axis(((q[:, None] - ref[None]) ** 2).sum(-1), want, axis=1)
    np.testing.assert_allclose(d.numpy(), exact, rtol=1e-10)


def test_euclidean_score_max_rel_error_vs_float64_brute_force():
    """Acceptance: max relative error of the scores vs float64 brute force < 1e-4."""
    g = torch.Generator().manual_seed(7)
    ref, cal, q = (torch.randn(n, 32, generator=g) for n in (4000, 300, 500))
    s = EuclideanScore(k=5, stat="mean").fit(X=ref, Y=cal)

    def brute(x):
        return torch.cdist(x.double(), ref.double()).topk(5, largest=False).values.mean(1)

    assert float(((s.scores.double() - brute(cal)).abs() / brute(cal)).max()) < 1e-6
    s.set_threshold(0.9)
    out = s.select(q)
    assert float(((out["score"].double() - brute(q)).abs() / brute(q)).max()) < 1e-6


def test_save_index_fingerprint_rebuilds_stale_index(tmp_path):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g) + 100
    path = tmp_path / "idx.bin"
    EuclideanScore(k=1, save_index=path).fit(a)
    assert meta_path(path).is_file()
    with pytest.warns(UserWarning, match="fingerprint mismatch"):
        reused = EuclideanScore(k=1, save_index=path).fit(b).score(b[:3])
    torch.testing.assert_close(reused, EuclideanScore(k=1).fit(b).score(b[:3]))
    with pytest.warns(UserWarning, match="Loading existing index"):  # same data: reused
        EuclideanScore(k=1, save_index=path).fit(b)
    meta_path(path).unlink()  # an index of unknown data is not trusted
    with pytest.warns(UserWarning, match="no fingerprint"):
        EuclideanScore(k=1, save_index=path).fit(b)
    assert data_fingerprint(a) != data_fingerprint(a.double()) != data_fingerprint(b)


def test_sharded_mmap_equals_in_memory(tmp_path):
    ref, q = _gauss(1500, 12, 8, np.float32), _gauss(120, 12, 9, np.float32)
    paths = []
    for j, (s, e) in enumerate([(0, 700), (700, 701), (701, 1500)]):
        paths.append(tmp_path / f"shard{j}.npy")
        np.save(paths[-1], ref[s:e])
    sh = ShardedReference(paths)
    assert len(sh) == 1500 and sh.dim == 12
    a = KNNIndex().build(ref).search(q, 5)
    b = KNNIndex().build(sh).search(q, 5)
    assert torch.equal(a[1], b[1])
    torch.testing.assert_close(a[0], b[0], rtol=1e-6, atol=1e-6)
    eng = ExactKNN(block_elems=4096, threads=1).build(sh)
    torch.testing.assert_close(eng.search(torch.from_numpy(q), 5)[1], a[1])
    with pytest.raises(ValueError, match="ShardedReference"):
        KNNIndex(engine="faiss").build(sh)
    with pytest.raises(ValueError, match="paths"):
        ShardedReference([])
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="dimension"):
        ShardedReference([paths[0], bad])


def test_faiss_screening_engine_same_contract():
    ref, q = _gauss(3000, 16, 10), _gauss(200, 16, 11)
    a = KNNIndex(engine="faiss").build(ref)
    b = KNNIndex().build(ref)
    for kw in ({}, {"exclude_self": True}):
        x = ref if kw else q
        da, ia = a.search(x, 4, **kw)
        db, ib = b.search(x, 4, **kw)
        assert torch.equal(ia, ib)
        torch.testing.assert_close(da, db, rtol=1e-12, atol=1e-12)


def test_cuda_selection_logic_on_cpu():
    """CPU twin of the CUDA path: backend='cuda' without a GPU is refused with a clear error;
    the unit roundoff accounts for TF32 / reduced float32 matmul precision."""
    if not torch.cuda.is_available():
        idx = KNNIndex(backend="cpu", device="cuda")  # auto-style device request falls back to CPU
        assert idx._engine_device(torch.device("cpu")).type == "cpu"
    assert screen_unit_roundoff(torch.float64, torch.device("cpu")) == 2.0 ** -53
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        assert screen_unit_roundoff(torch.float32, torch.device("cpu")) == 2.0 ** -8
    finally:
        torch.set_float32_matmul_precision(old)
    assert screen_unit_roundoff(torch.float32, torch.device("cpu")) == 2.0 ** -24
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        assert screen_unit_roundoff(torch.float32, torch.device("cuda")) == 2.0 ** -11
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32


@pytest.mark.gpu
def test_cuda_engine_matches_brute_force():
    """On a CUDA machine: the torch engine on the GPU (CPU twin: the tests above)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (its CPU twin runs)")
    ref, q = _gauss(5000, 32, 12, np.float32), _gauss(400, 32, 13, np.float32)
    idx = KNNIndex(backend="cuda").build(torch.from_numpy(ref).cuda())
    assert idx.on_gpu_
    d, i = idx.search(torch.from_numpy(q).cuda(), 5)
    assert d.device.type == "cuda"
    rd, ri = brute_force_knn(ref, q, 5)
    assert np.array_equal(i.cpu().numpy(), ri)


def test_bad_options():
    with pytest.raises(ValueError, match="margin"):
        ExactKNN(margin=-1)
    with pytest.raises(ValueError, match="precision"):
        ExactKNN(precision="float16")
    with pytest.raises(ValueError, match="engine"):
        KNNIndex(engine="annoy")
    with pytest.raises(RuntimeError, match="build"):
        ExactKNN().search(torch.zeros(1, 2), 1)
