"""Base classes of reranker backends.

``Reranker.rerank(lists) -> rankings`` is the one call the runner makes. ``PointwiseReranker`` implements it from a
differentiable ``score(queries, passages) -> Tensor`` (one score per pair): pairs of all queries are pooled into
length-sorted batches, then each query's candidates are sorted by score (first-stage order breaks ties). The same
``score`` with gradients enabled is what RRPO trains, through the ``model`` module.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from bench.environment import check_weights_available
from bench.errors import UserError
from bench.options import typed_options
from bench.types import Candidate, CandidateList, Query, Ranking, documents


@dataclass(frozen=True)
class NoOptions:
    """The options of a backend that has none of its own."""


@dataclass
class RerankerSettings:
    """What every backend understands; its own options (its ``Options`` dataclass) go in ``options``."""

    checkpoint: str | None = None      # overrides the registered checkpoint (local path or hub id)
    device: str = "auto"               # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"                # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16
    batch_size: int = 32
    max_length: int | None = None      # truncation; None = the model's own limit
    seed: int = 0
    cache_dir: str | None = None
    trust_remote_code: bool = False    # let a checkpoint's own Python code run: only by the user's explicit flag
    prefetch: bool = False             # pointwise: tokenise the next batch in a worker thread (a GPU's idle time)
    engine_factory: Callable[[str], Any] | None = None   # engine spec -> engine: the run's shared, cached engines
    options: Any = None                # the backend's Options, or a mapping of its fields; None: its defaults


# RerankerSettings fields that --reranker-args may set per backend, beside the backend's own options.
PER_BACKEND_SETTINGS = ("checkpoint", "device", "dtype", "batch_size", "max_length", "prefetch")


class Reranker(ABC):
    name: str = ""
    kind: str = "baseline"
    Options: type = NoOptions          # the dataclass of this backend's own options (defaults, types)

    def __init__(self, checkpoint: str | None = None, settings: RerankerSettings | None = None):
        self.checkpoint = checkpoint
        self.settings = settings or RerankerSettings()
        given = self.settings.options
        self.options = given if isinstance(given, self.Options) else \
            typed_options(self.Options, given or {}, f"reranker {type(self).__name__}")

    @abstractmethod
    def rerank(self, lists: Sequence[CandidateList]) -> list[Ranking]:
        """One Ranking per CandidateList, same order, each a permutation of its candidates."""

    def rank(self, query: str, docs: Sequence[str | tuple[str, str]]) -> Ranking:
        """Rank one query's passages, best first: ``docs`` are strings (their ids are their positions, "0", "1",
        ...) or ``(id, text)`` pairs. The ranking's ``docids`` and ``scores`` are the backend's; a batch of queries
        goes through ``rank_batch`` in one ``rerank`` call.

        >>> reranker = bench.load_reranker("minilm")
        >>> reranker.rank("Who wrote Hamlet?", ["Paris is in France.", "Shakespeare wrote Hamlet."]).docids
        ['1', '0']
        """
        return self.rank_batch([query], [docs])[0]

    def rank_batch(self, queries: Sequence[str], docs: Sequence[Sequence[str | tuple[str, str]]]) -> list[Ranking]:
        """``rank`` for many queries at once (``docs[i]`` are query i's passages; qids are "0", "1", ...): one
        ``rerank`` call, the one the runner makes, so a pointwise backend pools every pair into its batches."""
        if len(queries) != len(docs):
            raise UserError(f"rank_batch: {len(queries)} queries but {len(docs)} lists of documents")
        lists = [CandidateList(query=Query(qid=str(i), text=q),
                               candidates=[Candidate(docid=d.docid, score=0.0, doc=d)
                                           for d in documents(ds, "docs" if len(docs) == 1 else f"docs[{i}]")])
                 for i, (q, ds) in enumerate(zip(queries, docs))]
        ranked = iter(self.rerank([cl for cl in lists if cl.candidates]))
        return [next(ranked) if cl.candidates else Ranking(qid=cl.query.qid, docids=[], scores=[]) for cl in lists]

    def identity(self) -> dict:
        """What determines this reranker's output; the runner records it with every ranking it makes."""
        return {"name": self.name, "checkpoint": self.checkpoint}

    def stage_costs(self) -> dict[str, float]:
        """Seconds spent per part of this reranker (a cascade's stages), each a line of the run's cost table; a
        reranker of one part has none beyond its own line."""
        return {}

    @classmethod
    def preflight(cls, name: str, checkpoint: str | None, settings: RerankerSettings) -> None:
        """Fail in one line when this reranker cannot run here (its weights neither local, nor in the hub cache, nor
        downloadable now; its server unreachable), without loading it: the run checks every component so before it
        answers its first question. The default: a checkpoint's weights."""
        if checkpoint is not None:
            check_weights_available(checkpoint, f"reranker {name!r}", f"--checkpoint {name}=FOLDER")

    @classmethod
    def weights_fingerprint(cls, checkpoint: str | None) -> str | None:
        """The weights a run would use, known before they load: a local folder's content hash (so a checkpoint
        retrained in place starts a new run instead of resuming with stale rankings), a hub id itself."""
        if checkpoint is None:
            return None
        from bench.encoders import checkpoint_digest  # lazy: bench.encoders imports torch

        return checkpoint_digest(checkpoint)


class PointwiseReranker(Reranker):
    kind = "pointwise"

    @property
    @abstractmethod
    def model(self):
        """The torch module whose parameters ``score`` depends on (what RRPO trains)."""

    @abstractmethod
    def score(self, queries: Sequence[str], passages: Sequence[str]):
        """Scores (1-D float tensor, on the model's device) for the pairs (queries[i], passages[i]). Runs with
        gradients when they are enabled, so RRPO can back-propagate through it."""

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Any:
        """The CPU-side work of ``score`` (tokenisation), whose result ``score_encoded`` takes: with
        the ``prefetch`` setting, ``score_pairs`` runs it for the next batch in a worker thread while the current batch
        computes. By default the pairs as given."""
        return queries, passages

    def score_encoded(self, inputs: Any):
        """``score`` of the pairs ``encode`` returned ``inputs`` for."""
        return self.score(*inputs)

    def pair_length(self, query: str, passage: str) -> int:
        """A cheap proxy of the tokenised length of a pair, used to sort pairs into batches."""
        return len(query) + len(passage)

    def score_pairs(self, queries: Sequence[str], passages: Sequence[str], batch_size: int | None = None,
                    progress: bool = False) -> list[float]:
        """Score many pairs without gradients, in length-sorted batches; results are in input order."""
        import torch  # lazy: torch/transformers load only when a model runs

        bs = batch_size or self.settings.batch_size
        order = sorted(range(len(queries)), key=lambda i: self.pair_length(queries[i], passages[i]))
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]

        def encoded(k: int) -> Any:
            return self.encode([queries[i] for i in batches[k]], [passages[i] for i in batches[k]])

        # Scores stay on the device until every batch is queued: no host sync per batch, so a GPU computes one batch
        # while the next is tokenised. The prefetch setting also tokenises the next batch in a worker thread
        # (tokenizers release the GIL) while this one is launched; off by default: on a busy CPU the two threads
        # only compete for cores.
        prefetch = self.settings.prefetch
        scores = []
        with torch.inference_mode(), ThreadPoolExecutor(max_workers=1) as worker:
            upcoming = worker.submit(encoded, 0) if prefetch and batches else None
            for k in tqdm(range(len(batches)), desc=f"rerank {self.name}", unit="batch", disable=not progress,
                          leave=False):
                if not prefetch:
                    inputs = encoded(k)
                else:
                    inputs = upcoming.result()
                    upcoming = worker.submit(encoded, k + 1) if k + 1 < len(batches) else None
                scores.append(self.score_encoded(inputs).float())
        out = [0.0] * len(order)
        for i, v in zip(order, torch.cat(scores).cpu().tolist() if scores else []):
            out[i] = v
        return out

    def rerank(self, lists: Sequence[CandidateList]) -> list[Ranking]:
        qs, ps, owner = [], [], []
        for li, cl in enumerate(lists):
            for c in cl.candidates:
                qs.append(cl.query.text)
                ps.append(c.doc.as_passage())
                owner.append(li)
        flat = self.score_pairs(qs, ps, progress=True)
        per_list: list[list[float]] = [[] for _ in lists]
        for li, s in zip(owner, flat):
            per_list[li].append(s)
        return [ranking_from_scores(cl, s) for cl, s in zip(lists, per_list)]


def ranking_from_scores(cl: CandidateList, scores: Sequence[float], info: dict | None = None) -> Ranking:
    """Sort candidates by score, highest first; ties keep first-stage order (a stable sort)."""
    order = sorted(range(len(cl.candidates)), key=lambda i: -scores[i])
    return Ranking(qid=cl.query.qid, docids=[cl.candidates[i].docid for i in order],
                   scores=[float(scores[i]) for i in order], info=info or {})
