"""Sample-quality metrics of the guidance experiment (DESIGN.md section 5), from any classifier.

A classifier is any object with ``logits(x [B,C,H,W]) -> [B, K]`` and ``embed(x) -> [B, F]`` (the
feature space of the Frechet distance). Metrics:

- class alignment: ``correct`` (argmax logits == intended class) and ``logp`` (log-softmax of the
  intended class), per sample;
- Frechet distance between Gaussians fitted to two feature sets ``[N, F]``:
  ``|mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1^1/2 S_2 S_1^1/2)^1/2)`` (Heusel et al. 2017), float64;
- diversity: the mean pairwise Euclidean distance between features of one set.
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


def _centred(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(f, dtype=np.float64)
    mu = f.mean(0)
    return mu, (f - mu) / math.sqrt(max(f.shape[0] - 1, 1))


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``f1 [N1, F]`` and ``f2 [N2, F]``.

    With centred, scaled rows ``B_i`` (``S_i = B_i^T B_i``), ``tr((S_1^1/2 S_2 S_1^1/2)^1/2)`` equals the
    nuclear norm of ``B_1 B_2^T`` (``[N1, N2]``: the eigenvalues of ``S_1 S_2`` are the squared singular
    values of ``B_1 B_2^T``), which is cheap when there are fewer samples than features. float64.
    """
    mu1, b1 = _centred(f1)
    mu2, b2 = _centred(f2)
    cross = np.linalg.svd(b1 @ b2.T, compute_uv=False).sum()
    return float(((mu1 - mu2) ** 2).sum() + (b1 * b1).sum() + (b2 * b2).sum() - 2 * cross)


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
