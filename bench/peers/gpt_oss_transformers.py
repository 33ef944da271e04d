#!/usr/bin/env python3
"""Hugging Face transformers' GptOssForCausalLM on the checkpoint ember benchmarks, for side-by-side numbers.

Reads a checkpoint in OpenAI's original layout (what `ember fixture --preset 20b --out DIR --seed 0` writes:
config.json + model.safetensors, MXFP4 experts as block.N.mlp.mlp1_weight.blocks/scales ...), converts it
in memory to transformers' names with tests/golden/gpt_oss_hf_golden.py's convert() (q/k/v split from
attn.qkv, MXFP4 experts dequantized exactly to bf16 gate_up_proj [E, H, 2I] / down_proj [E, I, H]; the
dequantization runs on the GPU with the same arithmetic), builds GptOssForCausalLM in bf16 on CUDA and
measures, with seeded random token ids:
  prefill   tokens/s of one forward over P prompt tokens with use_cache (logits_to_keep=1, as generate()
            calls it), after a warm-up forward of the same length; median of --reps;
  decode    batch-1 greedy generate(): a stopping criterion synchronizes and stamps the time after every
            new token, and decode tokens/s counts only the steps after the first token (the prefill's);
  memory    torch.cuda.max_memory_allocated / max_memory_reserved per measurement and overall.
Variants: transformers' default (eager attention, DynamicCache, no compile); static cache with generate()'s
automatic torch.compile of the decoding step (mode reduce-overhead, CUDA graphs); the other attention and
experts implementations the installed transformers accepts for GptOss.
Prints one JSON object on stdout (and to --json PATH, rewritten after every measurement, so a run cut off
by a time limit still leaves what it measured); progress goes to stderr.

  python3 bench/peers/gpt_oss_transformers.py --fixture DIR [--json PATH] [--quick] [--budget-s S]
  python3 bench/peers/gpt_oss_transformers.py --golden-check-only      (tiny checkpoints of tests/data)
"""
import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import signal
import statistics
import sys
import time
import traceback

T0 = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def fail(msg):
    print(f"gpt_oss_transformers: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


try:
    import torch
except ImportError as e:  # noqa: F841
    fail("PyTorch is not installed (import torch failed); this benchmark needs torch, transformers, safetensors")


def find_repo_root(explicit):
    """The ember checkout holding tests/golden/gpt_oss_hf_golden.py: --repo, else above this file, else cwd."""
    cands = [explicit] if explicit else []
    d = HERE
    for _ in range(4):
        d = os.path.dirname(d)
        cands.append(d)
    cands.append(os.getcwd())
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "tests", "golden", "gpt_oss_hf_golden.py")):
            return c
    fail("cannot find tests/golden/gpt_oss_hf_golden.py (looked in %s); pass --repo" % ", ".join(map(str, cands)))


