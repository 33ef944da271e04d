"""Train ember's small world model on the synthetic world (run on the GPU machine).

    python3 tools/world/train.py OUT.safetensors [--seconds 300] [--batch 48] [--frames 18] [--f16]
                                 [--mouse_scale 10]

Objective: flow matching with diffusion forcing over frame blocks (each block of a clip gets its own
noise level; some blocks are left clean, as the context the KV cache holds at inference). The model
predicts the velocity eps - x0 of every noisy block under the block-causal mask, which is what the
streaming sampler (WorldModel::sample_block) needs. Matrix-Game-2 instead distils a bidirectional
teacher with Self-Forcing/DMD; that is out of scope for a 32x32 toy.

Clips are rendered on the GPU by a vectorised copy of tools/world/synthetic.py (checked equal to it,
byte for byte, at start-up), with random sprite and camera starts and a random policy that changes
keys and mouse often (each with probability 0.6 a frame), so that the motion cannot be read off the
previous frames and the actions must be used. The pixels the sprite covers in a frame or covered in
the frame before get --sprite_weight times the loss weight (16 of 1024 pixels otherwise; copying the
previous frame was the first model's local minimum). The exported weights are an EMA of the
trained ones.

The mouse is fed to the model times --mouse_scale during training (0.1 -> 1.0, the size of a key's
0/1), and the factor is folded into the mouse columns of every mouse_mlp.0 weight on export, so the
file takes the raw values ember's player feeds (checked at export). At scale 1 (the 360-s model of
2026-11-23) the mouse made 0.2-0.4% of mouse_mlp.0's pre-activation next to the hidden state, the
model never used it and panning was ignored; see docs/world.md, "Why the mouse is ignored".

Runs on the CPU too (too slow to train; enough to check a change before GPU time):
`/usr/bin/python3 tools/world/train.py OUT --seconds 20 --batch 4 --frames 8` with Debian's
python3-torch 1.13 (model.py supplies F.scaled_dot_product_attention where torch lacks it).

Writes the weights (f16 if --f16) with the config JSON in the metadata key "ember.world.config",
the layout WorldModel::load reads, and a loss log next to it (OUT.log). Pure torch plus the two
sibling files.
"""
import argparse
import copy
import dataclasses
import json
import math
import os
import random
import struct
import sys
import time
from dataclasses import asdict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "golden", "world"))
import synthetic  # noqa: E402
from model import ActionConfig, WorldConfig, WorldModel  # noqa: E402

KEYS = synthetic.KEYS  # W, S, A, D, SPACE: the model's keyboard order
S = synthetic.SIZE


def config(rope_theta=32.0, camera_heads=2, camera_pan=float(synthetic.PAN)):
    return WorldConfig(in_channels=3, out_channels=3, patch=(1, 4, 4), dim=128, ffn_dim=512,
                       freq_dim=64, heads=4, layers=4, rope_theta=rope_theta, frames_per_block=2,
                       local_attn_frames=6, camera_heads=camera_heads, camera_pan=camera_pan,
                       sink_frames=1,
                       action=ActionConfig(keyboard_dim=5, mouse_dim=2, hidden_size=32,
                                           keyboard_hidden_dim=64, mouse_hidden_dim=64, heads=4,
                                           windows_size=3, frames_per_latent=1, rope_theta=256.0,
                                           rope_split=(4, 6, 6), blocks=(0, 1, 2, 3)))


MOUSE_CHOICES = [0.0] * 4 + [0.1, -0.1, 0.1, -0.1, 0.2, -0.2]
CHANGE_PROB = 0.6  # per frame, for keys and mouse separately (was 0.25: too predictable)


def random_policy(n, rng):
    """A random policy, sticky only a little: list of (pressed set, dx, dy) per frame."""
    out, keys, dx, dy = [], set(), 0.0, 0.0
    for _ in range(n):
        if rng.random() < CHANGE_PROB:
            keys = set(rng.sample(["W", "S", "A", "D"], rng.choice([0, 1, 1, 1, 2])))
        if rng.random() < CHANGE_PROB:
            dx, dy = rng.choice(MOUSE_CHOICES), rng.choice(MOUSE_CHOICES)
        pressed = set(keys) | ({"SPACE"} if rng.random() < 0.08 else set())
        out.append((pressed, dx, dy))
    return out


