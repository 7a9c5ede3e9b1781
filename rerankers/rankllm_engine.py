"""rank-llm itself as an optional engine of the listwise rerankers (``engine=rankllm``).

rank-llm 0.26.0 needs Python >= 3.12 (this project runs on 3.10+), so it runs in a subprocess of its own virtual
environment: ``python -m rerankers.rankllm_engine --setup`` builds it (default: ``<bench cache>/rankllm-venv``) and
``RERANK_BENCH_RANKLLM_PYTHON`` may point to another interpreter that has ``rank-llm[openai]==0.26.0``. The parent
writes the candidate lists as rank_llm Request JSONL; the child (this file run as a script, stdlib + rank_llm only)
reranks them with rank_llm's ``SafeOpenai`` against an OpenAI-compatible server (``base_url``) using rank_llm's own
packaged template of the backend (RankGPT's or RankZephyr's), window and stride, and writes the reranked docids.

Known rank-llm quirks handled here: ``SafeOpenai`` calls the Responses API (``POST /v1/responses``); it needs
tiktoken's ``cl100k_base`` file, which tiktoken would download at run time, so setup copies the one shipped inside
the litellm wheel into ``TIKTOKEN_CACHE_DIR``; and it retries forever when the endpoint is down, so the child runs
under a timeout (option ``timeout``, default 600 s).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.resources import files
from pathlib import Path
from typing import Any, Sequence

RANKLLM_REQUIREMENT = "rank-llm[openai]==0.26.0"
# Only its copy of tiktoken's cl100k_base file is used; the wheel is downloaded, never installed.
LITELLM_REQUIREMENT = "litellm==1.110.2"
# tiktoken caches a file under the SHA-1 of its URL; this is cl100k_base's (the name litellm ships it under).
CL100K_CACHE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
PYTHON_ENV = "RERANK_BENCH_RANKLLM_PYTHON"
TEMPLATES = {"rank-zephyr": "rank_zephyr_template.yaml", "rank-gpt": "rank_gpt_template.yaml"}
DEFAULT_TIMEOUT_S = 600.0
# bench's modules are imported inside the parent's functions: the child runs this file in rank-llm's interpreter,
# where bench is not installed.


def default_venv() -> Path:
    from bench.environment import cache_dir

    return cache_dir() / "rankllm-venv"


def tiktoken_cache_dir(python: Path) -> Path:
    return python.parent.parent / "tiktoken-cache"


def find_python312() -> str:
    """A working Python >= 3.12 interpreter: one of pyenv's, else ``python3.12``/``python3.13`` on PATH (a pyenv
    shim on PATH may exist without its version being selected, so each candidate is tried)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [str(v / "bin" / "python") for v in sorted(pyenv.glob("3.1[23].*"), reverse=True)]
    candidates += [found for found in map(shutil.which, ("python3.12", "python3.13")) if found]
    for python in candidates:
        probe = subprocess.run([python, "-c", "import sys; assert sys.version_info >= (3, 12)"],
                               capture_output=True)
        if probe.returncode == 0:
            return python
    raise RuntimeError("rank-llm 0.26 needs Python >= 3.12; none works on PATH or under pyenv")


