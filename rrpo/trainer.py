"""RRPO training: GAE advantages against the reference-anchored baseline, PPO-clip, KL to π_ref, AdamW.

Per step, for a batch of queries (split over the processes when run under torchrun):
1. ``RolloutCollector.collect``: M Plackett–Luce rankings of k documents per query from π_θ, the reader's reward after
   every pick r_1..r_k, and R_ref(q, 1..k), the rewards of π_ref's greedy prefixes (once per (query, depth)).
2. Per-action KL penalty, InstructGPT style: r̃_t = r_t − β (log π_θ(a_t|s_t) − log π_ref(a_t|s_t)), the
   log-ratio taken at sampling time.
3. Values V(s_1..s_{k+1}) from R_ref (see ``state_values``), δ_t = r̃_t + γ V(s_{t+1}) − V(s_t), GAE(γ, λ) advantages,
   standardised by the mean and standard deviation of the advantages of the last ``window`` steps.
4. ``updates_per_batch`` AdamW steps on −(1/k) Σ_t min(ρ_t Â_t, clip(ρ_t, 1−ε, 1+ε) Â_t), ρ_t = π_θ/π_ref (the
   paper's anchor) or π_θ/π_old, averaged over the queries of the step: each process divides by the global number
   of queries and the gradients are summed over processes (so uneven shards weigh every query alike), then clipped.
"""
from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from bench.distributed import Dist
from bench.errors import UserError
from bench.files import atomic_write
from bench.hashing import stable_hash
from bench.store import append_jsonl, read_jsonl, rewrite_jsonl
from bench.types import CandidateList
from rerankers.base import PointwiseReranker
from rrpo.policy import CHECKPOINT_FORMAT, WEIGHTS_FILE, RerankPolicy, default_temperature, step_log_probs
from rrpo.rewards import PrefixRewarder, ReaderLike, ReferenceBaseline, RewardMetric, RewardNoise
from rrpo.rollouts import QueryRollouts, RolloutCollector


