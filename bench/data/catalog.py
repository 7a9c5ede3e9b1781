"""The catalog of benchmarks by name: where each file comes from, its checksum, and where the local copy lives.

Each entry lists its files with their source URL and, where one is published, a checksum: rank_llm publishes the
md5 and size of its cached first-stage files (``src/rank_llm/retrieve/repo_info.py``), BEIR the md5 of each zip,
and the SciFact files carry the sha256 of BEIR's bytes. Files without a published checksum get their sha256
recorded at ``pull`` in ``<folder>/SHA256SUMS`` (``sha256sum -c`` format) and are checked against it afterwards.

A dataset's folder is ``<data dir>/<folder>`` where the data dir is ``--data-dir``, else ``$RERANK_BENCH_DATA``;
without either (or when the data dir lacks the dataset) it is the cache folder (``<cache>/data/<folder>``;
``<cache>/beir/<name>`` for BEIR). Loading by name checks every file whose checksum is known first: a corrupted or
truncated file is named and nothing is loaded. Missing files that have a URL are downloaded (resumable, see
``bench.data.download``); files without one (MuSiQue's Google Drive zip, the full MS MARCO collection, DPR's
Wikipedia passages) are explained by ``info``.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.data import loaders, qa_formats, trec_dl
from bench.data.base import DATASETS, Dataset, register_dataset, unknown_dataset
from bench.data.download import download, file_digest
from bench.environment import cache_dir as cache_dir_of
from bench.errors import UserError
from bench.files import atomic_write

log = logging.getLogger(__name__)

DATA_DIR_ENV = "RERANK_BENCH_DATA"
MANIFEST = "SHA256SUMS"
# Digests computed at earlier loads, with the size and mtime of the file they were computed from: a load re-hashes
# a file only when either changed, so every load checks every file at the cost of a stat.
DIGEST_MEMO = ".digests.json"


@dataclass(frozen=True)
class DataFile:
    path: str                       # inside the dataset folder
    url: str | None = None          # None: not downloadable here (the entry's ``how_to_get`` says how)
    md5: str | None = None          # published checksums / size
    sha256: str | None = None
    size: int | None = None
    member: str | None = None       # the file's name inside the zip at ``url``
    optional: bool = False


@dataclass(frozen=True)
class Entry:
    name: str
    task: str
    files: tuple[DataFile, ...]
    read: Callable[[Path, str], Dataset] | None   # (folder, split) -> Dataset; None: loaded by another module
    splits: str
    evaluated: str
    counts: str
    size: str
    licence: str
    source: str
    metrics: str = "nDCG@k graded; Recall, MRR, MAP at grade >= 1"
    published: str = ""
    folder: str = ""                # folder name (default: the name)
    cache_path: str = ""            # folder under the cache (default: data/<folder>)
    how_to_get: str = ""
    fetch: Callable[[str | None], Path] | None = None   # custom pull into the cache (BEIR zips)

    @property
    def folder_name(self) -> str:
        return self.folder or self.name

    def cache_folder(self, cache_dir: str | None) -> Path:
        return cache_dir_of(cache_dir) / (self.cache_path or f"data/{self.folder_name}")


CATALOG: dict[str, Entry] = {}


def entry_of(name: str) -> Entry:
    """The catalog entry of a registered name or alias (``dl19`` is ``dl19-passage``), or of a catalogued file set
    that is no ``--datasets`` name (``openqa-eval``, read by ``bench judge-eval``)."""
    if name in CATALOG:
        return CATALOG[name]
    if name not in DATASETS:
        raise unknown_dataset(name)
    canonical = DATASETS.entry(name).name
    if canonical not in CATALOG:
        raise UserError(f"dataset {name!r} has no catalog entry (it is built in: nothing to pull or verify)")
    return CATALOG[canonical]


def data_root(data_dir: str | os.PathLike | None) -> Path | None:
    root = data_dir or os.environ.get(DATA_DIR_ENV)
    return Path(root).expanduser() if root else None


def find_folder(entry: Entry, data_dir: str | None = None, cache_dir: str | None = None) -> Path | None:
    """The existing folder of the dataset: in the data dir first, then in the cache; None when neither has it."""
    root = data_root(data_dir)
    for folder in ([root / entry.folder_name] if root else []) + [entry.cache_folder(cache_dir)]:
        if folder.is_dir():
            return folder
    return None


def target_folder(entry: Entry, data_dir: str | None = None, cache_dir: str | None = None) -> Path:
    root = data_root(data_dir)
    return root / entry.folder_name if root else entry.cache_folder(cache_dir)


# --- checking --------------------------------------------------------------------------------------------------

def read_manifest(folder: Path) -> dict[str, str]:
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            out[name] = digest
    return out


def write_manifest(entry: Entry, folder: Path) -> None:
    """Record the sha256 of every present file (the reference for files without a published checksum)."""
    recorded = read_manifest(folder)
    for f in entry.files:
        if (folder / f.path).is_file():
            recorded[f.path] = file_digest(folder / f.path)
    atomic_write(folder / MANIFEST, lambda tmp: tmp.write_text(
        "".join(f"{d}  {p}\n" for p, d in sorted(recorded.items())), encoding="utf-8"))


def check_file(entry: Entry, folder: Path, f: DataFile, recorded: dict[str, str]) -> tuple[str, str]:
    """(status, detail) of one file: ok, missing, absent (optional), unverified, or CORRUPT."""
    path = folder / f.path
    if not path.is_file():
        return ("absent (optional)", "") if f.optional else ("missing", "")
    size = path.stat().st_size
    if f.size is not None and size != f.size:
        return "CORRUPT", f"{size:,} bytes, the published size is {f.size:,} (truncated or changed)"
    checks = [("sha256", f.sha256, "pinned"), ("md5", f.md5, "pinned"),
              ("sha256", recorded.get(f.path), f"recorded in {MANIFEST} at pull")]
    for algorithm, expected, origin in checks:
        if expected:
            actual = memo_digest(folder, f.path, algorithm)
            if actual != expected:
                return "CORRUPT", f"{algorithm} {actual} does not match the {origin} {expected}"
            return "ok", f"{algorithm} matches the {origin} one"
    return "unverified", "no published checksum and none recorded (run `python -m bench data pull` to record one)"


def memo_digest(folder: Path, name: str, algorithm: str) -> str:
    """``file_digest(folder / name)``, reused from ``DIGEST_MEMO`` while the file's size and mtime are those it was
    computed at; recomputed (and the memo updated) otherwise."""
    path, memo_path = folder / name, folder / DIGEST_MEMO
    stat = path.stat()
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8")) if memo_path.is_file() else {}
    except (ValueError, OSError):
        memo = {}                 # a damaged memo only costs a re-hash
    seen = memo.get(name) if isinstance(memo, dict) else None
    if not isinstance(memo, dict):
        memo = {}
    if isinstance(seen, dict) and seen.get("size") == stat.st_size and seen.get("mtime_ns") == stat.st_mtime_ns \
            and isinstance(seen.get(algorithm), str):
        return seen[algorithm]
    digest = file_digest(path, algorithm)
    kept = seen if isinstance(seen, dict) and seen.get("size") == stat.st_size \
        and seen.get("mtime_ns") == stat.st_mtime_ns else {}
    memo[name] = {**kept, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, algorithm: digest}
    try:
        atomic_write(memo_path, lambda tmp: tmp.write_text(json.dumps(memo, indent=1) + "\n", encoding="utf-8"))
    except OSError as exc:        # a read-only copy: checked in full at every load instead
        log.info("%s: digest memo not written (%s)", memo_path, exc)
    return digest


def verify_folder(entry: Entry, folder: Path) -> list[dict[str, str]]:
    recorded = read_manifest(folder)
    return [{"file": str(folder / f.path), "status": status, "detail": detail}
            for f in entry.files for status, detail in [check_file(entry, folder, f, recorded)]]


def raise_on_failure(entry: Entry, rows: list[dict[str, str]]) -> None:
    bad = [r for r in rows if r["status"] in ("CORRUPT", "missing")]
    if bad:
        first = bad[0]
        what = first["detail"] if first["status"] == "CORRUPT" else "missing"
        raise UserError(f"{first['file']}: {what}; delete it and run `python -m bench data pull {entry.name}`"
                        + (f" ({len(bad) - 1} more file(s) failed)" if len(bad) > 1 else ""))


# --- pulling ---------------------------------------------------------------------------------------------------

def local_copy_hint(name: str) -> str:
    """What a failed download tells the user: the exact files a ``--data-dir`` folder needs for ``name``, and the
    command that fetches them where the network is reachable."""
    entry = CATALOG[name]
    files = ", ".join(f"{entry.folder_name}/{f.path}" for f in entry.files)
    return (f"to run without the network, put {files} under a folder DIR and pass --data-dir DIR (or set "
            f"${DATA_DIR_ENV}=DIR); `python -m bench data pull {name}` downloads them where the network is reachable")


def fetch_file(entry: Entry, folder: Path, f: DataFile) -> None:
    how = local_copy_hint(entry.name)
    dest = folder / f.path
    if f.member is None:
        download(f.url, dest, md5=f.md5, sha256=f.sha256, size=f.size, how_to_avoid=how)
        return
    archive = folder / f".{Path(f.url).name}"
    download(f.url, archive, how_to_avoid=how)
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(f.member) as src, \
                (part := dest.with_name(dest.name + ".part")).open("wb") as out:
            shutil.copyfileobj(src, out)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UserError(f"{f.url}: not a zip holding {f.member} ({exc})") from None
    part.rename(dest)
    archive.unlink()


def ensure(entry: Entry, folder: Path, repair: bool = False, cache_dir: str | None = None) -> Path:
    """Download the missing files (``repair``: also the corrupted ones) and check every file; returns the folder."""
    fetched = entry.fetch is not None and not (folder / entry.files[0].path).is_file()
    if fetched:
        folder = entry.fetch(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    recorded = read_manifest(folder)
    rows = []
    for f in entry.files:
        status, detail = check_file(entry, folder, f, recorded)
        if status == "CORRUPT" and repair:
            (folder / f.path).unlink()
            status = "missing"
        if status == "missing":
            if f.url is None:
                raise UserError(f"{folder / f.path}: missing; {entry.how_to_get or 'no download URL is known'}")
            fetch_file(entry, folder, f)
            fetched = True
        rows.append({"file": str(folder / f.path), "status": status, "detail": detail})
    if fetched:                         # record what arrived, then check everything against it
        write_manifest(entry, folder)
        rows = verify_folder(entry, folder)
    raise_on_failure(entry, rows)
    return folder


def pull(name: str, data_dir: str | None = None, cache_dir: str | None = None) -> Path:
    entry = entry_of(name)
    folder = find_folder(entry, data_dir, cache_dir) or target_folder(entry, data_dir, cache_dir)
    return ensure(entry, folder, repair=True, cache_dir=cache_dir)


def local_copy(name: str, data_dir: str | None = None) -> Path | None:
    """The dataset's folder under the data dir, checked; None when there is no data dir or it lacks the dataset."""
    entry = CATALOG.get(name)
    root = data_root(data_dir)
    if entry is None or root is None or not (root / entry.folder_name).is_dir():
        return None
    folder = root / entry.folder_name
    raise_on_failure(entry, verify_folder(entry, folder))
    return folder


