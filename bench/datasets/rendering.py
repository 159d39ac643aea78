"""Frames for simulated episodes that carry no camera: the episode is put back into its environment.

Two ways, tried in order, each checked against the stored observations so that a frame never shows
what the data does not hold:

- replay: reset the environment with the episode's recorded ``seed`` and step its actions (recipes
  record seeds, MuJoCo is deterministic); the simulator state is kept after every step, and the replay
  counts only as far as its observations equal the stored ones;
- positions: where the observation begins with the simulator's joint positions and velocities
  (Gymnasium's MuJoCo runners, PointMaze), they are set directly; positions the observation leaves out
  (a runner's x) are integrated from its velocity. Checked once per environment on a reset.

Frames are rendered on demand from the kept states (15-20 ms each at 160x160 on a CPU renderer,
shadows off), so opening an episode costs one pass of its physics (0.1-0.3 ms a step), not a render of
every step. An ``EpisodeScene`` owns an environment and its GL context: use it from one thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.datasets.dataset import Episode
from bench.datasets.trajectories import flatten_tree
from bench.errors import InvalidInput
from bench.platform.environments import make_env

FRAME_SIZE = 160
# Model fields that environments change while an episode runs (a button that lights up when pressed,
# PointMaze's goal marker); the simulator state does not hold them, so a scene keeps them per row.
VISUAL_FIELDS = ("geom_rgba", "site_rgba", "site_pos", "geom_pos", "body_pos")
# Stored observations are float32 copies of float64 simulator values: equal to about 1e-7.
MATCH_TOLERANCE = 1e-4


@dataclass
class EpisodeScene:
    """An episode's simulator states, one per observation row, and the environment that draws them."""

    env: Any
    states: list[np.ndarray]
    method: str  # "replay" or "positions"
    note: str
    rows: int  # observation rows of the episode (T + 1); frames exist for the first len(states)
    # (first row, values of VISUAL_FIELDS) each time they changed; the first entry is row 0's.
    visuals: list[tuple[int, dict[str, np.ndarray]]] = field(default_factory=list)

    def frame(self, row: int) -> np.ndarray:
        """The picture of observation row ``row`` (HxWx3 uint8)."""
        import mujoco  # start-up time: the API imports this module; only drawing needs MuJoCo

        if not 0 <= row < len(self.states):
            shown = f"rows 0 to {len(self.states) - 1}" if self.states else "no rows"
            raise InvalidInput(f"row {row} cannot be drawn: {self.note}; frames cover {shown}")
        model, data = _physics(self.env)
        mujoco.mj_setState(model, data, self.states[row], mujoco.mjtState.mjSTATE_INTEGRATION)
        since = [values for first, values in self.visuals if first <= row]
        for name, value in (since[-1] if since else {}).items():
            getattr(model, name)[:] = value
        mujoco.mj_forward(model, data)
        return np.asarray(self.env.render(), dtype=np.uint8)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "note": self.note, "frames": len(self.states), "rows": self.rows,
                "width": FRAME_SIZE, "height": FRAME_SIZE}

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> "EpisodeScene":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def episode_scene(reference: dict[str, Any] | None, episode: Episode) -> EpisodeScene:
    """Rebuild ``episode`` in the environment ``reference`` names; a clear error says why when it cannot."""
    if not reference or not reference.get("id"):
        raise InvalidInput("this dataset names no simulated environment, so its episodes cannot be rendered "
                           "(import it with --env NAME to tie it to one)")
    env = make_env(reference, render_mode="rgb_array", width=FRAME_SIZE, height=FRAME_SIZE)
    try:
        physics = _physics(env)
        if physics is None:
            raise InvalidInput(f"{reference['id']} is not a MuJoCo environment; bench renders only those")
        physics[0].light_castshadow[:] = 0  # shadows cost ~30x on a CPU renderer
        scene, replay_reason = _replayed(env, episode)
        if scene is None:
            scene, positions_reason = _from_positions(env, episode)
            if scene is None:
                raise InvalidInput(f"episode cannot be rendered: {replay_reason}; and {positions_reason}")
        return scene
    except BaseException:
        env.close()
        raise


def _physics(env) -> tuple[Any, Any] | None:
    """The MuJoCo model and data behind a gymnasium environment (bench's Meta-World wrapper keeps them one deeper)."""
    unwrapped = env.unwrapped
    for owner in (unwrapped, getattr(unwrapped, "_env", None)):
        model, data = getattr(owner, "model", None), getattr(owner, "data", None)
        if model is not None and data is not None:
            return model, data
    return None


def _kept_state(model, data) -> np.ndarray:
    """The simulator state a frame is drawn from: mjSTATE_INTEGRATION, not FULLPHYSICS, which leaves out
    the mocap bodies that position-controlled arms (Meta-World, the tabletop) move."""
    import mujoco  # start-up time (see EpisodeScene.frame)

    kept = np.empty(mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_INTEGRATION))
    mujoco.mj_getState(model, data, kept, mujoco.mjtState.mjSTATE_INTEGRATION)
    return kept


