"""The certified pruned ELS path of PatchScore against the exact path (docs/theory.md section 12)."""

from __future__ import annotations

import math

import pytest
import torch

from critdiff.data import load
from critdiff.scores import PatchScore
from critdiff.scores._kmeans import assign, dedup_rows
from critdiff.scores._pruned import PrunedPool
from oracles import assert_paths_close


@pytest.fixture(scope="module")
def digits():
    x, y = load("mnist:n=20,size=12")
    return x.to(torch.float64), y


def noisy(x, sigmas, seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.tensor(sigmas, dtype=torch.float64).reshape(-1, 1, 1, 1)
    return x[: len(sigmas)] + s * torch.randn(x[: len(sigmas)].shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("tol", [1e-2, 1e-4, 1e-7])
@pytest.mark.parametrize("seed", [0, 1])
def test_measured_error_within_certified_bound(digits, tol, seed):
    x, _ = digits
    exact = PatchScore(x, "square:3", tol=0)
    fast = PatchScore(x, "square:3", tol=tol, n_clusters=64)
    sigmas = [0.02, 0.1, 0.3, 1.0, 3.0]
    q = noisy(x, sigmas, seed)
    err = (fast(q, sigmas) - exact(q, sigmas)).abs().max().item()
    assert fast.last_bound <= tol * 2.0 * (1 + 1e-6)  # value range of [-1, 1] data is 2
    assert err <= fast.last_bound + 1e-12
    # per sample too: the bound is per call, so check each sigma alone
    for s in (0.02, 1.0):
        qs = noisy(x, [s], seed + 7)
        e = (fast(qs, s) - exact(qs, s)).abs().max().item()
        assert e <= fast.last_bound + 1e-12


def test_pruning_skips_clusters_at_small_sigma(digits):
    """The bound is not vacuous: at small sigma some clusters are skipped (bound > 0, work saved)."""
    x, _ = digits
    fast = PatchScore(x, "square:3", tol=1e-3, n_clusters=64)
    q = noisy(x, [0.02], 3)
    fast(q, 0.02)
    assert 0.0 < fast.last_bound <= 2e-3
    pool = fast._pruned[(None, "cpu")]
    qq = 0.02 * torch.randn(5, pool.keys.shape[1], dtype=torch.float64) + pool.keys[:5]
    skip, _, _ = pool.plan(qq, torch.full((5,), 1 / 0.02**2, dtype=torch.float64), math.log(1e-3))
    assert float(skip.double().mean()) > 0.5


def test_tol_zero_is_the_exact_path_bit_for_bit(digits):
    x, _ = digits
    q = noisy(x, [0.05, 0.5, 2.0], 4)
    ref = PatchScore(x, "square:3")  # small pool: tol=None means exact
    assert ref.tol == 0.0
    model = PatchScore(x, "square:3", tol=0)
    for dt in (torch.float32, torch.float64):
        # two instances on the exact path (checked below: no pruned pool): the dtype's precision, not bits
        assert_paths_close(model(q.to(dt), 0.3), ref(q.to(dt), 0.3))
    assert model._pruned == {} and model.last_bound == 0.0


def test_dedup_rows_is_exact():
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 3, (200, 4), generator=g).to(torch.float64)  # many exact duplicates
    first, counts = dedup_rows(base)
    uniq, ucounts = torch.unique(base, dim=0, return_counts=True)
    assert len(first) == len(uniq) and int(counts.sum()) == 200
    got = {tuple(base[i].tolist()): int(c) for i, c in zip(first, counts)}
    assert got == {tuple(r.tolist()): int(c) for r, c in zip(uniq, ucounts)}


def test_dedup_gives_the_same_answer_as_no_dedup(digits):
    """All clusters kept (tol ~ 0): the de-duplicated pool with log multiplicities equals the exact path."""
    x, _ = digits
    x = torch.cat([x, x.roll(3, dims=-1)])  # circular shifts repeat every periodic patch exactly
    exact = PatchScore(x, "square:3", tol=0)
    fast = PatchScore(x, "square:3", tol=1e-300, n_clusters=16)
    q = noisy(x, [0.05, 0.3, 1.0, 5.0], 5)
    s = [0.05, 0.3, 1.0, 5.0]
    torch.testing.assert_close(fast(q, s), exact(q, s), rtol=0, atol=1e-12)
    pool = fast._pruned[(None, "cpu")]
    assert pool.n_unique <= exact.n_pool // 2 and pool.n_pool == exact.n_pool


@pytest.mark.parametrize(
    "kw",
    [dict(equivariant=False), dict(pool="valid"), dict(boundary="zero"), dict(boundary="zero", pool="valid")],
)
def test_variants_with_tol(digits, kw):
    x, _ = digits
    exact = PatchScore(x, "square:3", tol=0, **kw)
    fast = PatchScore(x, "square:3", tol=1e-4, n_clusters=32, **kw)
    q = noisy(x, [0.03, 0.3, 2.0], 6)
    err = (fast(q, [0.03, 0.3, 2.0]) - exact(q, [0.03, 0.3, 2.0])).abs().max().item()
    assert err <= fast.last_bound + 1e-12 and fast.last_bound <= 2e-4 * (1 + 1e-6)
    if not kw.get("equivariant", True):
        assert fast.last_bound == 0.0 and err == 0.0  # LS stays exact


def test_conditional_with_tol(digits):
    x, y = digits
    exact = PatchScore(x, "square:3", labels=y, tol=0)
    fast = PatchScore(x, "square:3", labels=y, tol=1e-4, n_clusters=8)
    q = noisy(x, [0.05, 0.05, 0.5, 0.5], 7)
    lab = torch.tensor([0, 3, 3, 9])
    err = (fast(q, 0.1, lab) - exact(q, 0.1, lab)).abs().max().item()
    assert err <= fast.last_bound + 1e-12 <= 2e-4 + 1e-12
    assert {k[0] for k in fast._pruned} == {0, 3, 9}


def test_float32_within_bound_plus_rounding(digits):
    x, _ = digits
    x = x.to(torch.float32)
    exact = PatchScore(x, "square:3", tol=0)
    fast = PatchScore(x, "square:3", tol=1e-4, n_clusters=32)
    for s in ([0.05, 1.0], [0.002, 0.002]):  # tiny sigma: |log Z| ~ 1e4, the certified bound must stay <= tol R
        q = noisy(x.double(), s, 8).float()
        d = fast(q, s)
        assert d.dtype == torch.float32
        assert fast.last_bound <= 2e-4 * (1 + 1e-6)
        assert (d - exact(q, s)).abs().max().item() <= fast.last_bound + 1e-5


def test_assign_is_nearest_centroid():
    g = torch.Generator().manual_seed(2)
    p, c = torch.randn(300, 5, generator=g), torch.randn(7, 5, generator=g)
    assert torch.equal(assign(p, c), torch.cdist(p.double(), c.double()).argmin(1))


def test_pool_geometry_bounds_hold():
    g = torch.Generator().manual_seed(3)
    keys, vals = torch.randn(500, 6, generator=g, dtype=torch.float64), torch.rand(500, 1, generator=g, dtype=torch.float64)
    pool = PrunedPool.from_tensors(keys, vals, 10)
    q = torch.randn(20, 6, generator=g, dtype=torch.float64)
    inv = torch.full((20,), 1 / 0.7**2, dtype=torch.float64)
    u, low = pool.bounds(q, inv)
    logz = torch.stack([torch.logsumexp(pool.logm[pool.cluster == c] - 0.5 * inv[:, None] * torch.cdist(q, pool.keys[pool.cluster == c]) ** 2, dim=1)
                        for c in range(pool.n_clusters)], dim=1)
    assert bool((low <= logz + 1e-12).all()) and bool((logz <= u + 1e-12).all())


@pytest.mark.parametrize("tol,match", [(-1e-3, "tol"), (1.0, "tol"), ("a", "tol"), (True, "tol")])
def test_bad_tol(digits, tol, match):
    with pytest.raises(ValueError, match=match):
        PatchScore(digits[0], "square:3", tol=tol)


# ---- device plumbing ------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ["patch", "empirical"])
def test_device_argument(digits, cls):
    from critdiff.scores import EmpiricalScore

    x, _ = digits
    make = (lambda **kw: PatchScore(x, "square:3", **kw)) if cls == "patch" else (lambda **kw: EmpiricalScore(x, **kw))
    q = noisy(x, [0.3, 0.3], 9)
    # two instances built on the same device: the dtype's precision, not bits
    assert_paths_close(make(device="cpu")(q, 0.3), make()(q, 0.3))
    with pytest.raises(ValueError, match="device"):
        make(device="nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            make(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pruned_path_on_cuda_matches_cpu(digits):
    x, _ = digits
    q = noisy(x, [0.05, 1.0], 10)
    cpu = PatchScore(x, "square:3", tol=1e-4, n_clusters=16)(q, [0.05, 1.0])
    gpu = PatchScore(x, "square:3", tol=1e-4, n_clusters=16, device="cuda")(q.cuda(), [0.05, 1.0])
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=4e-4)


@pytest.mark.parametrize("kw", [dict(), dict(equivariant=False), dict(boundary="zero", pool="valid")])
def test_sdpa_kernel_reproduces_the_streaming_kernel(digits, kw):
    """The augmented-key logits as an attention product: F.scaled_dot_product_attention, float64, CPU."""
    x, y = digits
    q = noisy(x, [0.05, 0.3, 1.0, 5.0], 11)
    s = [0.05, 0.3, 1.0, 5.0]
    ref = PatchScore(x, "square:3", tol=0, labels=y, **kw)
    att = PatchScore(x, "square:3", tol=0, labels=y, kernel="sdpa", **kw)
    torch.testing.assert_close(att(q, s), ref(q, s), rtol=0, atol=1e-12)
    torch.testing.assert_close(att(q, s, torch.tensor([1, 2, 3, 4])), ref(q, s, torch.tensor([1, 2, 3, 4])), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="kernel"):
        PatchScore(x, "square:3", kernel="flash")


def test_autograd_through_the_pruned_path(digits):
    """Gradients flow through the cluster-major merge and match the exact path's to the bound's scale."""
    x, _ = digits
    exact = PatchScore(x, "square:3", tol=0)
    fast = PatchScore(x, "square:3", tol=1e-9, n_clusters=64)
    q = noisy(x, [0.04], 12)
    grads = []
    for model in (exact, fast):
        qq = q.clone().requires_grad_(True)
        (model(qq, 0.04) * torch.linspace(-1, 1, 144, dtype=torch.float64).reshape(1, 1, 12, 12)).sum().backward()
        grads.append(qq.grad)
    assert 0.0 < fast.last_bound  # some clusters were skipped, so the cluster-major path ran
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=1e-5)


