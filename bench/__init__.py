"""rerank-bench: which reranker makes an LLM answer better.

As a library (docs/api.md): ``bench.run``, ``bench.compare``, ``bench.load_reranker``, ``bench.load_reader``,
``bench.load_dataset`` (from ``bench.api``, imported on first use, so ``import bench`` and ``python -m bench list``
stay light).
"""
from bench.environment import check_rerankers_import_name, configure_cpu_threads

check_rerankers_import_name()
configure_cpu_threads()

API = ("RunResult", "compare", "load_dataset", "load_reader", "load_reranker", "make_config", "run")
__all__ = list(API)


def __getattr__(name: str):
    if name in API:
        import bench.api      # lazy: the API pulls in the runner and pandas; `import bench` stays light

        return getattr(bench.api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