class _Visuals:
    """Keeps VISUAL_FIELDS of a model each time a row changes them."""

    def __init__(self, model):
        self.model, self.changes = model, []

    def keep(self, row: int) -> None:
        values = {name: np.array(getattr(self.model, name)) for name in VISUAL_FIELDS}
        if not self.changes or any(not np.array_equal(values[n], self.changes[-1][1][n]) for n in VISUAL_FIELDS):
            self.changes.append((row, values))


def _state_part(observations: Any) -> np.ndarray:
    """A goal-conditioned dict's ``observation`` entry (or its first), else the observations themselves."""
    if isinstance(observations, dict):
        observations = observations.get("observation", next(iter(observations.values())))
    return np.asarray(observations, dtype=np.float64)


def _row(observations: Any, row: int) -> Any:
    if isinstance(observations, dict):
        return {key: _row(value, row) for key, value in observations.items()}
    return observations[row]


def _flat(observation: Any) -> np.ndarray:
    """Every entry of an observation, by sorted key (an environment's dict and the stored one may differ in order)."""
    return np.concatenate([np.ravel(value).astype(np.float64) for _, value in sorted(flatten_tree(observation).items())])


def _differs(replayed: Any, stored: Any) -> float:
    a, b = _flat(replayed), _flat(stored)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b) / (1.0 + np.abs(b)), initial=0.0))


def _replayed(env, episode: Episode) -> tuple[EpisodeScene | None, str]:
    seed = episode.attrs.get("seed")
    if seed is None:
        return None, "the episode records no reset seed to replay it from"
    model, data = _physics(env)
    rows = len(episode) + 1
    observation, _ = env.reset(seed=int(seed))
    error = _differs(observation, _row(episode.observations, 0))
    if error > MATCH_TOLERANCE:
        return None, f"resetting with the episode's seed {seed} does not give its first observation " \
                     f"(relative difference {error:.2g})"
    states, visuals = [_kept_state(model, data)], _Visuals(model)
    visuals.keep(0)
    for t, action in enumerate(np.asarray(episode.actions)):
        observation, *_ = env.step(action)
        error = _differs(observation, _row(episode.observations, t + 1))
        if error > MATCH_TOLERANCE:
            note = f"replayed from seed {seed}; the replay leaves the data after row {t} " \
                   f"(relative difference {error:.2g}), so later rows are not drawn"
            return EpisodeScene(env, states, "replay", note, rows, visuals.changes), note
        states.append(_kept_state(model, data))
        visuals.keep(t + 1)
    note = f"replayed from seed {seed}; every row equals the data"
    return EpisodeScene(env, states, "replay", note, rows, visuals.changes), ""


def _position_layout(env, model, data) -> int | None:
    """How many leading joint positions the observation leaves out (0-2), if it begins with qpos[k:], qvel."""
    observation = np.ravel(_state_part(env.reset(seed=0)[0]))
    for skipped in (0, 1, 2):
        width = model.nq - skipped + model.nv
        if len(observation) >= width and np.allclose(observation[:model.nq - skipped], data.qpos[skipped:], atol=1e-6) \
                and np.allclose(observation[model.nq - skipped:width], data.qvel, atol=1e-6):
            return skipped
    return None


def _from_positions(env, episode: Episode) -> tuple[EpisodeScene | None, str]:
    import mujoco  # start-up time (see EpisodeScene.frame)

    model, data = _physics(env)
    skipped = _position_layout(env, model, data)
    if skipped is None or model.nq != model.nv:
        return None, "its observations do not begin with the simulator's joint positions and velocities"
    unwrapped = env.unwrapped
    goals = None  # PointMaze draws its goal from desired_goal
    if isinstance(episode.observations, dict) and "desired_goal" in episode.observations \
            and hasattr(unwrapped, "update_target_site_pos"):
        goals = np.asarray(episode.observations["desired_goal"], dtype=np.float64)
    rows = _state_part(episode.observations)
    vectors = rows.reshape(len(rows), -1)
    dt = float(getattr(unwrapped, "dt", model.opt.timestep))
    left_out = np.zeros(skipped)  # the positions the observation omits, integrated from their velocities
    states, visuals = [], _Visuals(model)
    for row, vector in enumerate(vectors):
        if goals is not None:
            unwrapped.goal = goals[row]
            unwrapped.update_target_site_pos()
        visuals.keep(row)
        velocities = vector[model.nq - skipped:model.nq - skipped + model.nv]
        data.qpos[:] = np.concatenate([left_out, vector[:model.nq - skipped]])
        data.qvel[:] = velocities
        mujoco.mj_forward(model, data)
        states.append(_kept_state(model, data))
        left_out = left_out + dt * velocities[:skipped]
    what = f"; the first {skipped} position(s), left out of the observation, integrated from velocity" if skipped else ""
    note = "joint positions and velocities set from each observation" + what
    return EpisodeScene(env, states, "positions", note, len(vectors), visuals.changes), ""

