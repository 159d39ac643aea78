"""Recipes: every one builds, builds are deterministic, policies behave as documented, scores normalize."""


import numpy as np
import pytest

from bench.datasets.recipes import all_recipes, get_recipe
from bench.datasets.recipes.base import to_trajectories
from bench.datasets.recipes.collection import collect_episodes, worker_pool
from bench.datasets.recipes.build import build, calibrate
from bench.datasets.format import content_sha256
from bench.leaderboards import normalized_score
from bench.platform.envs.metaworld import TASKS

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def _data(name, episodes, seed, pool=None):
    recipe = get_recipe(name)
    return to_trajectories(collect_episodes(recipe, episodes, seed, pool)).validate()


@pytest.fixture(scope="module")
def shared_registry(tmp_path_factory):
    """One registry for all tiny builds, so each environment's reference scores are measured once."""
    from bench.datasets import Registry
    from bench.platform.settings import Settings

    home = tmp_path_factory.mktemp("recipes")
    registry = Registry.open(Settings.load(home=home, database_url=f"sqlite:///{home / 'bench.db'}",
                                           storage_url=str(home / "datasets")))
    yield registry
    registry.close()


@pytest.mark.parametrize("name", [recipe.name for recipe in all_recipes()])
def test_every_recipe_builds_a_tiny_version(shared_registry, name):
    local_registry = shared_registry
    info = build(local_registry, name, episodes=1, seed=0, workers=1, reference_episodes=1, previews=False)
    assert info.id == f"{name}-v1" and info.episodes == 1
    dataset = local_registry.load(info.id)
    assert dataset.manifest["provenance"]["recipe"]["name"] == name
    assert dataset.manifest["env"]["name"] == get_recipe(name).env.name
    env = dataset.make_env()  # the environment reference rebuilds the environment
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    assert dataset.observation_space.shape == env.observation_space.shape
    env.close()
    recipe = get_recipe(name)
    references = local_registry.environments.get(recipe.env.name).references
    # Environments scored by return have reference scores; OGBench's tasks are scored by success rate.
    assert bool(references) == bool(recipe.reference_policies or recipe.env.published_references)


def test_same_seed_same_content_whatever_the_workers():
    serial = _data("metaworld/push/mixed", 3, seed=5)
    with worker_pool(2) as pool:
        parallel = _data("metaworld/push/mixed", 3, seed=5, pool=pool)
    assert content_sha256(serial) == content_sha256(parallel)
    assert content_sha256(_data("metaworld/push/mixed", 3, seed=6)) != content_sha256(serial)
    hopper = _data("mujoco/hopper/random", 4, seed=1)
    assert content_sha256(hopper) == content_sha256(_data("mujoco/hopper/random", 4, seed=1))
    assert content_sha256(hopper) != content_sha256(_data("mujoco/hopper/random", 4, seed=2))


def test_mixed_is_mostly_suboptimal_with_a_few_experts():
    data = _data("metaworld/drawer-open/mixed", 51, seed=0)
    kinds = list(data.episode_attrs["policy"])
    assert kinds.count("expert") == 1 and kinds.count("medium") == 25 and kinds.count("random") == 25


@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds_and_random_does_not(task):
    expert = _data(f"metaworld/{task}/expert", 6, seed=0)
    random = _data(f"metaworld/{task}/random", 3, seed=0)
    assert expert.episode_attrs["success"].mean() >= 0.9
    assert random.episode_attrs["success"].mean() <= 1 / 3


def test_normalized_scores_of_reference_policies(local_registry):
    recipe = get_recipe("metaworld/drawer-open/expert")
    with worker_pool(2) as pool:
        calibrate(local_registry, recipe, episodes=6, pool=pool)
        env = local_registry.environments.get("metaworld/drawer-open")
        # Fresh episodes (other seeds) of the reference policies land near 0 and 100.
        scripted = collect_episodes(recipe, 6, seed=77, pool=pool, kind="scripted")
        random = collect_episodes(recipe, 6, seed=77, pool=pool, kind="random")
    expert_score = normalized_score(env, np.mean([r.rewards.sum() for r in scripted]))
    random_score = normalized_score(env, np.mean([r.rewards.sum() for r in random]))
    assert 85 <= expert_score <= 115, expert_score
    assert -15 <= random_score <= 15, random_score


def test_locomotion_uses_d4rl_published_references(local_registry):
    recipe = get_recipe("mujoco/hopper/random")
    calibrate(local_registry, recipe, episodes=5)
    env = local_registry.environments.get("mujoco/hopper")
    assert env.reference_pair() == (-20.272305, 3234.3, "d4rl")
    assert normalized_score(env, 3234.3) == pytest.approx(100.0)
    bench_random = next(s.value for s in env.references if s.source == "bench" and s.kind == "random")
    assert -5 <= normalized_score(env, bench_random) <= 5  # uniform random is D4RL-random-like


