"""`bench evaluate`, `bench runs` and `bench algorithms` through the real command, per algorithm and per recipe family,
and through a real local Ray cluster."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import interrupted_evaluation, make_settings, run_bench, settings_env

pytestmark = pytest.mark.slow
TINY = ["--offline-steps", "30", "--online-steps", "30", "--eval-every", "30", "--eval-episodes", "1",
        "--log-every", "10", "--set", "hidden_dims=32x32", "--set", "batch_size=64"]


def test_algorithms_list_and_show(pendulum_env):
    _, env = pendulum_env
    listed = json.loads(run_bench(env, "algorithms", "list", "--json").stdout)
    assert {"bc", "bc-10%", "awac", "iql", "cql"} <= {a["name"] for a in listed}
    shown = json.loads(run_bench(env, "algorithms", "show", "iql", "--json").stdout)
    fields = {f["name"]: f for f in shown["fields"]}
    assert fields["expectile"]["default"] == 0.7 and "IQL paper" in fields["expectile"]["source"]
    assert fields["expectile"]["presets"]["maze"] == 0.9 and shown["presets"]["locomotion"]["values"]["temperature"] == 3.0
    text = run_bench(env, "algorithms", "show", "bc-10%").stdout
    assert "top_fraction" in text and "bc-10% variant" in text
    resolved = json.loads(run_bench(env, "algorithms", "show", "iql", "--dataset", "test/pendulum-v1",
                                    "--json").stdout)
    assert resolved["environment"] == "test/pendulum" and resolved["domain"] is None
    assert resolved["config"]["expectile"] == 0.7 and "IQL paper" in resolved["origins"]["expectile"]
    assert "expectile" in run_bench(env, "algorithms", "show", "iql", "--dataset", "test/pendulum").stdout


@pytest.mark.parametrize("algorithm", ["bc", "bc-10%", "awac", "iql", "cql", "cql-lagrange", "sac", "sacfd", "td3"])
def test_evaluate_each_algorithm_end_to_end(pendulum_env, algorithm):
    settings, env = pendulum_env
    result = json.loads(run_bench(env, "evaluate", algorithm, "test/pendulum", "--seeds", "2", *TINY, "--json").stdout)
    assert [run["status"] for run in result["runs"]] == ["completed", "completed"]
    assert [run["seed"] for run in result["runs"]] == [0, 1]
    for run in result["runs"]:
        assert set(run["offline"]) == {"return", "normalized_score", "success_rate"}
        assert run["offline"]["success_rate"] is None  # Pendulum has no success signal
        assert (run["online"] is None) == algorithm.startswith("bc")
    assert result["summary"]["offline"]["normalized_score"]["n"] == 2
    assert len(result["summary"]["offline"]["normalized_score"]["ci95"]) == 2

    shown = json.loads(run_bench(env, "runs", "show", result["runs"][0]["run_id"], "--json").stdout)
    assert shown["algorithm"] == algorithm and shown["dataset_id"] == "test/pendulum-v1"
    offline = 0 if algorithm in ("sac", "td3") else 30  # learners from scratch have no offline phase: evaluated untrained
    assert shown["config"]["hidden_dims"] == [32, 32] and shown["plan"]["offline_steps"] == offline
    assert shown["dataset_content_sha256"] and shown["code_version"] and shown["config_hash"]
    assert [c["step"] for c in shown["curves"] if c["kind"] == "eval"] == ([30] if algorithm.startswith("bc") else
                                                                           [offline, 30])
    assert (settings.home / "datasets" / shown["checkpoint"]).is_file()
    listed = json.loads(run_bench(env, "runs", "list", "--algo", algorithm, "--json").stdout)
    assert {run["run_id"] for run in listed} == {run["run_id"] for run in result["runs"]}


def test_evaluate_bad_input_is_one_line_and_records_nothing(pendulum_env):
    _, env = pendulum_env
    cases = [
        (["evaluate", "dqn", "test/pendulum"], "unknown algorithm 'dqn'"),
        (["evaluate", "iql", "test/missing"], "test/missing"),
        (["evaluate", "iql", "test/pendulum", "--set", "expectile=high"], "expected float"),
        (["evaluate", "iql", "test/pendulum", "--set", "nonsense"], "key=value"),
        (["evaluate", "iql", "test/pendulum", "--eval-every", "0"], "must be positive"),
        (["evaluate", "iql", "test/pendulum", "--executor", "slurm"], "unknown executor"),
        (["evaluate", "iql", "test/pendulum", "--online-evals-at", "250,soon"], "integers separated by commas"),
        (["evaluate", "iql", "test/pendulum", "--online-steps", "100", "--online-evals-at", "0,50"], "1..100"),
        (["evaluate", "iql", "test/pendulum", "--online-steps", "100", "--online-evals-at", "500"], "1..100"),
        (["evaluate", "iql", "test/pendulum", "--seed-list", "1,x"], "integers separated by commas"),
        (["runs", "show", "nope"], "no run 'nope'"),
        (["runs", "resume", "nope"], "no run 'nope'"),
    ]
    for args, message in cases:
        result = run_bench(env, *args, check=False)
        assert result.returncode == 1, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, result.stderr)
    assert json.loads(run_bench(env, "runs", "list", "--json").stdout) == []


def test_evaluate_interrupted_by_ctrl_c_then_resumed(pendulum_env):
    """A real SIGINT to the CLI: the run is left interrupted with a checkpoint, and `runs resume` finishes it."""
    settings, env = pendulum_env
    # SIGINT right after the run's first evaluation.
    result = interrupted_evaluation(settings, env, ["iql", "test/pendulum", "--offline-steps", "3000",
                                                    "--online-steps", "0", "--eval-every", "200", "--eval-episodes",
                                                    "1", "--set", "hidden_dims=32x32", "--set", "compile=off"],
                                    lambda store, run_id: store.curves(run_id, kind="eval"), timeout=120)
    stdout, stderr = result.stdout, result.stderr
    assert result.returncode == 130, stderr
    assert "bench runs resume" in stderr
    run = json.loads(stdout)["runs"][0]
    assert run["status"] == "interrupted"
    shown = json.loads(run_bench(env, "runs", "show", run["run_id"], "--json").stdout)
    assert shown["checkpoint"] and shown["results"]["offline"]["final"]["step"] >= 200
    assert shown["results"]["offline"]["final"]["step"] < 3000

    resumed = json.loads(run_bench(env, "runs", "resume", run["run_id"], "--json").stdout)
    assert resumed["runs"][0]["status"] == "completed"
    steps = [c["step"] for c in json.loads(run_bench(env, "runs", "show", run["run_id"], "--json").stdout)["curves"]
             if c["kind"] == "eval"]
    assert steps == list(range(200, 3001, 200))  # every evaluation once: none lost, none repeated


def test_a_run_whose_worker_was_killed_is_marked_failed_then_resumed(pendulum_env):
    """SIGKILL leaves no chance to record anything: the run stays "running" until someone says its worker is gone."""
    import signal
    import time

    _, env = pendulum_env
    process = subprocess.Popen([sys.executable, "-m", "bench.cli", "evaluate", "iql", "test/pendulum",
                                "--offline-steps", "3000", "--online-steps", "0", "--eval-every", "200",
                                "--eval-episodes", "1", "--set", "hidden_dims=32x32", "--set", "compile=off", "--json"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = json.loads(run_bench(env, "runs", "list", "--json").stdout)
        if runs and runs[0]["status"] == "running" and json.loads(
                run_bench(env, "runs", "show", runs[0]["run_id"], "--json").stdout)["checkpoint"]:
            break
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    run_id = runs[0]["run_id"]
    refused = run_bench(env, "runs", "resume", run_id, check=False)
    assert refused.returncode == 1 and f"bench runs mark-failed {run_id}" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    assert "marked failed" in run_bench(env, "runs", "mark-failed", run_id, "--reason", "killed in a test").stdout
    shown = json.loads(run_bench(env, "runs", "show", run_id, "--json").stdout)
    assert shown["status"] == "failed" and shown["error"] == "marked failed: killed in a test"
    resumed = json.loads(run_bench(env, "runs", "resume", run_id, "--json").stdout)
    assert resumed["runs"][0]["status"] == "completed"
    again = run_bench(env, "runs", "mark-failed", run_id, check=False)  # a finished run cannot be marked
    assert again.returncode == 1 and "only running or pending runs" in again.stderr


RECIPE_EPISODES = {"metaworld/drawer-open/expert": "2", "mujoco/hopper/random": "10", "pointmaze/umaze/stitch": "20",
                   "fetch/push/demos": "4", "ogbench/cube-single/play": "2"}


@pytest.mark.parametrize("recipe", list(RECIPE_EPISODES))
def test_evaluate_every_recipe_family(request, tmp_path, recipe):
    """Flat observations (Meta-World, locomotion), dict goals (PointMaze, Fetch: relabeled with the env's
    compute_reward) and observation goals (OGBench: relabeled, reached when the state is the goal)."""
    settings = make_settings(request, tmp_path, "sqlite-local")
    env = settings_env(settings)
    episodes = RECIPE_EPISODES[recipe]
    run_bench(env, "datasets", "build", recipe, "--episodes", episodes, "--reference-episodes", "2", "--workers", "1")
    result = json.loads(run_bench(env, "evaluate", "iql", recipe, "--offline-steps", "20", "--online-steps", "20",
                               "--eval-every", "20", "--eval-episodes", "1", "--set", "hidden_dims=32x32",
                               "--set", "relabel_final=0.1", "--set", "relabel_random=0.2", "--json").stdout)
    run = result["runs"][0]
    assert run["status"] == "completed", run["error"]
    assert run["online"] is not None
    if recipe.startswith("mujoco"):  # locomotion defines no success: no rate, not a rate of 0 (issue 18, bug 4)
        assert run["offline"]["success_rate"] is None and run["online"]["success_rate"] is None
        assert "the environment reports no success" in run_bench(env, "runs", "show", run["run_id"]).stdout
    else:
        assert 0.0 <= run["offline"]["success_rate"] <= 1.0
    shown = json.loads(run_bench(env, "runs", "show", run["run_id"], "--json").stdout)
    assert shown["env_name"] == recipe.rsplit("/", 1)[0]
    if not recipe.startswith("ogbench"):  # OGBench's tasks have success rates, bench has no reference returns
        assert run["offline"]["normalized_score"] is not None


def test_imported_d4rl_data_is_tied_to_the_catalogue_by_either_name(request, tmp_path):
    """Bug: `--env Hopper-v5` gave no catalogue entry (no D4RL normalized score, generic settings) and
    `--env mujoco/hopper` failed. Both now resolve to the catalogue entry, and the import says which scores apply."""
    from bench.testing.data import gym_random_rollouts, write_d4rl_file

    settings = make_settings(request, tmp_path, "sqlite-local")
    env = settings_env(settings)
    path = write_d4rl_file(tmp_path / "hopper_random.hdf5", gym_random_rollouts("Hopper-v5", episodes=3, seed=0, max_steps=30))
    by_gym_id = run_bench(env, "datasets", "import", path, "--id", "lab/hopper", "--env", "Hopper-v5")
    assert "environment: mujoco/hopper (Hopper-v5); reference scores from d4rl: random -20.2723, expert 3234.3" in by_gym_id.stdout
    by_name = run_bench(env, "datasets", "import", path, "--id", "lab/hopper", "--env", "mujoco/hopper", "--json")
    assert json.loads(by_name.stdout)["env"]["name"] == "mujoco/hopper"
    assert json.loads(by_name.stdout)["env"]["id"] == "Hopper-v5"
    typo = run_bench(env, "datasets", "import", path, "--id", "lab/hopper", "--env", "mujoco/hoper", check=False)
    assert typo.returncode == 1 and "did you mean mujoco/hopper" in typo.stderr and len(typo.stderr.strip().splitlines()) == 1
    resolved = json.loads(run_bench(env, "algorithms", "show", "iql", "--dataset", "lab/hopper", "--json").stdout)
    assert resolved["environment"] == "mujoco/hopper" and resolved["domain"] == "locomotion"
    run = json.loads(run_bench(env, "evaluate", "iql", "lab/hopper-v1", *TINY, "--json").stdout)["runs"][0]
    assert run["status"] == "completed" and run["offline"]["normalized_score"] is not None
    shown = json.loads(run_bench(env, "runs", "show", run["run_id"], "--json").stdout)
    assert shown["env_name"] == "mujoco/hopper" and shown["plan"]["domain"] == "locomotion"
    assert run["offline"]["success_rate"] is None  # hopper defines no success


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_cluster():
    """A real local Ray cluster on loopback, started with `ray start --head` and stopped afterwards; it declares one
    GPU (Ray schedules by declared resources: there need not be one) so runs can ask for fractions of it."""
    import tempfile

    # Ray puts Unix sockets under its temp dir: a pytest tmp_path is too long for a socket path.
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray = str(Path(sys.executable).parent / "ray")
    if not Path(ray).exists():
        ray = shutil.which("ray")
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
                    "--num-gpus", "1", "--include-dashboard", "false", "--disable-usage-stats",
                    "--temp-dir", temp_dir], check=True, capture_output=True, env=env, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_evaluate_through_a_ray_cluster(pendulum_env, ray_cluster):
    _, env = pendulum_env
    result = json.loads(run_bench(env, "evaluate", "iql", "test/pendulum", "--seeds", "2", *TINY, "--executor", "ray",
                               "--ray-address", ray_cluster, "--json").stdout)
    assert [run["status"] for run in result["runs"]] == ["completed", "completed"]
    for run in result["runs"]:
        shown = json.loads(run_bench(env, "runs", "show", run["run_id"], "--json").stdout)
        # The workers' records were returned to the driver and written by it.
        assert [c["step"] for c in shown["curves"] if c["kind"] == "eval"] == [30, 30]
        assert shown["plan"]["executor"] == "ray" and shown["host"] and shown["checkpoint"]


def test_ray_runs_ask_for_fractions_of_a_gpu_and_a_request_the_cluster_cannot_place_is_refused(pendulum_env,
                                                                                                ray_cluster):
    _, env = pendulum_env
    # Two runs at half a GPU each fit the cluster's one GPU together; Ray hands each that GPU's id, and
    # --device auto uses it where CUDA is (here there is none: auto is the CPU).
    result = json.loads(run_bench(env, "evaluate", "iql", "test/pendulum", "--seeds", "2", *TINY, "--executor", "ray",
                                  "--ray-address", ray_cluster, "--gpus-per-run", "0.5", "--cpus-per-run", "1",
                                  "--json").stdout)
    assert [run["status"] for run in result["runs"]] == ["completed", "completed"]
    shown = json.loads(run_bench(env, "runs", "show", result["runs"][0]["run_id"], "--json").stdout)
    assert shown["plan"]["gpus_per_run"] == 0.5 and shown["plan"]["cpus_per_run"] == 1.0
    assert shown["plan"]["torch_threads"] == 1
    # A seed group is one Ray task (its share of the GPU, its CPUs), each seed still its own run.
    result = json.loads(run_bench(env, "evaluate", "iql", "test/pendulum", "--seeds", "3", *TINY, "--executor", "ray",
                                  "--ray-address", ray_cluster, "--gpus-per-run", "0.5", "--cpus-per-run", "2",
                                  "--batch-seeds", "--json").stdout)
    assert [run["status"] for run in result["runs"]] == ["completed"] * 3
    shown = json.loads(run_bench(env, "runs", "show", result["runs"][2]["run_id"], "--json").stdout)
    assert shown["results"]["runtime"][0]["batched_seeds"] == 3 and shown["plan"]["torch_threads"] == 2
    before = len(json.loads(run_bench(env, "runs", "list", "--json").stdout))
    for args, message in ((["--gpus-per-run", "2"], "asks for 2 GPU(s) and the Ray cluster has 1"),
                          (["--gpus-per-run", "1.5"], "whole number of GPUs"),
                          (["--device", "cuda"], "add --gpus-per-run")):
        failed = run_bench(env, "evaluate", "iql", "test/pendulum", *TINY, "--executor", "ray", "--ray-address",
                           ray_cluster, *args, check=False)
        assert failed.returncode != 0 and message in failed.stderr, failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1
    failed = run_bench(env, "evaluate", "iql", "test/pendulum", *TINY, "--gpus-per-run", "1", check=False)
    assert failed.returncode != 0 and "use --executor ray" in failed.stderr
    assert len(json.loads(run_bench(env, "runs", "list", "--json").stdout)) == before  # nothing recorded
