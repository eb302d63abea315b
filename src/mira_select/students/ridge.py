"""Multi-output ridge heads shared by the CPU tiers: regularisation chosen per anchor by leave-one-out CV.

Labels are few (tens to hundreds per group), so the penalty matters more than the model family; RidgeCV's
efficient leave-one-out picks it per anchor at the cost of one fit.
"""

from __future__ import annotations

import numpy as np

ALPHAS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def fit_ridge(x, y: np.ndarray, alphas: tuple[float, ...] = ALPHAS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (coef [k, d], intercept [k], alpha per anchor [k])."""
    from sklearn.linear_model import RidgeCV

    model = RidgeCV(alphas=alphas, alpha_per_target=True).fit(x, y)
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float32))
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float32))
    alpha = np.broadcast_to(np.asarray(model.alpha_, dtype=np.float32), intercept.shape).copy()
    return coef, intercept, alpha


def fit_ridge_with_block(x, block: np.ndarray, y: np.ndarray, scales: tuple[float, ...],
                         alphas: tuple[float, ...] = ALPHAS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ridge on ``[x | block * s]`` with the block's weight ``s`` chosen per anchor from ``scales`` by the same
    leave-one-out error that picks alpha. One penalty over two feature families of different density (thousands of
    sparse n-gram means, a few hundred dense embedding values) favours one of them by their scales alone; letting the
    labels decide the balance, anchor by anchor, is what a second penalty would do at the price of a few fits.

    -> (coef [k, d + block_dim] with the block's columns already multiplied by its scale, so predictions are
    ``[x | block] @ coef.T + intercept``; intercept [k]; alpha per anchor [k]; block scale per anchor [k])."""
    from scipy import sparse
    from sklearn.linear_model import RidgeCV

    best = None
    for s in scales:
        model = RidgeCV(alphas=alphas, alpha_per_target=True).fit(
            sparse.hstack([x, sparse.csr_matrix(block * s)]).tocsr(), y)
        score = np.broadcast_to(np.asarray(model.best_score_, dtype=np.float64), (y.shape[1],))
        coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float32)).copy()
        coef[:, x.shape[1]:] *= s
        fit = (score, coef, np.atleast_1d(np.asarray(model.intercept_, dtype=np.float32)),
               np.broadcast_to(np.asarray(model.alpha_, dtype=np.float32), (y.shape[1],)))
        if best is None:
            best = [a.copy() for a in fit] + [np.full(y.shape[1], s, np.float32)]
            continue
        better = fit[0] > best[0]
        for kept, new in zip(best, (*fit, np.full(y.shape[1], s, np.float32))):
            kept[better] = new[better]
    return best[1], best[2], best[3], best[4]


def clip_scores(y: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(y, dtype=np.float32), 0.0, 10.0)
