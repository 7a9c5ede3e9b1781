"""The RRPO policy: a pointwise reranker read as a Plackett–Luce distribution over rankings.

One forward pass of the reranker over a query's N candidates gives scores s (divided by a temperature τ). Picking k
documents one at a time without replacement, with π(d_c | s_t) = exp(s_c) / Σ_{j ∈ s_t} exp(s_j) over the candidates
s_t not yet picked, is the Plackett–Luce model; its greedy decoding is plain sorting, so a trained policy is used at
inference exactly like the base reranker.

Sampling uses the Gumbel-top-k trick: add i.i.d. Gumbel(0, 1) noise to the scores and take the k largest. The order
of the top k is an exact Plackett–Luce sample without replacement (Yellott 1977; Kool et al., "Stochastic Beams and
Where to Find Them", ICML 2019), and it samples M rankings in one vectorised call.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from bench.errors import UserError
from bench.types import CandidateList
from rerankers.base import PointwiseReranker, RerankerSettings
from rerankers.registry import get_reranker

# Backbones whose score is a cosine in [-1, 1]: as Plackett–Luce logits such scores are almost uniform, so they are
# divided by a small temperature. 0.05 (a scale of 20) is the sentence-transformers default for contrastive training
# of these very models (MultipleNegativesRankingLoss, scale=20).
COSINE_TEMPERATURE = 0.05
COSINE_BACKBONES = frozenset({"minilm"})

# A trained RRPO checkpoint is a folder: config.json (this format tag, the backbone's registered name and checkpoint,
# the temperature, every training option) and the weights as a delta from the backbone (safetensors, float16, only
# the tensors training changed), so it reloads without pickle and ships in a few MB.
CHECKPOINT_FORMAT = "rrpo-checkpoint/1"
WEIGHTS_FILE = "rrpo_delta.safetensors"

_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def default_temperature(backbone: str) -> float:
    return COSINE_TEMPERATURE if backbone in COSINE_BACKBONES else 1.0


# ---------------------------------------------------------------------------------------------- Plackett–Luce math

def gumbel_top_k(scores: Tensor, k: int, num_samples: int, generator: torch.Generator) -> Tensor:
    """``num_samples`` Plackett–Luce samples of k picks without replacement from logits ``scores`` (shape [N]):
    an int64 tensor [num_samples, k] of candidate indices in pick order (exact Gumbel-top-k sampling)."""
    if not 1 <= k <= scores.shape[-1]:
        raise ValueError(f"k={k} must be between 1 and the number of candidates ({scores.shape[-1]})")
    u = torch.rand((num_samples, scores.shape[-1]), generator=generator, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
    perturbed = scores.detach().to(torch.float64).cpu().unsqueeze(0) + gumbel
    return perturbed.topk(k, dim=-1).indices


def greedy_top_k(scores: Tensor, k: int) -> Tensor:
    """The policy's greedy decoding: the k highest scores, best first (first index wins ties, like a stable sort)."""
    order = sorted(range(scores.shape[-1]), key=lambda i: -float(scores[i]))
    return torch.tensor(order[:k], dtype=torch.long)


def step_log_probs(scores: Tensor, actions: Tensor) -> Tensor:
    """Exact per-step Plackett–Luce log-probabilities log π(a_t | s_t) = s_{a_t} − logsumexp_{j ∈ s_t} s_j.

    scores: [N] logits (differentiable); actions: [M, k] picks. Returns [M, k]."""
    m, k = actions.shape
    logits = scores.unsqueeze(0).expand(m, -1)
    picked = torch.zeros_like(logits, dtype=torch.bool)
    rows = torch.arange(m)
    out = []
    for t in range(k):
        remaining = logits.masked_fill(picked, -math.inf)
        a = actions[:, t]
        out.append(logits[rows, a] - torch.logsumexp(remaining, dim=-1))
        picked = picked.clone()
        picked[rows, a] = True
    return torch.stack(out, dim=-1)


# ------------------------------------------------------------------------------------------------------ the policy

