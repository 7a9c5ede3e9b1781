"""The ``rrpo`` reranker (checkpoint round trip, the error without one), the CLI's options, and 2-process training."""
from __future__ import annotations

import json
import os
import socket

import pytest
import torch

from bench.errors import UserError
from rerankers.registry import RERANKERS, RerankerSettings, get_reranker
from rrpo.reranker import RRPOReranker
from rrpo.__main__ import build_parser, main
from rrpo.assemble import candidate_lists
from rrpo.trainer import RRPOConfig, assemble_trainer, training_data_digest
from tests.rrpo_standins import (STANDIN_NAME, TableReranker, TargetReader, candidate_list, register_standin,
                                 yes_metric)
from tests.shared_data import SHARED_HOTPOT


@pytest.fixture
def standin_backbone():
    register_standin()
    yield
    RERANKERS.remove(STANDIN_NAME)


def test_rrpo_without_checkpoint_says_how_to_train_one():
    with pytest.raises(UserError, match=r"--rrpo-checkpoint FOLDER, or train one with: python -m rrpo train "):
        RRPOReranker(checkpoint=None)


def test_rrpo_checkpoint_not_found_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="not an RRPO checkpoint"):
        get_reranker("rrpo", RerankerSettings(checkpoint=str(tmp_path)))
    with pytest.raises(UserError, match=r"'no-such-rrpo-run': neither a local folder .* python -m rrpo train"):
        get_reranker("rrpo", RerankerSettings(checkpoint="no-such-rrpo-run"))


def test_trained_checkpoint_reloads_as_a_pointwise_reranker(tmp_path, standin_backbone):
    cfg = RRPOConfig(backbone=STANDIN_NAME, pool=8, k=2, rollouts=4, queries_per_step=2, epochs=3, temperature=0.5,
                     trainable="top:1", lr=0.05, ratio_anchor="behaviour")
    lists = [candidate_list(f"q{i}") for i in range(2)]
    trainer = assemble_trainer(cfg, TableReranker(), TargetReader("d5"), yes_metric, lists, tmp_path)
    trainer.train()
    reranker = get_reranker("rrpo", RerankerSettings(checkpoint=str(tmp_path)))
    assert reranker.kind == "pointwise" and reranker.identity()["temperature"] == pytest.approx(0.5)
    cl = lists[0]
    passages = [c.doc.as_passage() for c in cl.candidates]
    with torch.no_grad():
        trained = trainer.policy.scores(cl)
        loaded = reranker.score([cl.query.text] * len(passages), passages)
        untrained = TableReranker().score([cl.query.text] * len(passages), passages) / 0.5
    assert torch.allclose(loaded, trained, atol=2e-3)                 # the float16 delta is close, not bit-exact
    assert not torch.allclose(loaded, untrained, atol=1e-2)           # ... and it did change the backbone
    ranking = reranker.rerank([cl])[0]
    assert ranking.docids == [cl.candidates[i].docid for i in torch.argsort(trained, descending=True).tolist()]


def test_cli_options_cover_every_config_field_with_its_default():
    args = build_parser().parse_args(["train", "--out", "x", "--k", "1", "--no-learn-temperature",
                                      "--ratio-anchor", "behaviour", "--limit", "5"])
    cfg = RRPOConfig(**{name: getattr(args, name) for name in RRPOConfig.__dataclass_fields__})
    assert (cfg.k, cfg.ratio_anchor, cfg.limit, cfg.lr) == (1, "behaviour", 5, RRPOConfig().lr)


def test_train_flags_are_typed_by_bench_options(capsys):
    """``rrpo train``'s flags convert as every component option does: an optional number takes ``none``, and a bad
    value names the flag and the type."""
    args = build_parser().parse_args(["train", "--out", "x", "--limit", "none", "--temperature", "0.5"])
    assert (args.limit, args.temperature) == (None, 0.5)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--out", "x", "--k", "three"])
    assert "argument --k: --k='three': expected int" in capsys.readouterr().err


def test_cli_reports_bad_options_as_one_line(capsys):
    assert main(["train", "--out", "x", "--k", "5", "--pool", "3"]) == 2
    assert capsys.readouterr().err.strip() == "error: --pool 3: expected >= --k 5"


