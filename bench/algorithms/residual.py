"""Residual reinforcement learning (dissertation ch. 5-6, Algorithms 3-4): a fixed controller plus a learned residual.

    every environment step:
        u_t  = pi_theta(s_t) + exploration noise          (the residual, in [-1, 1])
        u'_t = pi_H(s_t) + u_t                            (eq. 23: what the robot executes)
        store (s_t, u_t, r_t, s_(t+1)): the residual, not u'_t
        optimize theta with the learner (TD3 in ch. 5, SAC and TD3 in ch. 6) on the stored transitions
    the residual's last layer starts near zero, so learning starts from pi_H

The composition is the run's (``bench.evaluation.controllers.ResidualComposition`` in the state run):
any algorithm config names its controller (``--set controller=p-controller``) and learns a residual
around it. Registered here are the chapters' learners with a controller by default, and the
controller alone:

  residual-td3   TD3 around the environment's hand-designed controller (ch. 5), with bench's critic burn-in
                 and slower actor (``residual-td3-dissertation``: the chapters' rlkit settings)
  residual-sac   SAC around it (ch. 6)
  controller     the controller only: a zero residual that never learns (every table's baseline row)
The default controller is ``scripted``, the environment's own hand-designed controller (the block
inserter of ch. 5, the P-controller on connector insertion); ``--set controller=p-controller
controller_gains=1,1,0.3`` picks ch. 6's P-controller on Fetch and connector insertion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench.algorithms.base import Algorithm, Batch, register
from bench.algorithms.config import AlgorithmConfig, param
from bench.algorithms.ddpg import TD3, TD3Config
from bench.algorithms.sac import SAC, SACOnlineConfig
from bench.errors import InvalidInput

CONTROLLER = "scripted"
CONTROLLER_SOURCE = ("bench: the environment's hand-designed controller (ch. 5's block inserter; ch. 6's P-controller "
                     "on connector insertion)")


NO_RELABELING = "the controller acted toward the pursued goal: a relabeled goal would break u' = pi_H(s) + u"


def around_controller(base: type[AlgorithmConfig], name: str) -> type[AlgorithmConfig]:
    """``base`` acting around a controller: its fields declared again in a subclass (so they win over every
    default of ``base``): which controller, one required, and no goal relabeling."""

    @dataclass
    class Config(base):
        controller: str = param(CONTROLLER, CONTROLLER_SOURCE)
        relabel_keep: float = param(1.0, NO_RELABELING)
        relabel_future: float = param(0.0, NO_RELABELING)
        relabel_final: float = param(0.0, NO_RELABELING)
        relabel_random: float = param(0.0, NO_RELABELING)

        def validate(self) -> None:
            super().validate()
            if self.controller == "none":
                raise InvalidInput("this algorithm needs a controller: --set controller=scripted (or p-controller)")

    Config.__name__ = Config.__qualname__ = name
    return Config


@dataclass
class ResidualTD3Config(around_controller(TD3Config, "TD3AroundController")):
    # The residual's last layer starts within +-3e-3 and Adam moves every weight by about its learning rate
    # per update: at TD3's 1e-3 the untrained critic's gradient owns the residual within ~100 updates, the
    # controller is overridden before any reward is seen, and the critic learns Q = 0 everywhere (measured
    # on connector insertion: 0 insertions of exact goals after 1,000 steps, where the controller inserts all).
    actor_warmup: int = param(1000, "bench: the critic's burn-in (Silver et al., 2018, residual policy learning); "
                                    "the chapters give none")
    actor_learning_rate: float = param(1e-4, "bench (rlkit's TD3, the chapters' code: 1e-3): the residual moves "
                                             "slowly away from the controller")
    her: bool = param(False, NO_RELABELING)


ResidualSACConfig = around_controller(SACOnlineConfig, "ResidualSACConfig")
ControllerConfig = around_controller(AlgorithmConfig, "ControllerConfig")


_PAPER = "dissertation ch. 5-6 (Johannink, Bahl, Nair et al., 2019; Schoettler, Nair et al., 2020)"


@register("residual-td3", "Residual RL with TD3: a learned residual around a hand-designed controller (ch. 5)",
          paper=_PAPER)
class ResidualTD3(TD3):
    name = "residual-td3"
    config_class = ResidualTD3Config


@register("residual-td3-dissertation", "residual-td3 at the chapters' settings (rlkit's TD3: actor learning rate "
          "1e-3, no critic burn-in, discount 0.99); its residual overrode the controller on bench's connector task",
          paper=_PAPER, actor_warmup=0, actor_learning_rate=1e-3, discount=0.99)
class ResidualTD3Dissertation(ResidualTD3):
    name = "residual-td3-dissertation"


@register("residual-sac", "Residual RL with SAC: a learned residual around a hand-designed controller (ch. 6)",
          paper=_PAPER)
class ResidualSAC(SAC):
    name = "residual-sac"
    config_class = ResidualSACConfig


@register("controller", "The hand-designed controller alone (pi_H, ch. 5-6): residual RL's baseline, a zero "
          "residual that never learns", paper=_PAPER)
class ControllerOnly(Algorithm):
    """pi_H with a residual of exactly zero: the run executes the controller's actions as they are."""

    name = "controller"
    config_class = ControllerConfig
    learns_online = False
    learns_offline = False

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise InvalidInput("the controller has nothing to learn")

    def start_near_zero(self) -> None:
        """Already exactly zero."""

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return torch.zeros(obs.shape[0], self.action_dim, device=obs.device)

    def checkpoint_state(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
