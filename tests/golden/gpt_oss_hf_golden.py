#!/usr/bin/env python3
"""Hugging Face layout copies of the tiny gpt-oss checkpoints, and the logits transformers'
GptOssForCausalLM computes for them in float32 with eager attention.

Reads tests/data/gpt_oss/<name>/ (original layout, made by gpt_oss_golden.py) and writes
  <name>_hf/       the layout of the published checkpoints: q/k/v split, MXFP4 experts as
                   *_blocks/*_scales, config.json as on the Hub, two shards and an index;
  <name>_hf_bf16/  experts dequantized to bf16, gate_up_proj [E, H, 2I] and down_proj [E, I, H]
                   (as transformers dequantizes them, integrations/mxfp4.py), config.json as
                   transformers' GptOssConfig.save_pretrained writes it, one file.
Each holds golden.safetensors: the prompt tokens of <name>/golden.safetensors (48), transformers'
logits at every position, and a 24-token greedy continuation by full recomputation.
<name>_hf_bf16/model.safetensors is not committed (three times the MXFP4 copy): the C++ test makes
it again from <name>_hf and checks its bytes against the golden's weights_fnv1a64.
The conversion follows transformers' convert_gpt_oss_weights_to_hf.py; nothing is rounded (MXFP4
values are exact in bf16), so ember can load both copies and must give the original's logits.
  python3 tests/golden/gpt_oss_hf_golden.py [--src DIR] [--out DIR]
"""
import argparse
import inspect
import json
import math
import os
import struct

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
GREEDY_TOKENS = 24


def dequantize(blocks, scales):
    """MXFP4 [.., rows, cols/32, 16] u8 + [.., rows, cols/32] u8 -> [.., rows, cols] f32 (exact)."""
    lut = torch.tensor(FP4_VALUES, dtype=torch.float32)
    lo, hi = lut[(blocks & 0x0F).long()], lut[(blocks >> 4).long()]
    vals = torch.stack([lo, hi], dim=-1).flatten(-2)  # byte j: value 2j low nibble, 2j+1 high
    vals = torch.ldexp(vals, scales.to(torch.int32)[..., None] - 127)
    return vals.flatten(-2)