def load_golden(root):
    path = os.path.join(root, "tests", "golden", "gpt_oss_hf_golden.py")
    spec = importlib.util.spec_from_file_location("gpt_oss_hf_golden", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, path


def make_device_dequantize(fp4_values):
    """gpt_oss_hf_golden.dequantize with the lookup table on the tensors' device (same arithmetic, exact)."""
    def dequantize(blocks, scales):
        lut = torch.tensor(fp4_values, dtype=torch.float32, device=blocks.device)
        lo, hi = lut[(blocks & 0x0F).long()], lut[(blocks >> 4).long()]
        vals = torch.stack([lo, hi], dim=-1).flatten(-2)  # byte j: value 2j low nibble, 2j+1 high
        vals = torch.ldexp(vals, scales.to(torch.int32)[..., None] - 127)
        return vals.flatten(-2)
    return dequantize


class SafetensorsFile:
    """Lazy reader: safetensors.safe_open, tensors straight to `device`."""

    def __init__(self, path, device):
        from safetensors import safe_open
        self.path = path
        self.f = safe_open(path, framework="pt", device=str(device))
        self.names = list(self.f.keys())

    def get(self, name):
        return self.f.get_tensor(name)


def probe_experts_layout():
    """transformers' experts parameter layout, read from a non-square toy GptOss (H=64, I=32) on the CPU:
    'x@W' when gate_up_proj is [E, H, 2I] and down_proj [E, I, H] (what convert() writes), 'W@x' when
    they are [E, 2I, H] / [E, H, I]. (20b's down_proj is square, so its shape alone cannot tell.)"""
    from transformers import GptOssConfig, GptOssForCausalLM
    cfg = GptOssConfig(num_hidden_layers=1, num_local_experts=2, num_experts_per_tok=1, vocab_size=16, hidden_size=64,
                       intermediate_size=32, head_dim=16, num_attention_heads=4, num_key_value_heads=2,
                       sliding_window=8, layer_types=["sliding_attention"])
    m = GptOssForCausalLM(cfg)
    e = m.model.layers[0].mlp.experts
    gu, dn = tuple(e.gate_up_proj.shape), tuple(e.down_proj.shape)
    if gu == (2, 64, 64) and dn == (2, 32, 64):
        return "x@W", gu, dn
    if gu == (2, 64, 64) and dn == (2, 64, 32):
        return "W@x", gu, dn
    raise RuntimeError(f"unknown experts layout: gate_up_proj {gu}, down_proj {dn} for H=64, I=32")


def set_default_dtype(dt):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dt)
    return old


def build_model(hf_cfg, dtype, device, attn, experts_impl=None):
    """GptOssForCausalLM from its config, parameters created on `device` in `dtype` (initialized there at once:
    no CPU copy of 21B parameters), as from_pretrained(dtype=...) would build it before loading."""
    from transformers import GptOssConfig, GptOssForCausalLM
    config = GptOssConfig(**hf_cfg)
    kw = {"attn_implementation": attn}
    if experts_impl:
        kw["experts_implementation"] = experts_impl
    errors = []
    old = set_default_dtype(dtype)
    try:
        with torch.device(device):
            for dkw in ("dtype", "torch_dtype"):
                try:
                    model = GptOssForCausalLM._from_config(config, **{dkw: dtype}, **kw)
                    break
                except TypeError as e:
                    errors.append(f"_from_config({dkw}=...): {e}")
            else:
                raise RuntimeError("; ".join(errors))
    finally:
        torch.set_default_dtype(old)
    model.eval()
    return model


def load_weights(model, st, cfg, golden, layout, log_every=6):
    """Copies the converted checkpoint into the model's parameters, one layer at a time on the device:
    golden.convert() on that layer's tensors (renamed block.0), golden.dequantize swapped for the on-device
    version while it runs. Every parameter must be written exactly once, with its exact shape."""
    params = dict(model.named_parameters())
    done = {}
    L = cfg["num_hidden_layers"]
    shared = {k: st.get(k) for k in ("embedding.weight", "norm.scale", "unembedding.weight")}
    cfg1 = dict(cfg, num_hidden_layers=1)
    host_dequantize = golden.dequantize
    golden.dequantize = make_device_dequantize(golden.FP4_VALUES)
    transposed = []
    try:
        for n in range(L):
            pre = f"block.{n}."
            sub = dict(shared)
            for k in st.names:
                if k.startswith(pre):
                    sub["block.0." + k[len(pre):]] = st.get(k)
            t = golden.convert(sub, cfg1, False)
            for k, v in t.items():
                if k.startswith("model.layers.0."):
                    k = f"model.layers.{n}." + k[len("model.layers.0."):]
                elif n > 0:
                    continue
                if k not in params:
                    raise KeyError(f"converted tensor {k} {tuple(v.shape)} has no parameter in GptOssForCausalLM")
                p = params[k]
                if layout == "W@x" and v.dim() == 3:
                    v = v.transpose(1, 2)
                    transposed.append(k)
                if tuple(p.shape) != tuple(v.shape):
                    raise ValueError(f"{k}: parameter {tuple(p.shape)} vs converted {tuple(v.shape)}")
                with torch.no_grad():
                    p.copy_(v)
                done[k] = done.get(k, 0) + 1
            del t, sub
            if log_every and (n + 1) % log_every == 0:
                log(f"  converted layer {n + 1}/{L}")
    finally:
        golden.dequantize = host_dequantize
    missing = sorted(set(params) - set(done))
    twice = sorted(k for k, c in done.items() if c != 1)
    if missing or twice:
        raise RuntimeError(f"parameters not written: {missing[:8]} ({len(missing)}); written twice: {twice[:8]}")
    return {"parameters": len(params), "transposed_for_layout": len(transposed)}


