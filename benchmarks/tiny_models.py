"""Tiny randomly initialised checkpoints of every pointwise/listwise model family, saved to a folder, for tests and
device checks (no weights can be downloaded here). Each builder returns the folder, loadable with ``from_pretrained``
exactly like the real checkpoint of its family:

- ``cross_encoder``: a 2-layer BERT with a one-logit head and a WordPiece tokenizer trained here;
- ``colbert_stanford`` / ``colbert_pylate``: the same BERT with a ColBERT projection, saved in the layout of
  stanford-futuredata/ColBERT (colbertv2.0) and of PyLate;
- ``monot5``: a 2-layer T5 with a SentencePiece model trained here on a few sentences, holding ``▁true``/``▁false``
  (the castorini checkpoints ship only ``spiece.model`` too, so the same conversion path runs);
- ``lit5``: the same kind of T5 with a vocabulary for LiT5's prompt and permutations;
- ``qwen3_reranker``: a 2-layer Qwen3 causal LM with a byte-level BPE tokenizer trained here, holding the ChatML
  special tokens and ``yes``/``no``;
- ``chat_lm``: the same kind of Qwen3 LM with a Zephyr-style chat template, for listwise generation;
- ``bge_gemma``: a 2-layer Gemma causal LM whose tokenizer adds ``<bos>`` (id 2, padding 0) as Gemma's does;
- ``bge_layerwise``: a 3-layer model with one-logit heads on layers 1..3, whose architecture ships as code in the
  folder (``layerwise.py``, loaded with ``trust_remote_code``) with the interface of bge-reranker-v2-minicpm-layerwise's
  (``cutoff_layers``; ``logits``: one (batch, sequence) tensor per cutoff layer);
- ``mxbai_v2``: a 2-layer Qwen2 causal LM with the ChatML tokenizer.
- ``llama_chat_lm``: a 2-layer Llama causal LM with that tokenizer and template (FIRST's Zephyr/Mistral family).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

WORDS = ("the a of to and in is was for on that with as by at from it an be this are which or his her has had were "
         "not but they their query document relevant passage answer paris france capital river city").split()
CORPUS = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(12)) for i in range(200)]
CHATML_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
ZEPHYR_CHAT_TEMPLATE = ("{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|im_end|>\n"
                        "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def bert_tokenizer(extra_specials: tuple[str, ...] = (), corpus: list[str] = CORPUS):
    """A BERT WordPiece tokenizer (lower-cased, ``[CLS] a [SEP] b [SEP]`` pairs) trained on ``corpus``, with BERT's
    special tokens (``[PAD]`` id 0) and ``extra_specials`` after them."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra_specials]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(corpus, trainer=trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return BertTokenizerFast(tokenizer_object=tok, model_max_length=512)


def _bert_config(vocab_size: int, **kw):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=512,
                      initializer_range=0.5, **kw)  # wide weights: scores far apart, rankings stable


def cross_encoder(folder: str | Path, seed: int = 0, num_labels: int = 1) -> Path:
    from transformers import BertForSequenceClassification

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = bert_tokenizer()
    tokenizer.save_pretrained(folder)
    _seeded(seed)
    BertForSequenceClassification(_bert_config(len(tokenizer), num_labels=num_labels)).save_pretrained(folder)
    return folder


# Punctuation in the ColBERT tokenizers' corpus, so that ColBERT's skiplist (string.punctuation) holds real tokens.
PUNCTUATED = [f"{line[:30]}, {line[30:]}. is it? (yes)!" for line in CORPUS[:60]]


