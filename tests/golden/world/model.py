"""PyTorch definition of ember's small world model (include/ember/world/model.h).

The structure follows Matrix-Game-2 (SkyworkAI/Matrix-Game, Matrix-Game-2/wan/modules/
causal_model.py and action_module.py): a Wan-style causal DiT with per-frame timestep modulation,
3D RoPE self-attention that is bidirectional inside a frame block and causal across blocks (local
window plus sink frames), and an ActionModule in the listed blocks (mouse: per-token temporal
self-attention over [hidden, mouse window]; keyboard: cross-attention from the tokens to embedded
keyboard windows). It differs where ember's model is deliberately smaller: pixels instead of VAE
latents, no image/CLIP cross-attention, and the head is a ConvTranspose3d (ember's Unpatchify)
instead of Linear + einsum (the same map with permuted weights).

Only the full block-causal forward lives here (attention masks built from frame positions); the
streaming KV cache is ember's job, and the golden test checks that both agree.
Pure torch, no other dependency.
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

if not hasattr(F, "scaled_dot_product_attention"):  # torch < 2.0 (Debian's 1.13): boolean masks only
    def _sdpa(q, k, v, attn_mask=None):
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if attn_mask is not None:
            s = s.masked_fill(~attn_mask, float("-inf"))
        return torch.softmax(s, dim=-1) @ v

    F.scaled_dot_product_attention = _sdpa


@dataclass
class ActionConfig:
    keyboard_dim: int = 4
    mouse_dim: int = 2
    hidden_size: int = 32            # keyboard_embed width
    keyboard_hidden_dim: int = 64
    mouse_hidden_dim: int = 64
    heads: int = 4
    windows_size: int = 3
    frames_per_latent: int = 1       # Matrix-Game-2's vae_time_compression_ratio (4 there)
    rope_theta: float = 256.0
    rope_split: tuple = (4, 6, 6)    # mouse_qk_dim_list / rope_dim_list over (t, h=1, w=1)
    blocks: tuple = (0, 1, 2, 3)


@dataclass
class WorldConfig:
    in_channels: int = 3
    out_channels: int = 3
    patch: tuple = (1, 4, 4)
    dim: int = 128
    ffn_dim: int = 512
    freq_dim: int = 64
    heads: int = 4
    layers: int = 4
    eps: float = 1e-6
    rope_theta: float = 10000.0
    frames_per_block: int = 2
    local_attn_frames: int = 6       # window in frames, counted back from the block's last frame
    sink_frames: int = 1             # first frames always visible
    # Camera-aware RoPE (ember's, not Matrix-Game-2's): the last camera_heads heads of every
    # self-attention place their tokens at world positions, the screen position plus the camera
    # offset the mouse has moved so far (camera_pan pixels a mouse unit: yaw moves +x, pitch -y),
    # so the ground a pan moves sits at the same position in both frames. 0: off.
    camera_heads: int = 0
    camera_pan: float = 0.0
    action: ActionConfig = field(default_factory=ActionConfig)


def sinusoidal_embedding_1d(dim, position):
    # Wan: cos then sin, float64.
    half = dim // 2
    position = position.to(torch.float64)
    sinusoid = torch.outer(position, torch.pow(10000, -torch.arange(half).to(position).div(half)))
    return torch.cat([torch.cos(sinusoid), torch.sin(sinusoid)], dim=1)


def rope_angles(split, theta, positions):
    """positions: [N, 3] (t, h, w) -> angles [N, head_dim/2] (float64), Wan's rope_params."""
    parts = []
    for a, d in enumerate(split):
        dev = positions.device
        inv = 1.0 / torch.pow(torch.tensor(theta, dtype=torch.float64, device=dev),
                              torch.arange(0, d, 2, dtype=torch.float64, device=dev) / d)
        parts.append(torch.outer(positions[:, a].to(torch.float64), inv))
    return torch.cat(parts, dim=1)