def test_kmeans_tree_labels_cover_all_points():
    from critdiff.scores._kmeans import kmeans_tree

    g = torch.Generator().manual_seed(4)
    p = torch.randn(2000, 3, generator=g)
    lab = kmeans_tree(p, 50)
    assert lab.shape == (2000,) and int(lab.min()) >= 0
    assert 30 <= len(torch.unique(lab)) <= 70  # about k clusters


# ---- the pool read by index, chunked de-duplication ----------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(pool="valid"), dict(boundary="zero"), dict(boundary="zero", pool="valid")])
def test_patch_rows_read_exactly_the_pool_patches(digits, kw):
    """Rows read by index equal the unfolded pool (gather_patches) bit for bit, keys shifted as the exact path does."""
    from critdiff.scores._patchrows import PatchRows

    x, _ = digits
    model = PatchScore(x[:5].float(), "square:5", **kw)
    rows = PatchRows(model._images, model.stencil, model.boundary, model._valid, model._shift)
    p, v = model._patches(model._images)  # [1, M, D] shifted in float32, [1, M, C]
    idx = torch.randperm(rows.n_rows, generator=torch.Generator().manual_seed(0))
    raw_k, raw_v = rows.raw(idx)
    assert rows.n_rows == p.shape[1] and torch.equal(raw_v, v[0][idx])
    assert torch.equal(rows.keys(idx, torch.float32), p[0][idx])
    assert torch.equal(raw_k.reshape(len(idx), -1, 1) - model._shift.float(), p[0][idx].reshape(len(idx), -1, 1))


