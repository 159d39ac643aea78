"""Algorithm configs: typed dataclasses whose fields carry their defaults' sources, per-domain presets, overrides.

A config value is resolved in layers: the dataclass default (the paper's), then the preset for the
dataset's domain (the IQL paper's per-domain settings, say), then a registered variant's values,
then the user's ``--set key=value``. Every field says where its default comes from, so ``bench
algorithms show`` can print it (``--dataset ID``: resolved for that dataset, each value's origin).

The preset rule: a preset tunes the algorithm that declares it. A subclass that sets its own default
for a field keeps it (``ptp-state`` keeps OGBench's GCIQL expectile although IQL's presets exist),
and a domain gets a preset only from a source written for it.
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


# Environment families -> the domain whose presets apply (IQL's paper tunes per domain). D4RL's
# Kitchen and Adroit ("kitchen-adroit") are the IQL paper's manipulation settings; Meta-World, Fetch
# and the tabletop are other tasks (scripted data, goals) and use each algorithm's own defaults;
# OGBench is goal-conditioned ("goal-reaching": OGBench's own GCIQL settings).
DOMAINS = {"mujoco": "locomotion", "pointmaze": "maze", "antmaze": "maze", "kitchen": "kitchen-adroit",
           "adroit": "kitchen-adroit", "metaworld": "manipulation", "fetch": "manipulation",
           "tabletop": "manipulation", "insertion": "manipulation", "ogbench": "goal-reaching"}


COMPILE_AUTO_UPDATES = 20_000


def domain_of(family: str | None) -> str | None:
    return DOMAINS.get(family or "")


def family_of(env_name: str | None) -> str | None:
    """An environment's family: the part of its catalogue name before the first '/' (``tabletop/drawer``)."""
    return env_name.split("/")[0] if env_name and "/" in env_name else None


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
    # A constant factor on every reward, after reward_transform (rlkit's and SAC's reward_scale): rewards
    # far below 1 per step (an image distance) leave SAC's entropy term in charge.
    reward_scale: float = param(1.0, "SAC (Haarnoja et al., 2018) and rlkit: reward_scale, 1 = rewards as they are")
    # What the learner reads of a dict observation: the keys named, or every key; the visual setting of
    # ch. 6.3.2.1 gives the policy the 32 x 32 image alone (a controller still reads the whole observation).
    observation_keys: tuple[str, ...] = param((), "dissertation ch. 6.3.2.1: the visual policy sees the image "
                                              "only; empty = every key of the observation")
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
    # Residual RL (dissertation ch. 5-6, eq. 23): the environment executes u = pi_H(s) + pi_theta(s), a
    # hand-designed controller's action plus the policy's, and the policy learns the residual only.
    controller: str = param("none", "dissertation ch. 5-6: pi_H, a controller of bench.evaluation.controllers "
                            "(p-controller, scripted, run:ID a finished run's policy); none = the policy acts alone")
    controller_gains: tuple[float, ...] = param((), "p-controller's k_p; empty = ch. 6.3's [1, 1, 0.3]")

    # Presets per domain, applied over the defaults before user overrides: {"maze": {...}}.
    PRESETS: typing.ClassVar[dict[str, dict[str, Any]]] = {}
    PRESET_SOURCES: typing.ClassVar[dict[str, str]] = {}
    # Fields the offline phase never reads (online practice, planning); a class lists its own, and
    # ``offline_fields`` collects them over the class's bases. The offline policy cache keys on the rest.
    OFFLINE_INDEPENDENT: typing.ClassVar[tuple[str, ...]] = ("updates_per_env_step", "online_fraction")

    def replay_batch(self) -> tuple[int, float | None]:
        """Rows per update and the online share of them (``Replay``'s ``online_fraction``)."""
        return self.batch_size, self.online_fraction

    def demonstration_start_share(self) -> float:
        """The share of online episodes that start from a demonstration's state (ch. 4.4.4); none by default."""
        return 0.0

    def validate(self) -> None:
        """Refuse combinations of values the algorithm cannot run (a class adds its own checks)."""


