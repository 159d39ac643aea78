"""PTP's planner on small worlds whose answers are known: generators, MPPI, hierarchy, the plan buffer, feasibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bench.algorithms.subgoals import (DataTransitions, PlanBuffer, PlannerSettings, SubgoalGenerator,
                                       SubgoalPlanner, plan, plan_cost, sample_chains)


class StepGenerator(nn.Module):
    """A known g(s, z) on the plane: a step of at most ``reach`` in the direction z says."""

    def __init__(self, reach: float):
        super().__init__()
        self.reach, self.latent_dim = reach, 2

    def forward(self, state, z):
        return state + self.reach * torch.tanh(z)


def wall_feasibility(states: torch.Tensor, nexts: torch.Tensor) -> torch.Tensor:
    """V(s, s'): minus the distance, and a large penalty for a transition that touches the disk at (1, 0), r = 0.45."""
    centre = torch.tensor([1.0, 0.0])
    points = torch.stack([states + (nexts - states) * t for t in torch.linspace(0, 1, 6)], 1)
    inside = ((points - centre).norm(dim=-1) < 0.45).any(1)
    return -(nexts - states).norm(dim=-1) - 100.0 * inside.float()


def test_the_planner_routes_around_a_region_the_value_function_marks_infeasible():
    start, goal = torch.tensor([0.0, 0.0]), torch.tensor([2.0, 0.0])
    settings = PlannerSettings(levels=1, subgoals=8, samples=512, iterations=5, eta=0.05)
    result = plan(start, goal, [StepGenerator(0.4)], settings, wall_feasibility, rng=torch.Generator().manual_seed(0))
    path = torch.cat([start[None], result.subgoals])
    assert (result.subgoals[-1] - goal).norm() < 0.3, result.subgoals
    assert not bool((wall_feasibility(path[:-1], path[1:]) < -50).any()), path  # no transition crosses the disk
    # Without the feasibility term, the straight line through the disk is as good as any.
    blind = plan(start, goal, [StepGenerator(0.4)], PlannerSettings(levels=1, subgoals=8, samples=512, eta=0.0),
                 None, rng=torch.Generator().manual_seed(0))
    blind_path = torch.cat([start[None], blind.subgoals])
    assert bool((wall_feasibility(blind_path[:-1], blind_path[1:]) < -50).any())


def test_mppi_improves_on_its_first_samples():
    start, goal = torch.zeros(2), torch.tensor([1.7, -1.1])
    generator = [StepGenerator(0.3)]
    none = plan(start, goal, generator, PlannerSettings(levels=1, subgoals=6, samples=64, iterations=0, eta=0.0),
                rng=torch.Generator().manual_seed(1))
    assert none.cost == none.first_cost
    improved = plan(start, goal, generator, PlannerSettings(levels=1, subgoals=6, samples=64, iterations=5, eta=0.0),
                    rng=torch.Generator().manual_seed(1))
    assert improved.first_cost == none.first_cost  # same initial samples
    assert improved.cost < 0.5 * improved.first_cost, (improved.cost, improved.first_cost)


def test_the_feasibility_term_rewards_high_values():
    start = torch.zeros(1, 2)
    subgoals = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]])
    goal = torch.tensor([[2.0, 0.0]])
    feasible = plan_cost(start, subgoals, goal, lambda s, n: torch.zeros(len(s)), eta=1.0)
    infeasible = plan_cost(start, subgoals, goal, lambda s, n: -torch.ones(len(s)), eta=1.0)
    assert float(infeasible) > float(feasible)  # a lower value (more steps to go) must cost more


def test_hierarchical_plans_refine_each_coarse_step_into_m_finer_ones():
    start, goal = torch.zeros(2), torch.tensor([3.0, 1.0])
    settings = PlannerSettings(levels=2, subgoals=4, multiplier=2, samples=256, iterations=3, eta=0.0)
    result = plan(start, goal, [StepGenerator(1.0), StepGenerator(0.5)], settings,
                  rng=torch.Generator().manual_seed(2))
    assert result.subgoals.shape == (settings.total_subgoals, 2) == (8, 2)
    assert [z.shape for z in result.latents] == [(1, 4, 2), (4, 2, 2)]
    assert (result.subgoals[-1] - goal).norm() < 0.3
    steps = torch.cat([start[None], result.subgoals]).diff(dim=0).norm(dim=1)
    assert float(steps.max()) <= 0.5 * np.sqrt(2) + 1e-5  # every step is one the finest generator can make


