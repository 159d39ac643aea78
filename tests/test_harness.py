"""The harness on real backends: records, curves, checkpoints, determinism, interruption and resume, executors."""

from __future__ import annotations

import pytest

from bench.datasets import Registry
from bench.errors import InvalidInput
from bench.evaluation.store import RunStore, summarize
from bench.evaluation.executors import execute_sweep
from bench.evaluation.sweeps import Budget, plan_sweep, spec_for_resume
from conftest import EXPERT, RANDOM, make_settings, publish_pendulum

SMALL = {"hidden_dims": "32x32", "batch_size": "64"}


@pytest.fixture
def pendulum(request, tmp_path):
    backend = getattr(request, "param", "sqlite-local")
    settings = make_settings(request, tmp_path, backend)
    registry = Registry.open(settings)
    dataset_id = publish_pendulum(registry)
    yield registry, RunStore(registry.engine), dataset_id
    registry.close()


def _sweep(registry, store, dataset_id, algorithm="awac", seeds=(0,), budget=None, executor="local", progress=None,
           overrides=None):
    budget = budget or Budget(offline_steps=40, online_steps=40, eval_every=20, eval_episodes=1, log_every=10)
    specs = plan_sweep(registry, store, algorithm, dataset_id, list(seeds), budget, overrides or SMALL, executor)
    outcomes = execute_sweep(specs, registry.settings, store, executor, progress=progress)
    return specs, outcomes


@pytest.mark.parametrize("pendulum", ["sqlite-local", "postgres-s3"], indirect=True)
def test_run_records_config_provenance_curves_results_and_checkpoint(pendulum):
    registry, store, dataset_id = pendulum
    specs, outcomes = _sweep(registry, store, dataset_id, seeds=(0, 1))
    assert [o.status for o in outcomes] == ["completed", "completed"]
    run = store.get(specs[0].run_id)
    assert run.algorithm == "awac" and run.dataset_id == "test/pendulum-v1" and run.seed == 0
    assert run.dataset_content_sha256 == registry.show(dataset_id).content_sha256
    assert run.config["hidden_dims"] == [32, 32] and len(run.config_hash) == 64
    assert run.code_version and run.host and run.started_at and run.finished_at
    assert run.timings["offline_seconds"] > 0 and run.timings["eval_seconds"] > 0
    evals = [(c["phase"], c["step"]) for c in store.curves(run.id, kind="eval")]
    assert evals == [("offline", 20), ("offline", 40), ("online", 20), ("online", 40)]
    train = store.curves(run.id, kind="train")
    assert [c["step"] for c in train if c["phase"] == "offline"] == [10, 20, 30, 40]
    assert {"critic_loss", "policy_loss"} <= set(train[0])
    final = run.results["offline"]["final"]
    assert final["step"] == 40 and final["episodes"] == 1 and final["episode_length"] == 200
    assert final["normalized_score"] == pytest.approx(100 * (final["return"] - RANDOM) / (EXPERT - RANDOM))
    assert run.results["online"]["best"]["normalized_score"] >= run.results["online"]["final"]["normalized_score"]
    assert registry.storage.exists(run.checkpoint)
    summary = summarize([store.get(s.run_id) for s in specs])
    assert summary["completed"] == 2 and summary["offline"]["return"]["n"] == 2
    low, high = summary["offline"]["return"]["ci95"]
    assert low <= summary["offline"]["return"]["mean"] <= high


def test_same_seed_same_result_and_fixed_evaluation_episodes(pendulum):
    registry, store, dataset_id = pendulum
    budget = Budget(offline_steps=30, online_steps=0, eval_every=30, eval_episodes=2)
    _, first = _sweep(registry, store, dataset_id, "iql", seeds=(3,), budget=budget)
    _, second = _sweep(registry, store, dataset_id, "iql", seeds=(3,), budget=budget)
    assert first[0].results["offline"]["final"]["return"] == second[0].results["offline"]["final"]["return"]
    _, other = _sweep(registry, store, dataset_id, "iql", seeds=(4,), budget=budget)
    assert other[0].results["offline"]["final"]["return"] != first[0].results["offline"]["final"]["return"]


def test_interrupted_run_resumes_from_its_checkpoint_to_the_same_result(pendulum):
    registry, store, dataset_id = pendulum
    budget = Budget(offline_steps=150, online_steps=0, eval_every=60, eval_episodes=1, log_every=50)

    def interrupt_at_100(run_id, phase, step, total):
        if step == 100:
            raise KeyboardInterrupt

    specs, outcomes = _sweep(registry, store, dataset_id, "awac", budget=budget, progress=interrupt_at_100)
    run_id = specs[0].run_id
    assert outcomes[0].status == "interrupted" and "bench runs resume" in outcomes[0].error
    interrupted = store.get(run_id)
    assert interrupted.status == "interrupted" and registry.storage.exists(interrupted.checkpoint)
    assert [c["step"] for c in store.curves(run_id, kind="eval")] == [60]

    resumed = execute_sweep([spec_for_resume(store, run_id)], registry.settings, store, resume=True)
    assert resumed[0].status == "completed"
    assert [c["step"] for c in store.curves(run_id, kind="eval")] == [60, 120, 150]
    assert [c["step"] for c in store.curves(run_id, kind="train")] == [50, 100, 150]
    _, uninterrupted = _sweep(registry, store, dataset_id, "awac", budget=budget)
    assert resumed[0].results["offline"]["final"]["return"] == uninterrupted[0].results["offline"]["final"]["return"]
    with pytest.raises(Exception, match="already completed"):
        spec_for_resume(store, run_id)


