"""monoT5 (Nogueira et al., 2020): a T5 fine-tuned to answer ``true``/``false`` to ``Query: q Document: d Relevant:``.

Input format and scoring follow pygaggle's ``MonoT5`` reranker (castorini/pygaggle, ``pygaggle/rerank/transformer.py``
and ``pygaggle/model/decode.py``): the encoder reads ``Query: {q} Document: {d} Relevant:``; the decoder takes one step
from the start token; the score is the log-softmax over the ``▁false``/``▁true`` logits of that step, keeping the
``▁true`` log-probability. The castorini checkpoints ship only a SentencePiece ``spiece.model``, which transformers
converts with ``sentencepiece`` and ``protobuf`` (the ``t5`` extra).
"""
from __future__ import annotations

from typing import Any, Sequence

from bench.errors import UserError, require
from rerankers.cross_encoder import TransformersPointwise, load_pretrained

MONOT5_INPUT = "Query: {query} Document: {document} Relevant:"
TRUE_TOKEN, FALSE_TOKEN = "▁true", "▁false"


class MonoT5(TransformersPointwise):
    """monoT5: a T5 scoring relevance by P(true) at the first decoder step."""

    def __init__(self, *args: Any, **kwargs: Any):
        require("sentencepiece", "t5", "monoT5 (T5 SentencePiece tokenizer)")
        super().__init__(*args, **kwargs)
        vocab = self.tokenizer.get_vocab()
        missing = [t for t in (FALSE_TOKEN, TRUE_TOKEN) if t not in vocab]
        if missing:
            raise UserError(f"checkpoint {self.checkpoint!r}: its tokenizer has no {' or '.join(missing)} token; "
                            f"monoT5 needs a T5 vocabulary with {FALSE_TOKEN!r} and {TRUE_TOKEN!r}")
        self.label_ids = [vocab[FALSE_TOKEN], vocab[TRUE_TOKEN]]

    def load_model(self) -> Any:
        from transformers import T5ForConditionalGeneration  # lazy: torch/transformers load only when a model runs

        return load_pretrained(T5ForConditionalGeneration.from_pretrained, self.checkpoint, dtype=self.dtype,
                               trust_remote_code=self.trust_remote_code)

    def default_max_length(self) -> int:
        # T5 has relative positions (no position limit in its config); pygaggle truncates to 512 tokens.
        limit = self.tokenizer.model_max_length
        return int(limit) if limit and limit < 10**6 else 512

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Any:
        texts = [MONOT5_INPUT.format(query=q, document=d) for q, d in zip(queries, passages)]
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    def score_encoded(self, inputs: Any):
        import torch  # lazy: torch/transformers load only when a model runs

        enc = inputs.to(self.device)
        start = self._model.config.decoder_start_token_id
        decoder_input_ids = torch.full((enc["input_ids"].shape[0], 1), start, dtype=torch.long, device=self.device)
        # use_cache=False: one decoder step only, a KV cache would be wasted work.
        logits = self._model(**enc, decoder_input_ids=decoder_input_ids, use_cache=False).logits[:, 0, self.label_ids]
        return torch.log_softmax(logits.float(), dim=-1)[:, 1]
