"""vLLM in-process (the ``vllm`` extra, a GPU machine): chat requests through the model's chat template."""
from __future__ import annotations

from typing import Any, Sequence

from bench.errors import require
from bench.llm.base import ChatRequest, ChatResponse, Engine


class VLLMEngine(Engine):
    kind = "vllm"

    def __init__(self, model: str, dtype: Any = "auto", seed: int = 0, max_model_len: int | None = None,
                 trust_remote_code: bool = False):
        vllm = require("vllm", "vllm", "the in-process vLLM engine")
        self.model = model
        self._vllm = vllm
        self.llm = vllm.LLM(model=model, dtype=dtype, seed=seed, max_model_len=max_model_len,
                            trust_remote_code=trust_remote_code)

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        params = [self._vllm.SamplingParams(temperature=r.temperature, max_tokens=r.max_tokens,
                                            stop=list(r.stop) or None) for r in requests]
        outs = self.llm.chat([r.message_dicts() for r in requests], sampling_params=params, use_tqdm=False)
        return [ChatResponse(o.outputs[0].text, {"prompt_tokens": len(o.prompt_token_ids),
                                                 "completion_tokens": len(o.outputs[0].token_ids)}) for o in outs]