def trajectory(start, acts):
    """World states per frame (cam_x, cam_y, x, y, hop), as synthetic.rollout: frame 0 is the
    start, frame i follows the actions of frames 0..i-1."""
    cx, cy, x, y = start
    states = [(cx, cy, x, y, 0)]
    for pressed, dx, dy in acts[:-1]:
        cx += synthetic.pan(dx)
        cy -= synthetic.pan(dy)
        y += synthetic.STEP * (("S" in pressed) - ("W" in pressed))
        x += synthetic.STEP * (("D" in pressed) - ("A" in pressed))
        x = min(max(x, 0), S - synthetic.SPRITE)
        y = min(max(y, 2), S - synthetic.SPRITE)
        states.append((cx, cy, x, y, int("SPACE" in pressed)))
    return states


def sprite_mask(states, dev):
    """states int64 [N, 5] -> bool [N, 32, 32]: the pixels the sprite covers."""
    _, _, sx, sy, hop = (states[:, i, None, None] for i in range(5))
    ar = torch.arange(S, device=dev)
    X, Y = ar[None, None, :], ar[None, :, None]
    sye = sy - 2 * hop
    return (X >= sx) & (X < sx + 4) & (Y >= sye) & (Y < sye + 4)


def render(states, dev):
    """states int64 [N, 5] -> uint8 [N, 32, 32, 3], synthetic.World.render vectorised."""
    cx, cy, sx, sy, hop = (states[:, i, None, None] for i in range(5))
    ar = torch.arange(S, device=dev)
    X, Y = ar[None, None, :], ar[None, :, None]
    u, v = X + cx, Y + cy
    fd = lambda a, b: torch.div(a, b, rounding_mode="floor")  # noqa: E731 (Python's //)
    h = (fd(u, 8) * 73856093) ^ (fd(v, 8) * 19349663)
    h = h & 0xFFFFFFFF
    h = h ^ (h >> 13)
    h = (h * 0x5BD1E995) & 0xFFFFFFFF
    h = h ^ (h >> 15)
    pal = torch.tensor(synthetic.PALETTE, device=dev)
    shade = torch.remainder(fd(u, 2) + fd(v, 2), 2) * 30
    img = (pal[h % len(synthetic.PALETTE)] - shade[..., None]).clamp(min=0)
    sye = sy - 2 * hop
    inside = (X >= sx) & (X < sx + 4) & (Y >= sye) & (Y < sye + 4)
    edge = inside & ((X == sx) | (X == sx + 3) | (Y == sye) | (Y == sye + 3))
    img = torch.where(inside[..., None], torch.tensor([240, 40, 40], device=dev), img)
    img = torch.where(edge[..., None], torch.tensor([255, 255, 255], device=dev), img)
    return img.to(torch.uint8)


def random_start(rng):
    return (rng.randrange(-256, 256), rng.randrange(-256, 256), rng.randrange(0, S - 3),
            rng.randrange(2, S - 3))


def batch(n_clips, frames, rng, dev, with_mask=False, mouse_scale=1.0):
    """Clips of the random policy: (x0 [B, 3, F, H, W] in [-1, 1], mouse [B, F, 2] as (dy, dx)
    times mouse_scale, keyboard [B, F, 5]) and, with_mask, the sprite loss mask [B, 1, F, H, W]."""
    states, kbs, ms = [], [], []
    for _ in range(n_clips):
        acts = random_policy(frames, rng)
        states += trajectory(random_start(rng), acts)
        kbs.append([[float(k in p) for k in KEYS] for p, _, _ in acts])
        ms.append([[dy * mouse_scale, dx * mouse_scale] for _, dx, dy in acts])  # (pitch, yaw)
    st = torch.tensor(states, device=dev)
    img = render(st, dev).view(n_clips, frames, S, S, 3)
    x0 = img.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0          # [B, 3, F, H, W]
    out = (x0, torch.tensor(ms, device=dev), torch.tensor(kbs, device=dev))
    if not with_mask:
        return out
    m = sprite_mask(st, dev).view(n_clips, frames, S, S)
    m = m.clone()
    m[:, 1:] |= m[:, :-1].clone()  # where the sprite is now or was in the frame before
    return out + (m[:, None].float(),)                              # [B, 1, F, H, W]


def check_renderer(dev, rng, clips=6, frames=14):
    for _ in range(clips):
        acts = random_policy(frames, rng)
        start = random_start(rng)
        w = synthetic.World(0)
        w.cam_x, w.cam_y, w.x, w.y = start
        ref = [w.render()] + [w.step(p, dx, dy) for p, dx, dy in acts[:-1]]
        got = render(torch.tensor(trajectory(start, acts), device=dev), dev).cpu()
        for i, r in enumerate(ref):
            assert bytes(got[i].flatten().tolist()) == r, f"renderer differs at frame {i}"


