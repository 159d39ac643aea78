"""Interval estimates for leaderboards: bootstrap CIs over seeds, Wilson intervals for success rates,
and rliable's stratified-bootstrap aggregates (mean, IQM) and performance profiles across a suite.

Every bootstrap here is seeded, so the same runs always print the same intervals.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

BOOTSTRAP_SEED = 0
SEED_BOOTSTRAP_REPS = 10_000  # per dataset: a few seeds, so resampling them is cheap
SUITE_BOOTSTRAP_REPS = 2_000  # rliable's default for performance profiles; CIs settle well before this


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


def suite_aggregates(scores: np.ndarray, taus: np.ndarray, reps: int = SUITE_BOOTSTRAP_REPS) -> dict[str, Any]:
    """Mean and IQM across (runs x tasks) with stratified-bootstrap 95% CIs, and the performance profile.

    ``scores`` has one row per run index (seed) and one column per task; rliable resamples runs
    within each task (stratified), as Agarwal et al. (2021) recommend for few-run benchmarks.
    """
    from rliable import library as rly
    from rliable import metrics

    score_dict = {"x": scores}

    def aggregates(matrix: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_mean(matrix), metrics.aggregate_iqm(matrix)])

    def profile(matrix: np.ndarray) -> np.ndarray:
        return rly.score_distributions(matrix, taus)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arch's notice about RandomState, which rliable passes
        points, intervals = rly.get_interval_estimates(score_dict, aggregates, reps=reps,
                                                       random_state=np.random.RandomState(BOOTSTRAP_SEED))
        curve, curve_intervals = rly.get_interval_estimates(score_dict, profile, reps=reps,
                                                            random_state=np.random.RandomState(BOOTSTRAP_SEED + 1))
    (mean, iqm), ((mean_low, iqm_low), (mean_high, iqm_high)) = points["x"], intervals["x"]
    return {
        "mean": {"value": float(mean), "ci95": [float(mean_low), float(mean_high)]},
        "iqm": {"value": float(iqm), "ci95": [float(iqm_low), float(iqm_high)]},
        "profile": {"tau": [float(t) for t in taus], "fraction": [float(v) for v in curve["x"]],
                    "ci95_low": [float(v) for v in curve_intervals["x"][0]],
                    "ci95_high": [float(v) for v in curve_intervals["x"][1]]},
    }
