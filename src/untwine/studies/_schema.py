"""The shape checks of a study file's tables: each raises :class:`StudyError` naming the file
(``where``), the key (``label``) and what it must be. Types are Python's or ``typing``'s (unions,
``Optional``), as :class:`~untwine.train.RunConfig` annotates its fields."""

from __future__ import annotations

import sys
import typing
from typing import Any

from ..errors import UserError


class StudyError(UserError):
    """A study file is invalid; the message names the file, the key and the fix."""


def as_table(v: Any, where: str, label: str) -> dict:
    if not isinstance(v, dict):
        raise StudyError(f"{where}: {label} must be a table, got {type(v).__name__}")
    return v


def check_keys(d: dict, allowed: set[str], where: str, label: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise StudyError(
            f"{where}: unknown key {unknown[0]!r} in {label}; allowed: {', '.join(sorted(allowed))}"
        )


def check_types(d: dict, types: dict[str, type], where: str, label: str) -> None:
    for k, t in types.items():
        if k in d and not type_ok(d[k], t):
            raise StudyError(
                f"{where}: {label}.{k} must be {type_name(t)}, got {d[k]!r} ({type(d[k]).__name__})"
            )


def list_of(v: Any, t: type, where: str, label: str, *, allow_empty: bool = False) -> list:
    if not isinstance(v, list) or not all(type_ok(x, t) for x in v):
        raise StudyError(f"{where}: {label} must be a list of {type_name(t)}, got {v!r}")
    if not v and not allow_empty:
        raise StudyError(f"{where}: {label} is empty; give at least one value")
    return list(v)


def type_ok(v: Any, t: Any) -> bool:
    origin = typing.get_origin(t)
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is _union_type()):
        return any(type_ok(v, a) for a in typing.get_args(t))
    if origin is not None:
        t = origin
    if t is type(None):
        return v is None
    if t is Any:
        return True
    if t is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if isinstance(t, type):
        return isinstance(v, t)
    return True


def _union_type() -> Any:
    import types

    return getattr(types, "UnionType", None)


def type_name(t: Any) -> str:
    args = typing.get_args(t)
    if args:
        return " or ".join(type_name(a) for a in args if a is not type(None))
    origin = typing.get_origin(t) or t
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            list: "a list", dict: "a table"}.get(origin, getattr(origin, "__name__", str(origin)))
