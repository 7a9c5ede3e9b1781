"""RankZephyr (Pradeep et al., 2023): Zephyr-7B fine-tuned for listwise reranking, with the prompt it was trained on
(rank_llm's ``rank_zephyr_template``, ``bench/prompts/rank-zephyr.json``).

Engines: vLLM in-process when installed (the ``vllm`` extra), else local transformers (``hf``); with a
``base_url`` option, any OpenAI-compatible server that serves the checkpoint (e.g. ``vllm serve``); ``rankllm`` runs
rank-llm itself against such a server. Context 4096 tokens, counted in the checkpoint's tokenizer when it can be
loaded (always for ``hf``).
"""
from __future__ import annotations

import warnings

from dataclasses import dataclass

from rerankers.cross_encoder import load_pretrained
from rerankers.listwise import ListwiseOptions, ListwiseReranker, TokenCounter, hf_token_counter, vllm_available


@dataclass(frozen=True)
class RankZephyrOptions(ListwiseOptions):
    tokenizer: str | None = None       # counts the context in this tokenizer (default: the checkpoint's)


class RankZephyr(ListwiseReranker):
    """RankZephyr 7B listwise reranker."""

    prompt_id = "rank-zephyr"
    Options = RankZephyrOptions

    def default_engine_kind(self) -> str:
        if self.options.base_url:
            return "openai"
        return "vllm" if vllm_available() else "hf"

    def token_counter(self) -> TokenCounter | None:
        from transformers import AutoTokenizer  # lazy: torch/transformers load only when a model runs


        source = self.options.tokenizer or self.checkpoint
        if self.engine_kind == "hf":   # the model is loaded from here anyway: its tokenizer must load too
            return hf_token_counter(load_pretrained(AutoTokenizer.from_pretrained, source,
                                                    trust_remote_code=self.settings.trust_remote_code is True),
                                    chat_template=True)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=self.settings.trust_remote_code is True)
        except OSError as exc:      # a served model whose tokenizer is not on this machine
            warnings.warn(f"rankzephyr: no tokenizer for {source!r} ({str(exc).splitlines()[0]}); passages are only "
                          f"cut to {self.max_words} words, without a context budget", stacklevel=2)
            return None
        return hf_token_counter(tokenizer, chat_template=self.engine_kind == "vllm")
