"""ColBERT late interaction (Khattab & Zaharia, 2020; ColBERTv2, Santhanam et al., 2022) as a reranker: query and
passage are encoded separately into one vector per token, and the score is MaxSim, the sum over query tokens of
their best cosine similarity with a passage token. Plain transformers, no index: reranking needs none.

Encoding follows stanford-futuredata/ColBERT (``colbert/modeling/colbert.py``, ``tokenization/``) and PyLate
(``pylate/models/colbert.py``), which agree:

- a marker token right after ``[CLS]``: ``[unused0]`` for queries, ``[unused1]`` for passages in the Stanford
  checkpoints (``artifact.metadata``: ``query_token_id``/``doc_token_id``), the ``query_prefix``/``document_prefix``
  token a PyLate checkpoint declares in ``config_sentence_transformers.json`` (``[Q] ``/``[D] ``);
- the query padded to its length (``query_maxlen``, 32 by default) with ``[MASK]`` (query augmentation; a tokenizer
  without one pads with EOS, as PyLate); the ``[MASK]`` tokens are not attended to (``attend_to_mask_tokens``
  false) but each gets an output vector that takes part in MaxSim; a longer query is cut to that length;
- the passage cut to its length (``doc_maxlen``/``document_length``, 180 by default) with its marker, unpadded;
- the transformer's last hidden states projected by the checkpoint's linear layer (Stanford: ``linear.weight`` in
  the weights file, no bias; PyLate: the sentence-transformers ``Dense`` module), each vector L2-normalised;
- passage tokens that are punctuation (ColBERT's ``mask_punctuation`` skiplist, ``string.punctuation``, each
  symbol's token; PyLate's ``skiplist_words``) and padding are left out of the max; query tokens never are.
"""
from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bench.errors import UserError
from rerankers.cross_encoder import TransformersPointwise, load_pretrained

QUERY_LENGTH, DOCUMENT_LENGTH = 32, 180          # ColBERT's and PyLate's defaults
STANFORD_MARKERS = ("[unused0]", "[unused1]")
# PyLate's Dense modules name their activation by class path; these two are the ones sentence-transformers saves.
ACTIVATIONS = {"torch.nn.modules.linear.Identity": "Identity", "torch.nn.modules.activation.Tanh": "Tanh"}


@dataclass(frozen=True)
class ColBERTOptions:
    query_length: int | None = None     # query tokens with markers and [MASK] padding (None: the checkpoint's, else 32)


@dataclass(frozen=True)
class LateInteractionLayout:
    """What a ColBERT checkpoint declares beside its transformer, read from its own files."""

    query_marker: str
    document_marker: str
    query_length: int
    document_length: int
    attend_to_expansion: bool
    skiplist_words: tuple[str, ...]
    projection: dict[str, Any]          # "weight" (and "bias") tensors, "activation" name


def checkpoint_file(path: str, name: str) -> str | None:
    """A file of a checkpoint folder or hub id (from the hub cache when offline), or None when it has none."""
    if Path(path).is_dir():
        found = Path(path) / name
        return str(found) if found.exists() else None
    from transformers.utils import cached_file  # lazy: torch/transformers load only when a model runs

    return cached_file(path, name, _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False)


def read_tensors(path: str, folder: str, names: Sequence[str]) -> dict[str, Any]:
    """The named tensors of ``folder``'s weights (``model.safetensors``, else ``pytorch_model.bin``)."""
    prefix = f"{folder}/" if folder else ""
    found = checkpoint_file(path, f"{prefix}model.safetensors")
    if found:
        from safetensors import safe_open  # lazy: torch/transformers load only when a model runs

        with safe_open(found, framework="pt") as f:
            return {n: f.get_tensor(n) for n in names if n in f.keys()}
    found = checkpoint_file(path, f"{prefix}pytorch_model.bin")
    if found is None:
        raise UserError(f"ColBERT checkpoint {path!r}: no {prefix}model.safetensors nor {prefix}pytorch_model.bin")
    import torch  # lazy: torch/transformers load only when a model runs

    state = torch.load(found, map_location="cpu", weights_only=True)
    return {n: state[n] for n in names if n in state}