def checked_cache_copy(name: str, cache_dir: str | None = None) -> Path:
    """The catalogued dataset's folder in the cache, downloaded when absent and checked at every load (a corrupt
    copy fails naming the file and ``bench data pull NAME``)."""
    entry = CATALOG[name]
    return ensure(entry, entry.cache_folder(cache_dir), cache_dir=cache_dir)


def load_entry(name: str, split: str = "test", cache_dir: str | None = None, data_dir: str | None = None) -> Dataset:
    """The catalogued dataset ``name``: its local copy, checked, or its files downloaded first."""
    entry = CATALOG[name]
    if split not in (entry.evaluated, "test"):   # "test" is the runner's default: it means the evaluated split
        raise UserError(f"dataset {name!r} has the {entry.evaluated} split only (splits of the release: "
                        f"{entry.splits}); got --split {split}")
    return entry.read(checked_folder(name, data_dir, cache_dir), entry.evaluated)


def checked_folder(name: str, data_dir: str | None = None, cache_dir: str | None = None) -> Path:
    """The folder of the catalogued dataset ``name`` with every file present and checked (missing ones downloaded)."""
    entry = CATALOG[name]
    folder = find_folder(entry, data_dir, cache_dir) or target_folder(entry, data_dir, cache_dir)
    return ensure(entry, folder, cache_dir=cache_dir)


