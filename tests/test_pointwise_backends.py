"""Pointwise backends (cross-encoder, monoT5, Qwen3-Reranker) on tiny random checkpoints built from configs."""
from __future__ import annotations

import pytest
import torch

from bench.errors import UserError
from bench.types import Candidate, CandidateList, Document, Query
from benchmarks import tiny_models
from rerankers.registry import RerankerSettings, get_reranker, resolve

BACKENDS = {"minilm-cross-encoder": tiny_models.cross_encoder, "monot5": tiny_models.monot5,
            "qwen3-reranker": tiny_models.qwen3_reranker}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {name: str(build(root / name)) for name, build in BACKENDS.items()}


def make_reranker(name, path, **kw):
    return get_reranker(name, RerankerSettings(checkpoint=path, device="cpu", dtype="float32", **kw))


def candidate_lists(n_queries=2, n_docs=8):
    words = "paris is the capital of france and a city on the river".split()
    lists = []
    for q in range(n_queries):
        cands = [Candidate(f"q{q}d{i}", 0.0, Document(f"q{q}d{i}", " ".join(words[(i + k) % len(words)]
                                                                          for k in range(3 + 4 * i)),
                                                         title="Paris" if i % 3 == 0 else ""))
                 for i in range(n_docs)]
        lists.append(CandidateList(Query(f"q{q}", f"what is the capital of france {q}"), cands))
    return lists


def reference_score(name, reranker, query, passage):
    """The score of one pair, computed straight from the model and the published input format, unbatched. The
    reference libraries that cannot be installed beside this project are reproduced from their code, read at the
    versions named: monoT5 as ``rerankers``' (AnswerDotAI, 0.6) ``T5Ranker`` and pygaggle's ``MonoT5`` score it
    (``Query: q Document: d Relevant:``, one decoder step from the pad token, log-softmax over the "▁false" and
    "▁true" logits, "true" kept); Qwen3-Reranker as its model card's code does (the system/user/assistant prompt with
    the default instruction, the last position's "no"/"yes" logits, log-softmax, "yes" kept). sentence-transformers'
    ``CrossEncoder`` is installed and compared with directly (``test_cross_encoder_equals_sentence_transformers``);
    FlagEmbedding's ``FlagReranker`` in ``test_bge_rerankers_truncate_as_flag_reranker``."""
    tok, model = reranker.tokenizer, reranker.model
    with torch.no_grad():
        if name == "minilm-cross-encoder":
            return model(**tok(query, passage, return_tensors="pt")).logits[0, 0].item()
        if name == "monot5":
            enc = tok(f"Query: {query} Document: {passage} Relevant:", return_tensors="pt")
            logits = model(**enc, decoder_input_ids=torch.zeros((1, 1), dtype=torch.long)).logits[0, 0]
            vocab = tok.get_vocab()
            pair = torch.stack([logits[vocab["▁false"]], logits[vocab["▁true"]]])
            return torch.log_softmax(pair, 0)[1].item()
        prompt = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
                  "Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n"
                  "<|im_start|>user\n<Instruct>: Given a web search query, retrieve relevant passages that answer "
                  f"the query\n<Query>: {query}\n<Document>: {passage}<|im_end|>\n<|im_start|>assistant\n"
                  "<think>\n\n</think>\n\n")
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        logits = model(input_ids=ids).logits[0, -1]
        vocab = tok.get_vocab()
        return torch.log_softmax(torch.stack([logits[vocab["no"]], logits[vocab["yes"]]]), 0)[1].item()


@pytest.mark.parametrize("name", list(BACKENDS))
def test_scores_match_the_published_input_format_and_sort_the_ranking(name, checkpoints):
    reranker = make_reranker(name, checkpoints[name], batch_size=5)
    lists = candidate_lists()
    rankings = reranker.rerank(lists)
    for cl, ranking in zip(lists, rankings):
        by_id = {c.docid: c for c in cl.candidates}
        expected = {d: reference_score(name, reranker, cl.query.text, by_id[d].doc.as_passage())
                    for d in ranking.docids}
        assert ranking.scores == pytest.approx([expected[d] for d in ranking.docids], abs=1e-4)
        assert ranking.scores == sorted(ranking.scores, reverse=True)
        assert sorted(ranking.docids) == sorted(by_id)
        assert len(set(ranking.scores)) > 1


@pytest.mark.parametrize("name", list(BACKENDS))
def test_batch_size_does_not_change_scores(name, checkpoints):
    lists = candidate_lists()
    one = make_reranker(name, checkpoints[name], batch_size=1).rerank(lists)
    many = make_reranker(name, checkpoints[name], batch_size=32).rerank(lists)
    for a, b in zip(one, many):
        assert a.docids == b.docids
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_prefetching_batches_in_a_thread_gives_the_same_scores(name, checkpoints):
    lists = candidate_lists(n_queries=3)
    serial = make_reranker(name, checkpoints[name], batch_size=4).rerank(lists)
    prefetched = make_reranker(name, checkpoints[name], batch_size=4, prefetch=True).rerank(lists)
    assert [(r.docids, r.scores) for r in prefetched] == [(r.docids, r.scores) for r in serial]


