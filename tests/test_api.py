"""The Python API (bench.api) against the CLI it shares its implementation with: the same run folder and leaderboard
byte for byte, resumption, ``compare`` = ``bench report``, rerankers and readers on one's own passages, and every
example of docs/api.md executed."""
from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bench
from bench.builder import Builder
from bench.cli import main
from bench.errors import UserError
from tests.llm_server import ScriptedLLMServer, prompt_text

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["--rerankers", "none", "minilm", "--reader", "none", "--limit", "5"]


def cli(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same settings through the CLI and the API, into two output folders; and a second API run (other
    rerankers) for pooling."""
    root = tmp_path_factory.mktemp("api")
    cli("run", *SETTINGS, "--output", str(root / "cli"))
    (cli_folder,) = (root / "cli").iterdir()
    api = bench.run(rerankers=["none", "minilm"], reader=None, limit=5, output=str(root / "api"))
    other = bench.run(rerankers=["none", "random"], reader=None, limit=5, output=str(root / "api"))
    return cli_folder, api, other


def test_api_run_gives_the_clis_run_folder_and_leaderboard_byte_for_byte(runs):
    cli_folder, api, _ = runs
    assert api.folder.name == cli_folder.name                     # the same run id
    csv = (cli_folder / "leaderboard.csv").read_text()
    assert (api.folder / "leaderboard.csv").read_text() == csv
    assert api.leaderboard.to_csv(index=False) == csv
    assert list(api.leaderboard.columns) == csv.splitlines()[0].split(",")
    assert api.leaderboard["reranker"].tolist() == ["none", "minilm"]     # "none" is a name, not a missing value
    assert api.leaderboard["n"].tolist() == [5, 5]
    assert (api.folder / "pairs.csv").read_text() == (cli_folder / "pairs.csv").read_text()
    assert api.report() + "\n" == (api.folder / "leaderboard.md").read_text()
    assert api.status_counts == {"ok": 10}
    recs = api.records
    assert [(r.reranker, r.reader) for r in recs] == [("none", "none")] * 5 + [("minilm", "none")] * 5
    assert [r.to_json() for r in recs] == [json.loads(line) for line in
                                            (cli_folder / "records.jsonl").read_text().splitlines()]


def test_api_run_resumes_the_clis_run_folder_without_reranking(runs, monkeypatch):
    cli_folder, _, _ = runs
    records = (cli_folder / "records.jsonl").read_bytes()

    def no_model(self, name):
        raise AssertionError(f"reranker {name} was loaded: the run did not resume")

    monkeypatch.setattr(Builder, "reranker", no_model)
    again = bench.run(rerankers=["none", "minilm"], reader=None, limit=5, output=str(cli_folder.parent))
    assert again.folder == cli_folder
    assert (cli_folder / "records.jsonl").read_bytes() == records
    # a run's config.json is a config file: the same run again (its world_size and fingerprints are not settings)
    from_file = bench.run(str(cli_folder / "config.json"))
    assert from_file.folder == cli_folder and from_file.config == again.config


def test_compare_reproduces_bench_report(runs):
    _, api, _ = runs
    report = bench.compare(api.folder)
    printed = cli("report", str(api.folder))        # rewrites the run folder's files from its records
    assert report.to_markdown() + "\n" == printed
    assert report.to_csv() == (api.folder / "leaderboard.csv").read_text()
    assert report.to_csv(table="pairs") == (api.folder / "pairs.csv").read_text()
    assert report.to_latex() == (api.folder / "leaderboard.tex").read_text()
    assert bench.compare(api).to_markdown() == report.to_markdown()          # a RunResult works as its folder
    assert bench.compare(api.records).to_csv() == report.to_csv()            # records, default options = the run's


def test_compare_pools_runs_and_selects_metrics(runs, tmp_path):
    _, api, other = runs
    pooled = bench.compare([api, other.folder], metrics=["nDCG@10", "MRR@10"])
    board = pooled.leaderboard.set_index("reranker")
    assert list(board.index) == ["none", "minilm", "random"]
    alone = {**api.leaderboard.set_index("reranker")["nDCG@10"], **other.leaderboard.set_index("reranker")["nDCG@10"]}
    assert board["nDCG@10"].to_dict() == alone            # means are per reranker; the shared "none" counted once
    assert board["n"].tolist() == [5, 5, 5]
    assert not any(c.startswith(("Recall", "F1")) for c in board.columns)
    pairs = pooled.pairs
    assert set(pairs["metric"]) == {"nDCG@10", "MRR@10"}
    assert {(a, b) for a, b in zip(pairs["reranker"], pairs["other"])} == {
        ("none", "minilm"), ("none", "random"), ("minilm", "random")}   # a pair that neither run holds
    assert "minilm vs random" in pooled.to_markdown()
    assert bench.compare([api, other], baseline="minilm").options.baseline == "minilm"

    with pytest.raises(UserError, match=r"metric 'nDCG@100' is not in the records; they have: nDCG@1, nDCG@3, "):
        bench.compare(api, metrics=["nDCG@100"])
    with pytest.raises(UserError, match=r"baseline 'bm25' is not among the rerankers \(none, minilm\)"):
        bench.compare(api, baseline="bm25")
    # the same query of the same reranker with other metrics in two runs: not poolable
    changed = tmp_path / "changed"
    changed.mkdir()
    lines = (other.folder / "records.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["metrics"]["nDCG@10"] = 0.123
    (changed / "records.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    with pytest.raises(UserError, match=rf"{first['dataset']}/none/none/{first['qid']} is in .* and {changed} with "
                                        rf"other metrics"):
        bench.compare([api, changed])


def test_compare_names_runs_of_one_reranker_each(runs):
    """Two checkpoints of one reranker (two runs, the same name in both) compared under names of their own."""
    _, api, other = runs
    minilm = [r for r in api.records if r.reranker == "minilm"]
    shuffled = [r for r in other.records if r.reranker == "random"]
    report = bench.compare({"first": minilm, "second": shuffled}, metrics=["nDCG@10"])
    board = report.leaderboard.set_index("reranker")
    assert list(board.index) == ["first", "second"]
    assert board.loc["first", "nDCG@10"] == api.leaderboard.set_index("reranker").loc["minilm", "nDCG@10"]
    assert board.loc["second", "nDCG@10"] == other.leaderboard.set_index("reranker").loc["random", "nDCG@10"]
    assert report.options.baseline == "first"
    assert list(zip(report.pairs["reranker"], report.pairs["other"])) == [("first", "second")]
    with pytest.raises(UserError, match=r"the run named 'both' must hold one reranker; it holds minilm, none$"):
        bench.compare({"both": api.folder})


def test_leaderboard_reads_only_empty_cells_as_missing(tmp_path):
    from bench.api import RunResult
    from bench.config import RunConfig

    csv = "dataset,reader,reranker,n,F1\nNA,None,null,3,\nNA,None,nan,3,0.5\n"
    (tmp_path / "leaderboard.csv").write_text(csv)
    board = RunResult(folder=tmp_path, config=RunConfig(), status_counts={}, markdown="").leaderboard
    assert board["reranker"].tolist() == ["null", "nan"] and board["reader"].tolist() == ["None", "None"]
    assert board["F1"].isna().tolist() == [True, False]
    assert board.to_csv(index=False) == csv


def test_run_errors_are_exceptions_with_the_clis_messages(tmp_path):
    for settings, message in ((dict(pool=0), "--pool 0: expected a positive number"),
                              (dict(limit="five"), "setting: limit='five': expected int | None"),
                              (dict(top_k=5, pool=3), "--top-k 5 is larger than --pool 3"),
                              (dict(poool=3), "unknown setting 'poool'; did you mean 'pool'? valid: reader, "
                                              "rerankers, "),
                              (dict(reader=None, readers=["none"]), "give reader= or readers=, not both")):
        with pytest.raises(UserError) as err:
            bench.run(output=str(tmp_path), **settings)
        assert str(err.value).startswith(message)
    assert list(tmp_path.iterdir()) == []                 # nothing ran, no run folder


def test_settings_come_from_keywords_over_a_config_object_mapping_or_file(tmp_path):
    from dataclasses import replace

    from bench.config import RunConfig

    names = list(RunConfig.field_types())
    assert names[:3] == ["rerankers", "readers", "judge"] and len(names) == len(set(names)) == 43
    assert list(inspect.signature(bench.run).parameters) == ["config", "reader", *names]
    assert inspect.signature(bench.run).parameters["pool"].default == 20
    config = bench.make_config({"rerankers": ["none", "random"], "data": {"pool": "7"}, "readers": ["none"]}, top_k=2)
    c = config.components
    assert (c.rerankers, config.data.pool, c.top_k, c.readers) == (["none", "random"], 7, 2, ["none"])
    assert bench.make_config(config, pool=9) == replace(config, data=replace(config.data, pool=9))
    assert bench.make_config(rerankers="minilm", baseline="minilm", reader="smollm2").components.readers == \
        ["smollm2"]
    (tmp_path / "run.yaml").write_text("rerankers: [none, oracle]\nreaders: [none]\npool: 5\n")
    assert bench.make_config(tmp_path / "run.yaml", pool=6).data.pool == 6
    (tmp_path / "bad.yaml").write_text("pool: many\n")
    for source, message in (({"pols": 3}, "config: unknown key 'pols'; did you mean 'pool'? valid: the sections "),
                            ({"data": {"datasets": "fictional"}}, "config: datasets='fictional': expected a list"),
                            (tmp_path / "bad.yaml", f"--config {tmp_path / 'bad.yaml'}: pool='many': expected int"),
                            (3, "config: expected a RunConfig, a mapping of its fields or a file, got int")):
        with pytest.raises(UserError) as err:
            bench.make_config(source)
        assert str(err.value).startswith(message)


def test_load_reranker_ranks_ones_own_passages_offline():
    reranker = bench.load_reranker("minilm")
    docs = ["Paris is the capital of France.", "Hamlet is a tragedy written by William Shakespeare.",
            "The mitochondria is the powerhouse of the cell."]
    ranking = reranker.rank("Who wrote Hamlet?", docs)
    assert ranking.docids[0] == "1" and sorted(ranking.docids) == ["0", "1", "2"]
    by_id = dict(zip(ranking.docids, ranking.scores))
    cosines = reranker.score_pairs(["Who wrote Hamlet?"] * 3, docs)     # the backend's own scores, per passage
    assert [by_id[str(i)] for i in range(3)] == pytest.approx(cosines, abs=1e-6)
    assert ranking.scores == sorted(ranking.scores, reverse=True)
    # (id, text) pairs keep their ids; a batch is the same as its queries one by one; no passages, no ranking
    pairs = reranker.rank("q", [("d1", "a cat"), ("d2", "q")])
    assert sorted(pairs.docids) == ["d1", "d2"]
    batch = reranker.rank_batch(["Who wrote Hamlet?", "q", "empty"], [docs, [("d1", "a cat"), ("d2", "q")], []])
    assert [r.docids for r in batch] == [ranking.docids, pairs.docids, []]
    assert batch[1].scores == pytest.approx(pairs.scores, abs=1e-6)
    assert bench.load_reranker("none").rank("q", ["c", "b", "a"]).docids == ["0", "1", "2"]


def test_load_reranker_options_are_the_clis():
    assert bench.load_reranker("minilm", batch_size=2, max_length=16).settings.batch_size == 2
    assert bench.load_reranker("random", seed=3).settings.seed == 3                 # a run-wide setting
    for options, message in ((dict(windw=3), "--reranker-args minilm: unknown option 'windw'; valid: checkpoint"),
                             (dict(batch_size="big"), "setting: batch_size='big': expected int | None"),
                             (dict(max_length=[1]), "--reranker-args minilm: max_length=[1]: expected int | None")):
        with pytest.raises(UserError) as err:
            bench.load_reranker("minilm", **options)
        assert str(err.value).startswith(message)
    with pytest.raises(UserError, match="unknown reranker 'minilmm'"):
        bench.load_reranker("minilmm")
    with pytest.raises(UserError, match=r"docs: document id 'a' is given twice"):
        bench.load_reranker("none").rank("q", [("a", "x"), ("a", "y")])
    with pytest.raises(UserError, match=r"docs\[1\]: expected a string or an \(id, text\) pair of strings, got 3"):
        bench.load_reranker("none").rank("q", ["x", 3])
    with pytest.raises(UserError, match=r"docs\[1\]\[0\]: expected a string or an \(id, text\) pair"):
        bench.load_reranker("none").rank_batch(["q", "r"], [["x"], [("a", "b", "c")]])
    with pytest.raises(UserError, match=r"rank_batch: 2 queries but 1 lists of documents"):
        bench.load_reranker("none").rank_batch(["q", "r"], [["x"]])


def test_load_reader_asks_the_local_openai_compatible_server(tmp_path):
    with ScriptedLLMServer(reply=lambda body: "Paris\nand more") as srv:
        reader = bench.load_reader("openai:scripted", base_url=srv.base_url, max_tokens=7, timeout=5.0,
                                   cache_dir=str(tmp_path))
        answer = reader.ask("What is the capital of France?", ["Paris is the capital of France.", "Rome is not."])
        assert answer.text == "Paris" and answer.docids == ["0", "1"] and answer.error is None
        (body,) = srv.requests
        assert body["max_tokens"] == 7
        assert "[1] Paris is the capital of France.\n[2] Rome is not." in prompt_text(body)
        assert reader.engine.engine.timeout == 5.0
        again = reader.ask("What is the capital of France?", ["Paris is the capital of France.", "Rome is not."])
        assert again.cached and srv.count == 1                     # the run's LLM cache
    with pytest.raises(UserError, match="--reader-args openai:scripted: unknown option 'tmeout'; valid: device"):
        bench.load_reader("openai:scripted", tmeout=3)
    with pytest.raises(UserError, match="reader 'none' is no reader"):
        bench.load_reader("none")


def test_load_dataset_as_the_run_loads_it():
    ds = bench.load_dataset("fictional", limit=3)
    assert len(ds.queries) == 3 and ds.queries[0].answers
    assert [q.qid for q in ds.queries] == [q.qid for q in bench.load_dataset("fictional").queries[:3]]
    with pytest.raises(UserError, match="unknown dataset 'fictionall'"):
        bench.load_dataset("fictionall")
    with pytest.raises(UserError, match="--limit 0: expected a positive number"):
        bench.load_dataset("fictional", limit=0)


def test_import_bench_stays_light():
    code = ("import sys, bench; "
            "print(sorted(m for m in ('bench.api', 'bench.runner', 'pandas', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"
    assert "run" in dir(bench) and bench.run is bench.api.run


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


@pytest.mark.slow
def test_every_example_of_docs_api_md_runs(tmp_path, monkeypatch):
    blocks = python_blocks((ROOT / "docs" / "api.md").read_text())
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)                           # its runs write into ./results here
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md block {i + 1}", "exec"), namespace)
    assert {p.name for p in (tmp_path / "results").iterdir()} == {namespace["result"].folder.name,
                                                                 namespace["other"].folder.name}
    # the outputs the page shows in comments
    assert namespace["ranking"].docids == ["1", "2", "0"]
    assert [round(s, 3) for s in namespace["ranking"].scores] == [0.767, 0.409, 0.082]
    assert [r.docids for r in namespace["rankings"]] == [["1", "2", "0"], ["fr", "de"]]
    assert "William Shakespeare" in namespace["answer"].text          # SmolLM2 answers in a sentence
    assert "Globe Theatre" in namespace["misled"].text