def add(entry: Entry, aliases: tuple[str, ...] = ()) -> Entry:
    """Catalog ``entry`` and register its name (and ``aliases``) for ``--datasets``."""
    CATALOG[entry.name] = entry
    register_dataset(entry.name, f"{entry.task}: {entry.counts} ({entry.size}; {entry.licence})", aliases)(
        functools.partial(load_entry, entry.name))
    return entry


# --- TREC Deep Learning ----------------------------------------------------------------------------------------

ANSERINI_TOPICS = "https://raw.githubusercontent.com/castorini/anserini-tools/master/topics-and-qrels"
RANK_LLM_DATA = "https://github.com/castorini/rank_llm_data/raw/main/retrieve_results"
# (set, topics file, published counts, collection) ; md5/size of rank_llm's files from its repo_info.py
TREC_DL = {
    "dl19": ("topics.dl19-passage.txt", "43 judged queries, 9,260 judgements", "MS MARCO v1 passage"),
    "dl20": ("topics.dl20.txt", "54 judged queries (of 200 topics), 11,386 judgements", "MS MARCO v1 passage"),
    "dl21": ("topics.dl21.txt", "53 judged queries", "MS MARCO v2 passage"),
    "dl22": ("topics.dl22.txt", "76 judged queries", "MS MARCO v2 passage"),
}
RANK_LLM_FILES = {  # (method folder, set) -> (md5, bytes), as published in rank_llm's repo_info.py
    ("BM25", "dl19"): ("518ab9f821fb74d862589d1d141c208e", 2000369),
    ("BM25", "dl20"): ("3b6397f50fd78229e8d733243745a6d4", 2528494),
    ("BM25", "dl21"): ("6ca5e405c55fc2280d66eb0afc7416f5", 2140373),
    ("BM25", "dl22"): ("08322ee30bf084d1309f5c5a515f2f18", 3021942),
    ("SPLADE_P_P_ENSEMBLE_DISTIL", "dl19"): ("894d37a5701bde517f75e117b2d5cad4", 1844101),
    ("SPLADE_P_P_ENSEMBLE_DISTIL", "dl20"): ("241c63eba8f4ce8b7795fcaaf565bb03", 2285466),
    ("SPLADE_P_P_ENSEMBLE_DISTIL", "dl21"): ("5b90d5460014d94d977921202c42606a", 2082006),
    ("SPLADE_P_P_ENSEMBLE_DISTIL", "dl22"): ("9082402af60b5e9208556853bc7842b0", 2958535),
}
PUBLISHED_BM25 = {"dl19": "BM25 nDCG@10 0.5058 (pyserini, k1=0.9 b=0.4)",
                  "dl20": "BM25 nDCG@10 0.4796 (pyserini, k1=0.9 b=0.4)"}
