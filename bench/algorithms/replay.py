"""Replay: offline data and online experience as tensors, mixed at a fixed ratio, with goal relabeling.

Everything an update needs is gathered with one ``index_select`` per array from tensors held in
memory (on the run's device: a GPU's when it computes on one), so sampling costs microseconds and never
touches storage or numpy. Row indices are drawn on the CPU by the replay's own generator and then moved:
the same seed samples the same rows on any device. States are stored
already normalized; goals are stored raw (the goal reward is defined on raw goals) and
normalized when a batch is assembled, where they are appended to the state.

Goal relabeling (HER; dissertation ch. 2.4.3 and 9.5.2): each sampled transition keeps its goal,
or takes the achieved goal of a future step of its own episode, of the episode's final step, or
of a random step of the buffer, in configured shares. Rewards are then recomputed by the task's
goal reward on raw goals, or (``"index"``) by whether the goal is exactly the state reached, which
is OGBench's criterion when goals are observations. A task's goal reward is a numpy function of the
environment's: on a GPU its batch goes to the host and back, once per sampled batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from bench.algorithms.base import Batch
from bench.algorithms.devices import random_rows

# (achieved, goal) -> (reward, done), numpy arrays in and out, vectorized over rows.
GoalReward = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
Row = np.ndarray | torch.Tensor


def _as_row(value: Row) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value, np.float32))


class TransitionBuffer:
    """Step-aligned tensors with a fixed capacity; episodes are contiguous rows.

    ``episode_end[i]`` is the row of the last step of row i's episode (for a running episode,
    the newest row so far), which is what future/final relabeling needs.
    """

    ARRAYS = ("state", "next_state", "action", "reward", "done", "episode_end", "goal", "next_achieved")

    def __init__(self, capacity: int, state_dim: int, action_dim: int, goal_dim: int = 0,
                 device: torch.device | str = "cpu"):
        self.capacity = capacity
        self.state = torch.zeros(capacity, state_dim, device=device)
        self.next_state = torch.zeros(capacity, state_dim, device=device)
        self.action = torch.zeros(capacity, action_dim, device=device)
        self.reward = torch.zeros(capacity, device=device)
        self.done = torch.zeros(capacity, device=device)
        self.episode_end = torch.zeros(capacity, dtype=torch.long, device=device)
        self.goal = torch.zeros(capacity, goal_dim, device=device) if goal_dim else None
        self.next_achieved = torch.zeros(capacity, goal_dim, device=device) if goal_dim else None
        self.size = 0
        self._episode_start = 0

    @property
    def device(self) -> torch.device:
        return self.state.device

    def to(self, device: torch.device | str) -> "TransitionBuffer":
        """Move every array to ``device`` (in place; returns the buffer)."""
        for name in self.ARRAYS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        return self

    @classmethod
    def from_arrays(cls, state: np.ndarray, next_state: np.ndarray, action: np.ndarray, reward: np.ndarray,
                    done: np.ndarray, episode_lengths: np.ndarray, goal: np.ndarray | None = None,
                    next_achieved: np.ndarray | None = None) -> "TransitionBuffer":
        n = len(action)
        goal_dim = 0 if next_achieved is None else next_achieved.shape[1]
        buffer = cls.__new__(cls)
        buffer.capacity = buffer.size = n
        buffer.state = torch.as_tensor(np.ascontiguousarray(state, dtype=np.float32))
        buffer.next_state = torch.as_tensor(np.ascontiguousarray(next_state, dtype=np.float32))
        buffer.action = torch.as_tensor(np.ascontiguousarray(action, dtype=np.float32))
        buffer.reward = torch.as_tensor(np.ascontiguousarray(reward, dtype=np.float32))
        buffer.done = torch.as_tensor(np.ascontiguousarray(done, dtype=np.float32))
        ends = np.cumsum(episode_lengths) - 1
        buffer.episode_end = torch.as_tensor(np.repeat(ends, episode_lengths).astype(np.int64))
        if goal_dim:
            buffer.next_achieved = torch.as_tensor(np.ascontiguousarray(next_achieved, dtype=np.float32))
            buffer.goal = (torch.as_tensor(np.ascontiguousarray(goal, dtype=np.float32)) if goal is not None
                           else buffer.next_achieved.clone())
        else:
            buffer.goal = buffer.next_achieved = None
        buffer._episode_start = n
        return buffer

    def add(self, state: Row, action: Row, reward: float, next_state: Row, done: bool,
            goal: Row | None = None, next_achieved: Row | None = None) -> None:
        """Append one transition; rows are host arrays or tensors already on the buffer's device."""
        if self.size >= self.capacity:
            raise RuntimeError("replay buffer is full")  # capacity is sized to the online budget
        i = self.size
        self.state[i] = _as_row(state)
        self.next_state[i] = _as_row(next_state)
        self.action[i] = _as_row(action)
        self.reward[i] = float(reward)
        self.done[i] = float(done)
        if self.goal is not None:
            self.goal[i] = _as_row(goal)
            self.next_achieved[i] = _as_row(next_achieved)
        self.size += 1
        self.episode_end[self._episode_start:self.size] = i

    def end_episode(self) -> None:
        self._episode_start = self.size

    def truncate(self, rows: int) -> None:
        """Keep the first ``rows`` rows; the episode they end in ends at the last one kept."""
        if rows < self.size:
            self.size = rows
            self.episode_end[:rows] = self.episode_end[:rows].clamp(max=max(rows - 1, 0))
            self._episode_start = rows

    def state_dict(self) -> dict[str, Any]:
        """The filled rows, as CPU tensors (a checkpoint any device can read)."""
        n = self.size
        out = {"capacity": self.capacity, "size": n, "episode_start": self._episode_start}
        for name in self.ARRAYS:
            value = getattr(self, name)
            out[name] = None if value is None else value[:n].to("cpu", copy=True)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state["size"]
        for name in self.ARRAYS:
            if state[name] is not None:
                getattr(self, name)[:n] = state[name]
        self.size = n
        # An interrupted episode is not continued after a resume: its rows end where it stopped.
        self._episode_start = n


