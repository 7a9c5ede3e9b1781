"""Typed options of components: each component declares a dataclass of its options (defaults, types), and values
from the command line (``--reranker-args NAME:key=value,key=value``) or a config file are checked and converted
against it, with one-line errors naming the valid keys."""
from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import re
import types
import typing
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

from bench.errors import UserError

_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def parse_component_args(flag: str, values: list[str]) -> dict[str, dict[str, str]]:
    """``["rankzephyr:window=20,stride=10", ...]`` -> ``{"rankzephyr": {"window": "20", "stride": "10"}}``. The
    component's name is everything before the last colon ahead of the first ``=`` (engine specs such as
    ``openai:model:7b`` hold colons); a name given twice merges its keys."""
    out: dict[str, dict[str, str]] = {}
    for value in values:
        head = value[:value.find("=")] if "=" in value else value
        name, sep, _ = head.rpartition(":")
        pairs = value[len(name) + 1:].split(",") if sep and name else []
        if not pairs or any("=" not in p or not p.partition("=")[0] for p in pairs):
            raise UserError(f"{flag} {value!r}: expected NAME:key=value[,key=value...], e.g. rankzephyr:window=20,"
                            f"stride=10")
        out.setdefault(name, {}).update(p.split("=", 1) for p in pairs)
    return out


def option_rows(cls: type) -> list[dict[str, str]]:
    """One row per option of a dataclass: key, type, default (what ``python -m bench list --reranker`` prints)."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append({"option": f.name, "type": _type_name(hints[f.name]), "default": repr(default)})
    return rows


def typed_options(cls: type, values: Mapping[str, Any], where: str, base: Any = None) -> Any:
    """An instance of dataclass ``cls`` from ``base`` (an instance, default ``cls()``) with ``values`` replaced; string
    values are converted to the field's type. Unknown keys and unconvertible values fail in one line."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UserError(f"{where}: unknown option {unknown[0]!r}; valid: {', '.join(names) or 'none'}")
    converted = {k: convert(v, hints[k], f"{where}: {k}") for k, v in values.items()}
    return dataclasses.replace(base if base is not None else cls(), **converted)


def field_types(cls: type) -> dict[str, Any]:
    """Each field of dataclass ``cls`` and its type (annotations resolved, string ones included)."""
    return typing.get_type_hints(cls)


def argparse_type(annotation: Any, where: str) -> Callable[[str], Any]:
    """An argparse ``type=`` converting a flag's string as ``convert`` does (so ``rrpo train``'s flags and the
    studies' ``NAME=VALUE`` options are typed like every component option)."""

    def parse(value: str) -> Any:
        try:
            return convert(value, annotation, where)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = _type_name(annotation)     # argparse names the type in its message
    return parse


def convert(value: Any, annotation: Any, where: str) -> Any:
    """``value`` as ``annotation`` (int, float, str, bool, or an optional one of them; "none" for None). A value that
    is not a string (from a config file or code) must already be of the type (an int does for a float)."""
    options = [a for a in typing.get_args(annotation)] if _is_union(annotation) else [annotation]
    if not isinstance(value, str):
        if any(_is_instance(value, kind) for kind in options):
            return value
        raise UserError(f"{where}={value!r}: expected {_type_name(annotation)}")
    if type(None) in options and value.lower() in ("none", "null"):
        return None
    for kind in (a for a in options if a is not type(None)):
        if kind is bool:
            if value.lower() in _TRUE + _FALSE:
                return value.lower() in _TRUE
            continue
        try:
            return kind(value)
        except (TypeError, ValueError):
            continue
    raise UserError(f"{where}={value!r}: expected {_type_name(annotation)}")


def _is_instance(value: Any, kind: Any) -> bool:
    origin = typing.get_origin(kind)
    if origin is not None:               # list[str], Sequence[str]: the container's type, not its items'
        return isinstance(origin, type) and isinstance(value, origin)
    if kind is Any or not isinstance(kind, type):
        return True                      # Callable, Any: not checked here
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _type_name(annotation: Any) -> str:
    if _is_union(annotation):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


# --- server flags -----------------------------------------------------------------------------------------------------

# A plausible environment-variable name: upper-case letters, digits and underscores, at most 64 characters, words of
# at most 16 characters, at most 4 digits, and a low entropy (names repeat letters: OPENAI_API_KEY has 3.1 bits per
# character, GOOGLE_APPLICATION_CREDENTIALS 3.7; a 32-character random upper-case key has 4.3 in the median).
KEY_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
MAX_WORD, MAX_DIGITS, MAX_BITS_PER_CHAR = 16, 4, 4.0


def entropy_bits_per_char(text: str) -> float:
    """Shannon entropy of the characters of ``text``."""
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in collections.Counter(text).values()) if n else 0.0


def check_key_variable_name(flag: str, name: str) -> None:
    """Refuse a value that is not a plausible variable name (by the rule above, not a list of key prefixes): it may
    be the key itself, so the message does not repeat it, and nothing has been written yet."""
    if not (KEY_VARIABLE.fullmatch(name) and all(len(word) <= MAX_WORD for word in name.split("_"))
            and sum(ch.isdigit() for ch in name) <= MAX_DIGITS and entropy_bits_per_char(name) <= MAX_BITS_PER_CHAR):
        raise UserError(f"{flag}: the value is not the NAME of an environment variable (upper-case letters, digits "
                        f"and underscores, e.g. OPENAI_API_KEY) and may be a key; it is not shown here")


def check_server_options(base_url: str | Sequence[str] | None, api_key_env: str | None,
                         judge_base_url: str | Sequence[str] | None, judge_api_key_env: str | None) -> None:
    """The server flags ``bench run`` and ``rrpo train`` share, checked before anything is paid for or written."""
    for flag, name in (("--api-key-env", api_key_env), ("--judge-api-key-env", judge_api_key_env)):
        if name is not None:
            check_key_variable_name(flag, name)
    check_server_urls("--base-url", base_url)
    check_server_urls("--judge-base-url", judge_base_url)


def check_server_urls(flag: str, urls: str | Sequence[str] | None) -> None:
    """Each server of ``--base-url`` / ``--judge-base-url`` is an http(s) URL with a host."""
    for url in [urls] if isinstance(urls, str) else urls or []:
        try:
            parts = urlsplit(url) if isinstance(url, str) else None
            ok = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname) \
                and (parts.port is None or parts.port > 0)
        except ValueError:          # a port that is not a number or out of range
            ok = False
        if not ok:
            raise UserError(f"{flag} {url!r}: expected an http(s) URL with a host, e.g. http://localhost:8000/v1")