FIRST_STAGES = {"BM25": ("", "BM25 top-100"), "SPLADE_P_P_ENSEMBLE_DISTIL": ("-splade", "SPLADE++ ED top-100")}


def trec_dl_entry(dl: str, method: str) -> Entry:
    topics, counts, collection = TREC_DL[dl]
    suffix, first_stage = FIRST_STAGES[method]
    name = f"{dl}-passage{suffix}"
    qrels = f"qrels.{dl}-passage.txt"
    candidates = f"retrieve_results_{dl}_top100.jsonl"
    md5, size = RANK_LLM_FILES[method, dl]
    files = (DataFile(topics, f"{ANSERINI_TOPICS}/{topics}"), DataFile(qrels, f"{ANSERINI_TOPICS}/{qrels}"),
             DataFile(candidates, f"{RANK_LLM_DATA}/{method}/{candidates}", md5=md5, size=size))
    if collection.endswith("v1 passage"):
        files += (DataFile(trec_dl.COLLECTION_FILE, optional=True),)
    return Entry(
        name=name, task=f"TREC DL passage ranking ({collection}), {first_stage} candidates with text",
        files=files,
        read=lambda folder, split: trec_dl.load_trec_dl(folder, topics, qrels, candidates, name, split),
        splits="test", evaluated="test", counts=counts, size=f"{size / 1e6:.1f} MB of candidates",
        licence="MS MARCO terms (non-commercial research); NIST judgements",
        source=f"topics/qrels: {ANSERINI_TOPICS}; candidates: {RANK_LLM_DATA}/{method}",
        metrics="nDCG@k graded (0-3); MAP, Recall, MRR at grade >= 2 (trec_eval -l 2)",
        published=PUBLISHED_BM25.get(dl, "") if method == "BM25" else "", folder=name,
        how_to_get="optional: MS MARCO's collection.tsv from "
                   "https://msmarco.z22.web.core.windows.net/msmarcoranking/collection.tar.gz (unpacked)")


