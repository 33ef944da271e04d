#!/usr/bin/env python3
"""Cross-checks ember's SafeTensors writer and reader against the reference Python library.

1. Writes tests/data/safetensors/reference.safetensors with safetensors.torch.save_file; ember's
   test SafeTensors.ReadsReferenceWrittenFiles reads it and writes the same tensors itself,
   expecting identical bytes.
2. With --check FILE: loads a file written by ember (examples/write_safetensors) with the
   reference library and prints what it holds (fails if the library rejects it).
"""
import argparse
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ap = argparse.ArgumentParser()
ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "safetensors"))
ap.add_argument("--check", nargs="*", default=[])
args = ap.parse_args()

os.makedirs(args.out, exist_ok=True)
tensors = {
    "arange_f32": torch.arange(6, dtype=torch.float32).reshape(2, 3),
    "arange_bf16": torch.arange(6, dtype=torch.bfloat16),
    "ids_i64": torch.tensor([3, 1, 4, 1, 5], dtype=torch.int64),
}
path = os.path.join(args.out, "reference.safetensors")
save_file(tensors, path, metadata={"writer": "safetensors-python"})
print("wrote", path, os.path.getsize(path), "bytes")

for f in args.check:
    with safe_open(f, framework="pt") as s:
        print(f, "metadata", s.metadata())
        for k in s.keys():
            t = s.get_tensor(k)
            print(" ", k, t.dtype, tuple(t.shape), float(t.float().sum()))
