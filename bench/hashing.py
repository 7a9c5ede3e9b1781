"""Content hashes of JSON-able values: run ids, fingerprints, cache keys, prompt versions."""
from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any, n: int = 16) -> str:
    """The first ``n`` hex digits of the SHA-256 of ``obj`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:n]
