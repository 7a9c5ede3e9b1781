"""mxbai-rerank v2 (mixedbread-ai/mxbai-rerank-base-v2, -large-v2; Qwen2 causal LMs) as the ``mxbai-rerank``
package scores it (0.1.6, ``mxbai_rerank/mxbai_rerank_v2.py``, ``MxbaiRerankV2.predict``):

- the query becomes ``query: {query}`` (with an instruction: ``instruction: {instruction}\\nquery: {query}``), cut to
  3/4 of ``max_length`` tokens; the passage ``document: {passage}``; the two joined by ``\\n`` and cut at the
  passage's end to ``max_length`` tokens (the package also cuts the passage first to what the position limit leaves
  after the query, at most ``max_length``: a cut the pair's cut always goes past, so it is not repeated here);
- that pair, ``\\n`` and the relevance task (``TASK``) are wrapped in the package's ChatML turns (``PREFIX``: a
  system turn and the start of a user turn; ``SUFFIX``: the end of it and the start of the assistant's); every part
  tokenised without special tokens; rows left-padded;
- ``max_length`` is 8192, lowered so that it and the fixed prompt fit the model's ``max_position_embeddings``;
- the score is logit("1") − logit("0") at the last position (the package's ``normalize`` is a sigmoid of it, the same
  order, not applied).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from bench.errors import UserError
from rerankers.causal_judge import CausalJudge, join_truncating_second

PREFIX = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
          "<|im_start|>user\n")
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
TASK = ("You are a search relevance expert who evaluates how well documents match search queries. For each "
        "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
        "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:")
SEP = "\n"
MAX_LENGTH = 8192


@dataclass(frozen=True)
class MxbaiOptions:
    instruction: str = ""       # empty: none, as the package's default


class MxbaiRerankV2(CausalJudge):
    """mxbai-rerank v2: logit("1") − logit("0") after the package's ChatML relevance prompt."""

    Options = MxbaiOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.yes_id, self.no_id = self.first_token_id("1"), self.first_token_id("0")
        ids = self.tokenizer(
            [PREFIX, SUFFIX, TASK, SEP], add_special_tokens=False)["input_ids"]
        self.prefix_ids, self.suffix_ids, self.task_ids, self.sep_ids = ids
        self.fixed_length = sum(len(i) for i in ids)
        self.position_limit = self._model.config.max_position_embeddings
        self.max_length = min(self.max_length, self.position_limit - self.fixed_length)
        if self.max_length < 2:
            raise UserError(f"checkpoint {self.checkpoint!r}: mxbai-rerank's fixed prompt ({self.fixed_length} tokens) "
                            f"leaves no room within its {self.position_limit} positions")

    def default_max_length(self) -> int:
        return MAX_LENGTH

    def identity(self) -> dict:
        return {**super().identity(), "instruction": self.options.instruction}

    def query_text(self, query: str) -> str:
        text = f"query: {query}"
        return f"instruction: {self.options.instruction}{SEP}{text}" if self.options.instruction else text

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Any:
        tok = self.tokenizer
        q_ids = [ids[:self.max_length * 3 // 4]
                 for ids in tok([self.query_text(q) for q in queries], add_special_tokens=False)["input_ids"]]
        d_ids = tok([f"document: {p}" for p in passages], add_special_tokens=False)["input_ids"]
        return self.pad([self.prefix_ids + join_truncating_second(q, self.sep_ids + d, self.max_length) + self.sep_ids
                         + self.task_ids + self.suffix_ids for q, d in zip(q_ids, d_ids)])

    def score_encoded(self, inputs: Any):
        logits = self.next_token_logits(inputs, [self.yes_id, self.no_id])
        return logits[:, 0] - logits[:, 1]