def apply_rope(x, angles):
    """x [B, N, H, D] with interleaved pairs (Wan / Matrix-Game-2); angles [N, D/2] or
    [B, N, D/2]."""
    b, n, h, d = x.shape
    xc = torch.view_as_complex(x.to(torch.float64).reshape(b, n, h, d // 2, 2))
    f = torch.polar(torch.ones_like(angles), angles).view(-1, n, 1, d // 2)
    return torch.view_as_real(xc * f).flatten(3).to(x.dtype)


def block_causal_mask(q_frame, k_frame, frames_per_block, window, sinks):
    """bool [Tq, Tk], True = visible: keys up to the end of the query's frame block, inside the
    window counted back from that block end, or among the sink frames."""
    end = (q_frame // frames_per_block + 1) * frames_per_block - 1
    end = end[:, None]
    k = k_frame[None, :]
    return (k <= end) & ((k > end - window) | (k < sinks))


def rms_norm(x, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)


class WanRMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x.float(), self.eps).type_as(x) * self.weight


class SelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg.dim
        self.heads = cfg.heads
        self.camera_heads = cfg.camera_heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.norm_q = WanRMSNorm(d, cfg.eps)
        self.norm_k = WanRMSNorm(d, cfg.eps)

    def rope(self, x, angles):
        """angles: [N, hd/2] for all heads, or (screen [N, hd/2], world [B, N, hd/2]) with the
        world angles for the last camera_heads heads."""
        if not isinstance(angles, tuple):
            return apply_rope(x, angles)
        c = self.heads - self.camera_heads
        return torch.cat([apply_rope(x[:, :, :c], angles[0]), apply_rope(x[:, :, c:], angles[1])], 2)

    def forward(self, x, angles, mask):
        b, n, d = x.shape
        h = self.heads
        q = self.rope(self.norm_q(self.q(x)).view(b, n, h, -1), angles)
        k = self.rope(self.norm_k(self.k(x)).view(b, n, h, -1), angles)
        v = self.v(x).view(b, n, h, -1)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           attn_mask=mask)
        return self.o(y.transpose(1, 2).reshape(b, n, d))


class ActionModule(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        a = cfg.action
        self.a = a
        self.cfg = cfg
        pad_t = a.frames_per_latent * a.windows_size
        self.keyboard_embed = nn.Sequential(nn.Linear(a.keyboard_dim, a.hidden_size), nn.SiLU(),
                                            nn.Linear(a.hidden_size, a.hidden_size))
        c = a.mouse_hidden_dim
        self.mouse_mlp = nn.Sequential(nn.Linear(a.mouse_dim * pad_t + cfg.dim, c),
                                       nn.GELU(approximate="tanh"), nn.Linear(c, c), nn.LayerNorm(c))
        self.t_qkv = nn.Linear(c, 3 * c, bias=False)
        self.proj_mouse = nn.Linear(c, cfg.dim, bias=False)
        kc = a.keyboard_hidden_dim
        self.mouse_attn_q = nn.Linear(cfg.dim, kc, bias=False)
        self.keyboard_attn_kv = nn.Linear(a.hidden_size * pad_t, 2 * kc, bias=False)
        self.proj_keyboard = nn.Linear(kc, cfg.dim, bias=False)

    def groups(self, cond, frames):
        """cond [B, N_raw, C] -> [B, frames, pad_t * C]: for latent frame f the raw frames
        r*f - pad_t .. r*f - 1, indices below 0 padded with raw frame 0 (as Matrix-Game-2)."""
        r, pad_t = self.a.frames_per_latent, self.a.frames_per_latent * self.a.windows_size
        padded = torch.cat([cond[:, :1].expand(-1, pad_t, -1), cond], dim=1)
        g = torch.stack([padded[:, r * f:r * f + pad_t] for f in range(frames)], dim=1)
        return g.reshape(g.shape[0], frames, -1)

    def forward(self, x, frames, spatial, mouse, keyboard):
        a, cfg = self.a, self.cfg
        b, n, d = x.shape
        S = spatial
        fr = torch.arange(frames, device=x.device)
        mask = block_causal_mask(fr, fr, cfg.frames_per_block, cfg.local_attn_frames, 0)
        ang = rope_angles(a.rope_split, a.rope_theta,
                          torch.stack([fr, torch.zeros_like(fr), torch.zeros_like(fr)], 1))
        # mouse: per spatial token, temporal attention over [hidden, mouse window]
        hs = x.view(b, frames, S, d).permute(0, 2, 1, 3).reshape(b * S, frames, d)
        gm = self.groups(mouse, frames)                                   # [B, F, pad_t*2]
        gm = gm[:, None].expand(b, S, frames, gm.shape[-1]).reshape(b * S, frames, -1)
        m = self.mouse_mlp(torch.cat([hs, gm], dim=-1))
        q, k, v = self.t_qkv(m).view(b * S, frames, 3, a.heads, -1).unbind(2)
        q = apply_rope(rms_norm(q, 1e-6), ang)
        k = apply_rope(rms_norm(k, 1e-6), ang)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           attn_mask=mask)                # [B*S, h, F, hd]
        y = y.transpose(1, 2).reshape(b, S, frames, -1).permute(0, 2, 1, 3).reshape(b, n, -1)
        x = x + self.proj_mouse(y)
        # keyboard: cross-attention from every token to the embedded keyboard windows
        gk = self.groups(self.keyboard_embed(keyboard), frames)           # [B, F, pad_t*hidden]
        k, v = self.keyboard_attn_kv(gk).view(b, frames, 2, a.heads, -1).unbind(2)
        q = self.mouse_attn_q(x).view(b, n, a.heads, -1)
        q_frames = fr.repeat_interleave(S)
        q_ang = rope_angles(a.rope_split, a.rope_theta,
                            torch.stack([q_frames, torch.zeros_like(q_frames),
                                         torch.zeros_like(q_frames)], 1))
        q = apply_rope(rms_norm(q, 1e-6), q_ang)
        k = apply_rope(rms_norm(k, 1e-6), ang)
        kmask = block_causal_mask(q_frames, fr, cfg.frames_per_block, cfg.local_attn_frames, 0)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           attn_mask=kmask)
        return x + self.proj_keyboard(y.transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    def __init__(self, cfg, index):
        super().__init__()
        d = cfg.dim
        self.eps = cfg.eps
        self.self_attn = SelfAttention(cfg)
        self.action_model = ActionModule(cfg) if index in cfg.action.blocks else None
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.ffn_dim, d))
        self.modulation = nn.Parameter(torch.randn(1, 6, d) / d ** 0.5)

    def forward(self, x, e, frames, spatial, angles, mask, mouse, keyboard):
        b, n, d = x.shape
        e = (self.modulation.unsqueeze(1) + e).chunk(6, dim=2)            # each [B, F, 1, D]

        def mod(t, shift, scale):
            t = F.layer_norm(t, (d,), eps=self.eps).view(b, frames, spatial, d)
            return (t * (1 + scale) + shift).view(b, n, d)

        def gate(t, g):
            return (t.view(b, frames, spatial, d) * g).view(b, n, d)

        x = x + gate(self.self_attn(mod(x, e[0], e[1]), angles, mask), e[2])
        if self.action_model is not None:
            x = self.action_model(x, frames, spatial, mouse, keyboard)
        return x + gate(self.ffn(mod(x, e[3], e[4])), e[5])


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_channels, d, cfg.patch, cfg.patch)
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.layers))
        self.head = nn.Module()
        self.head.modulation = nn.Parameter(torch.randn(1, 2, d) / d ** 0.5)
        self.head.head = nn.ConvTranspose3d(d, cfg.out_channels, cfg.patch, cfg.patch)
        hd = d // cfg.heads
        self.rope_split = (hd - 4 * (hd // 6), 2 * (hd // 6), 2 * (hd // 6))

    def forward(self, x, t, mouse, keyboard):
        """Full block-causal forward. x [B, C, F, H, W]; t [F] timesteps (sigma * 1000) per frame
        (or [B, F], one row per clip, for training);
        mouse [B, N_raw, 2] (pitch, yaw), keyboard [B, N_raw, K] with N_raw >= r*(F-1)+1.
        Returns the flow (velocity) prediction [B, C, F, H, W]."""
        cfg = self.cfg
        b = x.shape[0]
        x = self.patch_embedding(x)                                        # [B, D, F, h, w]
        _, d, frames, gh, gw = x.shape
        S = gh * gw
        x = x.flatten(2).transpose(1, 2)                                   # [B, F*S, D]
        e = self.time_embedding(sinusoidal_embedding_1d(cfg.freq_dim, t.flatten()).float())
        e = e.view(-1, frames, d)                                          # [1 or B, F, D]
        e0 = self.time_projection(e).view(-1, frames, 6, d).expand(b, -1, -1, -1)
        dev = x.device
        fr = torch.arange(frames, device=dev).repeat_interleave(S)
        hh = torch.arange(gh, device=dev).repeat_interleave(gw).repeat(frames)
        ww = torch.arange(gw, device=dev).repeat(frames * gh)
        angles = rope_angles(self.rope_split, cfg.rope_theta, torch.stack([fr, hh, ww], 1))
        if cfg.camera_heads:
            # Camera of frame f: the pans of raw frames before r*f, in patches.
            r = cfg.action.frames_per_latent
            m64 = mouse.double()
            cum = torch.cat([torch.zeros_like(m64[:, :1]), m64.cumsum(1)], 1)
            cam = cum[:, r * torch.arange(frames, device=dev)] * cfg.camera_pan  # [B, F, (pitch, yaw)]
            oy = (-cam[..., 0] / cfg.patch[1]).repeat_interleave(S, 1)         # [B, N]
            ox = (cam[..., 1] / cfg.patch[2]).repeat_interleave(S, 1)
            world = torch.stack([fr.double().expand(b, -1), hh + oy, ww + ox], 2)  # [B, N, 3]
            world = rope_angles(self.rope_split, cfg.rope_theta, world.reshape(-1, 3))
            angles = (angles, world.view(b, -1, world.shape[-1]))
        mask = block_causal_mask(fr, fr, cfg.frames_per_block, cfg.local_attn_frames, cfg.sink_frames)
        for blk in self.blocks:
            x = blk(x, e0, frames, S, angles, mask, mouse, keyboard)
        e1 = (self.head.modulation.unsqueeze(1) + e.view(-1, frames, 1, d)).chunk(2, dim=2)
        y = F.layer_norm(x, (d,), eps=cfg.eps).view(b, frames, S, d)
        y = (y * (1 + e1[1]) + e1[0]).view(b, frames, gh, gw, d).permute(0, 4, 1, 2, 3)
        return self.head.head(y)