class RerankPolicy(nn.Module):
    """f_θ: a ``PointwiseReranker`` whose scores, divided by a temperature, are Plackett–Luce logits.

    ``trainable`` picks the parameters RRPO updates: ``all``, ``top:N`` (the last N transformer layers, found by
    their ``layer.<i>.``/``layers.<i>.`` names, plus anything after the encoder such as a pooler or a head) or
    ``none`` (only the temperature, when it is learnable). Everything else is frozen, which also saves the backward
    pass through the lower layers."""

    def __init__(self, reranker: PointwiseReranker, temperature: float = 1.0, learn_temperature: bool = False,
                 trainable: str = "all"):
        super().__init__()
        if temperature <= 0:
            raise UserError(f"--temperature {temperature}: expected a positive number")
        self.reranker = reranker
        self.backbone = reranker.model      # registered as a submodule: parameters(), state_dict(), .to()
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)), requires_grad=learn_temperature)
        self.trainable = trainable
        for name, p in self.backbone.named_parameters():
            p.requires_grad_(is_trainable(name, trainable, self._num_layers()))

    def _num_layers(self) -> int:
        layers = {int(m.group(1)) for n, _ in self.backbone.named_parameters() if (m := _LAYER.search(n))}
        return max(layers) + 1 if layers else 0

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.exp())

    def scores(self, cl: CandidateList) -> Tensor:
        """Plackett–Luce logits of the candidates of one query: one forward pass of the reranker, [N]."""
        n = len(cl.candidates)
        s = self.reranker.score([cl.query.text] * n, [c.doc.as_passage() for c in cl.candidates])
        return s.float().cpu() / self.log_temperature.exp()

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def frozen_copy(self) -> "RerankPolicy":
        """π_ref: a deep copy that never trains (gradients off, eval mode)."""
        ref = copy.deepcopy(self)
        ref.requires_grad_(False)
        ref.eval()
        return ref


def is_trainable(name: str, trainable: str, num_layers: int) -> bool:
    if trainable == "all":
        return True
    if trainable == "none":
        return False
    if trainable.startswith("top:") and trainable[4:].isdigit():
        if num_layers == 0:
            raise UserError(f"--trainable {trainable}: the backbone has no numbered 'layer.<i>.' parameters; "
                            f"use 'all' or 'none'")
        m = _LAYER.search(name)
        if m:
            return int(m.group(1)) >= num_layers - int(trainable[4:])
        # Embeddings come before the layers and stay frozen; poolers, norms and heads after them train.
        return "embed" not in name
    raise UserError(f"--trainable {trainable!r}: expected all, none or top:N (e.g. top:1)")



def load_policy(folder: Path, settings: RerankerSettings | None = None) -> RerankPolicy:
    """Rebuild a trained policy from a checkpoint folder: the registered backbone plus the saved delta."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UserError(f"{folder}: not an RRPO checkpoint (no config.json); train one with python -m rrpo train")
    config = json.loads(config_path.read_text())
    if config.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{config_path}: format {config.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    settings = settings or RerankerSettings()
    # the backbone has options of its own (its defaults), not those of the rrpo reranker
    backbone_settings = dataclasses.replace(settings, checkpoint=config.get("backbone_checkpoint"), options=None)
    policy = RerankPolicy(get_reranker(config["backbone"], backbone_settings), float(config["temperature"]),
                          trainable="none")
    params = dict(policy.named_parameters())
    try:
        delta = load_file(str(folder / config["weights"]))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"{folder / config['weights']}: not a safetensors file ({exc}); expected the weights "
                        f"delta python -m rrpo train writes (a pickle is never loaded)") from None
    unknown = sorted(set(delta) - set(params))
    if unknown:
        raise UserError(f"{folder / config['weights']}: tensors {unknown[:3]} are not parameters of the backbone "
                        f"{config['backbone']!r}")
    with torch.no_grad():
        for name, d in delta.items():
            params[name].add_(d.to(params[name].dtype).to(params[name].device))
    policy.eval()
    return policy
