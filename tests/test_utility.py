"""Utility labels (eRAG) end to end against a real local OpenAI-compatible server: each (question, passage) pair read
once, the same command again reads nothing, a reranker judged from existing labels reads only its unseen pairs, eRAG
scores equal PyPI ``erag``'s on the same single-passage answers, and ``oracle-utility`` orders by them."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.metrics import accuracy, best_token_f1, erag_metrics
from tests.llm_server import ScriptedLLMServer, prompt_text
from tests.test_runner import only_dir, records, run, scripted_reply, write_dataset

COLORS = ["red", "blue", "green", "amber", "black", "white", "grey", "pink", "gold", "teal"]
ANIMALS = ["fox", "owl", "eel", "yak", "cod", "emu", "elk", "ant", "bat", "hen"]
PLACES = ["kilo", "lima", "mike", "oscar", "papa", "romeo", "sierra", "tango", "victor", "yankee"]


def toy_cmd(dataset: Path, url: str, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench", "run", "--datasets", str(dataset), "--reader", "openai:toy-reader",
            "--base-url", url, "--api-key-env", "TOY_KEY", "--chunk-size", "3", "--concurrency", "1",
            "--max-retries", "1", "--output", str(out), "--cache-dir", str(cache), *extra]


def pair_of(body: dict) -> tuple[str, str]:
    """(question, first passage) of a reader request."""
    text = prompt_text(body)
    return re.search(r"Question: (.*)\n", text).group(1), re.search(r"\[1\] \(Title: \w+\) (.*)", text).group(1)


# --- the toy set of the runner's tests: one answer passage (a_i) and one distractor (b_i) per question ---------------

@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """``--rerankers none random oracle-utility --utility --utility-depth 2`` over a pool of 2, run twice."""
    root = tmp_path_factory.mktemp("utility")
    dataset = write_dataset(root)
    with ScriptedLLMServer(reply=scripted_reply) as srv:
        cmd = toy_cmd(dataset, srv.base_url, root / "out", root / "cache", "--rerankers", "none", "random",
                      "oracle-utility", "--pool", "2", "--top-k", "1", "--utility", "--utility-depth", "2")
        run(cmd)
        first = srv.count
        bodies = [pair_of(b) for b in srv.requests]
        run(cmd)
        return {"run_dir": only_dir(root / "out"), "first": first, "again": srv.count - first, "bodies": bodies}


def test_each_pair_is_read_once_and_the_same_command_again_reads_nothing(labelled):
    # 8 questions x 2 passages: the end-to-end top-1 prompts and the single-passage reads are the same requests
    assert labelled["first"] == 16 and len(set(labelled["bodies"])) == 16
    assert labelled["again"] == 0
    costs = json.loads((labelled["run_dir"] / "costs.json").read_text())
    assert costs["utility"]["toyqa"]["openai:toy-reader"] == {
        "pairs": 16, "labelled_before": 16, "read_now": 0, "rerankers": {}, "llm_calls": 0, "failed": 0}
    assert costs["llm"]["openai:toy-reader"]["requests"] == 0    # not even asked of the cache


def test_labels_are_written_as_qrels_and_jsonl(labelled):
    folder = labelled["run_dir"] / "utility"
    qrels = (folder / "toyqa__openai_toy-reader__accuracy.qrels").read_text().splitlines()
    assert sorted(qrels) == sorted([f"q{i} 0 a{i} 1" for i in range(8)] + [f"q{i} 0 b{i} 0" for i in range(8)])
    f1 = (folder / "toyqa__openai_toy-reader__F1.qrels").read_text().splitlines()
    assert f"q3 0 a3 1.0" in f1 and f"q3 0 b3 0.0" in f1
    rows = [json.loads(l) for l in (folder / "toyqa__openai_toy-reader.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and len({(r["qid"], r["docid"]) for r in rows}) == 16
    a2 = next(r for r in rows if r["docid"] == "a2")
    assert a2["answer"] == "zq2x" and a2["metrics"] == {"EM": 1.0, "F1": 1.0, "accuracy": 1.0}
    assert a2["status"] == "ok" and len(a2["cache_key"]) > 10 and a2["prompt"].startswith("reader-qa@v1")


def test_erag_columns_in_the_leaderboard_match_hand_computed_values(labelled):
    run_dir = labelled["run_dir"]
    df = pd.read_csv(run_dir / "leaderboard.csv").set_index("reranker")
    recs = records(run_dir)
    random_first = [r["ranking"][0] for r in recs if r["reranker"] == "random"]
    answer_first = sum(d.startswith("a") for d in random_first) / 8
    assert 0 < answer_first < 1                          # the toy set's seed gives both orders
    assert df.loc["none", "eRAG-accuracy-success@1"] == 1.0
    assert df.loc["oracle-utility", "eRAG-accuracy-success@1"] == 1.0
    assert df.loc["random", "eRAG-accuracy-success@1"] == pytest.approx(answer_first)
    # MRR@2: 1 when the answer passage is first, 1/2 when it is second
    assert df.loc["random", "eRAG-accuracy-MRR@2"] == pytest.approx(answer_first + (1 - answer_first) / 2)
    assert df.loc["random", "eRAG-F1-P@2"] == pytest.approx(0.5)   # one of the two passages answers, F1 1
    assert {"eRAG-accuracy-success@1_ci_lo", "eRAG-accuracy-success@1_p_exact"} <= set(df.columns)
    assert df.loc["random", "eRAG-accuracy-success@1"] == df.loc["random", "accuracy"]   # top-1: the same answers


def test_oracle_utility_puts_the_passage_the_reader_answers_from_first(labelled):
    recs = [r for r in records(labelled["run_dir"]) if r["reranker"] == "oracle-utility"]
    assert [r["ranking"][0] for r in recs] == [f"a{i}" for i in range(8)]
    assert all(r["info"]["labels"] == "utility" and r["info"]["failed_reads"] == 0 for r in recs)
    assert all(r["info"]["reranker"]["reader"] == "openai:toy-reader" for r in recs)


def test_a_new_reranker_is_judged_from_the_labels_reading_only_unseen_pairs(tmp_path):
    dataset = write_dataset(tmp_path)
    with ScriptedLLMServer(reply=scripted_reply) as srv:
        base = toy_cmd(dataset, srv.base_url, tmp_path / "out", tmp_path / "cache", "--rerankers", "none",
                       "--pool", "2", "--top-k", "1", "--utility", "--utility-depth", "1")
        run(base)
        assert srv.count == 8                            # none's top-1 answers; their labels are the same requests
        run([*base, "--utility-only", "random"])
        run_dir = only_dir(tmp_path / "out")
        recs = {(r["reranker"], r["qid"]): r for r in records(run_dir)}
        unseen = {(f"What is the code of {r['question'].split()[-1][:-1]}?", r["ranking"][0])
                  for (rr, _), r in recs.items() if rr == "random" and r["ranking"][0].startswith("b")}
        assert 0 < len(unseen) < 8
        asked = [pair_of(b) for b in srv.requests[8:]]
        assert len(asked) == len(unseen)
        assert {q for q, _ in asked} == {q for q, _ in unseen}
        assert all("mentioned here in passing" in passage for _, passage in asked)
        random = [r for (rr, _), r in recs.items() if rr == "random"]
        assert all(r["status"] == "utility_only" and r["answer"] is None for r in random)
        assert all("accuracy" not in r["metrics"] and "eRAG-accuracy-success@1" in r["metrics"] for r in random)
        costs = json.loads((run_dir / "costs.json").read_text())["utility"]["toyqa"]["openai:toy-reader"]
        assert costs["rerankers"]["random"] == {
            "questions": 8, "top_depth_pairs": 8, "new_pairs": len(unseen), "end_to_end_calls": 8,
            "end_to_end_passages": 8, "calls_saved": 8 - len(unseen)}
        assert costs["llm_calls"] == len(unseen)
        md = (run_dir / "leaderboard.md").read_text()
        assert f"| toyqa | openai:toy-reader | random | 8 | 8 | {len(unseen)} | 8 (8) | {8 - len(unseen)} |" in md
        df = pd.read_csv(run_dir / "leaderboard.csv").set_index("reranker")
        assert df.loc["random", "n"] == 0 and pd.isna(df.loc["random", "accuracy"])
        count = srv.count
        run([*base, "--utility-only", "random"])
        assert srv.count == count
        # read end to end later: the eRAG-only records are replaced by answered ones
        run(toy_cmd(dataset, srv.base_url, tmp_path / "out", tmp_path / "cache", "--rerankers", "none", "random",
                    "--pool", "2", "--top-k", "1", "--utility", "--utility-depth", "1", "--run-id", run_dir.name))
        assert {r["status"] for r in records(run_dir)} == {"ok"}
        assert srv.count == count                        # top-1 answers of random = its labels, all cached


def test_bench_utility_labels_a_finished_run(tmp_path):
    dataset = write_dataset(tmp_path)
    with ScriptedLLMServer(reply=scripted_reply) as srv:
        run(toy_cmd(dataset, srv.base_url, tmp_path / "out", tmp_path / "cache", "--rerankers", "none",
                    "--pool", "2", "--top-k", "1"))
        run_dir = only_dir(tmp_path / "out")
        assert not (run_dir / "utility").exists()
        run([sys.executable, "-m", "bench", "utility", str(run_dir), "--utility-depth", "2"])
        assert srv.count == 16                           # 8 answers, then the 8 distractors alone
        assert len((run_dir / "utility" / "toyqa__openai_toy-reader__EM.qrels").read_text().splitlines()) == 16
        df = pd.read_csv(run_dir / "leaderboard.csv").set_index("reranker")
        assert df.loc["none", "eRAG-accuracy-P@2"] == 0.5


# --- the differential test against PyPI erag ------------------------------------------------------------------------

def write_graded_dataset(root: Path) -> Path:
    """Ten questions whose passages give the first-three-words reader partial answers (graded F1)."""
    folder = root / "graded"
    folder.mkdir()
    with (folder / "corpus.jsonl").open("w") as f, (folder / "test.jsonl").open("w") as q:
        for i, (color, animal, place) in enumerate(zip(COLORS, ANIMALS, PLACES)):
            # BM25 finds the five passages of a question by its place name
            texts = [f"{color} {animal} lives in {place}", f"{color} bird sings in {place}",
                     f"old {animal} sleeps in {place}", f"nothing relevant in {place}",
                     f"the {color} {animal} of {place}"]
            for j, text in enumerate(texts):
                f.write(json.dumps({"id": f"p{i}_{j}", "title": f"t{i}", "text": text}) + "\n")
            q.write(json.dumps({"id": f"q{i}", "question": f"Which creature lives in {place}?",
                                "golden_answers": [f"{color} {animal}"], "qrels": {f"p{i}_0": 1}}) + "\n")
    return folder


def first_words_reply(body: dict) -> str:
    """The first three words of the first passage shown."""
    return " ".join(re.search(r"\[1\] \(Title: \w+\) (.*)", prompt_text(body)).group(1).split()[:3])


ERAG_MEASURES = {"accuracy": {"ndcg_cut_3": "nDCG@3", "ndcg_cut_5": "nDCG@5", "P_3": "P@3", "P_5": "P@5",
                              "success_3": "success@3", "success_5": "success@5", "recip_rank": "MRR@5"},
                 "F1": {"P_3": "P@3", "P_5": "P@5", "success_3": "success@3", "success_5": "success@5"}}


def test_erag_scores_equal_pypi_erag_on_the_same_single_passage_answers(tmp_path):
    erag = pytest.importorskip("erag", reason='the differential test needs PyPI erag 0.0.1: '
                                              'pip install --no-deps "erag==0.0.1"')
    dataset = write_graded_dataset(tmp_path)
    with ScriptedLLMServer(reply=first_words_reply) as srv:
        run(toy_cmd(dataset, srv.base_url, tmp_path / "out", tmp_path / "cache", "--rerankers", "none", "random",
                    "--pool", "5", "--top-k", "3", "--utility", "--utility-depth", "5"))
    run_dir = only_dir(tmp_path / "out")
    labels = {(r["qid"], r["docid"]): r["answer"] for r in map(json.loads, (
        run_dir / "utility" / "graded__openai_toy-reader.jsonl").read_text().splitlines())}
    recs = records(run_dir)
    gold = {r["qid"]: r["gold_answers"] for r in recs}
    df = pd.read_csv(run_dir / "leaderboard.csv").set_index("reranker")
    f1_values = [best_token_f1(a, gold[q]) for (q, _), a in labels.items()]
    assert any(0 < v < 1 for v in f1_values)            # graded labels: eRAG's own success (max) and P (mean)
    for label, score in (("accuracy", accuracy), ("F1", best_token_f1)):
        for reranker in ("none", "random"):
            ranked = {r["qid"]: r["ranking"][:5] for r in recs if r["reranker"] == reranker}
            assert all(len(d) == 5 for d in ranked.values())
            got = erag.eval(ranked, {q: gold[q] for q in ranked},
                            text_generator=lambda batch: {q: labels[(q, docs[0])] for q, docs in batch.items()},
                            downstream_metric=lambda preds, golds: {q: score(p, golds[q]) for q, p in preds.items()},
                            retrieval_metrics=set(ERAG_MEASURES[label]))
            ours = {r["qid"]: r["metrics"] for r in recs if r["reranker"] == reranker}
            for measure, name in ERAG_MEASURES[label].items():
                column = f"eRAG-{label}-{name}"
                for q in ranked:
                    assert ours[q][column] == pytest.approx(got["per_input"][q][measure], abs=1e-9), (column, q)
                assert df.loc[reranker, column] == pytest.approx(got["aggregated"][measure], abs=1e-9)


def test_erag_metrics_by_hand():
    ranking = {"q": ["a", "b", "c", "d"]}
    binary = erag_metrics(ranking, {"q": {"a": 0, "b": 1, "c": 0, "d": 1}}, "accuracy", [1, 3])["q"]
    assert binary["eRAG-accuracy-MRR@1"] == 0.0 and binary["eRAG-accuracy-MRR@3"] == 0.5
    assert binary["eRAG-accuracy-P@3"] == pytest.approx(1 / 3) and binary["eRAG-accuracy-success@1"] == 0.0
    # ideal order of the ranking's own labels: two relevant in the top 3 -> IDCG@3 = 1 + 1/log2(3)
    assert binary["eRAG-accuracy-nDCG@3"] == pytest.approx((1 / 1.5849625007211562) / (1 + 1 / 1.5849625007211562))
    graded = erag_metrics(ranking, {"q": {"a": 0.25, "b": 0.5, "c": 0.0, "d": 1.0}}, "F1", [2, 4])["q"]
    assert graded == {"eRAG-F1-P@2": 0.375, "eRAG-F1-success@2": 0.5, "eRAG-F1-P@4": 0.4375,
                      "eRAG-F1-success@4": 1.0}
    # labels of passages the ranking does not hold (another reranker's) change nothing: eRAG's qrels are the list's
    with_others = erag_metrics(ranking, {"q": {"a": 0, "b": 1, "c": 0, "d": 1, "e": 1, "f": 1}}, "accuracy", [1, 3])
    assert with_others["q"] == binary
    # a ranking shorter than k: missing ranks count 0; an unlabelled passage leaves the query out
    assert erag_metrics({"q": ["a"]}, {"q": {"a": 1.0}}, "F1", [2])["q"]["eRAG-F1-P@2"] == 0.5
    assert erag_metrics({"q": ["a", "x"]}, {"q": {"a": 1.0}}, "F1", [2]) == {}


def test_bench_validity_prints_the_table_and_its_taus_are_scipys(labelled, tmp_path):
    from scipy import stats

    proc = run([sys.executable, "-m", "bench", "validity", str(labelled["run_dir"]), "--output", str(tmp_path)])
    assert "### toyqa · reader openai:toy-reader · accuracy" in proc.stdout
    assert "| eRAG-accuracy-nDCG@1 " in proc.stdout and "| nDCG@10 " in proc.stdout
    table = pd.read_csv(tmp_path / "validity.csv")
    recs = [r for r in records(labelled["run_dir"]) if r["status"] == "ok"]
    for retrieval in ("nDCG@10", "eRAG-accuracy-MRR@2"):
        x = [r["metrics"][retrieval] for r in recs]
        y = [r["metrics"]["F1"] for r in recs]
        row = table[(table["retrieval"] == retrieval) & (table["answer"] == "F1")]
        assert row["tau_b"].item() == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
        assert row["rho"].item() == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert (tmp_path / "validity_toyqa__openai_toy-reader__accuracy.png").is_file()


def test_bench_validity_keeps_only_the_rerankers_named(labelled, tmp_path):
    run([sys.executable, "-m", "bench", "validity", str(labelled["run_dir"]), "--output", str(tmp_path),
         "--rerankers", "none", "random"])
    assert set(pd.read_csv(tmp_path / "validity.csv")["rerankers"]) == {2}
    proc = subprocess.run([sys.executable, "-m", "bench", "validity", str(labelled["run_dir"]), "--rerankers",
                           "nosuch"], capture_output=True, text=True)
    assert proc.returncode == 2 and "no records of these rerankers" in proc.stderr


@pytest.mark.parametrize("extra, message", [
    (["--utility", "--utility-depth", "0"], "--utility-depth 0: expected a positive number"),
    (["--utility-only", "none"], "--utility-only none: also in --rerankers"),
])
def test_bad_utility_options_fail_in_one_line(tmp_path, extra, message):
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--rerankers", "none", "--reader", "none",
                           "--output", str(tmp_path), *extra], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {message}") and proc.stderr.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_bench_utility_needs_a_run_folder(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "utility", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr == f"error: {tmp_path}: no config.json (expected a results/<run-id>/ " \
                                                   f"folder that `bench run` wrote)\n"


def test_a_failed_label_is_counted_left_out_of_erag_and_read_by_the_next_run(tmp_path):
    dataset = write_dataset(tmp_path)
    # 8 end-to-end answers, then the first distractor read alone fails on both attempts (--max-retries 1)
    with ScriptedLLMServer(reply=scripted_reply, faults=["ok"] * 8 + ["500", "500"]) as srv:
        cmd = toy_cmd(dataset, srv.base_url, tmp_path / "out", tmp_path / "cache", "--rerankers", "none",
                      "--pool", "2", "--top-k", "1", "--utility", "--utility-depth", "2")
        run(cmd)
        run_dir = only_dir(tmp_path / "out")
        labels = [json.loads(l) for l in (run_dir / "utility" / "toyqa__openai_toy-reader.jsonl").read_text()
                  .splitlines()]
        (failed,) = [lab for lab in labels if lab["status"] == "failed"]
        assert failed["error"] and failed["metrics"] == {} and failed["cache_key"] is None
        costs = json.loads((run_dir / "costs.json").read_text())["utility"]["toyqa"]["openai:toy-reader"]
        assert costs["failed"] == 1
        assert f"{failed['qid']} 0 {failed['docid']}" not in (
            run_dir / "utility" / "toyqa__openai_toy-reader__accuracy.qrels").read_text()
        recs = {r["qid"]: r for r in records(run_dir)}
        assert "eRAG-accuracy-P@2" not in recs[failed["qid"]]["metrics"]
        assert sum("eRAG-accuracy-P@2" in r["metrics"] for r in recs.values()) == 7
        count = srv.count
        run(cmd)
        assert srv.count == count + 1                     # only the failed pair
        recs = {r["qid"]: r for r in records(run_dir)}
        assert recs[failed["qid"]]["metrics"]["eRAG-accuracy-P@2"] == 0.5
        assert json.loads((run_dir / "costs.json").read_text())["utility"]["toyqa"]["openai:toy-reader"][
            "failed"] == 0
