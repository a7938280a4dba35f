"""Typed data errors: a data file or task sequence that cannot be used, found while loading it.

The command line tells them from configuration errors by their type (``hatcl: data error: ...``):
they are raised after the configuration was checked, when the run reads its data. Each is also
the built-in exception a caller would expect (``ValueError``, ``FileNotFoundError``,
``TypeError``), so ``except ValueError`` keeps catching them.
"""

from __future__ import annotations


class DataError(Exception):
    """A problem with the data themselves (the message names the file or task and the problem)."""


class DataValueError(DataError, ValueError):
    """Data that are damaged, truncated or inconsistent (e.g. a label out of range)."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A dataset file that is not where it is looked for (the message says where to put it)."""


class DataTypeError(DataError, TypeError):
    """Data of the wrong kind (e.g. a task sequence returning something else than a list)."""