@dataclass(frozen=True)
class RelabelShares:
    keep: float = 1.0
    future: float = 0.0
    final: float = 0.0
    random: float = 0.0
    # Goals a generative model imagines (RIG's prior samples, VAL's affordances; ch. 2.4.3, 9.5.2).
    proposal: float = 0.0


@dataclass(frozen=True)
class GoalNormalizer:
    mean: torch.Tensor
    std: torch.Tensor

    def __call__(self, goal: torch.Tensor) -> torch.Tensor:
        return (goal - self.mean) / self.std


class Replay:
    """Samples batches from the offline buffer and (once it has data) the online one.

    ``online_fraction=None`` samples uniformly over the union (AWAC's single buffer); a number
    fixes the online share of every batch (e.g. 0.5, or 0.6 in PTP's released code).
    """

    def __init__(self, offline: TransitionBuffer, online: TransitionBuffer | None = None,
                 online_fraction: float | None = None, relabel: RelabelShares = RelabelShares(),
                 goal_reward: GoalReward | str | None = None, goal_normalizer: GoalNormalizer | None = None,
                 reward_scale: float = 1.0, reward_shift: float = 0.0, seed: int = 0,
                 propose: Callable[[TransitionBuffer, torch.Tensor], torch.Tensor] | None = None):
        self.offline = offline
        self.online = online
        self.online_fraction = online_fraction
        self.relabel = relabel
        self.goal_reward = goal_reward
        self.goal_normalizer = goal_normalizer
        self.reward_scale = reward_scale
        self.reward_shift = reward_shift
        self.generator = torch.Generator().manual_seed(seed)  # on the CPU, whatever the buffers' device
        self.device = offline.device
        self.goal_conditioned = offline.goal is not None
        # (buffer, rows) -> imagined goals for those rows, for the "proposal" share.
        self.propose = propose
        if relabel.proposal > 0 and propose is None:
            raise ValueError("a proposal share needs a goal proposer")

    def sample(self, batch_size: int) -> Batch:
        online_size = self.online.size if self.online is not None else 0
        if online_size == 0:
            return self._sample_from(self.offline, batch_size)
        if self.online_fraction is None:
            total = self.offline.size + online_size
            n_online = int((torch.randint(total, (batch_size,), generator=self.generator) >= self.offline.size).sum())
        else:
            n_online = int(round(batch_size * self.online_fraction))
        parts = [self._sample_from(buffer, n) for buffer, n in
                 ((self.offline, batch_size - n_online), (self.online, n_online)) if n > 0]
        if len(parts) == 1:
            return parts[0]
        return Batch(*(torch.cat([getattr(p, f) for p in parts])
                       for f in ("obs", "action", "reward", "next_obs", "done", "demo")))

    def _sample_from(self, buffer: TransitionBuffer, n: int) -> Batch:
        if getattr(buffer, "streamed", False):  # offline rows streamed from a version too large to load
            batch = buffer.draw(n)
            batch.reward = self._transformed(batch.reward)
            return batch
        idx = random_rows(0, buffer.size, n, self.generator, self.device)
        state = buffer.state.index_select(0, idx)
        next_state = buffer.next_state.index_select(0, idx)
        reward = buffer.reward.index_select(0, idx)
        done = buffer.done.index_select(0, idx)
        if self.goal_conditioned:
            goal, reward, done = self._relabel(buffer, idx, reward, done)
            goal = self.goal_normalizer(goal) if self.goal_normalizer is not None else goal
            state = torch.cat([state, goal], dim=1)
            next_state = torch.cat([next_state, goal], dim=1)
        reward = self._transformed(reward)
        demo = torch.full((n,), 1.0 if buffer is self.offline else 0.0, device=self.device)
        return Batch(state, buffer.action.index_select(0, idx), reward, next_state, done, demo)

    def _transformed(self, reward: torch.Tensor) -> torch.Tensor:
        if self.reward_scale != 1.0 or self.reward_shift != 0.0:
            return reward * self.reward_scale + self.reward_shift
        return reward

    def _relabel(self, buffer: TransitionBuffer, idx: torch.Tensor, reward: torch.Tensor,
                 done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = len(idx)
        shares = self.relabel
        # Which goal each row gets is decided on the CPU, where asking whether any row is relabeled costs
        # no wait for a GPU; the masks then move to the buffers' device.
        u = torch.rand(n, generator=self.generator)
        relabeled_here = u >= shares.keep
        proposal_start = shares.keep + shares.future + shares.final
        proposed = (u >= proposal_start) & (u < proposal_start + shares.proposal) if shares.proposal > 0 else None
        any_relabeled, any_proposed = bool(relabeled_here.any()), proposed is not None and bool(proposed.any())
        u = u.to(self.device)
        keep = u < shares.keep
        future = (u >= shares.keep) & (u < shares.keep + shares.future)
        final = (u >= shares.keep + shares.future) & (u < shares.keep + shares.future + shares.final)
        # Goal source rows: the transition's own next state for "keep" (only used for the reward
        # when goals are recomputed), a later row of the same episode, its last row, or any row.
        end = buffer.episode_end.index_select(0, idx)
        offset = (torch.rand(n, generator=self.generator).to(self.device) * (end - idx + 1).float()).long()
        source = torch.where(future, idx + offset, idx)
        source = torch.where(final, end, source)
        relabeled = ~keep
        anywhere = random_rows(0, buffer.size, n, self.generator, self.device)
        source = torch.where(relabeled & ~future & ~final, anywhere, source)
        goal = torch.where(relabeled.unsqueeze(1), buffer.next_achieved.index_select(0, source),
                           buffer.goal.index_select(0, idx))
        if any_proposed:
            proposed = proposed.to(self.device)
            goal[proposed] = self.propose(buffer, idx[proposed])
        if self.goal_reward is None or not any_relabeled:
            return goal, reward, done
        if self.goal_reward == "index":
            reached = (source == idx).float()
            new_reward, new_done = reached - 1.0, reached
        else:
            achieved = buffer.next_achieved.index_select(0, idx)
            r, d = self.goal_reward(achieved.cpu().numpy(), goal.cpu().numpy())
            new_reward = torch.as_tensor(np.asarray(r, np.float32), device=self.device)
            new_done = torch.as_tensor(np.asarray(d, np.float32), device=self.device)
        return goal, torch.where(relabeled, new_reward, reward), torch.where(relabeled, new_done, done)