def test_build_and_card_through_the_cli(tmp_path, request):
    import subprocess
    import sys

    from conftest import make_settings, settings_env

    env = settings_env(make_settings(request, tmp_path, "sqlite-local"))

    def bench(*args):
        result = subprocess.run([sys.executable, "-m", "bench.cli", *args], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "metaworld/drawer-open/mixed" in bench("recipes", "list")
    built = bench("datasets", "build", "metaworld/drawer-open/expert", "--episodes", "2", "--workers", "1",
                  "--reference-episodes", "2")
    assert "metaworld/drawer-open/expert-v1" in built
    bench("datasets", "card", "metaworld/drawer-open/expert-v1", "--out", str(tmp_path / "card"))
    text = (tmp_path / "card" / "card.md").read_text()
    assert "success rate: 1.000" in text and "Normalized score" in text and "bench datasets build" in text
    previews = sorted((tmp_path / "card" / "media").glob("preview_*.png"))
    assert len(previews) == 5 and all(p.stat().st_size > 1000 for p in previews)
    import json

    shown = json.loads(bench("envs", "show", "metaworld/drawer-open", "--json"))
    assert shown["normalization"]["source"] == "bench"
    assert {e["name"] for e in json.loads(bench("envs", "list", "--json"))} >= {"mujoco/hopper", "metaworld/push"}


def test_ogbench_evaluation_has_five_tasks_with_success():
    env = get_recipe("ogbench/cube-single/play").env.make()
    try:
        for task_id in range(1, 6):
            observation, info = env.reset(options={"task_id": task_id})
            assert "goal" in info and env.observation_space.contains(observation)
            _, _, _, _, info = env.step(env.action_space.sample())
            assert "success" in info
    finally:
        env.close()


def test_ogbench_play_and_noisy_differ_and_keep_final_observations():
    play = _data("ogbench/puzzle-3x3/play", 1, seed=0)
    noisy = _data("ogbench/puzzle-3x3/noisy", 1, seed=0)
    assert play.lengths.tolist() == noisy.lengths.tolist() == [1001]
    assert len(play.observations) == 1002  # T+1: the final observation is kept
    assert content_sha256(play) != content_sha256(noisy)


def test_pointmaze_stitch_segments_never_join_start_and_goal():
    from bench.datasets.recipes.pointmaze import EVALUATION_CELLS

    recipe = get_recipe("pointmaze/umaze/stitch")
    data = _data("pointmaze/umaze/stitch", 30, seed=0)
    env = recipe.env.make()
    maze = env.unwrapped.maze
    start, goal = EVALUATION_CELLS["umaze"]
    for obs_slice, _ in data.iter_episode_slices():
        cells = {tuple(int(v) for v in maze.cell_xy_to_rowcol(p)) for p in data.observations["achieved_goal"][obs_slice]}
        assert not (start in cells and goal in cells)
    assert data.lengths.max() <= 100
    env.close()


def test_pointmaze_controller_reaches_the_evaluation_goal_and_random_does_not(local_registry):
    recipe = get_recipe("pointmaze/medium/navigate")
    calibrate(local_registry, recipe, episodes=2)
    env = local_registry.environments.get("pointmaze/medium")
    random, expert, source = env.reference_pair()
    assert source == "bench" and expert > 300 and random < 10
    navigate = _data("pointmaze/medium/navigate", 2, seed=0)
    assert set(navigate.observations) == {"observation", "achieved_goal", "desired_goal"}
    assert navigate.lengths.tolist() == [1000, 1000]


def test_fetch_demos_mostly_succeed_except_slide(local_registry):
    push = _data("fetch/push/demos", 10, seed=0)
    pick = _data("fetch/pick-and-place/demos", 10, seed=0)
    slide = _data("fetch/slide/demos", 10, seed=0)
    assert push.episode_attrs["success"].mean() >= 0.6 and pick.episode_attrs["success"].mean() >= 0.8
    assert slide.episode_attrs["success"].mean() <= 0.5  # the goal is out of reach: most strikes miss
    # sparse reward of ch. 4, eq. 16: 0 at the goal, -1 elsewhere
    assert set(np.unique(push.rewards)) <= {-1.0, 0.0}
    calibrate(local_registry, get_recipe("fetch/push/demos"), episodes=4)
    random, expert, source = local_registry.environments.get("fetch/push").reference_pair()
    assert source == "bench" and expert > random


@pytest.mark.parametrize("name", ["pointmaze/medium/stitch", "fetch/slide/demos", "ogbench/cube-single/noisy"])
def test_every_family_is_deterministic(name):
    episodes = 1 if name.startswith("ogbench") else 3
    first = content_sha256(_data(name, episodes, seed=3))
    assert first == content_sha256(_data(name, episodes, seed=3))
    assert first != content_sha256(_data(name, episodes, seed=4))


def test_pointmaze_normalized_scores_of_reference_policies(local_registry):
    recipe = get_recipe("pointmaze/umaze/navigate")
    calibrate(local_registry, recipe, episodes=4)
    env = local_registry.environments.get("pointmaze/umaze")
    controller = collect_episodes(recipe, 4, seed=99, kind="controller", evaluate=True)
    random = collect_episodes(recipe, 4, seed=99, kind="random", evaluate=True)
    assert 90 <= normalized_score(env, np.mean([r.rewards.sum() for r in controller])) <= 110
    assert -5 <= normalized_score(env, np.mean([r.rewards.sum() for r in random])) <= 5


def test_single_task_pointmaze_hides_the_goal_and_ends_on_arrival(local_registry):
    recipe = get_recipe("pointmaze/medium-single/play")
    env = recipe.env.make()
    task = env.unwrapped
    starts = []
    for seed in range(3):
        state, info = env.reset(seed=seed)
        assert state.shape == (4,) and not info["success"]
        starts.append(state[:2].copy())
        # The goal is the goal cell's centre, whatever the reset's noise.
        assert np.allclose(task.goal, task.maze.cell_rowcol_to_xy(np.array(task.goal_cell)))
    assert not np.allclose(starts[0], starts[1])  # the start is jittered, so evaluation episodes differ
    assert env.spec.max_episode_steps == 300
    env.close()
    calibrate(local_registry, recipe, episodes=3)
    random, expert, source = local_registry.environments.get("pointmaze/medium-single").reference_pair()
    assert (random, expert, source) == (0.0, 1.0, "bench")  # the controller always arrives in time, random never
    controller = collect_episodes(recipe, 2, seed=99, kind="controller", evaluate=True)
    for record in controller:  # reward 1 on the arriving step only, which ends the episode
        assert record.terminations[-1] and record.rewards.tolist() == [0.0] * (len(record.rewards) - 1) + [1.0]
        assert len(record.actions) < 300


def test_single_task_data_never_aims_at_the_goal():
    from bench.datasets.recipes.pointmaze import EVALUATION_CELLS

    start, goal = EVALUATION_CELLS["medium"]
    env = get_recipe("pointmaze/medium-single/stitch").env.make()
    maze = env.unwrapped.maze
    stitch = _data("pointmaze/medium-single/stitch", 40, seed=0)
    play = _data("pointmaze/medium-single/play", 4, seed=0)
    goal_xy = maze.cell_rowcol_to_xy(np.array(goal))
    for data in (stitch, play):
        assert data.observations.shape[1] == 4  # no goal in the observation
        # Reward 1 for each step that lands within the goal, and the data runs on through it.
        next_rows = np.concatenate([np.arange(s.start + 1, s.stop) for s, _ in data.iter_episode_slices()])
        within = np.linalg.norm(data.observations[next_rows, :2] - goal_xy, axis=1) <= 0.45
        assert np.array_equal(data.rewards > 0, within) and not data.terminations.any()
    assert (play.rewards > 0).any() and play.lengths.tolist() == [1000] * 4
    for obs_slice, _ in stitch.iter_episode_slices():
        cells = {tuple(int(v) for v in maze.cell_xy_to_rowcol(p)) for p in stitch.observations[obs_slice, :2]}
        assert not (start in cells and goal in cells)
    assert stitch.lengths.max() <= 100
    # Play starts from random cells, not the evaluation start.
    first_cells = {tuple(int(v) for v in maze.cell_xy_to_rowcol(stitch.observations[s.start, :2]))
                   for s, _ in stitch.iter_episode_slices()}
    assert len(first_cells) > 5
    env.close()


def test_misaimed_expert_misses_and_expert_misaimed_is_a_tenth_expert():
    misaimed = collect_episodes(get_recipe("metaworld/push/expert-misaimed"), 3, seed=0, kind="misaimed")
    assert not any(record.attrs["success"] for record in misaimed)
    data = _data("metaworld/push/expert-misaimed", 20, seed=0)
    assert list(data.episode_attrs["policy"]) == ["expert"] * 2 + ["misaimed"] * 18
    # Old recipes are unchanged (their content hashes are published): door-open has no misaimed data.
    assert "metaworld/door-open/expert-misaimed" not in {recipe.name for recipe in all_recipes()}
