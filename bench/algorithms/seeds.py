"""Many seeds as one batched model: S copies of an algorithm trained in lockstep by one vmapped update.

    stack      the S members' parameters and buffers (and their optimizer's state) stacked along a
               leading seed dimension, in one instance of the algorithm; each member was built as it
               would be alone (under its own seed), so each starts where its unbatched run starts
    update     S batches -> each seed's losses under torch.func.vmap (the algorithm's own ``losses``,
               called with that seed's slice of the weights), the sum's backward, one optimizer step
               and ``after_step`` on the stacked tensors: Adam and Polyak averaging are elementwise,
               so every seed's slice steps exactly as it would alone
    act        (S, N, obs) -> (S, N, action): one forward pass for all seeds
    member     seed i's checkpoint, in the format of an unbatched algorithm's (it resumes alone)

Small networks then fill a GPU (and a CPU's vector units) with S seeds' work at the cost of one
launch per layer. Random draws inside the losses (SAC's and AWAC's policy samples, CQL's sampled
actions, TD3's target noise) come from one batched draw (vmap's ``randomness="different"``), not from
each seed's own stream: those seeds match their unbatched runs statistically, not number for number.
Algorithms whose losses draw nothing (BC, IQL) match them to float rounding (tests/test_seeds.py).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from bench.algorithms.base import Algorithm, Batch

BATCH_FIELDS = tuple(field.name for field in dataclasses.fields(Batch))


class _Method(nn.Module):
    """``algorithm.<name>(*args)`` as a module's forward, so torch.func.functional_call can run it with other
    weights (functional_call calls ``forward`` only)."""

    def __init__(self, algorithm: Algorithm, name: str):
        super().__init__()
        self.algorithm, self.name = algorithm, name

    def forward(self, *args: Any) -> Any:
        return getattr(self.algorithm, self.name)(*args)


class SeedStack:
    """S members of one algorithm (same class, config and sizes) as one model; see the module docstring."""

    def __init__(self, members: list[Algorithm]):
        if len(members) < 2:
            raise ValueError("a seed stack needs at least two members")
        first = members[0]
        if any(type(m) is not type(first) or m.config != first.config or (m.obs_dim, m.action_dim) !=
               (first.obs_dim, first.action_dim) or m.updates != first.updates for m in members):
            raise ValueError("the members of a seed stack must be one algorithm, config and size, at one update")
        self.size = len(members)
        model = copy.deepcopy(first)  # its optimizer comes along, holding the copy's parameters
        model._compiled_losses = None
        with torch.no_grad():
            # Room for S of each parameter (the members' values come with their checkpoints, below); buffers
            # stacked as they are, since a checkpoint leaves out the non-persistent ones.
            for parameter in model.parameters():
                parameter.data = parameter.data.new_empty((self.size, *parameter.shape))
            member_buffers = [dict(m.named_buffers()) for m in members]
            for name, buffer in model.named_buffers():
                buffer.data = torch.stack([b[name] for b in member_buffers])
        self.model = model
        self.load_member_states([m.checkpoint_state() for m in members])
        self._losses = _Method(model, "losses")
        self._act = _Method(model, "act")

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _weights(self) -> dict[str, torch.Tensor]:
        return {f"algorithm.{name}": tensor for name, tensor in
                [*self.model.named_parameters(), *self.model.named_buffers()]}

    # -- training ---------------------------------------------------------------------------------------
    def update(self, batches: list[Batch]) -> dict[str, torch.Tensor]:
        """One step of every seed, seed i on ``batches[i]``; returns each metric as an (S,) tensor."""
        if len(batches) != self.size:
            raise ValueError(f"{self.size} seeds need {self.size} batches, got {len(batches)}")
        fields = {f: torch.stack([getattr(b, f) for b in batches]) for f in BATCH_FIELDS
                  if getattr(batches[0], f) is not None}

        def one_seed(weights: dict[str, torch.Tensor], seed_fields: dict[str, torch.Tensor]):
            return functional_call(self._losses, weights, (Batch(**seed_fields),), tie_weights=False)

        model = self.model
        with model.autocast():
            loss, metrics = vmap(one_seed, randomness="different")(self._weights(), fields)
        model.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()  # the seeds' losses touch disjoint slices: each slice gets its own gradient
        model.optimizer.step()
        model.after_step()
        model.updates += 1
        return metrics

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Seed i's action for ``obs[i]`` (S, N, obs_dim) -> (S, N, action_dim)."""
        def one_seed(weights: dict[str, torch.Tensor], seed_obs: torch.Tensor) -> torch.Tensor:
            return functional_call(self._act, weights, (seed_obs, deterministic), tie_weights=False)

        return vmap(one_seed, randomness="different")(self._weights(), obs)

    @torch.no_grad()
    def act_member(self, i: int, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Seed i alone acting on ``obs`` (N, obs_dim): its evaluation episodes, which run seed by seed."""
        weights = {name: tensor[i] for name, tensor in self._weights().items()}
        return functional_call(self._act, weights, (obs, deterministic), tie_weights=False)

    def begin_online(self) -> None:
        self.model.begin_online()

    # -- members' checkpoints -------------------------------------------------------------------------------
    def member_state(self, i: int) -> dict[str, Any]:
        """Seed i's checkpoint, as its algorithm alone would write it."""
        state = self.model.checkpoint_state()
        state["modules"] = {name: value[i].clone() for name, value in state["modules"].items()}
        optimizer = state["optimizer"]
        optimizer["state"] = {key: {name: _slice(value, i) for name, value in entry.items()}
                              for key, entry in optimizer["state"].items()}
        return state

    def load_member_states(self, states: list[dict[str, Any]]) -> None:
        """Each seed's slice from its own checkpoint (the inverse of ``member_state``)."""
        stacked = dict(states[0])
        stacked["modules"] = {name: torch.stack([s["modules"][name] for s in states]) for name in states[0]["modules"]}
        optimizer = copy.copy(states[0]["optimizer"])
        optimizer["state"] = {key: {name: _stack([s["optimizer"]["state"][key][name] for s in states])
                                    for name in entry} for key, entry in states[0]["optimizer"]["state"].items()}
        stacked["optimizer"] = optimizer
        self.model.load_checkpoint_state(stacked)


def _slice(value: Any, i: int) -> Any:
    """Seed i's part of an optimizer state entry: stacked tensors are sliced, the shared step count is not."""
    return value[i].clone() if isinstance(value, torch.Tensor) and value.dim() > 0 else value


def _stack(values: list[Any]) -> Any:
    return torch.stack(values) if isinstance(values[0], torch.Tensor) and values[0].dim() > 0 else values[0]
