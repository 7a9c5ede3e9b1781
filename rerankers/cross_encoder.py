"""Pointwise rerankers on transformers checkpoints: the shared loader (``TransformersPointwise``) and the cross-encoders
(``AutoModelForSequenceClassification``: BGE, GTE, Jina, MS MARCO MiniLM).

A cross-encoder reads the pair as the tokenizer's own pair encoding (``[CLS] q [SEP] p [SEP]`` for BERT,
``<s> q </s></s> p </s>`` for XLM-R), truncated longest-first to the model's limit, exactly as sentence-transformers'
``CrossEncoder`` and the checkpoints' model cards feed it; the BGE rerankers as their cards' ``FlagReranker`` does
(``FlagCrossEncoder``: 512 tokens, the query capped at 3/4 of them). Its score is the single relevance logit (or, for a
two-label head, the log-probability of the last, "relevant" label).
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from bench.errors import RemoteCodeRefused, UserError
from bench.environment import hub_offline, resolve_device, resolve_dtype
from rerankers.base import PointwiseReranker, RerankerSettings

# A tokenizer without a configured limit reports this huge sentinel as model_max_length.
_NO_LIMIT = 10**6


def load_pretrained(load: Callable[..., Any], checkpoint: str, **kwargs: Any) -> Any:
    """``load(checkpoint, **kwargs)`` (a ``from_pretrained``), with a failure to find or read the checkpoint, or to
    import its own code (written for another transformers), turned into a one-line UserError naming it."""
    try:
        return load(checkpoint, **kwargs)
    except ImportError as exc:
        if not kwargs.get("trust_remote_code"):
            raise
        from transformers import __version__

        raise UserError(f"checkpoint {checkpoint!r}: its model code does not import with transformers {__version__}: "
                        f"{exc}") from exc
    except (OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        mode = " offline" if hub_offline() else ""
        raise UserError(f"could not load checkpoint {checkpoint!r}{mode}: {reason}") from exc


class TransformersPointwise(PointwiseReranker):
    """What every transformers-based pointwise backend shares: device/dtype from settings, the tokenizer, loading
    with one-line errors, batch size and the truncation length. Subclasses load ``self._model`` in ``load_model``
    and implement ``score``."""

    padding_side = "right"
    needs_remote_code = False   # the architecture ships as code in the checkpoint (loads only with the user's flag)

    def __init__(self, checkpoint: str | None = None, settings: RerankerSettings | None = None):
        super().__init__(checkpoint, settings)
        if not self.checkpoint:
            raise UserError(f"{type(self).__name__}: no checkpoint given (set --checkpoint to a local path or hub id)")
        # Only the user's explicit --trust-remote-code lets a checkpoint's own Python code run, never the backend's
        # registration nor a file inside a checkpoint (an RRPO config.json naming a remote-code backbone).
        self.trust_remote_code = self.settings.trust_remote_code is True
        if self.needs_remote_code and not self.trust_remote_code:
            raise RemoteCodeRefused(self.checkpoint)
        from transformers import AutoTokenizer  # lazy: torch/transformers load only when a model runs

        self.device = resolve_device(self.settings.device)
        self.dtype = resolve_dtype(self.settings.dtype, self.device)
        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.model_path(),
                                         trust_remote_code=self.trust_remote_code)
        self.tokenizer.padding_side = self.padding_side
        self._model = self.load_model()
        self._model.to(self.device).eval()
        self.max_length = self.settings.max_length or self.default_max_length()

    @classmethod
    def preflight(cls, name: str, checkpoint: str | None, settings: RerankerSettings) -> None:
        """A checkpoint that ships its architecture as code stops here without the user's ``--trust-remote-code``,
        before the run's folder is made; then the weights, as every reranker's."""
        if cls.needs_remote_code and settings.trust_remote_code is not True:
            raise RemoteCodeRefused(checkpoint)
        super().preflight(name, checkpoint, settings)

    def model_path(self) -> str:
        """Where the tokenizer and weights load from: the checkpoint itself (a hub id or folder) unless a backend
        maps its checkpoint names to local folders."""
        return self.checkpoint

    @abstractmethod
    def load_model(self) -> Any:
        """The checkpoint's torch module (loaded with ``load_pretrained``)."""

    @abstractmethod
    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Any:
        """The pairs tokenised, on the CPU."""

    @abstractmethod
    def score_encoded(self, inputs: Any):
        """Scores from ``encode``'s output: to the device, forward pass."""

    def score(self, queries: Sequence[str], passages: Sequence[str]):
        return self.score_encoded(self.encode(queries, passages))

    @property
    def model(self):
        return self._model

    def default_max_length(self) -> int:
        """The tokenizer's configured limit, else the model's position limit, else 512."""
        limit = self.tokenizer.model_max_length
        if limit and limit < _NO_LIMIT:
            return int(limit)
        return int(getattr(self._model.config, "max_position_embeddings", None) or 512)

    def identity(self) -> dict:
        return {**super().identity(), "max_length": self.max_length, "dtype": str(self.dtype).removeprefix("torch.")}


