"""benchmarks/gpu_throughput.py: the FLOP formula against hand-computed values and torch's FLOP counter, and the
whole script on a CPU with tiny shapes."""
import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import (Qwen3Config, Qwen3ForCausalLM, T5Config, T5ForConditionalGeneration, XLMRobertaConfig,
                          XLMRobertaForSequenceClassification)

from benchmarks import gpu_throughput
from benchmarks.gpu_throughput import COLUMNS, pair_flops

# Attention widths differ from the hidden size (T5: 2 heads x 8 = 16, Qwen3: 2 heads x 24 = 48, one KV head) so that
# a formula using the wrong width fails.
CONFIGS = {
    "xlm-roberta": (XLMRobertaForSequenceClassification, XLMRobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, type_vocab_size=1, num_labels=1, pad_token_id=1), {}),
    "t5": (T5ForConditionalGeneration, T5Config(
        vocab_size=100, d_model=32, d_ff=64, d_kv=8, num_heads=2, num_layers=2, feed_forward_proj="relu",
        decoder_start_token_id=0, pad_token_id=0), {"decoder_input_ids": torch.zeros(1, 1, dtype=torch.long)}),
    "qwen3": (Qwen3ForCausalLM, Qwen3Config(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=24), {"logits_to_keep": 1}),
}
# One pair of 10 tokens, by hand:
HAND_FLOPS = {
    # per layer: linear 2*10*(4*32*32 + 2*32*64) = 163840, attention 4*10^2*32 = 12800; x2 layers;
    # head 2*(32*32 + 32*1) = 2112
    "xlm-roberta": 2 * (163840 + 12800) + 2112,
    # encoder layer: 2*10*(4*32*16 + 2*32*64) = 122880 + 4*10^2*16 = 6400; decoder layer (one step):
    # 2*(4*32*16 + 2*32*16 + 2*32*64) = 14336, self scores 4*16 = 64, cross k/v 2*10*2*32*16 = 20480,
    # cross scores 4*10*16 = 640; LM head 2*32*100 = 6400
    "t5": 2 * (122880 + 6400) + 2 * (14336 + 64 + 20480 + 640) + 6400,
    # per layer: linear 2*10*(2*32*48 + 2*32*24 + 3*32*64) = 215040, attention 4*10^2*48 = 19200;
    # LM head on the last position 2*32*100 = 6400
    "qwen3": 2 * (215040 + 19200) + 6400,
}


def counted_flops(family: str, n_tokens: int) -> int:
    """FLOPs torch counts in a real forward pass of one unpadded pair (eager attention: its matmuls are counted)."""
    model_class, config, extra = CONFIGS[family]
    torch.manual_seed(0)
    model = model_class._from_config(config, attn_implementation="eager").eval()
    ids = torch.arange(3, 3 + n_tokens).unsqueeze(0)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
    return counter.get_total_flops()


@pytest.mark.parametrize("family", list(CONFIGS))
def test_pair_flops_equal_hand_computed_values_and_torch_flop_counter(family):
    config = CONFIGS[family][1]
    assert pair_flops(config, 10) == HAND_FLOPS[family]
    assert counted_flops(family, 10) == HAND_FLOPS[family]
    assert pair_flops(config, 37) == counted_flops(family, 37)


def test_mask_recorder_counts_real_and_padded_tokens_then_unwraps():
    model_class, config, _ = CONFIGS["xlm-roberta"]
    model = model_class(config).eval()
    recorder = gpu_throughput.MaskRecorder(model)
    ids = torch.full((2, 5), 7)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]))
        model(input_ids=ids[:1, :3], attention_mask=torch.ones(1, 3, dtype=torch.long))
    assert recorder.lengths() == [5, 2, 3] and recorder.padded() == 13
    recorder.remove()
    assert "forward" not in vars(model)


@pytest.mark.parametrize("family, blocks", [("xlm-roberta", 2), ("t5", 4), ("qwen3", 2)])
def test_compile_blocks_finds_every_transformer_block(family, blocks):
    model_class, config, _ = CONFIGS[family]
    model = model_class(config)
    assert gpu_throughput.compile_blocks(model) == blocks     # T5: 2 encoder + 2 decoder blocks


def test_peak_table_prefers_the_specific_name():
    assert gpu_throughput.peak_tflops("cpu", None) == (None, "cpu")
    assert gpu_throughput.peak_tflops("cpu", 2.5) == (2.5, "cpu")
    table = dict(gpu_throughput.PEAK_BF16_TFLOPS)
    names = [k for k, _ in gpu_throughput.PEAK_BF16_TFLOPS]
    assert names.index("H100 PCIe") < names.index("H100") and names.index("L40S") < names.index("L4")
    assert table["H100"] == table["H200"] == 989.0 and table["A100"] == 312.0


def test_cuda_without_cuda_is_a_one_line_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit, match="CUDA is not available"):
        gpu_throughput.main(["--device", "cuda"])


def test_tiny_run_on_cpu_writes_the_table(tmp_path, capsys):
    out = tmp_path / "table.csv"
    assert gpu_throughput.main(["--device", "cpu", "--tiny", "--pairs", "20", "--candidates", "10", "--lengths",
                                "full", "--max-length", "48", "--baselines", "sentence-transformers",
                                "--peak-tflops", "0.5", "--prefetch", "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == COLUMNS
    assert [(r.model, r.implementation) for r in table.itertuples()] == [
        ("xlmr-large", "ours"), ("xlmr-large", "ours +prefetch"),
        ("xlmr-large", "sentence-transformers CrossEncoder.predict"),
        ("t5-base", "ours"), ("t5-base", "ours +prefetch"), ("t5-large", "ours"), ("t5-large", "ours +prefetch"),
        ("qwen3-0.6b", "ours"), ("qwen3-0.6b", "ours +prefetch")]
    assert (table.pairs == 20).all() and (table.dtype == "float32").all() and (table.attention == "sdpa").all()
    # --lengths full: every pair is truncated to --max-length on every side, so no batch is padded
    assert (table.mean_tokens == 48).all() and (table.padding == 0).all()
    assert table.pairs_per_s.tolist() == pytest.approx((table.pairs / table.seconds).tolist())
    assert table.mfu.tolist() == pytest.approx((table.tflops / 0.5).tolist())
    # the same checkpoint on every row of a model: the same rankings (fp32); the speed ratio is our fastest over it
    ours, prefetched, st = table.iloc[0], table.iloc[1], table.iloc[2]
    assert ours.same_top10 == "" and prefetched.same_top10 == st.same_top10 == "2/2"
    assert st.params_m == ours.params_m
    fastest = max(ours.pairs_per_s, prefetched.pairs_per_s)
    assert st.ours_speedup == pytest.approx(fastest / st.pairs_per_s)
    assert min(ours.ours_speedup, prefetched.ours_speedup) == 1.0
    # FLOPs follow from the token counts: 20 pairs of 48 tokens
    xlmr = table.iloc[0]
    config = XLMRobertaConfig.from_dict({**gpu_throughput.ARCHITECTURES["xlmr-large"].tiny, "num_labels": 1})
    assert xlmr.tflops == pytest.approx(20 * pair_flops(config, 48) / xlmr.seconds / 1e12, rel=1e-3)
    assert "| xlmr-large" in capsys.readouterr().out
