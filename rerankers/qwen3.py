"""Qwen3-Reranker (0.6B / 4B / 8B): a causal LM asked whether the document meets the query, scored by the ``yes``
versus ``no`` logits of the next token.

Prompt and scoring reproduce the "Transformers Usage" code of the Qwen/Qwen3-Reranker-0.6B model card: the pair is
formatted as ``<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {doc}``, tokenised without special tokens,
truncated (longest first) to ``max_length`` minus the fixed prefix and suffix, then wrapped in the fixed token prefix
(system turn + user turn start) and suffix (user turn end + an empty thinking block), left-padded. The card's
``max_length`` is 8192 and its default instruction is the web-search one below. The score is
``log_softmax([no, yes])[yes]`` of the last position's logits (the card returns its exp; the order is the same and
the log-probability is the better quantity to train).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from bench.errors import UserError
from rerankers.causal_judge import CausalJudge

PREFIX = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
          "provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n")
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
PAIR = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
CARD_MAX_LENGTH = 8192


@dataclass(frozen=True)
class Qwen3Options:
    instruction: str = DEFAULT_INSTRUCTION     # the task instruction of the judging prompt


class Qwen3Reranker(CausalJudge):
    """Qwen3-Reranker: P(yes) of a causal LM under the model card's judging prompt. The ``instruction``
    option replaces the default task instruction."""

    Options = Qwen3Options

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        vocab = self.tokenizer.get_vocab()
        missing = [t for t in ("no", "yes") if t not in vocab]
        if missing:
            raise UserError(f"checkpoint {self.checkpoint!r}: its tokenizer has no {' or '.join(missing)} token; "
                            "Qwen3-Reranker scores the 'yes'/'no' tokens")
        self.label_ids = [vocab["no"], vocab["yes"]]
        self.instruction = self.options.instruction
        self.prefix_ids = self.tokenizer.encode(PREFIX, add_special_tokens=False)
        self.suffix_ids = self.tokenizer.encode(SUFFIX, add_special_tokens=False)

    def default_max_length(self) -> int:
        return CARD_MAX_LENGTH

    def identity(self) -> dict:
        return {**super().identity(), "instruction": self.instruction}

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Any:
        pairs = [PAIR.format(instruction=self.instruction, query=q, doc=d) for q, d in zip(queries, passages)]
        budget = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        if budget < 1:
            raise UserError(f"max_length {self.max_length}: Qwen3-Reranker's fixed prompt alone takes "
                            f"{len(self.prefix_ids) + len(self.suffix_ids)} tokens")
        body = self.tokenizer(pairs, padding=False, truncation="longest_first", return_attention_mask=False,
                              max_length=budget)["input_ids"]
        return self.pad([self.prefix_ids + ids + self.suffix_ids for ids in body])

    def score_encoded(self, inputs: Any):
        import torch  # lazy: torch/transformers load only when a model runs

        return torch.log_softmax(self.next_token_logits(inputs, self.label_ids), dim=-1)[:, 1]
