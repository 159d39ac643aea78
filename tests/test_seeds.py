"""Many seeds as one batched model (bench.algorithms.seeds): each seed trains as it would alone."""

from __future__ import annotations

import copy

import pytest
import torch

from bench.algorithms import Batch, build_algorithm, list_algorithms, make_config
from bench.algorithms.seeds import SeedStack
from bench.evaluation.specs import default_torch_threads

SMALL = {"hidden_dims": (32, 32)}
OBS, ACT, B, S = 5, 3, 32, 3
STATE_LEARNERS = [spec.name for spec in list_algorithms()
                  if spec.algorithm_class.run_kind == "states" and spec.name != "controller"]


def members(name: str, seeds=range(S)):
    built = []
    for seed in seeds:
        torch.manual_seed(seed)  # as each seed's run builds its algorithm
        built.append(build_algorithm(name, make_config(name, None, SMALL), OBS, ACT))
    return built


def batches(generator: torch.Generator) -> list[Batch]:
    return [Batch(torch.randn(B, OBS, generator=generator), torch.rand(B, ACT, generator=generator) * 2 - 1,
                  torch.randn(B, generator=generator), torch.randn(B, OBS, generator=generator),
                  (torch.rand(B, generator=generator) < 0.1).float(), torch.ones(B)) for _ in range(S)]


def max_difference(alone, stack: SeedStack, i: int) -> float:
    stacked = dict(stack.model.named_parameters())
    return max(float((p - stacked[n][i]).detach().abs().max()) for n, p in alone.named_parameters())


@pytest.mark.parametrize("name", ["bc", "iql"])
def test_seeds_whose_losses_draw_nothing_train_as_they_would_alone(name):
    alone = members(name)
    stack = SeedStack(copy.deepcopy(alone))
    generator = torch.Generator().manual_seed(0)
    for _ in range(25):
        step = batches(generator)
        metrics = stack.update(step)
        for i, (algorithm, batch) in enumerate(zip(alone, step)):
            own = algorithm.update(batch)
            for key, value in own.items():
                assert float(metrics[key][i]) == pytest.approx(float(value), rel=1e-4, abs=1e-5), key
    for i, algorithm in enumerate(alone):
        assert max_difference(algorithm, stack, i) < 1e-5
        assert stack.model.updates == algorithm.updates == 25


@pytest.mark.parametrize("name", STATE_LEARNERS)
def test_every_learner_on_states_stacks_updates_acts_and_gives_back_each_seeds_checkpoint(name):
    alone = members(name)
    stack = SeedStack(alone)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        metrics = stack.update(batches(generator))
    assert all(value.shape == (S,) for value in metrics.values())
    stack.begin_online()
    stack.update(batches(generator))
    obs = torch.randn(S, 2, OBS)
    assert stack.act(obs, deterministic=False).shape == (S, 2, ACT)
    deterministic = stack.act(obs)
    # Seed i's checkpoint, loaded into an algorithm alone, acts as the stack's seed i does.
    for i in range(S):
        single = members(name, [100])[0]
        single.load_checkpoint_state(stack.member_state(i))
        single.begin_online()
        assert single.updates == 4
        assert torch.allclose(single.act(obs[i]), deterministic[i], atol=1e-5)


def test_a_stack_of_resumed_members_continues_as_they_would_alone():
    # Members that already trained (a resumed group): their weights and Adam moments come along.
    alone = members("iql")
    generator = torch.Generator().manual_seed(1)
    for step in [batches(generator) for _ in range(5)]:
        for algorithm, batch in zip(alone, step):
            algorithm.update(batch)
    stack = SeedStack(copy.deepcopy(alone))
    for step in [batches(generator) for _ in range(5)]:
        stack.update(step)
        for algorithm, batch in zip(alone, step):
            algorithm.update(batch)
    assert max(max_difference(algorithm, stack, i) for i, algorithm in enumerate(alone)) < 1e-5


def test_members_must_be_one_algorithm_config_and_size():
    with pytest.raises(ValueError, match="at least two"):
        SeedStack(members("iql", [0]))
    mixed = members("iql", [0]) + [build_algorithm("iql", make_config("iql", None, {"hidden_dims": (16, 16)}), OBS, ACT)]
    with pytest.raises(ValueError, match="one algorithm, config and size"):
        SeedStack(mixed)


# -- the harness: members are runs of their own ------------------------------------------------------------
def _plan(settings, algorithm: str, seeds, budget, batch_seeds: bool, executor: str = "local", **overrides):
    from bench.datasets import Registry
    from bench.evaluation.store import RunStore
    from bench.evaluation.sweeps import plan_sweep

    registry = Registry.open(settings)
    store = RunStore(registry.engine)
    specs = plan_sweep(registry, store, algorithm, "test/pendulum", list(seeds), budget,
                       {"hidden_dims": "32x32", "batch_size": "32", **overrides}, executor,
                       batch_seeds=batch_seeds)
    return registry, store, specs