def save_safetensors(path, tensors, metadata):
    dt = {torch.float32: "F32", torch.float16: "F16"}
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": dt[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def action_check(net, args, fpb, dev):
    """Does the model use its actions? Clean context, last block at sigma 1, with the clip's own
    actions and with another clip's: a model that learned the controls loses more with the wrong
    ones. (The 285-s model shipped first had no such check; it ignored its actions.) Returns the
    velocity MSE of the last block, on fixed held-out clips, with (own actions, another clip's
    actions, another clip's mouse and own keys, another clip's keys and own mouse): the third
    against the first says whether the mouse is used (the 360-s model of 2026-11-23 used the keys
    but not the mouse, and the combined check could not tell)."""
    x0, mouse, kb = batch(args.batch, args.frames, random.Random(777), dev,
                          mouse_scale=args.mouse_scale)
    g = torch.Generator(device=dev).manual_seed(1)
    sig_f = torch.zeros(args.batch, args.frames, device=dev)
    sig_f[:, -fpb:] = 1.0
    eps = torch.randn(x0.shape, device=dev, generator=g)
    s = sig_f[:, None, :, None, None]
    xt = (1 - s) * x0 + s * eps
    gaps = []
    was = net.training
    net.eval()
    with torch.no_grad():
        for m_, k_ in ((mouse, kb), (mouse.roll(1, 0), kb.roll(1, 0)), (mouse.roll(1, 0), kb),
                       (mouse, kb.roll(1, 0))):
            v = net(xt, sig_f * 1000.0, m_, k_)
            gaps.append(((v - (eps - x0))[:, :, -fpb:] ** 2).mean().item())
    net.train(was)
    return gaps


