"""Planning to Practice (PTP, dissertation ch. 10, Algorithm 8): subgoal plans guide a goal-conditioned IQL policy.

    offline  train the VQ-VAE phi on D's images; encode D
             train the conditional subgoal generators g_l(s, z), one per level, dt_l = M dt_(l-1)   (eq. 50)
             train pi(a | s, s_g) with goal-conditioned IQL, 70% future relabeling, sparse latent reward
    online   while not converged:                                                          (Algorithm 8)
                 reset, observe s_0; take the task's goal s_g
                 plan subgoals s^_(1:K) from s_0 to s_g                       (Algorithm 9, eq. 52)
                 for t = 1..T: a_t ~ pi(a | s_t, s^_k); store (s_t, a_t, r_t, s_(t+1), s^_k)
                     if t - t_k = dt or ||s_(t+1) - s^_k|| < eps: k <- min(k + 1, K)
                     train pi, Q, V on a batch of 40% offline / 60% online rows (PTP's released code)
    evaluate: the same plan-and-follow, deterministic actions; success on privileged state at the end.

Registered variants (ch. 10.6.1): ``ptp``; ``ptp-no-hierarchy`` (one level of K M^(L-1) subgoals
at the finest dt, "PTP w/o H"); ``ptp-no-buffer`` ("w/o B"); ``ptp-flat`` (both); ``gc-iql``
(model-free: the final goal only, no plan). All share the representation, reward, relabeling and
IQL, so the differences are the planner's. The latent machinery (VQ-VAE, encoding, the sparse
reward and its eps) is VAL's (``bench.algorithms.latent_goals``); the planner lives in
``bench.algorithms.subgoals``; the harness is ``bench.evaluation.planning``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from bench.algorithms.base import Algorithm, register
from bench.algorithms.config import AlgorithmConfig, param
from bench.algorithms.iql import IQL, IQLConfig
from bench.algorithms.latent_goals import LatentGoalAlgorithm, LatentGoalConfig
from bench.algorithms.subgoals import GENERATOR_KINDS, PlannerSettings, SubgoalPlanner
from bench.errors import InvalidInput

PLANNERS = ("hierarchical", "flat", "none")


@dataclass
class SubgoalPlanningConfig(AlgorithmConfig):
    """Algorithm 9's planner and eq. 50's generators: the fields every PTP variant shares."""

    planner: str = param("hierarchical", "hierarchical (PTP), flat (w/o H: one level), none (model-free)")
    planning_levels: int = param(2, "bench, CPU: L (dissertation ch. 10.6.2: 3)")
    subgoals: int = param(4, "bench, CPU: K on the top level (dissertation: 8)")
    multiplier: int = param(2, "M, dt_l = M dt_(l-1) (dissertation: 2)")
    finest_interval: int = param(12, "bench: dt of the finest level in steps (dissertation: 15, 30, 60 for L = 3)")
    planning_samples: int = param(256, "bench, CPU: N sampled latent sequences (dissertation: 1024)")
    mppi_iterations: int = param(5, "MPPI iterations per level (dissertation: 5)")
    eta: float = param(0.01, "weight of the feasibility term of eq. 52 (dissertation: 0.01)")
    mppi_noise: float = param(0.5, "bench: std of MPPI's perturbation of z (the text gives no value)")
    mppi_temperature: float = param(1.0, "bench: MPPI's lambda (the text gives no value)")
    plan_buffer: bool = param(True, "the latent plan buffer (ch. 10.5.2); false for PTP w/o B")
    subgoal_generator: str = param("cvae", "cvae: eq. 50's conditional VAE (the dissertation); data: the prior "
                                   "data's transitions from the nearest states, planned by random shooting "
                                   "(bench's deviation: on the tabletop's state the CVAE's samples are no states)")
    generator_neighbours: int = param(10, "bench, subgoal_generator=data: the nearest data states a transition "
                                      "is drawn from")
    subgoal_latent_dim: int = param(8, "z of the subgoal generator (dissertation: 8)")
    generator_hidden_dims: tuple[int, ...] = param((256, 256), "bench: an MLP on flattened latents (dissertation: a U-Net on the VQ grid)")
    generator_links: int = param(2, "bench: pairs per training chain; each reuses the last reconstruction (eq. 50)")
    generator_steps: int = param(2000, "bench, CPU: gradient steps per generator")
    generator_batch_size: int = param(128, "bench, CPU (dissertation: 1024 for every network)")
    generator_learning_rate: float = param(1e-3, "bench")
    generator_beta: float = param(1.0, "the KL weight of eq. 50 (1 in the text)")
    reach_epsilon: float = param(0.0, "Alg. 8's 'subgoal reached' distance; 0 = the median distance between "
                                 "consecutive data states (bench: the reward's eps, the dissertation's, is larger "
                                 "than one step here and would skip subgoals)")


    def validate(self) -> None:
        """Refused when the config is made, before any run is recorded."""
        if self.planner not in PLANNERS:
            raise InvalidInput(f"planner must be one of {', '.join(PLANNERS)}, not {self.planner!r}")
        if self.planning_levels < 1 or self.subgoals < 1 or self.multiplier < 1 or self.finest_interval < 1:
            raise InvalidInput("planning_levels, subgoals, multiplier and finest_interval must be positive")
        if self.subgoal_generator not in GENERATOR_KINDS:
            raise InvalidInput(f"subgoal_generator must be one of {', '.join(GENERATOR_KINDS)}, "
                               f"not {self.subgoal_generator!r}")
        if self.generator_neighbours < 1:
            raise InvalidInput("generator_neighbours must be positive")


# The planner is trained before the offline phase and used online and in evaluation: the offline
# policy does not depend on any of its fields (so PTP's variants and gc-iql share one offline policy).
SubgoalPlanningConfig.OFFLINE_INDEPENDENT = tuple(f.name for f in fields(SubgoalPlanningConfig)
                                                  if f.name not in {g.name for g in fields(AlgorithmConfig)})


def build_planner(c: SubgoalPlanningConfig, state_dim: int) -> SubgoalPlanner:
    """The planner a config asks for (checked by ``SubgoalPlanningConfig.validate``); "flat" (w/o H) plans all
    K M^(L-1) subgoals on one level at the finest dt."""
    levels, k = c.planning_levels, c.subgoals
    if c.planner != "hierarchical":
        levels, k = 1, c.subgoals * c.multiplier ** (c.planning_levels - 1)
    settings = PlannerSettings(levels, k, c.multiplier, c.planning_samples, c.mppi_iterations, c.eta, c.mppi_noise,
                               c.mppi_temperature, c.plan_buffer)
    intervals = [c.finest_interval * c.multiplier ** (levels - 1 - level) for level in range(levels)]
    return SubgoalPlanner(state_dim, settings, intervals if c.planner != "none" else [], c.subgoal_latent_dim,
                          tuple(c.generator_hidden_dims), c.generator_learning_rate, c.generator_beta,
                          c.generator_links, c.subgoal_generator, c.generator_neighbours)


class _CheckpointsPlanner:
    """Adds the planner's optimizer, counters and plan buffers to an algorithm's checkpoints."""

    planner: SubgoalPlanner

    def checkpoint_state(self) -> dict[str, Any]:
        return {**super().checkpoint_state(), "planner": self.planner.extra_state()}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_checkpoint_state(state)
        self.planner.load_extra_state(state["planner"])


@dataclass
class PTPConfig(LatentGoalConfig, SubgoalPlanningConfig):
    # IQL (ch. 10.6.2: "iQL ... with default hyperparameters").
    expectile: float = param(0.7, "IQL paper default (ch. 10.6.2: IQL with default hyperparameters)")
    temperature: float = param(3.0, "IQL paper default inverse temperature beta")
    learning_rate: float = param(3e-4, "ch. 10.6.2: Adam, learning rate 3e-4")
    policy: str = param("gaussian", "IQL paper: Gaussian policy")
    policy_dropout: float = param(0.0, "IQL paper default")
    # VAL's representation and sparse reward; PTP relabels with future goals and keeps its subgoals.
    representation: str = param("vqvae", "ch. 10.6.2: VQ-VAE (720-D; bench's CPU default 288-D, see vq_embedding_dim); "
                                "state: the tabletop's privileged state, planned standardized (bench's diagnostic, "
                                "as val-state: does planning help before pictures?)")
    goal_proposal: str = param("none", "PTP proposes plans, not practice goals")
    reward: str = param("sparse", "ch. 10.4: 0 when ||h - h_g|| < eps, else -1")
    relabel_keep: float = param(0.3, "the commanded (sub)goal; offline rows have none and keep s_(t+1)")
    relabel_future: float = param(0.7, "ch. 10.6.2: future hindsight relabeling with probability 0.7")
    relabel_proposal: float = param(0.0, "PTP proposes no practice goals")
    online_fraction: float | None = param(0.6, "PTP's released code samples 60% of each batch online")
    batch_size: int = param(128, "bench, CPU (dissertation: 1024)")


class PTP(_CheckpointsPlanner, LatentGoalAlgorithm):
    """VAL's latents, goal-conditioned IQL, and a subgoal planner; see the module docstring."""

    run_kind = "planning"  # VAL's pixel run with subgoal plans (bench.evaluation.planning)
    config_class = PTPConfig

    def __init__(self, config: PTPConfig, obs_dim: int, action_dim: int):
        if config.representation not in ("vqvae", "state"):
            raise InvalidInput("PTP plans in VQ-VAE latents (representation=vqvae) or on the privileged state "
                               "(representation=state)")
        if config.policy_trunk != "mlp":
            raise InvalidInput("PTP's IQL reads latents with MLPs: policy_trunk=conv and keypoints are VAL's (AWAC) only")
        super().__init__(config, obs_dim, action_dim)
        self.planner = build_planner(config, self.latent_dim)

    def build_rl(self, config: PTPConfig, obs_dim: int, action_dim: int) -> Algorithm:
        return IQL(config, obs_dim, action_dim)


