"""Dataset ids (naming rules) and the JSON encoding of gymnasium spaces."""

import gymnasium as gym
import numpy as np
import pytest

from bench.datasets.ids import DatasetId
from bench.datasets.spaces import space_from_json, space_to_json
from bench.errors import InvalidInput


@pytest.mark.parametrize("text, namespace, name, version", [
    ("d4rl/hopper-random-v1", "d4rl", "hopper-random", 1),
    ("d4rl/hopper-random", "d4rl", "hopper-random", None),
    ("metaworld/drawer-open/expert-v12", "metaworld/drawer-open", "expert", 12),
    ("lab/sawyer_drawer.v2", "lab", "sawyer_drawer.v2", None),
])
def test_parse_valid_ids(text, namespace, name, version):
    parsed = DatasetId.parse(text)
    assert (parsed.namespace, parsed.name, parsed.version) == (namespace, name, version)
    assert str(parsed) == text


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("hopper", "no namespace"),
    ("d4rl//hopper", "(empty)"),
    ("d4rl/../hopper", "'..'"),
    ("./hopper", "'.'"),
    ("d4rl/-hopper", "'-hopper'"),
    ("d4rl/hop per", "'hop per'"),
    ("d4rl/hopper-v0", "versions start at v1"),
    ("d4rl/hopper-v1-v2", "may not end in -vN"),
    ("a/b/c/d/e/f", "deeper"),
    ("d4rl/" + "x" * 65, "at most 64"),
])
def test_parse_invalid_ids_names_the_problem(text, fragment):
    with pytest.raises(InvalidInput) as info:
        DatasetId.parse(text)
    assert fragment in str(info.value)


SPACES = [
    gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
    gym.spaces.Box(low=np.array([-np.inf, 0.0]), high=np.array([np.inf, 5.0]), dtype=np.float64),
    gym.spaces.Box(0, 255, shape=(8, 8, 3), dtype=np.uint8),
    gym.spaces.Discrete(5, start=2),
    gym.spaces.MultiDiscrete([3, 4]),
    gym.spaces.MultiBinary(4),
    gym.spaces.Dict({"observation": gym.spaces.Box(-np.inf, np.inf, (10,)),
                     "desired_goal": gym.spaces.Box(-1, 1, (2,)),
                     "nested": gym.spaces.Dict({"a": gym.spaces.Discrete(2)})}),
    gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Box(0, 1, (1,))]),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_space_json_round_trip(space):
    import json

    encoded = json.loads(json.dumps(space_to_json(space)))  # must be plain JSON
    assert space_from_json(encoded) == space
