#!/usr/bin/env python3
"""Reference sha256 of model.bin files written by OpenAI's UNMODIFIED exporter
(gpt_oss/metal/scripts/create-local-model.py) for the fixtures of tests/formats/modelbin_test.cpp.

Runs offline: the official o200k_base.tiktoken is staged where tiktoken's cache looks for it
(TIKTOKEN_CACHE_DIR, file named by the sha1 of the blob URL, as tiktoken/load.py does), and the
script's one use of openai_harmony (`is_special_token`, over ids 0..200013) is served by a stand-in
module: in o200k_harmony every id >= 199998 is special and every lower id is a text token.

  python3 tests/golden/modelbin_golden.py --ember build/tools/ember/ember \
      --script .ref/gpt_oss/metal/scripts/create-local-model.py \
      --vocab .cache/vocab/o200k_base.tiktoken --work /tmp/mb --out modelbin_golden.json

Needs torch, safetensors, tiktoken, tqdm. Fixtures come from `ember fixture --preset custom` (seeded,
deterministic), with the same arguments the C++ test passes (FIXTURES below and kFixtures there).
"""
import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

# name -> (seed, ember fixture arguments); keep in step with kFixtures in tests/formats/modelbin_test.cpp
FIXTURES = {
    "mb_a": (11, ["--layers", "2", "--experts", "4", "--hidden", "64", "--intermediate", "64", "--heads", "2",
                  "--kv-heads", "1", "--head-dim", "64", "--vocab", "200014", "--window", "16"]),
    "mb_b": (12, ["--layers", "3", "--experts", "5", "--hidden", "64", "--intermediate", "96", "--heads", "4",
                  "--kv-heads", "2", "--head-dim", "64", "--vocab", "201088", "--window", "8"]),
}

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

HARMONY_STUB = '''
import enum
class HarmonyEncodingName(enum.Enum):
    HARMONY_GPT_OSS = "HarmonyGptOss"
class _Encoding:
    def is_special_token(self, token):
        return 199998 <= int(token) <= 201087
def load_harmony_encoding(name):
    assert name == HarmonyEncodingName.HARMONY_GPT_OSS
    return _Encoding()
'''


def sha256_file(path, chunk=1 << 20):
    h, chunks = hashlib.sha256(), []
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
            chunks.append(hashlib.sha256(b).hexdigest()[:16])
    return h.hexdigest(), chunks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ember", required=True)
    ap.add_argument("--script", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    vocab = open(a.vocab, "rb").read()
    assert hashlib.sha256(vocab).hexdigest() == O200K_SHA256, "not the official o200k_base.tiktoken"
    cache = os.path.join(a.work, "tiktoken_cache")
    stub = os.path.join(a.work, "stub")
    os.makedirs(cache, exist_ok=True)
    os.makedirs(stub, exist_ok=True)
    shutil.copyfile(a.vocab, os.path.join(cache, hashlib.sha1(O200K_URL.encode()).hexdigest()))
    with open(os.path.join(stub, "openai_harmony.py"), "w") as f:
        f.write(HARMONY_STUB)
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=cache, PYTHONPATH=stub + os.pathsep + os.environ.get("PYTHONPATH", ""))

    result = {"script_sha256": hashlib.sha256(open(a.script, "rb").read()).hexdigest(), "fixtures": {}}
    # The names the script's o200k_gptoss gives ids 199998..200013 (its table maps two names to 200008).
    os.environ.update(TIKTOKEN_CACHE_DIR=cache)
    sys.path.insert(0, stub)
    spec = importlib.util.spec_from_file_location("create_local_model", a.script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    result["special_names"] = {t: mod.o200k_gptoss.decode_single_token_bytes(t).decode() for t in range(199998, 200014)}
    import tiktoken
    result["tiktoken_version"] = tiktoken.__version__

    for name, (seed, args) in FIXTURES.items():
        src = os.path.join(a.work, name)
        dst = os.path.join(a.work, name + ".bin")
        subprocess.run([a.ember, "fixture", "--preset", "custom", "--out", src, "--seed", str(seed)] + args, check=True)
        subprocess.run([sys.executable, a.script, "-s", src, "-d", dst], check=True, env=env)
        digest, chunks = sha256_file(dst)
        result["fixtures"][name] = {"seed": seed, "args": args, "size": os.path.getsize(dst), "sha256": digest,
                                    "chunk_sha256_1MiB": chunks,
                                    "safetensors_sha256": sha256_file(os.path.join(src, "model.safetensors"))[0]}
        print(name, os.path.getsize(dst), digest, flush=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
