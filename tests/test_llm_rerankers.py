"""The BGE LLM rerankers (rerankers/bge_llm.py) and mxbai-rerank v2 (rerankers/mxbai.py) against their reference
packages' own scoring code, on tiny random models built from a config (``benchmarks/tiny_models.py``).

- FlagEmbedding 1.4.2 (``pip install --no-deps "FlagEmbedding==1.4.2" peft``): ``FlagLLMReranker.compute_score`` and
  ``LayerWiseFlagLLMReranker.compute_score`` themselves, on the same folders. The package's ``__init__`` files import
  every model it has, among them its MiniCPM layerwise code, which imports ``transformers.modeling_attn_mask_utils``
  (gone in transformers 5); so the two modules are imported without those ``__init__`` files, and the MiniCPM class
  that ``layerwise.py`` tries first is a stand-in that fails to load, after which FlagEmbedding itself falls back to
  ``AutoModelForCausalLM`` with remote code (its own ``except``), loading the tiny layerwise model's code.
- mxbai-rerank 0.1.6 (``pip install --no-deps "mxbai-rerank==0.1.6" "batched==0.1.5"``): ``MxbaiRerankV2.predict``
  itself. It calls the tokenizer's ``prepare_for_model``, which transformers 5 removed; the test gives the tokenizer
  transformers 4's behaviour for the one call it makes (``legacy_prepare_for_model`` below, written from
  transformers 4.46's ``truncate_sequences``).

The references score each batch in their own order and padding (FlagEmbedding: sorted by length, padded to a
multiple of 8 on the tokenizer's side; mxbai: left-padded, positions counted over the padding); the backends
left-pad, count positions over real tokens and pool all pairs into their own batches. Scores must agree to 1e-4.
"""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch

from bench.errors import UserError
from benchmarks import tiny_models
from rerankers.registry import RERANKERS, RerankerSettings, get_reranker, resolve
from tests.test_pointwise_backends import candidate_lists

FLAG_EMBEDDING = 'the differential test needs FlagEmbedding 1.4.2: pip install --no-deps "FlagEmbedding==1.4.2" peft'
MXBAI = 'the differential test needs mxbai-rerank 0.1.6: pip install --no-deps "mxbai-rerank==0.1.6" "batched==0.1.5"'
LONG = "paris is the capital of france and a city on the river " * 12
QUERIES = ["what is the capital of france", "river", LONG, "the city", LONG]
PASSAGES = ["paris is the capital", LONG, "the city on the river", "a", LONG]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm-rerankers")
    return {"gemma": str(tiny_models.bge_gemma(root / "gemma")),
            "layerwise": str(tiny_models.bge_layerwise(root / "layerwise")),
            "mxbai": str(tiny_models.mxbai_v2(root / "mxbai")),
            "mxbai-256": str(tiny_models.mxbai_v2(root / "mxbai-256", max_position_embeddings=256))}


def make_reranker(name, path, **kw):
    return get_reranker(name, RerankerSettings(checkpoint=path, device="cpu", dtype="float32", **kw))


@pytest.fixture
def flag_embedding():
    """FlagEmbedding's ``decoder_only.base`` and ``decoder_only.layerwise`` modules, imported as the module docstring
    says; every FlagEmbedding module is dropped from ``sys.modules`` afterwards."""
    spec = importlib.util.find_spec("FlagEmbedding")      # finds the package without running its __init__
    if spec is None:
        pytest.skip(FLAG_EMBEDDING)
    pytest.importorskip("peft", reason=FLAG_EMBEDDING)
    root = Path(spec.submodule_search_locations[0])
    for package in ("", ".inference", ".inference.reranker", ".inference.reranker.decoder_only",
                    ".inference.reranker.decoder_only.models"):
        module = types.ModuleType("FlagEmbedding" + package)
        module.__path__ = [str(root.joinpath(*package.split(".")[1:]))]
        sys.modules[module.__name__] = module

    class MiniCPMNotLoadable:
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            raise ImportError("FlagEmbedding's MiniCPM code does not import with transformers 5")

    minicpm = types.ModuleType("FlagEmbedding.inference.reranker.decoder_only.models.modeling_minicpm_reranker")
    minicpm.LayerWiseMiniCPMForCausalLM = MiniCPMNotLoadable
    sys.modules[minicpm.__name__] = minicpm
    try:
        yield (importlib.import_module("FlagEmbedding.inference.reranker.decoder_only.base"),
               importlib.import_module("FlagEmbedding.inference.reranker.decoder_only.layerwise"))
    finally:       # only FlagEmbedding's: a library it imported first stays, as any import would
        for name in [n for n in sys.modules if n == "FlagEmbedding" or n.startswith("FlagEmbedding.")]:
            del sys.modules[name]


