"""Prompt templates are data: ``bench/prompts/<id>.json`` with a version and chat messages whose contents are
``str.format`` templates. A template's hash (of its whole file content) goes into cache keys and result rows, so
editing a prompt can never silently reuse answers made with the old one."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.llm.base import ChatRequest
from bench.hashing import stable_hash
from bench.registry import did_you_mean

PROMPT_DIR = Path(__file__).parent


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    version: int
    messages: tuple[tuple[str, str], ...]
    hash: str
    source: str = ""          # where the wording comes from, when a checkpoint was trained on it

    @property
    def tag(self) -> str:
        return f"{self.id}@v{self.version}:{self.hash}"

    def render(self, **values: Any) -> list[dict[str, str]]:
        try:
            return [{"role": role, "content": content.format(**values)} for role, content in self.messages]
        except KeyError as exc:
            raise ValueError(f"prompt template {self.id!r} needs the value {exc.args[0]!r}") from None

    def request(self, *, max_tokens: int, stop: tuple[str, ...] = (), **values: Any) -> ChatRequest:
        return ChatRequest.chat(self.render(**values), max_tokens=max_tokens, temperature=0.0, stop=stop,
                                template=self.tag)


def template_from_json(obj: dict[str, Any], origin: str) -> PromptTemplate:
    expected = "expected a JSON object with id (a string), version (an integer), messages (a list of {role, content})"
    for key in ("id", "version", "messages"):
        if not isinstance(obj, dict) or key not in obj:
            raise UserError(f"{origin}: prompt template lacks the field {key!r}; {expected}")
    messages = obj["messages"]
    if (not isinstance(obj["id"], str) or type(obj["version"]) is not int or not isinstance(messages, list)
            or not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                       and isinstance(m.get("content"), str) for m in messages)):
        raise UserError(f"{origin}: malformed prompt template; {expected}")
    return PromptTemplate(id=obj["id"], version=int(obj["version"]),
                          messages=tuple((m["role"], m["content"]) for m in obj["messages"]),
                          hash=stable_hash(obj, 12), source=obj.get("source", ""))


@lru_cache(maxsize=None)
def load_template(name_or_path: str) -> PromptTemplate:
    """A packaged template by id (``reader-qa``) or a user's JSON file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPT_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in PROMPT_DIR.glob("*.json"))
        raise UserError(f"unknown prompt template {name_or_path!r}; {did_you_mean(name_or_path, known)}packaged: "
                        f"{', '.join(known)}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a JSON prompt template ({exc})") from None
    return template_from_json(obj, str(path))