def actor_warmup_param() -> Any:
    """The ``actor_warmup`` field of the off-policy actor-critics (TD3, SAC): one meaning, one text."""
    return param(0, "updates before the actor first moves while the critic learns (0: from the first); residual "
                    "RL's critic burn-in (Silver et al., 2018) sets it")


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
        if origin is tuple and args and args[0] is str:  # names: "image" or "image,state"
            return tuple(part.strip() for part in text.strip("()[] ").split(",") if part.strip())
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


def preset_for(config_cls: type[AlgorithmConfig], domain: str | None) -> dict[str, Any]:
    """The domain's preset values that apply to ``config_cls``: those of fields it does not set itself.

    ``PRESETS`` is inherited; a field that a subclass of the declaring class declares again (with its
    own default and source) keeps the subclass's value, never the other domain's."""
    preset = config_cls.PRESETS.get(domain or "", {})
    if not preset:
        return {}
    mro = config_cls.__mro__
    owner = next(i for i, cls in enumerate(mro) if "PRESETS" in vars(cls))
    own = {name for cls in mro[:owner] for name in vars(cls).get("__annotations__", {})}
    return {key: value for key, value in preset.items() if key not in own}


def resolve_config(config_cls: type[AlgorithmConfig], domain: str | None = None,
                   overrides: dict[str, Any] | None = None) -> AlgorithmConfig:
    """Defaults, then the domain preset, then overrides (strings from the CLI are parsed by field type)."""
    hints = typing.get_type_hints(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = preset_for(config_cls, domain)
    for key, value in (overrides or {}).items():
        if key not in names:
            raise InvalidInput(f"unknown config field {key!r} for {config_cls.__name__}; "
                               f"known: {', '.join(sorted(names))}")
        values[key] = _coerce(value, hints[key], key) if isinstance(value, str) else value
    for key, value in values.items():  # JSON gives lists where a field is a tuple
        if typing.get_origin(hints[key]) is tuple and isinstance(value, list):
            values[key] = tuple(value)
    config = config_cls(**values)
    validate_relabeling(config)
    config.validate()
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
    if not config.reward_scale > 0:
        raise InvalidInput(f"reward_scale must be > 0, got {config.reward_scale}")
    if config.compile not in ("auto", "on", "off"):
        raise InvalidInput(f"compile must be auto, on or off, got {config.compile!r}")
    if config.controller_gains and config.controller != "p-controller":
        raise InvalidInput("controller_gains are the p-controller's k_p: set controller=p-controller")
    if config.online_fraction is not None and not 0.0 <= config.online_fraction <= 1.0:
        raise InvalidInput(f"online_fraction must be in [0, 1] or none, got {config.online_fraction}")


def offline_fields(config: AlgorithmConfig) -> dict[str, Any]:
    """The config values the offline phase depends on: every field but those a class in its MRO declares
    ``OFFLINE_INDEPENDENT``."""
    skip = {name for cls in type(config).__mro__ for name in vars(cls).get("OFFLINE_INDEPENDENT", ())}
    return {key: value for key, value in config_to_json(config).items() if key not in skip}


def config_to_json(config: AlgorithmConfig) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(config).items()}


def config_from_json(config_cls: type[AlgorithmConfig], data: dict[str, Any]) -> AlgorithmConfig:
    return resolve_config(config_cls, None, data)


def config_hash(algorithm: str, config: AlgorithmConfig) -> str:
    canonical = json.dumps({"algorithm": algorithm, "config": config_to_json(config)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def value_origins(config_cls: type[AlgorithmConfig], domain: str | None, variant: str,
                  variant_values: dict[str, Any]) -> dict[str, str]:
    """Where each resolved value comes from: the registered variant, the domain's preset, or the field's own source."""
    preset = preset_for(config_cls, domain)
    origins = {}
    for field in dataclasses.fields(config_cls):
        if field.name in variant_values:
            origins[field.name] = f"{variant} variant"
        elif field.name in preset:
            origins[field.name] = f"preset {domain}: {config_cls.PRESET_SOURCES.get(domain or '', '')}"
        else:
            origins[field.name] = field.metadata.get("source", "")
    return origins


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
