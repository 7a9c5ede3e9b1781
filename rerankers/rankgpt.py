"""RankGPT (Sun et al., 2023): a chat LLM (default gpt-4o-mini) ordering windows of passages, with rank_llm's RankGPT
prompt (``rank_gpt_template``, multi-turn: one user/assistant exchange per passage; ``bench/prompts/rank-gpt.json``),
over any OpenAI-compatible chat API (``base_url``, ``api_key_env`` options) or through rank-llm itself
(``engine=rankllm``). Context 4096 tokens counted with tiktoken's cl100k_base as rank_llm does, when tiktoken and
its encoding file are available.
"""
from __future__ import annotations

import importlib.util
import warnings

from rerankers.listwise import ListwiseReranker, TokenCounter


class RankGPT(ListwiseReranker):
    """RankGPT listwise reranker over an OpenAI-compatible chat API."""

    prompt_id = "rank-gpt"

    def token_counter(self) -> TokenCounter | None:
        if importlib.util.find_spec("tiktoken") is None:
            return None
        import tiktoken  # lazy: only when a token budget is counted with it

        try:
            encoding = tiktoken.get_encoding("cl100k_base")
        except Exception as exc:  # noqa: BLE001 - tiktoken fetches its file on first use; offline that fails variously
            warnings.warn(f"rankgpt: tiktoken's cl100k_base is not available ({exc}); passages are only cut to "
                          f"{self.max_words} words, without a context budget", stacklevel=2)
            return None

        def count(text: str) -> int:
            return len(encoding.encode(text))

        # rank_llm's SafeOpenai.get_num_tokens: every key and value of every message, plus 3 for the reply primer.
        return TokenCounter(count, lambda messages: sum(count(v) for m in messages for v in m.values()) + 3)