def gb(x):
    return round(x / 1e9, 3)


def mem_now():
    return {"allocated_gb": gb(torch.cuda.memory_allocated()), "reserved_gb": gb(torch.cuda.memory_reserved())}


def mem_peak():
    return {"peak_allocated_gb": gb(torch.cuda.max_memory_allocated()),
            "peak_reserved_gb": gb(torch.cuda.max_memory_reserved())}


def reset_peak():
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()


def rand_ids(n, vocab, seed):
    g = torch.Generator().manual_seed(seed * 1000003 + n)
    return torch.randint(0, vocab, (1, n), generator=g).cuda()


class StageTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds, what):
    def handler(signum, frame):
        raise StageTimeout(f"{what}: still running after {seconds:.0f} s (time limit), abandoned")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Bench:
    def __init__(self, args, result):
        self.args = args
        self.R = result
        self.deadline = T0 + args.budget_s

    def remaining(self):
        return self.deadline - time.perf_counter()

    def save(self):
        if self.args.json:
            tmp = self.args.json + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.R, f, indent=2)
            os.replace(tmp, self.args.json)

    def stage(self, name, need_s, fn, limit_s=None):
        """Runs fn() unless less than need_s seconds of the budget are left; bounded by limit_s and the
        budget; any error (OOM included) is recorded and the run goes on."""
        left = self.remaining()
        if left < need_s:
            self.R["skipped"].append({"stage": name, "reason": f"time budget: {left:.0f} s left, needs ~{need_s} s"})
            log(f"skip {name}: {left:.0f} s left")
            self.save()
            return None
        limit = min(limit_s or left, left - 3)
        log(f"stage {name} (limit {limit:.0f} s)")
        t = time.perf_counter()
        try:
            with time_limit(limit, name):
                out = fn()
            return out
        except BaseException as e:  # noqa: BLE001  (a KeyboardInterrupt ends the run, after saving)
            oom = "OutOfMemoryError" in type(e).__name__ or "out of memory" in str(e)
            err = {"stage": name, "error": type(e).__name__, "message": str(e)[:1500], "oom": oom,
                   "seconds": round(time.perf_counter() - t, 1)}
            if not oom and not isinstance(e, StageTimeout):
                err["traceback_tail"] = traceback.format_exc()[-2500:]
            self.R["errors"].append(err)
            log(f"  {name} failed: {type(e).__name__}: {str(e)[:300]}")
            if isinstance(e, KeyboardInterrupt):
                self.save()
                raise
            return None
        finally:
            gc.collect()
            with contextlib.suppress(Exception):
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            self.save()


def prefill(model, vocab, n, reps, seed, variant, R):
    ids = rand_ids(n, vocab, seed)
    reset_peak()
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)  # warm-up, same length
        del out
        times = []
        for _ in range(reps):
            torch.cuda.synchronize()
            t = time.perf_counter()
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
            del out
    med = statistics.median(times)
    rec = {"variant": variant, "kind": "prefill", "prompt_tokens": n, "tokens_per_s": round(n / med, 1),
           "median_s": round(med, 5), "seconds": [round(x, 5) for x in times], **mem_peak()}
    R["results"].append(rec)
    log(f"  prefill {n}: {rec['tokens_per_s']} tok/s ({med * 1e3:.1f} ms), peak {rec['peak_allocated_gb']} GB")
    return rec


def stamp_criteria():
    from transformers import StoppingCriteria

    class Stamp(StoppingCriteria):
        def __init__(self):
            self.t = []

        def __call__(self, input_ids, scores, **kwargs):
            torch.cuda.synchronize()
            self.t.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return Stamp()


