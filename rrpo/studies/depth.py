"""``python -m rrpo study depth``: how many picks should a training episode have?

One checkpoint per training horizon ``--k`` (the number of documents the policy picks, each rewarded by the reader's
answer from the prefix so far), all evaluated with the same ``--top-k`` documents for the reader. The RRPO paper
found k_train = 3 best.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.errors import UserError
from rrpo.studies.base import Cell, Study, plot_curves


class DepthStudy(Study):
    name = "depth"
    plot_file = "depth_curve.png"

    def __init__(self, options, ks: list[int], servers=None):
        bad = [k for k in ks if k < 1]
        if bad:
            raise UserError(f"--k {bad[0]}: expected training horizons >= 1")
        self.ks = sorted(ks)
        super().__init__(options, servers)

    def identity(self) -> dict[str, Any]:
        return {"k": self.ks}

    def plan(self) -> list[Cell]:
        return [Cell(f"k{k}", {"k_train": k}, replace(self.base, k=k)) for k in self.ks]

    def reading_guide(self) -> str:
        return (f"Rows: k_train, the number of documents a training episode picks (each pick rewarded by the reader's "
                f"answer from the prefix so far); every checkpoint is evaluated with the reader reading the top "
                f"{self.options.top_k}. Columns: the reader used at evaluation.")

    def plot(self, rows: list[dict[str, Any]], path: Path) -> None:
        plot_curves(rows, "k_train", "k_train (documents picked per training episode)", None,
                    self.options.primary_metric, self.base.backbone,
                    f"RRPO by training depth (reader reads the top {self.options.top_k})", path)
