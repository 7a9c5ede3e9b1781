"""What a run folder keeps, written so that a kill loses at most the rows in flight: kill-safe JSONL (append with
fsync, a tolerant read that repairs a torn tail), the per-query record store, the saved rankings, and the folder
lock. ``bench.runner`` and ``rrpo`` (training log, reference baseline, study folders) persist through it.

A kill can stop an append anywhere: between two rows, inside a row, between a row and its newline, even inside a
multi-byte UTF-8 character. The reader works on bytes, so a tail torn in any of these places is recognised and cut
off (a half character is no decoding error of the whole file); a bad line anywhere else is an error naming the file
and line, since that is damage no kill makes.
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from bench.distributed import parts_of, remove_parts
from bench.errors import UserError
from bench.files import atomic_write
from bench.types import QueryRecord, Ranking

T = TypeVar("T")
# A record in one of these states is final: a re-run keeps it. "no_candidates": the first stage gave the query
# nothing to rank, so no reader was asked and the query is counted apart from the answered ones; its retrieval
# metrics are 0 (the first stage failed it: trec_eval -c).
FINAL_STATUSES = ("ok", "no_candidates")
LOCK_FILE = ".lock"


def _as_row(row: dict[str, Any]) -> Any:
    return row


def read_jsonl(path: Path, parse: Callable[[dict[str, Any]], T] = _as_row) -> list[T]:
    """The rows of a JSONL file that is appended to, each through ``parse``. A last line that is not a whole row
    (no newline after it, and not parseable) is a torn tail: it is dropped and cut from the file, so the next append
    starts on a clean line (a whole row without its newline is kept and gets it from ``append_jsonl``)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows, offset = [], 0
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(parse(json.loads(line.decode("utf-8"))))
            except (ValueError, TypeError, KeyError) as exc:     # bad JSON or UTF-8; a row of the wrong shape
                if n == len(lines):          # torn tail: no newline after it
                    with path.open("r+b") as f:
                        f.truncate(offset)
                    break
                raise UserError(f"{path}:{n}: not a valid record ({exc})") from None
        offset += len(line) + 1
    return rows


def append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows and flush them to disk before returning (a finished chunk survives a kill). A file whose last
    line lacks its newline (a kill between a row and its newline) gets the newline first, so the new rows never
    glue onto that row."""
    with path.open("a+b") as f:
        if f.tell():                        # append mode starts at the end: a non-empty file
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        for row in rows:
            f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def rewrite_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Replace the file with ``rows`` in one step (a kill leaves the old file or the new one)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class RecordStore:
    """Append-only per-query JSONL with one live record per key (the last one written). Records are read from
    ``path`` and the parts other ranks of a torchrun run left beside it (``bench.distributed``); a final record is
    never replaced by a failed one from another part, whose order in time is unknown."""

    def __init__(self, path: Path, merged: Path | None = None):
        self.path = path
        self.records: dict[tuple[str, str, str, str], QueryRecord] = {}
        for part in parts_of(merged or path):
            for rec in read_jsonl(part, QueryRecord.from_json):
                old = self.records.get(self.key(rec))
                if old is None or rec.status in FINAL_STATUSES or old.status not in FINAL_STATUSES:
                    self.records[self.key(rec)] = rec

    @staticmethod
    def key(rec: QueryRecord) -> tuple[str, str, str, str]:
        return rec.dataset, rec.reranker, rec.reader, rec.qid

    def done(self, dataset: str, reranker: str, reader: str, qid: str) -> bool:
        rec = self.records.get((dataset, reranker, reader, qid))
        return rec is not None and rec.status in FINAL_STATUSES

    def append(self, recs: list[QueryRecord]) -> None:
        append_jsonl(self.path, [r.to_json() for r in recs])
        for rec in recs:
            self.records[self.key(rec)] = rec

    def compact(self) -> None:
        """Rewrite the file with one record per key (retried failures replaced), atomically, and drop the parts it
        now holds."""
        rewrite_jsonl(self.path, [rec.to_json() for rec in self.records.values()])
        remove_parts(self.path)

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rec in self.records.values():
            counts[rec.status] = counts.get(rec.status, 0) + 1
        return counts


def saved_rankings(path: Path) -> dict[str, Ranking]:
    """Rankings saved in ``path`` and in the parts of it that ranks of a torchrun run wrote."""
    return {r.qid: r for part in parts_of(path) for r in read_jsonl(part, Ranking.from_json)}


def merge_rankings(path: Path, qids: list[str]) -> list[Ranking]:
    """Rewrite a rankings file with its parts' rankings too, in the order of ``qids``; return them so."""
    saved = saved_rankings(path)
    rankings = [saved[q] for q in qids if q in saved]
    rewrite_jsonl(path, [r.to_json() for r in rankings])
    remove_parts(path)
    return rankings


@contextmanager
def run_folder_lock(folder: Path, name: str = LOCK_FILE) -> Iterator[None]:
    """Hold an exclusive lock on a run folder while writing into it: two runs appending to the same records and
    rankings would corrupt them. A second run fails at once (exit 2) naming the process that holds the lock; the
    kernel drops the lock when that process ends, even by SIGKILL."""
    with (folder / name).open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise UserError(f"{folder}: another run (pid {holder}) is writing into this run folder; wait for it to "
                            f"finish, or pass another --output or --run-id") from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
