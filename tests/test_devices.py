"""Devices: every tensor a run creates follows the chosen device; names are checked; checkpoints cross devices.

There is no GPU on CI. torch's ``meta`` device stands in for one: a tensor made on the CPU by mistake
(``torch.zeros(n)`` without ``device=``) meets the meta tensors it is combined with and fails, as it
would on a GPU. Tests marked ``gpu`` run only where CUDA is (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from bench.algorithms import Batch, build_algorithm, list_algorithms, make_config
from bench.algorithms.devices import check_device_name, resolve_device, rng_state, runtime_of, set_rng_state
from bench.algorithms.replay import RelabelShares, Replay, TransitionBuffer
from bench.errors import InvalidInput

META = torch.device("meta")
SMALL = {"hidden_dims": (32, 32)}

STATE_ALGORITHMS = [spec.name for spec in list_algorithms() if spec.algorithm_class.run_kind == "states"]


def _batch(n: int, obs_dim: int, action_dim: int, device) -> Batch:
    return Batch(torch.randn(n, obs_dim, device=device), torch.rand(n, action_dim, device=device) * 2 - 1,
                 torch.randn(n, device=device), torch.randn(n, obs_dim, device=device),
                 torch.zeros(n, device=device), torch.ones(n, device=device))


# -- names -----------------------------------------------------------------------------------------------
def test_device_names_are_checked_and_auto_is_the_cpu_without_a_gpu():
    for name in ("auto", "cpu", "cuda", "cuda:1", " CUDA:0 "):
        assert check_device_name(name) == name.strip().lower()
    for name in ("gpu", "cuda:", "cuda:x", "mps", ""):
        with pytest.raises(InvalidInput, match="--device must be one of auto, cpu, cuda, cuda:N"):
            check_device_name(name)
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        for name in ("cuda", "cuda:0"):
            with pytest.raises(InvalidInput, match="no CUDA GPU"):
                resolve_device(name)
    runtime = runtime_of(torch.device("cpu"))
    assert runtime["device"] == "cpu" and runtime["torch"] == torch.__version__ and "cuda" in runtime


def test_rng_state_round_trips_and_reads_the_old_checkpoint_form():
    torch.manual_seed(5)
    state = rng_state(torch.device("cpu"))
    first = torch.rand(3)
    set_rng_state(state, torch.device("cpu"))
    assert torch.equal(torch.rand(3), first)
    set_rng_state(state["cpu"], torch.device("cpu"))  # checkpoints before devices kept the bare CPU state
    assert torch.equal(torch.rand(3), first)


# -- algorithms: built, updated and acting on one device -------------------------------------------------
@pytest.mark.parametrize("name", STATE_ALGORITHMS)
def test_every_algorithm_on_states_updates_and_acts_on_the_device_it_was_moved_to(name):
    algorithm = build_algorithm(name, make_config(name, None, SMALL), 5, 3).to(META)
    assert all(p.device == META for p in algorithm.parameters()) and all(b.device == META for b in algorithm.buffers())
    if algorithm.learns_offline or algorithm.learns_online:
        metrics = algorithm.update(_batch(8, 5, 3, META))
        assert metrics and all(value.device == META for value in metrics.values())
        for group in algorithm.optimizer.state.values():
            assert all(value.device == META for key, value in group.items() if key != "step")
        algorithm.begin_online()
        algorithm.update(_batch(8, 5, 3, META))
    obs = torch.randn(2, 5, device=META)
    for deterministic in (True, False):
        assert algorithm.act(obs, deterministic).device == META


# -- replay: buffers, sampling and relabeling on the device ----------------------------------------------
def _goal_buffer(device):
    lengths = np.array([4, 6])
    n = int(lengths.sum())
    state = np.arange(n, dtype=np.float32)[:, None]
    return TransitionBuffer.from_arrays(state, state + 1, np.zeros((n, 2)), np.zeros(n), np.zeros(n), lengths,
                                        goal=np.zeros((n, 1)), next_achieved=state + 1).to(device)


def test_replay_samples_mixes_and_relabels_on_the_buffers_device():
    offline = _goal_buffer(META)
    online = TransitionBuffer(10, 1, 2, goal_dim=1, device=META)
    assert all(getattr(online, name).device == META for name in TransitionBuffer.ARRAYS)
    for i in range(3):
        online.state[i] = torch.zeros(1)  # a row written from the host, as the online phase writes them
    online.size = 3
    replay = Replay(offline, online, 0.5, RelabelShares(0.25, 0.25, 0.25, 0.25), goal_reward="index", seed=0)
    batch = replay.sample(16)
    for field in ("obs", "action", "reward", "next_obs", "done", "demo"):
        assert getattr(batch, field).device == META, field


def test_the_same_seed_draws_the_same_random_numbers_whatever_the_buffers_device():
    # Every row index and relabeling share is drawn by the replay's CPU generator and then moved: sampling from
    # buffers on another device consumes that stream exactly as sampling on the CPU does.
    replays = [Replay(_goal_buffer(device), relabel=RelabelShares(0.25, 0.25, 0.25, 0.25), goal_reward="index", seed=3)
               for device in ("cpu", META)]
    for replay in replays:
        for _ in range(3):
            replay.sample(32)
    assert torch.equal(replays[0].generator.get_state(), replays[1].generator.get_state())
    assert not torch.equal(replays[0].generator.get_state(), torch.Generator().manual_seed(3).get_state())


def test_a_buffers_checkpoint_is_cpu_tensors():
    buffer = TransitionBuffer(4, 2, 1)
    buffer.add(np.ones(2), np.zeros(1), 1.0, np.ones(2), False)
    state = buffer.state_dict()
    assert all(value.device.type == "cpu" for value in state.values() if isinstance(value, torch.Tensor))


# -- GPU: where there is one ---------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["bc", "iql", "awac", "cql", "sac", "td3"])
def test_on_a_gpu_updates_run_and_checkpoints_load_on_the_cpu(name):
    cuda = torch.device("cuda")
    algorithm = build_algorithm(name, make_config(name, None, SMALL), 5, 3).to(cuda)
    for _ in range(3):
        algorithm.update(_batch(64, 5, 3, cuda))
    state = algorithm.checkpoint_state()
    on_cpu = build_algorithm(name, make_config(name, None, SMALL), 5, 3)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    on_cpu.load_checkpoint_state(torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu", weights_only=False))
    obs = torch.randn(4, 5)
    assert torch.allclose(on_cpu.act(obs), algorithm.act(obs.to(cuda)).cpu(), atol=1e-5)
    on_cpu.update(_batch(64, 5, 3, "cpu"))  # the optimizer's state came along and steps on the CPU


# -- learning from pixels: representation, affordances, imagined goals and the learner on one device -------
PIXEL_SMALL = {"hidden_dims": "32x32", "vq_embedding_dim": "5", "pixelcnn_channels": "8", "pixelcnn_layers": "1",
               "channels": "8"}


@pytest.mark.parametrize("name", ["rig", "ccrig", "val"])
def test_each_pixel_algorithm_trains_its_parts_imagines_and_acts_on_its_device(name):
    algorithm = build_algorithm(name, make_config(name, None, PIXEL_SMALL), 0, 4).to(META)
    images = torch.zeros(4, 48, 48, 3, dtype=torch.uint8, device=META)
    initial = images if algorithm.representation.conditional else None
    metrics = algorithm.update_representation(images, initial)
    assert all(value.device == META for value in metrics.values())
    z = algorithm.encode(images, initial)
    assert z.device == META and algorithm.decode(z).device == META
    if algorithm.proposer is not None:
        codes = algorithm.representation.codes_of(images)
        assert algorithm.update_proposer(codes, codes)["proposer_nll"].device == META
    assert algorithm.propose(z).device == META
    width = 2 * algorithm.view_dim
    algorithm.update(_batch(8, width, 4, META))
    assert algorithm.act(torch.randn(2, width, device=META)).device == META
    assert algorithm.reward(z, z).device == META


def test_imagined_goals_from_a_seed_are_the_same_wherever_the_networks_are():
    # The proposer draws from a CPU generator and moves its numbers: moving the networks changes nothing.
    torch.manual_seed(0)
    val = build_algorithm("val", make_config("val", None, PIXEL_SMALL), 0, 4)
    z0 = val.encode(torch.randint(0, 255, (3, 48, 48, 3), dtype=torch.uint8))
    first = val.propose(z0, torch.Generator().manual_seed(1))
    again = val.propose(z0, torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    rig = build_algorithm("rig", make_config("rig", None, PIXEL_SMALL), 0, 4).to(META)
    assert rig.propose(torch.zeros(3, rig.latent_dim, device=META), torch.Generator().manual_seed(1)).device == META


# -- planning: subgoal generators and their random numbers on the device ---------------------------------
def test_subgoal_generators_train_and_draw_on_the_states_device():
    from bench.algorithms.subgoals import DataTransitions, sample_chains

    ptp = build_algorithm("ptp-state", make_config("ptp-state", None, {"hidden_dims": "32x32",
                                                                       "generator_hidden_dims": "32x32"}), 8, 2)
    ptp = ptp.to(META)
    states, ends = torch.randn(50, 4, device=META), torch.full((50,), 49, dtype=torch.long, device=META)
    generator = torch.Generator().manual_seed(0)
    assert sample_chains(states, ends, 4, 2, 8, generator).device == META
    metrics = ptp.planner.update(states, ends, 8, generator)
    assert all(value.device == META for value in metrics.values())
    data = DataTransitions(states, ends, 4, 3)
    assert data(torch.randn(5, 4, device=META), generator).device == META


def test_a_plan_buffer_is_saved_as_cpu_tensors_and_restored_onto_the_planners_device():
    ptp = build_algorithm("ptp-state", make_config("ptp-state", None, {"hidden_dims": "32x32",
                                                                       "generator_hidden_dims": "32x32"}), 8, 2)
    ptp.planner.buffers[0].add(torch.randn(2, 3, 8))
    state = ptp.planner.extra_state()
    assert all(plan.device.type == "cpu" for plan in state["buffers"][0])
    moved = build_algorithm("ptp-state", make_config("ptp-state", None, {"hidden_dims": "32x32",
                                                                         "generator_hidden_dims": "32x32"}), 8, 2)
    moved.planner.load_extra_state(state)
    assert len(moved.planner.buffers[0]) == 2


# -- runs: the device asked for, refused, recorded, and changed on resume ----------------------------------
TINY = ["--offline-steps", "20", "--online-steps", "20", "--eval-every", "20", "--eval-episodes", "1",
        "--log-every", "10", "--set", "hidden_dims=32x32", "--set", "batch_size=32", "--json"]


def test_a_run_records_its_device_and_versions_and_a_missing_gpu_is_a_one_line_error(pendulum_env):
    import json

    from conftest import run_bench

    settings, env = pendulum_env
    result = json.loads(run_bench(env, "evaluate", "iql", "test/pendulum", "--device", "cpu", *TINY).stdout)
    run = json.loads(run_bench(env, "runs", "show", result["runs"][0]["run_id"], "--json").stdout)
    assert run["plan"]["device"] == "cpu"
    [runtime] = run["results"]["runtime"]
    assert runtime["device"] == "cpu" and runtime["torch"] == torch.__version__ and runtime["phase"] == "offline"
    assert "device cpu" in run_bench(env, "runs", "show", run["id"]).stdout
    before = len(json.loads(run_bench(env, "runs", "list", "--json").stdout))
    refusals = [(["--device", "tpu"], "--device must be one of auto, cpu, cuda, cuda:N")]
    if not torch.cuda.is_available():
        refusals.append((["--device", "cuda:0"], "no CUDA GPU"))
    for args, message in refusals:
        failed = run_bench(env, "evaluate", "iql", "test/pendulum", *args, *TINY, check=False)
        assert failed.returncode != 0 and message in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    # The setting is the default when --device is not given (BENCH_DEVICE, or bench.toml's device).
    failed = run_bench({**env, "BENCH_DEVICE": "gpu"}, "evaluate", "iql", "test/pendulum", *TINY, check=False)
    assert failed.returncode != 0 and "--device must be one of" in failed.stderr
    assert len(json.loads(run_bench(env, "runs", "list", "--json").stdout)) == before  # nothing recorded


def _interrupted(settings, algorithm: str, budget, device: str, phase: str, step: int):
    """A run planned on ``device`` and interrupted at ``step`` of ``phase``: (registry, store, run id)."""
    from bench.datasets import Registry
    from bench.evaluation.executors import execute_sweep
    from bench.evaluation.store import RunStore
    from bench.evaluation.sweeps import plan_sweep

    registry = Registry.open(settings)
    store = RunStore(registry.engine)
    specs = plan_sweep(registry, store, algorithm, "test/pendulum", [0], budget, {"hidden_dims": "32x32"},
                       device=device)

    def interrupt(run_id, at_phase, at_step, total):
        if (at_phase, at_step) == (phase, step):
            raise KeyboardInterrupt

    [outcome] = execute_sweep(specs, settings, store, progress=interrupt)
    assert outcome.status == "interrupted"
    return registry, store, specs[0].run_id


def _resumed(settings, store, run_id: str, device: str):
    from bench.evaluation.executors import execute_sweep
    from bench.evaluation.sweeps import spec_for_resume

    [outcome] = execute_sweep([spec_for_resume(store, run_id, device=device)], settings, store, resume=True)
    assert outcome.status == "completed"
    return outcome


def test_a_resumed_run_records_each_stretch_and_may_move_to_another_device(pendulum_env):
    from bench.evaluation.sweeps import Budget, spec_for_resume

    settings, _ = pendulum_env
    budget = Budget(offline_steps=60, online_steps=0, eval_every=30, eval_episodes=1, log_every=10)
    registry, store, run_id = _interrupted(settings, "awac", budget, "auto", "offline", 50)
    assert spec_for_resume(store, run_id, device="cpu").device == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInput, match="no CUDA GPU"):
            spec_for_resume(store, run_id, device="cuda")
    first, second = _resumed(settings, store, run_id, "cpu").results["runtime"]
    assert (first["phase"], first["step"]) == ("offline", 0) and (second["phase"], second["step"]) == ("offline", 50)
    assert first["device"] == second["device"] == "cpu"
    registry.close()


@pytest.mark.gpu
def test_on_a_gpu_a_run_trains_there_records_it_and_resumes_on_the_cpu(pendulum_env):
    from bench.evaluation.sweeps import Budget

    settings, _ = pendulum_env
    budget = Budget(offline_steps=60, online_steps=40, eval_every=30, eval_episodes=1, log_every=10)
    registry, store, run_id = _interrupted(settings, "iql", budget, "cuda", "online", 20)
    on_gpu, on_cpu = _resumed(settings, store, run_id, "cpu").results["runtime"]
    assert on_gpu["device"] == "cuda:0" and on_gpu["device_name"] and on_gpu["cuda"]
    assert on_cpu["device"] == "cpu" and (on_cpu["phase"], on_cpu["step"]) == ("online", 20)
    registry.close()


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["val", "ptp"])
def test_on_a_gpu_learning_from_pixels_runs_end_to_end(tabletop_registry, algorithm):
    from conftest import run_bench

    _, env = tabletop_registry
    tiny = ["--offline-steps", "40", "--online-steps", "30", "--eval-every", "30", "--eval-episodes", "1",
            "--set", "representation_steps=30", "--set", "proposer_steps=20", "--set", "hidden_dims=32x32",
            "--set", "batch_size=32", "--set", "calibration_attempts=4"]
    tiny += ["--set", "proposals_per_episode=2"] if algorithm == "val" else ["--set", "generator_steps=20",
                                                                             "--set", "planning_samples=64"]
    result = json.loads(run_bench(env, "evaluate", algorithm, "tabletop/prior", "--task", "button-press",
                                  "--device", "cuda", *tiny, "--json").stdout)
    run = json.loads(run_bench(env, "runs", "show", result["runs"][0]["run_id"], "--json").stdout)
    assert run["status"] == "completed", run["error"]
    assert run["results"]["runtime"][0]["device"] == "cuda:0"


# -- precision ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["iql", "cql", "sac"])
def test_bf16_computes_the_losses_in_bfloat16_and_keeps_the_weights_and_optimizer_in_fp32(name):
    batch = _batch(64, 5, 3, "cpu")
    results = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        algorithm = build_algorithm(name, make_config(name, None, SMALL), 5, 3)
        algorithm.set_precision(precision)
        with algorithm.autocast():
            hidden = algorithm.critic(batch.obs, batch.action) if hasattr(algorithm, "critic") else None
        results[precision] = (hidden, algorithm.update(batch), algorithm)
    fp32, bf16 = results["fp32"], results["bf16"]
    assert fp32[0].dtype == torch.float32 and bf16[0].dtype == torch.bfloat16
    algorithm = bf16[2]
    assert all(p.dtype == torch.float32 for p in algorithm.parameters())
    assert all(value.dtype == torch.float32 for state in algorithm.optimizer.state.values()
               for key, value in state.items() if key != "step")
    loss = "critic_loss" if "critic_loss" in fp32[1] else next(iter(fp32[1]))
    assert float(bf16[1][loss]) == pytest.approx(float(fp32[1][loss]), rel=0.05)  # the same step, rounded
    assert float(bf16[1][loss]) != float(fp32[1][loss])


def test_bf16_is_asked_for_by_name_and_recorded_with_the_run(pendulum_env):
    from conftest import run_bench

    _, env = pendulum_env
    result = json.loads(run_bench(env, "evaluate", "iql", "test/pendulum", "--precision", "bf16", *TINY).stdout)
    run = json.loads(run_bench(env, "runs", "show", result["runs"][0]["run_id"], "--json").stdout)
    assert run["status"] == "completed" and run["plan"]["precision"] == "bf16"
    assert run["results"]["runtime"][0]["precision"] == "bf16"
    failed = run_bench(env, "evaluate", "iql", "test/pendulum", "--precision", "fp16", *TINY, check=False)
    assert failed.returncode != 0 and "--precision must be one of fp32, bf16" in failed.stderr


@pytest.mark.gpu
def test_on_a_gpu_seeds_batched_as_one_model_train_as_they_would_alone():
    from bench.algorithms.seeds import SeedStack

    cuda = torch.device("cuda")
    alone = []
    for seed in range(4):
        torch.manual_seed(seed)
        alone.append(build_algorithm("iql", make_config("iql", None, SMALL), 5, 3).to(cuda))
    stack = SeedStack([build_algorithm("iql", make_config("iql", None, SMALL), 5, 3).to(cuda) for _ in range(4)])
    stack.load_member_states([a.checkpoint_state() for a in alone])
    for _ in range(10):
        batches = [_batch(64, 5, 3, cuda) for _ in range(4)]
        stack.update(batches)
        for algorithm, batch in zip(alone, batches):
            algorithm.update(batch)
    for i, algorithm in enumerate(alone):
        mine = dict(stack.model.named_parameters())
        assert max(float((p - mine[n][i]).detach().abs().max()) for n, p in algorithm.named_parameters()) < 1e-4


def test_the_harness_distance_statistics_stay_on_the_states_device():
    from bench.evaluation.harness import median_distance_apart

    states = torch.arange(12.0).view(6, 2).to(META)
    episode_end = torch.tensor([2, 2, 2, 5, 5, 5]).to(META)
    # Every step stays on the device up to the data-dependent mask (nonzero), which a meta tensor cannot
    # compute; a tensor made on the CPU would have failed before it, on the devices' mismatch.
    with pytest.raises(NotImplementedError, match="nonzero"):
        median_distance_apart(states, episode_end, 1)
    cpu = median_distance_apart(torch.arange(12.0).view(6, 2), torch.tensor([2, 2, 2, 5, 5, 5]), 1)
    assert cpu == pytest.approx(2 ** 1.5)
