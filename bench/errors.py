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


def require(module: str, extra: str, purpose: str):
    """Import an optional module lazily, failing with the exact ``pip install`` line."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # the original error is chained for debugging
        raise MissingDependency(module.split(".")[0], extra, purpose) from exc
