"""Every tiny-model reranker backend on CUDA against CPU fp32: prints a pass/fail table, exits 1 on any failure.

Self-contained: builds its tiny random checkpoints (benchmarks/tiny_models.py) in a temporary folder; needs only
torch with CUDA, transformers, tokenizers, sentencepiece + protobuf (monoT5) and ftfy (listwise). Runs in well under
two minutes. Checks, per pointwise backend (cross-encoder, monoT5, Qwen3-Reranker):

- cuda fp32: the same ranking as CPU fp32 and scores within 1e-3;
- cuda bf16 vs CPU fp32: Spearman >= 0.9 on every query and the fp32 best candidate in the bf16 top 3 (bf16 keeps
  ~3 significant digits: near-ties may swap);
- cuda bf16 gradients: ``score`` back-propagates (what RRPO does on a GPU) with finite, non-zero gradients;

and for RankZephyr through the transformers engine on cuda bf16 (a random chat LM): every query gets a complete
permutation and every window is accounted for; through vLLM too when it is installed.

    python benchmarks/cuda_check.py              # --device cpu: a dry run without a GPU
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POINTWISE = ("minilm-cross-encoder", "monot5", "qwen3-reranker")
MIN_SPEARMAN = 0.9
# "--device cpu" runs the same checks without a GPU (a dry run of this script).
DEVICE = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cuda"


def candidate_lists(n_queries: int = 3, n_docs: int = 30):
    from bench.types import Candidate, CandidateList, Document, Query

    words = "paris is the capital of france and a city on the river with a tower and a museum".split()
    return [CandidateList(Query(f"q{q}", f"what is the capital of france {q}"),
                          [Candidate(f"q{q}d{i}", 0.0, Document(f"q{q}d{i}", " ".join(
                              words[(i * 3 + k + q) % len(words)] for k in range(4 + (i * 7) % 40))))
                           for i in range(n_docs)])
            for q in range(n_queries)]


def spearman(a, b) -> float:
    """Spearman correlation of two rankings of the same docids."""
    pos = {d: i for i, d in enumerate(b.docids)}
    n = len(a.docids)
    return 1 - 6 * sum((i - pos[d]) ** 2 for i, d in enumerate(a.docids)) / (n * (n * n - 1))


def pointwise_checks(name: str, path: str, lists, rows: list) -> None:
    import torch

    from rerankers.registry import RerankerSettings, get_reranker

    def run(device: str, dtype: str):
        reranker = get_reranker(name, RerankerSettings(checkpoint=path, device=device, dtype=dtype, batch_size=16))
        return reranker, reranker.rerank(lists)

    _, cpu = run("cpu", "float32")
    _, cuda32 = run(DEVICE, "float32")
    worst = max(abs(a - b) for r, s in zip(cpu, cuda32)
                for a, b in zip(r.scores, [dict(zip(s.docids, s.scores))[d] for d in r.docids]))
    same = all(r.docids == s.docids for r, s in zip(cpu, cuda32))
    rows.append((name, "cuda fp32 = cpu fp32", same and worst <= 1e-3, f"max |diff| {worst:.2e}"))

    bf16_reranker, cuda16 = run(DEVICE, "bfloat16")
    rho = min(spearman(r, s) for r, s in zip(cpu, cuda16))
    top_kept = all(r.docids[0] in s.docids[:3] for r, s in zip(cpu, cuda16))
    rows.append((name, "cuda bf16 ~ cpu fp32", rho >= MIN_SPEARMAN and top_kept,
                 f"Spearman >= {rho:.3f} per query; fp32 top-1 in bf16 top-3: {top_kept}"))

    model = bf16_reranker.model
    model.zero_grad()
    scores = bf16_reranker.score(["capital of france", "river"], ["paris is the capital", "the city"])
    scores.float().sum().backward()
    norms = [p.grad.float().norm().item() for p in model.parameters() if p.grad is not None]
    ok = bool(norms) and all(math.isfinite(n) for n in norms) and sum(norms) > 0
    rows.append((name, "cuda bf16 gradients", ok, f"{len(norms)} tensors, total norm {sum(norms):.3g}"))
    del bf16_reranker, model
    if DEVICE.startswith("cuda"):
        torch.cuda.empty_cache()


def listwise_checks(chat_lm: str, lists, rows: list) -> None:
    import importlib.util

    from rerankers.registry import RerankerSettings, get_reranker

    engines = ["hf"] + (["vllm"] if importlib.util.find_spec("vllm") else [])
    for engine in engines:
        reranker = get_reranker("rankzephyr", RerankerSettings(
            checkpoint=chat_lm, device=DEVICE, dtype="bfloat16", options={"engine": engine, "max_new_tokens": 24}))
        rankings = reranker.rerank(lists)
        complete = all(sorted(r.docids) == sorted(c.docid for c in cl.candidates) for r, cl in zip(rankings, lists))
        windows = [r.info["windows"] for r in rankings]
        ok = complete and windows == [2] * len(lists)
        malformed = sum(r.info["malformed_windows"] for r in rankings)
        rows.append((f"rankzephyr ({engine})", "cuda bf16 runs", ok,
                     f"windows {windows}, malformed {malformed} (random model)"))
    if "vllm" not in engines:
        rows.append(("rankzephyr (vllm)", "cuda bf16 runs", None, "skipped: vllm is not installed"))


def main() -> int:
    import torch

    from benchmarks import tiny_models

    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        print("error: CUDA is not available to torch here")
        return 2
    t0 = time.perf_counter()
    rows: list = []
    lists = candidate_lists()
    builders = {"minilm-cross-encoder": tiny_models.cross_encoder, "monot5": tiny_models.monot5,
                "qwen3-reranker": tiny_models.qwen3_reranker}
    with tempfile.TemporaryDirectory() as tmp:
        for name in POINTWISE:
            pointwise_checks(name, str(builders[name](Path(tmp) / name)), lists, rows)
        listwise_checks(str(tiny_models.chat_lm(Path(tmp) / "chat")), lists, rows)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'backend':<{width}}  {'check':<22}  result  detail")
    for name, check, ok, detail in rows:
        result = "skip" if ok is None else "PASS" if ok else "FAIL"
        print(f"{name:<{width}}  {check:<22}  {result:<6}  {detail}")
    failed = sum(1 for r in rows if r[2] is False)
    where = torch.cuda.get_device_name() if DEVICE.startswith("cuda") else DEVICE
    print(f"\n{where}: {len(rows) - failed} ok, {failed} failed, "
          f"{time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
