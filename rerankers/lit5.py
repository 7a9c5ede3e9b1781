"""LiT5-Distill (Tamber et al., 2023, "Scaling Down, LiTting Up"): listwise reranking by a Fusion-in-Decoder T5. Each
passage of a window is encoded on its own, with the query; the encoder outputs of the window are concatenated, and
the decoder, attending to all of them, generates the permutation ``[3] > [1] > ...``.

As rank_llm runs it (castorini/rank_llm, ``rerank/listwise/rank_fid.py`` ``RankFiDDistill``, ``lit5/model.py``
``FiD``, ``rankfid_inference_handler.py`` and ``prompt_templates/rank_fid_template.yaml``):

- each passage's input is ``Search Query: {q} Passage: [{i}] {p} Relevance Ranking: `` (``bench/prompts/rank-lit5
  .json``), the passage cleaned as for the other listwise prompts and cut to ``context_size`` words, the input cut and
  padded to ``context_size`` (150) tokens;
- FiD: the window's n inputs go through the encoder as n rows; the n x 150 hidden states are one row for the
  decoder, with the matching attention mask (padding is masked out);
- greedy decoding of at most ``len("[1] > [2] > ... > [window]")`` decoder positions (rank_llm's answer length, the
  start token included), the reply parsed and repaired as for every listwise reranker (``rerankers.listwise``);
- window 20, stride 10, from the bottom of the list up.

rank_llm's FiD handler leaves a query's own ``[n]`` as it is; here it is written ``(n)`` as in every listwise prompt.
Plain transformers (``T5ForConditionalGeneration`` loads the FiD checkpoint: same weights, same names); the engine is
this file's ``FiDEngine`` behind the LLM cache.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any, Sequence

from bench.environment import resolve_device, resolve_dtype
from bench.errors import UserError, require
from bench.llm.base import ChatRequest, ChatResponse, Engine
from rerankers.cross_encoder import load_pretrained
from rerankers.listwise import ListwiseOptions, ListwiseReranker

PASSAGE_TOKENS = 150      # rank_llm's RankFiDDistill context_size: tokens (and words) per passage


@dataclass(frozen=True)
class LiT5Options(ListwiseOptions):
    context_size: int = PASSAGE_TOKENS           # tokens per passage input (rank_llm's context_size)
    max_passage_words: int = PASSAGE_TOKENS      # rank_llm cuts the passage to context_size words as well


class FiDEngine(Engine):
    """A Fusion-in-Decoder T5: each message of a request is one encoder input (a passage with its query); the
    request's encoder outputs, concatenated, are what the decoder reads. Greedy decoding."""

    kind = "fid"

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", passage_tokens: int = PASSAGE_TOKENS,
                 batch_size: int = 8, trust_remote_code: bool = False):
        require("sentencepiece", "t5", "LiT5 (T5 SentencePiece tokenizer)")
        from transformers import AutoTokenizer, T5ForConditionalGeneration  # lazy: loads torch

        self.model, self.passage_tokens, self.batch_size = model, passage_tokens, batch_size
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model, trust_remote_code=trust_remote_code)
        self.t5 = load_pretrained(T5ForConditionalGeneration.from_pretrained, model, dtype=self.dtype,
                                  trust_remote_code=trust_remote_code).to(self.device).eval()

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "dtype": str(self.dtype).removeprefix("torch."),
                "passage_tokens": self.passage_tokens}

    def encode(self, requests: Sequence[ChatRequest]) -> tuple[Any, Any]:
        """(hidden states, attention mask) of requests with the same number n of messages, each row the n inputs'
        encoder outputs concatenated: shapes (requests, n * passage_tokens, d_model) and (requests, n *
        passage_tokens)."""
        texts = [content for r in requests for _, content in r.messages]
        enc = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.passage_tokens,
                             return_tensors="pt").to(self.device)
        hidden = self.t5.get_encoder()(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        rows = len(requests)
        return (hidden.last_hidden_state.reshape(rows, -1, hidden.last_hidden_state.shape[-1]),
                enc["attention_mask"].reshape(rows, -1))

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        import torch  # lazy: torch/transformers load only when a model runs
        from transformers.modeling_outputs import BaseModelOutput

        for r in requests:
            if r.temperature != 0:
                raise UserError(f"the fid engine decodes greedily only; a request asks for temperature "
                                f"{r.temperature} (use 0)")
        out: list[ChatResponse | None] = [None] * len(requests)

        def shape(i: int) -> tuple[int, int]:     # FiD rows of a batch need the same number of passages
            return len(requests[i].messages), requests[i].max_tokens

        todo = sorted(range(len(requests)), key=shape)
        for (_, max_tokens), group in groupby(todo, key=shape):
            idx = list(group)
            for start in range(0, len(idx), self.batch_size):
                batch = idx[start:start + self.batch_size]
                with torch.inference_mode():
                    hidden, mask = self.encode([requests[i] for i in batch])
                    ids = self.t5.generate(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                                           attention_mask=mask, max_new_tokens=max_tokens, do_sample=False,
                                           num_beams=1)
                for i, row in zip(batch, ids.tolist()):
                    out[i] = ChatResponse(self.tokenizer.decode(row, skip_special_tokens=True),
                                          usage={"prompt_tokens": int(mask.shape[1]), "completion_tokens": len(row)})
        return out  # type: ignore[return-value]  (every slot is filled above)


class LiT5Distill(ListwiseReranker):
    """LiT5-Distill: FiD listwise reranking over rank_llm's sliding window."""

    prompt_id = "rank-lit5"
    Options = LiT5Options
    engine_kinds = ("fid",)
    uses_run_engines = False         # the run's shared engines are chat LMs

    def default_engine_kind(self) -> str:
        return "fid"

    def max_new_tokens(self, n: int) -> int:
        # rank_llm's generate(max_length=len("[1] > ... > [window]")) counts the decoder's start token
        return self.options.max_new_tokens or len(" > ".join(f"[{i + 1}]" for i in range(self.window))) - 1

    def own_engine(self) -> Engine:
        return FiDEngine(self.model_name, device=self.settings.device, dtype=self.settings.dtype,
                         passage_tokens=self.context_size, batch_size=self.settings.batch_size,
                         trust_remote_code=self.settings.trust_remote_code is True)