def generate_timed(model, ids, new_tokens):
    from transformers import StoppingCriteriaList
    stamp = stamp_criteria()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0,
                             stopping_criteria=StoppingCriteriaList([stamp]))
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    return out, stamp.t, t0, t1


def decode(model, vocab, prompt, new_tokens, warm_tokens, seed, variant, R, extra=None):
    ids = rand_ids(prompt, vocab, seed + 1)
    tw = time.perf_counter()
    generate_timed(model, ids, warm_tokens)  # warm-up (and, with a static cache, compilation)
    warm_s = time.perf_counter() - tw
    reset_peak()
    out, ts, t0, t1 = generate_timed(model, ids, new_tokens)
    produced = int(out.shape[1] - ids.shape[1])
    steps = [b - a for a, b in zip(ts, ts[1:])]
    if not steps:
        raise RuntimeError(f"generate produced {produced} tokens, stamped {len(ts)}: nothing to time")
    dec_s = ts[-1] - ts[0]
    rec = {"variant": variant, "kind": "decode", "prompt_tokens": prompt, "new_tokens": produced,
           "timed_decode_steps": len(steps), "tokens_per_s": round(len(steps) / dec_s, 2),
           "median_step_ms": round(statistics.median(steps) * 1e3, 3), "min_step_ms": round(min(steps) * 1e3, 3),
           "max_step_ms": round(max(steps) * 1e3, 3), "prefill_plus_first_token_s": round(ts[0] - t0, 4),
           "generate_total_s": round(t1 - t0, 4), "warmup_generate_s": round(warm_s, 2),
           "warmup_new_tokens": warm_tokens, **mem_peak()}
    if extra:
        rec.update(extra)
    R["results"].append(rec)
    log(f"  decode {prompt}+{produced}: {rec['tokens_per_s']} tok/s (median step {rec['median_step_ms']} ms), "
        f"warm-up {warm_s:.1f} s, peak {rec['peak_allocated_gb']} GB")
    return rec


def golden_check(golden, root, layout, R):
    """The conversion and model build, on tests/data/gpt_oss/tiny_a: logits against transformers' own
    (tiny_a_hf_bf16/golden.safetensors, float32 eager on the CPU), in float32 and in bf16 on the GPU."""
    from safetensors.torch import load_file
    d = os.path.join(root, "tests", "data", "gpt_oss")
    src, ref_dir = os.path.join(d, "tiny_a"), os.path.join(d, "tiny_a_hf_bf16")
    cfg = json.load(open(os.path.join(src, "config.json")))
    ref = load_file(os.path.join(ref_dir, "golden.safetensors"))
    tokens = ref["tokens"].to(torch.int64).cuda()
    out = {"checkpoint": "tests/data/gpt_oss/tiny_a", "reference": "tests/data/gpt_oss/tiny_a_hf_bf16/golden.safetensors"}
    st = SafetensorsFile(os.path.join(src, "model.safetensors"), "cuda")
    # on-device dequantization == the golden's (CPU) one, bit for bit
    b, s = st.get("block.0.mlp.mlp1_weight.blocks"), st.get("block.0.mlp.mlp1_weight.scales")
    out["device_dequantize_equals_golden"] = bool(torch.equal(
        make_device_dequantize(golden.FP4_VALUES)(b, s).cpu(), golden.dequantize(b.cpu(), s.cpu())))
    try:
        from transformers.integrations import mxfp4 as hf_mxfp4
        theirs = hf_mxfp4.convert_moe_packed_tensors(b.cpu(), s.cpu(), dtype=torch.bfloat16).cpu()
        mine = golden.dequantize(b.cpu(), s.cpu()).transpose(1, 2).to(torch.bfloat16)
        out["dequantize_equals_transformers_convert_moe_packed_tensors"] = bool(torch.equal(theirs, mine))
    except Exception as e:  # noqa: BLE001
        out["dequantize_vs_transformers"] = f"not compared: {type(e).__name__}: {e}"
    hf_cfg = golden.hf_config(cfg, False)
    for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        model = build_model(hf_cfg, dt, "cuda", "eager")
        load_weights(model, st, cfg, golden, layout, log_every=0)
        with torch.inference_mode():
            logits = model(input_ids=tokens[None], use_cache=False).logits[0].float().cpu()
        rl = ref["logits"].float()
        out[name] = {"max_abs_diff": float((logits - rl).abs().max()), "max_abs_logit": float(rl.abs().max()),
                     "argmax_agree": float((logits.argmax(-1) == rl.argmax(-1)).float().mean())}
        del model
    ok = out["float32"]["max_abs_diff"] < 1e-3 and out["float32"]["argmax_agree"] == 1.0
    out["ok"] = bool(ok and out["device_dequantize_equals_golden"])
    R["golden_check"] = out
    log(f"  golden check: {json.dumps(out)}")
    if not out["ok"]:
        raise RuntimeError(f"conversion check failed: {out}")
    return out


