"""Kill-safe JSONL (bench.store): a tail torn anywhere (between rows, inside a row, inside a multi-byte UTF-8
character, before the newline) is repaired on read, and the next append starts on a clean line; damage that no kill
makes (a bad line before the last) is an error naming the file and line."""
import json

import pytest

from bench.errors import UserError
from bench.store import append_jsonl, read_jsonl

ROWS = [{"qid": "q1", "text": "café"}, {"qid": "q2", "text": "naïve – ok"}]


def test_a_tail_torn_inside_a_multibyte_character_is_cut_and_appending_continues(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"qid": "q1", "text": "plain"}\n{"qid": "q2", "text": "caf\xc3')
    assert read_jsonl(path) == [{"qid": "q1", "text": "plain"}]
    assert path.read_bytes() == b'{"qid": "q1", "text": "plain"}\n'
    append_jsonl(path, [ROWS[0]])
    assert read_jsonl(path) == [{"qid": "q1", "text": "plain"}, ROWS[0]]


@pytest.mark.parametrize("cut", range(len(json.dumps(ROWS[1], ensure_ascii=False).encode()) + 1))
def test_every_cut_of_the_last_row_keeps_the_rows_before_it(tmp_path, cut):
    """A kill at any byte of the last append: the file reads as the rows before it (plus the last row when it was
    written whole), and an append after the repair reads back intact."""
    path = tmp_path / "log.jsonl"
    last = json.dumps(ROWS[1], ensure_ascii=False).encode()
    path.write_bytes(json.dumps(ROWS[0], ensure_ascii=False).encode() + b"\n" + last[:cut])
    whole = cut == len(last)
    assert read_jsonl(path) == (ROWS if whole else ROWS[:1])
    append_jsonl(path, [{"qid": "q3", "text": "ü"}])
    assert read_jsonl(path) == [*(ROWS if whole else ROWS[:1]), {"qid": "q3", "text": "ü"}]


def test_a_bad_line_before_the_last_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(UserError, match=r"log\.jsonl:2: not a valid record"):
        read_jsonl(path)
    path.write_bytes(b'{"a": 1}\n{"a": "caf\xc3"}\n{"a": 3}\n')      # invalid UTF-8 inside: no kill does that
    with pytest.raises(UserError, match=r"log\.jsonl:2: not a valid record"):
        read_jsonl(path)


def test_a_row_of_the_wrong_shape_in_the_tail_is_dropped_by_the_parser(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"step": 1}\n{"ste')
    assert read_jsonl(path, lambda row: row["step"]) == [1]
    path.write_bytes(b'{"step": 1}\n[2]')        # whole JSON, but not a row the parser takes: a torn longer row
    assert read_jsonl(path, lambda row: row["step"]) == [1] and path.read_bytes() == b'{"step": 1}\n'
