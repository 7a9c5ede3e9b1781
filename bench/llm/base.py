"""One interface for every LLM call (readers, judges, listwise rerankers, Query2Doc).

``Engine.generate(requests) -> responses`` takes a batch of chat requests and returns one response per request in
the same order. Engines: ``hf`` (local transformers), ``openai`` (any OpenAI-compatible server: OpenAI, vLLM, Ollama),
``vllm`` (in-process, optional). ``CachedEngine`` (bench.llm.cache) wraps any engine.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[tuple[str, str], ...]    # ((role, content), ...)
    max_tokens: int = 32
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    template: str = ""                       # "<template id>@<hash>" of the prompt template that made it

    @classmethod
    def chat(cls, messages: Sequence[dict[str, str]], **kw: Any) -> "ChatRequest":
        return cls(messages=tuple((m["role"], m["content"]) for m in messages), **kw)

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def key_material(self) -> dict[str, Any]:
        return {"messages": self.messages, "max_tokens": self.max_tokens, "temperature": self.temperature,
                "stop": self.stop, "template": self.template}


@dataclass
class ChatResponse:
    text: str
    usage: dict[str, int] = field(default_factory=dict)   # prompt_tokens, completion_tokens
    cached: bool = False
    error: str | None = None                             # set when the call failed after all retries
    cache_key: str | None = None                         # the LLM cache's key, when the response is stored there


ResponseCallback = Callable[[int, ChatResponse], None]


class Engine(ABC):
    """An LLM backend. Subclasses set ``kind`` and ``model``."""

    kind: str = ""
    model: str = ""

    @abstractmethod
    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """One response per request, same order. A request that fails after retries gets ``error`` set; it does
        not raise, so one bad query never loses a batch."""

    def stream(self, requests: Sequence[ChatRequest], on_response: ResponseCallback | None) -> list[ChatResponse]:
        """``generate``, calling ``on_response(i, response)`` as soon as response ``i`` is final (the cache stores
        it then, so a killed run never repeats a finished call). This default reports after the whole batch;
        engines that finish requests one by one override it."""
        responses = self.generate(requests)
        if on_response is not None:
            for i, response in enumerate(responses):
                on_response(i, response)
        return responses

    def identity(self) -> dict[str, Any]:
        """What makes two engines give the same output for the same request (goes into cache keys). Never holds
        secrets."""
        return {"kind": self.kind, "model": self.model}

