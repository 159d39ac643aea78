"""PTP's planner: conditional subgoal generators (a CVAE, eq. 50) and hierarchical MPPI over their latents (Algorithm 9).

    generator   q(z | s, s') encodes a transition, g(s, z) decodes a state reachable from s in about
                dt steps; trained on pairs (s_t, s_(t+dt)) of the offline data, dt drawn from a range,
                reusing its own reconstruction as the next pair's context (robust to compounding error):
                    sum_j  E_q ||s_j - g(s^_(j-1), z_j)||^2 + KL[q(z_j | s^_(j-1), s_j) || N(0, I)]    (eq. 50)
    plan        Plan(s_0, s_g, L, K, M, N)                                                    (Algorithm 9)
                  N latent sequences z_(1:K) (half from N(0, I), half from the level's plan buffer)
                  s^_i = g_L(s^_(i-1), z_i), s^_0 = s_0                   (recursive generation)
                  cost  c = ||s_g - s^_K|| - eta sum_i V(s^_i, s^_(i+1))               (eq. 52)
                  MPPI: perturb the best sequence with Gaussian noise, average by exp(-c / lambda)
                  L > 1: each pair (s^_(i-1), s^_i) is refined by Plan(., ., L - 1, M, M, N)
                with the coarsest generator on the top level and dt_l = M dt_(l-1).

The sign of the feasibility term: the dissertation's eq. 52 adds eta sum V, but it is the
Lagrangian of the constraint V >= delta (eq. 51), and a feasible transition has a *high*
value (with rewards -1 until the goal is reached, V(s, s') is minus the expected steps from s
to s'). A cost to minimize must therefore subtract it; adding it would prefer infeasible plans.

With ``kind="data"`` (bench's deviation, not the dissertation's) each level's generator is the
prior data itself: from s, one of the nearest data states x_r and the change its episode made dt
steps later, s' = s + (x_(r+dt) - x_r) (``DataTransitions``); a level is then planned by random
shooting (N sampled sequences, the cheapest by eq. 52's cost), as there is no z for MPPI to move.
On the tabletop's state the CVAE's samples light the button with the gripper elsewhere
(benchmarks/generator_fidelity.py); the data's transitions keep what changes together together.

Everything works on vectors: VQ-VAE latents for images (flattened), or raw states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from bench.algorithms.devices import random_rows
from bench.algorithms.networks import mlp

# (states, next states), both (B, D) -> V(s, s'), (B,): how reachable s' is from s (higher: more).
Feasibility = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class SubgoalGenerator(nn.Module):
    """A conditional VAE of reachable states: encoder q(z | s, s'), decoder g(s, z) (ch. 10.5.1).

    The decoder predicts the change s' - s (a residual, as the U-Net's skip connections of the
    dissertation's image generator carry s through), so z = 0 starts near "stay".
    """

    def __init__(self, state_dim: int, latent_dim: int = 8, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.state_dim, self.latent_dim = state_dim, latent_dim
        self.encoder = mlp(2 * state_dim, hidden, 2 * latent_dim)
        self.decoder = mlp(state_dim + latent_dim, hidden, state_dim)

    def encode(self, state: torch.Tensor, future: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(torch.cat([state, future], -1)).chunk(2, -1)
        return mean, log_var.clamp(-10.0, 5.0)

    def forward(self, state: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """g(s, z): a subgoal reachable from s."""
        return state + self.decoder(torch.cat([state, z], -1))

    def loss(self, chain: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 50 on chains (B, m + 1, D) of states dt apart: the context of step j is the reconstruction of step j - 1."""
        context = chain[:, 0]
        reconstruction, kl = 0.0, 0.0
        for j in range(1, chain.shape[1]):
            target = chain[:, j]
            mean, log_var = self.encode(context, target)
            z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
            predicted = self(context, z)
            reconstruction = reconstruction + (predicted - target).pow(2).sum(-1).mean()
            kl = kl + 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1).mean()
            context = predicted  # the next pair starts from what the generator made, not the data
        return reconstruction + beta * kl, {"subgoal_reconstruction": reconstruction.detach(),
                                            "subgoal_kl": kl.detach()}