def assert_close_and_distinct(got, expected):
    assert got == pytest.approx(expected, abs=1e-4)
    assert len({round(v, 3) for v in got}) == len(got)       # every pair scores differently: the test can tell


@pytest.mark.parametrize("limits", [{}, {"max_length": 24}, {"max_length": 24, "query_max_length": 6},
                                    {"max_length": 24, "prompt": "Yes or No?"}])
def test_bge_gemma_equals_flag_llm_reranker(checkpoints, flag_embedding, limits):
    """Default limits (512, the query at most 384) and short ones that cut the long queries and passages; with a
    short prompt, the row's own cut (512 + the prompt's and the separator's lengths) cuts long pairs too."""
    base, _ = flag_embedding
    path = checkpoints["gemma"]
    reference = base.BaseLLMReranker(path, devices="cpu", batch_size=2, **limits)
    expected = reference.compute_score([[q, p] for q, p in zip(QUERIES, PASSAGES)])
    options = {k: v for k, v in limits.items() if k != "max_length"}
    ours = make_reranker("bge-reranker-v2-gemma", path, max_length=limits.get("max_length"), options=options)
    assert_close_and_distinct(ours.score(QUERIES, PASSAGES).tolist(), expected)


@pytest.mark.parametrize("layer", [2, 3])
def test_bge_layerwise_equals_layerwise_flag_llm_reranker(checkpoints, flag_embedding, layer):
    _, layerwise = flag_embedding
    path = checkpoints["layerwise"]
    with pytest.warns(UserWarning, match="use_fp16"):       # FlagEmbedding turns fp16 on, then off on the CPU
        reference = layerwise.LayerWiseLLMReranker(path, devices="cpu", batch_size=2, max_length=24,
                                                    trust_remote_code=True)
    expected = reference.compute_score([[q, p] for q, p in zip(QUERIES, PASSAGES)], cutoff_layers=[layer])
    ours = make_reranker("bge-reranker-v2-minicpm-layerwise", path, max_length=24, trust_remote_code=True,
                         options={"cutoff_layer": layer})
    assert_close_and_distinct(ours.score(QUERIES, PASSAGES).tolist(), expected)


def legacy_prepare_for_model(self, ids, pair_ids=None, *, truncation=None, max_length=None, add_special_tokens=True,
                             **kwargs):
    """transformers 4's ``prepare_for_model`` for the call mxbai-rerank makes: token ids without special tokens, the
    pair truncated ``only_second`` from its end (``truncate_sequences``: when the second sequence is not longer than
    the excess, nothing is removed), no padding, input ids only."""
    assert truncation == "only_second" and not add_special_tokens and pair_ids is not None
    remove = len(ids) + len(pair_ids) - max_length
    if remove > 0 and len(pair_ids) > remove:
        pair_ids = pair_ids[:-remove]
    return {"input_ids": list(ids) + list(pair_ids)}


@pytest.mark.parametrize("folder, max_length, instruction", [
    ("mxbai", None, None),                  # 8192, lowered to the 4096 positions less the fixed prompt
    ("mxbai", 40, None),                    # the query cut to 30 tokens, the pair to 40
    ("mxbai", 40, "Find the passage that names the capital"),
    ("mxbai-256", None, None),              # 256 positions: the document cut to what the query leaves
])
def test_mxbai_equals_the_mxbai_rerank_package(checkpoints, monkeypatch, folder, max_length, instruction):
    mxbai_rerank = pytest.importorskip("mxbai_rerank", reason=MXBAI)
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    monkeypatch.setattr(PreTrainedTokenizerBase, "prepare_for_model", legacy_prepare_for_model, raising=False)
    path = checkpoints[folder]
    reference = mxbai_rerank.MxbaiRerankV2(path, device="cpu", torch_dtype=torch.float32,
                                          **({"max_length": max_length} if max_length else {}))
    expected = reference.predict(QUERIES, PASSAGES, instruction=instruction).tolist()
    ours = make_reranker("mxbai-rerank-base-v2", path, max_length=max_length,
                         options={"instruction": instruction} if instruction else None)
    assert ours.max_length == reference.max_length
    assert_close_and_distinct(ours.score(QUERIES, PASSAGES).tolist(), expected)