def test_dedup_in_chunks_equals_torch_unique():
    from critdiff.scores._kmeans import dedup_source

    g = torch.Generator().manual_seed(5)
    rows = torch.randint(0, 3, (1000, 3), generator=g).to(torch.float32)
    first, counts = dedup_source(lambda i: rows[i], len(rows), chunk=64)  # 16 chunks merged
    uniq, ucounts = torch.unique(rows, dim=0, return_counts=True)
    got = {tuple(rows[i].tolist()): int(c) for i, c in zip(first, counts)}
    assert got == {tuple(r.tolist()): int(c) for r, c in zip(uniq, ucounts)}


def test_dedup_splits_hash_collisions_exactly(monkeypatch):
    """Every hash colliding (a constant hash): the segment is split by exact comparison."""
    from critdiff.scores import _kmeans

    monkeypatch.setattr(_kmeans, "_hashes", lambda take, idx, gen, k: torch.zeros(len(idx), 2, dtype=torch.float64))
    g = torch.Generator().manual_seed(6)
    rows = torch.randint(0, 2, (300, 3), generator=g).to(torch.float64)
    first, counts = _kmeans.dedup_source(lambda i: rows[i], len(rows), chunk=100)
    uniq, ucounts = torch.unique(rows, dim=0, return_counts=True)
    got = {tuple(rows[i].tolist()): int(c) for i, c in zip(first, counts)}
    assert got == {tuple(r.tolist()): int(c) for r, c in zip(uniq, ucounts)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_streaming_with_a_fixed_shift_matches_the_online_kernel(dtype):
    """The fixed-shift stream equals the online softmax; a shift far below the row maximum overflows and is redone."""
    from critdiff.scores import _softmax as K

    g = torch.Generator().manual_seed(7)
    keys, vals = torch.randn(3000, 4, generator=g, dtype=torch.float64), torch.rand(3000, 1, generator=g, dtype=torch.float64)
    pool = PrunedPool.from_tensors(keys, vals, 12)
    q = torch.randn(40, 4, generator=g, dtype=torch.float64).to(dtype)
    inv = torch.full((40,), 1 / 0.4**2, dtype=torch.float64)
    q_aug = K.augment_queries(q[None], inv, with_logw=True)[0]
    k, v = pool.augmented(dtype, 0, pool.n_unique)
    ref = K.softmax_average(q_aug[None], [(k[None, :, :-1], v[None])])[0]
    _, _, g_max = pool.plan(q.double(), inv, math.log(1e-3))
    shift = g_max + 0.5 * inv * (q.double() ** 2).sum(1)
    shift[:5] -= 2000.0  # these rows overflow e^{L - shift}
    out = pool._stream(q_aug, shift, differentiable=False)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cluster_major_in_the_centred_frame_equals_the_full_average(dtype):
    """Every cluster kept: the centred-frame cluster-major evaluation (eqs. 12.6-12.8) is the softmax average over the pool."""
    from critdiff.scores import _softmax as K

    g = torch.Generator().manual_seed(8)
    keys = (torch.randn(2000, 5, generator=g, dtype=torch.float64) + 3.0).to(dtype)
    vals = torch.rand(2000, 2, generator=g, dtype=torch.float64).to(dtype)
    pool = PrunedPool.from_tensors(keys, vals, 9)
    assert pool.allow32 == (dtype == torch.float32)
    q = keys[:30].double() + 0.3 * torch.randn(30, 5, generator=g, dtype=torch.float64)
    inv = torch.full((30,), 1 / 0.3**2, dtype=torch.float64)
    q_aug = K.augment_queries(q[None], inv, with_logw=False)
    ref = K.softmax_average(q_aug, [(K.augment_keys(keys.double())[None], K.augment_values(vals.double())[None])])[0]
    keep = torch.ones(30, pool.n_clusters, dtype=torch.bool)
    out, lse, _ = pool._cluster_major(K.augment_queries(q[None], inv, with_logw=True)[0], q, inv, keep, False)
    log_z = torch.logsumexp(-0.5 * inv[:, None] * torch.cdist(q, keys.double()) ** 2, 1)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-5)
    torch.testing.assert_close(lse - 0.5 * inv * (q * q).sum(1), log_z, rtol=0, atol=1e-9 if dtype == torch.float64 else 1e-4)
