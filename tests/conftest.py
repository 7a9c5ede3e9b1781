import os
from pathlib import Path

# Tests never reach a model hub: everything they load is built on the fly or ships in an installed package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests never write into the user's cache (~/.cache/rerank-bench or their $RERANK_BENCH_CACHE): what they build once
# (the de-quantised reader, rank-llm's venv, the LLM cache) goes to tests/.cache, which .gitignore covers; a fresh
# clone (CI) builds it on its first run. Subprocesses inherit the variable.
TEST_CACHE = Path(__file__).resolve().parent / ".cache"
os.environ["RERANK_BENCH_CACHE"] = str(TEST_CACHE)