def weights_fnv1a64(path):
    """FNV-1a (64 bit) over every tensor's name and bytes in name order, read from the file itself.
    The C++ test makes <name>_hf_bf16's weights from <name>_hf and checks they hash the same."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header, base = json.loads(data[8:8 + n]), 8 + n
    h = 0xCBF29CE484222325
    for name in sorted(k for k in header if k != "__metadata__"):
        b, e = header[name]["data_offsets"]
        for byte in name.encode() + data[base + b:base + e]:
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def hf_config(cfg, mxfp4):
    """config.json in transformers' names, as the published gpt-oss checkpoints write it."""
    L = cfg["num_hidden_layers"]
    c = {
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "attention_bias": True,
        "attention_dropout": 0.0,
        "experts_per_token": cfg["experts_per_token"],
        "head_dim": cfg["head_dim"],
        "hidden_act": "silu",
        "hidden_size": cfg["hidden_size"],
        "initial_context_length": cfg["initial_context_length"],
        "intermediate_size": cfg["intermediate_size"],
        "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(L)],
        "max_position_embeddings": int(cfg["initial_context_length"] * cfg["rope_scaling_factor"]),
        "num_attention_heads": cfg["num_attention_heads"],
        "num_experts_per_tok": cfg["experts_per_token"],
        "num_hidden_layers": L,
        "num_key_value_heads": cfg["num_key_value_heads"],
        "num_local_experts": cfg["num_experts"],
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"beta_fast": float(cfg["rope_ntk_beta"]), "beta_slow": float(cfg["rope_ntk_alpha"]),
                         "factor": float(cfg["rope_scaling_factor"]),
                         "original_max_position_embeddings": cfg["initial_context_length"], "rope_type": "yarn",
                         "truncate": False},
        "rope_theta": cfg["rope_theta"],
        "sliding_window": cfg["sliding_window"],
        "swiglu_limit": cfg["swiglu_limit"],
        "tie_word_embeddings": False,
        "use_cache": True,
        "vocab_size": cfg["vocab_size"],
    }
    if mxfp4:
        c["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
            "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    return c


def convert(orig, cfg, mxfp4):
    """Original-layout tensors -> transformers' names (see convert_gpt_oss_weights_to_hf.py)."""
    Q, KV = cfg["head_dim"] * cfg["num_attention_heads"], cfg["head_dim"] * cfg["num_key_value_heads"]
    t = {"model.embed_tokens.weight": orig["embedding.weight"], "model.norm.weight": orig["norm.scale"],
         "lm_head.weight": orig["unembedding.weight"]}
    for n in range(cfg["num_hidden_layers"]):
        o, p = f"block.{n}.", f"model.layers.{n}."
        for proj, lo, hi in (("q", 0, Q), ("k", Q, Q + KV), ("v", Q + KV, Q + 2 * KV)):
            t[p + f"self_attn.{proj}_proj.weight"] = orig[o + "attn.qkv.weight"][lo:hi].contiguous()
            t[p + f"self_attn.{proj}_proj.bias"] = orig[o + "attn.qkv.bias"][lo:hi].contiguous()
        t[p + "self_attn.o_proj.weight"] = orig[o + "attn.out.weight"]
        t[p + "self_attn.o_proj.bias"] = orig[o + "attn.out.bias"]
        t[p + "self_attn.sinks"] = orig[o + "attn.sinks"]
        t[p + "input_layernorm.weight"] = orig[o + "attn.norm.scale"]
        t[p + "post_attention_layernorm.weight"] = orig[o + "mlp.norm.scale"]
        t[p + "mlp.router.weight"] = orig[o + "mlp.gate.weight"]
        t[p + "mlp.router.bias"] = orig[o + "mlp.gate.bias"]
        t[p + "mlp.experts.gate_up_proj_bias"] = orig[o + "mlp.mlp1_bias"]
        t[p + "mlp.experts.down_proj_bias"] = orig[o + "mlp.mlp2_bias"]
        for hf, og in (("gate_up_proj", "mlp1_weight"), ("down_proj", "mlp2_weight")):
            blocks, scales = orig[o + f"mlp.{og}.blocks"], orig[o + f"mlp.{og}.scales"]
            if mxfp4:  # same bytes, same [E, out, in/32, 16] layout, new names
                t[p + f"mlp.experts.{hf}_blocks"] = blocks
                t[p + f"mlp.experts.{hf}_scales"] = scales
            else:  # logical [E, out, in] -> transformers' [E, in, out] (x @ W)
                t[p + f"mlp.experts.{hf}"] = dequantize(blocks, scales).transpose(1, 2).to(torch.bfloat16).contiguous()
    return t


def save_sharded(tensors, d, shards=2):
    """model-0000k-of-0000n.safetensors + model.safetensors.index.json, as save_pretrained shards."""
    names = sorted(tensors, key=lambda k: (k.startswith("model.layers.") and int(k.split(".")[2]), k))
    per = math.ceil(len(names) / shards)
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
             "weight_map": {}}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: tensors[k] for k in names[s * per:(s + 1) * per]}
        save_file(part, os.path.join(d, fname), metadata={"format": "pt"})
        index["weight_map"].update({k: fname for k in part})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)


def load_hf(d, mxfp4):
    from transformers import GptOssForCausalLM
    kw = {"attn_implementation": "eager", "output_loading_info": True}
    if mxfp4:  # no triton kernels here: transformers' own dequantization to bf16 (exact), then f32
        from transformers import Mxfp4Config
        kw["quantization_config"] = Mxfp4Config(dequantize=True)
    try:
        model, info = GptOssForCausalLM.from_pretrained(d, dtype=torch.float32, **kw)
    except TypeError:
        model, info = GptOssForCausalLM.from_pretrained(d, torch_dtype=torch.float32, **kw)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    assert not bad, f"{d}: transformers did not load every tensor: {bad}"
    model = model.float().eval()
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, (name, p.dtype)
    return model


def run(model, tokens):
    with torch.inference_mode():
        logits = model(input_ids=tokens[None], use_cache=False).logits[0].float()
        seq = tokens.tolist()
        for _ in range(GREEDY_TOKENS):  # full recomputation per token, no cache
            seq.append(int(model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].argmax()))
    return logits, seq[len(tokens):]