def test_the_plan_buffer_remembers_chosen_latents_and_seeds_the_next_plan():
    start, goal = torch.zeros(2), torch.tensor([1.5, 1.5])
    settings = PlannerSettings(levels=1, subgoals=5, samples=32, iterations=0, eta=0.0)
    buffers = [PlanBuffer()]
    first = plan(start, goal, [StepGenerator(0.4)], settings, buffers=buffers, rng=torch.Generator().manual_seed(3))
    assert len(buffers[0]) == 1 and torch.equal(buffers[0].plans[0], first.latents[0][0])
    # With a remembered good plan, the next episode's initial samples start near it.
    again = plan(start, goal, [StepGenerator(0.4)], settings, buffers=buffers, rng=torch.Generator().manual_seed(4))
    fresh = plan(start, goal, [StepGenerator(0.4)], PlannerSettings(levels=1, subgoals=5, samples=32, iterations=0,
                                                                   eta=0.0, use_buffer=False),
                 rng=torch.Generator().manual_seed(4))
    assert again.first_cost <= first.first_cost + 0.15 and again.first_cost < fresh.first_cost


def walks(episodes: int, length: int, rng: np.random.Generator, dim: int = 12) -> torch.Tensor:
    """Episodes of a point moving in a straight line on the plane; the state (position, velocity) seen through a fixed random 12-D embedding."""
    embed = np.random.default_rng(99).normal(size=(4, dim)) / 2
    paths = []
    for _ in range(episodes):
        velocity = rng.normal(0, 0.05, 2)
        position = rng.uniform(-1, 1, 2) + velocity * np.arange(length)[:, None]
        paths.append(np.concatenate([position, np.repeat(10 * velocity[None], length, 0)], 1))
    return torch.from_numpy((np.concatenate(paths) @ embed).astype(np.float32))


def test_generators_propose_subgoals_nearer_the_real_future_than_random_states():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    length = 30
    states = walks(300, length, rng)
    episode_end = torch.arange(len(states)) // length * length + length - 1
    generator = SubgoalGenerator(states.shape[1], latent_dim=4, hidden=(128, 128))
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(1500):
        loss, _ = generator.loss(sample_chains(states, episode_end, interval=8, links=2, batch=128, generator=g))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test = walks(100, length, np.random.default_rng(1))
    rows = torch.arange(0, 100 * 30, 30) + 5
    now, future = test[rows], test[rows + 8]
    with torch.no_grad():
        samples = torch.stack([generator(now, torch.randn(len(now), 4)) for _ in range(10)], 1)
    generated = (samples - future[:, None]).norm(dim=-1).mean()
    random_states = (test[torch.randint(len(test), (len(now), 10))] - future[:, None]).norm(dim=-1).mean()
    staying = (now - future).norm(dim=-1).mean()
    # Measured: generated 0.18, staying put 0.61, a random state of the data 2.6.
    assert generated < 0.25 * random_states, (generated, random_states)
    assert generated < 0.6 * staying, (generated, staying)


