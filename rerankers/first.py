"""FIRST (Reddy et al., 2024, "FIRST: Faster Improved Listwise Reranking with Single Token Decoding"): a listwise LLM
whose window order is read from the logits of the first identifier it would generate, in one forward pass, instead
of decoding the whole permutation.

As rank_llm runs it (``RankListwiseOSLLM`` with ``use_logits`` and ``use_alpha``, castorini/rank_llm before #345):
the window's passages are identified by letters (``rank_zephyr_alpha_template``, ``bench/prompts/rank-first.json``);
the chat-templated prompt gets ``[`` appended and is tokenised as a text prompt (the tokenizer's special tokens
added, as vLLM does); the next token's scores over the window's identifier tokens ``A``, ``B``, ... are sorted
descending, and that is the window's new order. rank_llm keeps only vLLM's 30 most likely tokens and appends the
identifiers not among them in window order; here every identifier is ranked by its logit, so the two differ only
below the top 30 tokens. Window 20, stride 10, 300 words per passage and a 4096-token context, as rank_llm.

Engine: transformers in-process (``hf``). The vLLM engine here returns text only, not first-token log-probabilities,
so FIRST does not run on it.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any, Sequence

from bench.environment import resolve_device, resolve_dtype
from bench.errors import UserError
from bench.llm.base import ChatRequest
from rerankers.causal_judge import last_position_logits
from rerankers.cross_encoder import load_pretrained
from rerankers.listwise import ListwiseReranker, Permutation, TokenCounter, hf_token_counter

IDENTIFIER_PREFIX = "["       # appended to the prompt, so that the next token is an identifier


class FIRST(ListwiseReranker):
    """FIRST: each window ordered by the first-token logits of its letter identifiers."""

    prompt_id = "rank-first"
    engine_kinds = ("hf",)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.prompt.identifiers != "letters" or not 0 < self.window <= 26:
            raise UserError(f"FIRST window {self.window} with {self.prompt.identifiers} identifiers: expected letters "
                            f"and a window of 1 to 26 passages")

    def default_engine_kind(self) -> str:
        return "hf"

    @cached_property
    def lm(self) -> tuple[Any, Any]:
        """(tokenizer, causal LM), loaded on first use (preflight builds the reranker without them)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: loads torch

        self.device = resolve_device(self.settings.device)
        trust = self.settings.trust_remote_code is True
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.model_name, trust_remote_code=trust)
        tokenizer.padding_side = "left"          # every row's last position is where the identifier comes
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = load_pretrained(AutoModelForCausalLM.from_pretrained, self.model_name,
                                dtype=resolve_dtype(self.settings.dtype, self.device), trust_remote_code=trust)
        return tokenizer, model.to(self.device).eval()

    def token_counter(self) -> TokenCounter | None:
        return hf_token_counter(self.lm[0], chat_template=True)

    def identity(self) -> dict:
        return {**super().identity(), "scoring": "first-token logits"}

    def identifier_ids(self, n: int) -> list[int]:
        """The vocabulary ids of the first n identifiers, each a whole token (``A`` after ``[``)."""
        tokenizer = self.lm[0]
        ids = [tokenizer.convert_tokens_to_ids(self.prompt.identifier(i)) for i in range(n)]
        missing = [self.prompt.identifier(i) for i, t in enumerate(ids) if t is None or t == tokenizer.unk_token_id]
        if missing:
            raise UserError(f"FIRST checkpoint {self.model_name!r}: its vocabulary has no single token for the "
                            f"identifiers {', '.join(missing)}")
        return ids

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        tokenizer = self.lm[0]
        text = tokenizer.apply_chat_template(request.message_dicts(), tokenize=False, add_generation_prompt=True)
        return tokenizer(text + IDENTIFIER_PREFIX)["input_ids"]

    def identifier_logits(self, requests: Sequence[ChatRequest], sizes: Sequence[int]) -> list[list[float]]:
        """Each window's next-token logits of its identifiers, in batches of ``batch_size`` prompts."""
        import torch  # lazy: torch/transformers load only when a model runs

        tokenizer, model = self.lm
        out: list[list[float]] = []
        bs = self.settings.batch_size
        for start in range(0, len(requests), bs):
            enc = tokenizer.pad({"input_ids": [self.prompt_ids(r) for r in requests[start:start + bs]]},
                                return_tensors="pt").to(self.device)
            with torch.inference_mode():
                logits = last_position_logits(model, enc)
            for row, n in zip(logits, sizes[start:start + bs]):
                out.append(row[self.identifier_ids(n)].float().tolist())
        return out

    def order_windows(self, requests: Sequence[ChatRequest], sizes: Sequence[int]) -> list[Permutation | None]:
        return [Permutation(sorted(range(len(scores)), key=lambda j: -scores[j]), ())
                for scores in self.identifier_logits(requests, sizes)]