def attn_probe(golden, name):
    """Whether this transformers builds GptOss with attn_implementation=name (tiny model, on the CPU)."""
    hf = golden.hf_config({"num_hidden_layers": 2, "num_experts": 2, "experts_per_token": 1, "vocab_size": 32,
                           "hidden_size": 64, "intermediate_size": 64, "swiglu_limit": 7.0, "head_dim": 16,
                           "num_attention_heads": 4, "num_key_value_heads": 2, "sliding_window": 8,
                           "initial_context_length": 4096, "rope_theta": 150000.0, "rope_scaling_factor": 32.0,
                           "rope_ntk_alpha": 1.0, "rope_ntk_beta": 32.0}, False)
    try:
        m = build_model(hf, torch.float32, "cpu", name)
        return {"accepted": True, "config_attn_implementation": m.config._attn_implementation}
    except Exception as e:  # noqa: BLE001
        return {"accepted": False, "error": f"{type(e).__name__}: {str(e)[:600]}"}


def set_attn(model, name):
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:
        model.config._attn_implementation = name


def versions():
    v = {"python": platform.python_version(), "torch": torch.__version__, "cuda_runtime": torch.version.cuda}
    import transformers
    v["transformers"] = transformers.__version__
    for mod in ("safetensors", "triton", "kernels", "triton_kernels", "accelerate"):
        try:
            m = __import__(mod)
            v[mod] = getattr(m, "__version__", "present")
        except Exception as e:  # noqa: BLE001
            v[mod] = f"absent ({type(e).__name__})"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        v["gpu"] = p.name
        v["gpu_memory_gb"] = gb(p.total_memory)
        v["gpu_capability"] = f"{p.major}.{p.minor}"
    return v


