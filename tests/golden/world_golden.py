"""Goldens for ember's world model (tests/world/model_test.cpp) from the PyTorch definition in
tests/golden/world/model.py.

A seeded tiny random-weight model; fixed clip, noise and actions; outputs:
  golden.full_v      full block-causal forward (flow prediction) with per-frame timesteps
  golden.sample_x0   few-step sampling block by block (Matrix-Game-2's inference loop: predict x0,
                     re-noise to the next sigma with given noise, last step keeps x0; then the
                     block joins the context at t = 0). The reference recomputes the whole clip
                     with the block-causal mask at every step, so it never uses a KV cache.
Weights and inputs are stored as f16 (their values are what both sides use), outputs as f32.
Writes world_golden.safetensors (committed as tests/data/world/) and world_debug.safetensors
(per-block activations, for debugging only) into the directory given as argv[1].

Run: python3 tests/golden/world_golden.py OUTDIR   (CPU is enough; pure torch)
"""
import json
import os
import struct
import sys
from dataclasses import asdict

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "world"))
from model import ActionConfig, WorldConfig, WorldModel  # noqa: E402

DT = {torch.float32: "F32", torch.float16: "F16"}


def save_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def tiny_config(camera_heads=0, camera_pan=0.0):
    return WorldConfig(in_channels=3, out_channels=3, patch=(1, 4, 4), dim=32, ffn_dim=64,
                       freq_dim=16, heads=2, layers=2, frames_per_block=2, local_attn_frames=4,
                       sink_frames=1, camera_heads=camera_heads, camera_pan=camera_pan,
                       action=ActionConfig(keyboard_dim=5, mouse_dim=2, hidden_size=16,
                                           keyboard_hidden_dim=16, mouse_hidden_dim=16, heads=2,
                                           windows_size=3, frames_per_latent=1, rope_theta=256.0,
                                           rope_split=(4, 2, 2), blocks=(0, 1)))


def main():
    out_dir = sys.argv[1]
    write(out_dir, "world_golden.safetensors", tiny_config(), 1)
    # One of the two heads camera-aware, two clips with different mice (per-row world positions).
    write(out_dir, "world_golden_camera.safetensors", tiny_config(1, 40.0), 2)


def write(out_dir, file_name, cfg, batch):
    torch.manual_seed(0)
    model = WorldModel(cfg).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name or "mouse_mlp.3" in name):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            p.copy_(p.half().float())  # the stored f16 values are the weights
    F, H, W, K = 6, 16, 16, cfg.action.keyboard_dim
    g = torch.Generator().manual_seed(1)
    h16 = lambda t: t.half().float()  # noqa: E731
    B = batch
    clip = h16(torch.randn(B, 3, F, H, W, generator=g))
    noise0 = h16(torch.randn(B, 3, F, H, W, generator=g))
    noise1 = h16(torch.randn(B, 3, F, H, W, generator=g))
    n_raw = cfg.action.frames_per_latent * (F - 1) + 1
    keyboard = (torch.rand(B, n_raw, K, generator=g) < 0.4).float()
    mouse = h16(0.3 * torch.randn(B, n_raw, 2, generator=g))
    t_full = torch.tensor([0.0, 100.0, 300.0, 400.0, 750.0, 900.0])
    sigmas = [1.0, 0.5]

    debug = {}
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: debug.__setitem__(f"debug.block{k}", o.clone()))
             for k, b in enumerate(model.blocks)]
    with torch.no_grad():
        full_v = model(clip, t_full, mouse, keyboard)
        for h in hooks:
            h.remove()
        fpb = cfg.frames_per_block
        ctx = clip[:, :, :0]
        outs = []
        for f0 in range(0, F, fpb):
            x = noise0[:, :, f0:f0 + fpb]
            for i, s in enumerate(sigmas):
                t = torch.tensor([0.0] * f0 + [s * 1000.0] * fpb)
                v = model(torch.cat([ctx, x], dim=2), t, mouse, keyboard)[:, :, f0:]
                x0 = x - s * v
                if i + 1 < len(sigmas):
                    sn = sigmas[i + 1]
                    x = (1 - sn) * x0 + sn * noise1[:, :, f0:f0 + fpb]
            outs.append(x0)
            ctx = torch.cat([ctx, x0], dim=2)
        sample_x0 = torch.cat(outs, dim=2)

    meta = {"ember.world.config": json.dumps(asdict(cfg))}
    tensors = {k: v.half() for k, v in model.state_dict().items()}
    tensors.update({
        "golden.clip": clip.half(), "golden.noise0": noise0.half(), "golden.noise1": noise1.half(),
        "golden.mouse": mouse.half(), "golden.keyboard": keyboard.half(),
        "golden.t_full": t_full.float(), "golden.sigmas": torch.tensor(sigmas),
        "golden.full_v": full_v.float(), "golden.sample_x0": sample_x0.float(),
    })
    os.makedirs(out_dir, exist_ok=True)
    save_safetensors(os.path.join(out_dir, file_name), tensors, meta)
    save_safetensors(os.path.join(out_dir, file_name.replace("golden", "debug")),
                     {k: v.float() for k, v in debug.items()}, {})
    n_params = sum(p.numel() for p in model.parameters())
    print("params", n_params, "full_v absmax", full_v.abs().max().item(),
          "sample absmax", sample_x0.abs().max().item())
    print(file_name, "size", os.path.getsize(os.path.join(out_dir, file_name)))
    for k in sorted(tensors):
        if not k.startswith("golden."):
            print(k, list(tensors[k].shape))


if __name__ == "__main__":
    main()
