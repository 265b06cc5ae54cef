"""Dataset registry: CLI name -> :class:`DatasetSpec`. A new dataset is one file that calls
``register``, plus its import in ``untwine/data/__init__.py`` (importing the package registers
every dataset there)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UnknownNameError, check_choice, choice_message
from ._files import data_root
from .cache import cache_dir
from .protocol import GroundTruthData


@dataclass(frozen=True)
class DatasetSpec:
    """What the registry knows about a dataset without loading it.

    ``load(source, root)`` returns the dataset; ``source=None`` picks the first present source in
    ``sources`` order (official files before offline fallbacks). ``present(source, root)`` says
    whether that source can be loaded offline now. ``prepare`` builds caches (default: load).
    ``download`` fetches official files (fails offline with instructions).
    """

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    sources: tuple[str, ...]
    load: Callable[[str | None, Path | None], GroundTruthData]
    present: Callable[[str, Path | None], bool]
    description: str = ""
    prepare: Callable[[str | None, Path | None], GroundTruthData] | None = None
    download: Callable[[Path | None], Path] | None = None
    extra: dict = field(default_factory=dict)

    def check_source(self, source: str | None) -> None:
        """Raise :class:`UserError` naming the choices if ``source`` is not one of ``sources``
        (``None``, the first present source, is always accepted)."""
        if source is not None:
            check_choice(source, self.sources, "source", where=self.name)


_REGISTRY: dict[str, DatasetSpec] = {}
# Other spellings users type (the file is called 3dshapes.h5; Python names can't start with a digit).
ALIASES: dict[str, str] = {"3dshapes": "shapes3d", "3d-shapes": "shapes3d", "shapes-3d": "shapes3d"}


def register(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> DatasetSpec:
    key = name.lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise UnknownNameError(choice_message(name, sorted(_REGISTRY), "dataset")
                               + " (or build your own with untwine.data.from_arrays / from_folder)")
    return _REGISTRY[key]


def names() -> list[str]:
    return sorted(_REGISTRY)


# The last few datasets loaded in this process, so a sweep's train -> evaluate -> report steps
# unpack a multi-GB dataset once, not three times. Datasets are read-only; the key includes the
# directories looked in, so a changed $UNTWINE_CACHE / $UNTWINE_DATA loads afresh.
_LOADED: dict[tuple, GroundTruthData] = {}
_KEEP = 2


def load(
    name: str, source: str | None = None, root: str | os.PathLike | None = None, *, reuse: bool = True
) -> GroundTruthData:
    """Load dataset ``name`` from ``source`` (``None``: the first of its
    ``sources`` that is present; official files come before offline fallbacks).

    With ``reuse`` (default) a dataset already loaded in this process with the same arguments and
    directories is returned again instead of being read from disk.
    """
    spec = get(name)
    spec.check_source(source)
    path = Path(root).expanduser() if root is not None else None
    key = (spec.name, source, str(path), str(cache_dir()), str(data_root()))
    if reuse and key in _LOADED:
        return _LOADED[key]
    data = spec.load(source, path)
    if reuse:
        _LOADED.pop(key, None)
        _LOADED[key] = data
        while len(_LOADED) > _KEEP:
            _LOADED.pop(next(iter(_LOADED)))
    return data
