"""GPU speed of our pointwise reranking path at real model sizes: pairs/s and model FLOPs utilisation (MFU), next to
sentence-transformers' ``CrossEncoder.predict`` and the ``rerankers`` package on the same inputs in the same run.

Models are built here from a config with the published shapes and random weights (FLOPs and speed do not depend on
weight values; nothing is downloaded): XLM-R-large as in BAAI/bge-reranker-v2-m3 (568M parameters), T5-base and
T5-large encoder-decoders as in castorini's monoT5, and Qwen3-0.6B as in Qwen/Qwen3-Reranker-0.6B; each is saved
with a tokenizer of its family trained here (one token per synthetic word), then loaded by each implementation from
that folder, in ``--dtype`` (bf16 by default on a GPU) with SDPA attention. Inputs are queries x candidates of
synthetic text: ``--lengths realistic`` draws passage lengths log-normally (median ~100 words, a long tail truncated
at ``--max-length`` tokens), ``--lengths full`` fills every pair to ``--max-length``.

FLOPs are counted analytically from the token counts each implementation actually fed its model (padding excluded,
read from the attention masks): 2 x (matmul parameters) per token for the linear layers, plus 4 x seq^2 x (attention
width) per layer and sequence for the attention scores and their weighted sum (full, not halved for the causal Qwen3,
as PaLM's MFU counts them), plus the heads as run: the classification head on one token, T5's single decoder step
(its cross-attention projects all encoder states) and the LM head on one position. ``pair_flops`` holds the formula;
the tests check it against hand-computed values and against ``torch.utils.flop_counter`` on real forward passes.
MFU = FLOPs / seconds / the GPU's dense bf16 peak (``PEAK_BF16_TFLOPS`` by device name, or ``--peak-tflops``).

``rerankers`` has the same import name as this project's package, so it runs in a subprocess that sees only its own
folder (``--setup`` installs it, as for benchmarks/throughput.py). It has no Qwen3-Reranker backend, and
sentence-transformers runs a causal LM reranker only with the prompt configuration of a converted checkpoint, so
Qwen3 is timed on our path alone; monoT5 is compared with ``rerankers``' T5Ranker.

    python benchmarks/gpu_throughput.py --setup      # once, with PyPI access: rerankers==0.10.0 into the bench cache
    python benchmarks/gpu_throughput.py --device cuda --out gpu_throughput.md
    python benchmarks/gpu_throughput.py --device cuda --models xlmr-large --lengths full --out xlmr_512.md
    python benchmarks/gpu_throughput.py --device cpu --tiny --pairs 60      # a dry run of the whole script on a CPU

Our path always keeps scores on the device until the last batch (no host sync per batch: a GPU computes one batch
while the next is tokenised). Two opt-in speed-ups add rows, each on top of the previous one: ``--prefetch``
tokenises the next batch in a worker thread (the reranker option ``prefetch``), ``--compile`` compiles each
transformer block with ``torch.compile(dynamic=True)`` (regional compilation: masks, embeddings and heads stay
eager) after a warm-up pass that compiles every shape. In the table, ``ours_speedup`` is our fastest row's pairs/s
over the row's, ``padding`` the share of computed token positions that are padding, ``same_top10`` the queries whose
top 10 equals our plain path's (random weights in bf16 make near-ties, so a few may differ).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Dense (no sparsity) bf16 tensor-core peaks in TFLOPS from NVIDIA's data sheets; the first name contained in the
# device name wins, so the more specific names come first.
PEAK_BF16_TFLOPS = (("H100 NVL", 835.0), ("H200 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0),
                    ("H200", 989.0), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0))
COLUMNS = ["model", "implementation", "params_m", "attention", "dtype", "batch_size", "pairs", "mean_tokens",
           "padding", "seconds", "pairs_per_s", "tflops", "mfu", "ours_speedup", "same_top10"]
REALISTIC_LOG_MEDIAN_WORDS = 4.6          # median ~100 words, like MS MARCO / Wikipedia passages
FULL_LOG_MEDIAN_WORDS = 20.0              # every passage is capped at max_words: all pairs are truncated


@dataclass(frozen=True)
class Architecture:
    reranker: str          # our registered backend that scores it
    shape_of: str          # the published checkpoint whose shape ``real`` copies
    family: str            # xlm-roberta | t5 | qwen3
    real: dict[str, Any]
    tiny: dict[str, Any]
    baselines: tuple[str, ...] = field(default=())   # "sentence-transformers", "rerankers"
    rerankers_type: str | None = None                 # model_type for rerankers.Reranker


ARCHITECTURES = {
    "xlmr-large": Architecture(
        "bge-reranker-v2-m3", "BAAI/bge-reranker-v2-m3", "xlm-roberta",
        real=dict(vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, max_position_embeddings=8194),
        tiny=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=1026, initializer_range=0.5),
        baselines=("sentence-transformers", "rerankers"), rerankers_type="cross-encoder"),
    "t5-base": Architecture(
        "monot5", "castorini/monot5-base-msmarco-10k", "t5",
        real=dict(vocab_size=32128, d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12),
        tiny=dict(d_model=32, d_ff=64, d_kv=8, num_heads=2, num_layers=2),
        baselines=("rerankers",), rerankers_type="t5"),
    "t5-large": Architecture(
        "monot5-large", "castorini/monot5-large-msmarco-10k", "t5",
        real=dict(vocab_size=32128, d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24),
        tiny=dict(d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=3),
        baselines=("rerankers",), rerankers_type="t5"),
    "qwen3-0.6b": Architecture(
        "qwen3-reranker", "Qwen/Qwen3-Reranker-0.6B", "qwen3",
        real=dict(vocab_size=151669, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                  rope_theta=1000000.0, tie_word_embeddings=True),
        tiny=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=24, max_position_embeddings=4096, tie_word_embeddings=False,
                  initializer_range=0.5)),
}

# Runs in a clean interpreter that imports the pip `rerankers` package; prints {"seconds", "lengths", "padded",
# "rankings", "attention", "dtype"}. Token counts come from the attention masks its model is called with (kept
# without a host sync).
THEIR_SIDE = r"""
import functools, json, sys, time
import torch
from rerankers import Reranker
cfg = json.load(open(sys.argv[1]))
dtype = getattr(torch, cfg["dtype"])
ranker = Reranker(cfg["model"], model_type=cfg["model_type"], device=cfg["device"], dtype=dtype, verbose=0,
                  batch_size=cfg["batch_size"], model_kwargs={"attn_implementation": "sdpa"})