for _dl in TREC_DL:
    for _method in FIRST_STAGES:
        # the short names of rank_llm and of many papers (dl19, trec-dl19) name the BM25 candidates' set
        add(trec_dl_entry(_dl, _method), aliases=(_dl, f"trec-{_dl}") if _method == "BM25" else ())


# --- QA sets in their release formats --------------------------------------------------------------------------

DPR_CORPUS = DataFile(qa_formats.DPR_PASSAGES_FILE, optional=True)
OPEN_DOMAIN_HOW = ("the retrieval corpus is DPR's Wikipedia split: unpack "
                   "https://dl.fbaipublicfiles.com/dpr/wikipedia_split/psgs_w100.tsv.gz into the folder, or pass "
                   "ready-made candidates with --first-stage (rank_llm Request JSONL, RankGPT hits, TREC run) or a "
                   "DPR retriever-output file as the dataset")
add(Entry(
    name="musique-ans", task="multi-hop QA, 20 paragraphs per question",
    files=(DataFile("musique_ans_v1.0_dev.jsonl"),),
    read=lambda folder, split: qa_formats.load_musique(folder / "musique_ans_v1.0_dev.jsonl", split, "musique-ans"),
    splits="train/dev (test answers hidden)", evaluated="dev", counts="2,417 dev questions",
    size="~80 MB (zip of all splits)", licence="CC BY 4.0", source="https://github.com/StonyBrookNLP/musique",
    metrics="EM/F1 over answer + answer_aliases; Recall/nDCG of the supporting paragraphs",
    how_to_get="MuSiQue is on Google Drive: run download_data.sh of github.com/StonyBrookNLP/musique and put "
               "data/musique_ans_v1.0_dev.jsonl in the folder"))
add(Entry(
    name="2wikimultihopqa", task="multi-hop QA, 10 paragraphs per question",
    files=(DataFile("dev.json", "https://huggingface.co/datasets/voidful/2WikiMultihopQA/resolve/main/dev.json"),
           DataFile("id_aliases.json", optional=True)),
    read=lambda folder, split: qa_formats.load_2wikimultihopqa(folder / "dev.json", split, "2wikimultihopqa"),
    splits="train/dev/test", evaluated="dev", counts="12,576 dev questions", size="~50 MB",
    licence="Apache-2.0", source="https://github.com/Alab-NII/2wikimultihop (dev.json via the HF mirror "
                                 "voidful/2WikiMultihopQA)",
    metrics="EM/F1 over answer (+ id_aliases.json aliases); Recall/nDCG of the supporting paragraphs",
    how_to_get="for aliases, put id_aliases.json (and the dev.json with answer_id) of data_ids_april7.zip from "
               "github.com/Alab-NII/2wikimultihop in the folder"))
add(Entry(
    name="hotpotqa-distractor-sample", task="multi-hop QA, 10 paragraphs per question",
    files=(DataFile("hotpot_dev_distractor_sample.jsonl",
                    sha256="6447c10822df1bd7cd3e5c5cf24637152c06d55daa98adc70b64ec9b5f8ac920"),),
    read=lambda folder, split: loaders.load_hotpotqa(folder / "hotpot_dev_distractor_sample.jsonl", "dev",
                                                     name="hotpotqa-distractor-sample"),
    splits="dev", evaluated="dev", counts="512 dev questions (first ~570 of the dev set)", size="3.2 MB",
    licence="CC BY-SA 4.0", source="the project's shared/data/hotpotqa-distractor-dev (see its README)",
    metrics="EM/F1/accuracy over answer; Recall/nDCG of the supporting paragraphs",
    folder="hotpotqa-distractor-dev",
    how_to_get="this sample is not downloadable: use --data-dir pointing at the project's shared/data"))
