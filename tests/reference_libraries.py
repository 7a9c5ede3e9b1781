"""The reference libraries' own code, run as a script in an interpreter whose path holds them with the versions they
pin, apart from this project's: PyLate 1.6 (sentence-transformers 5.3, transformers 5.3) and rank-llm 0.26.0 (its
FiD decoder needs transformers <= 5.3). The tests run it in a subprocess with ``PYTHONPATH`` set to the folder named by
``RERANK_BENCH_REFERENCE_PATH``, made by::

    pip install --no-deps --ignore-requires-python --target FOLDER pylate==1.6.0 sentence-transformers==5.3.0 \\
        transformers==5.3.0 tokenizers==0.22.2 "huggingface_hub>=1.3,<2" httpx httpcore rank-llm==0.26.0 dacite

(torch, numpy, scipy, ftfy, pyyaml and the rest come from the interpreter itself; rank-llm declares Python >= 3.12
but the parts used here run on 3.10+).

``python tests/reference_libraries.py REQUEST.json`` reads ``{"library": ..., "checkpoint": ..., ...}`` and prints
one JSON line:

- ``pylate``: ``queries``, ``documents`` (``documents[i]``: query i's passages) -> ``[[score of each passage, in input
  order], ...]`` from ``models.ColBERT(...).encode`` and ``rank.rerank``;
- ``lit5``: ``request`` (a rank_llm Request) -> ``{"docids": [...], "replies": [...]}`` from ``RankFiDDistill
  .rerank_batch`` (window 20, stride 10, float32), the replies of its windows in order;
- ``first``: ``request``, ``window`` -> ``{"messages": [...], "ranking": "[C]>[A]>..."}``: rank_llm's prompt for
  FIRST (``rank_zephyr_alpha_template`` through ``SingleTurnListwiseInferenceHandler`` with ``use_alpha``) and its
  ``RankListwiseOSLLM._evaluate_logits`` over the next-token log-probabilities of the chat-templated prompt + "[",
  every token given (vLLM gives the top 30).
"""
import json
import sys
from importlib.resources import files
from types import SimpleNamespace


def pylate(request):
    from pylate import models, rank

    model = models.ColBERT(model_name_or_path=request["checkpoint"], device="cpu")
    queries = model.encode(request["queries"], is_query=True)
    documents = model.encode(request["documents"], is_query=False)
    ids = [[str(j) for j in range(len(docs))] for docs in request["documents"]]
    reranked = rank.rerank(documents_ids=ids, queries_embeddings=queries, documents_embeddings=documents)
    return [[next(r["score"] for r in result if r["id"] == str(j)) for j in range(len(docs))]
            for result, docs in zip(reranked, request["documents"])]


def lit5(request):
    from dacite import from_dict
    from rank_llm.data import Request
    from rank_llm.rerank.listwise.rank_fid import RankFiDDistill

    req = from_dict(Request, request["request"])
    model = RankFiDDistill(model=request["checkpoint"], precision="float32", device="cpu", batch_size=1)
    [result] = model.rerank_batch([req], rank_start=0, rank_end=len(req.candidates),
                                  populate_invocations_history=True)
    return {"docids": [str(c.docid) for c in result.candidates],
            "replies": [inv.response for inv in result.invocations_history]}


def first(request):
    import torch
    import yaml
    from dacite import from_dict
    from rank_llm.data import Result
    from rank_llm.rerank.listwise.rank_listwise_os_llm import RankListwiseOSLLM
    from rank_llm.rerank.listwise.singleturn_listwise_inference_handler import SingleTurnListwiseInferenceHandler
    from transformers import AutoModelForCausalLM, AutoTokenizer

    template = yaml.safe_load((files("rank_llm.rerank.prompt_templates") / "rank_zephyr_alpha_template.yaml")
                              .read_text())
    result = from_dict(Result, request["request"])
    n = len(result.candidates)
    messages = SingleTurnListwiseInferenceHandler(template).generate_prompt(
        result=result, rank_start=0, rank_end=n, max_length=300, use_alpha=True)
    tokenizer = AutoTokenizer.from_pretrained(request["checkpoint"])
    model = AutoModelForCausalLM.from_pretrained(request["checkpoint"], dtype=torch.float32).eval()
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + "["
    with torch.no_grad():
        logits = model(**tokenizer(prompt, return_tensors="pt")).logits[0, -1]
    logprobs = torch.log_softmax(logits.float(), dim=-1).tolist()
    vllm_like = {i: SimpleNamespace(decoded_token=tokenizer.decode([i]), logprob=lp) for i, lp in enumerate(logprobs)}
    owner = SimpleNamespace(_use_alpha=True, _window_size=request["window"])
    ranking, _ = RankListwiseOSLLM._evaluate_logits(owner, vllm_like, (1, n))
    return {"messages": messages, "ranking": ranking}


def reference_output(request: dict, tmp_path) -> object:
    """What this script answers for ``request``, run under ``RERANK_BENCH_REFERENCE_PATH``; the calling test is
    skipped when that variable is unset."""
    import os
    import subprocess
    from pathlib import Path

    import pytest

    site = os.environ.get("RERANK_BENCH_REFERENCE_PATH")
    if not site:
        # .ci/run builds the folder, so in CI a missing one is a failure; on a user's machine the test is skipped.
        missing = ("RERANK_BENCH_REFERENCE_PATH unset: the reference libraries with their pinned versions are not "
                   "at hand (see tests/reference_libraries.py)")
        pytest.fail(missing) if os.environ.get("CI") else pytest.skip(missing)
    path = Path(tmp_path) / "reference-request.json"
    path.write_text(json.dumps(request))
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(path)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env={**os.environ, "PYTHONPATH": site, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    req = json.loads(open(sys.argv[1]).read())
    print(json.dumps({"pylate": pylate, "lit5": lit5, "first": first}[req["library"]](req)))