BACKENDS = {"bge-reranker-v2-gemma": ("gemma", {}),
            "bge-reranker-v2-minicpm-layerwise": ("layerwise", {"trust_remote_code": True,
                                                                 "options": {"cutoff_layer": 2}}),
            "mxbai-rerank-base-v2": ("mxbai", {})}


@pytest.mark.parametrize("name", list(BACKENDS))
def test_batches_and_pooling_do_not_change_scores_and_rankings_are_sorted(name, checkpoints):
    folder, kw = BACKENDS[name]
    lists = candidate_lists(n_queries=3)
    one = make_reranker(name, checkpoints[folder], batch_size=1, **kw).rerank(lists)
    many = make_reranker(name, checkpoints[folder], batch_size=7, **kw).rerank(lists)
    for cl, a, b in zip(lists, one, many):
        assert a.docids == b.docids and sorted(a.docids) == sorted(c.docid for c in cl.candidates)
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
        assert a.scores == sorted(a.scores, reverse=True) and len(set(a.scores)) > 1


@pytest.mark.parametrize("name", list(BACKENDS))
def test_score_is_differentiable_through_model(name, checkpoints):
    folder, kw = BACKENDS[name]
    reranker = make_reranker(name, checkpoints[folder], **kw)
    scores = reranker.score(["capital of france", "river"], ["paris is the capital", "the city"])
    assert scores.shape == (2,) and scores.requires_grad
    scores.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in reranker.model.parameters())


def test_the_cutoff_layer_chooses_the_head_and_must_have_one(checkpoints):
    path = checkpoints["layerwise"]
    scores = {layer: make_reranker("bge-reranker-v2-minicpm-layerwise", path, trust_remote_code=True,
                                   options={"cutoff_layer": layer}).score(QUERIES[:2], PASSAGES[:2]).tolist()
              for layer in (1, 2, 3)}
    assert scores[1] != pytest.approx(scores[2], abs=1e-3) and scores[2] != pytest.approx(scores[3], abs=1e-3)
    for layer in (0, 4, 28):        # 28, the card's default, is past the tiny model's 3 layers
        with pytest.raises(UserError) as err:
            make_reranker("bge-reranker-v2-minicpm-layerwise", path, trust_remote_code=True,
                          options={"cutoff_layer": layer})
        assert str(err.value) == (f"reranker option cutoff_layer {layer}: expected a layer from 1 to 3 (those with a "
                                  f"scoring head in {path!r})")


def test_layerwise_runs_its_code_only_with_the_users_flag(checkpoints, tmp_path):
    folder = tmp_path / "layerwise"
    shutil.copytree(checkpoints["layerwise"], folder)
    code = folder / "layerwise.py"
    code.write_text(f"open({str(folder / 'ran')!r}, 'w').write('ran')\n" + code.read_text())
    with pytest.raises(UserError) as err:
        make_reranker("bge-reranker-v2-minicpm-layerwise", str(folder))
    assert str(err.value) == (f"checkpoint {str(folder)!r} ships its model architecture as Python code that loading "
                              f"would run on this machine; pass --trust-remote-code if you trust its source")
    assert not (folder / "ran").exists()
    make_reranker("bge-reranker-v2-minicpm-layerwise", str(folder), trust_remote_code=True,
                  options={"cutoff_layer": 3})
    assert (folder / "ran").exists()


def test_layerwise_code_that_does_not_import_is_a_one_line_error(checkpoints, tmp_path):
    """What the real checkpoint's MiniCPM code does under transformers 5 (it imports a module that release removed)."""
    import transformers

    folder = tmp_path / "layerwise"
    shutil.copytree(checkpoints["layerwise"], folder)
    code = folder / "layerwise.py"
    code.write_text("from transformers.no_such_module import helper\n" + code.read_text())
    with pytest.raises(UserError) as err:
        make_reranker("bge-reranker-v2-minicpm-layerwise", str(folder), trust_remote_code=True)
    assert str(err.value).startswith(f"checkpoint {str(folder)!r}: its model code does not import with transformers "
                                     f"{transformers.__version__}: ")
    assert "no_such_module" in str(err.value) and "\n" not in str(err.value)


