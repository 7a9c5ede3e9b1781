"""rerank-bench: which reranker makes an LLM answer better."""
from bench.environment import check_rerankers_import_name, configure_cpu_threads

check_rerankers_import_name()
configure_cpu_threads()