def setup_venv(venv: Path | None = None) -> Path:
    """Create the rank-llm virtual environment (idempotent) and return its interpreter."""
    venv = venv or default_venv()
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([find_python312(), "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, RANKLLM_REQUIREMENT], check=True)
    cache = tiktoken_cache_dir(python)
    if not (cache / CL100K_CACHE_NAME).exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                            "-d", tmp, LITELLM_REQUIREMENT], check=True)
            wheel = next(Path(tmp).glob("litellm-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                data = zf.read(f"litellm/litellm_core_utils/tokenizers/{CL100K_CACHE_NAME}")
        cache.mkdir(parents=True, exist_ok=True)
        (cache / CL100K_CACHE_NAME).write_bytes(data)
    return python


def rankllm_python() -> Path:
    from bench.errors import UserError

    given = os.environ.get(PYTHON_ENV)
    python = Path(given) if given else default_venv() / "bin" / "python"
    if not python.exists():
        raise UserError(f"engine rankllm: no rank-llm interpreter at {python} "
                        f"({'from ' + PYTHON_ENV if given else 'the default venv'}); build it with "
                        f"`python -m rerankers.rankllm_engine --setup` or set {PYTHON_ENV}")
    return python


def rerank_with_rankllm(reranker: Any, lists: Sequence[Any]) -> list[Any]:
    """Rerank ``lists`` (CandidateLists) with rank-llm in its own interpreter, with ``reranker``'s prompt, window,
    stride, passage length, context size, model and server."""
    from bench.errors import UserError
    from bench.types import Ranking, rank_scores

    opts = reranker.options
    if reranker.prompt.template.id not in TEMPLATES:
        raise UserError(f"engine rankllm: rank-llm has no template for the prompt {reranker.prompt.template.id!r}; "
                        f"known: {', '.join(TEMPLATES)}")
    if not opts.base_url:
        raise UserError("engine rankllm: set the base_url option to an OpenAI-compatible server (rank-llm's "
                        "SafeOpenai calls its Responses API)")
    if not isinstance(opts.base_url, str):
        raise UserError(f"engine rankllm: rank-llm talks to one server, got {len(opts.base_url)} base URLs; "
                        f"use the openai engine (the default) for several")
    if not lists:
        return []
    python = rankllm_python()
    api_key_env = opts.api_key_env
    timeout = opts.timeout or DEFAULT_TIMEOUT_S
    with tempfile.TemporaryDirectory() as tmp:
        requests, results, config = Path(tmp) / "requests.jsonl", Path(tmp) / "results.jsonl", Path(tmp) / "c.json"
        requests.write_text("".join(json.dumps(cl.to_request_json()) + "\n" for cl in lists))
        config.write_text(json.dumps({
            "model": reranker.model_name, "base_url": opts.base_url,
            "template": TEMPLATES[reranker.prompt.template.id],
            "context_size": reranker.context_size, "window_size": reranker.window, "stride": reranker.stride,
            "max_passage_words": reranker.max_words, "requests": str(requests), "results": str(results),
            "api_key_env": api_key_env,
        }))
        env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tiktoken_cache_dir(python)),
               api_key_env: os.environ.get(api_key_env) or "EMPTY"}
        try:
            done = subprocess.run([str(python), str(Path(__file__).resolve()), "--worker", str(config)], env=env,
                                  cwd=tmp, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"engine rankllm: rank-llm did not finish within {timeout:.0f} s (it retries forever when "
                            f"the server is down): is {opts.base_url} up?") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise UserError(f"engine rankllm: rank-llm failed (exit {done.returncode}): {last}")
        reranked = {row["qid"]: row["docids"] for row in map(json.loads, results.read_text().splitlines())}
    out = []
    for cl in lists:
        docids = reranked[cl.query.qid]
        out.append(Ranking(qid=cl.query.qid, docids=docids, scores=rank_scores(len(docids)),
                           info={"engine": "rankllm"}))
    return out


def _worker(config_path: str) -> None:
    """Runs inside rank-llm's interpreter: rerank the requests file, write ``{"qid", "docids"}`` lines."""
    # rank_llm exists only in rank-llm's own interpreter (the child process)
    from rank_llm.data import read_requests_from_file
    from rank_llm.rerank import Reranker
    from rank_llm.rerank.listwise import SafeOpenai

    c = json.loads(Path(config_path).read_text())
    requests = read_requests_from_file(c["requests"])
    model = SafeOpenai(model=c["model"], context_size=c["context_size"],
                       prompt_template_path=str(files("rank_llm.rerank.prompt_templates") / c["template"]),
                       window_size=c["window_size"], stride=c["stride"], keys=os.environ[c["api_key_env"]],
                       base_url=c["base_url"].rstrip("/") + "/", max_passage_words=c["max_passage_words"],
                       batch_size=1)
    rank_end = max(len(r.candidates) for r in requests)
    results = Reranker(model).rerank_batch(requests, rank_start=0, rank_end=rank_end)
    with open(c["results"], "w") as f:
        for result in results:
            f.write(json.dumps({"qid": str(result.query.qid), "docids": [str(x.docid) for x in result.candidates]})
                    + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="build the rank-llm virtual environment")
    parser.add_argument("--venv", type=Path, default=None, help="where (default: <bench cache>/rankllm-venv)")
    parser.add_argument("--worker", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
    elif args.setup:
        print(setup_venv(args.venv))
    else:
        parser.print_help()


if __name__ == "__main__":
    main(sys.argv[1:])
