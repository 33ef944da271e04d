// Goldens for tests/tokenizer/tokenizer_test.cpp from two independent JavaScript implementations
// of tiktoken's o200k_base (npm: gpt-tokenizer@4.0.0 and js-tiktoken@1.0.21); they must agree.
// Special-token text is encoded as plain text (no special tokens allowed), like ember's default.
// Writes tests/data/tokenizer/corpus_golden.jsonl: per corpus document its token count, the
// FNV-1a-64 hash of the ids (as little-endian u32 bytes) and the first 32 ids.
// Usage: npm ci && node gen_corpus.mjs && node make_goldens.mjs
import fs from 'node:fs'
import path from 'node:path'
import { encode as gptEncode } from 'gpt-tokenizer/encoding/o200k_base'
import { Tiktoken } from 'js-tiktoken/lite'
import o200k from 'js-tiktoken/ranks/o200k_base'

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..')
const dataDir = path.join(root, 'tests/data/tokenizer')
const docs = fs.readFileSync(path.join(dataDir, 'corpus.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l))
const tik = new Tiktoken(o200k)

function fnv1a64(ids) {
  let h = 0xcbf29ce484222325n
  const prime = 0x100000001b3n
  for (const id of ids)
    for (let k = 0; k < 4; ++k) {
      h ^= BigInt((id >>> (8 * k)) & 0xff)
      h = (h * prime) & 0xffffffffffffffffn
    }
  return h.toString(16).padStart(16, '0')
}

const lines = []
let tokens = 0
for (let i = 0; i < docs.length; ++i) {
  const a = gptEncode(docs[i], { allowedSpecial: new Set(), disallowedSpecial: new Set() })
  const b = tik.encode(docs[i], [], [])
  if (a.length !== b.length || a.some((x, k) => x !== b[k]))
    throw new Error(`document ${i}: gpt-tokenizer and js-tiktoken disagree`)
  tokens += a.length
  lines.push(JSON.stringify({ n: a.length, fnv: fnv1a64(a), head: a.slice(0, 32) }))
}
fs.writeFileSync(path.join(dataDir, 'corpus_golden.jsonl'), lines.join('\n') + '\n')
console.log(`corpus_golden.jsonl: ${docs.length} documents, ${tokens} tokens; both implementations agree`)
