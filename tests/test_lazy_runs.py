"""Runs on versions larger than BENCH_LOAD_MAX_BYTES: the harness loads only the arrays a run reads, and the run
is the one it would be on the whole version in memory."""

from __future__ import annotations

import numpy as np
import pytest

from bench.datasets import Registry
from bench.evaluation.executors import execute_sweep
from bench.evaluation.store import RunStore
from bench.evaluation.sweeps import Budget, plan_sweep
from bench.platform.environments import env_reference
from bench.platform.settings import Settings
from bench.testing.data import gym_random_rollouts

SMALL = {"hidden_dims": "32x32", "batch_size": "64"}
BUDGET = Budget(offline_steps=40, online_steps=30, eval_every=35, eval_episodes=2, log_every=10)


def registry_with_camera(tmp_path, name: str, load_max_bytes: int) -> tuple[Registry, str]:
    """Pendulum episodes with a camera stream the state learners never read (~3 KB a row against 12 B of state)."""
    home = tmp_path / name
    registry = Registry.open(Settings.load(home=home, database_url=f"sqlite:///{home / 'bench.db'}",
                                           storage_url=str(home / "datasets"), load_max_bytes=load_max_bytes))
    data = gym_random_rollouts("Pendulum-v1", episodes=4, seed=0)
    rows = data.num_steps + data.num_episodes
    data.infos = {"camera": np.random.default_rng(0).integers(0, 256, (rows, 32, 32, 3), dtype=np.uint8)}
    return registry, registry.publish(data, "test/pendulum", env=env_reference("Pendulum-v1")).id


def run(registry, dataset_id, algorithm="iql"):
    store = RunStore(registry.engine)
    specs = plan_sweep(registry, store, algorithm, dataset_id, [0], BUDGET, SMALL)
    (outcome,) = execute_sweep(specs, registry.settings, store)
    assert outcome.error is None, outcome.error
    return outcome.results


@pytest.mark.parametrize("algorithm", ["iql", "bc"])
def test_a_run_on_a_version_read_on_demand_equals_the_in_memory_run(tmp_path, algorithm):
    whole, whole_id = registry_with_camera(tmp_path, "whole", 4 * 2**30)
    narrow, narrow_id = registry_with_camera(tmp_path, "narrow", 200_000)
    try:
        version = narrow.load(narrow_id)
        assert getattr(version, "lazy", False) and version.decoded_bytes > 2_000_000  # the camera: too big to load
        first, second = run(whole, whole_id, algorithm), run(narrow, narrow_id, algorithm)
        assert first["offline"]["final"]["return"] == second["offline"]["final"]["return"]
        assert first["offline"] == second["offline"] and first["online"] == second["online"]
    finally:
        whole.close()
        narrow.close()


def test_a_run_whose_arrays_do_not_fit_streams_them_deterministically_and_resumes(tmp_path):
    """load_max_bytes below even the states: the offline rows stream through the chunk sampler; a seed's run is
    repeatable, another seed's differs, and a run interrupted and resumed ends where the uninterrupted one does."""
    from bench.evaluation.sweeps import spec_for_resume

    registry, dataset_id = registry_with_camera(tmp_path, "tiny", 4000)
    budget = Budget(offline_steps=120, online_steps=20, eval_every=60, eval_episodes=1, log_every=20)
    try:
        store = RunStore(registry.engine)

        def sweep(seed, progress=None):
            specs = plan_sweep(registry, store, "iql", dataset_id, [seed], budget, SMALL)
            (outcome,) = execute_sweep(specs, registry.settings, store, progress=progress)
            return specs[0], outcome

        _, first = sweep(0)
        assert first.status == "completed", first.error
        assert sweep(0)[1].results["offline"] == first.results["offline"]
        assert sweep(1)[1].results["offline"] != first.results["offline"]

        def interrupt_at_100(run_id, phase, step, total):  # progress is reported every 50 steps
            if phase == "offline" and step == 100:
                raise KeyboardInterrupt

        spec, interrupted = sweep(0, interrupt_at_100)
        assert interrupted.status == "interrupted"
        (resumed,) = execute_sweep([spec_for_resume(store, spec.run_id)], registry.settings, store, resume=True)
        assert resumed.status == "completed"
        assert resumed.results["offline"] == first.results["offline"] and resumed.results["online"] == first.results["online"]
    finally:
        registry.close()


def test_a_streamed_run_refuses_what_a_stream_cannot_serve_in_one_line(tmp_path):
    registry, dataset_id = registry_with_camera(tmp_path, "tiny", 4000)
    try:
        store = RunStore(registry.engine)
        specs = plan_sweep(registry, store, "bc-10%", dataset_id, [0], BUDGET, SMALL)
        (outcome,) = execute_sweep(specs, registry.settings, store)
        assert "a streamed run cannot have a subset of episodes" in outcome.error
        assert "BENCH_LOAD_MAX_BYTES" in outcome.error and "\n" not in outcome.error
    finally:
        registry.close()


@pytest.mark.parametrize("load_max_bytes", [200_000, 4000], ids=["narrowed", "streamed"])
def test_seeds_batched_together_share_a_version_read_on_demand(tmp_path, load_max_bytes):
    registry, dataset_id = registry_with_camera(tmp_path, "group", load_max_bytes)
    try:
        store = RunStore(registry.engine)
        budget = Budget(offline_steps=40, online_steps=0, eval_every=40, eval_episodes=1)
        specs = plan_sweep(registry, store, "iql", dataset_id, [0, 1], budget, SMALL, batch_seeds=True)
        outcomes = execute_sweep(specs, registry.settings, store)
        assert [o.status for o in outcomes] == ["completed", "completed"], [o.error for o in outcomes]
    finally:
        registry.close()
