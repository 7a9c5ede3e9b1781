"""``bench run`` under ``torchrun --nproc_per_node 2`` (gloo on CPU): the queries are sharded over the ranks, rank 0
merges and reports, and the leaderboard, TREC runs and rankings are those of one process; the LLM calls are not
duplicated across ranks; a rank killed mid-run and the run resumed ends as an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.distributed import Dist, merge_costs
from bench.errors import UserError
from bench.store import RecordStore, append_jsonl
from bench.types import QueryRecord
from tests.llm_server import ScriptedLLMServer
from tests.test_runner import API_KEY, N_QUESTIONS, bench_cmd, only_dir, records, request_key, run, scripted_reply, \
    write_dataset

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def torchrun(cmd: list[str]) -> list[str]:
    """The same ``python -m bench run ...`` command, started by torchrun on 2 processes."""
    assert cmd[:3] == [sys.executable, "-m", "bench"]
    return [*TORCHRUN, *cmd[1:]]


def trec_rows(path: Path) -> list[tuple[str, ...]]:
    """qid, docid and rank of a TREC run (scores of a model may differ in the last float bit with batch makeup)."""
    return [tuple(line.split()[i] for i in (0, 2, 3)) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def toyqa(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("torchrun"))


def retrieval_cmd(dataset: Path, out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "bench", "run", "--datasets", str(dataset), "--rerankers", "none", "minilm",
            "--reader", "none", "--pool", "2", "--output", str(out), "--cache-dir", str(cache)]


@pytest.mark.slow
def test_two_ranks_give_the_one_process_leaderboard_and_files(toyqa, tmp_path):
    run(retrieval_cmd(toyqa, tmp_path / "one", tmp_path / "cache"))
    proc = run(torchrun(retrieval_cmd(toyqa, tmp_path / "two", tmp_path / "cache")))
    one, two = only_dir(tmp_path / "one"), only_dir(tmp_path / "two")
    assert one.name == two.name                                  # the world size is not part of the run's identity
    assert (two / "leaderboard.csv").read_text() == (one / "leaderboard.csv").read_text()
    assert proc.stdout.count("| none") >= 1 and f"results: {two}" in proc.stdout
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    assert json.loads((one / "config.json").read_text())["world_size"] == 1
    # each record names its rank: query i on rank i mod 2, in the one-process order
    recs = records(two)
    assert [(r["reranker"], r["qid"]) for r in recs] == [(r["reranker"], r["qid"]) for r in records(one)]
    assert [r["info"]["rank"] for r in recs] == [i % 2 for i in range(N_QUESTIONS)] * 2
    assert "rank" not in records(one)[0]["info"]
    for reranker in ("none", "minilm"):
        name = f"runs/toyqa__{reranker}.trec"
        assert trec_rows(two / name) == trec_rows(one / name)
        merged = [json.loads(l) for l in (two / "rankings" / f"toyqa__{reranker}.jsonl").read_text().splitlines()]
        assert [(r["qid"], r["docids"]) for r in merged] == [
            (r["qid"], r["docids"]) for r in map(json.loads, (one / "rankings" / f"toyqa__{reranker}.jsonl")
                                                 .read_text().splitlines())]
    # the parts were merged and removed; only the ranks' lock files stay
    assert sorted(p.name for p in two.rglob("*.rank*")) == [".lock.rank1"]
    # the first stage was computed once, by rank 0, and read from the cache by rank 1
    assert len(list((tmp_path / "cache" / "first_stage").iterdir())) == 1


@pytest.fixture(scope="module")
def one_process(toyqa, tmp_path_factory):
    root = tmp_path_factory.mktemp("one_process")
    with ScriptedLLMServer(reply=scripted_reply) as srv:
        run(bench_cmd(toyqa, srv.base_url, root / "out", root / "cache"))
        return {"run_dir": only_dir(root / "out"), "count": srv.count}


def test_llm_calls_are_not_duplicated_across_ranks(toyqa, one_process, tmp_path):
    with ScriptedLLMServer(reply=scripted_reply) as srv:
        run(torchrun(bench_cmd(toyqa, srv.base_url, tmp_path / "out", tmp_path / "cache")))
        bodies = [request_key(b) for b in srv.requests]
    assert len(bodies) == one_process["count"] == len(set(bodies))
    run_dir = only_dir(tmp_path / "out")
    assert (run_dir / "leaderboard.csv").read_text() == (one_process["run_dir"] / "leaderboard.csv").read_text()
    costs = json.loads((run_dir / "costs.json").read_text())["llm"]
    assert costs["openai:toy-reader"]["calls"] + costs["openai:toy-judge"]["calls"] == one_process["count"]


def test_a_rank_killed_mid_run_then_resumed_gives_the_uninterrupted_leaderboard(toyqa, one_process, tmp_path):
    out = tmp_path / "out"
    answered: list[str] = []
    kill_at: list[int] = []

    def reply(body: dict) -> str:
        answered.append(request_key(body))
        # kill rank 1 (its pid is in its lock file) mid-run, once a rank has written records
        if not kill_at and any(p.stat().st_size for p in out.glob("*/records.rank*.jsonl")):
            kill_at.append(len(answered))
            (lock,) = out.glob("*/.lock.rank1")
            os.kill(int(lock.read_text()), signal.SIGKILL)
        return scripted_reply(body)

    with ScriptedLLMServer(reply=reply) as srv:
        cmd = torchrun(bench_cmd(toyqa, srv.base_url, out, tmp_path / "cache"))
        killed = subprocess.run(cmd, env={**os.environ, "TOY_KEY": API_KEY}, capture_output=True, text=True,
                                timeout=300)
        assert killed.returncode != 0
        run_dir = only_dir(out)
        assert not (run_dir / "leaderboard.csv").exists()
        assert kill_at and kill_at[0] < one_process["count"]
        assert list(run_dir.glob("records.rank*.jsonl"))                 # what the resumed ranks start from
        run(cmd)
        bodies = [request_key(b) for b in srv.requests]
    # the calls answered before the kill were served from the cache: at most those in flight were sent twice
    assert len(set(bodies)) == one_process["count"]
    assert len(bodies) < one_process["count"] + kill_at[0]
    recs = records(run_dir)
    keys = [(r["reranker"], r["qid"]) for r in recs]
    assert len(keys) == len(set(keys)) == 2 * N_QUESTIONS
    assert (run_dir / "leaderboard.csv").read_text() == (one_process["run_dir"] / "leaderboard.csv").read_text()
    assert not list(run_dir.rglob("*.rank*.jsonl"))
    for reranker in ("none", "random"):
        name = f"runs/toyqa__{reranker}.trec"
        assert (run_dir / name).read_text() == (one_process["run_dir"] / name).read_text()


def _record(qid: str, status: str, rank: int) -> dict:
    return QueryRecord(dataset="d", reranker="none", reader="r", qid=qid, question="?", gold_answers=[], ranking=[],
                       answer=None, metrics={}, status=status, info={"rank": rank}).to_json()


def test_records_from_rank_parts_a_final_record_is_never_replaced_by_a_failed_one(tmp_path):
    path = tmp_path / "records.jsonl"
    append_jsonl(path, [_record("q0", "ok", 0)])
    append_jsonl(tmp_path / "records.rank1.jsonl", [_record("q0", "failed", 1), _record("q1", "failed", 1),
                                                    _record("q1", "ok", 1)])
    append_jsonl(tmp_path / "records.rank0.jsonl", [_record("q2", "failed", 0)])
    store = RecordStore(path)
    assert {k[3]: (r.status, r.info["rank"]) for k, r in store.records.items()} == {
        "q0": ("ok", 0), "q1": ("ok", 1), "q2": ("failed", 0)}
    store.compact()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.jsonl"]       # the parts are merged in, then gone
    # the merged file first, then the parts by rank
    assert [json.loads(l)["qid"] for l in path.read_text().splitlines()] == ["q0", "q2", "q1"]


def test_costs_of_the_ranks_sum_llm_counts_and_keep_the_longest_stage():
    rank0 = {"stage_seconds": {"rerank": 2.0, "judge": 1.0},
             "llm": {"openai:m": {"calls": 3, "hits": 1, "servers": {"http://a": {"requests": 3, "failures": 0}}}}}
    rank1 = {"stage_seconds": {"rerank": 5.0},
             "llm": {"openai:m": {"calls": 4, "hits": 0, "servers": {"http://a": {"requests": 2, "failures": 1},
                                                                      "http://b": {"requests": 2, "failures": 0}}}}}
    assert merge_costs([rank0, rank1]) == {
        "stage_seconds": {"rerank": 5.0, "judge": 1.0},
        "llm": {"openai:m": {"calls": 7, "hits": 1, "servers": {"http://a": {"requests": 5, "failures": 1},
                                                                 "http://b": {"requests": 2, "failures": 0}}}}}


def test_shard_and_parts_of_a_rank():
    assert Dist(1, 3).shard(list(range(8))) == [1, 4, 7]
    assert Dist(0, 1).shard([5, 6]) == [5, 6]
    assert Dist(2, 3).part(Path("r/rankings/x__none.jsonl")) == Path("r/rankings/x__none.rank2.jsonl")
    assert Dist().part(Path("r/records.jsonl")) == Path("r/records.jsonl")          # one process: the file itself
    assert [Dist(0, 2).lock_name(".lock"), Dist(1, 2).lock_name(".lock")] == [".lock", ".lock.rank1"]
    assert Dist(1, 2).device("cpu") == "cpu"


def _main_first_worker(rank: int, port: int, out: str) -> None:
    import datetime
    import time

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60))
    cache = Path(out) / "first_stage.jsonl"

    def first_stage() -> str:
        """Like the first stage's cache: compute and write it when missing (slowly), else read it."""
        if cache.exists():
            return "read"
        time.sleep(1.0)
        cache.write_text("rankings\n")
        return f"computed by rank {rank}"

    def failing() -> str:
        raise UserError("first stage 'nope': expected bm25, ...")

    result = {"first": Dist(rank, 2).main_first(first_stage)}
    try:
        Dist(rank, 2).main_first(failing if rank == 0 else first_stage)
    except UserError as exc:
        result["error"] = str(exc)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def test_the_first_stage_is_computed_by_rank_0_and_read_by_the_others_who_share_its_failure(tmp_path):
    import torch

    from tests.test_rrpo_registry import _free_port

    torch.multiprocessing.spawn(_main_first_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert (rank0["first"], rank1["first"]) == ("computed by rank 0", "read")
    assert rank0["error"] == "first stage 'nope': expected bm25, ..."
    assert rank1["error"] == "rank 0 failed, so this rank stops too: first stage 'nope': expected bm25, ..."


def test_each_rank_takes_the_gpu_of_its_local_rank(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [Dist(r, 6, r % 3).device("auto") for r in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:0"]
    assert Dist(1, 2, 1).device("cuda") == "cuda:1"
    assert Dist(1, 2, 1).device("cuda:0") == "cuda:0"                    # the user's choice stands
    assert Dist(0, 1, 0).device("auto") == "auto"                        # one process: as before
