"""OpenAI's tiktoken (Python, Rust core) on ember's tokenizer corpus: parity with the npm goldens
(tests/data/tokenizer/corpus_golden.jsonl), the U+0085/U+FEFF cases where JavaScript's \\s differs,
and throughput (one thread; encode_batch on all threads) for ember's tokenizer benchmark.
Runs offline: the ranks come from a local o200k_base.tiktoken.
Usage: python3 tiktoken_check.py CORPUS.jsonl GOLDEN.jsonl o200k_base.tiktoken"""
import json, os, sys, time
import tiktoken
import tiktoken_ext.openai_public as op
from tiktoken.load import load_tiktoken_bpe

corpus, golden, ranks_path = sys.argv[1:4]
op.load_tiktoken_bpe = lambda *a, **k: load_tiktoken_bpe(ranks_path)
enc = tiktoken.Encoding(**op.o200k_base())
docs = [json.loads(l) for l in open(corpus, encoding="utf-8")]
gold = [json.loads(l) for l in open(golden)]

def fnv(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for k in range(4):
            h ^= (i >> (8 * k)) & 0xFF
            h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"

bad = [i for i, (d, g) in enumerate(zip(docs, gold))
       if (lambda ids: len(ids) != g["n"] or fnv(ids) != g["fnv"])(enc.encode_ordinary(d))]
print(json.dumps({"tiktoken": tiktoken.__version__, "documents": len(docs), "mismatches": bad[:20]}))
for s in ["a \u0085\u0085 b", "x\u0085y", "\ufeffhello", "a \ufeff b", "don\u017ft", "It'S"]:
    print(json.dumps({"text": s, "ids": enc.encode_ordinary(s)}))
nbytes = sum(len(d.encode("utf-8")) for d in docs)
ntok = sum(len(enc.encode_ordinary(d)) for d in docs)
for threads in [1, os.cpu_count()]:
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        if threads == 1:
            for d in docs: enc.encode_ordinary(d)
        else:
            enc.encode_ordinary_batch(docs, num_threads=threads)
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"impl": "tiktoken", "threads": threads, "seconds": best,
                      "mb_per_s": nbytes / 1e6 / best, "tokens_per_s": ntok / best}))