def test_seeds_trained_together_score_as_they_do_alone_and_are_recorded_as_their_own_runs(pendulum_env):
    from bench.evaluation.executors import execute_sweep
    from bench.evaluation.sweeps import Budget

    settings, _ = pendulum_env
    budget = Budget(offline_steps=60, online_steps=0, eval_every=30, eval_episodes=1, log_every=10)
    registry, store, alone = _plan(settings, "iql", (0, 1), budget, batch_seeds=False)
    separate = execute_sweep(alone, settings, store)
    _, _, together = _plan(settings, "iql", (0, 1), budget, batch_seeds=True)
    assert [spec.batched_seeds for spec in together] == [2, 2]
    grouped = execute_sweep(together, settings, store)
    assert [o.status for o in grouped] == ["completed", "completed"]
    for one, member in zip(separate, grouped):
        # IQL's losses draw no random numbers: the same seed's weights, hence its evaluation, to float rounding.
        for phase_point in ("final", "best"):
            assert member.results["offline"][phase_point]["return"] == pytest.approx(
                one.results["offline"][phase_point]["return"], rel=1e-3)
        assert member.results["runtime"][0]["batched_seeds"] == 2
        curves = store.curves(member.run_id, kind="train")
        assert [c["step"] for c in curves] == [10, 20, 30, 40, 50, 60] and "value_loss" in curves[0]
        assert registry.storage.exists(store.get(member.run_id).checkpoint)
    registry.close()


def test_a_group_practises_online_each_seed_in_its_own_environment_and_a_member_resumes_alone(pendulum_env):
    from bench.evaluation.executors import execute_sweep
    from bench.evaluation.sweeps import Budget, spec_for_resume

    settings, _ = pendulum_env
    budget = Budget(offline_steps=20, online_steps=60, eval_every=20, eval_episodes=1, log_every=10)
    registry, store, specs = _plan(settings, "sac", (0, 1, 2), budget, batch_seeds=True)

    def interrupt(run_id, phase, step, total):
        if phase == "online" and step == 50:
            raise KeyboardInterrupt

    outcomes = execute_sweep(specs, settings, store, progress=interrupt)
    assert [o.status for o in outcomes] == ["interrupted"] * 3
    # Each member's checkpoint is an ordinary run's, at step 50: it resumes alone, with its own transitions.
    for spec in specs[::2]:
        resumed = execute_sweep([spec_for_resume(store, spec.run_id)], settings, store, resume=True)[0]
        assert resumed.status == "completed" and resumed.results["online"]["final"]["step"] == 60
        assert [(r["step"], r.get("batched_seeds")) for r in resumed.results["runtime"]] == [(0, 3), (50, None)]
        online = [c["step"] for c in store.curves(spec.run_id, kind="eval") if c["phase"] == "online"]
        assert online == [20, 40, 60]
    returns = {round(o.results["offline"]["final"]["return"], 6) for o in outcomes}
    assert len(returns) == 3  # three seeds, three policies
    registry.close()


def test_a_seed_group_runs_as_one_unit_of_the_process_executor(pendulum_env):
    from bench.evaluation.executors import execute_sweep
    from bench.evaluation.sweeps import Budget

    settings, _ = pendulum_env
    budget = Budget(offline_steps=30, online_steps=20, eval_every=30, eval_episodes=1, log_every=10)
    registry, store, specs = _plan(settings, "iql", (0, 1), budget, batch_seeds=True, executor="process")
    assert all(spec.torch_threads == default_torch_threads(1) for spec in specs)  # one process for the group
    outcomes = execute_sweep(specs, settings, store, executor="process")
    assert [o.status for o in outcomes] == ["completed", "completed"]
    assert all(o.results["runtime"][0]["batched_seeds"] == 2 for o in outcomes)
    registry.close()


def test_batch_seeds_is_refused_where_it_cannot_apply(pendulum_env):
    from bench.errors import InvalidInput
    from bench.evaluation.sweeps import Budget

    settings, _ = pendulum_env
    budget = Budget(offline_steps=10, online_steps=0, eval_every=10, eval_episodes=1)
    for seeds, algorithm, message in (((0,), "iql", "2 or more"), ((0, 0), "iql", "each seed once"),
                                      ((0, 1), "controller", "not a learner on states")):
        with pytest.raises(InvalidInput, match=message):
            _plan(settings, algorithm, seeds, budget, batch_seeds=True)
