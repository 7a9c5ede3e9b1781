"""Where rerank-bench keeps its caches, which device and dtype a model runs on, and how many CPU threads it uses:
one definition for every stage."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import os
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from bench.errors import UserError

CACHE_ENV = "RERANK_BENCH_CACHE"
# rerank-bench's backends package; PyPI's ``rerankers`` (AnswerDotAI) has the same import name
OWN_RERANKERS = Path(__file__).resolve().parent.parent / "rerankers"
# Set to "off" to leave OpenMP's thread count and wait policy to the libraries' defaults (benchmarks/shared_cpu.py
# measures the difference).
CPU_POLICY_ENV = "RERANK_BENCH_CPU_POLICY"


def cpu_threads(cpus: int, load: float) -> int:
    """Compute threads for a machine with ``cpus`` usable CPUs whose 1-minute load average is ``load``: the CPUs
    the other processes leave idle, at least one. More threads than idle CPUs make every OpenMP barrier wait for a
    thread the OS has descheduled (a 135M-parameter reader ran 16-40x slower beside two busy processes)."""
    return max(1, min(cpus, math.floor(cpus - load + 0.5)))


def cpu_load() -> float:
    """How many CPUs other processes keep busy: the 1-minute load average, or the processes runnable right now
    (Linux's /proc/loadavg, less this one) when more, since the average takes a minute to see a new busy process."""
    average = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1
    except (OSError, IndexError, ValueError):
        running = 0
    return max(average, float(running))


def configure_cpu_threads(load: float | None = None) -> None:
    """Run when ``bench`` is imported, before torch loads OpenMP: threads sleep instead of spinning while they wait
    (``OMP_WAIT_POLICY=PASSIVE``), and torch gets ``cpu_threads`` threads for the current ``cpu_load`` (or
    ``load``). The user's own ``OMP_WAIT_POLICY`` and ``OMP_NUM_THREADS`` win."""
    if os.environ.get(CPU_POLICY_ENV) == "off":
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "OMP_NUM_THREADS" in os.environ:
        return
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = cpu_threads(cpus, cpu_load() if load is None else load)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:         # imported before bench: the variable came too late for it
        sys.modules["torch"].set_num_threads(threads)


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Caches and converted models: ``override``, else ``$RERANK_BENCH_CACHE``, else ``~/.cache/rerank-bench``."""
    return Path(override or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "rerank-bench").expanduser()


def resolve_device(device: str) -> str:
    import torch  # lazy: torch/transformers load only when a model runs

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    import torch  # lazy: torch/transformers load only when a model runs

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise UserError(f"--dtype {dtype!r}: expected auto, float32, bfloat16 or float16") from None


def hub_offline() -> bool:
    """Whether Hugging Face downloads are off (HF_HUB_OFFLINE, as huggingface_hub reads it): a missing model then
    means "not in the local cache", which error messages say."""
    import huggingface_hub  # lazy: only when weights are looked up

    return huggingface_hub.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


# Seconds a reachability probe (the hub, an OpenAI-compatible server) waits: long enough for a slow link, short enough
# that a machine without network says so at once instead of after a minute of the hub client's retries.
PROBE_TIMEOUT = 5.0


def http_reachable(url: str, headers: dict[str, str] | None = None, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when ``url``'s server answers an HTTP request (any status: it is there), else why it could not be
    reached, in a few words. Honours the usual proxy variables (urllib reads them)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout):
            return None
    except urllib.error.HTTPError:              # an answer, even 401/404: the server is reachable
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def hub_unreachable_reason() -> str | None:
    """None when the Hugging Face hub can serve downloads now; else why not (``HF_HUB_OFFLINE`` set, or one quick
    probe of the endpoint failed). Probed once per process."""
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    return _probe_hub()


_HUB_PROBE: dict[str, str | None] = {}


def _probe_hub() -> str | None:
    from huggingface_hub import constants  # lazy: only when weights are looked up

    endpoint = constants.ENDPOINT
    if endpoint not in _HUB_PROBE:
        failure = http_reachable(endpoint)
        _HUB_PROBE[endpoint] = None if failure is None else f"the hub ({endpoint}) cannot be reached ({failure})"
    return _HUB_PROBE[endpoint]


def check_weights_available(checkpoint: str, what: str, override_flag: str = "--checkpoint NAME=FOLDER") -> None:
    """Fail in one line, before anything loads, when the weights of ``checkpoint`` cannot be had: a local folder that
    does not exist, or a hub id that is neither in the hub cache nor downloadable now. Says how to get them."""
    if Path(checkpoint).expanduser().exists():
        return
    if checkpoint.startswith(("/", "./", "../", "~")) or checkpoint.count("/") > 1:
        raise UserError(f"{what}: checkpoint folder {checkpoint} does not exist")
    import huggingface_hub  # lazy: only when weights are looked up
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        huggingface_hub.snapshot_download(checkpoint, local_files_only=True)
        return
    except HFValidationError:
        raise UserError(f"{what}: {checkpoint!r} is neither a local folder nor a hub id (owner/name)") from None
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass                                     # not in the hub cache: can it be downloaded?
    reason = hub_unreachable_reason()
    if reason is not None:
        raise UserError(f"{what}: checkpoint {checkpoint!r} is not on this machine and {reason}; download it where "
                        f"the hub is reachable (`hf download {checkpoint}`, then copy the hub cache), or pass a local "
                        f"folder with {override_flag}")


def check_server_reachable(base_url: str, what: str, api_key_env: str | None = None,
                           fix: str = "start it or fix --base-url") -> None:
    """One cheap request (``GET <base_url>/models``, what every OpenAI-compatible server answers) before a run asks
    its first question: an unreachable server fails the run in one line instead of failing every query."""
    key = os.environ.get(api_key_env or "", "")
    failure = http_reachable(base_url.rstrip("/") + "/models", {"Authorization": f"Bearer {key}"} if key else None)
    if failure is not None:
        raise UserError(f"{what}: the server {base_url} cannot be reached ({failure}); {fix}")


class ImportNameClash(UserWarning):
    """PyPI's ``rerankers`` is installed beside rerank-bench, whose ``rerankers`` package hides it."""


def check_rerankers_import_name() -> None:
    """The import name ``rerankers`` is rerank-bench's backends package (its folder is part of the project's
    layout) and also PyPI's ``rerankers`` (AnswerDotAI). Installed together, whichever comes first on ``sys.path``
    silently hides the other: say so in one line, an error when theirs hides ours (nothing here would work), a
    warning when ours hides theirs. Only the import system's lookup is read; neither package is imported."""
    spec = importlib.util.find_spec("rerankers")
    found = Path(spec.origin).resolve().parent if spec is not None and spec.origin else None
    if found is not None and found != OWN_RERANKERS:
        raise ImportError(f"the import name 'rerankers' is {found} (PyPI's rerankers, AnswerDotAI), which shadows "
                          f"rerank-bench's rerankers package ({OWN_RERANKERS}); rerank-bench cannot run beside it: "
                          f"pip uninstall rerankers, or install rerank-bench in its own virtual environment")
    try:
        theirs = importlib.metadata.distribution("rerankers")
    except importlib.metadata.PackageNotFoundError:
        return
    warnings.warn(f"PyPI's rerankers {theirs.version} (AnswerDotAI) is installed here but shadowed by rerank-bench's "
                  f"rerankers package ({OWN_RERANKERS}): `import rerankers` gives rerank-bench's backends; use "
                  f"AnswerDotAI's rerankers from another virtual environment", ImportNameClash, stacklevel=2)
