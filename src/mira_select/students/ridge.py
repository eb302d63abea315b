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


def clip_scores(y: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(y, dtype=np.float32), 0.0, 10.0)