def original_inv_freq(cfg):
    """gpt_oss/torch/model.py's YaRN frequencies, to show what transformers computes against them."""
    d, base, s = cfg["head_dim"], cfg["rope_theta"], cfg["rope_scaling_factor"]
    freq = base ** (torch.arange(0, d, 2, dtype=torch.float) / d)
    L0, a, b = cfg["initial_context_length"], cfg["rope_ntk_alpha"], cfg["rope_ntk_beta"]
    low = d / 2 * math.log(L0 / (b * 2 * math.pi)) / math.log(base)
    high = d / 2 * math.log(L0 / (a * 2 * math.pi)) / math.log(base)
    ramp = ((torch.arange(d // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    mask = 1 - ramp
    return (1 / (s * freq)) * (1 - mask) + (1 / freq) * mask, 0.1 * math.log(s) + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(ROOT, "tests", "data", "gpt_oss"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "gpt_oss"))
    args = ap.parse_args()
    torch.manual_seed(0)
    import transformers
    print("transformers", transformers.__version__, "torch", torch.__version__)
    try:
        from transformers.integrations import mxfp4 as hf_mxfp4
    except Exception as e:  # noqa: BLE001
        hf_mxfp4 = None
        print("no transformers.integrations.mxfp4:", e)
    for name in ("tiny_a", "tiny_b"):
        src = os.path.join(args.src, name)
        cfg = json.load(open(os.path.join(src, "config.json")))
        orig = load_file(os.path.join(src, "model.safetensors"))
        ref = load_file(os.path.join(src, "golden.safetensors"))  # OpenAI's torch reference, float32
        tokens = ref["tokens"].to(torch.int64)
        if hf_mxfp4 is not None:  # our dequantization against transformers' own
            b, s = orig["block.0.mlp.mlp1_weight.blocks"], orig["block.0.mlp.mlp1_weight.scales"]
            theirs = hf_mxfp4.convert_moe_packed_tensors(b, s, dtype=torch.bfloat16).cpu()
            mine = dequantize(b, s).transpose(1, 2).to(torch.bfloat16)
            print(name, "dequantization equals transformers' convert_moe_packed_tensors:", torch.equal(theirs, mine))
        results = {}
        for variant, mxfp4 in (("hf", True), ("hf_bf16", False)):
            d = os.path.join(args.out, f"{name}_{variant}")
            os.makedirs(d, exist_ok=True)
            tensors = convert(orig, cfg, mxfp4)
            if mxfp4:
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump(hf_config(cfg, True), f, indent=2, sort_keys=True)
                save_sharded(tensors, d)
            else:
                from transformers import GptOssConfig
                GptOssConfig(**hf_config(cfg, False)).save_pretrained(d)
                save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
            model = load_hf(d, mxfp4)
            if variant == "hf":
                rot = getattr(model.model, "rotary_emb", None) or model.model.layers[0].self_attn.rotary_emb
                inv, conc = original_inv_freq(cfg)
                print(name, "rope inv_freq max rel diff vs gpt_oss/torch:",
                      float(((rot.inv_freq.float() - inv) / inv).abs().max()), "attention_scaling",
                      rot.attention_scaling, "vs concentration", conc)
                e0 = model.model.layers[0].mlp.experts
                print(name, "experts class", type(e0).__name__, "gate_up_proj", tuple(e0.gate_up_proj.shape))
            logits, greedy = run(model, tokens)
            results[variant] = logits
            rl = ref["logits"].float()
            print(f"{name}_{variant}: logits {tuple(logits.shape)} max|logit| {float(logits.abs().max()):.4f}",
                  f"max|d| vs OpenAI torch reference {float((logits - rl).abs().max()):.3e}",
                  "argmax equal", bool((logits.argmax(-1) == rl.argmax(-1)).all()),
                  "greedy equal", greedy == ref["greedy"].tolist(), "greedy", greedy)
            meta = {"generator": "tests/golden/gpt_oss_hf_golden.py",
                    "reference": f"transformers {transformers.__version__} GptOssForCausalLM float32 eager"}
            if not mxfp4:
                meta["weights_fnv1a64"] = weights_fnv1a64(os.path.join(d, "model.safetensors"))
                print(f"{name}_{variant}: weights_fnv1a64", meta["weights_fnv1a64"])
            save_file({"tokens": tokens, "logits": logits.contiguous(), "greedy": torch.tensor(greedy, dtype=torch.int64)},
                      os.path.join(d, "golden.safetensors"), metadata=meta)
        print(name, "max|d| hf vs hf_bf16:", float((results["hf"] - results["hf_bf16"]).abs().max()))
    from transformers.models.gpt_oss import modeling_gpt_oss
    try:
        from transformers import modeling_rope_utils
        src = inspect.getsource(modeling_rope_utils._compute_yarn_parameters)
        print("\n".join(l for l in src.splitlines() if "truncate" in l or "original_max" in l or "factor =" in l))
    except Exception as e:  # noqa: BLE001
        print("no yarn source:", e)
    src = inspect.getsource(modeling_gpt_oss)
    print("\n".join(l for l in src.splitlines() if "limit" in l or "sliding" in l)[:3000])


if __name__ == "__main__":
    main()