def export_state(net, cfg, mouse_scale, dev):
    """The state dict for files: the training-time mouse scale folded into the mouse columns of
    each mouse_mlp.0 (its input is cat(hidden [dim], mouse window [pad_t * 2]), model.py and
    ember's WorldModel alike), so that the file takes raw mouse values. Checked: the folded model
    on raw mouse == the trained one on scaled mouse."""
    sd = {k: v.detach().clone().float() for k, v in net.state_dict().items()}
    for i in cfg.action.blocks:
        w = sd[f"blocks.{i}.action_model.mouse_mlp.0.weight"]
        assert w.shape[1] == cfg.dim + cfg.action.mouse_dim * cfg.action.windows_size * \
            cfg.action.frames_per_latent, w.shape
        w[:, cfg.dim:] *= mouse_scale
    folded = WorldModel(cfg).to(dev)
    folded.load_state_dict(sd)
    folded.eval()
    was = net.training
    net.eval()
    x0, mouse, kb = batch(4, 8, random.Random(4242), dev)  # raw mouse
    t = torch.linspace(0.0, 1000.0, 8, device=dev)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # f32 check
    with torch.no_grad():
        want = net(x0, t, mouse * mouse_scale, kb)
        got = folded(x0, t, mouse, kb)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    net.train(was)
    err = (got - want).abs().max().item()
    assert err < 1e-3 * max(1.0, want.abs().max().item()), f"folding the mouse scale changed the output by {err}"
    return sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=300.0, help="wall-clock training budget")
    ap.add_argument("--steps", type=int, default=10 ** 9)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--frames", type=int, default=18)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--clean_prob", type=float, default=0.4)
    ap.add_argument("--sprite_weight", type=float, default=8.0)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--f16", action="store_true")
    ap.add_argument("--mouse_scale", type=float, default=10.0,
                    help="mouse values are multiplied by this in training and the factor folded "
                         "into the exported weights (1: the unscaled feed of the 360-s model)")
    ap.add_argument("--pan", type=int, default=synthetic.PAN,
                    help="camera px per mouse unit (experiments; ember's world, src/world/"
                         "synthetic.cpp, must use the same to test the file)")
    ap.add_argument("--rope_theta", type=float, default=32.0,
                    help="the video RoPE's base (Wan: 10000, whose frequencies but the first are "
                         "near 0 on an 8x8 grid; 32 gives 1, 1/2, 1/4.. rad a patch)")
    ap.add_argument("--camera_heads", type=int, default=2,
                    help="self-attention heads with camera-aware RoPE (model.py; 0: off, the "
                         "models before 2026-11-23's fourth session, which ignored the mouse)")
    args = ap.parse_args()
    synthetic.PAN = args.pan
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    rng = random.Random(0)
    check_renderer(dev, random.Random(1))
    print("renderer matches synthetic.py", flush=True)
    # The file's camera_pan takes raw mouse values; training feeds them times mouse_scale.
    cfg_file = config(args.rope_theta, args.camera_heads, float(args.pan) if args.camera_heads else 0.0)
    cfg = dataclasses.replace(cfg_file, camera_pan=cfg_file.camera_pan / args.mouse_scale)
    model = WorldModel(cfg).to(dev)
    ema = copy.deepcopy(model).requires_grad_(False)
    print(f"params {sum(p.numel() for p in model.parameters())}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    fpb = cfg.frames_per_block
    nb = args.frames // fpb
    log = []
    t0 = time.time()
    step, run_loss, run_n = 0, 0.0, 0
    while step < args.steps:
        elapsed = time.time() - t0
        if elapsed > args.seconds:
            break
        frac = elapsed / args.seconds
        lr = args.lr * min(1.0, (step + 1) / 200) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x0, mouse, kb, smask = batch(args.batch, args.frames, rng, dev, with_mask=True,
                                     mouse_scale=args.mouse_scale)
        # One sigma per (clip, block), biased towards high noise (few-step sampling starts at 1);
        # some blocks clean (context, no loss).
        sig = torch.sigmoid(torch.randn(args.batch, nb, device=dev) * 1.2 + 0.3)
        sig = torch.where(torch.rand_like(sig) < args.clean_prob, torch.zeros_like(sig), sig)
        sig_f = sig.repeat_interleave(fpb, dim=1)                       # [B, F]
        eps = torch.randn_like(x0)
        s = sig_f[:, None, :, None, None]
        xt = (1 - s) * x0 + s * eps
        v = model(xt, sig_f * 1000.0, mouse, kb)
        w = (sig_f > 0).float()[:, None, :, None, None] * (1 + (args.sprite_weight - 1) * smask)
        w = w.expand_as(v)
        loss = (((v - (eps - x0)) ** 2) * w).sum() / w.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        d = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - d)
        run_loss += loss.item()
        run_n += 1
        step += 1
        if step % 100 == 0 or step == 1:
            line = f"step {step} t {time.time() - t0:.1f}s lr {lr:.2e} loss {run_loss / run_n:.4f}"
            if step % 500 == 0:
                own, other, o_mouse, o_keys = action_check(model, args, fpb, dev)
                line += (f" action check {own:.4f} own vs {other:.4f} other"
                         f" ({o_mouse:.4f} other mouse, {o_keys:.4f} other keys)")
            print(line, flush=True)
            log.append(line)
            run_loss, run_n = 0.0, 0
    total = time.time() - t0
    # Held-out loss of the EMA model at fixed noise levels (all blocks noised alike).
    hrng = random.Random(12345)
    x0, mouse, kb = batch(args.batch, args.frames, hrng, dev, mouse_scale=args.mouse_scale)
    g = torch.Generator(device=dev).manual_seed(0)
    evals = []
    with torch.no_grad():
        for sg in (0.25, 0.5, 0.75, 1.0):
            eps = torch.randn(x0.shape, device=dev, generator=g)
            sig_f = torch.full((args.batch, args.frames), sg, device=dev)
            v = ema((1 - sg) * x0 + sg * eps, sig_f * 1000.0, mouse, kb)
            evals.append(f"sigma {sg}: {((v - (eps - x0)) ** 2).mean().item():.4f}")
        gaps = action_check(ema, args, fpb, dev)
        evals.append(f"last block at sigma 1 after clean context: {gaps[0]:.4f} with its actions, "
                     f"{gaps[1]:.4f} with another clip's, {gaps[2]:.4f} with another clip's mouse, "
                     f"{gaps[3]:.4f} with another clip's keys")
    summary = (f"trained {step} steps in {total:.1f}s (batch {args.batch} x {args.frames} frames, "
               f"{torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}, mouse scale "
               f"{args.mouse_scale:g} folded into the weights, pan {synthetic.PAN} px a unit); "
               f"EMA held-out velocity MSE " + ", ".join(evals))
    print(summary, flush=True)
    log.append(summary)
    dtype = torch.float16 if args.f16 else torch.float32
    tensors = {k: v.to(dtype) for k, v in export_state(ema, cfg_file, args.mouse_scale, dev).items()}
    save_safetensors(args.out, tensors, {"ember.world.config": json.dumps(asdict(cfg_file)),
                                         "ember.world.training": summary})
    with open(args.out + ".log", "w") as f:
        f.write("\n".join(log) + "\n")


if __name__ == "__main__":
    main()