_PTP = dict(paper="dissertation ch. 10, Algorithms 8 and 9 (Fang, Yin, Nair et al., 2022)")


@register("ptp", "Planning to Practice: hierarchical MPPI over CVAE subgoals in VQ-VAE latents guides goal-conditioned IQL",
          **_PTP)
class PlanningToPractice(PTP):
    name = "ptp"


@register("ptp-dissertation", "PTP at the dissertation's sizes (ch. 10.6.2): L 3, K 8, N 1024, dt 15/30/60, "
          "720-D VQ-VAE latents, batch 1024; slow on a CPU", planning_levels=3, subgoals=8, finest_interval=15,
          planning_samples=1024, vq_codes=512, vq_embedding_dim=5, batch_size=1024, generator_batch_size=1024, **_PTP)
class PTPDissertation(PTP):
    name = "ptp-dissertation"


@register("ptp-no-hierarchy", "PTP w/o H: one planning level of K M^(L-1) subgoals (ch. 10.6.1 ablation)",
          planner="flat", **_PTP)
class PTPNoHierarchy(PTP):
    name = "ptp-no-hierarchy"


@register("ptp-no-buffer", "PTP w/o B: no latent plan buffer (ch. 10.6.1 ablation)", plan_buffer=False, **_PTP)
class PTPNoBuffer(PTP):
    name = "ptp-no-buffer"


