"""Where the project's shared data sits: a ``shared/`` folder beside the main checkout (``../shared``) or above a
worktree; None on a machine without it (the tests that need it skip)."""
from __future__ import annotations

from pathlib import Path

HOTPOT_SAMPLE = "shared/data/hotpotqa-distractor-dev/hotpot_dev_distractor_sample.jsonl"
SHARED_HOTPOT = next((p / HOTPOT_SAMPLE for p in Path(__file__).resolve().parents if (p / HOTPOT_SAMPLE).is_file()),
                     None)