@pytest.mark.parametrize("name", list(BACKENDS))
def test_score_is_differentiable_through_model(name, checkpoints):
    reranker = make_reranker(name, checkpoints[name])
    scores = reranker.score(["capital of france", "river"], ["paris is the capital", "the city"])
    assert scores.shape == (2,) and scores.requires_grad
    scores.sum().backward()
    grads = [p.grad for p in reranker.model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_max_length_truncates_the_passage(name, checkpoints):
    limit = 16
    if name == "qwen3-reranker":   # the fixed prompt around the pair takes its share of the budget
        fixed = make_reranker(name, checkpoints[name])
        limit += len(fixed.prefix_ids) + len(fixed.suffix_ids)
    reranker = make_reranker(name, checkpoints[name], max_length=limit)
    head = "paris is the capital of france " * 30
    s = reranker.score(["capital"] * 2, [head + "and a river", head + "of the city"]).tolist()
    assert s[0] == pytest.approx(s[1], abs=1e-6)
    full = make_reranker(name, checkpoints[name])
    s = full.score(["capital"] * 2, ["paris the capital and a river", "paris the capital of the city"]).tolist()
    assert s[0] != pytest.approx(s[1], abs=1e-6)


def test_registered_names_and_checkpoints():
    expected = {
        "monot5": "castorini/monot5-base-msmarco-10k", "monot5-base": "castorini/monot5-base-msmarco-10k",
        "monot5-base-100k": "castorini/monot5-base-msmarco", "monot5-3b": "castorini/monot5-3b-msmarco-10k",
        "monot5-3b-100k": "castorini/monot5-3b-msmarco", "monot5-large": "castorini/monot5-large-msmarco-10k",
        "bge-reranker-v2-m3": "BAAI/bge-reranker-v2-m3", "bge-reranker-base": "BAAI/bge-reranker-base",
        "gte-reranker": "Alibaba-NLP/gte-multilingual-reranker-base",
        "jina-reranker-v2": "jinaai/jina-reranker-v2-base-multilingual",
        "minilm-cross-encoder": "cross-encoder/ms-marco-MiniLM-L-6-v2",
        "qwen3-reranker": "Qwen/Qwen3-Reranker-0.6B", "qwen3-reranker-4b": "Qwen/Qwen3-Reranker-4B",
        "qwen3-reranker-8b": "Qwen/Qwen3-Reranker-8B",
    }
    for name, checkpoint in expected.items():
        spec = resolve(name)
        assert spec.checkpoint == checkpoint and spec.kind == "pointwise"
    assert resolve("monot5").extra == "t5"


def test_remote_code_checkpoints_are_loaded_with_trust_remote_code(checkpoints, monkeypatch):
    import transformers

    seen = []
    real = transformers.AutoModelForSequenceClassification.from_pretrained

    def spy(path, **kw):
        seen.append(kw.get("trust_remote_code"))
        return real(path, **kw)

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", spy)
    make_reranker("jina-reranker-v2", checkpoints["minilm-cross-encoder"], trust_remote_code=True)
    make_reranker("bge-reranker-base", checkpoints["minilm-cross-encoder"])
    assert seen == [True, False]


def hostile_checkpoint(folder, model_type: str = "bert", auto_model: str = "AutoModelForSequenceClassification"):
    """A BERT folder whose config.json maps the architecture (``model_type``, loaded by ``auto_model``) to its own
    Python file; importing that file writes ``ran``, the proof that loading ran the checkpoint's code. The file
    subclasses the BERT classes (an alias would register transformers' own classes as remote code for the rest of
    the process)."""
    import json

    path = tiny_models.cross_encoder(folder)
    config = json.loads((path / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {"AutoConfig": "hostile.HostileConfig", auto_model: "hostile.HostileModel"}
    (path / "config.json").write_text(json.dumps(config))
    model_class = "BertModel" if auto_model == "AutoModel" else "BertForSequenceClassification"
    (path / "hostile.py").write_text(f"open({str(path / 'ran')!r}, 'w').write('pwned')\n"
                                     f"from transformers import BertConfig, {model_class}\n"
                                     f"class HostileConfig(BertConfig):\n    model_type = {model_type!r}\n"
                                     f"class HostileModel({model_class}):\n    config_class = HostileConfig\n")
    return path


@pytest.mark.parametrize("name", ["gte-reranker", "jina-reranker-v2"])
def test_remote_code_backends_refuse_without_the_users_flag(name, tmp_path):
    with pytest.raises(UserError) as err:                  # the registered hub id: refused before any download
        get_reranker(name, RerankerSettings(device="cpu"))
    checkpoint = resolve(name).checkpoint
    assert str(err.value) == (f"checkpoint {checkpoint!r} ships its model architecture as Python code that loading "
                              f"would run on this machine; pass --trust-remote-code if you trust its source")
    hostile = hostile_checkpoint(tmp_path / "hostile")
    with pytest.raises(UserError, match="pass --trust-remote-code"):
        make_reranker(name, str(hostile))
    assert not (hostile / "ran").exists()


def test_rrpo_checkpoint_cannot_turn_on_remote_code(tmp_path):
    """An RRPO checkpoint's config.json names its backbone: naming a remote-code one must not run the code it points
    at, in the library and through the CLI."""
    import json
    import subprocess
    import sys

    hostile = hostile_checkpoint(tmp_path / "hostile")
    rrpo = tmp_path / "rrpo"
    rrpo.mkdir()
    (rrpo / "config.json").write_text(json.dumps({"format": "rrpo-checkpoint/1", "backbone": "jina-reranker-v2",
                                                  "backbone_checkpoint": str(hostile), "temperature": 1.0,
                                                  "weights": "rrpo_delta.safetensors"}))
    with pytest.raises(UserError, match="pass --trust-remote-code"):
        get_reranker("rrpo", RerankerSettings(checkpoint=str(rrpo), device="cpu"))
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--rerankers", "none", "rrpo", "--rrpo-checkpoint",
                           str(rrpo), "--reader", "none", "--limit", "2", "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("pass --trust-remote-code if you trust its source")
    assert not (hostile / "ran").exists()


@pytest.mark.parametrize("name,checkpoint", [("bge-reranker-base", "BAAI/bge-reranker-base"),
                                             ("monot5", "castorini/monot5-base-msmarco-10k"),
                                             ("qwen3-reranker", "Qwen/Qwen3-Reranker-0.6B")])
def test_checkpoint_missing_offline_is_a_one_line_user_error(name, checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))     # an empty hub cache
    with pytest.raises(UserError) as err:
        get_reranker(name, RerankerSettings(device="cpu"))
    msg = str(err.value)
    assert msg.startswith(f"could not load checkpoint '{checkpoint}' offline: ")
    assert "\n" not in msg


def test_two_label_cross_encoder_scores_the_relevant_label(tmp_path):
    path = str(tiny_models.cross_encoder(tmp_path / "ce2", num_labels=2))
    reranker = make_reranker("minilm-cross-encoder", path)
    with torch.no_grad():
        scores = reranker.score(["capital", "river"], ["paris is the capital", "a city"])
        logits = reranker.model(**reranker.tokenizer(["capital", "river"], ["paris is the capital", "a city"],
                                                     padding=True, return_tensors="pt")).logits
    assert scores.tolist() == pytest.approx(torch.log_softmax(logits, -1)[:, 1].tolist(), abs=1e-6)


def test_monot5_needs_true_false_tokens(tmp_path):
    path = tiny_models.monot5(tmp_path / "t5", with_labels=False)
    with pytest.raises(UserError, match="no ▁false or ▁true token"):
        make_reranker("monot5", str(path))


def test_rrpo_train_runs_remote_code_only_with_the_users_flag(tmp_path, capsys):
    """``rrpo train`` shares ``bench run``'s --trust-remote-code: without it a remote-code backbone is refused before
    its code runs; with it the flag reaches the backbone (the hostile file runs; the missing reader, built after the
    backbone, then stops the run)."""
    from rrpo.__main__ import main as rrpo_main

    hostile = hostile_checkpoint(tmp_path / "hostile")
    args = ["train", "--dataset", "fictional", "--split", "train", "--limit", "2", "--backbone", "gte-reranker",
            "--backbone-checkpoint", str(hostile), "--reader", f"hf:{tmp_path / 'no-such-reader'}",
            "--cache-dir", str(tmp_path / "c"),
            "--out", str(tmp_path / "out")]
    assert rrpo_main(args) == 2
    assert "pass --trust-remote-code" in capsys.readouterr().err
    assert not (hostile / "ran").exists()
    assert rrpo_main([*args, "--trust-remote-code"]) == 2
    assert "no-such-reader" in capsys.readouterr().err
    assert (hostile / "ran").exists()


def test_rrpo_minilm_backbone_with_model_code_runs_nothing_even_when_stdin_says_yes(tmp_path):
    """The minilm backbone (a bi-encoder, no remote-code registration) pointed at a folder that ships model code:
    transformers asks on stdin whether to run it unless told; answering ``y`` there must change nothing, since every
    load passes the user's option (off) explicitly."""
    import json
    import subprocess
    import sys

    # a custom model_type: no transformers class can stand in for the folder's own
    hostile = hostile_checkpoint(tmp_path / "hostile", model_type="hostile-bert", auto_model="AutoModel")
    rrpo = tmp_path / "rrpo"
    rrpo.mkdir()
    (rrpo / "config.json").write_text(json.dumps({"format": "rrpo-checkpoint/1", "backbone": "minilm",
                                                  "backbone_checkpoint": str(hostile), "temperature": 1.0,
                                                  "weights": "rrpo_delta.safetensors"}))
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--rerankers", "none", "rrpo", "--rrpo-checkpoint",
                           str(rrpo), "--reader", "none", "--limit", "2", "--output", str(tmp_path / "out"),
                           "--cache-dir", str(tmp_path / "cache")],
                          input="y\n" * 20, capture_output=True, text=True, timeout=300)
    assert not (hostile / "ran").exists()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].endswith("pass --trust-remote-code if you trust its source")


