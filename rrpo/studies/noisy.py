"""``python -m rrpo study noisy``: does a noisier or weaker supervisor still train a useful reranker?

Cells: every supervisor (``--supervisors``, the readers whose answers give the reward; default: the training
reader) × every noise level ``--p``: with probability p each reward is flipped (``--noise flip``: r -> 1 - r) or
perturbed (``--noise gaussian``: r + N(0, σ), clipped to [0, 1]), seeded per (query, prefix) so a prefix always gets
the same noisy reward (``rrpo.rewards.RewardNoise``). p = 0 is the clean supervisor. The RRPO paper's weaker
supervisor is a 3B reader; here e.g. ``--supervisors smollm2 gemma3-270m --eval-readers gemma3-270m``.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.errors import UserError
from rrpo.studies.base import Cell, Study, plot_curves
from rrpo.studies.transfer import slug

NOISE_KINDS = ("flip", "gaussian")


class NoisyStudy(Study):
    name = "noisy"
    plot_file = "noise_curve.png"

    def __init__(self, options, noise: str, ps: list[float], supervisors: list[str] | None = None,
                 sigma: float = 0.1, servers=None):
        if noise not in NOISE_KINDS:
            raise UserError(f"--noise {noise!r}: expected one of {', '.join(NOISE_KINDS)}")
        bad = [p for p in ps if not 0.0 <= p <= 1.0]
        if bad:
            raise UserError(f"--p {bad[0]}: expected probabilities in [0, 1]")
        self.noise, self.ps, self.sigma = noise, sorted(ps), sigma
        self._supervisors = list(supervisors or [])
        super().__init__(options, servers)

    @property
    def supervisors(self) -> list[str]:
        return self._supervisors or [self.base.reader]

    def identity(self) -> dict[str, Any]:
        return {"noise": self.noise, "p": self.ps, "sigma": self.sigma, "supervisors": self.supervisors}

    def plan(self) -> list[Cell]:
        cells = []
        for sup in self.supervisors:
            for p in self.ps:
                # p = 0 is the clean supervisor: no noise option at all, so it is the very same training (and reuses
                # a finished checkpoint of it)
                noise = {"reward_noise": self.noise, "noise_p": p, "noise_sigma": self.sigma} if p > 0 else {}
                cells.append(Cell(f"{slug(sup)}-{self.noise}-p{p:g}", {"supervisor": sup, "noise_p": p},
                                  replace(self.base, reader=sup, **noise)))
        return cells

    def reading_guide(self) -> str:
        what = ("flipped (r → 1 − r)" if self.noise == "flip"
                else f"perturbed by N(0, {self.sigma:g}) noise (clipped to [0, 1])")
        return (f"Rows: the supervisor (the reader whose answers give the training reward) and p, the probability "
                f"that a reward was {what}; p = 0 is the clean supervisor. Columns: the reader used at evaluation. "
                f"A useful noisy supervisor keeps the gain over the backbone positive as p grows.")

    def plot(self, rows: list[dict[str, Any]], path: Path) -> None:
        what = "flip" if self.noise == "flip" else f"Gaussian (σ = {self.sigma:g})"
        plot_curves(rows, "noise_p", f"probability p of a noisy reward ({what})",
                    "supervisor" if len(self.supervisors) > 1 else None, self.options.primary_metric,
                    self.base.backbone, f"RRPO with a noisy supervisor ({', '.join(self.supervisors)})", path)
