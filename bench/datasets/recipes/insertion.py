"""Insertion recipes (dissertation ch. 5-6, residual RL): ``insertion/blocks`` and ``insertion/connector``.

Each dataset is its environment's hand-designed controller with N(0, 0.1^2) action noise, so that
not every episode succeeds: data a residual learner may start from, and the environment's entry in
the catalogue with its reference scores (random actions, and the controller without noise, the
"expert" of normalized scores: 100 is the controller's return at the environment's settings).
  blocks     ch. 5's hand-engineered controller (``bench.platform.envs.block_insertion.hand_designed_action``,
             a Cartesian P-controller), standing blocks turned by up to 0.3 rad (rotation_range 0.3, the
             largest of ch. 5.5.2: the data shows every rotation a run may vary to, so its statistics
             normalize any of them); eq. 22's reward
  connector  ch. 6's P-controller (k_p = [1, 1, 0.3]) toward exact goals; eq. 25's sparse reward
             (``--env-set reward=dense`` and ``goal_noise=0.001`` change a run's environment)
  connector-visual  the same episodes' kind in ch. 6.3.2.1's visual setting: each observation is the
             32 x 32 grayscale image (what a visual learner reads: ``--set observation_keys=image``) with
             the state the P-controller reads, and the reward is minus the L1 distance to the goal image
"""

from __future__ import annotations

from bench.datasets.recipes.base import EnvironmentSpec, Recipe, controller_policies
from bench.platform.envs import block_insertion, connector_insertion

NOISE = 0.1
ROTATION_RANGE = 0.3  # the largest of ch. 5.5.2's ranges: the data shows every rotation a run may vary to
DEFAULT_EPISODES = 50

ENVIRONMENTS = {
    "blocks": EnvironmentSpec(
        name="insertion/blocks", gym_id="bench/BlockInsertion-v0", kwargs={"rotation_range": ROTATION_RANGE},
        family="insertion", packages=("mujoco",),
        description="Block insertion (dissertation ch. 5.4.1): lower a held block between two standing blocks "
                    "without knocking them over; 3-D Cartesian motion, eq. 22 reward (distance to the place minus "
                    "the standing blocks' displacement and tilt), 50 steps; the standing blocks turned by U[-r, r] "
                    "about the vertical, r = rotation_range, 0.3 here (ch. 5.5.2's largest; --env-set "
                    "rotation_range=0 stands them straight)"),
    "connector": EnvironmentSpec(
        name="insertion/connector", gym_id="bench/ConnectorInsertion-v0", family="insertion", packages=("mujoco",),
        description="Connector insertion (dissertation ch. 6.3): a 1 cm peg into a socket with 0.25 mm of clearance "
                    "per side from 5 cm above; 3-D Cartesian motion, sparse reward (eq. 25; dense eq. 26 and "
                    "visual with reward=...), goal_noise perturbs the commanded goal, 30 steps"),
    "connector-visual": EnvironmentSpec(
        name="insertion/connector-visual", gym_id="bench/ConnectorInsertion-v0",
        kwargs={"observation_mode": "image", "reward": "visual"}, family="insertion", packages=("mujoco",),
        description="Connector insertion in the visual setting (dissertation ch. 6.3.2.1): observations are a "
                    "32 x 32 grayscale image (the learner's input) and the state (the P-controller's), the reward "
                    "is minus the mean L1 distance (pixels in [0, 1]) to the image of the peg inserted; "
                    "goal_noise perturbs the commanded goal, 30 steps"),
}


def controller_of(task: str):
    """The environment's hand-designed controller: observation -> action."""
    return {"blocks": block_insertion.hand_designed_action, "connector": connector_insertion.hand_designed_action,
            "connector-visual": connector_insertion.hand_designed_action}[task]


def recipes() -> list[Recipe]:
    return [
        Recipe(
            name=f"insertion/{task}/controller",
            env=environment,
            policy=f"the hand-designed controller + N(0, {NOISE}^2) action noise",
            default_episodes=DEFAULT_EPISODES,
            make_policy=controller_policies(lambda task=task: controller_of(task), 3, NOISE, "noisy-controller"),
            episode_kind=lambda index, total: "noisy-controller",
            description=f"{task} insertion by its hand-designed controller with action noise (ch. 5-6)",
            reference_policies={"random": "random", "expert": "controller"},
        )
        for task, environment in ENVIRONMENTS.items()
    ]
