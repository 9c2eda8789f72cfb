"""Bootstrap confidence intervals, shared by the verdict (:mod:`reports.verdict`) and the
gate (:mod:`reports.gate.compare`).

Every interval is a percentile bootstrap made by :func:`two_sample_ci` (two unpaired
samples, ``scipy.stats.bootstrap``, seeded by the caller's generator) or, for a tail
percentile of raw samples, by the two-stage bootstrap of :func:`percentile_ci`.

The verdict (``HTTP / WebSocket``, ratios)::

    ratio, low, high = percentile_ratio_ci(http_ns, ws_ns, (50, 99), rng=rng)
    low, high = mean_ratio_ci(http_repeats, ws_repeats, rng=rng)

The gate (``current / baseline - 1``, each function returns ``(change, low, high)``)::

    change, low, high = repeats_ci(base_repeats, cur_repeats, rng)
    change, low, high = percentile_ci(base_groups, cur_groups, 0.99, rng)

- :func:`repeats_ci`: from per-repeat values (throughput, CPU or bytes per
  request, or a percentile per repeat), the bootstrap of the ratio of means,
  resampling repeats within each run. Needs at least
  :data:`MIN_BOOTSTRAP_REPEATS` repeats in each run.
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
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

#: Confidence level of every interval.
LEVEL = 0.95

#: Bootstrap resamples per interval.
N_RESAMPLES = 2000

#: Base seed of the verdict's intervals (the gate takes its seed from the command line).
SEED = 2010

#: Verdict cells with more measured rows than this are bootstrapped from a random subset.
MAX_BOOTSTRAP_SAMPLES = 20_000

#: Fewer repeats than this in either run: :func:`range_ci` instead of a bootstrap.
MIN_BOOTSTRAP_REPEATS = 3

Interval = tuple[float, float, float]

Statistic = Callable[..., np.ndarray]


def two_sample_ci(
    samples: tuple[np.ndarray, np.ndarray],
    statistic: Statistic,
    rng: np.random.Generator,
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    batch: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of ``statistic(x, y, axis)`` by a percentile bootstrap.

    The two samples are resampled on their own (``paired=False``); ``statistic`` must be
    vectorized over ``axis``. Warnings from degenerate resamples of tiny samples are
    silenced: the callers check the bounds they get.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap(
            samples,
            statistic,
            n_resamples=n_resamples,
            vectorized=True,
            paired=False,
            confidence_level=level,
            method="percentile",
            batch=batch,
            rng=rng,
        )
    return (
        np.asarray(result.confidence_interval.low, dtype=float),
        np.asarray(result.confidence_interval.high, dtype=float),
    )


# --- the verdict: HTTP / WebSocket ----------------------------------------------------------


def percentile_ratio_ci(
    http: np.ndarray,
    ws: np.ndarray,
    percentiles: Sequence[float] = (50.0, 99.0),
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    max_samples: int = MAX_BOOTSTRAP_SAMPLES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ratio, low, high)``, arrays over ``percentiles``: percentile(http) / percentile(ws).

    The point estimate uses every value; the interval is a two-sample percentile bootstrap
    (:func:`two_sample_ci`) of the same ratio, each sample resampled on its own, from at
    most ``max_samples`` values of each (a seeded random subset).
    NaN where a sample has fewer than 2 values or a WebSocket percentile is not positive.
    """
    rng = rng or np.random.default_rng(SEED)
    qs = np.asarray(percentiles, dtype=float)
    nan = np.full(len(qs), np.nan)
    a = np.asarray(http, dtype=float)
    b = np.asarray(ws, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return nan, nan.copy(), nan.copy()
    ws_point = np.percentile(b, qs)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ws_point > 0, np.percentile(a, qs) / ws_point, np.nan)
    a_boot, b_boot = _subsample(a, max_samples, rng), _subsample(b, max_samples, rng)

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.percentile(x, qs, axis=axis) / np.percentile(y, qs, axis=axis)

    batch = max(1, min(n_resamples, 4_000_000 // (len(a_boot) + len(b_boot))))
    low, high = two_sample_ci((a_boot, b_boot), statistic, rng, level, n_resamples, batch)
    bad = ~np.isfinite(ratio)
    low[bad], high[bad] = np.nan, np.nan
    return ratio, low, high


def mean_ratio_ci(
    http: Sequence[float],
    ws: Sequence[float],
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
) -> tuple[float, float]:
    """Bootstrap interval ``(low, high)`` of mean(http) / mean(ws) over per-repeat values.

    Two-sample percentile bootstrap (:func:`two_sample_ci`); NaN when either side has
    fewer than 2 finite values or a non-positive mean.
    """
    rng = rng or np.random.default_rng(SEED)
    a = np.asarray(http, dtype=float)
    b = np.asarray(ws, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2 or not b.mean() > 0:
        return float("nan"), float("nan")

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.mean(x, axis=axis) / np.mean(y, axis=axis)

    low, high = two_sample_ci((a, b), statistic, rng, level, n_resamples)
    return float(low), float(high)


def _subsample(values: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if len(values) <= limit:
        return values
    return rng.choice(values, size=limit, replace=False)


# --- the gate: current / baseline - 1 --------------------------------------------------------


def _ratio_of_means(base: np.ndarray, cur: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(cur, axis=axis) / np.mean(base, axis=axis) - 1.0


def repeats_ci(
    base: Sequence[float],
    cur: Sequence[float],
    rng: np.random.Generator,
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
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
    lows, highs = two_sample_ci((b, c), _ratio_of_means, rng, level, n_resamples)
    low, high = float(lows), float(highs)
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
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
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