def test_train_checks_its_components_as_bench_run_does(capsys, tmp_path):
    """``rrpo train`` goes through ``RunConfig.validate`` (bench.config): a key pasted where its variable's name
    belongs and a reranker that does not exist fail at once, with ``bench run``'s one-line errors."""
    out = str(tmp_path / "run")
    assert main(["train", "--out", out, "--reader", "openai:m", "--base-url", "http://127.0.0.1:9",
                 "--api-key-env", "sk-secret-123"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --api-key-env: the value is not the NAME of an environment variable") and "sk-secret" not in err
    assert main(["train", "--out", out, "--backbone", "minilmm"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown reranker 'minilmm'")
    assert not (tmp_path / "run").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from rrpo.trainer import Dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    cfg = RRPOConfig(backbone=STANDIN_NAME, pool=8, k=2, rollouts=2, queries_per_step=4, epochs=2, temperature=1.0,
                     trainable="all", lr=0.05)
    lists = [candidate_list(f"q{i}") for i in range(4)]
    trainer = assemble_trainer(cfg, TableReranker(), TargetReader("d5"), yes_metric, lists, None, Dist(rank, world))
    seen = [[cl.query.qid for cl in trainer.batch(s)] for s in range(2)]
    log = trainer.train()
    params = {n: p.detach().flatten().tolist() for n, p in trainer.policy.trainable_parameters().items()}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"params": params, "seen": seen, "queries": [r["queries"] for r in log]}, f)
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_training_keeps_replicas_identical(tmp_path):
    """Data parallel on CPU: each process takes half of every batch; averaged gradients keep the replicas equal."""
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["queries"] == r1["queries"] == [4, 4]                   # the log counts both halves
    for step in range(2):
        assert len(r0["seen"][step]) == len(r1["seen"][step]) == 2
        assert not set(r0["seen"][step]) & set(r1["seen"][step])
    for name in r0["params"]:
        assert r0["params"][name] == pytest.approx(r1["params"][name], abs=1e-6), name


@pytest.mark.slow
def test_shipped_checkpoint_is_the_default_and_reranks_with_minilm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from bench.types import Candidate, CandidateList, Document, Query

    reranker = get_reranker("rrpo")
    assert reranker.checkpoint == "minilm-fictional"
    assert reranker.policy.reranker.name == "minilm" and reranker.identity()["temperature"] == pytest.approx(0.05)
    minilm = get_reranker("minilm")
    docs = [Document("a", "Oswin Laelvleis and Greta Kunnul were wed in 1773.", "Oswin Laelvleis"),
            Document("b", "Whom Oswin Laelvleis married was a matter of gossip in the capital.", "Oswin Laelvleis"),
            Document("c", "The town of Stindreth is famous for its copper kettles.", "Stindreth")]
    cl = CandidateList(Query("q", "Who was the spouse of Oswin Laelvleis?"), [Candidate(d.docid, 0.0, d) for d in docs])
    trained = reranker.rerank([cl])[0]
    base = minilm.rerank([cl])[0]
    assert sorted(trained.docids) == ["a", "b", "c"] and trained.docids[-1] == base.docids[-1] == "c"
    trained_scores, base_scores = dict(zip(trained.docids, trained.scores)), dict(zip(base.docids, base.scores))
    assert trained_scores["a"] != pytest.approx(base_scores["a"] / 0.05, abs=1e-3)   # the delta changed the score


def test_rrpo_hotpotqa_is_the_rrpo_reranker_with_the_shipped_hotpotqa_checkpoint():
    from rerankers.registry import resolve
    from rrpo.reranker import SHIPPED_CHECKPOINTS, local_checkpoint_folder

    spec = resolve("rrpo-hotpotqa")
    assert issubclass(RERANKERS.load("rrpo-hotpotqa"), RRPOReranker) and spec.checkpoint == "minilm-hotpotqa"
    assert local_checkpoint_folder(spec.checkpoint) == SHIPPED_CHECKPOINTS / "minilm-hotpotqa"
    assert (SHIPPED_CHECKPOINTS / "minilm-hotpotqa" / "rrpo_delta.safetensors").is_file()


@pytest.mark.parametrize("shipped", ["minilm-fictional", "minilm-fictional-k3", "minilm-hotpotqa"])
def test_shipped_checkpoint_was_trained_on_the_current_data(tmp_path, shipped):
    """Each shipped checkpoint records a digest of its training queries and candidates; a change to the fictional
    generator, the HotpotQA split or the first stage that was not followed by retraining the checkpoint fails here."""
    import dataclasses
    from pathlib import Path

    import rrpo

    config = json.loads((Path(rrpo.__file__).parent / "checkpoints" / shipped / "config.json").read_text())
    h = config["hyperparameters"]
    dataset = h["dataset"]
    if dataset.endswith(".jsonl"):              # the shared HotpotQA sample, wherever this machine has it
        if SHARED_HOTPOT is None:
            pytest.skip("the shared HotpotQA sample is not above this checkout")
        dataset = str(SHARED_HOTPOT)
    lists = candidate_lists(dataset, h["split"], h["first_stage"], h["pool"], h["limit"], str(tmp_path))
    assert len(lists) == h["limit"]
    assert training_data_digest(lists) == config["training_data"]
    first = lists[0].candidates[0]
    edited = dataclasses.replace(first, doc=dataclasses.replace(first.doc, text=first.doc.text + " More."))
    lists[0].candidates[0] = edited
    assert training_data_digest(lists) != config["training_data"]


def _hotpot_file(path, n_questions: int) -> str:
    """HotpotQA-format questions whose 8 paragraphs are the stand-in's documents doc0..doc7; the answer is in doc3."""
    rows = [{"_id": f"q{i}", "question": f"Which city is question {i} about?", "answer": "Paris",
             "context": [[f"Title {j}", [f"doc{j}"]] for j in range(8)], "supporting_facts": [["Title 3", 0]]}
            for i in range(n_questions)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_train_against_a_served_reader_and_judge(tmp_path, standin_backbone, monkeypatch):
    """``python -m rrpo train --reader openai:<model> --base-url URL --api-key-env VAR`` (and the judge's own pair)
    trains against real local OpenAI-compatible servers (tests/llm_server.py), with the keys from those variables."""
    from bench.llm.cache import open_cache
    from tests.llm_server import ScriptedLLMServer, prompt_text

    monkeypatch.setenv("RB_TEST_READER_KEY", "sk-reader-1")
    monkeypatch.setenv("RB_TEST_JUDGE_KEY", "sk-judge-2")
    reader_reply = lambda body: "Paris" if "doc3" in prompt_text(body) else "unknown"   # noqa: E731
    judge_reply = lambda body: json.dumps(                                                # noqa: E731
        {"verdict": "correct" if prompt_text(body).rpartition("Predicted answer:")[2].strip() == "Paris"
         else "incorrect", "reason": "scripted"})
    with ScriptedLLMServer(reply=reader_reply) as reader, ScriptedLLMServer(reply=judge_reply) as judge:
        argv = ["train", "--dataset", _hotpot_file(tmp_path / "hotpot.jsonl", 2), "--split", "dev",
                "--first-stage", "given", "--pool", "8", "--backbone", STANDIN_NAME, "--temperature", "1.0",
                "--trainable", "all", "--k", "2", "--rollouts", "2", "--queries-per-step", "2", "--epochs", "2",
                "--reader", "openai:scripted", "--base-url", reader.base_url, "--api-key-env", "RB_TEST_READER_KEY",
                "--metric", "judge:openai:scripted", "--judge-base-url", judge.base_url,
                "--judge-api-key-env", "RB_TEST_JUDGE_KEY", "--cache-dir", str(tmp_path / "cache"),
                "--out", str(tmp_path / "run")]
        assert main(argv) == 0
        log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
        assert [row["step"] for row in log] == [1, 2]
        # every answer the reader generated is one request to the reader's server, sent with the reader's key
        assert reader.count == log[-1]["reader_total"]["generated"] > 0
        assert {h["authorization"] for h in reader.headers} == {"Bearer sk-reader-1"}
        assert judge.count > 0 and {h["authorization"] for h in judge.headers} == {"Bearer sk-judge-2"}
        assert all("doc" in prompt_text(body) for body in reader.requests)
    # the reader's answers are in the benchmark's LLM cache, where `bench run` finds them
    assert len(open_cache(str(tmp_path / "cache"))) >= reader.count


def test_a_kill_during_the_log_append_then_the_same_train_command_resumes(tmp_path, standin_backbone):
    """The first session stops after step 1 (``--max-minutes 0``, a spent budget), and a kill then tears the next
    rows of ``train_log.jsonl`` and ``reference_baseline.jsonl`` (inside a multi-byte character). The same command
    without the budget resumes from the step-1 checkpoint: the torn tails are cut, step 2 is trained and logged."""
    from tests.llm_server import ScriptedLLMServer, prompt_text

    with ScriptedLLMServer(reply=lambda body: "Paris" if "doc3" in prompt_text(body) else "unknown") as reader:
        argv = ["train", "--dataset", _hotpot_file(tmp_path / "hotpot.jsonl", 2), "--split", "dev",
                "--first-stage", "given", "--pool", "8", "--backbone", STANDIN_NAME, "--temperature", "1.0",
                "--trainable", "all", "--k", "2", "--rollouts", "2", "--queries-per-step", "2", "--epochs", "2",
                "--reader", "openai:scripted", "--base-url", reader.base_url, "--api-key-env", "RB_TEST_NO_KEY",
                "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]
        assert main([*argv, "--max-minutes", "0"]) == 0
        log, baseline = tmp_path / "run" / "train_log.jsonl", tmp_path / "run" / "reference_baseline.jsonl"
        assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1]
        baseline_rows = baseline.read_text().splitlines()
        with log.open("ab") as f:
            f.write(b'{"step": 2, "epoch": 1, "note": "caf\xc3')
        with baseline.open("ab") as f:
            f.write(b'{"qid": "q9", "t": 1, "rew')
        assert main(argv) == 0
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2] and "note" not in rows[1]
    assert baseline.read_text().splitlines()[:len(baseline_rows)] == baseline_rows
    assert all(json.loads(line)["qid"] != "q9" for line in baseline.read_text().splitlines())
