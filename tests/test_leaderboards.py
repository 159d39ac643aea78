"""Leaderboards: interval statistics, suite specs, entries, suite aggregates, and their text forms."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import Conflict, Forbidden, InvalidInput, NotFound
from bench.leaderboards.board import compute_leaderboard
from bench.leaderboards.render import MARK, table_rows, to_markdown
from bench.leaderboards.statistics import bootstrap_mean, suite_aggregates, wilson_interval
from bench.leaderboards.suites import LeaderboardSpec, Suites, shipped_suites
from bench.platform.accounts import Accounts
from bench.evaluation.store import RunInfo


def make_run(run_id, algorithm, dataset, seed, offline, online, metric="normalized_score", config_hash="c0",
             eval_episodes=10, status="completed", offline_steps=1000):
    def point(value):
        values = {"return": value, "normalized_score": None, "success_rate": None}
        values[metric] = value
        return {"final": values, "best": values}

    results = {"offline": point(offline), "online": point(online) if online is not None else None}
    return RunInfo(run_id, "sweep", algorithm, dataset, "sha-" + dataset, None, seed, status, {"lr": 1}, config_hash,
                   {"eval_episodes": eval_episodes, "offline_steps": offline_steps}, "code-1", "host", None, None, None, None, None, results, None, None)


def test_wilson_interval_matches_the_closed_form():
    # Known values (Wilson 1927; e.g. 0/10 -> [0, 0.2775], 5/10 -> [0.2366, 0.7634]).
    assert wilson_interval(0, 10)["ci95"] == pytest.approx([0.0, 0.27753], abs=1e-4)
    assert wilson_interval(5, 10)["ci95"] == pytest.approx([0.23659, 0.76341], abs=1e-4)
    assert wilson_interval(10, 10)["ci95"][1] == pytest.approx(1.0)
    assert wilson_interval(3, 0) is None


def test_bootstrap_interval_is_seeded_contains_the_mean_and_needs_two_seeds():
    values = [10.0, 20.0, 30.0, 40.0]
    first, second = bootstrap_mean(values), bootstrap_mean(values)
    assert first == second and first["mean"] == 25.0
    low, high = first["ci95"]
    assert 10.0 <= low < 25.0 < high <= 40.0
    assert bootstrap_mean([5.0])["ci95"] is None
    assert bootstrap_mean([]) is None


def test_suite_aggregates_iqm_ignores_outlying_runs():
    scores = np.array([[50.0, 50.0, 50.0, 50.0], [50.0, 50.0, 50.0, 1000.0], [50.0, 50.0, 50.0, 50.0]])
    result = suite_aggregates(scores, np.linspace(0, 100, 11), reps=200)
    assert result["iqm"]["value"] == pytest.approx(50.0)
    assert result["mean"]["value"] > 100.0  # the mean is pulled by the one outlier, the IQM is not
    assert result["profile"]["fraction"][0] == 1.0 and len(result["profile"]["tau"]) == 11


def test_runs_of_one_config_at_different_budgets_are_different_entries():
    spec = LeaderboardSpec.from_dict({"name": "s", "datasets": ["a/x"], "min_seeds": 2})
    runs = [make_run(f"r{seed}", "iql", "a/x-v1", seed, 10.0 + seed, None) for seed in range(2)]
    runs += [make_run(f"s{seed}", "iql", "a/x-v1", seed, 80.0 + seed, None, offline_steps=20_000) for seed in range(2)]
    entries = compute_leaderboard(spec, runs)["datasets"][0]["entries"]
    assert sorted((e["budget"]["offline_steps"], e["n"]) for e in entries) == [(1000, 2), (20_000, 2)]
    assert entries[0]["budget"] == {"offline_steps": 20_000, "online_steps": 0, "eval_every": 0, "eval_episodes": 10}
    assert entries[0]["offline"]["mean"] == 80.5  # never the mean of both budgets' seeds


def test_shipped_suites_load_and_specs_are_validated():
    suites = shipped_suites()
    assert {"sawyer", "pointmaze", "fetch", "ogbench", "locomotion"} <= set(suites)
    bad = [
        ({"datasets": ["a/b"]}, "name"),
        ({"name": "x", "datasets": []}, "datasets"),
        ({"name": "x", "datasets": ["a/b"], "metric": "speed"}, "metric"),
        ({"name": "x", "datasets": ["a/b"], "metric": "return"}, "not comparable"),
        ({"name": "x", "datasets": ["../b"]}, "invalid"),
        ({"name": "x", "datasets": ["a/b"], "color": "red"}, "unknown fields"),
        ({"name": "x", "datasets": ["a/b", "a/b"]}, "twice"),
        ({"name": "x", "datasets": ["a/b"], "min_seeds": 0}, "min_seeds"),
    ]
    for values, message in bad:
        with pytest.raises(InvalidInput, match=message):
            LeaderboardSpec.from_dict(values)


def test_entries_group_seeds_mark_too_few_and_link_their_runs():
    spec = LeaderboardSpec.from_dict({"name": "s", "datasets": ["t/a", "t/b"], "min_seeds": 3})
    runs = [make_run(f"iqla{s}", "iql", "t/a-v1", s, 40 + s, 80 + s) for s in range(3)]
    runs += [make_run(f"iqlb{s}", "iql", "t/b-v1", s, 20 + s, 60 + s) for s in range(3)]
    runs += [make_run(f"bca{s}", "bc", "t/a-v1", s, 50.0, None) for s in range(2)]
    runs += [make_run("bcb0", "bc", "t/b-v1", 0, 30.0, None)]
    runs += [make_run("failed", "iql", "t/a-v1", 9, 0.0, 0.0, status="failed"), make_run("other", "iql", "x/y-v1", 0, 1, 1)]
    board = compute_leaderboard(spec, runs)
    assert board["runs_considered"] == 9
    entries = {(e["algorithm"], block["dataset"]): e for block in board["datasets"] for e in block["entries"]}
    iql = entries[("iql", "t/a")]
    assert iql["runs"] == ["iqla0", "iqla1", "iqla2"] and iql["n"] == 3 and not iql["marked"]
    assert iql["offline"]["mean"] == pytest.approx(41.0) and iql["online"]["mean"] == pytest.approx(81.0)
    assert iql["dataset_content_sha256"] == "sha-t/a-v1" and iql["code_versions"] == ["code-1"]
    assert entries[("bc", "t/a")]["marked"] and entries[("bc", "t/a")]["online"] is None
    assert iql["rank"] == 1  # ranked by the online (headline) phase
    aggregate = {row["algorithm"]: row for row in board["aggregate"]["algorithms"]}
    assert aggregate["iql"]["online"]["mean"]["value"] == pytest.approx(71.0)
    assert aggregate["iql"]["online"]["seeds"] == 3
    assert aggregate["bc"]["marked"] and aggregate["bc"]["online"] is None
    markdown = to_markdown(board)
    assert "41.0 [" in markdown and "-> 81.0 [" in markdown and MARK in markdown and "IQM" in markdown


def test_aggregate_uses_the_entry_with_most_seeds_and_lists_incomplete_algorithms():
    spec = LeaderboardSpec.from_dict({"name": "s", "datasets": ["t/a", "t/b"], "phase": "offline", "min_seeds": 1})
    runs = [make_run(f"x{s}", "iql", "t/a-v1", s, 10.0, None, config_hash="many") for s in range(3)]
    runs += [make_run("best", "iql", "t/a-v1", 0, 99.0, None, config_hash="lucky")]  # one lucky seed of another config
    runs += [make_run(f"y{s}", "iql", "t/b-v1", s, 20.0, None) for s in range(3)]
    runs += [make_run("z0", "cql", "t/a-v1", 0, 5.0, None)]
    board = compute_leaderboard(spec, runs)
    row = board["aggregate"]["algorithms"][0]
    assert row["algorithm"] == "iql" and row["entries"]["t/a"][1] == "many"
    assert row["offline"]["mean"]["value"] == pytest.approx(15.0)
    assert board["aggregate"]["incomplete"] == {"cql": ["t/b"]}
    header, rows = table_rows(board)
    assert header[:3] == ["algorithm", "t/a", "t/b"] and rows[0][0] == "iql"


def test_success_rates_pool_evaluation_episodes_with_a_wilson_interval():
    spec = LeaderboardSpec.from_dict({"name": "s", "datasets": ["t/a"], "metric": "success_rate", "min_seeds": 1})
    runs = [make_run(f"r{s}", "iql", "t/a-v1", s, 0.5, 1.0, metric="success_rate", eval_episodes=8) for s in range(2)]
    entry = compute_leaderboard(spec, runs)["datasets"][0]["entries"][0]
    assert entry["offline_success"]["successes"] == 8 and entry["offline_success"]["trials"] == 16
    assert entry["online_success"]["rate"] == 1.0 and entry["online_success"]["ci95"][0] < 1.0
    assert "50.0% [" in to_markdown(compute_leaderboard(spec, runs))


def test_user_defined_suites_are_stored_owned_and_deleted(local_registry):
    accounts = Accounts(local_registry.engine)
    accounts.create_user("alice")
    accounts.create_user("bob")
    alice, bob = accounts.principal_of("alice"), accounts.principal_of("bob")
    suites = Suites(local_registry.engine)
    spec = suites.create({"name": "mine", "datasets": ["alice/a"], "metric": "success_rate"}, alice)
    assert spec.owner == "alice" and suites.get("mine").metric == "success_rate"
    assert "mine" in [s.name for s in suites.list()]
    with pytest.raises(Conflict):
        suites.create({"name": "mine", "datasets": ["alice/a"]}, alice)
    with pytest.raises(Conflict):
        suites.create({"name": "sawyer", "datasets": ["alice/a"]}, alice)
    with pytest.raises(Forbidden):
        suites.delete("mine", bob)
    with pytest.raises(Forbidden):
        suites.delete("sawyer", alice)
    suites.delete("mine", alice)
    with pytest.raises(NotFound):
        suites.get("mine")


def test_vectorized_stratified_bootstrap_agrees_with_rliables_own():
    import warnings

    from rliable import library as rly
    from rliable import metrics

    scores = np.random.default_rng(3).normal(50, 20, size=(5, 6))
    ours = suite_aggregates(scores, np.linspace(0, 100, 5), reps=20_000)  # vectorized: fast
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _, intervals = rly.get_interval_estimates(
            {"x": scores}, lambda m: np.array([metrics.aggregate_mean(m), metrics.aggregate_iqm(m)]), reps=4_000,
            random_state=np.random.RandomState(0))
    (mean_low, iqm_low), (mean_high, iqm_high) = intervals["x"]
    # Two Monte Carlo estimates of the same percentiles: equal up to resampling noise (~1 here).
    assert ours["mean"]["ci95"] == pytest.approx([mean_low, mean_high], abs=1.5)
    assert ours["iqm"]["ci95"] == pytest.approx([iqm_low, iqm_high], abs=1.5)


def test_a_wide_leaderboard_fits_a_120_column_terminal(monkeypatch):
    import io

    from rich.console import Console

    import bench.cli.leaderboard as cli_leaderboard

    header = ["algorithm", *[f"metaworld/drawer-open/expert-v{i}" for i in range(5)], "mean", "IQM"]
    rows = [["cql-lagrange", *["45.2 [40.1, 50.3] -> 60.0 [55.0, 65.0]"] * 7]]
    console = Console(width=200, file=io.StringIO(), record=True)  # piped output is 200 wide
    monkeypatch.setattr(cli_leaderboard, "out", console)
    console.print(cli_leaderboard.terminal_table(header, rows))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "expert-v4" in text and "cql-lagrange" in text and "-> 60.0" in text
