"""Dataset loaders: BEIR folders and downloads (from a real local HTTP server), HotpotQA distractor files, QA JSONL,
and the error messages for malformed input."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import socket
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from bench.data import DATASETS, catalog, load_dataset, loaders
from bench.errors import UserError
from tests.shared_data import SHARED_HOTPOT


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_beir(folder: Path) -> Path:
    write_jsonl(folder / "corpus.jsonl", [
        {"_id": "d1", "title": "Alpha", "text": "alpha text"},
        {"_id": "d2", "title": "", "text": "beta text"},
        {"_id": "d3", "title": "Gamma", "text": "gamma text"},
    ])
    write_jsonl(folder / "queries.jsonl", [
        {"_id": "q1", "text": "first question", "metadata": {"answer": "Alpha"}},
        {"_id": "q2", "text": "second question", "metadata": {}},
        {"_id": "q3", "text": "train-only question"},
    ])
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq2\td2\t1\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td2\t1\n")
    return folder


def test_beir_folder_round_trip(tmp_path):
    ds = load_dataset(str(write_beir(tmp_path / "tiny")), split="test")
    assert (ds.name, ds.split) == ("tiny", "test")
    assert [(d.docid, d.title, d.text) for d in ds.corpus.values()] == [
        ("d1", "Alpha", "alpha text"), ("d2", "", "beta text"), ("d3", "Gamma", "gamma text")]
    assert [(q.qid, q.text, q.answers, q.qrels) for q in ds.queries] == [
        ("q1", "first question", ["Alpha"], {"d1": 2, "d3": 1}), ("q2", "second question", [], {"d2": 1})]
    assert [q.qid for q in load_dataset(str(tmp_path / "tiny"), split="train").queries] == ["q3"]


def test_beir_missing_split_lists_the_splits_found(tmp_path):
    with pytest.raises(UserError, match=r"no qrels for split 'dev'.*splits found: test, train"):
        load_dataset(str(write_beir(tmp_path / "tiny")), split="dev")


def test_beir_malformed_corpus_line_names_file_and_line(tmp_path):
    folder = write_beir(tmp_path / "tiny")
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    lines[1] = '{"_id": "d2", "text": "unterminated'
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"corpus\.jsonl line 2: invalid JSON .*expected a JSON object with \"_id\""):
        load_dataset(str(folder))


def test_beir_corpus_line_without_id(tmp_path):
    folder = write_beir(tmp_path / "tiny")
    with (folder / "corpus.jsonl").open("a") as fh:
        fh.write(json.dumps({"title": "no id", "text": "x"}) + "\n")
    with pytest.raises(UserError, match=r"corpus\.jsonl line 4: lacks '_id'"):
        load_dataset(str(folder))


def test_beir_malformed_qrels_line_names_file_and_line(tmp_path):
    folder = write_beir(tmp_path / "tiny")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq2 d2 1\n")
    with pytest.raises(UserError, match=r"test\.tsv line 3: expected query-id<TAB>corpus-id<TAB>integer score"):
        load_dataset(str(folder))


def test_beir_qrels_for_unknown_query(tmp_path):
    folder = write_beir(tmp_path / "tiny")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq9\td2\t1\n")
    with pytest.raises(UserError, match=r"test\.tsv line 3: query id 'q9' is not in .*queries\.jsonl"):
        load_dataset(str(folder))


# --- downloads from a real local HTTP server -------------------------------------------------------------------

@pytest.fixture
def beir_server(tmp_path):
    """Serves <tmp>/www/scifact.zip (a tiny BEIR folder) over HTTP on 127.0.0.1; yields (base URL, zip md5)."""
    www = tmp_path / "www"
    www.mkdir()
    source = write_beir(tmp_path / "src" / "scifact")
    with zipfile.ZipFile(www / "scifact.zip", "w") as zf:
        for f in sorted(source.rglob("*")):
            zf.write(f, f.relative_to(source.parent).as_posix())
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hashlib.md5((www / "scifact.zip").read_bytes()).hexdigest()
    server.shutdown()
    server.server_close()


def test_beir_download_verifies_md5_unzips_and_caches(beir_server, tmp_path, monkeypatch):
    url, md5 = beir_server
    monkeypatch.setenv(loaders.BEIR_URL_ENV, url)
    monkeypatch.setitem(loaders.BEIR_DATASETS, "scifact", (md5, "tiny stand-in"))
    # the stand-in is not SciFact: no pinned file digests (the download's are recorded and checked at later loads)
    entry = catalog.CATALOG["scifact"]
    monkeypatch.setitem(catalog.CATALOG, "scifact", dataclasses.replace(
        entry, files=tuple(dataclasses.replace(f, sha256=None) for f in entry.files)))
    cache = tmp_path / "cache"
    ds = load_dataset("scifact", split="test", cache_dir=str(cache))
    assert ds.name == "scifact"
    assert [q.qid for q in ds.queries] == ["q1", "q2"]
    record = json.loads((cache / "beir" / "scifact.download.json").read_text())
    zip_bytes = (tmp_path / "www" / "scifact.zip").read_bytes()
    assert record == {"url": f"{url}/scifact.zip", "md5": md5, "md5_verified": True,
                      "sha256": hashlib.sha256(zip_bytes).hexdigest(), "bytes": len(zip_bytes)}
    assert not (cache / "beir" / "scifact.zip").exists()
    assert "corpus.jsonl" in catalog.read_manifest(cache / "beir" / "scifact")
    # The unzipped folder is reused: no server needed the second time.
    monkeypatch.setenv(loaders.BEIR_URL_ENV, "http://127.0.0.1:9")
    assert [q.qid for q in load_dataset("scifact", cache_dir=str(cache)).queries] == ["q1", "q2"]


def test_beir_download_md5_mismatch_fails_and_keeps_nothing(beir_server, tmp_path, monkeypatch):
    url, md5 = beir_server
    monkeypatch.setenv(loaders.BEIR_URL_ENV, url)
    cache = tmp_path / "cache"
    published = loaders.BEIR_DATASETS["scifact"][0]
    with pytest.raises(UserError, match=rf"scifact\.zip: md5 {md5} of the download does not match the published "
                                        rf"{published}"):
        load_dataset("scifact", cache_dir=str(cache))
    assert sorted(p.name for p in (cache / "beir").iterdir()) == []


def test_beir_offline_error_names_url_and_workarounds(tmp_path, monkeypatch):
    with socket.socket() as s:          # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(loaders.BEIR_URL_ENV, f"http://127.0.0.1:{port}/beir")
    with pytest.raises(UserError) as err:
        load_dataset("nfcorpus", cache_dir=str(tmp_path))
    message = str(err.value)
    assert f"could not download http://127.0.0.1:{port}/beir/nfcorpus.zip" in message
    # the exact files a --data-dir folder needs, the flag, and the command that fetches them
    assert ("put nfcorpus/corpus.jsonl, nfcorpus/queries.jsonl, nfcorpus/qrels/test.tsv under a folder DIR and pass "
            "--data-dir DIR") in message
    assert "`python -m bench data pull nfcorpus`" in message and loaders.BEIR_URL_ENV in message
    assert "\n" not in message


def test_a_catalogued_file_that_cannot_be_downloaded_names_the_data_dir_layout_and_pull(tmp_path):
    from bench.data import catalog

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry = catalog.CATALOG["hotpotqa-distractor"]
    unreachable = catalog.DataFile(entry.files[0].path, f"http://127.0.0.1:{port}/hotpot.json")
    with pytest.raises(UserError) as err:
        catalog.fetch_file(entry, tmp_path / "hotpotqa", unreachable)
    assert str(err.value).endswith(
        "put hotpotqa-distractor/hotpot_dev_distractor_v1.json under a folder DIR and pass --data-dir DIR (or set "
        "$RERANK_BENCH_DATA=DIR); `python -m bench data pull hotpotqa-distractor` downloads them where the network "
        "is reachable")


def test_default_beir_url_and_registered_names():
    assert loaders.BEIR_BASE_URL == "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"
    for name in ("scifact", "nfcorpus", "fiqa", "arguana", "scidocs", "trec-covid", "hotpotqa",
                 "hotpotqa-distractor", "fictional"):
        assert name in DATASETS
    assert loaders.BEIR_DATASETS["scifact"][0] == "5f7d1de60b170fc8027bb7898e2efca1"


def test_unknown_name_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"unknown dataset 'no-such-set'.*fictional"):
        load_dataset("no-such-set")


# --- HotpotQA distractor ---------------------------------------------------------------------------------------

HOTPOT = [
    {"_id": "h1", "question": "Which came first?", "answer": "Alpha",
     "supporting_facts": [["Alpha", 0], ["Beta", 1]],
     "context": [["Gamma", ["Gamma one.", " Gamma two."]], ["Alpha", ["Alpha one."]], ["Beta", ["Beta one.", " Two."]]],
     "type": "comparison", "level": "hard"},
    {"_id": "h2", "question": "Who?", "answer": "Delta",
     "supporting_facts": [["Delta", 0]],
     "context": [["Delta", ["Delta is here."]], ["Epsilon", ["Not here."]]]},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_hotpotqa_file(tmp_path, suffix):
    path = tmp_path / f"hotpot{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, HOTPOT)
    else:
        path.write_text(json.dumps(HOTPOT))
    ds = load_dataset(str(path), split="dev")
    assert ds.candidates == {"h1": ["h1:0", "h1:1", "h1:2"], "h2": ["h2:0", "h2:1"]}
    assert ds.corpus["h1:0"].title == "Gamma" and ds.corpus["h1:0"].text == "Gamma one. Gamma two."
    assert ds.corpus["h1:2"].text == "Beta one. Two."
    assert [(q.qid, q.text, q.answers, q.qrels) for q in ds.queries] == [
        ("h1", "Which came first?", ["Alpha"], {"h1:1": 1, "h1:2": 1}), ("h2", "Who?", ["Delta"], {"h2:0": 1})]


def test_hotpotqa_hugging_face_layout(tmp_path):
    record = {"id": "x", "question": "Q?", "answer": "A",
              "supporting_facts": {"title": ["T2"], "sent_id": [0]},
              "context": {"title": ["T1", "T2"], "sentences": [["one."], ["two."]]}}
    ds = load_dataset(str(write_jsonl(tmp_path / "hf.jsonl", [record])))
    assert ds.candidates == {"x": ["x:0", "x:1"]} and ds.queries[0].qrels == {"x:1": 1}


def test_hotpotqa_malformed_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "hotpot.jsonl", HOTPOT)
    path.write_text(path.read_text() + '{"_id": "h3", "question": "no context", "answer": "x"}\n')
    with pytest.raises(UserError, match=r"hotpot\.jsonl line 3: lacks 'context', 'supporting_facts'"):
        load_dataset(str(path))


def test_hotpotqa_rrpo_parts_partition_the_file_by_question_id(tmp_path):
    records = [dict(HOTPOT[0], _id=f"q{i}") for i in range(60)]
    path = write_jsonl(tmp_path / "hotpot.jsonl", records)
    shuffled = write_jsonl(tmp_path / "shuffled.jsonl", records[::-1])
    parts = {split: load_dataset(str(path), split) for split in loaders.ID_SPLITS}
    qids = {split: [q.qid for q in ds.queries] for split, ds in parts.items()}
    assert sorted(sum(qids.values(), []), key=lambda q: int(q[1:])) == [r["_id"] for r in records]
    assert all(qids[s] for s in qids)
    for split, ds in parts.items():
        assert ds.split == split and set(ds.candidates) == set(qids[split])
        assert {d.split(":")[0] for d in ds.corpus} == set(qids[split])    # only the part's own passages
        assert {q.qid for q in load_dataset(str(shuffled), split).queries} == set(qids[split])  # ids, not order
    assert len(load_dataset(str(path), "dev").queries) == 60                  # other split names: the whole file


@pytest.mark.skipif(SHARED_HOTPOT is None, reason="the shared HotpotQA sample is not above this checkout")
def test_shared_hotpotqa_sample_parts_are_the_ones_rrpo_hotpotqa_was_trained_and_evaluated_on():
    sizes = {split: len(load_dataset(str(SHARED_HOTPOT), split).queries) for split in loaders.ID_SPLITS}
    assert sizes == {"rrpo-train": 222, "rrpo-select": 64, "rrpo-heldout": 226}


def test_hotpotqa_distractor_names_its_splits():
    with pytest.raises(UserError, match="use --split dev or test, or one of RRPO's parts of it: rrpo-train, "
                                        "rrpo-select, rrpo-heldout"):
        load_dataset("hotpotqa-distractor", "train")


# --- QA JSONL + corpus -----------------------------------------------------------------------------------------

def test_qa_jsonl_folder_and_file(tmp_path):
    folder = tmp_path / "myqa"
    write_jsonl(folder / "corpus.jsonl", [{"id": "c1", "contents": '"Velmora"\nSigned in Quenlith.'},
                                          {"id": "c2", "title": "Other", "text": "Noise."}])
    write_jsonl(folder / "test.jsonl", [{"id": "1", "question": "Where?", "golden_answers": ["Quenlith", "Q"],
                                         "qrels": {"c1": 1}},
                                        {"id": "2", "question": "Who?", "golden_answers": "Nobody"}])
    ds = load_dataset(str(folder))
    assert ds.name == "myqa"
    assert [(d.docid, d.title, d.text) for d in ds.corpus.values()] == [
        ("c1", "Velmora", "Signed in Quenlith."), ("c2", "Other", "Noise.")]
    assert [(q.qid, q.answers, q.qrels) for q in ds.queries] == [("1", ["Quenlith", "Q"], {"c1": 1}),
                                                                ("2", ["Nobody"], {})]
    by_file = load_dataset(str(folder / "test.jsonl"))
    assert [q.qid for q in by_file.queries] == ["1", "2"] and set(by_file.corpus) == {"c1", "c2"}


def test_qa_jsonl_malformed_line(tmp_path):
    folder = tmp_path / "myqa"
    write_jsonl(folder / "corpus.jsonl", [{"id": "c1", "text": "x"}])
    write_jsonl(folder / "questions.jsonl", [{"id": "1", "question": "Where?", "golden_answers": ["a"]},
                                             {"id": "2", "question": "Who?"}])
    with pytest.raises(UserError, match=r"questions\.jsonl line 2: lacks 'golden_answers'; expected a JSON object "
                                        r"with \"id\", \"question\" and \"golden_answers\""):
        load_dataset(str(folder))


def test_unrecognised_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"not a dataset folder; expected corpus\.jsonl"):
        load_dataset(str(tmp_path / "empty"))


def append_line(path: Path, line: bytes) -> None:
    with path.open("ab") as f:
        f.write(line + b"\n")


@pytest.mark.parametrize("file, line, message", [
    ("corpus.jsonl", b'{"_id": "d2", "title": "", "text": "again"}', "line 4: _id 'd2' repeats line 2"),
    ("queries.jsonl", b'{"_id": "q1", "text": "again"}', "line 4: _id 'q1' repeats line 1"),
    ("queries.jsonl", b'{"_id": "q4", "text": "caf\xe9"}', "line 4: not UTF-8 text (byte 0xe9)"),
    ("corpus.jsonl", b'{"_id": "d4", "title": "", "text": "\xff"}', "line 4: not UTF-8 text (byte 0xff)"),
])
def test_beir_repeated_ids_and_non_utf8_name_file_and_line(tmp_path, file, line, message):
    folder = write_beir(tmp_path / "tiny")
    append_line(folder / file, line)
    with pytest.raises(UserError) as err:
        load_dataset(str(folder), split="test")
    assert str(err.value).startswith(f"{folder / file} {message}")


def test_beir_qrels_non_utf8_names_file_and_line(tmp_path):
    folder = write_beir(tmp_path / "tiny")
    append_line(folder / "qrels" / "test.tsv", b"q2\td\xe93\t1")
    with pytest.raises(UserError, match=r"test.tsv line 5: not UTF-8 text \(byte 0xe9\)"):
        load_dataset(str(folder), split="test")


def test_beir_empty_corpus(tmp_path):
    folder = write_beir(tmp_path / "tiny")
    (folder / "corpus.jsonl").write_text("")
    with pytest.raises(UserError) as err:
        load_dataset(str(folder), split="test")
    assert str(err.value) == f"{folder / 'corpus.jsonl'}: the corpus file is empty; expected one document per line"


def test_hotpotqa_json_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "hotpot.json"
    path.write_bytes(b'[\n{"_id": "a",\n "question": "caf\xe9?"}\n]\n')
    with pytest.raises(UserError) as err:
        load_dataset(str(path))
    assert str(err.value) == f"{path} line 3: not UTF-8 text (byte 0xe9); expected a UTF-8 file"
