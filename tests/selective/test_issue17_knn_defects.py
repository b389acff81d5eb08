"""Issue 17 "Found by a fuzz": regression tests for the KNN defects (float64 embeddings cast to
float32 silently; ``save_index`` reusing a stale index on a fit with other data)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("faiss")


@pytest.mark.parametrize("scale,offset", [(1e-30, 0.0), (1.0, 1e8)])
def test_float64_embeddings_give_the_exact_neighbours(scale, offset):
    """Brute-force float64 neighbours at scale 1e-30 / offset 1e8 (float32 makes all distances 0)."""
    from synthperf.selective import knn_search

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((50, 3)) * scale + offset
    q = rng.standard_normal((10, 3)) * scale + offset
    _, idx = knn_search(torch.tensor(ref), torch.tensor(q), 1, backend="cpu")
    want = np.argmin(((q[:, None] - ref[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(idx[:, 0].numpy(), want)


def test_save_index_second_fit_with_other_data_rebuilds(tmp_path):
    from synthperf.selective import EuclideanScore

    g = torch.Generator().manual_seed(0)
    a = torch.randn(40, 3, generator=g)
    b = torch.randn(40, 3, generator=g) + 100
    path = tmp_path / "idx.bin"
    EuclideanScore(k=1, save_index=path).fit(a)
    fresh = EuclideanScore(k=1).fit(b).score(b[:3])
    reused = EuclideanScore(k=1, save_index=path).fit(b).score(b[:3])
    torch.testing.assert_close(reused, fresh)


@pytest.mark.parametrize("engine", ["auto", "torch", "faiss"])
def test_build_leaves_the_callers_float64_reference_unchanged(engine):
    """The engines centre and scale a float64 working copy, never the caller's tensor."""
    from synthperf.selective import KNNIndex

    ref = torch.randn(30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 5 + 2
    before = ref.clone()
    KNNIndex(engine=engine).build(ref)
    torch.testing.assert_close(ref, before, rtol=0, atol=0)


def test_engine_auto_resolves_to_faiss_on_cpu_and_torch_for_shards(tmp_path):
    from synthperf.selective import KNNIndex
    from synthperf.selective.knn_exact import ShardedReference

    ref = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    auto = KNNIndex().build(ref)
    assert auto.engine == "auto" and auto.engine_ == "faiss"
    assert KNNIndex(engine="torch").build(ref).engine_ == "torch"
    np.save(tmp_path / "s.npy", ref.numpy())
    assert KNNIndex().build(ShardedReference([tmp_path / "s.npy"])).engine_ == "torch"
    q = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    for a, b in zip(auto.search(q, 4), KNNIndex(engine="torch").build(ref).search(q, 4)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the same certified answer
    with pytest.raises(ValueError, match="engine must be one of"):
        KNNIndex(engine="bogus")