def mxfp4_support():
    """Can transformers run the MXFP4 experts natively here? (It needs triton >= 3.4 and the hub kernels
    `kernels-community/triton_kernels`, fetched over the network; otherwise it dequantizes to bf16.)"""
    out = {}
    try:
        from transformers.utils import import_utils as iu
        for fn in ("is_triton_available", "is_kernels_available", "is_accelerate_available"):
            if hasattr(iu, fn):
                out[fn] = bool(getattr(iu, fn)())
    except Exception as e:  # noqa: BLE001
        out["error"] = str(e)
    try:
        from transformers.quantizers import quantizer_mxfp4 as q
        import inspect
        src = inspect.getsource(q.Mxfp4HfQuantizer.validate_environment)
        out["validate_environment_mentions"] = sorted({w for w in ("triton", "kernels", "triton_kernels", "dequantize")
                                                       if w in src})
    except Exception as e:  # noqa: BLE001
        out["quantizer"] = f"{type(e).__name__}: {e}"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixture", help="checkpoint in the original layout (ember fixture --preset 20b --out DIR)")
    ap.add_argument("--json", help="also write the JSON here (rewritten after every measurement)")
    ap.add_argument("--repo", help="ember checkout with tests/golden (default: found above this file, or cwd)")
    ap.add_argument("--quick", action="store_true", help="fewer and shorter measurements, no compile, no variants")
    ap.add_argument("--budget-s", type=float, default=1e9, help="stop starting new measurements after this many s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefill", default="512,2048,8192", help="prompt lengths for prefill")
    ap.add_argument("--reps", type=int, default=3, help="timed forwards per prefill length (median)")
    ap.add_argument("--decode", default="128:64,4096:32", help="prompt:new_tokens pairs for greedy decode")
    ap.add_argument("--no-compile", action="store_true", help="skip the static cache + torch.compile variant")
    ap.add_argument("--compile-limit-s", type=float, default=240, help="time limit for the compiled variant")
    ap.add_argument("--no-variants", action="store_true", help="skip other attention/experts implementations")
    ap.add_argument("--golden-check", action="store_true", help="first check the conversion on tests/data tiny_a")
    ap.add_argument("--golden-check-only", action="store_true")
    ap.add_argument("--wait-s", type=float, default=0,
                    help="wait up to this long for DIR/config.json (a fixture still being written; ember writes it "
                         "last); a file DIR.failed ends the wait")
    args = ap.parse_args()
    if not args.fixture and not args.golden_check_only:
        ap.error("--fixture DIR is required (or --golden-check-only)")
    if args.quick:
        args.prefill, args.reps, args.decode = "512,2048", 1, "128:16"
        args.no_compile = True
        args.no_variants = True
    if not torch.cuda.is_available():
        fail("no CUDA device visible to PyTorch (torch.cuda.is_available() is False)")
    try:
        import transformers  # noqa: F401
        from transformers import GptOssForCausalLM  # noqa: F401
    except ImportError as e:
        fail(f"transformers with GptOss is needed: {e}")
    root = find_repo_root(args.repo)
    golden, golden_path = load_golden(root)
    R = {"tool": "bench/peers/gpt_oss_transformers.py", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
         "argv": sys.argv[1:], "versions": versions(), "golden_module": os.path.relpath(golden_path, root),
         "settings": {}, "results": [], "errors": [], "skipped": []}
    B = Bench(args, R)
    log(f"versions: {json.dumps(R['versions'])}")
    R["mxfp4_native"] = mxfp4_support()
    try:
        layout, gu, dn = probe_experts_layout()
        R["experts_layout"] = {"layout": layout, "probe_gate_up_proj": gu, "probe_down_proj": dn}
    except Exception as e:  # noqa: BLE001
        layout = "x@W"
        R["experts_layout"] = {"layout": layout, "probe_error": f"{type(e).__name__}: {e}"}
    torch.backends.cuda.matmul.allow_tf32 = False  # transformers' default; bf16 GEMMs are unaffected
    if args.golden_check or args.golden_check_only:
        r = B.stage("golden_check", 5, lambda: golden_check(golden, root, layout, R), limit_s=120)
        if args.golden_check_only:
            print(json.dumps(R, indent=2))
            B.save()
            sys.exit(0 if r is not None else 1)
        # a failed check is recorded (R["errors"]) and the timing goes on: the shapes, hence the work, are the same
    fx = args.fixture
    cfg_path, st_path = os.path.join(fx, "config.json"), os.path.join(fx, "model.safetensors")
    if args.wait_s > 0 and not os.path.isfile(cfg_path):
        log(f"waiting up to {args.wait_s:.0f} s for {cfg_path}")
        end = time.perf_counter() + args.wait_s
        while not os.path.isfile(cfg_path) and not os.path.exists(fx.rstrip("/") + ".failed") \
                and time.perf_counter() < end:
            time.sleep(0.5)
        R["fixture_waited_until_s"] = round(time.perf_counter() - T0, 1)
    for p in (cfg_path, st_path):
        if not os.path.isfile(p):
            fail(f"{p} is missing: make the checkpoint with `ember fixture --preset 20b --out {fx} --seed 0`")
    cfg = json.load(open(cfg_path))
    if "num_local_experts" in cfg:
        fail(f"{cfg_path} is a Hugging Face config; this script reads the original layout (ember fixture)")
    hf_cfg = golden.hf_config(cfg, False)
    V = cfg["vocab_size"]
    R["fixture"] = {"dir": fx, "config": cfg, "model_safetensors_bytes": os.path.getsize(st_path)}
    R["settings"] = {
        "dtype": "bfloat16 (all parameters; experts dequantized exactly from MXFP4)",
        "device": "cuda:0", "batch": 1, "seed": args.seed,
        "prompt_ids": "torch.randint(0, vocab) seeded per length",
        "prefill": {"lengths": args.prefill, "reps": args.reps, "warmup": "one forward of the same length",
                    "call": "model(input_ids, use_cache=True, logits_to_keep=1) under inference_mode"},
        "decode": {"pairs": args.decode, "call": "model.generate(do_sample=False, min_new_tokens=max_new_tokens=N)",
                   "timing": "per-token stamps (cuda synchronize) from a StoppingCriteria; decode tok/s = (N-1) / "
                             "(last stamp - first stamp), i.e. the prefill and its first token are excluded"},
        "hf_config": hf_cfg, "tf32": False,
    }
    B.save()

    # ---- build + load ----
    state = {}

    def do_load():
        t = time.perf_counter()
        reset_peak()
        model = build_model(hf_cfg, torch.bfloat16, "cuda", "eager")
        t_build = time.perf_counter() - t
        st = SafetensorsFile(st_path, "cuda")
        info = load_weights(model, st, cfg, golden, layout)
        torch.cuda.synchronize()
        del st
        gc.collect()
        torch.cuda.empty_cache()
        state["model"] = model
        R["load"] = {"seconds": round(time.perf_counter() - t, 1), "build_seconds": round(t_build, 1), **info,
                     "parameter_count": sum(p.numel() for p in model.parameters()),
                     "parameter_bytes_gb": gb(sum(p.numel() * p.element_size() for p in model.parameters())),
                     "after_load": mem_now(), "load_peak": mem_peak()}
        try:
            e = model.model.layers[0].mlp.experts
            R["load"].update({
                "experts_class": type(e).__name__, "gate_up_proj": list(e.gate_up_proj.shape),
                "down_proj": list(e.down_proj.shape), "dtypes": sorted({str(p.dtype) for p in model.parameters()}),
                "norm_dtype": str(model.model.norm.weight.dtype),
                "attn_implementation": model.config._attn_implementation,
                "experts_implementation": getattr(model.config, "_experts_implementation", None)})
            rot = getattr(model.model, "rotary_emb", None) or model.model.layers[0].self_attn.rotary_emb
            inv, _ = golden.original_inv_freq(cfg)
            R["load"].update({
                "rope_inv_freq_dtype": str(rot.inv_freq.dtype),
                "rope_inv_freq_max_rel_diff_vs_gpt_oss_torch": float(((rot.inv_freq.float().cpu() - inv) / inv).abs().max()),
                "rope_attention_scaling": float(rot.attention_scaling)})
        except Exception as e:  # noqa: BLE001  (diagnostics only)
            R["load"]["diagnostics_error"] = f"{type(e).__name__}: {e}"
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0
        log(f"  loaded: {json.dumps(R['load'])}")
        return model

    if B.stage("load", 10, do_load) is None:
        print(json.dumps(R, indent=2))
        sys.exit(1)
    model = state["model"]
    seed = args.seed
    lengths = [int(x) for x in args.prefill.split(",") if x]
    pairs = [tuple(int(y) for y in x.split(":")) for x in args.decode.split(",") if x]
    reps = args.reps

    # ---- (a) transformers' default: eager attention, DynamicCache, no compile ----
    var_a = {"name": "default", "attn_implementation": model.config._attn_implementation,
             "experts_implementation": getattr(model.config, "_experts_implementation", None),
             "cache": "DynamicCache (generate's default)", "compile": False}
    R["settings"]["variant_default"] = var_a
    for n in [x for x in lengths if x <= 2048]:
        B.stage(f"default prefill {n}", 8, lambda n=n: prefill(model, V, n, reps, seed, "default", R))
    short = [p for p in pairs if p[0] <= 512]
    long_ = [p for p in pairs if p[0] > 512]
    for p, nt in short:
        B.stage(f"default decode {p}+{nt}", 15,
                lambda p=p, nt=nt: decode(model, V, p, nt, 8, seed, "default", R))
    for n in [x for x in lengths if x > 2048]:
        B.stage(f"default prefill {n}", 15, lambda n=n: prefill(model, V, n, max(1, reps - 1), seed, "default", R))
    for p, nt in long_:
        B.stage(f"default decode {p}+{nt}", 20,
                lambda p=p, nt=nt: decode(model, V, p, nt, 4, seed, "default", R))

    # ---- (b) static cache + generate()'s torch.compile of the decoding step ----
    if not args.no_compile and short:
        p, nt = short[0]

        def compiled():
            gc_ = model.generation_config
            gc_.cache_implementation = "static"
            info = {"name": "static+compile", "cache_implementation": "static",
                    "compile_config": repr(getattr(gc_, "compile_config", None)),
                    "how": "generate() compiles the decoding forward itself when the cache is static "
                           "(transformers' auto-compile; CompileConfig defaults: fullgraph, mode reduce-overhead)"}
            if not hasattr(model, "get_compiled_call"):  # older transformers: compile forward by hand
                model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
                info["how"] = "model.forward = torch.compile(model.forward, mode='reduce-overhead', fullgraph=True)"
            R["settings"]["variant_static_compile"] = info
            try:
                rec = decode(model, V, p, nt, nt, seed, "static+compile", R,
                             extra={"note": "warm-up generate includes compilation and CUDA graph capture"})
                info["compiled_call_used"] = hasattr(model, "_compiled_call") or "torch.compile" in info["how"]
                info["compile_config_after"] = repr(getattr(gc_, "compile_config", None))
                return rec
            finally:
                gc_.cache_implementation = None

        B.stage("static+compile decode", 60, compiled, limit_s=args.compile_limit_s)

    # ---- other attention / experts implementations ----
    if not args.no_variants:
        probes = {}
        for name in ("sdpa", "flex_attention", "flash_attention_2"):
            probes[name] = attn_probe(golden, name)
        probes["kernels-community/vllm-flash-attn3"] = {"accepted": None, "error": "not tried: needs the Hub (network)"}
        R["attn_probes"] = probes
        log(f"  attention probes: {json.dumps(probes)}")
        for name in ("sdpa", "flex_attention"):
            if not probes[name]["accepted"]:
                continue

            def other_attn(name=name):
                set_attn(model, name)
                try:
                    prefill(model, V, 2048, 1, seed, f"attn={name}", R)
                    if short:
                        decode(model, V, short[0][0], 32, 8, seed, f"attn={name}", R)
                finally:
                    set_attn(model, "eager")
            B.stage(f"attn {name}", 30, other_attn, limit_s=90)
        if hasattr(model, "set_experts_implementation"):
            cur = getattr(model.config, "_experts_implementation", None)
            for name in ("grouped_mm", "batched_mm", "eager"):
                if name == cur:
                    continue

                def other_experts(name=name):
                    model.set_experts_implementation(name)
                    try:
                        prefill(model, V, 2048, 1, seed, f"experts={name}", R)
                        if short:
                            decode(model, V, short[0][0], 32, 8, seed, f"experts={name}", R)
                    finally:
                        model.set_experts_implementation(cur)
                B.stage(f"experts {name}", 30, other_experts, limit_s=90)
        else:
            R["experts_implementations"] = "this transformers has no set_experts_implementation (one GptOssExperts path)"

    peaks = [r for r in R["results"] if "peak_allocated_gb" in r]
    R["overall"] = {"max_peak_allocated_gb": max((r["peak_allocated_gb"] for r in peaks), default=None),
                    "max_peak_reserved_gb": max((r["peak_reserved_gb"] for r in peaks), default=None),
                    "end": mem_now(), "seconds": round(time.perf_counter() - T0, 1)}
    R["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    B.save()
    print(json.dumps(R, indent=2))


if __name__ == "__main__":
    main()
