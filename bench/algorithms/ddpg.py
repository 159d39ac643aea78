"""DDPG with hindsight experience replay, and with demonstrations (dissertation ch. 4; Nair et al., 2018).

    R_D <- the dataset's demonstrations; R <- the agent's own episodes            (ch. 4.4.1)
    every environment step:
        a = pi(s, g) + uniform noise of +-10% of the range, or w.p. 0.1 a uniform random action  (ch. 4.5.2)
        store (s, a, r, s', g) in R; HER relabels goals of sampled rows with achieved ones and
        recomputes r with the task's reward                                          (ch. 4.3.4)
        update on N rows of R and N_D rows of R_D:
            critic   y = r + gamma Q'(s', pi'(s'))  (clipped to the returns rewards in [-1, 0] allow)
                     L_Q = mean (Q(s, a) - y)^2
            actor    J = mean Q(s, pi(s)) - action_l2 mean pi(s)^2 over all N + N_D rows
                     L_BC = sum over the N_D demo rows ||pi(s_i) - a_i||^2                (eq. 13)
                            x 1[Q(s_i, a_i) > Q(s_i, pi(s_i))] with the Q-filter            (eq. 15)
                     step along lambda1 grad J - lambda2 grad L_BC                         (eq. 14)
        Polyak-average pi' and Q'
    with ``demo_resets``: a share of the practice episodes starts from a state drawn uniformly from a
    uniformly drawn demonstration, pursuing the state that demonstration finally achieved (ch. 4.4.4;
    the run does this, ``bench.evaluation.states.DemonstrationStarts``; never at evaluation)

Registered: ``ddpg-her`` (no demonstrations in the batches, no BC loss: the HER baseline),
``ddpg-demos`` (the chapter's method, "Ours"), ``ddpg-demos-dissertation`` (its sizes), and
``bc-her`` (Fig. 15's "BC+HER": the actor cloned from the demonstrations offline, then DDPG + HER
on the agent's own experience), and ``td3`` (TD3: DDPG with twin critics, target smoothing and a
delayed actor; ch. 5's learner for residual RL; ``TD3``'s docstring has its lines). The parts switch off one by one for the ablations
(``--set bc_loss=false``, ``q_filter=false``, ``her=false``), and resets switch on
(``demo_resets=true``: Fig. 15's "Ours, Resets"). The run (``bench.evaluation.states``) draws the demonstration rows from the
offline buffer (the dataset) and says which rows they are in ``Batch.demo``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from bench.algorithms.base import Algorithm, Batch, register
from bench.algorithms.config import AlgorithmConfig, actor_warmup_param, param
from bench.algorithms.networks import Critic, DeterministicPolicy, polyak_update
from bench.errors import InvalidInput


@dataclass
class DDPGConfig(AlgorithmConfig):
    hidden_dims: tuple[int, ...] = param((256, 256), "bench, CPU (dissertation ch. 4.7.3: 4 layers of 256)")
    batch_size: int = param(256, "bench, CPU: N, rows of the agent's own replay per update (dissertation: 1024)")
    demo_batch_size: int = param(32, "bench, CPU: N_D, demonstration rows added to each update (dissertation: 128)")
    discount: float = param(0.98, "dissertation ch. 4.5.2")
    actor_learning_rate: float = param(1e-3, "dissertation ch. 4.5.2: Adam, 1e-3")
    critic_learning_rate: float = param(1e-3, "dissertation ch. 4.5.2: Adam, 1e-3")
    polyak: float = param(0.05, "HER (Andrychowicz et al., 2017): targets averaged with weight 0.95")
    rl_weight: float = param(1e-3, "lambda1 of eq. 14 (dissertation ch. 4.5.2: 1e-3)")
    bc_weight: float | None = param(None, "lambda2 of eq. 14; none = 1 / N_D (dissertation ch. 4.5.2)")
    action_l2: float = param(5e-3, "our reading of ch. 4.5.2's 'L2 regularization with coefficient 5e-3': "
                             "a penalty on the actor's actions in [-1, 1], inside J")
    random_action_probability: float = param(0.1, "dissertation ch. 4.5.2: a uniform random action w.p. 0.1")
    exploration_noise: float = param(0.1, "dissertation ch. 4.5.2: uniform noise over +-10% of each action's range")
    exploration: str = param("uniform", "dissertation ch. 4.5.2: 'uniform' noise of +-exploration_noise; "
                             "'gaussian' adds N(0, exploration_noise^2) (TD3)")
    clip_target: bool = param(True, "HER (Andrychowicz et al., 2017): TD targets clipped to [-1 / (1 - gamma), 0], "
                              "the returns of rewards in [-1, 0]")
    bc_loss: bool = param(False, "eq. 13 on the demonstration rows (true for ddpg-demos)")
    q_filter: bool = param(False, "eq. 15: the BC term only where the critic prefers the demonstrated action")
    demonstrations: bool = param(False, "N_D demonstration rows in every batch (ch. 4.4.1; true for ddpg-demos)")
    demo_resets: bool = param(False, "ch. 4.4.4: some practice episodes start from demonstration states "
                              "('Ours, Resets'); needs data that records the simulator's state")
    demo_reset_share: float = param(0.5, "bench: the share of practice episodes that start so (ch. 4.4.4 says "
                                    "'some' and gives no number)")
    her: bool = param(True, "relabel goals with achieved ones (ch. 4.3.4); false keeps every goal (ablation)")
    # HER's goals (ch. 4.3.4: each episode stored again with its final achieved goal): half of each
    # batch keeps its goal, half takes the episode's final achieved goal. ``her=false`` keeps all.
    relabel_keep: float = param(0.5, "ch. 4.3.4: stored twice, with the pursued and the final achieved goal")
    relabel_future: float = param(0.0, "HER's 'future' strategy (Andrychowicz et al. 2017 prefer it; ch. 4 uses final)")
    relabel_final: float = param(0.5, "ch. 4.3.4: the goal of the final state achieved in the episode")
    relabel_random: float = param(0.0, "no random goals in ch. 4")
    online_fraction: float | None = param(None, "set from N and N_D (replay_batch): N / (N + N_D) with "
                                          "demonstrations, 1 (the agent's own replay only) without")

    OFFLINE_INDEPENDENT: ClassVar[tuple[str, ...]] = ("random_action_probability", "exploration_noise", "exploration",
                                                       "demo_resets", "demo_reset_share")

    def __post_init__(self) -> None:
        if not self.her:  # the ablation without HER: every goal is the one pursued
            self.relabel_keep, self.relabel_future, self.relabel_final, self.relabel_random = 1.0, 0.0, 0.0, 0.0

    def replay_batch(self) -> tuple[int, float | None]:
        """Rows per update and the share drawn from the agent's own replay: N + N_D and N / (N + N_D)."""
        if not self.demonstrations:
            return self.batch_size, 1.0
        total = self.batch_size + self.demo_batch_size
        return total, self.batch_size / total

    def demonstration_start_share(self) -> float:
        return self.demo_reset_share if self.demo_resets else 0.0

    def validate(self) -> None:
        if not 0.0 <= self.demo_reset_share <= 1.0:
            raise InvalidInput("demo_reset_share is a share of practice episodes, in [0, 1]")
        if self.online_fraction is not None:
            raise InvalidInput("DDPG's replay mix follows from batch_size (N) and demo_batch_size (N_D): "
                               "set those, not online_fraction")
        if (self.bc_loss or self.q_filter) and not self.demonstrations:
            raise InvalidInput("bc_loss and q_filter need demonstration rows: set demonstrations=true")
        if self.q_filter and not self.bc_loss:
            raise InvalidInput("q_filter filters the BC loss: set bc_loss=true")
        if self.batch_size < 1 or (self.demonstrations and self.demo_batch_size < 1):
            raise InvalidInput("batch_size and, with demonstrations, demo_batch_size must be positive")
        if not 0.0 <= self.random_action_probability <= 1.0 or self.exploration_noise < 0:
            raise InvalidInput("random_action_probability is a share in [0, 1] and exploration_noise >= 0")
        if self.exploration not in ("uniform", "gaussian"):
            raise InvalidInput(f"exploration is uniform or gaussian, not {self.exploration!r}")


