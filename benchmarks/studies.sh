#!/usr/bin/env bash
# The three RRPO studies at the small size the README shows (offline, 2 CPU cores: about an hour in all).
# Training settings: the shipped checkpoint's (chosen on fictional-large dev), scaled down to the first 40 training
# questions for one epoch (5 steps); evaluation on the first 100 test questions with both offline readers.
# The noisy and depth studies reuse the transfer study's clean checkpoints (same options, same data).
set -euo pipefail
SMALL=(--train-limit 40 --epochs 1 --eval-limit 100 --eval-readers smollm2 gemma3-270m)
OUT=${OUT:-results/studies}
python -m rrpo study transfer --train-readers smollm2 gemma3-270m "${SMALL[@]}" --out "$OUT/transfer"
python -m rrpo study noisy --noise flip --p 0 0.25 0.5 --supervisors smollm2 gemma3-270m "${SMALL[@]}" \
    --reuse "$OUT/transfer/checkpoints/trained-with-smollm2" "$OUT/transfer/checkpoints/trained-with-gemma3-270m" \
    --out "$OUT/noisy"
python -m rrpo study depth --k 1 3 5 "${SMALL[@]}" --reuse "$OUT/transfer/checkpoints/trained-with-smollm2" \
    --out "$OUT/depth"
