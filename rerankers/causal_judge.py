"""What the rerankers that ask a causal LM about a (query, passage) pair share: Qwen3-Reranker (``qwen3``), the BGE
LLM rerankers (``bge_llm``) and mxbai-rerank v2 (``mxbai``). Each builds its own prompt and turns the logits of a few
tokens at the next-token position into its score; this class loads the LM, left-pads the prompts (so the last
position is every row's next-token position) and computes those logits (``next_token_logits``).
"""
from __future__ import annotations

from typing import Any, Sequence

from bench.errors import UserError
from rerankers.cross_encoder import TransformersPointwise, load_pretrained


def join_truncating_second(first: list[int], second: list[int], max_length: int) -> list[int]:
    """``first + second`` with ``second`` cut at its end so that the pair fits ``max_length``: transformers'
    ``prepare_for_model(first, second, truncation="only_second", add_special_tokens=False)``, which FlagEmbedding and
    mxbai-rerank call (transformers 5 removed it). As there, a pair that cannot fit by cutting the second part alone
    is kept whole."""
    excess = len(first) + len(second) - max_length
    if 0 < excess < len(second):
        second = second[:-excess]
    return first + second


def left_padded_inputs(enc: Any) -> dict:
    """A left-padded batch as a causal LM's inputs, with positions that count real tokens only (so a row's logits do
    not depend on how much padding its batch needs) and no KV cache (scoring never decodes further)."""
    position_ids = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "position_ids": position_ids,
            "use_cache": False}


def last_position_logits(model: Any, enc: Any):
    """(batch, vocabulary) logits at the last position of each row of a left-padded batch: the next token's."""
    return model(**left_padded_inputs(enc), logits_to_keep=1).logits[:, -1]


class CausalJudge(TransformersPointwise):
    """A causal LM scoring a pair by its next-token logits after a prompt; subclasses write ``encode`` (rows of token
    ids through ``pad``) and ``score_encoded`` (from ``next_token_logits``)."""

    padding_side = "left"   # the last position is then the next-token position of every row

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.tokenizer.pad_token_id is None:
            raise UserError(f"checkpoint {self.checkpoint!r}: its tokenizer has no padding token")

    def load_model(self) -> Any:
        from transformers import AutoModelForCausalLM  # lazy: torch/transformers load only when a model runs

        return load_pretrained(AutoModelForCausalLM.from_pretrained, self.model_path(), dtype=self.dtype,
                               trust_remote_code=self.trust_remote_code)

    def first_token_id(self, text: str) -> int:
        """The first token of ``text`` tokenised alone, without special tokens (how FlagEmbedding and mxbai-rerank
        find their answer tokens)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"][0]

    def pad(self, rows: Sequence[list[int]]) -> Any:
        return self.tokenizer.pad({"input_ids": list(rows)}, padding=True, return_tensors="pt")

    def next_token_logits(self, inputs: Any, token_ids: Sequence[int]):
        """(batch, len(token_ids)) float logits of ``token_ids`` at the last position of each row."""
        return last_position_logits(self._model, inputs.to(self.device))[:, list(token_ids)].float()
