"""RRPO-trained rerankers: a pointwise backbone fine-tuned by ``python -m rrpo train``.

Inference is the policy's greedy decoding, i.e. sorting by the trained backbone's score divided by the policy's
temperature: exactly the cost of the base reranker. The checkpoint (``--rrpo-checkpoint``, or ``--checkpoint`` in
``RerankerSettings``) is a folder written by the trainer (config.json + a float16 weights delta from the backbone):
a local path, the name of a checkpoint shipped in ``rrpo/checkpoints/``, or a hub id. The default is the shipped
``minilm-fictional`` (MiniLM's last layer trained on the first 160 questions of fictional-large/train with the
SmolLM2 reader, k = 1; its config.json, train_log.jsonl and eval_leaderboard.csv say how it was trained and what it
measured). ``rrpo-hotpotqa`` is the same reranker with the shipped ``minilm-hotpotqa`` checkpoint (trained on
HotpotQA's ``rrpo-train`` part, k = 3), and ``rrpo-k3`` with ``minilm-fictional-k3`` (the shipped checkpoint's
training at k = 3, one epoch).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

from bench.errors import UserError, require
from rerankers.base import PointwiseReranker
from rerankers.registry import RERANKERS, resolve

TRAIN_HINT = ("python -m rrpo train --dataset fictional --split train --backbone minilm --reader smollm2 --k 3 "
              "--pool 20 --out runs/rrpo-minilm")


SHIPPED_CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def local_checkpoint_folder(checkpoint: str) -> Path | None:
    """A local folder as is, then a shipped checkpoint by name; None for anything else (a hub id)."""
    for folder in (Path(checkpoint), SHIPPED_CHECKPOINTS / checkpoint):
        if folder.is_dir():
            return folder
    return None


def checkpoint_folder(checkpoint: str) -> Path:
    """The local or shipped folder; anything else is fetched as a hub repository (the hub cache, or the network)."""
    folder = local_checkpoint_folder(checkpoint)
    if folder is not None:
        return folder

    hub = require("huggingface_hub", "dev", "loading an RRPO checkpoint from the hub")
    try:
        return Path(hub.snapshot_download(checkpoint))
    except Exception as exc:  # noqa: BLE001 - any hub failure means: no such checkpoint here
        raise UserError(f"--rrpo-checkpoint {checkpoint!r}: neither a local folder nor a downloadable hub "
                        f"repository ({type(exc).__name__}); train one with: {TRAIN_HINT}") from exc


def training_summary(config: dict) -> dict:
    """What a checkpoint was trained with, from its config.json: the reader whose answers gave the reward, the reward
    metric and noise, the data, the horizon and the steps made (recorded with every ranking it makes, and shown
    under the leaderboard)."""
    h = config.get("hyperparameters", {})
    return {"backbone": config.get("backbone"), "reader": h.get("reader"), "metric": h.get("metric"),
            "reward_noise": h.get("reward_noise", "none"), "noise_p": h.get("noise_p", 0.0),
            "dataset": h.get("dataset"), "split": h.get("split"), "limit": h.get("limit"), "k": h.get("k"),
            "query2doc": h.get("query2doc"), "steps": config.get("step")}


class RRPOReranker(PointwiseReranker):
    """Registered as ``rrpo`` through this package's entry point (pyproject.toml, group ``rerank_bench.rerankers``)."""

    kind = "pointwise"
    registry_meta = {"checkpoint": "minilm-fictional", "kind": "pointwise",
                     "description": "a pointwise backbone (default minilm) trained by RRPO from reader feedback"}

    def __init__(self, checkpoint: str | None = None, settings=None):
        super().__init__(checkpoint, settings)
        if not checkpoint:
            raise UserError(f"reranker 'rrpo' needs a trained checkpoint: pass --rrpo-checkpoint FOLDER, "
                            f"or train one with: {TRAIN_HINT}")

        from rrpo.policy import load_policy  # lazy: torch; `bench list` describes this plugin without it

        folder = checkpoint_folder(checkpoint)
        self.policy = load_policy(folder, self.settings)
        self.trained_with = training_summary(json.loads((folder / "config.json").read_text()))

    @property
    def model(self):
        return self.policy

    def pair_length(self, query: str, passage: str) -> int:
        return self.policy.reranker.pair_length(query, passage)

    def score(self, queries: Sequence[str], passages: Sequence[str]):
        scores = self.policy.reranker.score(queries, passages)
        return scores / self.policy.log_temperature.exp().to(scores.device)

    def identity(self) -> dict:
        return {"name": self.name, "checkpoint": self.checkpoint, "temperature": self.policy.temperature,
                "trained_with": self.trained_with}

    @classmethod
    def preflight(cls, name, checkpoint, settings) -> None:
        """The checkpoint (local, shipped, or a hub id that can be had) and, for a local one, its backbone's
        weights."""
        if not checkpoint:
            raise UserError(f"reranker {name!r} needs a trained checkpoint: pass --rrpo-checkpoint FOLDER, or train "
                            f"one with: {TRAIN_HINT}")
        folder = local_checkpoint_folder(checkpoint)
        if folder is None:
            super().preflight(name, checkpoint, settings)
            return
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            backbone, backbone_checkpoint = config["backbone"], config.get("backbone_checkpoint")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{folder / 'config.json'}: not an RRPO checkpoint config ({type(exc).__name__}: "
                            f"{exc})") from None
        RERANKERS.load(backbone).preflight(f"{name} (backbone {backbone})",
                                           backbone_checkpoint or resolve(backbone).checkpoint,
                                           dataclasses.replace(settings, checkpoint=backbone_checkpoint, options=None))

    @classmethod
    def weights_fingerprint(cls, checkpoint: str | None) -> str | None:
        folder = local_checkpoint_folder(checkpoint) if checkpoint else None
        return super().weights_fingerprint(str(folder) if folder else checkpoint)


class RRPOFictionalK3Reranker(RRPOReranker):
    """Registered as ``rrpo-k3``: the same reranker with the checkpoint trained at k_train = 3 on ``fictional-large``
    (docs/rrpo.md: chosen over the shipped k_train = 1 on dev by F1, then evaluated once on test)."""

    registry_meta = {"checkpoint": "minilm-fictional-k3", "kind": "pointwise",
                     "description": "MiniLM trained by RRPO at k_train = 3 on fictional-large with the SmolLM2 "
                                    "reader"}


class RRPOHotpotQAReranker(RRPOReranker):
    """Registered as ``rrpo-hotpotqa`` through this package's entry point: the same reranker with the checkpoint trained
    on HotpotQA questions."""

    registry_meta = {"checkpoint": "minilm-hotpotqa", "kind": "pointwise",
                     "description": "MiniLM trained by RRPO on HotpotQA questions (rrpo-train part) with the SmolLM2 "
                                    "reader"}
