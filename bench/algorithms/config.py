"""Algorithm configs: typed dataclasses whose fields carry their defaults' sources, per-domain presets, overrides.

A config value is resolved in three layers: the dataclass default (the paper's), then the preset
for the dataset's domain (the IQL paper's per-domain settings, say), then the user's
``--set key=value``. Every field says where its default comes from, so ``bench algorithms show``
can print it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any

from bench.errors import InvalidInput


def param(default: Any, source: str, help: str = "") -> Any:
    """A config field: its default and where that default comes from (paper, code base, or "bench")."""
    if isinstance(default, (list, dict, tuple)):
        return dataclasses.field(default_factory=lambda: default, metadata={"source": source, "help": help})
    return dataclasses.field(default=default, metadata={"source": source, "help": help})


# Environment families -> the domain whose presets apply (IQL's paper tunes per domain).
DOMAINS = {"mujoco": "locomotion", "pointmaze": "maze", "antmaze": "maze", "metaworld": "manipulation",
           "fetch": "manipulation", "ogbench": "manipulation", "tabletop": "manipulation"}


COMPILE_AUTO_UPDATES = 20_000


def domain_of(family: str | None) -> str | None:
    return DOMAINS.get(family or "")


@dataclasses.dataclass
class AlgorithmConfig:
    """Fields every algorithm has. Subclasses add their own and may override these defaults."""

    hidden_dims: tuple[int, ...] = param((256, 256), "CORL / d3rlpy default MLP (2x256)")
    batch_size: int = param(256, "IQL paper, appendix (256); AWAC uses 1024")
    discount: float = param(0.99, "standard for D4RL-style tasks")
    normalize_observations: bool = param(True, "bench: standardize with the dataset's mean/std (CORL default)")
    # Reward transform applied to offline and online rewards alike (IQL paper, appendix):
    # "returns" scales by 1000 / (max - min episode return of the dataset), "minus_one" shifts by -1.
    reward_transform: str = param("none", "IQL paper: per-domain (locomotion 'returns', mazes 'minus_one')")
    # torch.compile of the losses: ~+20% updates/s on long runs for ~15 s of compilation; "auto"
    # turns it on for runs of at least COMPILE_AUTO_UPDATES updates.
    compile: str = param("auto", "bench: 'auto' compiles runs of >= 20,000 updates; 'on' or 'off' to force")
    updates_per_env_step: int = param(1, "one gradient update per online environment step (AWAC, IQL fine-tuning)")
    # Replay mixing online: None samples uniformly over offline + online data (AWAC, Algorithm 5:
    # the buffer is D united with new trajectories); a number fixes the online share of each batch.
    online_fraction: float | None = param(None, "AWAC Algorithm 5: one buffer, D plus new trajectories")
    # Goal relabeling for goal-conditioned data (HER; dissertation ch. 2.4.3, 9.5.2): the share of
    # each batch whose goal is kept, replaced by a future state of the same episode, by its final
    # state, or by a random state from the data. Must sum to 1.
    relabel_keep: float = param(0.2, "VAL, dissertation ch. 9.5.2 (20% kept)")
    relabel_future: float = param(0.5, "HER 'future' strategy; VAL uses 40% future + 40% generative")
    relabel_final: float = param(0.0, "HER 'final' strategy")
    relabel_random: float = param(0.3, "random goals from the data (OGBench GCIQL uses 0.3)")

    # Presets per domain, applied over the defaults before user overrides: {"maze": {...}}.
    PRESETS: typing.ClassVar[dict[str, dict[str, Any]]] = {}
    PRESET_SOURCES: typing.ClassVar[dict[str, str]] = {}


def _coerce(value: str, annotation: Any, name: str) -> Any:
    text = value.strip()
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    try:
        if annotation is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if annotation is int:
            return int(text)
        if annotation is float:
            return float(text)
        if annotation is str:
            return text
        if origin is tuple:
            parts = [p for p in text.strip("()[] ").replace("x", ",").split(",") if p.strip()]
            return tuple(int(p) if args and args[0] is int else float(p) for p in parts)
        if origin in (typing.Union, types.UnionType):
            if text.lower() == "none" and type(None) in args:
                return None
            for arg in args:
                if arg is not type(None):
                    return _coerce(text, arg, name)
    except ValueError:
        pass
    raise InvalidInput(f"--set {name}={value}: expected {getattr(annotation, '__name__', annotation)}")


def resolve_config(config_cls: type[AlgorithmConfig], domain: str | None = None,
                   overrides: dict[str, Any] | None = None) -> AlgorithmConfig:
    """Defaults, then the domain preset, then overrides (strings from the CLI are parsed by field type)."""
    hints = typing.get_type_hints(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = dict(config_cls.PRESETS.get(domain or "", {}))
    for key, value in (overrides or {}).items():
        if key not in names:
            raise InvalidInput(f"unknown config field {key!r} for {config_cls.__name__}; "
                               f"known: {', '.join(sorted(names))}")
        values[key] = _coerce(value, hints[key], key) if isinstance(value, str) else value
    if "hidden_dims" in values:
        values["hidden_dims"] = tuple(values["hidden_dims"])
    config = config_cls(**values)
    validate_relabeling(config)
    return config


def validate_relabeling(config: AlgorithmConfig) -> None:
    names = ["relabel_keep", "relabel_future", "relabel_final", "relabel_random"]
    if hasattr(config, "relabel_proposal"):  # algorithms with a generative model imagine goals too
        names.append("relabel_proposal")
    shares = [getattr(config, name) for name in names]
    if any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
        raise InvalidInput(f"{'/'.join(n.removeprefix('relabel_') for n in names)} relabel shares must be >= 0 "
                           f"and sum to 1, got {shares}")
    if config.reward_transform not in ("none", "returns", "minus_one"):
        raise InvalidInput(f"reward_transform must be none, returns or minus_one, got {config.reward_transform!r}")
    if config.compile not in ("auto", "on", "off"):
        raise InvalidInput(f"compile must be auto, on or off, got {config.compile!r}")
    if config.online_fraction is not None and not 0.0 <= config.online_fraction <= 1.0:
        raise InvalidInput(f"online_fraction must be in [0, 1] or none, got {config.online_fraction}")


def config_to_json(config: AlgorithmConfig) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(config).items()}


def config_from_json(config_cls: type[AlgorithmConfig], data: dict[str, Any]) -> AlgorithmConfig:
    return resolve_config(config_cls, None, data)


def config_hash(algorithm: str, config: AlgorithmConfig) -> str:
    canonical = json.dumps({"algorithm": algorithm, "config": config_to_json(config)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def describe_fields(config_cls: type[AlgorithmConfig]) -> list[dict[str, Any]]:
    """Rows for ``bench algorithms show``: name, type, default, source, and each preset's value."""
    hints = typing.get_type_hints(config_cls)
    rows = []
    defaults = config_cls()
    for field in dataclasses.fields(config_cls):
        value = getattr(defaults, field.name)
        rows.append({
            "name": field.name,
            "type": getattr(hints[field.name], "__name__", str(hints[field.name]).replace("typing.", "")),
            "default": list(value) if isinstance(value, tuple) else value,
            "source": field.metadata.get("source", ""),
            "presets": {domain: preset[field.name] for domain, preset in config_cls.PRESETS.items()
                        if field.name in preset},
        })
    return rows
