"""``python -m rrpo study transfer``: does a reranker trained with one reader help others?

One checkpoint per training reader (``--train-readers``), each evaluated with every evaluation reader
(``--eval-readers``): the "trained with X → evaluated with Y" matrix of the primary metric's gain over the backbone.
The RRPO paper trains with one reader and evaluates with others (Qwen2.5-3B/14B, Llama-3.1-8B, GLM-4-9B, GPT-4o,
Claude, Gemini); here any engine specs, e.g. ``smollm2 gemma3-270m`` offline or ``openai:<model>`` on a vLLM server.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.files import atomic_write
from rrpo.studies.base import ALPHA, Cell, Study, plot_axes


def slug(spec: str) -> str:
    """A folder-safe form of an engine spec (``openai:Qwen/Qwen2.5-3B`` -> ``openai-Qwen-Qwen2.5-3B``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-")


class TransferStudy(Study):
    name = "transfer"
    plot_file = "transfer_heatmap.png"

    def __init__(self, options, train_readers: list[str], servers=None):
        self.train_readers = list(train_readers)
        super().__init__(options, servers)

    def identity(self) -> dict[str, Any]:
        return {"train_readers": self.train_readers}

    def plan(self) -> list[Cell]:
        return [Cell(f"trained-with-{slug(reader)}", {"trained_with": reader}, replace(self.base, reader=reader))
                for reader in self.train_readers]

    def reading_guide(self) -> str:
        return (f"Rows: the reader whose answers trained the checkpoint (its reward); columns: the reader that answers "
                f"from the reranked top-{self.options.top_k} at evaluation. The diagonal is the usual setting "
                f"(trained and evaluated with the same reader); off the diagonal, transfer. A cell shows the backbone's "
                f"mean → the checkpoint's mean, and the gain with its 95% CI.")

    def plot(self, rows: list[dict[str, Any]], path: Path) -> None:
        """Heatmap of the primary metric's gain; annotated with the gain, its CI and the significance mark."""
        from matplotlib.colors import TwoSlopeNorm  # lazy: matplotlib only when a plot is drawn

        plt = plot_axes()
        metric, backbone = self.options.primary_metric, self.base.backbone
        train, evals = self.train_readers, list(self.options.eval_readers)
        by = {(r["trained_with"], r["eval_reader"]): r for r in rows}
        gains = np.array([[by[(t, e)][f"{metric}_gain"] for e in evals] for t in train], dtype=float)
        limit = float(np.nanmax(np.abs(gains))) if np.isfinite(gains).any() and np.nanmax(np.abs(gains)) > 0 else 0.01
        fig, ax = plt.subplots(figsize=(2.2 + 2.1 * len(evals), 1.6 + 1.0 * len(train)))
        im = ax.imshow(gains, cmap="RdBu", norm=TwoSlopeNorm(0.0, -limit, limit), aspect="auto")
        for i, t in enumerate(train):
            for j, e in enumerate(evals):
                r = by[(t, e)]
                mark = "*" if r[f"{metric}_p_holm"] < ALPHA else ""
                dark = abs(r[f"{metric}_gain"]) > 0.6 * limit      # white text on the saturated colours
                ax.text(j, i, f"{r[f'{metric}_gain']:+.3f}{mark}\n[{r[f'{metric}_gain_ci_lo']:+.3f}, "
                              f"{r[f'{metric}_gain_ci_hi']:+.3f}]", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
        base = {e: by[(train[0], e)][f"{metric}_backbone"] for e in evals}
        ax.set_xticks(range(len(evals)), [f"{e}\n({backbone}: {base[e]:.3f})" for e in evals], fontsize=8)
        steps = {t: f"{by[(t, evals[0])]['steps']}/{by[(t, evals[0])]['planned_steps']}" for t in train}
        ax.set_yticks(range(len(train)), [f"{t}\n({steps[t]} steps)" for t in train], fontsize=8)
        ax.set_xlabel("evaluated with reader (backbone's mean)")
        ax.set_ylabel("trained with reader")
        n = max(r["n"] for r in rows)
        ax.set_title(f"RRPO gain in {metric} over {backbone}: {self.base.dataset} {self.options.eval_split}, {n} "
                     f"questions\n(* p < {ALPHA}, Holm over the table; [95% bootstrap CI])", fontsize=9)
        fig.colorbar(im, ax=ax, label=f"{metric} gain (RRPO − {backbone})")
        fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
        plt.close(fig)
