#!/usr/bin/env python3
"""Goldens for ember's building blocks, produced by running the public reference code.

References (staged unmodified under .ref/ by tests/golden/stage_refs.sh, never committed):
  - openai/gpt-oss gpt_oss/torch/model.py: RotaryEmbedding (YaRN), sdpa (sinks, window, GQA)
  - Wan-Video/Wan2.1 wan/modules/model.py: rope_params, rope_apply (3D RoPE)
  - transformers (installed): BLOOM's build_alibi_tensor (ALiBi slopes), logits processors
Writes tests/data/nn/primitives_golden.safetensors (float32 unless noted).
Run where torch, safetensors and transformers are installed:
  python3 tests/golden/primitives_golden.py [--out tests/data/nn]
"""
import argparse
import ast
import math
import os
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = os.path.join(ROOT, ".ref")
sys.path.insert(0, REF)

from gpt_oss.torch.model import RotaryEmbedding, sdpa  # noqa: E402


def load_functions(path, names):
    """Runs the named top-level functions of a reference file without importing its module
    (Wan's model.py imports flash-attention and diffusers, which the functions do not need)."""
    src = open(path).read()
    tree = ast.parse(src)
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    for n in keep:  # drop @amp.autocast decorators: they only disable autocast
        n.decorator_list = []
    ns = {"torch": torch, "math": math}
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), ns)
    return [ns[n] for n in names]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "nn"))
    args = ap.parse_args()
    torch.manual_seed(1234)
    g = {}

    # --- YaRN RoPE, gpt-oss parameters (head_dim 64, theta 150000, factor 32) ---
    rope = RotaryEmbedding(64, 150000, torch.float32, initial_context_length=4096,
                           scaling_factor=32.0, ntk_alpha=1.0, ntk_beta=32.0, device="cpu")
    conc, inv = rope._compute_concentration_and_inv_freq()
    g["yarn.inv_freq"] = inv.float()
    g["yarn.concentration"] = torch.tensor([conc], dtype=torch.float32)
    cos, sin = rope._compute_cos_sin(4200)
    rows = torch.tensor(list(range(0, 16)) + list(range(1000, 1008)) + list(range(4190, 4200)))
    g["yarn.rows"] = rows.to(torch.int64)
    g["yarn.cos"] = cos[rows].contiguous()
    g["yarn.sin"] = sin[rows].contiguous()
    # Application to q [tokens, kv_heads, q_mult, 64] and k [tokens, kv_heads, 64].
    q = torch.randn(12, 2, 3, 64)
    k = torch.randn(12, 2, 64)
    qo, ko = rope(q.clone(), k.clone())
    g["yarn.q"], g["yarn.k"], g["yarn.q_out"], g["yarn.k_out"] = q, k, qo, ko

    # --- plain RoPE (no scaling), head_dim 32, theta 10000 ---
    plain = RotaryEmbedding(32, 10000, torch.float32, scaling_factor=1.0, device="cpu")
    _, inv = plain._compute_concentration_and_inv_freq()
    g["plain.inv_freq"] = inv.float()
    x = torch.randn(9, 4, 32)
    xo, _ = plain(x.clone(), x[:, :1].clone())
    g["plain.x"], g["plain.x_out"] = x, xo

    # --- 3D RoPE (Wan): head_dim 48 -> split (16, 16, 16); grid f=3, h=4, w=5 ---
    rope_params, rope_apply = load_functions(os.path.join(REF, "wan", "model.py"),
                                             ["rope_params", "rope_apply"])
    d = 48
    freqs = torch.cat([rope_params(1024, d - 4 * (d // 6)), rope_params(1024, 2 * (d // 6)),
                       rope_params(1024, 2 * (d // 6))], dim=1)
    f, h, w = 3, 4, 5
    x3 = torch.randn(1, f * h * w, 2, d)
    out3 = rope_apply(x3, torch.tensor([[f, h, w]]), freqs)
    g["rope3d.x"], g["rope3d.out"] = x3[0], out3[0].float()

    # --- SDPA with learned sinks, sliding window and GQA (gpt-oss sdpa) ---
    T, KV, M, D = 24, 2, 3, 16
    Q, K, V = torch.randn(T, KV, M, D), torch.randn(T, KV, D), torch.randn(T, KV, D)
    S = torch.randn(KV * M)
    g["sdpa.q"], g["sdpa.k"], g["sdpa.v"], g["sdpa.sinks"] = Q, K, V, S
    g["sdpa.out_full"] = sdpa(Q, K, V, S, 0.25, 0)
    g["sdpa.out_window5"] = sdpa(Q, K, V, S, 0.25, 5)
    # With an additive bias [heads, T, T] too: an explicit torch computation in the reference's
    # steps (scores, mask, bias, sink column, softmax, drop the sink, weighted V).
    Bias = torch.randn(KV * M, T, T)
    Ke = K[:, :, None, :].expand(-1, -1, M, -1)
    Ve = V[:, :, None, :].expand(-1, -1, M, -1)
    qk = torch.einsum("qhmd,khmd->hmqk", Q, Ke) * 0.25 + Bias.view(KV, M, T, T)
    mask = torch.triu(qk.new_full((T, T), -float("inf")), diagonal=1) + torch.tril(qk.new_full((T, T), -float("inf")), diagonal=-5)
    qk = torch.cat([qk + mask, S.reshape(KV, M, 1, 1).expand(-1, -1, T, -1)], dim=-1)
    w = torch.softmax(qk, dim=-1)[..., :-1]
    g["sdpa.bias"] = Bias
    g["sdpa.out_window5_bias"] = torch.einsum("hmqk,khmd->qhmd", w, Ve).reshape(T, -1)

    # --- linear attention: explicit torch computation (feature maps, padding, causal prefix sums) ---
    F_ = torch.nn.functional
    lq, lk, lv = torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 3)
    pad = torch.tensor([[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 1]], dtype=torch.bool)
    g["linattn.q"], g["linattn.k"], g["linattn.v"], g["linattn.pad"] = lq, lk, lv, pad.to(torch.uint8)
    keep = (~pad)[:, None, :, None].float()
    for name, phi in (("elu", lambda x: F_.elu(x) + 1), ("relu", F_.relu)):
        fq, fk, vv = phi(lq), phi(lk) * keep, lv * keep
        kv = torch.einsum("bhtd,bhte->bhde", fk, vv)
        z = fk.sum(2)
        g[f"linattn.{name}.full"] = torch.einsum("bhtd,bhde->bhte", fq, kv) / (
            torch.einsum("bhtd,bhd->bht", fq, z)[..., None] + 1e-6)
        kvc = torch.cumsum(torch.einsum("bhtd,bhte->bhtde", fk, vv), 2)
        zc = torch.cumsum(fk, 2)
        g[f"linattn.{name}.causal"] = torch.einsum("bhtd,bhtde->bhte", fq, kvc) / (
            torch.einsum("bhtd,bhtd->bht", fq, zc)[..., None] + 1e-6)

    # --- ALiBi slopes (transformers' BLOOM implementation) ---
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor
    for heads in (5, 8, 12, 16, 24, 64):
        alibi = build_alibi_tensor(torch.ones(1, 4), heads, torch.float32)  # [heads, 1, 4]
        g[f"alibi.slopes{heads}"] = alibi[:, 0, 1].contiguous()

    # --- patch embedding / unpatchify (torch.nn.functional conv and transposed conv) ---
    F = torch.nn.functional
    x2 = torch.randn(2, 3, 8, 12)
    w2, b2 = torch.randn(10, 3, 4, 4), torch.randn(10)
    g["patch2d.x"], g["patch2d.w"], g["patch2d.b"] = x2, w2, b2
    g["patch2d.out"] = F.conv2d(x2, w2, b2, stride=4).flatten(2).transpose(1, 2).contiguous()
    t2 = torch.randn(2, 6, 10)  # tokens [B, N = 2*3, D]
    wt2, bt2 = torch.randn(10, 3, 4, 4), torch.randn(3)
    g["unpatch2d.tokens"], g["unpatch2d.w"], g["unpatch2d.b"] = t2, wt2, bt2
    g["unpatch2d.out"] = F.conv_transpose2d(t2.transpose(1, 2).reshape(2, 10, 2, 3), wt2, bt2, stride=4)
    x3 = torch.randn(1, 2, 4, 6, 4)
    w3, b3 = torch.randn(5, 2, 2, 3, 2), torch.randn(5)
    g["patch3d.x"], g["patch3d.w"], g["patch3d.b"] = x3, w3, b3
    g["patch3d.out"] = F.conv3d(x3, w3, b3, stride=(2, 3, 2)).flatten(2).transpose(1, 2).contiguous()
    t3 = torch.randn(1, 8, 5)  # grid (2, 2, 2)
    wt3, bt3 = torch.randn(5, 2, 2, 3, 2), torch.randn(2)
    g["unpatch3d.tokens"], g["unpatch3d.w"], g["unpatch3d.b"] = t3, wt3, bt3
    g["unpatch3d.out"] = F.conv_transpose3d(t3.transpose(1, 2).reshape(1, 5, 2, 2, 2), wt3, bt3,
                                            stride=(2, 3, 2))

    # --- logits processors (transformers), applied in ember's order ---
    from transformers.generation.logits_process import (MinPLogitsWarper,
                                                        RepetitionPenaltyLogitsProcessor,
                                                        TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)
    logits = torch.randn(1, 64) * 3
    history = torch.tensor([[3, 9, 9, 17, 40, 63, 3]])
    g["sampler.logits"], g["sampler.history"] = logits[0], history[0].to(torch.int64)
    x = RepetitionPenaltyLogitsProcessor(1.3)(history, logits.clone())
    g["sampler.after_repetition"] = x[0]
    x = TemperatureLogitsWarper(0.7)(history, x)
    g["sampler.after_temperature"] = x[0]
    x = TopKLogitsWarper(20)(history, x)
    g["sampler.after_top_k"] = x[0]
    x = TopPLogitsWarper(0.8)(history, x)
    g["sampler.after_top_p"] = x[0]
    x = MinPLogitsWarper(0.05)(history, x)
    g["sampler.after_min_p"] = x[0]
    y = MinPLogitsWarper(0.2, min_tokens_to_keep=3)(history, logits.clone())
    g["sampler.min_p_only"] = y[0]
    y = TopPLogitsWarper(0.3, min_tokens_to_keep=2)(history, logits.clone())
    g["sampler.top_p_only"] = y[0]

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "primitives_golden.safetensors")
    save_file({k: v.contiguous() for k, v in g.items()}, path,
              metadata={"generator": "tests/golden/primitives_golden.py"})
    print("wrote", path, sum(v.numel() * v.element_size() for v in g.values()), "bytes")


if __name__ == "__main__":
    main()