def test_cross_encoder_equals_sentence_transformers(checkpoints):
    """Differential: sentence-transformers' own ``CrossEncoder`` (6.x, installed) on the same tiny checkpoint, raw
    logits (identity activation), pairs short and past the 24-token limit (longest-first truncation in both)."""
    from sentence_transformers import CrossEncoder as STCrossEncoder

    path = checkpoints["minilm-cross-encoder"]
    ours = make_reranker("minilm-cross-encoder", path, max_length=24)
    reference = STCrossEncoder(path, max_length=24, device="cpu", activation_fn=torch.nn.Identity())
    long = "paris is the capital of france and a city on the river " * 6
    pairs = [("capital of france", "paris is the capital"), ("river", long), (long, "the city"), (long, long)]
    expected = reference.predict(pairs, batch_size=2, convert_to_numpy=True).tolist()
    got = ours.score([q for q, _ in pairs], [p for _, p in pairs]).tolist()
    assert got == pytest.approx(expected, abs=1e-5)
    assert len(set(round(v, 4) for v in got)) == len(got)        # four different scores: the test can tell


def test_bge_rerankers_truncate_as_flag_reranker(checkpoints, tmp_path):
    """FlagEmbedding's ``FlagReranker`` (1.3, ``inference/reranker/encoder_only/base.py``; not installable beside this
    project) is reproduced from its code: the query tokenised without special tokens and cut to ``query_max_length``
    (default ``max_length * 3 // 4``), the passage cut to ``max_length``, the two joined by the tokenizer's
    ``prepare_for_model(..., truncation="only_second", max_length)``; ``max_length`` 512 whatever the tokenizer says
    (8192 for bge-reranker-v2-m3). With 32 tokens, a long query keeps 24 and the passage the 5 left after
    [CLS] and two [SEP]; longest-first truncation would have kept the passage's 11 and 18 of the query."""
    import json
    import shutil

    path = tmp_path / "bge-like"
    shutil.copytree(checkpoints["minilm-cross-encoder"], path)
    config = json.loads((path / "tokenizer_config.json").read_text())
    (path / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 8192}))
    assert make_reranker("minilm-cross-encoder", str(path)).max_length == 8192    # the tokenizer's limit
    assert make_reranker("bge-reranker-v2-m3", str(path)).max_length == 512       # the card's
    bge = make_reranker("bge-reranker-v2-m3", str(path), max_length=32)
    tok = bge.tokenizer
    query, passage = "paris is the capital of france " * 20, "the city on the river and a city on the river"
    q_ids = tok(query, add_special_tokens=False)["input_ids"]
    p_ids = tok(passage, add_special_tokens=False)["input_ids"]
    assert len(q_ids) > 32 and len(p_ids) == 11
    row = bge.encode([query], [passage])["input_ids"][0].tolist()
    assert row == [tok.cls_token_id, *q_ids[:24], tok.sep_token_id, *p_ids[:5], tok.sep_token_id]
    capped = make_reranker("bge-reranker-v2-m3", str(path), max_length=32, options={"query_max_length": 8})
    assert capped.encode([query], [passage])["input_ids"][0].tolist() == \
        [tok.cls_token_id, *q_ids[:8], tok.sep_token_id, *p_ids, tok.sep_token_id]
    ours = bge.score([query], [passage]).item()
    with torch.no_grad():
        types = [0] * (1 + 24 + 1) + [1] * (5 + 1)                 # BERT's segment ids of the pair
        direct = bge.model(input_ids=torch.tensor([row]), token_type_ids=torch.tensor([types])).logits[0, 0].item()
    assert ours == pytest.approx(direct, abs=1e-6)
