"""Simulated episodes without a camera drawn in their environment: each frame is the one a live rollout shows."""

from __future__ import annotations

import numpy as np
import pytest

from bench.datasets.dataset import Episode
from bench.datasets.recipes import get_recipe
from bench.datasets.recipes.base import rollout
from bench.datasets.recipes.collection import collect_episodes
from bench.datasets.recipes.preview import rerun_first_episode
from bench.datasets.rendering import FRAME_SIZE, episode_scene
from bench.errors import InvalidInput


def as_episode(record, **attrs) -> Episode:
    return Episode(0, record.observations, record.actions, record.rewards, record.terminations, record.truncations,
                   {}, {**record.attrs, **attrs})


def live_frames(recipe, seed: int, rows: list[int]) -> dict[int, np.ndarray]:
    """Frames rendered while the recipe collects episode 0 again, with rendering on: the ground truth.

    Each is drawn after ``mj_forward``: after ``mj_step`` the body positions still belong to the substep
    before the last, and a frame should show the state the observation was read from.
    """
    import mujoco

    env = recipe.env.make(render_mode="rgb_array", width=FRAME_SIZE, height=FRAME_SIZE)
    model, data = env.unwrapped.model, env.unwrapped.data
    model.light_castshadow[:] = 0
    frames: dict[int, np.ndarray] = {}

    def capture(t: int) -> None:
        if t in rows:
            mujoco.mj_forward(model, data)
            frames[t] = env.render().copy()

    try:
        rerun_first_episode(recipe, seed, env, on_step=capture)
    finally:
        env.close()
    return frames


def test_a_recipe_episode_is_replayed_from_its_seed_and_each_frame_is_the_live_one():
    recipe = get_recipe("tabletop/prior")
    record = collect_episodes(recipe, 1, seed=3)[0]
    with episode_scene(recipe.env.reference(), as_episode(record)) as scene:
        assert scene.method == "replay" and len(scene.states) == len(record.actions) + 1 == scene.rows
        assert "every row equals the data" in scene.note
        rows = [0, len(record.actions) // 2, len(record.actions)]
        live = live_frames(recipe, 3, rows)
        for row in [rows[2], rows[0], rows[1]]:  # out of order: a frame depends on its row only
            np.testing.assert_array_equal(scene.frame(row), live[row])


def test_a_replay_that_leaves_the_data_draws_only_the_rows_it_reproduces():
    recipe = get_recipe("tabletop/prior")
    record = collect_episodes(recipe, 1, seed=3)[0]
    record.observations = {key: value.copy() for key, value in record.observations.items()}
    record.observations["state"][6] += 0.5  # the stored data no longer follows from its actions after row 5
    with episode_scene(recipe.env.reference(), as_episode(record)) as scene:
        assert len(scene.states) == 6 and "after row 5" in scene.note
        scene.frame(5)
        with pytest.raises(InvalidInput, match="rows 0 to 5"):
            scene.frame(6)


def random_rollout_with_frames(recipe, seed: int, steps: int) -> tuple[Episode, list[np.ndarray]]:
    """A short random episode of the recipe's environment and the frame of every row, drawn as it ran."""
    import mujoco

    env = recipe.env.make(render_mode="rgb_array", width=FRAME_SIZE, height=FRAME_SIZE)
    model, data = env.unwrapped.model, env.unwrapped.data
    model.light_castshadow[:] = 0
    env.action_space.seed(seed)
    frames = []

    def capture(t: int) -> None:
        mujoco.mj_forward(model, data)
        frames.append(env.render().copy())

    try:
        record = rollout(env, lambda observation, rng: env.action_space.sample(), seed, np.random.default_rng(seed),
                         max_steps=steps, on_step=capture)
    finally:
        env.close()
    return as_episode(record), frames


def test_an_episode_without_a_seed_is_drawn_from_its_joint_positions_where_the_observation_holds_them():
    recipe = get_recipe("pointmaze/umaze/navigate")
    episode, live = random_rollout_with_frames(recipe, seed=5, steps=30)
    episode.attrs.pop("seed")
    with episode_scene(recipe.env.reference(), episode) as scene:
        assert scene.method == "positions" and len(scene.states) == len(episode) + 1 == len(live)
        for row in [len(episode), 0, 17]:  # agent and goal marker where the live run had them
            np.testing.assert_array_equal(scene.frame(row), live[row])


def test_a_single_task_maze_episode_is_drawn_from_its_positions():
    # Its data starts at random cells, so a reset from the seed does not replay it; the state (x, y, vx, vy)
    # is the point's joint positions and velocities.
    recipe = get_recipe("pointmaze/medium-single/stitch")
    episode, live = random_rollout_with_frames(recipe, seed=5, steps=20)
    episode.attrs.pop("seed")
    with episode_scene(recipe.env.reference(), episode) as scene:
        assert scene.method == "positions"
        for row in [len(episode), 0, 7]:
            np.testing.assert_array_equal(scene.frame(row), live[row])


def test_a_runner_imported_without_seeds_integrates_the_position_its_observation_leaves_out():
    recipe = get_recipe("mujoco/hopper/random")
    episode, live = random_rollout_with_frames(recipe, seed=5, steps=30)
    episode.attrs.pop("seed")
    with episode_scene(recipe.env.reference(), episode) as scene:
        assert scene.method == "positions" and "integrated from velocity" in scene.note
        last = len(episode)
        # The hopper moves: its last live frame differs from its first by ~2 grey levels on average. The drawn
        # frames are within a tenth of that of the live ones (x starts at 0, not the reset's few mm of noise).
        assert np.abs(live[last].astype(int) - live[0]).mean() > 1.0
        for row in (0, last // 2, last):
            assert np.abs(scene.frame(row).astype(int) - live[row]).mean() < 0.3, row


def test_what_cannot_be_drawn_says_why():
    with pytest.raises(InvalidInput, match="names no simulated environment"):
        episode_scene(None, Episode(0, np.zeros((3, 2)), np.zeros((2, 1)), np.zeros(2), np.zeros(2, bool),
                                    np.zeros(2, bool), {}, {}))
    recipe = get_recipe("tabletop/prior")
    record = collect_episodes(recipe, 1, seed=3)[0]
    with pytest.raises(InvalidInput, match="records no reset seed.*do not begin with the simulator's joint positions"):
        episode_scene(recipe.env.reference(), as_episode(record, seed=None))
    with pytest.raises(InvalidInput, match="does not give its first observation"):
        episode_scene(recipe.env.reference(), as_episode(record, seed=record.attrs["seed"] + 1))


def test_the_api_render_thread_builds_each_scene_once_keeps_a_few_and_closes_the_rest():
    from bench.web.api.services import SceneWorker

    class Scene:
        closed = 0

        def close(self):
            Scene.closed += 1

    builds = []

    def build(key):
        def make():
            builds.append(key)
            if key == "bad":
                raise InvalidInput("cannot be drawn: no seed")
            return Scene()
        return make

    worker = SceneWorker(keep=2)
    for key in ["a", "a", "b", "a", "c"]:  # "b" is the least recently used when "c" comes
        worker.run(key, build(key), lambda scene: scene)
    assert builds == ["a", "b", "c"] and Scene.closed == 1 and list(worker.scenes) == ["a", "c"]
    for _ in range(3):  # a scene that cannot be built is asked once; each asker hears why
        with pytest.raises(InvalidInput, match="no seed"):
            worker.run("bad", build("bad"), lambda scene: scene)
    assert builds.count("bad") == 1
