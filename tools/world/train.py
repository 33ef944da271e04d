"""Train ember's small world model on the synthetic world (NOT RUN YET: written for the GPU machine).

    python3 tools/world/train.py OUT.safetensors [--steps 20000] [--batch 32] [--frames 12]

Objective: flow matching with diffusion forcing over frame blocks (each block of a clip gets its own
noise level; some blocks are left clean, as the context the KV cache holds at inference). The model
predicts the velocity eps - x0 of every noisy block under the block-causal mask, which is what the
streaming sampler (WorldModel::sample_block) needs. Matrix-Game-2 instead distils a bidirectional
teacher with Self-Forcing/DMD; that is out of scope for a 32x32 toy.

Writes the weights (f16 if --f16) with the config JSON in the metadata key "ember.world.config",
the layout WorldModel::load reads. Pure torch plus the two sibling files.
"""
import argparse
import json
import os
import random
import struct
import sys
from dataclasses import asdict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "golden", "world"))
import synthetic  # noqa: E402
from model import ActionConfig, WorldConfig, WorldModel  # noqa: E402

KEYS = ["W", "S", "A", "D", "SPACE"]


def config():
    return WorldConfig(in_channels=3, out_channels=3, patch=(1, 4, 4), dim=128, ffn_dim=512,
                       freq_dim=64, heads=4, layers=4, frames_per_block=2, local_attn_frames=6,
                       sink_frames=1,
                       action=ActionConfig(keyboard_dim=5, mouse_dim=2, hidden_size=32,
                                           keyboard_hidden_dim=64, mouse_hidden_dim=64, heads=4,
                                           windows_size=3, frames_per_latent=1, rope_theta=256.0,
                                           rope_split=(4, 6, 6), blocks=(0, 1, 2, 3)))


def random_actions(n, rng):
    """A sticky random policy in ember's compact text form."""
    toks, keys, mouse = [], set(), (0.0, 0.0)
    for _ in range(n):
        if rng.random() < 0.3:
            keys = set(rng.sample(["W", "S", "A", "D"], rng.choice([0, 1, 1, 2])))
        if rng.random() < 0.3:
            mouse = (rng.choice([0.0, 0.0, 0.1, -0.1]), rng.choice([0.0, 0.0, 0.1, -0.1]))
        k = sorted(keys) + (["Space"] if rng.random() < 0.1 else [])
        tok = "+".join(k) if k else "."
        if mouse != (0.0, 0.0):
            tok += f"@{mouse[0]},{mouse[1]}"
        toks.append(tok)
    return " ".join(toks)


def batch(n_clips, frames, rng):
    xs, kbs, ms = [], [], []
    for _ in range(n_clips):
        text = random_actions(frames, rng)
        fr = synthetic.rollout(text, seed=rng.randrange(1 << 16))
        x = torch.tensor([list(f) for f in fr], dtype=torch.uint8).view(frames, 32, 32, 3)
        xs.append(x.permute(3, 0, 1, 2).float() / 127.5 - 1.0)
        acts = synthetic.parse_compact(text)
        kbs.append(torch.tensor([[float(k in p) for k in KEYS] for p, _, _ in acts]))
        ms.append(torch.tensor([[dy, dx] for _, dx, dy in acts]))  # (pitch, yaw) = (dy, dx)
    return torch.stack(xs), torch.stack(ms), torch.stack(kbs)


def save_safetensors(path, tensors, metadata):
    dt = {torch.float32: "F32", torch.float16: "F16"}
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--clean_prob", type=float, default=0.3)
    ap.add_argument("--f16", action="store_true")
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    rng = random.Random(0)
    cfg = config()
    model = WorldModel(cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    fpb = cfg.frames_per_block
    nb = args.frames // fpb
    for step in range(args.steps):
        x0, mouse, kb = (t.to(dev) for t in batch(args.batch, args.frames, rng))
        # One sigma per (clip, block); some blocks clean (context).
        sig = torch.rand(args.batch, nb, device=dev)
        sig = torch.where(torch.rand_like(sig) < args.clean_prob, torch.zeros_like(sig), sig)
        sig_f = sig.repeat_interleave(fpb, dim=1)                       # [B, F]
        eps = torch.randn_like(x0)
        s = sig_f[:, None, :, None, None]
        xt = (1 - s) * x0 + s * eps
        # The model takes one timestep vector per clip: loop over the batch (the toy is small).
        v = torch.cat([model(xt[i:i + 1], sig_f[i] * 1000.0, mouse[i:i + 1], kb[i:i + 1])
                       for i in range(args.batch)])
        w = (sig_f > 0).float()[:, None, :, None, None]
        loss = (((v - (eps - x0)) ** 2) * w).sum() / (w.sum() * x0[0, :, 0].numel()).clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f}", flush=True)
    dtype = torch.float16 if args.f16 else torch.float32
    tensors = {k: v.to(dtype) for k, v in model.state_dict().items()}
    save_safetensors(args.out, tensors, {"ember.world.config": json.dumps(asdict(cfg))})


if __name__ == "__main__":
    main()