if cfg["model_type"] == "t5":   # T5Ranker truncates at a fixed 512 tokens, not at the tokenizer's limit
    ranker._get_scores = functools.partial(ranker._get_scores, max_length=cfg["max_length"])
masks, forward = [], ranker.model.forward
def recording_forward(*args, **kwargs):
    masks.append(kwargs["attention_mask"])
    return forward(*args, **kwargs)
ranker.model.forward = recording_forward
lists = cfg["lists"]
ranker.rank(lists[0]["query"], lists[0]["docs"], doc_ids=lists[0]["docids"])   # warm-up
masks.clear()
sync = torch.cuda.synchronize if cfg["device"].startswith("cuda") else (lambda: None)
sync()
t0 = time.perf_counter()
rankings = [[r.doc_id for r in ranker.rank(l["query"], l["docs"], doc_ids=l["docids"]).results] for l in lists]
sync()
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "lengths": [n for m in masks for n in m.sum(-1).tolist()],
                  "padded": sum(m.numel() for m in masks),
                  "rankings": rankings, "attention": ranker.model.config._attn_implementation,
                  "dtype": str(ranker.model.dtype).removeprefix("torch.")}))
"""


def pair_flops(config, n_tokens: int) -> int:
    """Model FLOPs of scoring one pair whose model input is ``n_tokens`` tokens long (special and prompt tokens
    included, padding not), as our backends run it (see the module docstring)."""
    length = n_tokens
    if config.model_type in ("xlm-roberta", "bert"):
        d = config.hidden_size
        layer = 2 * length * (4 * d * d + 2 * d * config.intermediate_size) + 4 * length * length * d
        head = 2 * (d * d + d * config.num_labels)       # dense + output projection on the first token
        return config.num_hidden_layers * layer + head
    if config.model_type == "t5":
        d, inner = config.d_model, config.num_heads * config.d_kv
        ffn = (3 if config.is_gated_act else 2) * d * config.d_ff
        encoder = config.num_layers * (2 * length * (4 * d * inner + ffn) + 4 * length * length * inner)
        # One decoder step: self-attention (q, k, v, o) over itself, cross-attention's q and o on that token but k
        # and v projecting every encoder state, scores against the encoder states, the feed-forward block.
        decoder_layer = (2 * (4 * d * inner + 2 * d * inner + ffn) + 4 * inner
                         + 2 * length * 2 * d * inner + 4 * length * inner)
        return encoder + config.num_decoder_layers * decoder_layer + 2 * d * config.vocab_size
    if config.model_type == "qwen3":
        d = config.hidden_size
        q_width = config.num_attention_heads * config.head_dim
        kv_width = config.num_key_value_heads * config.head_dim
        linear = 2 * d * q_width + 2 * d * kv_width + 3 * d * config.intermediate_size   # q, o, k, v, gated MLP
        layer = 2 * length * linear + 4 * length * length * q_width
        return config.num_hidden_layers * layer + 2 * d * config.vocab_size           # LM head, last position
    raise ValueError(f"no FLOP formula for model type {config.model_type!r}")


def peak_tflops(device: str, override: float | None) -> tuple[float | None, str]:
    """(dense bf16 peak, device name); the peak is None for a device missing from the table without override."""
    import torch

    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else device
    if override is not None:
        return override, name
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None), name


def tokenizer_corpus(seed: int) -> list[str]:
    from benchmarks.throughput import WORDS

    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=20)) for _ in range(500)]


def build_checkpoint(arch: Architecture, folder: Path, tiny: bool, max_length: int, device: str, dtype,
                     seed: int) -> int:
    """Save a random-weight model of ``arch``'s shape (tiny or published) with a trained tokenizer of its family
    into ``folder``, loadable by our backend, sentence-transformers and rerankers alike; returns its number of
    parameters."""
    import torch
    from transformers import (Qwen3Config, Qwen3ForCausalLM, T5Config, T5ForConditionalGeneration,
                              XLMRobertaConfig, XLMRobertaForSequenceClassification)

    from benchmarks import tiny_models

    corpus = tokenizer_corpus(seed)
    shape = arch.tiny if tiny else arch.real
    folder.mkdir(parents=True, exist_ok=True)
    if arch.family == "xlm-roberta":
        tokenizer = tiny_models.xlmr_tokenizer(corpus)
        tokenizer.model_max_length = max_length
        tokenizer.save_pretrained(folder)
        config = XLMRobertaConfig(**{"vocab_size": len(tokenizer), **shape}, type_vocab_size=1, num_labels=1,
                                  layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
        model_class = XLMRobertaForSequenceClassification
    elif arch.family == "t5":
        vocab = tiny_models.t5_tokenizer(folder, corpus, vocab_size=300, model_max_length=max_length)
        config = T5Config(**{"vocab_size": vocab, **shape}, feed_forward_proj="relu", tie_word_embeddings=True,
                          decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        model_class = T5ForConditionalGeneration
    else:
        from rerankers import qwen3

        # The judging prompt in the corpus, so that it takes about as many tokens as with Qwen's own vocabulary.
        prompt = [qwen3.PREFIX + qwen3.PAIR.format(instruction=qwen3.DEFAULT_INSTRUCTION, query="", doc="")
                  + qwen3.SUFFIX] * 50
        tokenizer = tiny_models.chatml_tokenizer(None, corpus + prompt, vocab_size=1000)
        tokenizer.model_max_length = max_length
        tokenizer.save_pretrained(folder)
        config = Qwen3Config(**{"vocab_size": len(tokenizer), **shape}, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        model_class = Qwen3ForCausalLM
    torch.manual_seed(seed)
    with torch.device(device):
        model = model_class(config).to(dtype)
    model.save_pretrained(folder)
    return model.num_parameters()


def input_lists(n_pairs: int, n_candidates: int, lengths: str, max_length: int, seed: int):
    from benchmarks.throughput import synthetic_lists

    n_candidates = min(n_candidates, n_pairs)
    log_median = REALISTIC_LOG_MEDIAN_WORDS if lengths == "realistic" else FULL_LOG_MEDIAN_WORDS
    return synthetic_lists(max(1, n_pairs // n_candidates), n_candidates, seed, log_median_words=log_median,
                           max_words=max_length + 100)


class MaskRecorder:
    """Keeps the attention mask of every forward call of a model (tensors only: no host sync while timing);
    ``lengths()`` then gives the real token count of every row the model read. It wraps the instance's ``forward``
    rather than adding a hook, since sentence-transformers calls ``model.forward`` directly."""

    def __init__(self, model):
        self.masks: list = []
        self.model = model
        forward = model.forward

        def recording_forward(*args, **kwargs):
            self.masks.append(kwargs["attention_mask"])
            return forward(*args, **kwargs)

        model.forward = recording_forward

    def lengths(self) -> list[int]:
        return [int(n) for m in self.masks for n in m.sum(-1).tolist()]

    def padded(self) -> int:
        """Token positions computed, padding included."""
        return sum(m.numel() for m in self.masks)

    def remove(self) -> None:
        del self.model.forward


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def compile_blocks(model) -> int:
    """torch.compile every transformer block of ``model`` in place (transformers' ``GradientCheckpointingLayer``s:
    XLM-R layers, T5 blocks, Qwen3 decoder layers); returns how many. They all run through one shared wrapper
    function, whose variants (T5's first block, its decoder blocks, the last, smaller batch) exceed dynamo's default
    limit of 8 recompilations, past which it silently runs eagerly: the limit is raised and the previous model's
    compilations dropped."""
    import torch
    from transformers.modeling_layers import GradientCheckpointingLayer

    torch._dynamo.reset()
    torch._dynamo.config.recompile_limit = 64
    blocks = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    for block in blocks:
        block.compile(dynamic=True)
    return len(blocks)


def timed(device: str, run):
    synchronize(device)
    t0 = time.perf_counter()
    result = run()
    synchronize(device)
    return result, time.perf_counter() - t0


def our_variants(args) -> list[tuple[str, ...]]:
    """Our path as is, then with each requested speed-up added to the previous row's: prefetch, compile."""
    variants = [()]
    for flag in ("prefetch", "compile"):
        if getattr(args, flag):
            variants.append(variants[-1] + (flag,))
    return variants


def time_ours(arch: Architecture, folder: Path, lists, args) -> list[tuple[dict, list[list[str]]]]:
    """One timed run of our path per variant, on the same model (compiled in place when a variant asks)."""
    from rerankers.registry import RerankerSettings, get_reranker

    reranker = get_reranker(arch.reranker, RerankerSettings(
        checkpoint=str(folder), device=args.device, dtype=args.dtype, batch_size=args.batch_size,
        max_length=args.max_length))
    model = reranker.model
    recorder = MaskRecorder(model)
    runs = []
    for variant in our_variants(args):
        reranker.settings.prefetch = "prefetch" in variant
        compiled = "compile" in variant
        if compiled:
            compile_blocks(model)
        reranker.rerank(lists if compiled else lists[:1])   # warm-up; compiled: every shape before timing
        recorder.masks.clear()
        rankings, seconds = timed(args.device, lambda: reranker.rerank(lists))
        runs.append(({"implementation": " +".join(("ours",) + variant),
                      "attention": model.config._attn_implementation, "dtype": model_dtype(model),
                      "seconds": seconds, "lengths": recorder.lengths(), "padded": recorder.padded()},
                     [r.docids for r in rankings]))
    recorder.remove()
    return runs


def time_sentence_transformers(folder: Path, lists, args) -> tuple[dict, list[list[str]]]:
    from sentence_transformers import CrossEncoder

    from rerankers.base import ranking_from_scores

    dtype = resolve_dtype(args)
    model = CrossEncoder(str(folder), device=args.device, max_length=args.max_length, local_files_only=True,
                         model_kwargs={"dtype": dtype, "attn_implementation": "sdpa"})
    pairs = [(cl.query.text, c.doc.as_passage()) for cl in lists for c in cl.candidates]
    recorder = MaskRecorder(model.model)
    model.predict(pairs[:len(lists[0].candidates)], batch_size=args.batch_size)   # warm-up
    recorder.masks.clear()
    scores, seconds = timed(args.device, lambda: model.predict(pairs, batch_size=args.batch_size).tolist())
    rankings, start = [], 0
    for cl in lists:
        rankings.append(ranking_from_scores(cl, scores[start:start + len(cl.candidates)]).docids)
        start += len(cl.candidates)
    row = {"implementation": "sentence-transformers CrossEncoder.predict",
           "attention": model.model.config._attn_implementation, "dtype": model_dtype(model.model),
           "seconds": seconds, "lengths": recorder.lengths(), "padded": recorder.padded()}
    return row, rankings


def time_rerankers(arch: Architecture, folder: Path, lists, args, tmp: Path) -> tuple[dict, list[list[str]]]:
    cfg = tmp / "their.json"
    cfg.write_text(json.dumps({
        "model": str(folder), "model_type": arch.rerankers_type, "device": args.device,
        "dtype": str(resolve_dtype(args)).removeprefix("torch."), "batch_size": args.batch_size,
        "max_length": args.max_length,
        "lists": [{"query": cl.query.text, "docs": [c.doc.as_passage() for c in cl.candidates],
                   "docids": [c.docid for c in cl.candidates]} for cl in lists]}))
    env = {**os.environ, "PYTHONPATH": str(args.rerankers_dir)}
    done = subprocess.run([sys.executable, "-c", THEIR_SIDE, str(cfg)], cwd=tmp, env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"error: the rerankers side failed on {folder.name}:\n{done.stderr[-3000:]}")
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    row = {"implementation": f"rerankers {arch.rerankers_type}", "attention": theirs["attention"],
           "dtype": theirs["dtype"], "seconds": theirs["seconds"], "lengths": theirs["lengths"],
           "padded": theirs["padded"]}
    return row, theirs["rankings"]


def model_dtype(model) -> str:
    return str(model.dtype).removeprefix("torch.")


def resolve_dtype(args):
    from bench.environment import resolve_dtype as from_name

    return from_name(args.dtype, args.device)


def table_row(row: dict, name: str, config, args, peak: float | None) -> dict:
    """The table row of one timed run: throughput, achieved TFLOPS and MFU from its own token counts."""
    lengths, padded = row.pop("lengths"), row.pop("padded")
    tflops = sum(pair_flops(config, n) for n in lengths) / row["seconds"] / 1e12
    return {"model": name, **row, "batch_size": args.batch_size, "pairs": len(lengths),
            "mean_tokens": sum(lengths) / len(lengths), "padding": 1 - sum(lengths) / padded,
            "pairs_per_s": len(lengths) / row["seconds"], "tflops": tflops, "mfu": tflops / peak if peak else None}


def benchmark_model(name: str, args, peak: float | None, lists, tmp: Path) -> list[dict]:
    """Rows of ``name``: ours (plain, then each variant asked for), then each baseline; ``ours_speedup`` is our
    fastest row's pairs/s over the row's, ``same_top10`` the queries whose top 10 equals plain ours'."""
    import torch
    from transformers import AutoConfig

    arch = ARCHITECTURES[name]
    build_device = args.device if args.device.startswith("cuda") else "cpu"
    folder = tmp / name
    n_params = build_checkpoint(arch, folder, args.tiny, args.max_length, build_device, resolve_dtype(args),
                                args.seed)
    runs = time_ours(arch, folder, lists, args)
    for baseline in arch.baselines:
        if baseline not in args.baselines:
            continue
        if baseline == "rerankers" and not (args.rerankers_dir / "rerankers").is_dir():
            print(f"note: rerankers is not installed in {args.rerankers_dir} (run --setup): skipped", file=sys.stderr)
            continue
        gc.collect()
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        runs.append(time_sentence_transformers(folder, lists, args) if baseline == "sentence-transformers"
                    else time_rerankers(arch, folder, lists, args, tmp))
    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    rows = [table_row(row, name, config, args, peak) for row, _ in runs]
    fastest = max(r["pairs_per_s"] for r in rows if r["implementation"].startswith("ours"))
    eager_rankings = runs[0][1]
    for i, (row, (_, rankings)) in enumerate(zip(rows, runs)):
        same = sum(a[:10] == b[:10] for a, b in zip(eager_rankings, rankings))
        row.update(params_m=n_params / 1e6, ours_speedup=fastest / row["pairs_per_s"],
                   same_top10=f"{same}/{len(lists)}" if i else "")
    return rows


def markdown_table(rows: list[dict]) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.to_markdown(index=False, floatfmt=".4g")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="install the rerankers package for the comparison")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on a GPU, fp32 on a CPU) | bfloat16 | float32 "
                                                       "| float16")
    parser.add_argument("--models", nargs="+", choices=list(ARCHITECTURES), default=list(ARCHITECTURES))
    parser.add_argument("--pairs", type=int, default=10000, help="pairs per model (queries x --candidates)")
    parser.add_argument("--candidates", type=int, default=100, help="candidates per query")
    parser.add_argument("--lengths", choices=("realistic", "full"), default="realistic")
    parser.add_argument("--max-length", type=int, default=512, help="truncation, in tokens, on every side")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass, on every side")
    parser.add_argument("--baselines", nargs="*", choices=("sentence-transformers", "rerankers"),
                        default=["sentence-transformers", "rerankers"])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (a dry run on a CPU)")
    parser.add_argument("--prefetch", action="store_true", help="also time ours tokenising the next batch in a "
                                                                   "worker thread")
    parser.add_argument("--compile", action="store_true", help="also time ours with its transformer blocks compiled")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense peak for MFU, instead of the table")
    parser.add_argument("--rerankers-dir", type=Path, help="folder holding the pip rerankers package "
                                                            "(default: the one --setup installs into)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the table: .csv, else Markdown")
    args = parser.parse_args(argv)
    from benchmarks.throughput import rerankers_folder, setup_rerankers

    if args.setup:
        setup_rerankers()
        return 0
    args.rerankers_dir = (args.rerankers_dir or rerankers_folder()).resolve()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: --device cuda: CUDA is not available to torch here (use --device cpu --tiny for a dry run)")
    peak, device_name = peak_tflops(args.device, args.peak_tflops)
    lists = input_lists(args.pairs, args.candidates, args.lengths, args.max_length, args.seed)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows += benchmark_model(name, args, peak, lists, Path(tmp))
            gc.collect()
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    table = markdown_table(rows)
    print(f"{device_name}, dense bf16 peak {f'{peak:g} TFLOPS' if peak else 'unknown (pass --peak-tflops)'}; "
          f"{'tiny' if args.tiny else 'published'} shapes, random weights; {args.lengths} lengths; "
          f"torch {torch.__version__}\n")
    print(table)
    if args.out:
        if args.out.suffix == ".csv":
            import pandas as pd

            pd.DataFrame(rows, columns=COLUMNS).to_csv(args.out, index=False)
        else:
            args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