def test_ctrl_c_during_an_evaluation_owes_that_evaluation_to_the_resumed_run(pendulum, monkeypatch):
    """SIGINT can land inside an evaluation; the checkpoint then has the step but not its curve point."""
    from bench.evaluation.states import StateRun

    registry, store, dataset_id = pendulum
    budget = Budget(offline_steps=150, online_steps=0, eval_every=60, eval_episodes=1, log_every=50)
    evaluate, calls = StateRun.evaluate, []

    def interrupted_second_evaluation(self):
        calls.append(self.step)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(self)

    monkeypatch.setattr(StateRun, "evaluate", interrupted_second_evaluation)
    specs, outcomes = _sweep(registry, store, dataset_id, "awac", budget=budget)
    assert outcomes[0].status == "interrupted" and calls == [60, 120]
    assert [c["step"] for c in store.curves(specs[0].run_id, kind="eval")] == [60]
    resumed = execute_sweep([spec_for_resume(store, specs[0].run_id)], registry.settings, store, resume=True)
    assert resumed[0].status == "completed"
    assert [c["step"] for c in store.curves(specs[0].run_id, kind="eval")] == [60, 120, 150]


def test_bc_has_no_online_phase_and_bc_top_fraction_trains_on_fewer_episodes(pendulum):
    registry, store, dataset_id = pendulum
    _, outcomes = _sweep(registry, store, dataset_id, "bc-10%")
    assert outcomes[0].status == "completed"
    assert outcomes[0].results["online"] is None and "does not learn online" in outcomes[0].results["note"]


def test_failed_run_is_recorded_and_does_not_stop_the_sweep(pendulum, monkeypatch):
    registry, store, dataset_id = pendulum
    budget = Budget(offline_steps=10, online_steps=0, eval_every=10, eval_episodes=1)
    specs = plan_sweep(registry, store, "iql", dataset_id, [0, 1], budget, SMALL)
    specs[0].storage_path = "missing/path"  # the worker cannot load its data
    outcomes = execute_sweep(specs, registry.settings, store)
    assert [o.status for o in outcomes] == ["failed", "completed"]
    assert store.get(specs[0].run_id).error


@pytest.mark.parametrize("pendulum", ["postgres-s3"], indirect=True)
def test_process_pool_executor_on_postgres_and_s3(pendulum):
    registry, store, dataset_id = pendulum
    seen = []
    specs, outcomes = _sweep(registry, store, dataset_id, "iql", seeds=(0, 1), executor="process",
                             progress=lambda *args: seen.append(args))
    assert [o.status for o in outcomes] == ["completed", "completed"], [o.error for o in outcomes]
    assert {args[0] for args in seen} == {s.run_id for s in specs}
    assert all(store.get(s.run_id).plan["torch_threads"] >= 1 for s in specs)
    assert len(store.curves(specs[1].run_id, kind="eval")) == 4


def test_extra_online_evaluations_are_dense_after_the_switch_and_survive_a_resume(pendulum, monkeypatch):
    """--online-evals-at adds evaluation points (ch. 7's question is what happens just after the switch);
    one interrupted among them is owed to the resumed run, as every evaluation is."""
    from bench.evaluation.states import StateRun

    registry, store, dataset_id = pendulum
    budget = Budget(offline_steps=40, online_steps=60, eval_every=40, eval_episodes=1, log_every=10,
                    online_evals_at=(5, 10, 20))
    evaluate, calls = StateRun.evaluate, []

    def interrupted_at_online_step_10(self):
        calls.append((self.phase, self.step))
        if calls[-1] == ("online", 10) and calls.count(("online", 10)) == 1:
            raise KeyboardInterrupt
        return evaluate(self)

    monkeypatch.setattr(StateRun, "evaluate", interrupted_at_online_step_10)
    specs, outcomes = _sweep(registry, store, dataset_id, "awac", budget=budget)
    assert outcomes[0].status == "interrupted"
    resumed = execute_sweep([spec_for_resume(store, specs[0].run_id)], registry.settings, store, resume=True)
    assert resumed[0].status == "completed"
    evals = [(c["phase"], c["step"]) for c in store.curves(specs[0].run_id, kind="eval")]
    assert evals == [("offline", 40), ("online", 5), ("online", 10), ("online", 20), ("online", 40), ("online", 60)]
    with pytest.raises(InvalidInput, match="online-evals-at"):
        Budget(offline_steps=0, online_steps=60, eval_every=40, eval_episodes=1, online_evals_at=(61,)).validate()
