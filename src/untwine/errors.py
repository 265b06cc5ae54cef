"""The errors a user can fix, shared by every layer (this module imports nothing of untwine).

The ``untwine`` command prints a :class:`UserError` as one line, ``untwine COMMAND: error:
MESSAGE`` (exit status 2); any other exception is a bug and keeps its traceback
(:func:`untwine.cli.main`). So raise a :class:`UserError` (or one of its subclasses) where input
from the user is wrong: a flag, a config, study or hyperparameter value, an unknown name, a file the
user named or must place, a damaged file the user can restore or delete. The message says what is
wrong and how to fix it.

Every class here is a ``ValueError``, as these errors were before this module existed, and the
subclasses are also the built-in error of their kind (``FileNotFoundError``, ``KeyError``,
``ImportError``), so code and tests that catch those still do.
"""

from __future__ import annotations

import errno
from typing import Iterable


class UserError(ValueError):
    """Input the user can fix; the message says what is wrong and how."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named, or must place (a dataset's official file), is not there."""


class UnknownNameError(UserError, KeyError):
    """An unknown name (a dataset, a pretrained model); printed as its message, unquoted."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingExtraError(ImportError, UserError):
    """An optional package is not installed; the message names the extra to install."""


class DiskFullError(UserError):
    """The disk filled up while writing a file; the message says what is intact."""

    errno = errno.ENOSPC


def choice_message(value: object, choices: Iterable[object], label: str) -> str:
    """The one wording of an unknown name among fixed choices: ``unknown LABEL 'X'; choose one of A, B, C``."""
    return f"unknown {label} {value!r}; choose one of {', '.join(map(str, choices))}"


def check_choice(value: object, choices: Iterable[object], label: str, error: type[UserError] = UserError,
                 where: str = "") -> object:
    """``value`` if it is one of ``choices``; else ``error`` (a :class:`UserError` or a subclass) with
    :func:`choice_message`'s text, after ``WHERE: `` when given (a study file, a data set)."""
    choices = tuple(choices)
    if value not in choices:
        raise error((f"{where}: " if where else "") + choice_message(value, choices, label))
    return value


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` is the operating system's "no space left" (or "quota exceeded")."""
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
