"""The reranker names (``bench.registry.Registry``, kind ``reranker``): exact names and aliases, each a lazy
``"module:Class"`` entry with its checkpoint, kind (pointwise | listwise | baseline), pip extra and description, so
``python -m bench list`` imports no backend and a backend whose dependencies are missing breaks only itself.

A backend is one file (``rerankers/<backend>.py``, a ``Reranker`` subclass) plus one ``RERANKERS.add`` line below; the
same class may serve several checkpoints under several names. Outside this repository a package adds one through an
entry point (group ``rerank_bench.rerankers``), describing itself with a ``registry_meta`` class attribute; this is
how ``rrpo/`` registers its ``rrpo`` reranker (pyproject.toml), so that ``rerankers/`` never imports the trainer.

``resolve(name)`` gives a name's ``RerankerSpec`` (a run resolves each name once, in ``RunConfig.validate``, and
passes the spec on); ``get_reranker(name or spec, settings)`` builds ``cls(checkpoint=..., settings=...)``.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.errors import UserError
from bench.llm.hf import GEMMA3_NAME, SMOLLM2_NAME
from bench.registry import Registry
from rerankers.base import Reranker, RerankerSettings
from rerankers.cascade import Cascade, is_cascade, parse_cascade

__all__ = ["RERANKERS", "RerankerSettings", "RerankerSpec", "components", "describe", "get_reranker", "resolve",
           "weights_fingerprint"]

RERANKERS = Registry("reranker", base=Reranker)

_BASELINES = "rerankers.baselines"
RERANKERS.add("none", f"{_BASELINES}:FirstStageOrder", kind="baseline",
              description="No reranking: the first-stage order and scores")
RERANKERS.add("random", f"{_BASELINES}:RandomOrder", kind="baseline",
              description="A random order, seeded by --seed and the query id")
RERANKERS.add("oracle", f"{_BASELINES}:OracleOrder", kind="baseline",
              description="Upper bound: candidates sorted by their labels (qrels, else answer containment)")
RERANKERS.add("minilm", "rerankers.minilm:MiniLMBiEncoder", aliases=("all-minilm-l6-v2",),
              checkpoint="sentence-transformers/all-MiniLM-L6-v2", kind="pointwise",
              description="all-MiniLM-L6-v2 bi-encoder, cosine(query, passage)")

_CROSS = "rerankers.cross_encoder"
for _name, _aliases, _checkpoint, _target, _description in (
        ("bge-reranker-v2-m3", ("bge-m3-reranker",), "BAAI/bge-reranker-v2-m3", "FlagCrossEncoder",
         "BGE reranker v2 M3 (XLM-R cross-encoder, multilingual; FlagReranker's 512 tokens, query at most 3/4)"),
        ("bge-reranker-base", (), "BAAI/bge-reranker-base", "FlagCrossEncoder",
         "BGE reranker base (XLM-R cross-encoder; FlagReranker's 512 tokens, query at most 3/4)"),
        ("minilm-cross-encoder", ("ms-marco-minilm", "ms-marco-MiniLM-L-6-v2"), "cross-encoder/ms-marco-MiniLM-L-6-v2",
         "CrossEncoder", "MS MARCO MiniLM-L6 cross-encoder (sentence-transformers)"),
        ("gte-reranker", ("gte-multilingual-reranker-base",), "Alibaba-NLP/gte-multilingual-reranker-base",
         "RemoteCodeCrossEncoder", "GTE multilingual reranker base (needs --trust-remote-code: runs the checkpoint's "
                                   "code)"),
        ("jina-reranker-v2", ("jina-reranker-v2-base-multilingual",), "jinaai/jina-reranker-v2-base-multilingual",
         "RemoteCodeCrossEncoder", "Jina reranker v2 base multilingual (needs --trust-remote-code: runs the "
                                   "checkpoint's code)")):
    RERANKERS.add(_name, f"{_CROSS}:{_target}", aliases=_aliases, checkpoint=_checkpoint, kind="pointwise",
                  description=_description)

for _name, _aliases, _checkpoint, _description in (
        ("monot5", ("monot5-base",), "castorini/monot5-base-msmarco-10k",
         "monoT5 base, MS MARCO 10k steps (pygaggle's default)"),
        ("monot5-base-100k", (), "castorini/monot5-base-msmarco", "monoT5 base, MS MARCO 100k steps"),
        ("monot5-large", (), "castorini/monot5-large-msmarco-10k", "monoT5 large, MS MARCO 10k steps"),
        ("monot5-large-100k", (), "castorini/monot5-large-msmarco", "monoT5 large, MS MARCO 100k steps"),
        ("monot5-3b", (), "castorini/monot5-3b-msmarco-10k", "monoT5 3B, MS MARCO 10k steps"),
        ("monot5-3b-100k", (), "castorini/monot5-3b-msmarco", "monoT5 3B, MS MARCO 100k steps")):
    RERANKERS.add(_name, "rerankers.monot5:MonoT5", aliases=_aliases, checkpoint=_checkpoint, kind="pointwise",
                  extra="t5", description=_description)

for _name, _aliases, _checkpoint in (("duot5", ("duot5-base",), "castorini/duot5-base-msmarco"),
                                    ("duot5-3b", (), "castorini/duot5-3b-msmarco")):
    RERANKERS.add(_name, "rerankers.duot5:DuoT5", aliases=_aliases, checkpoint=_checkpoint, kind="pairwise",
                  extra="t5", description=f"duoT5 pairwise ({_checkpoint}): symmetric sum over the top N's ordered "
                                          f"pairs (pygaggle)")

for _name, _aliases, _checkpoint, _description in (
        ("colbertv2", ("colbert", "colbertv2.0"), "colbert-ir/colbertv2.0",
         "ColBERTv2 late interaction (MaxSim over [MASK]-augmented query tokens), no index"),
        ("answerai-colbert-small", ("answerai-colbert-small-v1",), "answerdotai/answerai-colbert-small-v1",
         "answerai-colbert-small-v1 late interaction (33M, 96-dim), no index"),
        ("gte-moderncolbert", ("gte-moderncolbert-v1",), "lightonai/GTE-ModernColBERT-v1",
         "GTE-ModernColBERT-v1 late interaction (a PyLate model), no index")):
    RERANKERS.add(_name, "rerankers.colbert:ColBERT", aliases=_aliases, checkpoint=_checkpoint, kind="late-interaction",
                  description=_description)

for _name, _aliases, _size in (("qwen3-reranker", ("qwen3-reranker-0.6b",), "0.6B"), ("qwen3-reranker-4b", (), "4B"),
                               ("qwen3-reranker-8b", (), "8B")):
    RERANKERS.add(_name, "rerankers.qwen3:Qwen3Reranker", aliases=_aliases, checkpoint=f"Qwen/Qwen3-Reranker-{_size}",
                  kind="pointwise", description=f"Qwen3-Reranker {_size} (yes/no logits of a causal LM)")

RERANKERS.add("bge-reranker-v2-gemma", "rerankers.bge_llm:BGELLMReranker", checkpoint="BAAI/bge-reranker-v2-gemma",
              kind="pointwise", description="BGE reranker v2 gemma (Gemma-2B; FlagLLMReranker's A/B prompt, the 'Yes' "
                                            "logit)")
RERANKERS.add("bge-reranker-v2-minicpm-layerwise", "rerankers.bge_llm:BGELayerwiseReranker",
              aliases=("bge-reranker-v2-minicpm",), checkpoint="BAAI/bge-reranker-v2-minicpm-layerwise",
              kind="pointwise", description="BGE reranker v2 MiniCPM layerwise (the head of layer cutoff_layer, "
                                            "default 28; needs --trust-remote-code: runs the checkpoint's code)")
for _name, _aliases, _size in (("mxbai-rerank-base-v2", ("mxbai-rerank-v2",), "base"),
                               ("mxbai-rerank-large-v2", (), "large")):
    RERANKERS.add(_name, "rerankers.mxbai:MxbaiRerankV2", aliases=_aliases,
                  checkpoint=f"mixedbread-ai/mxbai-rerank-{_size}-v2", kind="pointwise",
                  description=f"mxbai-rerank {_size} v2 (Qwen2; the mxbai-rerank package's prompt, logit 1 - logit 0)")

for _name, _aliases, _checkpoint, _extra, _description in (
        ("upr-smollm2", ("upr",), SMOLLM2_NAME, None,
         "UPR (question likelihood, Sachan et al. 2022) under SmolLM2-135M-Instruct, offline"),
        ("upr-gemma3-270m", (), GEMMA3_NAME, "gemma", "UPR under the Gemma-3-270m base model, offline"),
        ("upr-t0-3b", (), "bigscience/T0_3B", "t5", "UPR under T0-3B (the paper's seq2seq LM)")):
    RERANKERS.add(_name, "rerankers.upr:UPR", aliases=_aliases, checkpoint=_checkpoint, kind="pointwise",
                  extra=_extra, description=_description)

for _name, _target, _model, _description in (
        ("cohere-rerank", "CohereRerank", "rerank-v3.5", "Cohere rerank API (POST /v2/rerank), key in COHERE_API_KEY"),
        ("jina-rerank-api", "JinaRerank", "jina-reranker-v2-base-multilingual",
         "Jina rerank API (POST /v1/rerank), key in JINA_API_KEY"),
        ("voyage-rerank", "VoyageRerank", "rerank-2.5", "Voyage rerank API (POST /v1/rerank), key in VOYAGE_API_KEY")):
    RERANKERS.add(_name, f"rerankers.rerank_api:{_target}", checkpoint=_model, kind="api", description=_description)

RERANKERS.add("rankgpt", "rerankers.rankgpt:RankGPT", aliases=("rank-gpt",), checkpoint="gpt-4o-mini", kind="listwise",
              extra="listwise",
              description="RankGPT listwise reranker over an OpenAI-compatible chat API (default gpt-4o-mini)")
RERANKERS.add("rankzephyr", "rerankers.rankzephyr:RankZephyr", aliases=("rank-zephyr", "rank_zephyr_7b_v1_full"),
              checkpoint="castorini/rank_zephyr_7b_v1_full", kind="listwise", extra="vllm",
              description="RankZephyr 7B listwise reranker (rank_llm's sliding window)")

for _name, _aliases, _size in (("lit5-distill", ("lit5", "lit5-distill-base"), "base"),
                               ("lit5-distill-large", (), "large"), ("lit5-distill-xl", (), "xl")):
    RERANKERS.add(_name, "rerankers.lit5:LiT5Distill", aliases=_aliases, checkpoint=f"castorini/LiT5-Distill-{_size}",
                  kind="listwise", extra="t5",
                  description=f"LiT5-Distill {_size}: FiD listwise (passages encoded apart, one decoder), rank_llm's "
                              f"window")
RERANKERS.add("first", "rerankers.first:FIRST", aliases=("first-model", "First_Model"),
              checkpoint="rryisthebest/First_Model", kind="listwise", extra="listwise",
              description="FIRST listwise reranker: each window ordered by its first generated identifier's logits")

@dataclass(frozen=True)
class RerankerSpec:
    """How a registered name is described, known without importing its backend (for built-in entries)."""

    name: str                          # the registered name an alias stands for
    checkpoint: str | None = None
    kind: str = "pointwise"            # pointwise | pairwise | late-interaction | listwise | baseline | api | cascade
    extra: str | None = None           # the pip extra that installs its dependencies
    description: str = ""

    def backend(self) -> type[Reranker]:
        """Its ``Reranker`` class, imported on first use (by its registered name: no alias to resolve again)."""
        return RERANKERS.load(self.name)


def components(name: str) -> list[str]:
    """The registered rerankers a name runs: a cascade's stages (``rerankers.cascade``), else the name itself."""
    return [stage.name for stage in parse_cascade(name)] if is_cascade(name) else [name]