def colbert_stanford(folder: str | Path, seed: int = 0, dim: int = 16, query_maxlen: int = 32,
                     doc_maxlen: int = 180) -> Path:
    """A ColBERT checkpoint as stanford-futuredata/ColBERT saves one (colbert-ir/colbertv2.0's layout): a BERT whose
    ``config.json`` names the ``HF_ColBERT`` architecture, its weights under ``bert.`` beside the projection
    ``linear.weight`` (no bias) in ``model.safetensors``, the markers ``[unused0]``/``[unused1]`` in the vocabulary and
    the lengths in ``artifact.metadata``."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = bert_tokenizer(("[unused0]", "[unused1]"), CORPUS + PUNCTUATED)
    tokenizer.save_pretrained(folder)
    _seeded(seed)
    config = _bert_config(len(tokenizer), architectures=["HF_ColBERT"])
    bert = BertModel(config, add_pooling_layer=False)
    weights = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    weights["linear.weight"] = torch.randn(dim, config.hidden_size)
    save_file(weights, str(folder / "model.safetensors"))
    config.save_pretrained(folder)
    (folder / "artifact.metadata").write_text(json.dumps(
        {"query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": query_maxlen,
         "doc_maxlen": doc_maxlen, "attend_to_mask_tokens": False, "mask_punctuation": True, "dim": dim}))
    return folder


def colbert_pylate(folder: str | Path, seed: int = 0, dim: int = 16, query_length: int = 24,
                   document_length: int = 64, bias: bool = True,
                   activation: str = "torch.nn.modules.linear.Identity") -> Path:
    """A ColBERT checkpoint as PyLate saves one (sentence-transformers layout): the BERT at the root with the
    prefixes ``[Q] ``/``[D] `` added to its tokenizer, the projection a ``Dense`` module in ``1_Dense``, and the
    prefixes and lengths in ``config_sentence_transformers.json``."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = bert_tokenizer(corpus=CORPUS + PUNCTUATED)
    tokenizer.add_tokens(["[Q] ", "[D] "])
    tokenizer.save_pretrained(folder)
    _seeded(seed)
    config = _bert_config(len(tokenizer))
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    dense = folder / "1_Dense"
    dense.mkdir(exist_ok=True)
    (dense / "config.json").write_text(json.dumps(
        {"in_features": config.hidden_size, "out_features": dim, "bias": bias,
         "activation_function": activation, "use_residual": False}))
    linear = {"linear.weight": torch.randn(dim, config.hidden_size)}
    if bias:
        linear["linear.bias"] = torch.randn(dim)
    save_file(linear, str(dense / "model.safetensors"))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": document_length - 1,
                                                                  "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": query_length,
         "document_length": document_length, "attend_to_expansion_tokens": False, "skiplist_words": None,
         "do_query_expansion": True, "similarity_fn_name": "MaxSim", "prompts": {}, "default_prompt_name": None}))
    return folder


