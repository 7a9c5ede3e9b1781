"""Hostile input, second round: checkpoints that ship code, grades that crash pytrec_eval, edited inputs, corrupt
dataset copies, malformed files of every input format, keys where variable names belong (docs/robustness.md)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LOADERS = {"from_pretrained", "load_pretrained", "pipeline", "LLM"}     # calls that can import a checkpoint's code


def model_loads_without_trust_remote_code(root: Path) -> list[str]:
    """``file:line`` of every call in the project's code that loads a checkpoint (``*.from_pretrained``,
    ``Auto*.from_config``, ``load_pretrained``, ``pipeline``, ``vllm.LLM``, ``BiEncoder.load``) without passing
    ``trust_remote_code`` explicitly: such a call leaves the choice to transformers, which asks on stdin."""
    missing = []
    for path in sorted(p for part in ("bench", "rerankers", "rrpo", "benchmarks") for p in (root / part).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            loads = (name in LOADERS or (name == "from_config" and owner.startswith("Auto"))
                     or (name == "load" and owner == "BiEncoder"))
            if loads and not any(k.arg == "trust_remote_code" for k in node.keywords):
                missing.append(f"{path.relative_to(root)}:{node.lineno}")
    return sorted(missing)


def test_every_model_load_passes_trust_remote_code_explicitly():
    assert model_loads_without_trust_remote_code(REPO) == []


def test_the_walk_finds_a_load_that_leaves_the_choice_to_transformers(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "m.py").write_text("from transformers import AutoModel, AutoConfig\n"
                                             "AutoModel.from_pretrained('x', trust_remote_code=False)\n"
                                             "AutoModel.from_config(AutoConfig.from_pretrained('x'))\n"
                                             "BiEncoder.load('x')\n")
    assert model_loads_without_trust_remote_code(tmp_path) == ["bench/m.py:3", "bench/m.py:3", "bench/m.py:4"]
