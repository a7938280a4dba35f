"""Named registries: every option given by a string is an entry of one of these.

Entries are either objects registered directly (``@REGISTRY.register("name")``) or lazy targets
(``REGISTRY.add("name", "package.module:attribute")``) imported on first use, so that listing the
names (``hatcl list``) never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One registered option: its name, a one-line summary and what it resolves to."""

    name: str
    summary: str
    target: str | None = None
    info: Any = None


class Registry:
    """A mapping from option strings to objects, with errors that list the valid names.

    Args:
        kind: what the entries are (used in error messages), e.g. ``"algorithm"``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._objects: dict[str, Any] = {}

    def add(self, name: str, target: str, *, summary: str = "", info: Any = None) -> None:
        """Register ``target`` (``"module:attribute"``) under ``name``, imported on first use.

        ``info`` is what is known about the entry without importing it (e.g. a data source's
        classes and input shape), read back with :meth:`info`.
        """
        self._check_new(name)
        self._entries[name] = Entry(name=name, summary=summary, target=target, info=info)

    def register(self, name: str, *, summary: str = "") -> Callable[[Any], Any]:
        """Decorator registering the decorated object under ``name``."""

        def decorate(obj: Any) -> Any:
            existing = self._entries.get(name)
            if existing is not None and existing.target != _qualified(obj):
                self._check_new(name)
            doc = summary or _first_line(getattr(obj, "__doc__", None))
            self._entries[name] = Entry(name=name, summary=doc, target=_qualified(obj))
            self._objects[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> Any:
        """The object registered under ``name``; ``ValueError`` listing valid names otherwise."""
        self.validate(name)
        if name not in self._objects:
            module_name, _, attribute = self._entries[name].target.partition(":")
            self._objects[name] = getattr(importlib.import_module(module_name), attribute)
        return self._objects[name]

    def resolve(self, name: object, *, parameter: str | None = None) -> Any:
        """The object registered under ``name``; the ``ValueError`` names ``parameter``.

        One call instead of ``get(validate(name, parameter=...))``.
        """
        return self.get(self.validate(name, parameter=parameter))

    def validate(self, name: object, *, parameter: str | None = None) -> str:
        """Return ``name`` if registered; raise ``ValueError`` naming the valid choices."""
        if not isinstance(name, str) or name not in self._entries:
            what = parameter or self.kind
            raise ValueError(
                f"unknown {what} {name!r}; valid choices are: {', '.join(self.names())}"
            )
        return name

    def info(self, name: object, *, parameter: str | None = None) -> Any:
        """The ``info`` registered with ``name`` (``None`` if none); ``ValueError`` if unknown."""
        return self._entries[self.validate(name, parameter=parameter)].info

    def loaded(self, name: str) -> bool:
        """Whether ``name``'s object is already in memory (registered directly or imported)."""
        return name in self._objects

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._entries)

    def entries(self) -> tuple[Entry, ...]:
        """The registered entries (name, summary, target), in registration order."""
        return tuple(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _check_new(self, name: str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")


def import_path_target(
    value: str, *, parameter: str, expected: str, noun: str = "attribute"
) -> Any:
    """The object ``package.module:NAME`` names (a user's component given by its import path).

    Nothing is registered: the same path resolves again wherever the configuration is read.

    Args:
        value: the import path.
        parameter: the option that named it (in the error message).
        expected: what the object must be (in the error message), e.g. ``"a function"``.
        noun: what the missing attribute is called in the message (e.g. ``"function"``).

    Raises:
        ValueError: the module cannot be imported or has no such attribute.
    """
    module_name, _, attribute = value.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"{parameter}={value!r}: cannot import module {module_name!r} ({error}); is its "
            "folder on PYTHONPATH (or the package installed)?"
        ) from None
    if not attribute or not hasattr(module, attribute):
        raise ValueError(
            f"{parameter}={value!r}: {module_name} has no {noun} {attribute!r} (expected "
            f"{expected})"
        )
    return getattr(module, attribute)


def is_import_path(value: object) -> bool:
    """Whether ``value`` is written as an import path ``package.module:NAME``."""
    return isinstance(value, str) and ":" in value


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""
