"""The dataset registry: versioned trajectory datasets in bench format v1, with importers and exporters."""

from bench.datasets.dataset import Dataset, Episode
from bench.datasets.ids import DatasetId
from bench.datasets.registry import Registry, VersionInfo
from bench.datasets.trajectories import Trajectories

__all__ = ["Dataset", "DatasetId", "Episode", "Registry", "Trajectories", "VersionInfo"]
