"""Downloads (resume, truncation, checksum failure, offline) against a real local HTTP server that honours Range
requests, the dataset catalog (pull, verify, local copies under --data-dir / $RERANK_BENCH_DATA) and
``python -m bench data``."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from bench.cli import main
from bench.data import catalog, load_dataset
from bench.data.download import download
from bench.errors import UserError
from tests.test_trec_dl import QRELS, TOPICS, request_line

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")


class FileServer:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1 with ``Range: bytes=N-`` support. ``truncate`` makes the
    next that many responses announce the full length but close after half the body; ``ignore_range`` answers 200
    with the whole file; ``requests`` logs (path, Range header)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.truncate = 0
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if server.truncate:
                    server.truncate -= 1
                    self.wfile.write(part[:len(part) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FileServer({})
    yield srv
    srv.close()


BODY = bytes(range(256)) * 400          # 102,400 bytes


def test_download_checks_md5_and_leaves_no_part_file(server, tmp_path):
    server.files["/f.bin"] = BODY
    dest = tmp_path / "f.bin"
    record = download(f"{server.url}/f.bin", dest, md5=hashlib.md5(BODY).hexdigest(), size=len(BODY))
    assert dest.read_bytes() == BODY
    assert record == {"url": f"{server.url}/f.bin", "md5": hashlib.md5(BODY).hexdigest(), "md5_verified": True,
                      "sha256": hashlib.sha256(BODY).hexdigest(), "bytes": len(BODY)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_checksum_failure_names_url_and_keeps_nothing(server, tmp_path):
    server.files["/f.bin"] = BODY
    wrong = "0" * 64
    with pytest.raises(UserError, match=rf"f\.bin: sha256 {hashlib.sha256(BODY).hexdigest()} of the download does "
                                        rf"not match the published {wrong}"):
        download(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=wrong)
    assert list(tmp_path.iterdir()) == []


def test_truncated_download_is_kept_as_part_and_resumed_with_range(server, tmp_path):
    server.files["/f.bin"] = BODY
    server.truncate = 1
    dest = tmp_path / "f.bin"
    with pytest.raises(UserError, match=r"f\.bin"):
        download(f"{server.url}/f.bin", dest, md5=hashlib.md5(BODY).hexdigest())
    part = tmp_path / "f.bin.part"
    assert not dest.exists()
    assert part.read_bytes() == BODY[:len(BODY) // 2]          # never under the final name
    download(f"{server.url}/f.bin", dest, md5=hashlib.md5(BODY).hexdigest())
    assert dest.read_bytes() == BODY and not part.exists()
    assert server.requests == [("/f.bin", None), ("/f.bin", f"bytes={len(BODY) // 2}-")]


def test_complete_part_file_answered_416_is_checked_and_kept(server, tmp_path):
    server.files["/f.bin"] = BODY
    (tmp_path / "f.bin.part").write_bytes(BODY)          # every byte arrived, the rename did not happen
    download(f"{server.url}/f.bin", tmp_path / "f.bin", md5=hashlib.md5(BODY).hexdigest())
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert server.requests == [("/f.bin", f"bytes={len(BODY)}-")]


def test_server_without_range_support_restarts_the_download(server, tmp_path):
    server.files["/f.bin"] = BODY
    (tmp_path / "f.bin.part").write_bytes(b"garbage that must not be kept")
    server.ignore_range = True
    download(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=hashlib.sha256(BODY).hexdigest())
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_short_file_with_published_size_is_refused(server, tmp_path):
    server.files["/f.bin"] = BODY[:1000]
    with pytest.raises(UserError, match=r"1,000 bytes downloaded, the published size is 2,000"):
        download(f"{server.url}/f.bin", tmp_path / "f.bin", size=2000)
    assert not (tmp_path / "f.bin").exists()


def test_offline_error_names_url_and_keeps_nothing(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=rf"could not download http://127\.0\.0\.1:{port}/f\.bin .*use a copy"):
        download(f"http://127.0.0.1:{port}/f.bin", tmp_path / "f.bin", how_to_avoid="use a copy")
    assert list(tmp_path.iterdir()) == []


# --- the catalog ------------------------------------------------------------------------------------------------

CANDIDATES = (request_line("1", "first query", [("a", "alpha"), ("b", "beta"), ("c", "gamma"), ("d", "delta"),
                                                ("e", "epsilon")])
              + request_line("2", "second query", [("y", "ypsilon"), ("a", "alpha")]))


@pytest.fixture
def dl_entry(server, monkeypatch):
    """A TREC-DL-shaped catalog entry whose three files the local server publishes (md5 + size like rank_llm)."""
    server.files.update({"/topics.txt": TOPICS.encode(), "/qrels.txt": QRELS.encode(),
                         "/cands.jsonl": CANDIDATES.encode()})
    entry = catalog.trec_dl_entry("dl19", "BM25")
    files = (catalog.DataFile(entry.files[0].path, f"{server.url}/topics.txt"),
             catalog.DataFile(entry.files[1].path, f"{server.url}/qrels.txt"),
             catalog.DataFile(entry.files[2].path, f"{server.url}/cands.jsonl",
                              md5=hashlib.md5(CANDIDATES.encode()).hexdigest(), size=len(CANDIDATES.encode())),
             entry.files[3])
    patched = dataclasses.replace(entry, files=files)
    monkeypatch.setitem(catalog.CATALOG, "dl19-passage", patched)
    return patched


def test_pull_downloads_records_checksums_and_loads(dl_entry, tmp_path, server):
    folder = catalog.pull("dl19-passage", data_dir=str(tmp_path / "data"))
    assert folder == tmp_path / "data" / "dl19-passage"
    manifest = (folder / "SHA256SUMS").read_text().splitlines()
    assert manifest == sorted(f"{hashlib.sha256(body.encode()).hexdigest()}  {name}" for name, body in
                              [("qrels.dl19-passage.txt", QRELS), ("retrieve_results_dl19_top100.jsonl", CANDIDATES),
                               ("topics.dl19-passage.txt", TOPICS)])
    ds = load_dataset("dl19-passage", data_dir=str(tmp_path / "data"))
    assert [q.qid for q in ds.queries] == ["1", "2"] and ds.relevance_level == 2
    # Loaded again from the local copy: the server is not asked twice.
    assert len(server.requests) == 3


def test_corrupted_local_file_is_named_and_nothing_loads(dl_entry, tmp_path, monkeypatch):
    folder = catalog.pull("dl19-passage", data_dir=str(tmp_path))
    qrels = folder / "qrels.dl19-passage.txt"
    qrels.write_text(QRELS[:-8])                                   # truncated after pull
    monkeypatch.setenv(catalog.DATA_DIR_ENV, str(tmp_path))         # the environment variable, no argument
    with pytest.raises(UserError, match=rf"{qrels}: sha256 \w+ does not match the recorded in SHA256SUMS at pull "
                                        rf"\w+; delete it and run `python -m bench data pull dl19-passage`"):
        load_dataset("dl19-passage")
    assert main(["data", "verify", "dl19-passage"]) == 2
    catalog.pull("dl19-passage")                                     # pull repairs it
    assert qrels.read_text() == QRELS


def test_published_md5_mismatch_of_a_local_copy_is_detected(dl_entry, tmp_path):
    folder = tmp_path / "dl19-passage"
    folder.mkdir()
    for f, body in zip(dl_entry.files, (TOPICS, QRELS, CANDIDATES.replace("alpha", "ALPHA"))):
        (folder / f.path).write_text(body)
    with pytest.raises(UserError, match=r"retrieve_results_dl19_top100\.jsonl: md5 \w+ does not match the pinned"):
        load_dataset("dl19-passage", data_dir=str(tmp_path))


def test_file_without_url_says_how_to_get_it(tmp_path):
    with pytest.raises(UserError, match=r"musique_ans_v1\.0_dev\.jsonl: missing; MuSiQue is on Google Drive"):
        load_dataset("musique-ans", split="dev", data_dir=str(tmp_path))


def test_zip_member_download(server, tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("dev_light.json", json.dumps([{"id": "1", "question": "q?", "annotations": [
            {"type": "singleAnswer", "answer": ["x"]}]}]))
    server.files["/ambignq_light.zip"] = buf.getvalue()
    entry = catalog.CATALOG["ambignq"]
    files = (catalog.DataFile("dev_light.json", f"{server.url}/ambignq_light.zip", member="dev_light.json"),
             entry.files[1])
    monkeypatch.setitem(catalog.CATALOG, "ambignq", dataclasses.replace(entry, files=files))
    folder = catalog.pull("ambignq", data_dir=str(tmp_path))
    assert sorted(p.name for p in folder.iterdir()) == [".digests.json", "SHA256SUMS", "dev_light.json"]
    assert catalog.CATALOG["ambignq"].read(folder, "dev").queries[0].answers == ["x"]


# --- shared data (skipped when the project's shared/data is absent) ---------------------------------------------

@pytest.mark.skipif(not (SHARED / "scifact").is_dir(), reason="the project's shared/data is not here")
def test_shared_data_loads_by_name_with_its_counts():
    scifact = load_dataset("scifact", data_dir=str(SHARED))
    assert (len(scifact.corpus), len(scifact.queries), sum(len(q.qrels) for q in scifact.queries)) == (5183, 300, 339)
    hotpot = load_dataset("hotpotqa-distractor-sample", split="dev", data_dir=str(SHARED))
    assert (hotpot.name, hotpot.split, len(hotpot.queries), len(hotpot.corpus)) == \
        ("hotpotqa-distractor-sample", "dev", 512, 5088)
    assert all(len(q.qrels) == 2 for q in hotpot.queries)


@pytest.mark.skipif(not (SHARED / "scifact").is_dir(), reason="the project's shared/data is not here")
def test_data_verify_checks_shared_scifact_against_beir_checksums(capsys):
    assert main(["data", "verify", "scifact", "--data-dir", str(SHARED)]) == 0
    out = capsys.readouterr().out
    assert out.count("sha256 matches the pinned one") == 4 and "qrels/train.tsv" in out


def test_data_list_and_info(tmp_path, capsys):
    assert main(["data", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("dl19-passage", "dl20-passage-splade", "musique-ans", "2wikimultihopqa", "nq-open", "triviaqa",
                 "ambignq", "popqa", "scifact", "fictional"):
        assert f"| {name} " in out
    assert main(["data", "info", "dl20-passage", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "BM25 nDCG@10 0.4796" in out and "MAP, Recall, MRR at grade >= 2 (trec_eval -l 2)" in out
    assert "3b6397f50fd78229e8d733243745a6d4" not in out and "md5, bytes" in out
    assert "https://github.com/castorini/rank_llm_data/raw/main/retrieve_results/BM25/" \
           "retrieve_results_dl20_top100.jsonl" in out
    assert f"not local (pull goes to {tmp_path / 'data' / 'dl20-passage'})" in out


def test_data_verify_of_a_dataset_never_pulled(tmp_path, capsys):
    assert main(["data", "verify", "popqa", "--cache-dir", str(tmp_path)]) == 2
    assert "dataset 'popqa' is not local" in capsys.readouterr().err


def test_rank_llm_checksums_are_the_published_ones():
    entry = catalog.CATALOG["dl19-passage"]
    cands = entry.files[2]
    assert (cands.url, cands.md5, cands.size) == (
        "https://github.com/castorini/rank_llm_data/raw/main/retrieve_results/BM25/retrieve_results_dl19_top100.jsonl",
        "518ab9f821fb74d862589d1d141c208e", 2000369)
    assert catalog.CATALOG["dl20-passage-splade"].files[2].md5 == "241c63eba8f4ce8b7795fcaaf565bb03"


def test_hotpotqa_distractor_reads_a_local_copy_and_fictional_ignores_the_data_dir(tmp_path):
    folder = tmp_path / "hotpotqa-distractor"
    folder.mkdir()
    (folder / "hotpot_dev_distractor_v1.json").write_text(json.dumps([
        {"_id": "h1", "question": "Q?", "answer": "A", "supporting_facts": [["T", 0]],
         "context": [["T", ["A is here."]], ["U", ["Noise."]]]}]))
    ds = load_dataset("hotpotqa-distractor", split="dev", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"))
    assert (ds.name, [q.qid for q in ds.queries], ds.queries[0].qrels) == ("hotpotqa-distractor", ["h1"], {"h1:0": 1})
    assert not (tmp_path / "c").exists()                       # nothing downloaded
    assert len(load_dataset("fictional", data_dir=str(tmp_path)).queries) == 100
