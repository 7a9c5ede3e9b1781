"""The shared LLM cache under concurrent askers (docs/robustness.md): three processes share one cache file and ask
the same 40 uncached prompts of the test server (tests/llm_server.py) at the same moment (a barrier); prints how
many requests reached the server (40 with the cache's in-flight claims, 120 without), then how many a re-run sends.

    python benchmarks/shared_cache_double_payment.py
"""
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.llm_server import ScriptedLLMServer  # noqa: E402

N_PROC, N_PROMPTS, LATENCY = 3, 40, 0.3


def worker(base_url: str, cache_path: str, barrier) -> None:
    from bench.llm.base import ChatRequest
    from bench.llm.cache import CachedEngine, LLMCache
    from bench.llm.openai_engine import OpenAIEngine

    engine = CachedEngine(OpenAIEngine("scripted", base_url=base_url, concurrency=8), LLMCache(cache_path))
    reqs = [ChatRequest.chat([{"role": "user", "content": f"question {i}"}], max_tokens=8) for i in range(N_PROMPTS)]
    barrier.wait()
    engine.generate(reqs)


def run_processes(base_url: str, cache_path: str) -> None:
    barrier = mp.Barrier(N_PROC)
    procs = [mp.Process(target=worker, args=(base_url, cache_path, barrier)) for _ in range(N_PROC)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


if __name__ == "__main__":
    mp.set_start_method("spawn")
    with ScriptedLLMServer(reply=lambda body: time.sleep(LATENCY) or "ok") as srv, \
            tempfile.TemporaryDirectory() as tmp:
        run_processes(srv.base_url, f"{tmp}/cache.sqlite")
        first = srv.count
        run_processes(srv.base_url, f"{tmp}/cache.sqlite")
        print(f"{N_PROC} processes x the same {N_PROMPTS} uncached prompts at once ({LATENCY} s per reply, "
              f"concurrency 8): {first} server requests; the same again: {srv.count - first}")
