// Peer throughput on ember's tokenizer corpus: gpt-tokenizer and js-tiktoken (o200k_base, one
// thread each, as JavaScript runs), best of N passes. Prints one JSON line per implementation.
// Usage: node bench_peers.mjs [passes]   (scripts/bench-tokenizer runs it next to tokenizer_bench)
import fs from 'node:fs'
import path from 'node:path'
import { encode as gptEncode } from 'gpt-tokenizer/encoding/o200k_base'
import { Tiktoken } from 'js-tiktoken/lite'
import o200k from 'js-tiktoken/ranks/o200k_base'

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..')
const docs = fs.readFileSync(path.join(root, 'tests/data/tokenizer/corpus.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l))
const bytes = docs.reduce((a, d) => a + Buffer.byteLength(d, 'utf8'), 0)
const passes = Number(process.argv[2] ?? 5)
const tik = new Tiktoken(o200k)
const impls = {
  'gpt-tokenizer@4.0.0': (d) => gptEncode(d, { allowedSpecial: new Set(), disallowedSpecial: new Set() }),
  'js-tiktoken@1.0.21': (d) => tik.encode(d, [], []),
}
for (const [name, enc] of Object.entries(impls)) {
  let tokens = 0
  for (const d of docs) tokens += enc(d).length  // warm-up (JIT, caches)
  let best = Infinity
  for (let p = 0; p < passes; ++p) {
    const t0 = process.hrtime.bigint()
    for (const d of docs) enc(d)
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9)
  }
  console.log(JSON.stringify({ impl: name, seconds: best, mb_per_s: bytes / 1e6 / best, tokens_per_s: tokens / best }))
}