def monot5(folder: str | Path, seed: int = 0, with_labels: bool = True) -> Path:
    """``with_labels=False`` leaves ``▁true``/``▁false`` out of the vocabulary (a T5 that is not a monoT5)."""
    from transformers import T5Config, T5ForConditionalGeneration

    folder = Path(folder)
    vocab_size = t5_tokenizer(folder, CORPUS, with_labels)
    _seeded(seed)
    config = T5Config(vocab_size=vocab_size, d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    return folder


def lit5(folder: str | Path, seed: int = 0) -> Path:
    """A 2-layer T5 whose SentencePiece vocabulary holds LiT5's prompt words and the pieces of a permutation
    (``[``, digits, ``]``, ``>``), so that a random model's replies have identifiers to parse."""
    import sentencepiece as spm
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    folder = Path(folder)
    permutations = [" > ".join(f"[{(i * k) % 20 + 1}]" for i in range(20)) for k in (1, 3, 7)] * 20
    vocab_size = t5_tokenizer(folder, CORPUS + permutations + ["Search Query: Passage: Relevance Ranking:"] * 20,
                              with_labels=False, vocab_size=160)
    _seeded(seed)
    config = T5Config(vocab_size=vocab_size, d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, tie_word_embeddings=False)
    model = T5ForConditionalGeneration(config)
    # Only the pieces of a permutation with a digit get a non-zero output row, so greedy replies are made of them (in
    # an order the random weights choose) and every reply has identifiers to parse.
    sp = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    reply = [i for i in range(vocab_size) if set(sp.id_to_piece(i)) & set("0123456789")
             and set(sp.id_to_piece(i)) <= set("▁[]>0123456789")]
    keep = torch.zeros(vocab_size, 1)
    keep[reply] = 10.0
    with torch.no_grad():
        model.lm_head.weight.mul_(keep)
    model.save_pretrained(folder)
    return folder


def t5_tokenizer(folder: Path, corpus: list[str], with_labels: bool = True, vocab_size: int = 120,
                 model_max_length: int = 512) -> int:
    """A SentencePiece unigram model trained on ``corpus`` (plus monoT5's template words), saved as a T5 tokenizer in
    ``folder``; returns its vocabulary size."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus + ["Query: Document: Relevant:"] * 20), model_writer=model,
        vocab_size=vocab_size, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False,
        user_defined_symbols=["▁true", "▁false"] if with_labels else [], minloglevel=2)
    (folder / "spiece.model").write_bytes(model.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "T5Tokenizer", "model_max_length": model_max_length, "extra_ids": 0}))
    return spm.SentencePieceProcessor(model_proto=model.getvalue()).get_piece_size()


def xlmr_tokenizer(corpus: list[str], vocab_size: int = 300):
    """An XLM-R tokenizer (SentencePiece unigram, ``<s> q </s></s> p </s>`` pairs, no token types) trained on
    ``corpus``, with XLM-R's special-token ids (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3)."""
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_writer=model, vocab_size=vocab_size,
                                   model_type="unigram", hard_vocab_limit=False, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    vocab = [(t, 0.0) for t in specials] + [p for p in pieces if p[0] not in specials] + [("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=vocab)


def chatml_tokenizer(chat_template: str | None, corpus: list[str] = CORPUS, vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=CHATML_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # "yes" and "no" alone on a line become whole tokens (no leading-space marker), as in Qwen's vocabulary.
    tok.train_from_iterator(corpus + ["yes", "no"] * 50 + ["[1] > [2] > [3]"] * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=chat_template, model_max_length=4096)


def _qwen3(folder: Path, seed: int, chat_template: str | None) -> Path:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = chatml_tokenizer(chat_template)
    tokenizer.save_pretrained(folder)
    _seeded(seed)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=4096,
                         tie_word_embeddings=False, initializer_range=0.5, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    Qwen3ForCausalLM(config).save_pretrained(folder)
    return folder


def qwen3_reranker(folder: str | Path, seed: int = 0) -> Path:
    return _qwen3(Path(folder), seed, chat_template=None)


def chat_lm(folder: str | Path, seed: int = 0) -> Path:
    return _qwen3(Path(folder), seed, chat_template=ZEPHYR_CHAT_TEMPLATE)


def bos_tokenizer(corpus: list[str] = CORPUS, vocab_size: int = 400):
    """A byte-level BPE tokenizer that adds ``<bos>`` before a text, with Gemma's special-token ids (``<pad>`` 0,
    ``<eos>`` 1, ``<bos>`` 2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>", "<bos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus + ["Yes", "No", "A: B: Given a query"] * 50, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                       special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   model_max_length=8192)


def bge_gemma(folder: str | Path, seed: int = 0) -> Path:
    from transformers import GemmaConfig, GemmaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = bos_tokenizer()
    tokenizer.save_pretrained(folder)
    _seeded(seed)
    config = GemmaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=8192,
                         initializer_range=0.5, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    GemmaForCausalLM(config).save_pretrained(folder)
    return folder


def mxbai_v2(folder: str | Path, seed: int = 0, max_position_embeddings: int = 4096) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = chatml_tokenizer(None, corpus=CORPUS + ["0 1 query: document: Relevance:"] * 20)
    tokenizer.save_pretrained(folder)
    _seeded(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=max_position_embeddings,
                         tie_word_embeddings=False, initializer_range=0.5, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


# The layerwise model's code, written into its folder: a Qwen3 trunk with a one-logit head per layer from
# start_layer on, applied to the (normalised) hidden state after that many layers.
LAYERWISE_CODE = """\
from torch import nn
from transformers import Qwen3Config, Qwen3Model, Qwen3PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast


class TinyLayerwiseConfig(Qwen3Config):
    model_type = "tiny-layerwise"

    def __init__(self, start_layer=1, **kwargs):
        self.start_layer = start_layer
        super().__init__(**kwargs)


class TinyLayerwiseForCausalLM(Qwen3PreTrainedModel):
    config_class = TinyLayerwiseConfig

    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen3Model(config)
        self.lm_head = nn.ModuleList(nn.Linear(config.hidden_size, 1, bias=False)
                                     for _ in range(config.start_layer, config.num_hidden_layers + 1))
        self.post_init()

    def forward(self, input_ids, attention_mask=None, position_ids=None, cutoff_layers=None, use_cache=None,
                **kwargs):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         output_hidden_states=True, use_cache=False)
        layers = cutoff_layers or [self.config.num_hidden_layers]
        logits = tuple(self.lm_head[i - self.config.start_layer](self.model.norm(out.hidden_states[i]))[..., 0]
                       for i in layers)
        return CausalLMOutputWithPast(logits=logits)
"""


def bge_layerwise(folder: str | Path, seed: int = 0) -> Path:
    import importlib.util

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = bos_tokenizer()
    tokenizer.save_pretrained(folder)
    (folder / "layerwise.py").write_text(LAYERWISE_CODE)
    spec = importlib.util.spec_from_file_location("tiny_layerwise_code", folder / "layerwise.py")
    code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(code)
    _seeded(seed)
    config = code.TinyLayerwiseConfig(
        start_layer=1, vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=8192,
        tie_word_embeddings=False, initializer_range=0.5, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    code.TinyLayerwiseForCausalLM(config).save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    saved["auto_map"] = {"AutoConfig": "layerwise.TinyLayerwiseConfig",
                         "AutoModelForCausalLM": "layerwise.TinyLayerwiseForCausalLM"}
    (folder / "config.json").write_text(json.dumps(saved))
    return folder


def llama_chat_lm(folder: str | Path, seed: int = 0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = chatml_tokenizer(ZEPHYR_CHAT_TEMPLATE)
    tokenizer.save_pretrained(folder)
    _seeded(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         tie_word_embeddings=False, initializer_range=0.5, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
