"""Multi-output ridge heads shared by the CPU tiers: regularisation chosen per anchor by leave-one-out CV.

Labels are few (tens to hundreds per group), so the penalty matters more than the model family; RidgeCV's
efficient leave-one-out picks it per anchor at the cost of one fit.
"""

from __future__ import annotations

import numpy as np

ALPHAS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def fit_ridge(x, y: np.ndarray, alphas: tuple[float, ...] = ALPHAS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (coef [k, d], intercept [k], alpha per anchor [k])."""
    return _ridge_cv(x, y, alphas)[:3]


def fit_ridge_with_block(x, block: np.ndarray, y: np.ndarray, scales: tuple[float, ...],
                         alphas: tuple[float, ...] = ALPHAS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ridge on ``[x | block * s]`` with the block's weight ``s`` chosen per anchor from ``scales`` by the same
    leave-one-out error that picks alpha. One penalty over two feature families of different density (thousands of
    sparse n-gram means, a few hundred dense embedding values) favours one of them by their scales alone; letting the
    labels decide the balance, anchor by anchor, is what a second penalty would do at the price of a few fits.

    -> (coef [k, d + block_dim] with the block's columns already multiplied by its scale, so predictions are
    ``[x | block] @ coef.T + intercept``; intercept [k]; alpha per anchor [k]; block scale per anchor [k])."""
    from scipy import sparse

    best: list[np.ndarray] | None = None  # coef, intercept, alpha, scale, leave-one-out score
    for s in scales:
        coef, intercept, alpha, score = _ridge_cv(sparse.hstack([x, sparse.csr_matrix(block * s)]).tocsr(), y, alphas)
        coef[:, x.shape[1]:] *= s
        fit = [coef, intercept, alpha, np.full(len(intercept), s, np.float32), score]
        if best is None:
            best = fit
            continue
        better = score > best[4]
        for kept, new in zip(best, fit):
            kept[better] = new[better]
    return best[0], best[1], best[2], best[3]


def _ridge_cv(x, y: np.ndarray, alphas: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """-> (coef [k, d], intercept [k], alpha [k], leave-one-out score [k]) of one RidgeCV fit, as fresh arrays."""
    from sklearn.linear_model import RidgeCV

    model = RidgeCV(alphas=alphas, alpha_per_target=True).fit(x, y)
    coef = np.atleast_2d(np.array(model.coef_, dtype=np.float32))
    intercept = np.atleast_1d(np.array(model.intercept_, dtype=np.float32))
    alpha = np.broadcast_to(np.asarray(model.alpha_, dtype=np.float32), intercept.shape).copy()
    score = np.broadcast_to(np.asarray(model.best_score_, dtype=np.float64), intercept.shape).copy()
    return coef, intercept, alpha, score


def clip_scores(y: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(y, dtype=np.float32), 0.0, 10.0)