def read_layout(path: str) -> LateInteractionLayout:
    """The markers, lengths, skiplist and projection of a PyLate (``modules.json`` with a Dense module) or a Stanford
    ColBERT checkpoint (``linear.weight`` beside the transformer's weights)."""
    modules = checkpoint_file(path, "modules.json")
    if modules:
        return _pylate_layout(path, json.loads(Path(modules).read_text()))
    metadata = checkpoint_file(path, "artifact.metadata")
    meta = json.loads(Path(metadata).read_text()) if metadata else {}
    weight = read_tensors(path, "", ["linear.weight"]).get("linear.weight")
    if weight is None:
        raise UserError(f"ColBERT checkpoint {path!r}: neither a PyLate model (modules.json) nor a Stanford ColBERT "
                        f"one (linear.weight in its weights)")
    return LateInteractionLayout(
        query_marker=meta.get("query_token_id") or STANFORD_MARKERS[0],
        document_marker=meta.get("doc_token_id") or STANFORD_MARKERS[1],
        query_length=int(meta.get("query_maxlen") or QUERY_LENGTH),
        document_length=int(meta.get("doc_maxlen") or DOCUMENT_LENGTH),
        attend_to_expansion=bool(meta.get("attend_to_mask_tokens", False)),
        skiplist_words=tuple(string.punctuation) if meta.get("mask_punctuation", True) else (),
        projection={"weight": weight, "activation": "Identity"})


def _pylate_layout(path: str, modules: list[dict[str, Any]]) -> LateInteractionLayout:
    dense = [m for m in modules if m.get("type", "").endswith("Dense")]
    if len(dense) != 1 or len(modules) != 2:
        raise UserError(f"ColBERT checkpoint {path!r}: expected a transformer and one Dense module in modules.json, "
                        f"found {[m.get('type') for m in modules]}")
    folder = dense[0]["path"]
    dense_file = checkpoint_file(path, f"{folder}/config.json")
    if dense_file is None:
        raise UserError(f"ColBERT checkpoint {path!r}: its Dense module has no {folder}/config.json")
    dense_config = json.loads(Path(dense_file).read_text())
    activation = ACTIVATIONS.get(dense_config.get("activation_function", "torch.nn.modules.linear.Identity"))
    if activation is None or dense_config.get("use_residual"):
        raise UserError(f"ColBERT checkpoint {path!r}: its Dense module ({dense_config}) is not a plain projection "
                        f"with one of {', '.join(ACTIVATIONS)}")
    tensors = read_tensors(path, folder, ["linear.weight", "linear.bias"])
    if "linear.weight" not in tensors:
        raise UserError(f"ColBERT checkpoint {path!r}: no linear.weight in its Dense module's weights ({folder})")
    config_file = checkpoint_file(path, "config_sentence_transformers.json")
    c = json.loads(Path(config_file).read_text()) if config_file else {}
    if c.get("do_query_expansion") is False:
        raise UserError(f"ColBERT checkpoint {path!r}: do_query_expansion is false; only query expansion is "
                        f"implemented here")
    return LateInteractionLayout(
        query_marker=c.get("query_prefix") or "[Q] ", document_marker=c.get("document_prefix") or "[D] ",
        query_length=int(c.get("query_length") or QUERY_LENGTH),
        document_length=int(c.get("document_length") or DOCUMENT_LENGTH),
        attend_to_expansion=bool(c.get("attend_to_expansion_tokens", False)),
        skiplist_words=tuple(c.get("skiplist_words") or string.punctuation),
        projection={"weight": tensors["linear.weight"], "bias": tensors.get("linear.bias"), "activation": activation})