def press_episodes(layouts: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Episodes of (gripper x, button lit, the button's place): the gripper walks from 0 to the button in 10
    steps of 0.1, and the button lights when the gripper is on it; each episode in its own scene."""
    episodes = []
    for place in layouts:
        x = np.minimum(np.arange(16) * place / 10, place)
        episodes.append(np.stack([x, (x >= place - 1e-9).astype(float), np.full(16, place)], 1))
    states = torch.from_numpy(np.concatenate(episodes).astype(np.float32))
    return states, torch.arange(len(states)) // 16 * 16 + 15


def test_data_transitions_keep_the_scene_and_what_changes_together():
    states, episode_end = press_episodes([1.0, 1.0, 2.0, 2.0])
    transitions = DataTransitions(states, episode_end, interval=10, neighbours=1)
    # A start in a scene no episode shows (the button at 1.05), where the data's episodes start: its nearest
    # data state is a first state of a scene with the button at 1.
    start = torch.tensor([[0.0, 0.0, 1.05]]).repeat(500, 1)
    subgoals = transitions(start, torch.Generator().manual_seed(0))
    assert torch.allclose(subgoals[:, 2], start[:, 2])  # the scene's layout is the start's
    moved = subgoals[:, 0]
    assert (moved >= 0.5 - 1e-6).all() and (moved <= 1.0 + 1e-6).all()  # 5-10 of the data's steps of 0.1
    lit = subgoals[:, 1] > 0.5
    assert lit.any() and not lit.all()
    assert (moved[lit] > 1.0 - 1e-6).all()  # the button lights only where the data's gripper reached it
    # Every subgoal is the start plus a change one of the data's episodes made.
    changes = {tuple(np.round(c, 4)) for c in (states[5:] - states[:-5]).numpy()} | {
        tuple(np.round(c, 4)) for i in range(6, 11) for c in (states[i:] - states[:-i]).numpy()}
    assert all(tuple(np.round(c, 4)) in changes for c in (subgoals - start).numpy())


def test_plans_over_the_datas_transitions_press_where_the_cvae_would_blend():
    states, episode_end = press_episodes([1.0, 1.0, 1.0, 1.0])
    planner = SubgoalPlanner(3, PlannerSettings(levels=2, subgoals=2, multiplier=2, samples=64, eta=0.0),
                             [10, 5], latent_dim=2, hidden=(8,), learning_rate=1e-3, beta=1.0, links=1, kind="data",
                             neighbours=2)
    assert planner.active and not planner.learned and len(planner.generators) == 0
    start, goal = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 1.0, 1.0])
    with pytest.raises(RuntimeError, match="use_data"):
        planner.targets(start, goal, None, remember=True)
    planner.use_data(states, episode_end)
    targets = planner.targets(start, goal, None, remember=True, rng=torch.Generator().manual_seed(0))
    assert targets.shape == (5, 3) and torch.equal(targets[-1], goal)
    subgoals = targets[:-1]
    assert torch.allclose(subgoals[-1], goal)  # the cheapest of the sampled sequences ends at the goal
    lit = subgoals[:, 1] > 0.5
    assert (subgoals[lit, 0] > 1.0 - 1e-6).all()  # lit only with the gripper at the button
    assert all(len(buffer) == 0 for buffer in planner.buffers)  # no latents to remember


def test_a_subgoal_counts_as_reached_within_one_steps_distance_and_the_schedule_moves_on_by_time_otherwise():
    from types import SimpleNamespace

    from bench.algorithms.subgoals import SubgoalSchedule
    from bench.evaluation.planning import reach_epsilon

    # Two episodes on a line: steps of 1 in the first (4 states), of 3 in the second (3 states).
    states = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0], [13.0], [16.0]])
    episode_end = torch.tensor([3, 3, 3, 3, 6, 6, 6])
    assert reach_epsilon(SimpleNamespace(reach_epsilon=0.0), states, episode_end) == 1.0  # median of 1,1,1,3,3
    assert reach_epsilon(SimpleNamespace(reach_epsilon=0.5), states, episode_end) == 0.5
    schedule = SubgoalSchedule(torch.tensor([[5.0], [9.0], [20.0]]), interval=3, epsilon=1.0)
    schedule.observe(torch.tensor([4.5]))  # within eps of 5: reached
    assert float(schedule.current) == 9.0
    for _ in range(3):  # never near 9: its time budget runs out
        schedule.observe(torch.tensor([0.0]))
    assert float(schedule.current) == 20.0
    schedule.observe(torch.tensor([20.0]))  # the last target (the goal) is kept
    assert float(schedule.current) == 20.0