@dataclass
class RRPOConfig:
    """Every RRPO option with its default. Where the paper's value was not recovered the default
    is our choice (see the rrpo package docstring), and the comment says why."""

    # data and models
    dataset: str = "fictional"
    split: str = "train"
    first_stage: str = "bm25"
    query2doc: str | None = None        # an LLM engine spec: Query2doc-expand the first stage's queries (bench run's)
    pool: int = 20                      # candidates per query (paper: BM25 top-100; 20 keeps CPU rollouts cheap)
    limit: int | None = None            # train on the first N queries only
    backbone: str = "minilm"            # a registered pointwise reranker; it is also π_ref
    backbone_checkpoint: str | None = None
    reader: str = "smollm2"             # the reward source (an LLM engine spec); evaluate with any other reader
    reader_template: str = "reader-qa"
    max_tokens: int = 32                # the benchmark reader's default, so training answers are cache hits there
    reader_batch_size: int = 16         # prompts per generate batch (does not change the answers)
    metric: str = "f1"                  # a registered answer metric (F1/f1, EM/em, accuracy, plugins') | judge:<engine>
    # policy
    k: int = 3                          # training horizon (paper: k_train = 3 was best)
    temperature: float | None = None    # PL logits = score / τ; None: 0.05 for cosine backbones, else 1
    learn_temperature: bool = False     # sorting ignores τ, so learning it only sharpens the sampling
    trainable: str = "top:1"            # all | top:N | none: the last layer learns and the delta stays small
    # rollouts and rewards
    rollouts: int = 4                   # M rankings per query
    queries_per_step: int = 8
    reward_noise: str = "none"          # none | flip | gaussian (noisy-supervisor study)
    noise_p: float = 0.0
    noise_sigma: float = 0.1
    # baseline and advantages
    baseline: str = "reference_return"  # reference_return | reference_reward (see state_values)
    gamma: float = 1.0                  # with γ = λ = 1, Â_t > 0 means "beat the reference from depth t on"
    lam: float = 1.0
    window: int = 16                    # steps whose advantages standardise the current ones
    # objective and optimiser
    clip_eps: float = 0.2
    ratio_anchor: str = "reference"     # reference (paper) | behaviour (π_old, classic PPO)
    kl_beta: float = 0.02               # InstructGPT's per-token KL coefficient
    lr: float = 1e-4                    # the demonstration's value (last layer only; the clip bounds each step)
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    updates_per_batch: int = 2          # gradient steps per batch of rollouts (rollouts cost reader calls; updates don't)
    epochs: int = 2                     # the second epoch re-asks many prefixes: cache hits
    seed: int = 0
    save_every: int = 10                # steps between resumable checkpoints
    max_minutes: float | None = None    # stop (and save) after the first step that ends past this wall-clock budget
    cache_dir: str | None = None        # LLM cache and first-stage cache (default: the benchmark's cache dir)

    def validate(self) -> None:
        checks = [
            (self.k >= 1, "--k: expected >= 1"),
            (self.pool >= self.k, f"--pool {self.pool}: expected >= --k {self.k}"),
            (self.rollouts >= 1, "--rollouts: expected >= 1"),
            (self.queries_per_step >= 1, "--queries-per-step: expected >= 1"),
            (self.baseline in ("reference_return", "reference_reward"),
             f"--baseline {self.baseline!r}: expected reference_return or reference_reward"),
            (self.ratio_anchor in ("reference", "behaviour"),
             f"--ratio-anchor {self.ratio_anchor!r}: expected reference or behaviour"),
            (0 < self.clip_eps < 1, f"--clip-eps {self.clip_eps}: expected a number in (0, 1)"),
            (0 <= self.gamma <= 1 and 0 <= self.lam <= 1, "--gamma/--lam: expected numbers in [0, 1]"),
            (self.window >= 1, "--window: expected >= 1"),
            (self.epochs >= 1 and self.updates_per_batch >= 1, "--epochs/--updates-per-batch: expected >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def resolved_temperature(self) -> float:
        return self.temperature if self.temperature is not None else default_temperature(self.backbone)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "RRPOConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(obj) - known
        if unknown:
            raise UserError(f"RRPO config: unknown fields {sorted(unknown)}")
        return cls(**obj)


# ------------------------------------------------------------------------------------------- advantages and loss

def state_values(reference_rewards: Tensor, mode: str, gamma: float) -> Tensor:
    """V(s_1..s_{k+1}) from R_ref(q, 1..k) (the rewards of the reference's greedy top-1..top-k lists). s_t is the
    state in which the t-th document is picked (t = 1..k), so step t earns r_t, the reward of the policy's top-t
    list, and δ_t = r_t + γ V(s_{t+1}) − V(s_t). The episode ends after k picks: V(s_{k+1}) = 0 in both modes.

    ``reference_return`` (default): V(s_t) = Σ_{j=t..k} γ^{j-t} R_ref(q, j), the return the reference's greedy list
    earns from pick t on. Then δ_t = r_t − R_ref(q, t) exactly: each pick is judged against the reference's list at
    the same depth, and with γ = λ = 1, Â_t > 0 iff the policy's rewards from pick t on beat the reference's.
    ``reference_reward``: V(s_t) = R_ref(q, t) literally (RRPO.md), so the last step compares r_k with R_ref(q, k),
    like with like."""
    k = reference_rewards.shape[0]
    values = torch.zeros(k + 1, dtype=torch.float64)
    if mode == "reference_return":
        for t in range(k - 1, -1, -1):
            values[t] = reference_rewards[t] + gamma * values[t + 1]
    else:
        values[:k] = reference_rewards
    return values


def gae(rewards: Tensor, values: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimation. rewards [..., k] (r for the action taken in s_t, t = 0..k-1), values
    [..., k + 1] (V(s_0..s_k)). δ_t = r_t + γ V(s_{t+1}) − V(s_t); Â_t = Σ_{j≥t} (γλ)^{j−t} δ_j."""
    deltas = rewards + gamma * values[..., 1:] - values[..., :-1]
    out = torch.zeros_like(deltas)
    running = torch.zeros_like(deltas[..., 0])
    for t in range(deltas.shape[-1] - 1, -1, -1):
        running = deltas[..., t] + gamma * lam * running
        out[..., t] = running
    return out


def ppo_clip_surrogate(logp: Tensor, logp_anchor: Tensor, advantages: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Per-action PPO-clip objective min(ρÂ, clip(ρ, 1−ε, 1+ε)Â), ρ = exp(logp − logp_anchor), to maximise; and the
    mask of actions whose ratio lies outside [1−ε, 1+ε] (the clip fraction)."""
    ratio = torch.exp(logp - logp_anchor)
    surrogate = torch.minimum(ratio * advantages, ratio.clamp(1 - eps, 1 + eps) * advantages)
    return surrogate, (ratio - 1).abs() > eps


class AdvantageWindow:
    """Standardises advantages by the mean and standard deviation of the advantages of the last ``steps`` steps."""

    def __init__(self, steps: int, history: Sequence[Sequence[float]] = ()):
        self.history: deque[list[float]] = deque((list(h) for h in history), maxlen=steps)

    def push(self, step_values: Sequence[float]) -> None:
        self.history.append(list(step_values))

    def standardise(self, advantages: Tensor) -> Tensor:
        pool = torch.tensor([v for h in self.history for v in h], dtype=torch.float64)
        std = pool.std(unbiased=False) if pool.numel() > 1 else torch.tensor(0.0, dtype=torch.float64)
        return (advantages - pool.mean()) / (std + 1e-8)


# ------------------------------------------------------------------------------------------------------ trainer

class RRPOTrainer:
    """Trains ``policy`` on ``train_lists``. ``out`` (optional) receives the checkpoint, the log and the plot; a
    trainer started on an ``out`` that holds a resumable state continues from it."""

    def __init__(self, cfg: RRPOConfig, policy: RerankPolicy, collector: RolloutCollector,
                 train_lists: Sequence[CandidateList], out: Path | None = None, dist: Dist = Dist()):
        cfg.validate()
        self.cfg, self.policy, self.collector, self.out, self.dist = cfg, policy, collector, out, dist
        self.train_lists = list(train_lists)
        if not self.train_lists:
            raise UserError(f"RRPO: no training queries in {cfg.dataset}/{cfg.split}")
        self.training_data = training_data_digest(self.train_lists)
        self.params = list(policy.trainable_parameters().values())
        if not self.params:
            raise UserError(f"--trainable {cfg.trainable}: nothing to train (add --learn-temperature or pick layers)")
        self.initial = {n: p.detach().clone() for n, p in policy.trainable_parameters().items()}
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.window = AdvantageWindow(cfg.window)
        self.step = 0
        self.seconds = 0.0
        if out is not None and (out / "resume" / "state.pt").exists():
            self._load_resume_state()

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_lists) / self.cfg.queries_per_step)

    def global_batch(self, step: int) -> list[int]:
        """The indices of the queries of global step ``step``, over all processes (a seeded shuffle per epoch)."""
        epoch, index = divmod(step, self.steps_per_epoch)
        order = torch.randperm(len(self.train_lists), generator=torch.Generator().manual_seed(self.cfg.seed + epoch))
        qs = self.cfg.queries_per_step
        return order[index * qs:(index + 1) * qs].tolist()

    def batch(self, step: int) -> list[CandidateList]:
        """This process's share of the queries of global step ``step`` (possibly none)."""
        return [self.train_lists[i] for i in self.global_batch(step)[self.dist.rank::self.dist.world]]

    # --- one step --------------------------------------------------------------------------------------------
    def raw_advantages(self, ro: QueryRollouts) -> Tensor:
        """GAE advantages [M, k] of one query's rollouts, before standardisation: the rewards less the per-action KL
        penalty, against the reference-anchored values."""
        cfg = self.cfg
        kl = ro.logp_behaviour - ro.logp_ref
        values = state_values(ro.reference_rewards.double(), cfg.baseline, cfg.gamma)
        return gae(ro.rewards.double() - cfg.kl_beta * kl.double(), values.expand(ro.rewards.shape[0], -1),
                   cfg.gamma, cfg.lam)

    def advantages(self, rollouts: Sequence[QueryRollouts]) -> tuple[list[Tensor], dict[str, float]]:
        """Standardised advantages of this process's rollouts; the window and the statistics cover every process's."""
        raw = [self.raw_advantages(ro) for ro in rollouts]
        local = [v for a in raw for v in a.flatten().tolist()]
        kls = [v for ro in rollouts for v in (ro.logp_behaviour - ro.logp_ref).flatten().tolist()]
        parts = self.dist.gather((local, kls))
        everyone = [v for adv, _ in parts for v in adv]
        self.window.push(everyone)
        flat = torch.tensor(everyone)
        stats = {"adv_mean": float(flat.mean()), "adv_std": float(flat.std(unbiased=False)),
                 "adv_pos_frac": float((flat > 0).double().mean()),
                 "kl": float(torch.tensor([v for _, kl in parts for v in kl]).mean())}
        return [self.window.standardise(a) for a in raw], stats

    def gradients(self, rollouts: Sequence[QueryRollouts], advantages: Sequence[Tensor],
                  n_queries: int) -> tuple[list[float], list[float]]:
        """Set the gradient of −(1/n_queries) Σ_q (1/(M k)) Σ_{m,t} min(ρÂ, clip(ρ)Â) over the queries of the step,
        summed over processes: every query weighs the same however the step is split. Returns this process's
        per-query losses and clip fractions."""
        cfg = self.cfg
        losses, clipped = [], []
        self.optimizer.zero_grad(set_to_none=True)
        for ro, adv in zip(rollouts, advantages):
            logp = step_log_probs(self.policy.scores(ro.cl), ro.actions)
            anchor = ro.logp_ref if cfg.ratio_anchor == "reference" else ro.logp_behaviour
            surrogate, outside = ppo_clip_surrogate(logp, anchor, adv.float(), cfg.clip_eps)
            loss = -surrogate.mean() / n_queries
            loss.backward()
            losses.append(float(loss.detach()) * n_queries)
            clipped.append(float(outside.float().mean()))
        self.dist.sum_gradients(self.params)
        return losses, clipped

    def update(self, rollouts: Sequence[QueryRollouts], advantages: Sequence[Tensor],
               n_queries: int) -> dict[str, float]:
        losses, clipped, grad_norms = [], [], []
        for _ in range(self.cfg.updates_per_batch):
            step_losses, step_clipped = self.gradients(rollouts, advantages, n_queries)
            losses += step_losses
            clipped += step_clipped
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)))
            self.optimizer.step()
        parts = self.dist.gather((losses, clipped))
        return {"loss": _mean([v for p in parts for v in p[0]]), "clip_frac": _mean([v for p in parts for v in p[1]]),
                "grad_norm": _mean(grad_norms)}

    def train_step(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        rewarder = self.collector.rewarder
        before = (rewarder.counts.requested, rewarder.counts.generated, self.collector.baseline.computed)
        rollouts = self.collector.collect(self.batch(self.step))
        advantages, adv_stats = self.advantages(rollouts)
        update_stats = self.update(rollouts, advantages, len(self.global_batch(self.step)))
        self.seconds += time.perf_counter() - t0
        local = {
            "final_reward": [float(v) for ro in rollouts for v in ro.rewards[:, -1]],
            "reference_reward": [float(ro.reference_rewards[-1]) for ro in rollouts],
            "counts": [rewarder.counts.requested - before[0], rewarder.counts.generated - before[1],
                       self.collector.baseline.computed - before[2], rewarder.counts.requested,
                       rewarder.counts.generated, self.collector.baseline.computed],
        }
        parts = self.dist.gather(local)
        counts = [sum(p["counts"][i] for p in parts) for i in range(6)]
        rewards = [v for p in parts for v in p["final_reward"]]
        refs = [v for p in parts for v in p["reference_reward"]]
        self.step += 1
        return {
            "step": self.step, "epoch": (self.step - 1) // self.steps_per_epoch, "queries": len(refs),
            "reward": _mean(rewards), "baseline": _mean(refs), **adv_stats, **update_stats,
            "temperature": self.policy.temperature,
            "reader": {"requested": counts[0], "generated": counts[1], "from_cache": counts[0] - counts[1]},
            "reader_total": {"requested": counts[3], "generated": counts[4], "from_cache": counts[3] - counts[4]},
            "cache_fraction": (counts[3] - counts[4]) / counts[3] if counts[3] else 0.0,
            "baseline_computed": counts[2], "baseline_computed_total": counts[5],
            "seconds": round(self.seconds, 2),
        }

    def train(self) -> list[dict[str, Any]]:
        total = self.cfg.epochs * self.steps_per_epoch
        log = []
        bar = tqdm(total=total, initial=self.step, desc="rrpo train", unit="step", disable=not self.dist.main)
        started = time.perf_counter()
        while self.step < total:
            row = self.train_step()
            log.append(row)
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward']:.3f}", ref=f"{row['baseline']:.3f}",
                            cache=f"{row['cache_fraction']:.2f}")
            if self.out is not None and self.dist.main:
                append_jsonl(self.out / "train_log.jsonl", [row])
            out_of_time = any(self.dist.gather(self.cfg.max_minutes is not None and   # every process stops together
                                               time.perf_counter() - started > 60 * self.cfg.max_minutes))
            if self.out is not None and (self.step % self.cfg.save_every == 0 or self.step == total or out_of_time):
                self.save()
            if out_of_time:
                break
        bar.close()
        return log

    # --- checkpoints -----------------------------------------------------------------------------------------
    def save(self) -> None:
        """Write the reloadable checkpoint (config.json + weights delta) and the resume state, each atomically."""
        generator_states = self.dist.gather(self.collector.generator.get_state())
        if not self.dist.main:
            return
        out = self.out
        out.mkdir(parents=True, exist_ok=True)
        delta = {n: (p.detach() - self.initial[n]).to(torch.float16).contiguous()
                 for n, p in self.policy.trainable_parameters().items() if n != "log_temperature"}
        delta = {n: d for n, d in delta.items() if d.any()}     # untouched tensors (e.g. an unused pooler) stay out
        atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(delta, str(tmp), metadata={"format": CHECKPOINT_FORMAT}))
        config = {"format": CHECKPOINT_FORMAT, "backbone": self.cfg.backbone,
                  "backbone_checkpoint": self.cfg.backbone_checkpoint, "temperature": self.policy.temperature,
                  "weights": WEIGHTS_FILE, "weights_kind": "delta (trained minus backbone), float16",
                  "step": self.step, "training_data": self.training_data, "hyperparameters": asdict(self.cfg)}
        atomic_write(out / "config.json", lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"))
        state = {"step": self.step, "seconds": self.seconds,
                 "params": {n: p.detach().clone() for n, p in self.policy.trainable_parameters().items()},
                 "optimizer": self.optimizer.state_dict(), "generators": generator_states,
                 "window": list(self.window.history), "config": asdict(self.cfg)}
        (out / "resume").mkdir(exist_ok=True)
        atomic_write(out / "resume" / "state.pt", lambda tmp: torch.save(state, tmp))
        plot_training_curves(out / "train_log.jsonl", out / "training_curves.png")

    def _load_resume_state(self) -> None:
        state = torch.load(self.out / "resume" / "state.pt", weights_only=True)
        free = ("epochs", "max_minutes", "save_every", "reader_batch_size")   # may change between sessions
        # options added since the state was saved (absent from it) count at their defaults: the behaviour it had
        saved = {k: v for k, v in {**asdict(RRPOConfig()), **state["config"]}.items() if k not in free}
        now = {k: v for k, v in asdict(self.cfg).items() if k not in free}
        if saved != now:
            changed = sorted(k for k in {*saved, *now} if saved.get(k) != now.get(k))   # incl. options since removed
            raise UserError(f"{self.out}: holds an RRPO run with other options ({', '.join(changed)}); "
                            f"use another --out or the same options (only {', '.join(free)} may change)")
        with torch.no_grad():
            for n, p in self.policy.trainable_parameters().items():
                p.copy_(state["params"][n])
        self.optimizer.load_state_dict(state["optimizer"])
        self.collector.generator.set_state(state["generators"][self.dist.rank])
        self.window = AdvantageWindow(self.cfg.window, state["window"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        log = self.out / "train_log.jsonl"
        if self.dist.main and log.exists():   # drop rows logged after the checkpoint: they will be redone
            rewrite_jsonl(log, [row for row in read_jsonl(log) if row["step"] <= self.step])


def assemble_trainer(cfg: RRPOConfig, reranker: PointwiseReranker, reader: ReaderLike, metric: RewardMetric,
                     train_lists: Sequence[CandidateList], out: Path | None = None,
                     dist: Dist = Dist()) -> RRPOTrainer:
    """Wire a trainer from built parts: π_θ and its frozen copy π_ref around ``reranker``, the rewarder, the
    reference baseline (persisted in ``out``) and the seeded sampler (one stream per process)."""
    cfg.validate()
    policy = RerankPolicy(reranker, cfg.resolved_temperature(), cfg.learn_temperature, cfg.trainable)
    reference = policy.frozen_copy()
    rewarder = PrefixRewarder(reader, metric, RewardNoise(cfg.reward_noise, cfg.noise_p, cfg.noise_sigma, cfg.seed))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    baseline = ReferenceBaseline(rewarder, cfg.k, out / "reference_baseline.jsonl" if out is not None else None,
                                 share=dist.gather, writer=dist.main)
    generator = torch.Generator().manual_seed(cfg.seed + dist.rank)
    collector = RolloutCollector(policy, reference, rewarder, baseline, cfg.k, cfg.rollouts, generator)
    return RRPOTrainer(cfg, policy, collector, train_lists, out, dist)


def training_data_digest(lists: Sequence[CandidateList]) -> str:
    """Fingerprint of the training queries, gold answers and candidate passages. A checkpoint records it, so that a
    change to the data it was trained on (for example to the fictional generator) is noticed, not silently mixed."""
    return stable_hash([(cl.query.qid, cl.query.text, cl.query.answers,
                         [(c.docid, c.doc.as_passage()) for c in cl.candidates]) for cl in lists])


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def plot_training_curves(log_path: Path, png_path: Path) -> None:
    import matplotlib  # lazy: matplotlib only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl(log_path)
    if not rows:
        return
    steps = [r["step"] for r in rows]
    panels = [("reward (final step) vs reference", [("reward", "policy"), ("baseline", "reference")]),
              ("advantage (raw)", [("adv_mean", "mean"), ("adv_std", "std")]),
              ("KL(π_θ‖π_ref) per action", [("kl", "kl")]),
              ("clip fraction", [("clip_frac", "clipped")]),
              ("reader answers from cache (cumulative)", [("cache_fraction", "fraction")])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (title, series) in zip(axes, panels):
        for key, label in series:
            ax.plot(steps, [r[key] for r in rows], label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
