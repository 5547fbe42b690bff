"""Sample-quality metrics of the guidance experiment (DESIGN.md section 5), from any classifier.

A classifier is any object with ``logits(x [B,C,H,W]) -> [B, K]`` and ``embed(x) -> [B, F]`` (the
feature space of the Frechet distance). Metrics:

- class alignment: ``correct`` (argmax logits == intended class) and ``logp`` (log-softmax of the
  intended class), per sample;
- Frechet distance between Gaussians fitted to two feature sets ``[N, F]``:
  ``|mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1^1/2 S_2 S_1^1/2)^1/2)`` (Heusel et al. 2017), float64;
- diversity: the mean pairwise Euclidean distance between features of one set;
- precision and recall (Kynkaanniemi et al. 2019, "Improved precision and recall metric for assessing generative
  models"): each set's manifold is the union of balls around its points with radius the distance to the point's
  ``k``-th nearest neighbour in its own set (``k = 3``); precision is the fraction of generated samples inside the
  real manifold, recall the fraction of real samples inside the generated one. float64, Euclidean, in the
  classifier's features.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def check_classifier(classifier) -> None:
    """Raise a one-line TypeError unless ``classifier`` has callable ``logits`` and ``embed``."""
    for name in ("logits", "embed"):
        if not callable(getattr(classifier, name, None)):
            raise TypeError(f"classifier: expected an object with logits(x) and embed(x), missing {name!r}")


@torch.no_grad()
def classify(classifier, x: torch.Tensor, intended: torch.Tensor, batch: int = 256) -> dict[str, torch.Tensor]:
    """Per-sample ``correct [B]`` (bool), ``logp [B]`` (float64) of the intended class, and ``embed [B, F]``."""
    logits, feats = [], []
    for k in range(0, x.shape[0], batch):
        logits.append(classifier.logits(x[k:k + batch]).to(torch.float64).cpu())
        feats.append(classifier.embed(x[k:k + batch]).to(torch.float64).cpu().reshape(min(batch, x.shape[0] - k), -1))
    lg = torch.cat(logits)
    lab = intended.to("cpu", torch.long)
    if lg.ndim != 2 or lg.shape[0] != x.shape[0] or int(lab.max()) >= lg.shape[1]:
        raise ValueError(f"classifier: logits must be [B, K] with K > every intended class, got {tuple(lg.shape)}")
    logp = torch.log_softmax(lg, dim=1).gather(1, lab[:, None])[:, 0]
    return {"correct": lg.argmax(1) == lab, "logp": logp, "embed": torch.cat(feats)}


def gaussian_stats(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[F]`` and covariance ``[F, F]`` (unbiased; zero for a single sample) of features ``[N, F]``."""
    f = np.asarray(f, dtype=np.float64)
    mu = f.mean(0)
    cov = np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1]) if f.shape[0] > 1 else np.zeros((f.shape[1],) * 2)
    return mu, cov


def centred_rows(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mu [F], B [N, F])`` of features ``f [N, F]``: the mean and the centred rows scaled by ``1/sqrt(N - 1)``
    (``S = B^T B``, the unbiased covariance), float64: what :func:`frechet_distance` fits, computed once for a
    reference set that is compared many times (:func:`frechet_of_rows`)."""
    f = np.asarray(f, dtype=np.float64)
    mu = f.mean(0)
    return mu, (f - mu) / math.sqrt(max(f.shape[0] - 1, 1))


def frechet_of_rows(r1: tuple[np.ndarray, np.ndarray], r2: tuple[np.ndarray, np.ndarray]) -> float:
    """:func:`frechet_distance` of two sets given as their :func:`centred_rows`."""
    (mu1, b1), (mu2, b2) = r1, r2
    cross = np.linalg.svd(b1 @ b2.T, compute_uv=False).sum()
    return float(((mu1 - mu2) ** 2).sum() + (b1 * b1).sum() + (b2 * b2).sum() - 2 * cross)


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``f1 [N1, F]`` and ``f2 [N2, F]``.

    With centred, scaled rows ``B_i`` (``S_i = B_i^T B_i``), ``tr((S_1^1/2 S_2 S_1^1/2)^1/2)`` equals the
    nuclear norm of ``B_1 B_2^T`` (``[N1, N2]``: the eigenvalues of ``S_1 S_2`` are the squared singular
    values of ``B_1 B_2^T``), which is cheap when there are fewer samples than features. float64.
    """
    return frechet_of_rows(centred_rows(f1), centred_rows(f2))


def diversity(f: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between the rows of ``f [N, F]`` (NaN for N < 2)."""
    f = np.asarray(f, dtype=np.float64)
    n = f.shape[0]
    if n < 2:
        return float("nan")
    sq = (f * f).sum(1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0, None)
    iu = np.triu_indices(n, 1)
    return float(np.sqrt(d2[iu]).mean())


PR_K = 3  # Kynkaanniemi et al. 2019's neighbourhood size


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``[Na, Nb]`` (float64, clipped at 0 against cancellation)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.clip((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0, None)


def knn_radii(f: np.ndarray, k: int = PR_K) -> np.ndarray:
    """``[N]`` distance of each row of ``f [N, F]`` to its ``k``-th nearest other row (the point itself excluded;
    ``inf`` when the set has at most ``k`` rows, so every point of a too-small set covers everything)."""
    f = np.asarray(f, dtype=np.float64)
    if f.shape[0] <= k:
        return np.full(f.shape[0], np.inf)
    d2 = _sq_dists(f, f)
    np.fill_diagonal(d2, np.inf)
    return np.sqrt(np.partition(d2, k - 1, axis=1)[:, k - 1])


def coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of ``points [N, F]`` inside at least one ball ``|p - centre_j| <= radii_j`` (NaN for no points)."""
    if len(points) == 0:
        return float("nan")
    inside = _sq_dists(points, centres) <= np.asarray(radii, dtype=np.float64)[None, :] ** 2
    return float(inside.any(1).mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_K,
                     real_radii: "np.ndarray | None" = None) -> tuple[float, float]:
    """``(precision, recall)`` of generated features ``fake [Ng, F]`` against ``real [Nr, F]`` (module docstring);
    ``real_radii`` may be passed precomputed (:func:`knn_radii` of ``real``), as it does not depend on ``fake``."""
    rr = knn_radii(real, k) if real_radii is None else real_radii
    return coverage(fake, real, rr), coverage(real, fake, knn_radii(fake, k))


def per_class_diversity(f: np.ndarray, label: np.ndarray) -> dict[int, float]:
    """:func:`diversity` of the rows of ``f [N, F]`` of each class in ``label [N]``."""
    label = np.asarray(label)
    return {int(c): diversity(np.asarray(f)[label == c]) for c in np.unique(label)}