class ColBERT(TransformersPointwise):
    """MaxSim of L2-normalised, projected token vectors; the query [MASK]-augmented, punctuation left out of the
    passage. ``max_length`` is the passage length (default: the checkpoint's)."""

    kind = "late-interaction"
    Options = ColBERTOptions

    def load_model(self) -> Any:
        import torch  # lazy: torch/transformers load only when a model runs
        from transformers import AutoModel

        self.layout = read_layout(self.model_path())
        encoder = load_pretrained(AutoModel.from_pretrained, self.model_path(), dtype=self.dtype,
                                  trust_remote_code=self.trust_remote_code)
        weight, bias = self.layout.projection["weight"], self.layout.projection.get("bias")
        projection = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            projection.weight.copy_(weight)
            if bias is not None:
                projection.bias.copy_(bias)
        activation = getattr(torch.nn, self.layout.projection["activation"])()
        self.query_length = self.options.query_length or self.layout.query_length
        if self.query_length < 4:
            raise UserError(f"ColBERT query_length {self.query_length}: expected at least 4 ([CLS], marker, a token, "
                            f"[SEP])")
        self._token_ids()
        return torch.nn.ModuleDict({"encoder": encoder, "projection": projection,
                                    "activation": activation}).to(self.dtype)

    def _token_ids(self) -> None:
        tok = self.tokenizer
        unknown = tok.unk_token_id
        markers = [tok.convert_tokens_to_ids(m) for m in (self.layout.query_marker, self.layout.document_marker)]
        for marker, token_id in zip((self.layout.query_marker, self.layout.document_marker), markers):
            if token_id is None or token_id == unknown:
                raise UserError(f"ColBERT checkpoint {self.checkpoint!r}: its tokenizer has no marker token "
                                f"{marker!r}")
        self.query_marker_id, self.document_marker_id = markers
        # ColBERT pads queries with [MASK]; PyLate with EOS where a tokenizer has no [MASK]
        self.expansion_id = tok.mask_token_id if tok.mask_token_id is not None else tok.eos_token_id
        if self.expansion_id is None:
            raise UserError(f"ColBERT checkpoint {self.checkpoint!r}: its tokenizer has neither [MASK] nor EOS to "
                            f"pad queries with")
        # an unknown symbol's id is the unknown token's, left out as both references leave it out
        self.skiplist = sorted({i for i in map(tok.convert_tokens_to_ids, self.layout.skiplist_words)
                                if i is not None})

    def default_max_length(self) -> int:
        return self.layout.document_length

    def identity(self) -> dict:
        return {**super().identity(), "query_length": self.query_length}

    def pair_length(self, query: str, passage: str) -> int:
        return len(passage)

    def _with_marker(self, enc: Any, marker_id: int) -> Any:
        """Insert the marker after the first token ([CLS]), as both references do."""
        import torch  # lazy: torch/transformers load only when a model runs

        ids, mask = enc["input_ids"], enc["attention_mask"]
        column = torch.full((ids.shape[0], 1), marker_id, dtype=ids.dtype)
        enc["input_ids"] = torch.cat([ids[:, :1], column, ids[:, 1:]], dim=1)
        enc["attention_mask"] = torch.cat([mask[:, :1], torch.ones_like(column), mask[:, 1:]], dim=1)
        if "token_type_ids" in enc:
            types = enc["token_type_ids"]
            enc["token_type_ids"] = torch.cat([types[:, :1], torch.zeros_like(column), types[:, 1:]], dim=1)
        return enc

    def tokenize_queries(self, queries: Sequence[str]) -> Any:
        enc = self.tokenizer(list(queries), padding="max_length", truncation=True, max_length=self.query_length - 1,
                             return_tensors="pt")
        ids = enc["input_ids"]
        enc["input_ids"] = ids.masked_fill(enc["attention_mask"] == 0, self.expansion_id)
        enc = self._with_marker(enc, self.query_marker_id)
        if self.layout.attend_to_expansion:
            enc["attention_mask"].fill_(1)
        return enc

    def tokenize_passages(self, passages: Sequence[str]) -> Any:
        enc = self.tokenizer(list(passages), padding=True, truncation=True, max_length=self.max_length - 1,
                             return_tensors="pt")
        return self._with_marker(enc, self.document_marker_id)

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Any:
        import torch  # lazy: torch/transformers load only when a model runs

        unique = list(dict.fromkeys(queries))     # a batch's pairs share few queries: each is encoded once
        position = {q: i for i, q in enumerate(unique)}
        return (self.tokenize_queries(unique), self.tokenize_passages(passages),
                torch.tensor([position[q] for q in queries]))

    def token_vectors(self, enc: Any):
        """The L2-normalised, projected last hidden states of every token."""
        import torch  # lazy: torch/transformers load only when a model runs

        hidden = self._model["encoder"](**enc).last_hidden_state
        return torch.nn.functional.normalize(self._model["activation"](self._model["projection"](hidden)), p=2, dim=-1)

    def score_encoded(self, inputs: Any):
        import torch  # lazy: torch/transformers load only when a model runs

        queries, passages, owner = (x.to(self.device) for x in inputs)
        q = self.token_vectors(queries)[owner]                     # (pairs, query tokens, dim)
        d = self.token_vectors(passages)                           # (pairs, passage tokens, dim)
        kept = passages["attention_mask"].bool() & ~torch.isin(passages["input_ids"],
                                                               torch.tensor(self.skiplist, device=self.device))
        similarity = torch.einsum("pqd,ptd->pqt", q.float(), d.float())
        similarity = similarity.masked_fill(~kept[:, None, :], float("-inf"))
        return similarity.max(dim=-1).values.sum(dim=-1)
