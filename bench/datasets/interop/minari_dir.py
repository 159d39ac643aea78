"""Minari dataset directories (``<dataset>/data/metadata.json`` + HDF5 or Arrow episodes), via Minari itself.

Reading uses Minari's storage classes, so both backends and Dict observation spaces work as
Minari defines them. Writing produces a directory that ``minari.load_dataset`` opens when
``MINARI_DATASETS_PATH`` points at its parent; its name (``name-vN``) is the Minari dataset id.
Images are written losslessly (no JPEG).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

import gymnasium as gym
import h5py

from bench.datasets.interop.guards import check_hdf5, json_text
from bench.datasets.interop.source import SourceData
from bench.datasets.trajectories import EpisodeParts, Trajectories, flatten_tree, map_tree, unflatten_tree
from bench.errors import InvalidInput
from bench.platform.environments import import_registering_module
from bench.platform.settings import ImportLimits


def _data_dir(path: Path) -> Path:
    return path if path.name == "data" else path / "data"


def detect(path: Path) -> bool:
    return path.is_dir() and (_data_dir(path) / "metadata.json").is_file()


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], dict):
        return {key: _concat([part[key] for part in parts]) for key in parts[0]}
    if isinstance(parts[0], tuple):
        raise InvalidInput("Tuple spaces in Minari datasets are not supported yet")
    return np.concatenate([np.asarray(part) for part in parts])


def _check_files(path: Path, data_dir: Path, limits: ImportLimits) -> dict[str, Any]:
    """The metadata, and every HDF5 file walked by the guards before Minari opens any of them (read_source has
    checked the directory, its Parquet and its Arrow files)."""
    metadata = json_text((data_dir / "metadata.json").read_bytes(), "metadata.json")
    for key in ("env_spec", "eval_env_spec"):
        if metadata.get(key) is not None:
            json_text(metadata[key], f"metadata.json {key}")
    for key in ("description", "algorithm_name", "code_permalink", "dataset_id", "minari_version"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            raise InvalidInput(f"metadata.json {key} must be text, got {type(metadata[key]).__name__}")
    for key in ("author", "author_email", "requirements"):  # Minari writes sets as lists
        value = metadata.get(key)
        if value is not None and not (isinstance(value, str) or
                                      (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise InvalidInput(f"metadata.json {key} must be text or a list of texts, got {type(value).__name__}")
    for file in sorted(data_dir.rglob("*")):
        if file.suffix.lower() in (".hdf5", ".h5"):
            try:
                with h5py.File(file, "r") as handle:
                    check_hdf5(handle, limits, file.name, file.stat().st_size)
            except OSError as exc:
                raise InvalidInput(f"{file.name}: not a readable HDF5 file ({type(exc).__name__})") from None
    return metadata


def read(path: Path, limits: ImportLimits = ImportLimits()) -> SourceData:
    """The dataset's episodes: in memory, or, when its steps decode to more than ``limits.part_bytes`` (from the
    spaces and metadata's step count), as EpisodeParts of consecutive episodes read one range at a time."""
    from minari.dataset.minari_storage import MinariStorage

    data_dir = _data_dir(path)
    metadata = _check_files(path, data_dir, limits)
    try:
        storage = MinariStorage.read(data_dir)
        total = int(metadata.get("total_episodes", storage.total_episodes))
        row_bytes = _space_bytes(storage.observation_space) + _space_bytes(storage.action_space) + 10
        decoded = int(storage.total_steps) * row_bytes
        if total and decoded > limits.part_bytes:
            per_part = max(1, int(limits.part_bytes // max(1, decoded // total)))
            # Infos kept are those every episode has: one pass over the episodes, a range at a time, to learn them.
            info_keys, seeded = None, False
            for start in range(0, total, per_part):
                indices = range(start, min(start + per_part, total))
                for episode in storage.get_episodes(indices):
                    keys = set(flatten_tree(episode["infos"])) if episode.get("infos") else set()
                    info_keys = keys if info_keys is None else info_keys & keys
                seeded = seeded or any(meta.get("seed") is not None for meta in storage.get_episode_metadata(indices))
            data: Trajectories | EpisodeParts = EpisodeParts(
                lambda: _parts(path, storage, total, per_part, (info_keys, seeded)))
            data.observation_space, data.action_space = storage.observation_space, storage.action_space
        else:
            data = _episodes_to_trajectories(path, storage, range(total))
    except InvalidInput:
        raise
    except Exception as exc:  # Minari raises assorted errors for broken files; name the dataset
        raise InvalidInput(f"{path}: not a readable Minari dataset ({type(exc).__name__}: {exc})") from exc
    if isinstance(storage.action_space, gym.spaces.Dict):
        raise InvalidInput(f"{path}: Dict action spaces are not supported yet")
    env = None
    if metadata.get("env_spec"):
        spec = json_text(metadata["env_spec"], "metadata.json env_spec")
        if not isinstance(spec.get("id"), str) or not isinstance(spec.get("kwargs", {}), dict):
            raise InvalidInput("metadata.json env_spec needs an 'id' string and 'kwargs' object")
        env = {"id": spec["id"], "kwargs": spec.get("kwargs", {}), "source": "minari env_spec"}
    # Kept whole (the env specs as Minari's own JSON text) so that an export gives them back unchanged.
    source_metadata = {key: metadata[key] for key in PASSED_THROUGH if metadata.get(key) is not None}
    return SourceData(data, "minari", [], env=env, description=metadata.get("description"),
                      source_metadata=source_metadata)


def _space_bytes(space: gym.Space) -> int:
    """Bytes of one value of a (possibly nested Dict) space."""
    if isinstance(space, gym.spaces.Dict):
        return sum(_space_bytes(sub) for sub in space.spaces.values())
    return int(np.prod(space.shape or (1,), dtype=np.int64)) * np.dtype(space.dtype or np.float32).itemsize


def _parts(path: Path, storage, total: int, per_part: int, whole: tuple[set[str], bool]):
    try:
        for start in range(0, total, per_part):
            yield _episodes_to_trajectories(path, storage, range(start, min(start + per_part, total)), whole)
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"{path}: not a readable Minari dataset ({type(exc).__name__}: {exc})") from exc


def _episodes_to_trajectories(path: Path, storage, indices: range,
                              whole: tuple[set[str], bool] | None = None) -> Trajectories:
    """Episodes ``indices`` as trajectories: the infos every episode has, and a seed column where any episode
    has a seed. ``whole`` (the info keys, whether any seed) says so for the whole dataset when ``indices``
    are one part of it."""
    episodes = list(storage.get_episodes(indices))
    episode_metadata = list(storage.get_episode_metadata(indices))
    if not episodes:
        raise InvalidInput(f"{path}: the dataset is empty")
    lengths = np.array([len(ep["rewards"]) for ep in episodes], dtype=np.int64)
    info_parts = [flatten_tree(ep["infos"]) if ep.get("infos") else {} for ep in episodes]
    keys = set(info_parts[0]) if whole is None else whole[0]
    infos = {key: np.concatenate([part[key] for part in info_parts]) for key in sorted(keys)
             if all(key in part for part in info_parts)}
    attrs: dict[str, Any] = {}
    seeds = [meta.get("seed") for meta in episode_metadata]
    if any(seed is not None for seed in seeds) if whole is None else whole[1]:
        attrs["seed"] = np.array([-1 if seed is None else int(seed) for seed in seeds], dtype=np.int64)
    return Trajectories(
        observations=_concat([ep["observations"] for ep in episodes]),
        actions=_concat([ep["actions"] for ep in episodes]),
        rewards=np.concatenate([ep["rewards"] for ep in episodes]),
        terminations=np.concatenate([ep["terminations"] for ep in episodes]),
        truncations=np.concatenate([ep["truncations"] for ep in episodes]),
        lengths=lengths,
        infos=infos,
        episode_attrs=attrs,
        observation_space=storage.observation_space,
        action_space=storage.action_space,
    )


_MINARI_NAME = re.compile(r"^[A-Za-z0-9_.\-]+-v\d+$")
PASSED_THROUGH = ("dataset_id", "minari_version", "algorithm_name", "author", "author_email", "code_permalink",
                  "requirements", "data_format", "env_spec", "eval_env_spec")


def env_spec_json(env: dict[str, Any]) -> str:
    """A bench environment reference as the EnvSpec JSON that ``minari``'s ``recover_environment()`` makes."""
    import_registering_module(env.get("module"))
    spec = gym.spec(env["id"])
    return dataclasses.replace(spec, kwargs={**spec.kwargs, **env.get("kwargs", {})}).to_json()


def _exported_metadata(dataset, notes: list[str]) -> dict[str, Any]:
    """What Minari's metadata.json says beyond the arrays: the environment (the source's spec, else the version's
    environment), and who made the data with what; nothing is invented where the source said nothing."""
    manifest = dataset.manifest
    source = (manifest.get("provenance") or {}).get("source_metadata") or {}
    metadata: dict[str, Any] = {}
    env = manifest.get("env")
    # The source's own spec, unless the import named another environment (--env): then the version's is the truth.
    if isinstance(source.get("env_spec"), str) and (env is None or env.get("source") == "minari env_spec"):
        metadata["env_spec"] = source["env_spec"]
    elif env:
        try:
            metadata["env_spec"] = env_spec_json(env)
        except Exception as exc:  # not registered here, or kwargs Minari cannot serialize
            notes.append(f"env_spec not written ({type(exc).__name__}: {exc}); recover_environment() will not work")
    if isinstance(source.get("eval_env_spec"), str):
        metadata["eval_env_spec"] = source["eval_env_spec"]
    algorithm = source.get("algorithm_name", source.get("algorithm"))  # D4RL's metadata/algorithm
    if isinstance(algorithm, str):
        metadata["algorithm_name"] = algorithm
    if isinstance(source.get("code_permalink"), str):
        metadata["code_permalink"] = source["code_permalink"]
    for key in ("author", "author_email"):
        if source.get(key):
            metadata[key] = {source[key]} if isinstance(source[key], str) else set(source[key])
    if isinstance(source.get("requirements"), list):
        metadata["requirements"] = list(source["requirements"])
    return metadata


def write(dataset, out: Path) -> list[str]:
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    if not _MINARI_NAME.match(out.name):
        raise InvalidInput(f"{out}: a Minari dataset directory is named name-vN (its Minari id), e.g. hopper-random-v1")
    if out.exists():
        raise InvalidInput(f"{out} already exists; choose a new directory")
    notes = []
    # Infos aligned with steps (the manifest says so for a version read on demand, which may not fit in memory).
    step_infos = [path[len("infos/"):] for path, described in dataset.manifest["arrays"].items()
                  if path.startswith("infos/") and described.get("rows") != "observations"]
    if step_infos:
        notes.append(f"per-step infos not written (Minari's infos are per observation): {', '.join(step_infos)}")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    storage = MinariStorage.new(partial / "data", observation_space=dataset.observation_space,
                                action_space=dataset.action_space, data_format="hdf5", jpeg_encoding=False)

    def buffers():
        for episode in dataset.episodes():  # one range of episodes in memory at a time for a lazy version
            infos = {key: value for key, value in episode.infos.items() if key not in step_infos}
            seed = episode.attrs.get("seed")
            seed = None if seed is None or int(seed) < 0 else int(seed)
            yield EpisodeBuffer(
                id=episode.index, seed=seed,
                observations=map_tree(np.asarray, episode.observations), actions=episode.actions,
                rewards=episode.rewards, terminations=episode.terminations, truncations=episode.truncations,
                infos=unflatten_tree(infos) or None,
            )

    storage.update_episodes(buffers())
    storage.update_metadata({
        "dataset_id": out.name,
        "minari_version": minari.__version__,
        "description": dataset.manifest.get("description") or f"Exported from bench {dataset.id}",
        **_exported_metadata(dataset, notes),
    })
    partial.rename(out)
    return notes

