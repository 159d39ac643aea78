"""Gymnasium spaces to and from plain JSON, so manifests describe their data without pickles.

Encoding (documented in docs/format.md):
  Box            {"type": "Box", "dtype": "float32", "shape": [...], "low": L, "high": H}
                 L and H are a number when uniform, else a nested list; infinities are the
                 strings "inf" / "-inf" (JSON has no infinity).
  Discrete       {"type": "Discrete", "n": n, "start": s}
  MultiDiscrete  {"type": "MultiDiscrete", "nvec": [...], "dtype": ...}
  MultiBinary    {"type": "MultiBinary", "n": n or [...]}
  Dict           {"type": "Dict", "spaces": {key: space, ...}}   (key order kept)
  Tuple          {"type": "Tuple", "spaces": [space, ...]}
"""

from __future__ import annotations

import json

from typing import Any

import gymnasium as gym
import numpy as np

from bench.errors import InvalidInput


def _encode_number(x: float | int) -> float | int | str:
    if isinstance(x, (float, np.floating)):
        if np.isposinf(x):
            return "inf"
        if np.isneginf(x):
            return "-inf"
        return float(x)
    return int(x)


def _encode_bound(bound: np.ndarray) -> Any:
    flat = bound.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return _encode_number(flat[0].item())
    return np.vectorize(_encode_number, otypes=[object])(bound).tolist()


def _decode_bound(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    def number(x: Any) -> float:
        return {"inf": np.inf, "-inf": -np.inf}.get(x, x) if isinstance(x, str) else x

    if isinstance(value, list):
        array = np.array(np.vectorize(number, otypes=[np.float64])(np.array(value, dtype=object)))
    else:
        array = np.full(shape, number(value), dtype=np.float64)
    return array.astype(dtype)


def space_to_json(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "dtype": np.dtype(space.dtype).name,
            "shape": list(space.shape),
            "low": _encode_bound(space.low),
            "high": _encode_bound(space.high),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "dtype": np.dtype(space.dtype).name}
    if isinstance(space, gym.spaces.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": list(n) if isinstance(n, (tuple, list, np.ndarray)) else int(n)}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_json(sub) for key, sub in space.spaces.items()}}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(sub) for sub in space.spaces]}
    raise InvalidInput(f"space {space!r} cannot be stored: supported are Box, Discrete, MultiDiscrete, "
                       "MultiBinary, Dict and Tuple")


def space_from_json(data: dict[str, Any]) -> gym.Space:
    kind = data.get("type")
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        shape = tuple(data["shape"])
        return gym.spaces.Box(
            low=_decode_bound(data["low"], shape, dtype),
            high=_decode_bound(data["high"], shape, dtype),
            shape=shape,
            dtype=dtype,
        )
    if kind == "Discrete":
        return gym.spaces.Discrete(data["n"], start=data.get("start", 0))
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(data["nvec"], dtype=np.dtype(data.get("dtype", "int64")))
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return gym.spaces.Dict({key: space_from_json(sub) for key, sub in data["spaces"].items()})
    if kind == "Tuple":
        return gym.spaces.Tuple([space_from_json(sub) for sub in data["spaces"]])
    raise InvalidInput(f"unknown space type {kind!r} in manifest")


def describe_space(data: dict[str, Any], indent: str = "") -> str:
    """A stored space as people write it: ``Box(-inf, inf, (11,), float32)``; a Dict's keys one per line, indented."""
    kind = data.get("type")
    if kind == "Box":
        def bound(value: Any) -> str:
            if isinstance(value, list):  # per-dimension bounds: their range
                flat = np.asarray(value, dtype=object).reshape(-1)
                numbers = [float(v) for v in flat]
                return f"[{min(numbers):g}..{max(numbers):g}]" if min(numbers) != max(numbers) else f"{numbers[0]:g}"
            return f"{float(value):g}"
        return f"Box({bound(data['low'])}, {bound(data['high'])}, {tuple(data['shape'])}, {data['dtype']})"
    if kind == "Discrete":
        return f"Discrete({data['n']}" + (f", start={data['start']})" if data.get("start") else ")")
    if kind in ("MultiDiscrete", "MultiBinary"):
        return f"{kind}({data.get('nvec', data.get('n'))})"
    if kind in ("Dict", "Tuple"):
        items = data["spaces"].items() if kind == "Dict" else enumerate(data["spaces"])
        inner = indent + "  "
        return kind + "".join(f"\n{inner}{key}: {describe_space(sub, inner)}" for key, sub in items)
    return json.dumps(data)


def infer_box(array: np.ndarray) -> gym.spaces.Box:
    """An unbounded Box (bounded to the dtype's range for integers) matching per-row data."""
    shape = array.shape[1:]
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        return gym.spaces.Box(info.min, info.max, shape=shape, dtype=array.dtype)
    if array.dtype == np.bool_:
        return gym.spaces.Box(0, 1, shape=shape, dtype=np.int8)
    return gym.spaces.Box(-np.inf, np.inf, shape=shape, dtype=array.dtype)