def sample_chains(states: torch.Tensor, episode_end: torch.Tensor, interval: int, links: int, batch: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Chains (batch, links + 1, D) of states of one episode, each a random dt in [interval / 2, interval] after the last.

    ``states`` holds every observation row; ``episode_end[i]`` is the last row of row i's episode.
    A chain that would leave its episode stays on the last state (staying is reachable too).
    """
    rows = random_rows(0, len(states), batch, generator, states.device)
    ends = episode_end[rows]
    chain = [rows]
    low = max(1, interval // 2)
    for _ in range(links):
        step = random_rows(low, interval + 1, batch, generator, states.device)
        chain.append(torch.minimum(chain[-1] + step, ends))
    return states[torch.stack(chain, 1)]


class DataTransitions:
    """A level's subgoals from the prior data's own transitions (bench's deviation from eq. 50's CVAE).

    From s: one of the ``neighbours`` data states nearest to s, x_r, and the change its episode made
    a random dt in [interval / 2, interval] later (the range the CVAE trains on), applied to s:
    s' = s + (x_(r+dt) - x_r). What the data's episodes keep fixed (a scene's layout) stays s's;
    what they change together (the gripper at the button as it lights) changes together. A
    transition that would leave its episode stops at the episode's last state.
    """

    CHUNK = 256  # queries per distance block: (CHUNK, rows) floats at a time, whatever the data's size

    def __init__(self, states: torch.Tensor, episode_end: torch.Tensor, interval: int, neighbours: int):
        self.states, self.episode_end, self.interval = states, episode_end, interval
        self.neighbours = min(neighbours, len(states))

    def nearest(self, queries: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        """For each query (B, D): the row of one of its ``neighbours`` nearest data states, drawn uniformly."""
        rows = []
        for block in queries.split(self.CHUNK):
            near = torch.cdist(block, self.states).topk(self.neighbours, largest=False).indices
            pick = random_rows(0, self.neighbours, len(block), rng, block.device)
            rows.append(near[torch.arange(len(block), device=block.device), pick])
        return torch.cat(rows)

    def __call__(self, starts: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """One subgoal per start (B, D) -> (B, D)."""
        rows = self.nearest(starts, rng)
        step = random_rows(max(1, self.interval // 2), self.interval + 1, len(starts), rng, starts.device)
        later = torch.minimum(rows + step, self.episode_end[rows])
        return starts + (self.states[later] - self.states[rows])


@dataclass(frozen=True)
class PlannerSettings:
    """Algorithm 9's sizes. The dissertation's (ch. 10.6.2): L = 3, K = 8, M = 2, N = 1024, 5 MPPI iterations, eta = 0.01."""

    levels: int = 3
    subgoals: int = 8
    multiplier: int = 2
    samples: int = 1024
    iterations: int = 5
    eta: float = 0.01
    noise: float = 0.5  # std of MPPI's Gaussian perturbation of z (the text gives no value)
    temperature: float = 1.0  # MPPI's lambda in exp(-c / lambda) (the text gives no value)
    use_buffer: bool = True

    @property
    def total_subgoals(self) -> int:
        return self.subgoals * self.multiplier ** (self.levels - 1)


class PlanBuffer:
    """The latent plan buffer of one level: latent sequences chosen in earlier episodes (ch. 10.5.2)."""

    def __init__(self, capacity: int = 1000):
        self.capacity = capacity
        self.plans: list[torch.Tensor] = []

    def add(self, plans: torch.Tensor) -> None:
        """``plans``: (B, K, dz), one chosen latent sequence per planned segment."""
        self.plans.extend(plans.detach().clone())
        del self.plans[:-self.capacity]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        picks = torch.randint(len(self.plans), (n,), generator=generator)
        return torch.stack([self.plans[int(i)] for i in picks])

    def __len__(self) -> int:
        return len(self.plans)


@dataclass
class Plan:
    subgoals: torch.Tensor  # (total_subgoals, D), in the order the policy follows them
    cost: float  # of the top level's chosen sequence
    first_cost: float  # the best cost among the top level's initial samples (before MPPI)
    latents: list[torch.Tensor]  # per level: (segments, K_l, dz) chosen (none with DataTransitions)


def rollout(generator: SubgoalGenerator, start: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """s^_i = g(s^_(i-1), z_i) for every sequence: start (B, D), z (B, K, dz) -> (B, K, D)."""
    states, state = [], start
    for k in range(z.shape[1]):
        state = generator(state, z[:, k])
        states.append(state)
    return torch.stack(states, 1)


def plan_cost(start: torch.Tensor, subgoals: torch.Tensor, goal: torch.Tensor, feasibility: Feasibility | None,
              eta: float) -> torch.Tensor:
    """Eq. 52 with the feasibility term's sign fixed (module docstring): (B, D), (B, K, D), (B, D) -> (B,)."""
    cost = (goal - subgoals[:, -1]).norm(dim=-1)
    if feasibility is not None and eta:
        path = torch.cat([start[:, None], subgoals], 1)
        b, k1, d = path.shape
        values = feasibility(path[:, :-1].reshape(-1, d), path[:, 1:].reshape(-1, d)).view(b, k1 - 1)
        cost = cost - eta * values.sum(1)
    return cost


@torch.no_grad()
def _mppi(generator: SubgoalGenerator, starts: torch.Tensor, goals: torch.Tensor, k: int,
          settings: PlannerSettings, feasibility: Feasibility | None, buffer: PlanBuffer | None,
          rng: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One level for B segments at once: the best latent sequences (B, K, dz), their subgoals, costs, first costs."""
    b, d = starts.shape
    n, dz = settings.samples, generator.latent_dim

    def evaluate(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # z: (B, n, K, dz)
        m = z.shape[1]
        flat = z.reshape(b * m, k, dz)
        states = rollout(generator, starts.repeat_interleave(m, 0), flat)
        cost = plan_cost(starts.repeat_interleave(m, 0), states, goals.repeat_interleave(m, 0), feasibility,
                         settings.eta)
        return states.view(b, m, k, d), cost.view(b, m)

    # Random numbers come from the CPU generator ``rng`` and are moved: a seed plans the same on any device.
    device = starts.device
    z = torch.randn(b, n, k, dz, generator=rng).to(device)
    if settings.use_buffer and buffer is not None and len(buffer):
        # Half of the initial samples from the plan buffer (ch. 10.5.2), slightly perturbed so
        # that a remembered plan is a neighbourhood, not a single point.
        half = n // 2
        remembered = buffer.sample(b * half, rng).view(b, half, k, dz)
        z[:, :half] = remembered + 0.1 * torch.randn(b, half, k, dz, generator=rng).to(device)
    states, cost = evaluate(z)
    best = cost.argmin(1)
    index = torch.arange(b, device=device)
    best_z, best_states, best_cost = z[index, best], states[index, best], cost[index, best]
    first_cost = best_cost.clone()
    for _ in range(settings.iterations):
        # MPPI (the dissertation cites Gandhi et al., 2021): Gaussian perturbations of the current
        # plan, averaged with weights exp(-(c - c_min) / lambda); the mean is kept if it is better.
        candidates = best_z[:, None] + settings.noise * torch.randn(b, n, k, dz, generator=rng).to(device)
        states, cost = evaluate(candidates)
        weights = torch.softmax(-(cost - cost.min(1, keepdim=True).values) / settings.temperature, 1)
        mean_z = (weights[:, :, None, None] * candidates).sum(1, keepdim=True)
        mean_states, mean_cost = evaluate(mean_z)
        # The best of: the previous plan, the weighted mean, the best perturbation.
        pool_z = torch.cat([best_z[:, None], mean_z, candidates], 1)
        pool_states = torch.cat([best_states[:, None], mean_states, states], 1)
        pool_cost = torch.cat([best_cost[:, None], mean_cost, cost], 1)
        pick = pool_cost.argmin(1)
        best_z, best_states, best_cost = pool_z[index, pick], pool_states[index, pick], pool_cost[index, pick]
    return best_z, best_states, best_cost, first_cost


@torch.no_grad()
def _shoot(transitions: DataTransitions, starts: torch.Tensor, goals: torch.Tensor, k: int,
           settings: PlannerSettings, feasibility: Feasibility | None,
           rng: torch.Generator | None) -> tuple[None, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One level by random shooting over the data's transitions: N sequences of K subgoals per segment,
    the cheapest by eq. 52's cost. Returns what ``_mppi`` does, without latents (None)."""
    b, d = starts.shape
    n = settings.samples
    state, subgoals = starts.repeat_interleave(n, 0), []
    for _ in range(k):
        state = transitions(state, rng)
        subgoals.append(state)
    states = torch.stack(subgoals, 1)
    cost = plan_cost(starts.repeat_interleave(n, 0), states, goals.repeat_interleave(n, 0), feasibility,
                     settings.eta).view(b, n)
    best = cost.argmin(1)
    index = torch.arange(b, device=starts.device)
    return None, states.view(b, n, k, d)[index, best], cost[index, best], cost[index, best]


@torch.no_grad()
def plan(start: torch.Tensor, goal: torch.Tensor, generators: list[SubgoalGenerator] | list[DataTransitions],
         settings: PlannerSettings, feasibility: Feasibility | None = None, buffers: list[PlanBuffer] | None = None,
         rng: torch.Generator | None = None, remember: bool = True) -> Plan:
    """Algorithm 9 from s_0 (D,) to s_g (D,): ``generators[l]`` serves level l, coarsest first (len = levels).

    CVAE generators are planned by MPPI over z; ``DataTransitions`` by random shooting (no latents,
    no plan buffer). With ``settings.use_buffer``, ``buffers`` (one per level) seed half of MPPI's
    initial samples, and, if ``remember``, receive the latents chosen here.
    """
    if len(generators) != settings.levels:
        raise ValueError(f"{settings.levels} planning levels need {settings.levels} generators, got {len(generators)}")
    starts, goals = start[None], goal[None]
    chosen: list[torch.Tensor] = []
    top_cost = first_cost = 0.0
    for level, generator in enumerate(generators):
        k = settings.subgoals if level == 0 else settings.multiplier
        if isinstance(generator, DataTransitions):
            z, subgoals, cost, first = _shoot(generator, starts, goals, k, settings, feasibility, rng)
        else:
            buffer = buffers[level] if buffers is not None else None
            z, subgoals, cost, first = _mppi(generator, starts, goals, k, settings, feasibility, buffer, rng)
            chosen.append(z)
        if level == 0:
            top_cost, first_cost = float(cost[0]), float(first[0])
        # Every consecutive pair of this level's subgoals becomes a segment of the next level:
        # start s^_(i-1) (s^_0 = the segment's start), goal s^_i.
        previous = torch.cat([starts[:, None], subgoals[:, :-1]], 1)
        starts, goals = previous.reshape(-1, start.shape[-1]), subgoals.reshape(-1, start.shape[-1])
    if buffers is not None and settings.use_buffer and remember and chosen:
        for level, z in enumerate(chosen):
            buffers[level].add(z)
    return Plan(goals, top_cost, first_cost, chosen)


class SubgoalSchedule:
    """Algorithm 8's switching rule: follow ``targets`` in order; move on once the current one is
    reached (distance < ``epsilon``) or after ``interval`` steps on it; the last target is kept."""

    def __init__(self, targets: torch.Tensor, interval: int, epsilon: float):
        self.targets, self.interval, self.epsilon = targets, interval, epsilon
        self.index = self.steps = 0

    @property
    def current(self) -> torch.Tensor:
        return self.targets[self.index]

    def observe(self, state: torch.Tensor) -> None:
        """After a step that reached ``state`` (in the targets' space)."""
        self.steps += 1
        if self.index == len(self.targets) - 1:
            return
        if float((state - self.current).norm()) < self.epsilon or self.steps >= self.interval:
            self.index, self.steps = self.index + 1, 0


GENERATOR_KINDS = ("cvae", "data")


class SubgoalPlanner(nn.Module):
    """PTP's planning part as one component: a generator per level, their optimizer, the plan buffers.

    ``intervals`` are the levels' dt, coarsest first; an empty list is a planner that plans nothing
    (the model-free baseline follows the final goal only). ``kind`` "cvae" trains eq. 50's
    generators (``update``); "data" plans over the prior data's transitions, given by ``use_data``.
    """

    def __init__(self, state_dim: int, settings: PlannerSettings, intervals: list[int], latent_dim: int,
                 hidden: tuple[int, ...], learning_rate: float, beta: float, links: int, kind: str = "cvae",
                 neighbours: int = 10):
        super().__init__()
        if kind not in GENERATOR_KINDS:
            raise ValueError(f"subgoal generators are one of {', '.join(GENERATOR_KINDS)}, not {kind!r}")
        self.settings, self.intervals, self.beta, self.links = settings, list(intervals), beta, links
        self.kind, self.neighbours = kind, neighbours
        learned = self.intervals if kind == "cvae" else []
        self.generators = nn.ModuleList(SubgoalGenerator(state_dim, latent_dim, hidden) for _ in learned)
        self.optimizer = torch.optim.Adam(self.generators.parameters(), lr=learning_rate) if learned else None
        self.buffers = [PlanBuffer() for _ in learned]
        self.transitions: list[DataTransitions] = []
        self.updates = 0

    @property
    def active(self) -> bool:
        return bool(self.intervals)

    @property
    def learned(self) -> bool:
        """Whether the generators are trained (eq. 50), rather than read from the data."""
        return self.kind == "cvae" and self.active

    def use_data(self, states: torch.Tensor, episode_end: torch.Tensor) -> None:
        """With ``kind="data"``: plan over these states' transitions (rows of D in the planning space)."""
        if self.kind == "data":
            self.transitions = [DataTransitions(states, episode_end, interval, self.neighbours)
                                for interval in self.intervals]

    @property
    def subgoal_interval(self) -> int:
        """Steps the policy gets per subgoal (Algorithm 8's dt): the finest level's."""
        return self.intervals[-1] if self.intervals else 0

    def update(self, states: torch.Tensor, episode_end: torch.Tensor, batch: int,
               rng: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One step of eq. 50 for every level, on chains of ``states`` sampled at that level's dt."""
        total, metrics = 0.0, {}
        for level, (generator, interval) in enumerate(zip(self.generators, self.intervals)):
            chain = sample_chains(states, episode_end, interval, self.links, batch, rng)
            loss, parts = generator.loss(chain, self.beta)
            total = total + loss
            metrics.update({f"{name}_level{level}": value for name, value in parts.items()})
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.updates += 1
        return metrics

    def targets(self, start: torch.Tensor, goal: torch.Tensor, feasibility: Feasibility | None, remember: bool,
                rng: torch.Generator | None = None) -> torch.Tensor:
        """What the policy follows, in order: the planned subgoals, then the goal itself."""
        if not self.active:
            return goal[None]
        if self.kind == "data" and not self.transitions:
            raise RuntimeError("a planner over the data's transitions needs use_data(states, episode_end) first")
        generators = list(self.generators) if self.kind == "cvae" else self.transitions
        result = plan(start, goal, generators, self.settings, feasibility, self.buffers, rng, remember)
        return torch.cat([result.subgoals, goal[None]])

    def extra_state(self) -> dict:
        return {"optimizer": None if self.optimizer is None else self.optimizer.state_dict(), "updates": self.updates,
                "buffers": [[plan.cpu() for plan in buffer.plans] for buffer in self.buffers]}

    def load_extra_state(self, state: dict) -> None:
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.updates = state["updates"]
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        for buffer, plans in zip(self.buffers, state["buffers"]):
            buffer.plans = [plan.to(device) for plan in plans]


__all__ = ["DataTransitions", "Feasibility", "GENERATOR_KINDS", "Plan", "PlanBuffer", "PlannerSettings",
           "SubgoalGenerator", "SubgoalPlanner", "SubgoalSchedule", "plan", "plan_cost", "rollout", "sample_chains"]
