"""Interval estimates for leaderboards: bootstrap CIs over seeds, Wilson intervals for success rates,
and rliable's stratified-bootstrap aggregates (mean, IQM) and performance profiles across a suite.

Every bootstrap here is seeded, so the same runs always print the same intervals.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BOOTSTRAP_SEED = 0
SEED_BOOTSTRAP_REPS = 10_000  # per dataset: a few seeds, so resampling them is cheap
SUITE_BOOTSTRAP_REPS = 2_000  # rliable's default for performance profiles; percentiles of 2,000 replicates move < 0.5%


def bootstrap_mean(values: list[float], reps: int = SEED_BOOTSTRAP_REPS) -> dict[str, Any] | None:
    """Mean over seeds and its 95% percentile-bootstrap interval (none from one seed)."""
    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(array) == 0:
        return None
    out: dict[str, Any] = {"mean": float(array.mean()), "ci95": None, "n": int(len(array)),
                           "values": [float(v) for v in array]}
    if len(array) >= 2:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        means = array[rng.integers(0, len(array), size=(reps, len(array)))].mean(axis=1)
        out["ci95"] = [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
    return out


def wilson_interval(successes: float, trials: int, z: float = 1.959964) -> dict[str, Any] | None:
    """A success rate with its Wilson score 95% interval: sound at 0%, 100% and small n."""
    if trials <= 0:
        return None
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return {"rate": rate, "ci95": [max(0.0, centre - half), min(1.0, centre + half)],
            "successes": int(round(successes)), "trials": int(trials)}


def stratified_bootstrap(scores: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """``reps`` resamples of a (runs x tasks) matrix, runs drawn with replacement within each task.

    This is rliable's ``StratifiedBootstrap`` (Agarwal et al., 2021), drawn all at once with numpy:
    rliable's own loop calls Python once per replicate, ~100x slower for the few-run matrices here;
    a test checks both give the same intervals.
    """
    runs, tasks = scores.shape
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, runs, size=(reps, runs, tasks))
    return np.take_along_axis(np.broadcast_to(scores, (reps, runs, tasks)), rows, axis=1)


def _iqm(samples: np.ndarray) -> np.ndarray:
    """Interquartile mean of each replicate's flattened scores, as scipy's trim_mean(0.25) computes it."""
    flat = np.sort(samples.reshape(len(samples), -1), axis=1)
    cut = int(0.25 * flat.shape[1])
    return flat[:, cut:flat.shape[1] - cut].mean(axis=1)


def suite_aggregates(scores: np.ndarray, taus: np.ndarray, reps: int = SUITE_BOOTSTRAP_REPS) -> dict[str, Any]:
    """Mean and IQM across (runs x tasks) with stratified-bootstrap 95% CIs, and the performance profile.

    Point estimates are rliable's (``aggregate_mean``, ``aggregate_iqm``, ``score_distributions``);
    intervals are percentile intervals over stratified-bootstrap replicates, as rliable computes them.
    """
    from rliable import library as rly
    from rliable import metrics

    scores = np.asarray(scores, dtype=np.float64)
    samples = stratified_bootstrap(scores, reps, BOOTSTRAP_SEED)
    flat = samples.reshape(reps, -1)
    means, iqms = flat.mean(axis=1), _iqm(samples)
    profiles = (flat[:, :, None] > taus[None, None, :]).mean(axis=1)  # fraction of runs above each threshold

    def interval(values: np.ndarray) -> list[float]:
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]

    return {
        "mean": {"value": float(metrics.aggregate_mean(scores)), "ci95": interval(means)},
        "iqm": {"value": float(metrics.aggregate_iqm(scores)), "ci95": interval(iqms)},
        "profile": {"tau": [float(t) for t in taus],
                    "fraction": [float(v) for v in rly.score_distributions(scores, taus)],
                    "ci95_low": [float(v) for v in np.percentile(profiles, 2.5, axis=0)],
                    "ci95_high": [float(v) for v in np.percentile(profiles, 97.5, axis=0)]},
    }