def test_registered_names_checkpoints_and_defaults():
    expected = {"bge-reranker-v2-gemma": "BAAI/bge-reranker-v2-gemma",
                "bge-reranker-v2-minicpm-layerwise": "BAAI/bge-reranker-v2-minicpm-layerwise",
                "bge-reranker-v2-minicpm": "BAAI/bge-reranker-v2-minicpm-layerwise",
                "mxbai-rerank-base-v2": "mixedbread-ai/mxbai-rerank-base-v2",
                "mxbai-rerank-v2": "mixedbread-ai/mxbai-rerank-base-v2",
                "mxbai-rerank-large-v2": "mixedbread-ai/mxbai-rerank-large-v2"}
    for name, checkpoint in expected.items():
        spec = resolve(name)
        assert (spec.checkpoint, spec.kind, spec.extra) == (checkpoint, "pointwise", None)
    from rerankers.bge_llm import BGELayerwiseOptions
    from rerankers.mxbai import MxbaiOptions

    assert BGELayerwiseOptions().cutoff_layer == 28 and BGELayerwiseOptions().query_max_length is None
    assert MxbaiOptions().instruction == ""


def test_defaults_max_lengths(checkpoints):
    assert make_reranker("bge-reranker-v2-gemma", checkpoints["gemma"]).max_length == 512
    mxbai = make_reranker("mxbai-rerank-base-v2", checkpoints["mxbai"])
    assert mxbai.max_length == 4096 - mxbai.fixed_length        # 8192 lowered to the positions left
    assert make_reranker("mxbai-rerank-base-v2", checkpoints["mxbai"], max_length=100).max_length == 100


@pytest.mark.parametrize("name", ["bge-reranker-v2-gemma", "bge-reranker-v2-minicpm-layerwise",
                                  "mxbai-rerank-large-v2"])
def test_preflight_refuses_weights_missing_offline(name, monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint = resolve(name).checkpoint
    with pytest.raises(UserError) as err:
        RERANKERS.load(name).preflight(name, checkpoint, RerankerSettings(trust_remote_code=True))
    assert str(err.value).startswith(f"reranker {name!r}: checkpoint {checkpoint!r} is not on this machine and "
                                     f"HF_HUB_OFFLINE is set; download it where the hub is reachable")


def test_a_run_ranks_with_each_backend_and_writes_its_leaderboard_row(checkpoints, tmp_path):
    """End to end through ``bench run``: pre-flight accepts the local folders, the layerwise model runs with the
    user's flag and its option, and the leaderboard has a row per reranker."""
    import pandas as pd

    from tests.test_preflight import bench_run

    proc = bench_run(tmp_path, "--rerankers", "none", "bge-reranker-v2-gemma", "bge-reranker-v2-minicpm-layerwise",
                     "mxbai-rerank-v2", "--reader", "none", "--device", "cpu", "--trust-remote-code",
                     "--checkpoint", f"bge-reranker-v2-gemma={checkpoints['gemma']}",
                     "--checkpoint", f"bge-reranker-v2-minicpm-layerwise={checkpoints['layerwise']}",
                     "--checkpoint", f"mxbai-rerank-v2={checkpoints['mxbai']}",
                     "--reranker-args", "bge-reranker-v2-minicpm-layerwise:cutoff_layer=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "out").iterdir()
    assert list(pd.read_csv(run_dir / "leaderboard.csv")["reranker"]) == [
        "none", "bge-reranker-v2-gemma", "bge-reranker-v2-minicpm-layerwise", "mxbai-rerank-v2"]


@pytest.mark.parametrize("name", ["bge-reranker-v2-minicpm-layerwise", "gte-reranker"])   # every remote-code backend
def test_a_run_without_the_flag_stops_before_its_folder(checkpoints, tmp_path, name):
    from tests.test_preflight import bench_run, one_line_error

    proc = bench_run(tmp_path, "--rerankers", "none", name, "--reader", "none",
                     "--checkpoint", f"{name}={checkpoints['layerwise']}")
    assert one_line_error(proc) == (f"error: checkpoint {checkpoints['layerwise']!r} ships its model architecture as "
                                    f"Python code that loading would run on this machine; pass --trust-remote-code if "
                                    f"you trust its source")
    assert not (tmp_path / "out").exists()