add(Entry(
    name="nq-open", task="open-domain QA (corpus: DPR Wikipedia)",
    files=(DataFile("NQ-open.dev.jsonl", "https://raw.githubusercontent.com/google-research-datasets/"
                                         "natural-questions/master/nq_open/NQ-open.dev.jsonl"), DPR_CORPUS),
    read=lambda folder, split: qa_formats.load_nq_open(folder / "NQ-open.dev.jsonl", split, "nq-open"),
    splits="train/dev", evaluated="dev", counts="3,610 questions (the NQ-open test set of DPR/ORQA)",
    size="~0.3 MB (+13 GB corpus)", licence="CC BY-SA 3.0",
    source="https://github.com/google-research-datasets/natural-questions/tree/master/nq_open",
    metrics="EM/F1/accuracy over the answer list", how_to_get=OPEN_DOMAIN_HOW))
add(Entry(
    name="triviaqa", task="open-domain QA (corpus: DPR Wikipedia)",
    files=(DataFile("unfiltered-web-dev.json"), DPR_CORPUS),
    read=lambda folder, split: qa_formats.load_triviaqa(folder / "unfiltered-web-dev.json", split, "triviaqa"),
    splits="train/dev (unfiltered)", evaluated="dev",
    counts="11,313 questions (the open-domain test set of DPR)", size="~600 MB archive",
    licence="Apache-2.0 (per the TriviaQA release)",
    source="https://nlp.cs.washington.edu/triviaqa/",
    metrics="EM/F1/accuracy over Answer.Value + Answer.Aliases",
    how_to_get="unpack unfiltered-web-dev.json from https://nlp.cs.washington.edu/triviaqa/data/"
               "triviaqa-unfiltered.tar.gz into the folder; " + OPEN_DOMAIN_HOW))
add(Entry(
    name="ambignq", task="open-domain QA with multiple interpretations (corpus: DPR Wikipedia)",
    files=(DataFile("dev_light.json", "https://nlp.cs.washington.edu/ambigqa/data/ambignq_light.zip",
                    member="dev_light.json"), DPR_CORPUS),
    read=lambda folder, split: qa_formats.load_ambignq(folder / "dev_light.json", split, "ambignq"),
    splits="train/dev", evaluated="dev", counts="2,002 questions", size="~1 MB zip", licence="CC BY-SA 3.0",
    source="https://nlp.cs.washington.edu/ambigqa/",
    metrics="EM/F1/accuracy: max over every answer of every interpretation", how_to_get=OPEN_DOMAIN_HOW))
add(Entry(
    name="popqa", task="open-domain entity QA (corpus: DPR Wikipedia)",
    files=(DataFile("test.tsv", "https://huggingface.co/datasets/akariasai/PopQA/resolve/main/test.tsv"),
           DPR_CORPUS),
    read=lambda folder, split: qa_formats.load_popqa(folder / "test.tsv", split, "popqa"),
    splits="test", evaluated="test", counts="14,267 questions", size="~5 MB", licence="MIT",
    source="https://huggingface.co/datasets/akariasai/PopQA",
    metrics="EM/F1/accuracy over possible_answers", how_to_get=OPEN_DOMAIN_HOW))


# --- names registered elsewhere (BEIR downloads, the full HotpotQA dev file): catalogued for list/info/verify ----

SCIFACT_SHA256 = {  # BEIR's scifact.zip bytes (the project's shared/data/SHA256SUMS, checked against BEIR)
    "corpus.jsonl": "dec31c8182f3d744c7d2c09423756fd1d17cbef75808db13ba01cc0aab4d1ac6",
    "queries.jsonl": "8ff84a7c903f722981cd8d595c022660140c51867b27608a6d4910db86080313",
    "qrels/test.tsv": "0864bb985e0ca2367ba217977e72004d549054b2b06666ed9d4825ac7c21284c",
    "qrels/train.tsv": "a53f2114831916c096b6c37d9e54da68cef4efdcdbd5ed46533601af972acf1d",
}


