"""rerank-bench: which reranker makes an LLM answer better."""
from bench.environment import configure_cpu_threads

configure_cpu_threads()
