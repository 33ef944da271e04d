#!/usr/bin/env python3
"""Goldens for ember's diffusion pieces from the reference Python code, run unmodified:
diffusers' FlowMatchEulerDiscreteScheduler / FlowMatchHeunDiscreteScheduler (package source
staged as .ref/diffusers.tar.xz) and ACE-Step's schedulers and apg_guidance.py (.ref/acestep/).
Writes tests/data/diffusion/diffusion_golden.safetensors.
  python3 tests/golden/diffusion_golden.py [--out DIR]
"""
import argparse
import os
import sys
import tarfile
import tempfile

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = os.path.join(ROOT, ".ref")
pkg = tempfile.mkdtemp()
with tarfile.open(os.path.join(REF, "diffusers.tar.xz")) as t:
    t.extractall(pkg)
sys.path.insert(0, pkg)
sys.path.insert(0, REF)

from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler  # noqa
from diffusers.schedulers.scheduling_flow_match_heun_discrete import FlowMatchHeunDiscreteScheduler  # noqa
from acestep.schedulers.scheduling_flow_match_euler_discrete import \
    FlowMatchEulerDiscreteScheduler as AceEuler  # noqa
from acestep.schedulers.scheduling_flow_match_heun_discrete import \
    FlowMatchHeunDiscreteScheduler as AceHeun  # noqa
from acestep.schedulers.scheduling_flow_match_pingpong import FlowMatchPingPongScheduler  # noqa
from acestep import apg_guidance as apg  # noqa

ap = argparse.ArgumentParser()
ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "diffusion"))
args = ap.parse_args()
torch.manual_seed(7)
g = {}

# ---- schedules ----
def sched(name, s, **kw):
    s.set_timesteps(**kw)
    g[f"{name}.timesteps"] = s.timesteps.float().clone()
    g[f"{name}.sigmas"] = s.sigmas.float().clone()

for n, shift in [(10, 1.0), (20, 3.0), (27, 2.5)]:
    sched(f"euler_n{n}_s{shift}", FlowMatchEulerDiscreteScheduler(shift=shift), num_inference_steps=n)
sched("euler_dynamic", FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True), num_inference_steps=12, mu=0.8)
sched("euler_dynamic_linear", FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, time_shift_type="linear"),
      num_inference_steps=12, mu=0.8)
sched("euler_terminal", FlowMatchEulerDiscreteScheduler(shift=3.0, shift_terminal=0.1), num_inference_steps=15)
sched("euler_karras", FlowMatchEulerDiscreteScheduler(shift=3.0, use_karras_sigmas=True), num_inference_steps=9)
sched("euler_exponential", FlowMatchEulerDiscreteScheduler(shift=3.0, use_exponential_sigmas=True), num_inference_steps=9)
try:
    sched("euler_beta", FlowMatchEulerDiscreteScheduler(shift=3.0, use_beta_sigmas=True), num_inference_steps=9)
except ImportError as e:
    print("beta sigmas need scipy:", e)
sched("euler_invert", FlowMatchEulerDiscreteScheduler(shift=2.0, invert_sigmas=True), num_inference_steps=8)
sched("euler_custom_sigmas", FlowMatchEulerDiscreteScheduler(shift=3.0), sigmas=[1.0, 0.8, 0.55, 0.3, 0.1])
sched("euler_custom_timesteps", FlowMatchEulerDiscreteScheduler(shift=3.0), timesteps=[1000.0, 750.0, 420.0, 100.0])
sched("heun_n8_s3.0", FlowMatchHeunDiscreteScheduler(shift=3.0), num_inference_steps=8)
sched("pingpong_n10_s3.0", FlowMatchPingPongScheduler(shift=3.0), num_inference_steps=10)

# ---- 10-step trajectories with a fixed linear model: v = 0.5 x + 0.001 t ----
x0 = torch.randn(2, 4, 8, 8)
g["traj.x0"] = x0.clone()
model = lambda x, t: 0.5 * x + 0.001 * t

def trajectory(name, s, steps=10, **step_kw):
    s.set_timesteps(num_inference_steps=steps)
    x = x0.clone()
    out = []
    for t in s.timesteps:
        x = s.step(model(x, t), t, x, return_dict=False, **step_kw)[0]
        out.append(x.clone())
    g[f"traj.{name}"] = torch.stack(out)

trajectory("euler", FlowMatchEulerDiscreteScheduler(shift=3.0))
trajectory("heun", FlowMatchHeunDiscreteScheduler(shift=3.0), steps=5)
trajectory("ace_euler_omega0", AceEuler(shift=3.0), omega=0.0)
trajectory("ace_euler_omega5", AceEuler(shift=3.0), omega=5.0)
trajectory("ace_heun_omega5", AceHeun(shift=3.0), steps=5, omega=5.0)
# PingPong draws fresh noise each step from the generator: record the draws as they happen.
s = FlowMatchPingPongScheduler(shift=3.0)
s.set_timesteps(num_inference_steps=10)
gen = torch.Generator().manual_seed(123)
x, out, noises = x0.clone(), [], []
for t in s.timesteps:
    probe = torch.Generator()
    probe.set_state(gen.get_state())
    noises.append(torch.empty_like(x).normal_(generator=probe))
    x = s.step(model(x, t), t, x, generator=gen, return_dict=False)[0]
    out.append(x.clone())
g["traj.pingpong"], g["traj.pingpong_noise"] = torch.stack(out), torch.stack(noises)

# ---- guidance ----
cond, uncond, text = torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6)
g["guid.cond"], g["guid.uncond"], g["guid.text"] = cond, uncond, text
g["guid.cfg"] = apg.cfg_forward(cond, uncond, 4.5)
g["guid.double"] = apg.cfg_double_condition_forward(cond, uncond, text, 5.0, 2.5)
buf = apg.MomentumBuffer()
steps = []
for i in range(4):
    c_i, u_i = cond * (1 + 0.1 * i), uncond - 0.05 * i
    steps.append(apg.apg_forward(c_i, u_i, 3.0, momentum_buffer=buf, eta=0.2, norm_threshold=2.5))
g["guid.apg_momentum"] = torch.stack(steps)
g["guid.apg_plain"] = apg.apg_forward(cond, uncond, 3.0, momentum_buffer=None, eta=0.0, norm_threshold=0.0)
g["guid.apg_dims"] = apg.apg_forward(cond, uncond, 2.0, None, 0.5, 1.0, dims=[-1])
for i in range(3):
    g[f"guid.zero_star{i}"] = apg.cfg_zero_star(cond, uncond, 4.0, i, zero_steps=1, use_zero_init=True)

os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "diffusion_golden.safetensors")
save_file({k: v.contiguous().float() for k, v in g.items()}, path, metadata={"generator": "tests/golden/diffusion_golden.py"})
print("wrote", path, sum(v.numel() * 4 for v in g.values()), "bytes")
