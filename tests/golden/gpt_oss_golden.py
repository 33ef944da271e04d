#!/usr/bin/env python3
"""Tiny gpt-oss checkpoints in the original layout and the logits OpenAI's torch reference
(gpt_oss/torch/model.py, staged unmodified in .ref/) computes for them in float32.

For each configuration writes tests/data/gpt_oss/<name>/{config.json, model.safetensors,
golden.safetensors}: the golden file holds the prompt tokens, the logits at every position and a
greedy continuation computed the reference's way (full recomputation per token).
  python3 tests/golden/gpt_oss_golden.py [--out DIR]
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, ".ref"))
from gpt_oss.torch.model import Transformer  # noqa: E402

CONFIGS = {
    # 4 layers (windowed and full), window 8 < 48 tokens, 8 experts, GQA 4/2, head_dim 16
    "tiny_a": dict(num_hidden_layers=4, num_experts=8, experts_per_token=4, vocab_size=300, hidden_size=64,
                   intermediate_size=64, swiglu_limit=7.0, head_dim=16, num_attention_heads=4,
                   num_key_value_heads=2, sliding_window=8, initial_context_length=4096, rope_theta=150000.0,
                   rope_scaling_factor=32.0, rope_ntk_alpha=1.0, rope_ntk_beta=32.0),
    # 4 layers, 12 experts, GQA 6/2, head_dim 32, window 16, a narrower MLP
    "tiny_b": dict(num_hidden_layers=4, num_experts=12, experts_per_token=4, vocab_size=256, hidden_size=96,
                   intermediate_size=32, swiglu_limit=7.0, head_dim=32, num_attention_heads=6,
                   num_key_value_heads=2, sliding_window=16, initial_context_length=4096, rope_theta=150000.0,
                   rope_scaling_factor=32.0, rope_ntk_alpha=1.0, rope_ntk_beta=32.0),
}


def make_checkpoint(cfg, gen):
    H, I, E, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_experts"], cfg["vocab_size"]
    Q, KV = cfg["head_dim"] * cfg["num_attention_heads"], cfg["head_dim"] * cfg["num_key_value_heads"]
    bf = lambda *s, std=1.0: (torch.randn(*s, generator=gen) * std).to(torch.bfloat16)
    t = {"embedding.weight": bf(V, H), "norm.scale": (1 + 0.1 * torch.randn(H, generator=gen)).to(torch.bfloat16),
         "unembedding.weight": bf(V, H, std=0.2)}
    for n in range(cfg["num_hidden_layers"]):
        p = f"block.{n}."
        t[p + "attn.norm.scale"] = (1 + 0.1 * torch.randn(H, generator=gen)).to(torch.bfloat16)
        t[p + "attn.qkv.weight"] = bf(Q + 2 * KV, H, std=0.15)
        t[p + "attn.qkv.bias"] = bf(Q + 2 * KV, std=0.1)
        t[p + "attn.sinks"] = bf(cfg["num_attention_heads"])
        t[p + "attn.out.weight"] = bf(H, Q, std=0.1)
        t[p + "attn.out.bias"] = bf(H, std=0.1)
        t[p + "mlp.norm.scale"] = (1 + 0.1 * torch.randn(H, generator=gen)).to(torch.bfloat16)
        t[p + "mlp.gate.weight"] = bf(E, H, std=0.3)
        t[p + "mlp.gate.bias"] = bf(E, std=0.1)
        t[p + "mlp.mlp1_weight.blocks"] = torch.randint(0, 256, (E, 2 * I, H // 32, 16), generator=gen, dtype=torch.uint8)
        t[p + "mlp.mlp1_weight.scales"] = torch.randint(121, 126, (E, 2 * I, H // 32), generator=gen, dtype=torch.uint8)
        t[p + "mlp.mlp1_bias"] = bf(E, 2 * I, std=0.1)
        t[p + "mlp.mlp2_weight.blocks"] = torch.randint(0, 256, (E, H, I // 32, 16), generator=gen, dtype=torch.uint8)
        t[p + "mlp.mlp2_weight.scales"] = torch.randint(121, 126, (E, H, I // 32), generator=gen, dtype=torch.uint8)
        t[p + "mlp.mlp2_bias"] = bf(E, H, std=0.1)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "gpt_oss"))
    args = ap.parse_args()
    for name, cfg in CONFIGS.items():
        gen = torch.Generator().manual_seed(2024 + len(name) + cfg["hidden_size"])
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        save_file(make_checkpoint(cfg, gen), os.path.join(d, "model.safetensors"))
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        model = Transformer.from_checkpoint(d, device="cpu").float()
        tokens = torch.randint(0, cfg["vocab_size"], (48,), generator=gen)
        with torch.inference_mode():
            logits = model(tokens)
            seq = tokens.tolist()
            for _ in range(24):  # greedy, full recomputation per token as the reference generator does
                seq.append(int(model(torch.tensor(seq))[-1].argmax()))
        save_file({"tokens": tokens.to(torch.int64), "logits": logits.float().contiguous(),
                   "greedy": torch.tensor(seq[48:], dtype=torch.int64)},
                  os.path.join(d, "golden.safetensors"), metadata={"generator": "tests/golden/gpt_oss_golden.py"})
        print(name, "logits", tuple(logits.shape), "max |logit|", float(logits.abs().max()), "greedy", seq[48:])


if __name__ == "__main__":
    main()