def beir_entry(name: str, md5: str, description: str) -> Entry:
    files = tuple(DataFile(p, sha256=SCIFACT_SHA256.get(p) if name == "scifact" else None)
                  for p in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"))
    if name == "scifact":
        files += (DataFile("qrels/train.tsv", sha256=SCIFACT_SHA256["qrels/train.tsv"]),)
    return Entry(name=name, task="BEIR retrieval", files=files, read=None, splits="see qrels/", evaluated="test",
                 counts=description, size="see BEIR", licence="per BEIR's dataset table",
                 source=f"{loaders.BEIR_BASE_URL}/{name}.zip (md5 {md5})", cache_path=f"beir/{name}",
                 fetch=lambda cache_dir: loaders.fetch_beir(name, cache_dir, local_copy_hint=local_copy_hint(name)))


for _name, (_md5, _description) in loaders.BEIR_DATASETS.items():
    CATALOG[_name] = beir_entry(_name, _md5, _description)
CATALOG["hotpotqa-distractor"] = Entry(
    name="hotpotqa-distractor", task="multi-hop QA, 10 paragraphs per question",
    files=(DataFile(Path(loaders.HOTPOTQA_DEV_DISTRACTOR_URL).name, loaders.HOTPOTQA_DEV_DISTRACTOR_URL),),
    read=None, splits="dev", evaluated="dev", counts="7,405 dev questions", size="46 MB", licence="CC BY-SA 4.0",
    source=loaders.HOTPOTQA_DEV_DISTRACTOR_URL, metrics="EM/F1/accuracy over answer; supporting paragraphs as qrels",
    cache_path="hotpotqa")

# Human judgments of answers, for `bench judge-eval` (bench.data.judgments reads them; not a --datasets name).
OPENQA_EVAL_COMMIT = "8b9317d0f0c92b52e1c71c0168dff74b5f76a5f4"
OPENQA_EVAL_RAW = f"https://raw.githubusercontent.com/ehsk/OpenQA-eval/{OPENQA_EVAL_COMMIT}/data"
CATALOG["openqa-eval"] = Entry(
    name="openqa-eval", task="human judgments of open-domain QA answers (for `bench judge-eval`)",
    files=(DataFile("NQ301_human.tsv", f"{OPENQA_EVAL_RAW}/NQ301_human.tsv", size=134961,
                    sha256="45ea9fa6106eb3a094efef41de12ce5b0bc88522cf310bcdf99277d4d297890e"),
           DataFile("NQ_DPR.jsonl", f"{OPENQA_EVAL_RAW}/model_outputs/NQ_DPR.jsonl", size=503867,
                    sha256="81655079becfd538e91bae4bfef933243036c0500d544be7c1b60c6846748e72")),
    read=None, splits="NQ-open test (301 sampled questions)", evaluated="test",
    counts="1,489 judged (question, answer) pairs of 12 QA systems on 301 questions (1,490 rows, one repeated)",
    size="0.6 MB", licence="MIT (the OpenQA-eval repository); NQ-open questions and answers CC BY-SA 3.0",
    source=f"https://github.com/ehsk/OpenQA-eval at commit {OPENQA_EVAL_COMMIT} (data/NQ301_human.tsv; gold "
           f"answers from data/model_outputs/NQ_DPR.jsonl). Cite: Kamalloo, Dziri, Clarke, Rafiei, \"Evaluating "
           f"Open-Domain Question Answering in the Era of Large Language Models\", ACL 2023 (arXiv:2305.06984)",
    metrics="agreement / Cohen's κ / precision / recall of each answer metric and a judge against the human "
            "'Acceptable?' label (`python -m bench judge-eval`)")

def beir_loader(name: str):
    def load(split: str = "test", cache_dir: str | None = None, data_dir: str | None = None) -> Dataset:
        # a verified copy under --data-dir / $RERANK_BENCH_DATA first; the cache's copy is checked too, at every load
        return loaders.load_beir_folder(local_copy(name, data_dir) or checked_cache_copy(name, cache_dir), split,
                                        name=name)

    return load


for _name, (_, _description) in loaders.BEIR_DATASETS.items():
    register_dataset(_name, f"BEIR {_description}; downloaded on first use")(beir_loader(_name))


def load_hotpotqa_distractor(split: str = "test", cache_dir: str | None = None,
                             data_dir: str | None = None) -> Dataset:
    if split not in ("dev", "test", *loaders.ID_SPLITS):
        raise UserError(f"hotpotqa-distractor has only the dev set (its test answers are not public); "
                        f"got split {split!r}: use --split dev or test, or one of RRPO's parts of it: "
                        f"{', '.join(loaders.ID_SPLITS)}")
    # a checked copy under --data-dir / $RERANK_BENCH_DATA first
    root = local_copy("hotpotqa-distractor", data_dir) or cache_dir_of(cache_dir) / "hotpotqa"
    path = root / Path(loaders.HOTPOTQA_DEV_DISTRACTOR_URL).name
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        record = download(loaders.HOTPOTQA_DEV_DISTRACTOR_URL, path, None, local_copy_hint("hotpotqa-distractor")
                          + "; or pass the path of a HotpotQA .json or .jsonl file as the dataset")
        (root / f"{path.name}.download.json").write_text(json.dumps(record, indent=1) + "\n")
    return loaders.load_hotpotqa(path, split if split in loaders.ID_SPLITS else "dev", name="hotpotqa-distractor")


register_dataset("hotpotqa-distractor", "HotpotQA dev, distractor setting: each question ranks its own 10 "
                 "paragraphs (7,405 questions; downloaded on first use)")(load_hotpotqa_distractor)


# --- python -m bench data list | info | pull | verify ----------------------------------------------------------

def _table(rows: list[dict[str, str]]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_markdown(index=False)


def where_is(entry: Entry, data_dir: str | None, cache_dir: str | None) -> str:
    folder = find_folder(entry, data_dir, cache_dir)
    return str(folder) if folder is not None else "not local"


def list_text(data_dir: str | None = None, cache_dir: str | None = None) -> str:
    rows = []
    for name in [e.name for e in DATASETS.entries()] + [n for n in CATALOG if n not in DATASETS]:
        entry = CATALOG.get(name)
        if entry is None:
            rows.append({"name": name, "task": DATASETS.meta(name).get("description", ""), "split": "", "counts": "",
                         "licence": "", "local copy": "built in"})
        else:
            rows.append({"name": name, "task": entry.task, "split": entry.evaluated, "counts": entry.counts,
                         "licence": entry.licence, "local copy": where_is(entry, data_dir, cache_dir)})
    return _table(rows)


def info_text(name: str, data_dir: str | None = None, cache_dir: str | None = None) -> str:
    entry = entry_of(name)
    folder = find_folder(entry, data_dir, cache_dir)
    about = [("task", entry.task), ("splits", entry.splits), ("split evaluated", entry.evaluated),
             ("counts", entry.counts), ("size", entry.size), ("licence", entry.licence), ("source", entry.source),
             ("metrics", entry.metrics), ("published first stage", entry.published or "-"),
             ("local copy", str(folder) if folder else f"not local (pull goes to "
                                                       f"{target_folder(entry, data_dir, cache_dir)})"),
             ("how to get", entry.how_to_get or "python -m bench data pull " + name)]
    files = [{"file": f.path + (" (optional)" if f.optional else ""), "url": f.url or "-",
              "checksum": ", ".join(k for k, v in (("md5", f.md5), ("sha256", f.sha256), ("bytes", f.size)) if v)
              or ("-" if f.url is None else f"recorded in {MANIFEST} at pull"),
              "present": (f"{(folder / f.path).stat().st_size:,} bytes" if folder and (folder / f.path).is_file()
                          else "no")} for f in entry.files]
    return f"{name}\n\n{_table([{'': k, 'value': v} for k, v in about])}\n\n{_table(files)}"


def verify_text(name: str, data_dir: str | None = None, cache_dir: str | None = None) -> str:
    """The check of every file as a table; raises (after printing it) when a file is missing or corrupted."""
    entry = entry_of(name)
    folder = find_folder(entry, data_dir, cache_dir)
    if folder is None:
        raise UserError(f"dataset {name!r} is not local (looked in {target_folder(entry, data_dir, cache_dir)}"
                        f"{'' if data_root(data_dir) is None else ' and ' + str(entry.cache_folder(cache_dir))}); "
                        f"run `python -m bench data pull {name}`")
    rows = verify_folder(entry, folder)
    text = _table(rows)
    try:
        raise_on_failure(entry, rows)
    except UserError:
        print(text)
        raise
    return text


def pull_text(name: str, data_dir: str | None = None, cache_dir: str | None = None) -> str:
    folder = pull(name, data_dir, cache_dir)
    return f"{name}: {folder}\n\n{_table(verify_folder(entry_of(name), folder))}"
