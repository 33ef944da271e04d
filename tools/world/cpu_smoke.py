"""Run tools/world/train.py on the CPU with Debian's torch, to check a change before GPU time.

    apt-get install python3-torch          # Debian's CPU build (1.13 on bookworm)
    /usr/bin/python3 tools/world/cpu_smoke.py OUT.safetensors --seconds 20 --batch 4 --frames 8

Arguments after the script are train.py's. Debian's torch 1.13 predates
F.scaled_dot_product_attention (2.0), which model.py uses; this supplies a plain version (boolean
mask, True = visible, as model.py passes) and then runs train.py unchanged. About 1 s a step at
--batch 4 --frames 8 on two cores: enough to see that the script runs, renders, checks its
renderer, evaluates and exports a file ember loads, not to train a model.
"""
import math
import os
import runpy
import sys

import torch
import torch.nn.functional as F

if not hasattr(F, "scaled_dot_product_attention"):
    def _sdpa(q, k, v, attn_mask=None):
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if attn_mask is not None:
            s = s.masked_fill(~attn_mask, float("-inf"))
        return torch.softmax(s, dim=-1) @ v

    F.scaled_dot_product_attention = _sdpa

if __name__ == "__main__":
    train = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
    sys.argv = [train] + sys.argv[1:]
    runpy.run_path(train, run_name="__main__")