@register("ptp-flat", "PTP w/o H and B: one planning level, no plan buffer (ch. 10.6.1 ablation)", planner="flat",
          plan_buffer=False, **_PTP)
class PTPFlat(PTP):
    name = "ptp-flat"


# eta 1 (dissertation: 0.01): on three finished button-then-tray runs on states, plans over the data's
# transitions led the policy to press the button in 3-4 of 10 episodes at eta 1 and 0-1 at eta 0.01
# (benchmarks/plan_probe.py --subgoal-generator data; docs/results.md).
@register("ptp-data", "PTP with subgoals from the prior data's own transitions in place of eq. 50's CVAE, eta 1 "
          "(bench's deviations, docs/algorithms.md)", subgoal_generator="data", eta=1.0, **_PTP)
class PTPDataSubgoals(PTP):
    name = "ptp-data"


@register("gc-iql", "Model-free baseline of ch. 10: goal-conditioned IQL on VQ-VAE latents, the final goal only",
          planner="none", **_PTP)
class PTPWithoutPlanner(PTP):
    """PTP's policy and value with the planner switched off: ch. 10's "Model-Free" baseline, registered as gc-iql."""

    name = "gc-iql"


# -- the same planner on states (OGBench) ------------------------------------------------------------------
@dataclass
class StatePTPConfig(IQLConfig, SubgoalPlanningConfig):
    relabel_keep: float = param(0.0, "OGBench data has no goals: all are relabeled")
    relabel_future: float = param(0.7, "ch. 10.6.2: future hindsight relabeling with probability 0.7")
    relabel_random: float = param(0.3, "random data states (OGBench GCIQL's 0.3): V learns what is out of reach")
    online_fraction: float | None = param(0.6, "PTP's released code samples 60% of each batch online")
    generator_hidden_dims: tuple[int, ...] = param((256, 256), "bench: an MLP on normalized states")
    expectile: float = param(0.9, "OGBench GCIQL: 0.9")
    temperature: float = param(3.0, "OGBench GCIQL: 3")


@register("ptp-state", "PTP's planner on states: CVAE subgoals and hierarchical MPPI guide goal-conditioned IQL "
          "(OGBench goal-conditioned datasets)", **_PTP)
class StatePTP(_CheckpointsPlanner, IQL):
    """Goal-conditioned IQL on (s, g) plus a subgoal planner on normalized states (no representation to learn)."""

    name = "ptp-state"
    run_kind = "state-planning"  # plans between OGBench observations (bench.evaluation.planning)
    config_class = StatePTPConfig

    def __init__(self, config: StatePTPConfig, obs_dim: int, action_dim: int):
        super().__init__(config, obs_dim, action_dim)
        self.planner = build_planner(config, obs_dim // 2)  # obs = (state, goal), both the state's size


@register("gc-iql-state", "Model-free baseline of ptp-state: the same goal-conditioned IQL on states, the final goal "
          "only (OGBench goal-conditioned datasets)", planner="none", **_PTP)
class StatePTPWithoutPlanner(StatePTP):
    """``ptp-state`` with the planner switched off: goal-conditioned IQL on states, the final goal only."""

    name = "gc-iql-state"
