"""RRPO — ReRanking Preference Optimization (Wu et al., "Optimizing RAG Rerankers with LLM Feedback via
Reinforcement Learning", arXiv 2604.02091): train a pointwise reranker by RL from the answer quality of a frozen
reader LLM.

Modules: ``policy`` (a ``PointwiseReranker`` as a Plackett–Luce policy; checkpoint format and loader), ``rewards``
(per-prefix reader rewards in one batched, cached call; the reference-anchored baseline; reward noise), ``rollouts``
(sampling M rankings per query and rewarding every prefix), ``trainer`` (``RRPOConfig`` with every option, GAE,
PPO-clip, KL, checkpoints, resume, plot). CLI: ``python -m rrpo train`` (compare with ``python -m bench run``); inference:
``rrpo/reranker.py`` (the registered ``rrpo`` reranker = sort by the trained score).

Choices of ours where the paper's detail was not recovered (each an option of ``RRPOConfig``):

* Value function. R_ref(q, t) = reward of the reference's greedy top-t list, computed once per (query, t), t = 1..k.
  s_t is the state in which the t-th document is picked and r_t the reward of the policy's top-t list. Default
  ``baseline=reference_return``: V(s_t) = Σ_{j≥t} γ^{j-t} R_ref(q, j), the return the reference's list earns from
  pick t on, so δ_t = r_t − R_ref(q, t) and, with γ = λ = 1, Â_t > 0 exactly when the policy's rewards from pick t on
  beat the reference's. ``baseline=reference_reward`` takes V(s_t) = R_ref(q, t) literally (RRPO.md), so that
  δ_t = r_t + γ R_ref(q, t+1) − R_ref(q, t) and the last step compares r_k with R_ref(q, k), like with like.
* Terminal value: the episode ends after k picks, so V(s_{k+1}) = 0 in both modes.
* KL: per-action log-ratio log π_θ(a_t|s_t) − log π_ref(a_t|s_t) at sampling time, subtracted from the reward with
  weight β (InstructGPT style), so it enters through the advantage.
* Advantages are standardised by the mean and standard deviation over the last ``window`` steps.
* Ratio anchor: π_ref (``ratio_anchor=reference``, the paper's) or π_old (``behaviour``, classic PPO). Clipping
  does not bound the ratio ρ: it removes an action's gradient once ρ has left [1−ε, 1+ε] in the direction its
  advantage pushes (ρ > 1+ε with Â > 0, ρ < 1−ε with Â < 0). The parameters are shared, so the gradients of other
  actions and queries keep moving ρ (a review measured ratios of 0.49–3.82 against π_ref after training); only the
  KL penalty pulls towards π_ref. With ``behaviour`` the interval is re-centred on each batch's π_old.
* Several processes (torchrun): each takes a share of every step's queries, divides its loss by the step's global
  number of queries, and the gradients are summed, so the update equals one process's on the same rollouts.

Shipped checkpoint (2 shared CPU cores, SmolLM2-135M reader, OMP_NUM_THREADS=1 — under CPU contention one thread
per process was ~10x faster than two here)::

    python -m rrpo train --dataset fictional-large --split train --backbone minilm --reader smollm2 --k 1 --pool 20 \
        --limit 160 --queries-per-step 8 --rollouts 4 --epochs 2 --ratio-anchor behaviour --max-minutes 30 \
        --out runs/fict-old
    python -m bench run --datasets fictional-large --rerankers minilm rrpo none oracle --baseline minilm

k_train = 1 (one of the paper's ablation settings) keeps the reader calls within the 30-minute budget and makes
most of them repeats (59% served from the cache, from an empty cache); the paper's best k_train = 3 asks about three
times as many distinct prefixes. ``checkpoints/minilm-fictional`` (the ``rrpo`` reranker's default; MiniLM's last
layer as a 3.5 MB float16 delta) came from that command: 40 steps in 18.0 minutes of training, chosen on
fictional-large/dev by F1 over the same command with the π_ref anchor. On fictional-large/test (500 questions) with
top-3 to SmolLM2 it raises F1 over minilm from 0.088 to 0.126 and accuracy from 0.190 to 0.336 (exact McNemar
p = 3.8e-9). It moves the answer-bearing passage (the qrels' grade 3) to rank 1 — nDCG@1 0.506 → 0.901, MRR@10
0.850 → 0.961 — while nDCG@10 stays flat (0.790 vs 0.796), since the topical passages graded 2 go down. Its
``eval_leaderboard.csv``, ``train_log.jsonl`` and ``training_curves.png`` lie beside it; its config.json records a
digest of the training data, and a test fails when the fictional generator changes without the checkpoint being
retrained.
"""
