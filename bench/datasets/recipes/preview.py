"""Preview frames for dataset cards: replay a recipe's first episode with rendering on.

Episode 0 is deterministic given (recipe, seed), so rendering a second run of it shows exactly
the data's first episode. Frames are 128x128, rendered offscreen (MUJOCO_GL=egl) with shadows
off, which costs ~30x less on a CPU renderer.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np

from bench.datasets.recipes.base import Recipe, episode_seeds, rollout

FRAME_SIZE = 128


def preview_frames(recipe: Recipe, seed: int, count: int = 5) -> dict[str, bytes]:
    """PNG frames at evenly spaced steps of episode 0, from its reset to its last step."""
    from PIL import Image

    length = len(_replay(recipe, seed, render_at=set())) - 1  # steps; frames run from 0 to length
    picks = set(np.linspace(0, length, count).round().astype(int).tolist())
    media = {}
    for k, (step, frame) in enumerate(sorted(_replay(recipe, seed, render_at=picks).items())):
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(buffer, format="PNG")
        media[f"preview_{k}_step{step:04d}.png"] = buffer.getvalue()
    return media


def _mujoco_model(env):
    unwrapped = env.unwrapped
    return getattr(unwrapped, "model", None) or unwrapped._model


def rerun_first_episode(recipe: Recipe, seed: int, env, on_step: Callable[[int], None]) -> None:
    """Collect episode 0 of a build with ``seed`` again in ``env``; ``on_step(t)`` after the reset and each step."""
    kind = recipe.episode_kind(0, 1)
    reset_seed, rng = episode_seeds(seed, 0)
    if recipe.collect_episode is not None:
        recipe.collect_episode(env, kind, reset_seed, rng, on_step=on_step)
    else:
        rollout(env, recipe.make_policy(kind, env), reset_seed, rng, recipe.max_episode_steps, on_step=on_step)


def _replay(recipe: Recipe, seed: int, render_at: set[int]) -> dict[int, np.ndarray | None]:
    """Run episode 0 again; return {step: frame} for the steps asked (every step's key, frame or None)."""
    render = {"render_mode": "rgb_array", "width": FRAME_SIZE, "height": FRAME_SIZE} if render_at else {}
    if recipe.make_collection_env is not None:
        env = recipe.make_collection_env(**render)
    else:
        env = recipe.env.make(**render)
    frames: dict[int, np.ndarray | None] = {}

    def capture(step: int) -> None:
        frames[step] = env.render() if step in render_at else None

    try:
        if render_at:
            _mujoco_model(env).light_castshadow[:] = 0  # shadows cost ~30x on a CPU renderer
        rerun_first_episode(recipe, seed, env, on_step=capture)
    finally:
        env.close()
    if render_at:
        return {step: frame for step, frame in frames.items() if frame is not None}
    return frames
