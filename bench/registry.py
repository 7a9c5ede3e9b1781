"""One registry mechanism for every kind of component: datasets, first stages, rerankers, LLM engines, metrics.

A ``Registry`` maps exact names (never substrings) and aliases to entries. An entry's target is either the object
itself or a ``"module:attr"`` string imported only when the name is used, so listing names imports no backend (and
no torch), and a backend whose imports fail breaks only itself. Loading checks the object against the kind's
``base`` (a class: the object is a subclass or an instance of it; ``None``: any callable).

Third-party packages add entries without editing this repository, through entry points in the group
``rerank_bench.<kind>s``, e.g. in the plugin's pyproject.toml::

    [project.entry-points."rerank_bench.rerankers"]
    my-reranker = "my_package.module:MyReranker"

A plugin object may describe itself with a ``registry_meta`` dict (the keyword arguments ``Registry.add`` takes,
e.g. ``{"checkpoint": ..., "kind": "pointwise", "aliases": ("mine",)}``).
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping

from bench.errors import UserError

ENTRY_POINT_PREFIX = "rerank_bench"


@dataclass(frozen=True)
class Entry:
    name: str
    target: Any                        # "module:attr" (imported on first use) or the object itself
    aliases: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    source: str = "built-in"           # or "entry point (<distribution>)"

    @property
    def lazy(self) -> bool:
        return isinstance(self.target, str)


def did_you_mean(name: str, names: list[str]) -> str:
    """``"did you mean 'x'? "`` (or ``'x' or 'y'``) for the ``names`` closest to ``name``, ignoring case; ``""`` when
    none is close."""
    by_lower = {n.lower(): n for n in names}
    close = [by_lower[n] for n in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)]
    return f"did you mean {' or '.join(map(repr, close))}? " if close else ""


class Registry:
    """Names of one kind of component. ``kind`` names it in messages ("reranker"); its entry-point group is
    ``rerank_bench.<kind>s`` unless ``group`` says otherwise."""

    def __init__(self, kind: str, base: type | None = None, group: str | None = None):
        self.kind = kind
        self.base = base
        self.group = group or f"{ENTRY_POINT_PREFIX}.{kind.replace(' ', '_')}s"
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._loaded: dict[str, Any] = {}
        self._plugins_read = False

    # --- adding -------------------------------------------------------------------------------------------------
    def add(self, name: str, target: Any, *, aliases: tuple[str, ...] = (), source: str = "built-in",
            **meta: Any) -> None:
        """Register ``target`` (an object or ``"module:attr"``) under ``name`` and ``aliases``; ``meta`` is what the
        kind describes its entries by (checkpoint, description, ...)."""
        for n in (name, *aliases):
            if n in self._entries or n in self._aliases:
                raise ValueError(f"{self.kind} name {n!r} registered twice")
        if isinstance(target, str) and ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: target {target!r} is not 'module:attr'")
        self._entries[name] = Entry(name, target, tuple(aliases), dict(meta), source)
        for a in aliases:
            self._aliases[a] = name

    def register(self, name: str, *, aliases: tuple[str, ...] = (), **meta: Any) -> Callable[[Any], Any]:
        """Decorator form of ``add`` for an object defined where it is registered."""

        def deco(obj: Any) -> Any:
            self.add(name, obj, aliases=aliases, **meta)
            return obj

        return deco

    def remove(self, name: str) -> None:
        """Drop an entry and its aliases (tests registering stand-ins clean up with it)."""
        entry = self._entries.pop(name)
        for a in entry.aliases:
            self._aliases.pop(a, None)
        self._loaded.pop(name, None)

    def _read_plugins(self) -> None:
        if self._plugins_read:
            return
        self._plugins_read = True
        for ep in entry_points(group=self.group):
            if ep.name in self._entries and self._entries[ep.name].target == ep.value:
                continue                 # this package's own entry point, also installed: the same entry
            dist = getattr(ep.dist, "name", None) or "unknown package"
            self.add(ep.name, ep.value, source=f"entry point ({dist})")

    # --- looking up ---------------------------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        self._read_plugins()
        return name in self._entries or name in self._aliases

    def names(self) -> list[str]:
        """Every name and alias, sorted."""
        self._read_plugins()
        return sorted({*self._entries, *self._aliases})

    def entries(self) -> list[Entry]:
        self._read_plugins()
        return [self._entries[n] for n in sorted(self._entries)]

    def did_you_mean(self, name: str) -> str:
        """``"did you mean 'x'? "`` naming the registered names closest to ``name`` (difflib, ignoring case), or
        ``""``: a hint only; a name is never looked up by its likeness."""
        return did_you_mean(name, self.names())

    def unknown(self, name: str) -> UserError:
        return UserError(f"unknown {self.kind} {name!r}; {self.did_you_mean(name)}registered: "
                         f"{', '.join(self.names())}")

    def entry(self, name: str) -> Entry:
        """The entry of an exact name or alias; an unknown name fails in one line listing the valid ones."""
        self._read_plugins()
        key = self._aliases.get(name, name)
        if key not in self._entries:
            raise self.unknown(name)
        return self._entries[key]

    def load(self, name: str) -> Any:
        """The registered object (imported on first use), checked against the kind's base."""
        entry = self.entry(name)
        if entry.name not in self._loaded:
            obj = entry.target
            if entry.lazy:
                module, _, attr = entry.target.partition(":")
                try:
                    obj = getattr(importlib.import_module(module), attr)
                except (ImportError, AttributeError) as exc:
                    raise UserError(f"{self.kind} {entry.name!r} ({entry.source}): cannot load {entry.target} "
                                    f"({type(exc).__name__}: {exc})") from exc
            self._check(entry, obj)
            self._loaded[entry.name] = obj
        return self._loaded[entry.name]

    def meta(self, name: str) -> dict[str, Any]:
        """What an entry is described by: its registered ``meta``, else (a plugin) the object's ``registry_meta``."""
        entry = self.entry(name)
        if entry.meta or entry.source == "built-in":
            return dict(entry.meta)
        return dict(getattr(self.load(name), "registry_meta", {}))

    def _check(self, entry: Entry, obj: Any) -> None:
        if self.base is None:
            ok = callable(obj)
            expected = "a callable"
        else:
            ok = isinstance(obj, self.base) or (isinstance(obj, type) and issubclass(obj, self.base))
            expected = f"a {self.base.__module__}.{self.base.__qualname__}"
        if not ok:
            raise UserError(f"{self.kind} {entry.name!r} ({entry.source}): {entry.target!r} is not {expected}")
