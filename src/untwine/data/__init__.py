"""Datasets with ground-truth factors: ``load(name, source, root) -> GroundTruthData``.

Importing the package registers every dataset module imported below (the registry's members)."""

from .custom import from_arrays, from_folder
from .protocol import GroundTruthData, to_float, train_val_split
from ._files import data_root
from .cache import cache_dir
from .registry import DatasetSpec, get, load, names, register
from . import color_dsprites, dsprites, mnist, mpi3d, noisy_dsprites, scream_dsprites, shapes3d  # noqa: F401, E402
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
