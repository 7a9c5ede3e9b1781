"""UPR, unsupervised passage reranking (Sachan et al., 2022, "Improving Passage Retrieval with Zero-Shot Question
Generation"): a passage's score is the mean log-probability of the question's tokens given the passage and the
instruction "Please write a question based on this passage.", under any causal or sequence-to-sequence LM.

Input and scoring follow the paper's code (DevSinghSachan/unsupervised-passage-reranking): ``upr.py`` for T5/T0
(encoder input ``Passage: {passage}. Please write a question based on this passage.``, at most 512 tokens; decoder
labels: the question, at most 128 tokens with T5's ``</s>``) and ``upr_gpt.py`` for causal LMs (the same prompt's
tokens, then the question's tokens and EOS; the loss is taken on the question and EOS). The paper ranks by the
question's log-likelihood averaged over its tokens; the code sums it. For the passages of one query the two orders
are equal (the question is the same), and the mean is what is reported here as the score.

Where this differs from the code, on purpose: a passage too long for ``max_length`` loses its own tail, never the
instruction (the reference truncates the whole prompt, instruction first); a causal LM's question is tokenised
without the tokenizer's special tokens, so a tokenizer that adds a BOS (Gemma) puts it only before the prompt.

Checkpoints: any transformers causal or seq2seq LM (hub id or folder), or the names of the offline models
(``bench.llm.hf.OFFLINE_MODELS``: SmolLM2-135M-Instruct, Gemma-3-270m), loaded from their packages the way the
readers load them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from bench.errors import UserError
from bench.llm import check_engine_installed
from bench.llm.hf import GEMMA3_NAME, OFFLINE_MODELS, SMOLLM2_NAME
from rerankers.cross_encoder import TransformersPointwise, load_pretrained

INSTRUCTION = "Please write a question based on this passage."
PASSAGE_HEAD = "Passage: "
PASSAGE_MAX_LENGTH = 512     # upr.py / upr_gpt.py
QUESTION_MAX_LENGTH = 128


@dataclass(frozen=True)
class UPROptions:
    instruction: str = INSTRUCTION              # the paper's verbalizer
    passage_head: str = PASSAGE_HEAD            # the paper's verbalizer head
    question_max_length: int = QUESTION_MAX_LENGTH


class UPR(TransformersPointwise):
    """Score = mean log P(question tokens | "Passage: {passage}. {instruction}") under a causal or seq2seq LM."""

    Options = UPROptions

    @classmethod
    def preflight(cls, name, checkpoint, settings) -> None:
        """The offline readers' weights come from their packages (installed, or one line naming the pip command);
        any other checkpoint as every reranker's."""
        offline = {SMOLLM2_NAME: "smollm2", GEMMA3_NAME: "gemma3-270m"}
        if checkpoint in offline:
            check_engine_installed(offline[checkpoint])
        else:
            super().preflight(name, checkpoint, settings)

    def model_path(self) -> str:
        folder = OFFLINE_MODELS.get(self.checkpoint)
        return str(folder(self.settings.cache_dir)) if folder else self.checkpoint

    def load_model(self) -> Any:
        # lazy: torch/transformers load only when a model runs
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        path = self.model_path()
        config = load_pretrained(AutoConfig.from_pretrained, path, trust_remote_code=self.trust_remote_code)
        self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        load = (AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM).from_pretrained
        model = load_pretrained(load, path, dtype=self.dtype, trust_remote_code=self.trust_remote_code)
        # A causal LM scores the question at the end of each row: left padding lines those ends up.
        self.tokenizer.padding_side = "right" if self.seq2seq else "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token     # padded positions are masked out anyway
        if not self.seq2seq and self.tokenizer.eos_token_id is None:
            raise UserError(f"checkpoint {self.checkpoint!r}: its tokenizer has no EOS token, which UPR scores after "
                            f"the question")
        if self.options.question_max_length < 1:
            raise UserError(f"UPR question_max_length {self.options.question_max_length}: expected a positive number")
        return model

    def default_max_length(self) -> int:
        return PASSAGE_MAX_LENGTH

    def identity(self) -> dict:
        return {**super().identity(), "instruction": self.options.instruction, "head": self.options.passage_head,
                "lm": "seq2seq" if self.seq2seq else "causal"}

    def prompt(self, passage: str) -> str:
        return f"{self.options.passage_head}{passage}. {self.options.instruction}"

    def prompt_ids(self, passage: str) -> list[int]:
        """The prompt's tokens (with the tokenizer's special tokens), within ``max_length``: an overlong passage is
        cut at a token boundary, keeping the instruction."""
        ids = self.tokenizer(self.prompt(passage))["input_ids"]
        while len(ids) > self.max_length:
            enc = self.tokenizer(passage, add_special_tokens=False, return_offsets_mapping=True)
            keep = len(enc["input_ids"]) - (len(ids) - self.max_length) - 1   # one spare: tokens merge at the cut
            if keep < 1:
                raise UserError(f"max_length {self.max_length}: UPR's prompt alone takes {len(ids)} tokens")
            passage = passage[:enc["offset_mapping"][keep - 1][1]]
            ids = self.tokenizer(self.prompt(passage))["input_ids"]
        return ids

    def question_ids(self, question: str) -> list[int]:
        limit = self.options.question_max_length
        if self.seq2seq:        # T5's tokenizer ends the labels with </s> itself
            return self.tokenizer(question, truncation=True, max_length=limit)["input_ids"]
        ids = self.tokenizer(question, add_special_tokens=False)["input_ids"][:limit - 1]
        return ids + [self.tokenizer.eos_token_id]

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Any:
        prompts = [self.prompt_ids(p) for p in passages]
        questions = {q: self.question_ids(q) for q in dict.fromkeys(queries)}
        targets = [questions[q] for q in queries]
        if self.seq2seq:
            enc = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt")
            labels = self.tokenizer.pad({"input_ids": targets}, return_tensors="pt")
            enc["labels"] = labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100)
            return enc
        import torch  # lazy: torch/transformers load only when a model runs

        enc = self.tokenizer.pad({"input_ids": [p + t for p, t in zip(prompts, targets)]}, return_tensors="pt")
        enc["target_lengths"] = torch.tensor([len(t) for t in targets])
        return enc

    def score_encoded(self, inputs: Any):
        import torch  # lazy: torch/transformers load only when a model runs

        enc = inputs.to(self.device)
        if self.seq2seq:
            labels = enc["labels"]
            decoder_input_ids = self._model.prepare_decoder_input_ids_from_labels(labels=labels)
            logits = self._model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                 decoder_input_ids=decoder_input_ids, use_cache=False).logits
            mask = labels != -100
            targets = labels.clamp(min=0)
        else:
            # Rows are left-padded, so every row's target (question + EOS) sits at its end: only the last K + 1
            # positions' logits are needed (K: the longest target), the vocabulary-wide tensor stays small.
            lengths = enc["target_lengths"]
            k = int(lengths.max())
            position_ids = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            logits = self._model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                 position_ids=position_ids, logits_to_keep=k + 1, use_cache=False).logits[:, :-1]
            targets = enc["input_ids"][:, -k:]
            mask = torch.arange(k, device=self.device)[None, :] >= (k - lengths)[:, None]
        logits = logits.float()
        token_logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        return (token_logp * mask).sum(-1) / mask.sum(-1)
