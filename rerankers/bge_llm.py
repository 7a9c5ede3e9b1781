"""The BGE LLM rerankers (BAAI/bge-reranker-v2-gemma, BAAI/bge-reranker-v2-minicpm-layerwise) as FlagEmbedding's
``FlagLLMReranker`` and ``LayerWiseFlagLLMReranker`` score them (FlagEmbedding 1.4.2,
``FlagEmbedding/inference/reranker/decoder_only/base.py`` and ``layerwise.py``):

- the query becomes ``A: {query}``, the passage ``B: {passage}``, each tokenised without special tokens; the query is
  cut to ``query_max_length`` tokens (default 3/4 of ``max_length``), the passage to ``max_length``;
- a row is BOS (gemma: when the tokenizer has one distinct from its padding token; layerwise: always), the query,
  ``\\n``, the passage, cut at the passage's end to ``max_length + len(\\n) + len(prompt)`` tokens, then
  ``\\n`` and the prompt (``PROMPT``);
- ``max_length`` is 512, FlagEmbedding's default (``--reranker-args bge-reranker-v2-gemma:max_length=1024`` for
  more);
- the score is the raw logit of the first token of ``Yes`` at the last position (gemma), or the chosen layer's
  one-logit head at the last position (minicpm-layerwise, ``cutoff_layer``, default 28 as in its model card).
  FlagEmbedding's ``normalize`` (a sigmoid) does not change the order and is not applied.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from bench.errors import UserError
from rerankers.base import RerankerSettings
from rerankers.causal_judge import CausalJudge, join_truncating_second, left_padded_inputs

PROMPT = ("Given a query A and a passage B, determine whether the passage contains an answer to the query by "
          "providing a prediction of either 'Yes' or 'No'.")
QUERY_HEAD = "A: "
PASSAGE_HEAD = "B: "
SEP = "\n"
MAX_LENGTH = 512            # FlagEmbedding's AbsReranker default
CUTOFF_LAYER = 28           # the minicpm-layerwise model card's cutoff_layers=[28]


@dataclass(frozen=True)
class BGELLMOptions:
    prompt: str = PROMPT
    query_max_length: int | None = None     # None: 3/4 of max_length, as FlagLLMReranker


@dataclass(frozen=True)
class BGELayerwiseOptions(BGELLMOptions):
    cutoff_layer: int = CUTOFF_LAYER        # the layer whose head scores (the card: any of 8..40)


class BGELLMReranker(CausalJudge):
    """bge-reranker-v2-gemma: the logit of "Yes" after FlagEmbedding's A/B prompt."""

    Options = BGELLMOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        tok = self.tokenizer
        self.yes_id = self.first_token_id("Yes")
        self.sep_ids = tok(SEP, add_special_tokens=False)["input_ids"]
        self.prompt_ids = tok(self.options.prompt, add_special_tokens=False)["input_ids"]
        self.bos_ids = self.leading_ids()

    def leading_ids(self) -> list[int]:
        """BOS, when the tokenizer has one distinct from its padding token (FlagLLMReranker's rule)."""
        tok = self.tokenizer
        return [tok.bos_token_id] if tok.bos_token_id not in (None, tok.pad_token_id) else []

    def default_max_length(self) -> int:
        return MAX_LENGTH

    def identity(self) -> dict:
        return {**super().identity(), "prompt": self.options.prompt, "query_max_length": self.query_max_length()}

    def query_max_length(self) -> int:
        return self.options.query_max_length or self.max_length * 3 // 4

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Any:
        tok = self.tokenizer
        q_ids = tok([QUERY_HEAD + q for q in queries], add_special_tokens=False)["input_ids"]
        p_ids = tok([PASSAGE_HEAD + p for p in passages], add_special_tokens=False)["input_ids"]
        cap = self.query_max_length()
        budget = self.max_length + len(self.sep_ids) + len(self.prompt_ids)
        return self.pad([join_truncating_second(self.bos_ids + q[:cap], self.sep_ids + p[:self.max_length], budget)
                         + self.sep_ids + self.prompt_ids for q, p in zip(q_ids, p_ids)])

    def score_encoded(self, inputs: Any):
        return self.next_token_logits(inputs, [self.yes_id])[:, 0]


class BGELayerwiseReranker(BGELLMReranker):
    """bge-reranker-v2-minicpm-layerwise: the same prompt; the score is the one-logit head of layer ``cutoff_layer``
    at the last position. The architecture ships as code in the checkpoint, so it loads only with the user's
    ``--trust-remote-code``."""

    Options = BGELayerwiseOptions
    needs_remote_code = True

    def __init__(self, checkpoint: str | None = None, settings: RerankerSettings | None = None):
        super().__init__(checkpoint, settings)
        config = self._model.config
        first, last = getattr(config, "start_layer", 0), config.num_hidden_layers
        if not first <= self.options.cutoff_layer <= last:
            raise UserError(f"reranker option cutoff_layer {self.options.cutoff_layer}: expected a layer from {first} "
                            f"to {last} (those with a scoring head in {self.checkpoint!r})")

    def leading_ids(self) -> list[int]:
        """BOS always: LayerWiseFlagLLMReranker adds it without FlagLLMReranker's check."""
        if self.tokenizer.bos_token_id is None:
            raise UserError(f"checkpoint {self.checkpoint!r}: its tokenizer has no BOS token, which the layerwise "
                            f"reranker puts before the query")
        return [self.tokenizer.bos_token_id]

    def identity(self) -> dict:
        return {**super().identity(), "cutoff_layer": self.options.cutoff_layer}

    def score_encoded(self, inputs: Any):
        out = self._model(**left_padded_inputs(inputs.to(self.device)), cutoff_layers=[self.options.cutoff_layer])
        return out.logits[0][:, -1].float()