class CrossEncoder(TransformersPointwise):
    """Cross-encoder (sequence classification head) scoring each (query, passage) pair."""

    def load_model(self) -> Any:
        # lazy: torch/transformers load only when a model runs
        from transformers import AutoModelForSequenceClassification

        return load_pretrained(AutoModelForSequenceClassification.from_pretrained, self.checkpoint,
                               dtype=self.dtype, trust_remote_code=self.trust_remote_code)

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Any:
        return self.tokenizer(list(queries), list(passages), padding=True, truncation=True,
                              max_length=self.max_length, return_tensors="pt")

    def score_encoded(self, inputs: Any):
        import torch  # lazy: torch/transformers load only when a model runs

        logits = self._model(**inputs.to(self.device)).logits
        if logits.shape[-1] == 1:
            return logits[:, 0]
        return torch.log_softmax(logits.float(), dim=-1)[:, -1]


@dataclass(frozen=True)
class FlagOptions:
    query_max_length: int | None = None     # None: 3/4 of max_length, as FlagReranker


class FlagCrossEncoder(CrossEncoder):
    """The BGE rerankers as their model cards run them, through FlagEmbedding's ``FlagReranker``: 512 tokens (not
    the tokenizer's 8192 for bge-reranker-v2-m3), the query cut first to its own cap (``query_max_length``, by
    default 3/4 of the length), then the passage to what is left; the pair joined by the tokenizer's pair encoding.
    (Truncating longest-first instead would cut a long query's tail to keep the passage.)"""

    Options = FlagOptions
    card_max_length = 512

    def default_max_length(self) -> int:
        return self.card_max_length

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Any:
        # through the fast tokenizer's backend: transformers 5 dropped prepare_for_model, which FlagReranker uses
        backend = self.tokenizer.backend_tokenizer
        query_cap = self.options.query_max_length or self.max_length * 3 // 4
        specials = backend.num_special_tokens_to_add(True)
        rows = []
        for query, passage in zip(queries, passages):
            q = backend.encode(query, add_special_tokens=False)
            q.truncate(query_cap)
            p = backend.encode(passage, add_special_tokens=False)
            p.truncate(max(self.max_length - len(q.ids) - specials, 0))
            pair = backend.post_process(q, p, add_special_tokens=True)
            rows.append({"input_ids": pair.ids, "token_type_ids": pair.type_ids, "attention_mask": pair.attention_mask})
        return self.tokenizer.pad(rows, padding=True, return_tensors="pt")


class RemoteCodeCrossEncoder(CrossEncoder):
    """A cross-encoder whose architecture ships as code in the checkpoint: loading runs that code, so it refuses to
    load unless the settings carry the user's ``trust_remote_code`` option."""

    needs_remote_code = True
