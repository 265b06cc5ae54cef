"""Datasets with ground-truth factors: ``load(name, source, root) -> GroundTruthData``."""

from .custom import from_arrays, from_folder
from .protocol import GroundTruthData, to_float, train_val_split
from .registry import DatasetSpec, cache_dir, data_root, get, load, names, register
from .sampler import BatchSampler

__all__ = [
    "BatchSampler",
    "DatasetSpec",
    "GroundTruthData",
    "cache_dir",
    "data_root",
    "from_arrays",
    "from_folder",
    "get",
    "load",
    "names",
    "register",
    "to_float",
    "train_val_split",
]
