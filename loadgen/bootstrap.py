"""Confidence intervals for the relative change between two runs (``rtbench compare``).

Every function returns ``(change, low, high)``: the point estimate of
``current / baseline - 1`` and a confidence interval around it.

- :func:`repeats_ci`: from per-repeat values (throughput, CPU or bytes per
  request, or a percentile per repeat), ``scipy.stats.bootstrap`` of the ratio
  of means, resampling repeats within each run (percentile method). Needs at
  least :data:`MIN_BOOTSTRAP_REPEATS` repeats in each run.
- :func:`range_ci`: too few repeats for a bootstrap. The "interval" is the
  range of ``c / b - 1`` over every pair of repeats (a single point with one
  repeat each): no statement of confidence, only the spread that was seen.
- :func:`percentile_ci`: a latency percentile from the raw samples, by a
  two-stage (cluster) bootstrap: resample the repeats of each run, then the
  requests of the repeats drawn. Resampling requests captures the sampling
  noise of a tail percentile; resampling repeats adds the spread between
  repeats, so a run-to-run wobble is not mistaken for a change. It works from
  one repeat per run upward and is what ``compare`` uses for latency whenever
  both runs have their samples.

The request stage is exact and cheap: the ``r``-th smallest of ``N`` draws from
an empirical distribution ``F`` is ``F^-1(U)`` with ``U ~ Beta(r, N - r + 1)``,
so one resample costs a search in the sorted values rather than ``N`` draws.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

#: Fewer repeats than this in either run: :func:`range_ci` instead of a bootstrap.
MIN_BOOTSTRAP_REPEATS = 3

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95

Interval = tuple[float, float, float]


def _ratio_of_means(base: np.ndarray, cur: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(cur, axis=axis) / np.mean(base, axis=axis) - 1.0


def repeats_ci(
    base: Sequence[float],
    cur: Sequence[float],
    rng: np.random.Generator,
    level: float = DEFAULT_LEVEL,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> Interval:
    """Bootstrap CI of ``mean(cur) / mean(base) - 1`` over per-repeat values."""
    b = np.asarray(base, dtype=float)
    c = np.asarray(cur, dtype=float)
    if len(b) < MIN_BOOTSTRAP_REPEATS or len(c) < MIN_BOOTSTRAP_REPEATS:
        raise ValueError(f"a bootstrap needs {MIN_BOOTSTRAP_REPEATS} repeats in each run")
    if not b.mean() > 0:
        raise ValueError("the baseline mean must be positive")
    change = float(_ratio_of_means(b, c))
    if np.ptp(b) == 0 and np.ptp(c) == 0:
        return change, change, change  # no spread at all (e.g. bytes per echo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples of tiny samples
        res = stats.bootstrap(
            (b, c),
            _ratio_of_means,
            n_resamples=n_resamples,
            vectorized=True,
            paired=False,
            confidence_level=level,
            method="percentile",
            rng=rng,
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return range_ci(base, cur)
    return change, min(low, change), max(high, change)


def range_ci(base: Sequence[float], cur: Sequence[float]) -> Interval:
    """Ratio of means, and the range of ``c / b - 1`` over all pairs of repeats.

    A baseline repeat of 0 (CPU time below the clock's resolution) leaves the
    range unbounded above.
    """
    b = np.asarray(base, dtype=float)
    c = np.asarray(cur, dtype=float)
    if len(b) == 0 or len(c) == 0 or not b.mean() > 0:
        raise ValueError("need a positive baseline mean and at least one current value")
    change = float(_ratio_of_means(b, c))
    high = float(c.max() / b.min() - 1.0) if b.min() > 0 else math.inf
    return change, float(c.min() / b.max() - 1.0), high


class _Pooled:
    """The measured values of one run, sorted once, labelled by repeat."""

    def __init__(self, groups: Sequence[np.ndarray]) -> None:
        groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
        if not groups:
            raise ValueError("no samples")
        values = np.concatenate(groups)
        labels = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)])
        order = np.argsort(values, kind="stable")
        self.values = values[order]
        self.labels = labels[order]
        self.sizes = np.array([len(g) for g in groups])
        self.k = len(groups)

    def point(self, q: float) -> float:
        """The pooled ``q``-quantile (nearest rank), as HdrHistogram reports it."""
        n = len(self.values)
        rank = max(1, math.ceil(q * n))
        return float(self.values[rank - 1])

    def resample(self, q: float, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
        """``n_resamples`` bootstrap replicates of the ``q``-quantile (repeats, then samples)."""
        if self.k == 1:
            weights = np.ones((n_resamples, 1), dtype=np.int64)
        else:
            weights = rng.multinomial(self.k, np.full(self.k, 1.0 / self.k), size=n_resamples)
        out = np.empty(n_resamples)
        # Few distinct repeat draws (10 for 3 repeats): one cumulative sum for each.
        unique, inverse = np.unique(weights, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        for u, w in enumerate(unique):
            rows = np.flatnonzero(inverse == u)
            cum = np.cumsum(w[self.labels])
            total = int(cum[-1])
            rank = max(1, math.ceil(q * total))
            draws = rng.beta(rank, total - rank + 1, size=len(rows))
            idx = np.searchsorted(cum, draws * total, side="left")
            out[rows] = self.values[np.minimum(idx, len(self.values) - 1)]
        return out


def percentile_ci(
    base_groups: Sequence[np.ndarray],
    cur_groups: Sequence[np.ndarray],
    q: float,
    rng: np.random.Generator,
    level: float = DEFAULT_LEVEL,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> Interval:
    """Two-stage bootstrap CI of ``quantile_q(current) / quantile_q(baseline) - 1``.

    ``*_groups`` hold each repeat's measured values (e.g. latencies in ns);
    ``q`` is a fraction (0.99 for p99).
    """
    if not 0 < q <= 1:
        raise ValueError("q is a fraction in (0, 1]")
    b, c = _Pooled(base_groups), _Pooled(cur_groups)
    b_point = b.point(q)
    if not b_point > 0:
        raise ValueError("the baseline percentile must be positive")
    change = c.point(q) / b_point - 1.0
    b_star = b.resample(q, n_resamples, rng)
    c_star = c.resample(q, n_resamples, rng)
    ratios = c_star / np.maximum(b_star, np.finfo(float).tiny) - 1.0
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return change, float(min(low, change)), float(max(high, change))