class DDPG(Algorithm):
    """DDPG (+ HER through the run's relabeling) with the demonstration parts of ch. 4.4; see the module docstring."""

    name = "ddpg-her"
    config_class = DDPGConfig
    learns_offline = False  # the demonstrations are replayed online, not trained on before (ch. 4.4)
    critics = 1  # TD3 has two

    def __init__(self, config: DDPGConfig, obs_dim: int, action_dim: int):
        super().__init__(config, obs_dim, action_dim)
        self.policy = DeterministicPolicy(obs_dim, action_dim, config.hidden_dims)
        self.critic = Critic(obs_dim, action_dim, config.hidden_dims, members=self.critics)
        self.target_policy = copy.deepcopy(self.policy).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.optimizer = torch.optim.Adam([
            {"params": self.critic.parameters(), "lr": config.critic_learning_rate},
            {"params": self.policy.parameters(), "lr": config.actor_learning_rate}])
        self.bc_weight = config.bc_weight if config.bc_weight is not None else 1.0 / config.demo_batch_size

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        with torch.no_grad():
            next_q = self.target_critic(batch.next_obs, self.target_policy(batch.next_obs))[0]
            target = batch.reward + c.discount * (1.0 - batch.done) * next_q
            if c.clip_target:
                target = target.clamp(-1.0 / (1.0 - c.discount), 0.0)
        q = self.critic(batch.obs, batch.action)[0]
        critic_loss = (q - target).pow(2).mean()
        metrics = {"critic_loss": critic_loss.detach(), "q": q.detach().mean()}
        return critic_loss + self.actor_loss(batch, metrics), metrics

    def actor_loss(self, batch: Batch, metrics: dict[str, torch.Tensor]) -> torch.Tensor:
        """-lambda1 J + lambda2 L_BC (eq. 14), adding its terms to ``metrics``.

        J goes through the critic's current weights held constant: its gradient reaches the actor
        only (the critic's step comes from the critic's loss alone)."""
        c = self.config
        action = self.policy(batch.obs)
        constant = {name: value.detach() for name, value in self.critic.named_parameters()}
        q_pi = torch.func.functional_call(self.critic, constant, (batch.obs, action))[0]
        policy_loss = -c.rl_weight * (q_pi.mean() - c.action_l2 * action.pow(2).mean())
        metrics["q_pi"] = q_pi.detach().mean()
        if c.bc_loss:
            bc, kept = self.bc_term(batch, action, q_pi)
            policy_loss = policy_loss + self.bc_weight * bc
            metrics.update(bc_loss=bc.detach(), q_filter_kept=kept)
        metrics["policy_loss"] = policy_loss.detach()
        return policy_loss

    def bc_term(self, batch: Batch, action: torch.Tensor, q_pi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 13 summed over the batch's demonstration rows, masked by eq. 15's Q-filter when it is on;
        and the share of demonstration rows the filter keeps."""
        if batch.demo is None:  # a batch that does not say which rows are demonstrations cannot be cloned from
            raise ValueError("the BC loss needs Batch.demo: the replay marks the dataset's rows")
        demo = mask = batch.demo
        if self.config.q_filter:
            with torch.no_grad():
                better = (self.critic(batch.obs, batch.action)[0] > q_pi.detach()).float()
            mask = demo * better
        bc = (mask * (action - batch.action).pow(2).sum(-1)).sum()
        kept = mask.sum() / demo.sum().clamp(min=1.0)
        return bc, kept.detach()

    def after_step(self) -> None:
        polyak_update(self.target_critic, self.critic, self.config.polyak)
        polyak_update(self.target_policy, self.policy, self.config.polyak)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """The policy's action; when practising, +-``exploration_noise`` uniform noise (or Gaussian noise of that
        spread, TD3's), or w.p. ``random_action_probability`` a uniform random action (ch. 4.5.2)."""
        action = self.policy(obs)
        if deterministic:
            return action
        c = self.config
        unit_noise = torch.randn_like(action) if c.exploration == "gaussian" else 2.0 * torch.rand_like(action) - 1.0
        noisy = (action + c.exploration_noise * unit_noise).clamp(-1.0, 1.0)
        random = 2.0 * torch.rand_like(action) - 1.0
        pick = (torch.rand(action.shape[0], 1, device=action.device) < c.random_action_probability).float()
        return pick * random + (1.0 - pick) * noisy


class BCThenDDPG(DDPG):
    """Fig. 15's "BC+HER": behaviour cloning of the demonstrations in the offline phase (the actor only,
    ||pi(s) - a||^2 on goals relabeled as HER relabels them), then DDPG + HER online from the agent's
    own replay, with no demonstration rows and no BC term. The chapter reports that the untrained
    critic then undoes the cloned actor in the first epoch (ch. 4.7.2)."""

    name = "bc-her"
    learns_offline = True  # the offline phase is the BC initialisation

    def __init__(self, config: DDPGConfig, obs_dim: int, action_dim: int):
        super().__init__(config, obs_dim, action_dim)
        # A Python flag, not a tensor (reading a GPU tensor every update would wait for the GPU); checkpoints
        # carry it, so that one taken online says the pretraining is over.
        self.pretraining = True

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not self.pretraining:
            return super().losses(batch)
        bc = (self.policy(batch.obs) - batch.action).pow(2).sum(-1).mean()
        return bc, {"bc_loss": bc.detach()}

    def after_step(self) -> None:
        if self.pretraining:  # the targets start from the cloned actor when practice begins
            return
        super().after_step()

    def begin_online(self) -> None:
        self.pretraining = False
        self.target_policy.load_state_dict(self.policy.state_dict())

    def checkpoint_state(self) -> dict[str, Any]:
        return {**super().checkpoint_state(), "pretraining": self.pretraining}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        # Checkpoints written before the flag left the modules carry it as the buffer "pretraining".
        modules = dict(state["modules"])
        flag = modules.pop("pretraining", None)
        super().load_checkpoint_state({**state, "modules": modules})
        self.pretraining = bool(state.get("pretraining", True if flag is None else flag))


_CH4 = dict(paper="dissertation ch. 4 (Nair, McGrew, Andrychowicz, Zaremba, Abbeel, 2018)")


@register("ddpg-her", "DDPG with hindsight experience replay, from scratch online (ch. 4's HER baseline)", **_CH4)
class DDPGWithHER(DDPG):
    name = "ddpg-her"


@register("ddpg-demos", "DDPG + HER with a demonstration buffer, BC loss and Q-filter (ch. 4.4, 'Ours')",
          demonstrations=True, bc_loss=True, q_filter=True, **_CH4)
class DDPGWithDemonstrations(DDPG):
    name = "ddpg-demos"


@register("ddpg-demos-dissertation", "ddpg-demos at the dissertation's sizes (ch. 4.5.2, 4.7.3): 4x256 networks, "
          "N 1024, N_D 128; slow on a CPU", demonstrations=True, bc_loss=True, q_filter=True,
          hidden_dims=(256, 256, 256, 256), batch_size=1024, demo_batch_size=128, **_CH4)
class DDPGWithDemonstrationsDissertation(DDPG):
    name = "ddpg-demos-dissertation"


@register("bc-her", "BC+HER (ch. 4, Fig. 15): the actor cloned from the demonstrations offline, then DDPG + HER "
          "online without them", **_CH4)
class BCThenDDPGWithHER(BCThenDDPG):
    name = "bc-her"


@dataclass
class TD3Config(DDPGConfig):
    policy_delay: int = param(2, "TD3 (Fujimoto et al., 2018): the actor and the targets step every 2nd update")
    target_noise: float = param(0.2, "TD3: target policy smoothing, N(0, 0.2^2) on pi'(s')")
    target_noise_clip: float = param(0.5, "TD3: the smoothing noise clipped to +-0.5")
    actor_warmup: int = actor_warmup_param()
    polyak: float = param(5e-3, "TD3: tau 0.005")
    clip_target: bool = param(False, "TD3 has no target clipping (DDPG + HER's [-1/(1-gamma), 0] assumes "
                              "rewards in [-1, 0])")
    exploration: str = param("gaussian", "TD3: Gaussian exploration noise N(0, 0.1^2)")
    random_action_probability: float = param(0.0, "TD3: exploration by Gaussian noise only (bench runs no random-action warm-up)")

    def validate(self) -> None:
        super().validate()
        if self.policy_delay < 1 or self.target_noise < 0 or self.target_noise_clip < 0 or self.actor_warmup < 0:
            raise InvalidInput("policy_delay must be >= 1 and the target noise, its clip and actor_warmup >= 0")


@register("td3", "TD3: twin critics, delayed actor and target updates, target policy smoothing (the learner of "
          "dissertation ch. 5's residual RL); online from scratch", paper="Fujimoto, van Hoof, Meger, 2018")
class TD3(DDPG):
    """DDPG with TD3's three changes (Fujimoto et al., 2018), each a line of ``losses``:

        y = r + gamma min_j Q'_j(s', clip(pi'(s') + clip(N(0, sigma^2), -c, c), -1, 1))   twin critics, smoothing
        L_Q = sum_j mean (Q_j(s, a) - y)^2
        every ``policy_delay`` updates: the actor climbs Q_1(s, pi(s)) (with ch. 4's BC terms when they are
        on), then the targets are Polyak-averaged
    Exploration is TD3's: N(0, 0.1^2) added to pi(s) (DDPG's uniform noise and random actions, ch. 4.5.2,
    with ``--set exploration=uniform random_action_probability=0.1``).
    """

    name = "td3"
    config_class = TD3Config
    critics = 2

    def actor_steps(self) -> bool:
        """Whether this update moves the actor and the targets (every ``policy_delay``-th, the first included);
        before update ``actor_warmup`` only the critic and its target move."""
        return self.updates % self.config.policy_delay == 0

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        with torch.no_grad():
            next_action = self.target_policy(batch.next_obs)
            noise = (c.target_noise * torch.randn_like(next_action)).clamp(-c.target_noise_clip, c.target_noise_clip)
            next_q = self.target_critic(batch.next_obs, (next_action + noise).clamp(-1.0, 1.0)).min(0).values
            target = batch.reward + c.discount * (1.0 - batch.done) * next_q
            if c.clip_target:
                target = target.clamp(-1.0 / (1.0 - c.discount), 0.0)
        q = self.critic(batch.obs, batch.action)
        critic_loss = (q - target).pow(2).mean(1).sum()
        metrics = {"critic_loss": critic_loss.detach(), "q": q.detach().mean()}
        if not self.actor_steps() or self.warming_up():
            return critic_loss, metrics
        return critic_loss + self.actor_loss(batch, metrics), metrics

    def warming_up(self) -> bool:
        """Whether the actor still waits for the critic (the first ``actor_warmup`` updates)."""
        return self.updates < self.config.actor_warmup

    def after_step(self) -> None:
        if not self.actor_steps():  # ``updates`` counts this step after after_step: still the step's number
            return
        polyak_update(self.target_critic, self.critic, self.config.polyak)
        if not self.warming_up():
            polyak_update(self.target_policy, self.policy, self.config.polyak)
