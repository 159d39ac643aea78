"""Models that a latent-goal run learns from the prior data alone, kept for later runs: the representation, the PixelCNN, the offline policy.

A run of RIG, CC-RIG, VAL or PTP retrains its representation, its goal proposer and its offline
policy although they depend only on the data, the config and the seed, not on the task, the
evaluation scene or the PTP variant. Each such model is stored once under a key

    sha256(kind, dataset manifest sha256, seed, the config fields the model depends on,
           the keys of the models it is trained on, a digest of the code that trains it)

at ``_cache/models/<kind>/<dataset manifest sha256>/<key>.pt`` in the registry's storage (local disk
or S3), and a later run whose key matches loads it instead of training. They are grouped by dataset
version so that ``bench datasets gc`` can remove the models of deleted versions (``remove_stale_models``).
Each model is trained with random streams of its own, seeded by the run's seed, so a run that loads a
model continues exactly as a run that trained it: same weights, same optimizer state, same random
state after it (tested).

    representation   phase A: the VAE / CC-VAE / VQ-VAE and its optimizer
    proposer         VAL's PixelCNN p(z_t | z_0), on the representation's codes
    offline-policy   the RL learner after the offline phase (networks, optimizer, the random
                     states the online phase starts from); keyed also by the offline budget
                     and by the reward's eps, which the task's scripted calibration sets: it is
                     shared across tasks only when eps coincides (RIG and CC-RIG's distance
                     reward has none), and across PTP's variants and gc-iql, whose planner
                     takes no part in offline training.

What a run reused is in its results (``reused_models``: kind -> key and the run that trained it).
``--no-model-cache`` on ``bench evaluate`` trains everything afresh (and stores nothing).
Entries are read with ``torch.load(weights_only=True)``: tensors and plain data, never code.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
from pathlib import Path
from typing import Any

import torch

from bench.algorithms.devices import rng_state, set_rng_state
from bench.datasets.storage import Storage

# Bump when a change to the training loops outside the digested files changes what they produce.
CACHE_FORMAT = 1

KINDS = ("representation", "proposer", "offline-policy")


def source_digest(*code: Any) -> str:
    """sha256 over source code (files, modules, classes or functions): a model trained by other code is another model."""
    digest = hashlib.sha256()
    for item in code:
        text = item.read_text() if isinstance(item, Path) else inspect.getsource(item)
        digest.update(text.encode())
    return digest.hexdigest()


def model_key(kind: str, dataset_sha256: str, seed: int, fields: dict[str, Any], parents: list[str],
              code: str) -> str:
    """The cache key of one model: everything it is a function of, canonical JSON, hashed."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    canonical = json.dumps({"kind": kind, "format": CACHE_FORMAT, "dataset": dataset_sha256, "seed": int(seed),
                            "fields": fields, "parents": parents, "code": code}, sort_keys=True, default=list)
    return hashlib.sha256(canonical.encode()).hexdigest()


MODELS = "_cache/models"


def entry_path(kind: str, dataset_sha256: str, key: str) -> str:
    return f"{MODELS}/{kind}/{dataset_sha256}/{key}.pt"


def remove_stale_models(storage: Storage, live_datasets: set[str]) -> list[str]:
    """Remove the cached models of dataset versions that no longer exist (``live_datasets``: the manifest
    sha256 of every version there is), and entries of the flat layout before models were grouped by version.

    No run needs them: a key includes its dataset's manifest, so no later run can match them.
    """
    removed = []
    for kind in storage.list_dirs(MODELS):
        base = f"{MODELS}/{kind}"
        for dataset in storage.list_dirs(base):
            if dataset not in live_datasets:
                storage.remove(f"{base}/{dataset}")
                removed.append(f"{base}/{dataset}")
        for name in storage.sizes(base):
            if "/" not in name:  # <kind>/<key>.pt: the older layout
                storage.remove(f"{base}/{name}")
                removed.append(f"{base}/{name}")
    return removed


class ModelCache:
    """Load and store one run's cached models (all of one dataset version); remembers what this run reused."""

    def __init__(self, storage: Storage, run_id: str, dataset_sha256: str, enabled: bool = True):
        self.storage, self.run_id, self.dataset_sha256, self.enabled = storage, run_id, dataset_sha256, enabled
        self.reused: dict[str, dict[str, str]] = {}

    def load(self, kind: str, key: str) -> dict[str, Any] | None:
        """The stored state of ``kind`` under ``key``, or None (not stored, or the cache is off)."""
        path = entry_path(kind, self.dataset_sha256, key)
        if not self.enabled or not self.storage.exists(path):
            return None
        entry = torch.load(io.BytesIO(self.storage.read_bytes(path)), map_location="cpu", weights_only=True)
        if entry.get("key") != key or entry.get("kind") != kind:
            return None  # a file that is not what its name says is not used
        self.reused[kind] = {"key": key, "trained_by": entry["trained_by"]}
        return entry["state"]

    def store(self, kind: str, key: str, state: dict[str, Any]) -> None:
        if not self.enabled:
            return
        buffer = io.BytesIO()
        torch.save({"kind": kind, "key": key, "trained_by": self.run_id, "state": state}, buffer)
        self.storage.write_bytes(entry_path(kind, self.dataset_sha256, key), buffer.getvalue())


def random_state(generators: dict[str, torch.Generator], numpy_rng, device: torch.device) -> dict[str, Any]:
    """The random streams a run continues from: its torch generators, torch's global ones (the CPU's, and the
    GPU's when it computes on one), its numpy one."""
    return {"generators": {name: g.get_state() for name, g in generators.items()},
            "torch": rng_state(device), "numpy": json.dumps(numpy_rng.bit_generator.state)}


def restore_random_state(state: dict[str, Any], generators: dict[str, torch.Generator], numpy_rng,
                         device: torch.device) -> None:
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])
    set_rng_state(state["torch"], device)
    numpy_rng.bit_generator.state = json.loads(state["numpy"])