def resolve(name: str) -> RerankerSpec:
    """The spec of an exact name or alias, or of a cascade of them; an unknown name fails in one line listing the
    registered ones."""
    if is_cascade(name):
        specs = [resolve(stage) for stage in components(name)]
        return RerankerSpec(name, kind="cascade", description=" > ".join(f"{s.name} ({s.kind})" for s in specs))
    return RerankerSpec(RERANKERS.entry(name).name, **RERANKERS.meta(name))


def get_reranker(name: str | RerankerSpec, settings: RerankerSettings | None = None,
                 given_name: str | None = None) -> Reranker:
    """The reranker of a name, or of a spec already resolved (``resolve``); a cascade's stages are each built with
    these settings. It is named ``given_name`` (default: the name as given, an alias staying an alias)."""
    spec = name if isinstance(name, RerankerSpec) else resolve(name)
    given_name = given_name or (name if isinstance(name, str) else spec.name)
    if spec.kind == "cascade":
        return Cascade.build(spec.name, lambda stage: get_reranker(stage, settings))
    settings = settings or RerankerSettings()
    reranker = spec.backend()(checkpoint=settings.checkpoint or spec.checkpoint, settings=settings)
    reranker.name = given_name
    return reranker


def weights_fingerprint(spec: RerankerSpec, checkpoint: str | None = None) -> str | None:
    """What identifies the weights ``get_reranker(spec)`` would load (``checkpoint`` overrides the registered one),
    without loading them."""
    return spec.backend().weights_fingerprint(checkpoint or spec.checkpoint)


def describe() -> list[dict[str, str]]:
    """Rows for ``python -m bench list``: every name with its aliases, checkpoint, kind, extra and where it comes from.
    Built-in entries are described without importing them; a plugin that fails to load is listed with its error."""
    rows = []
    for entry in RERANKERS.entries():
        try:
            spec = resolve(entry.name)
        except UserError as exc:      # a broken plugin is shown, not allowed to hide the others
            spec = RerankerSpec(entry.name, kind="?", description=f"cannot load: {exc}")
        rows.append({"name": entry.name, "aliases": ", ".join(sorted(entry.aliases)),
                     "checkpoint": spec.checkpoint or "-", "kind": spec.kind, "extra": spec.extra or "-",
                     "source": entry.source, "description": spec.description})
    return rows
