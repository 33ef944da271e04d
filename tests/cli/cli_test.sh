#!/usr/bin/env bash
# The ember program end to end: exit codes, one-line errors, tokenizer and model commands.
# Usage: cli_test.sh EMBER_BINARY SOURCE_DIR
set -uo pipefail
ember=$1
src=$2
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() {  # check NAME EXPECTED_RC CMD... ; output in $tmp/out, $tmp/err
  local name=$1 want=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL $name: exit $rc, expected $want"; cat "$tmp/err"; fail=1; return 1
  fi
  return 0
}
expect_out() { grep -qF -- "$2" "$tmp/out" || { echo "FAIL $1: stdout lacks '$2'"; cat "$tmp/out"; fail=1; }; }
expect_err() {
  grep -qF -- "$2" "$tmp/err" || { echo "FAIL $1: stderr lacks '$2'"; cat "$tmp/err"; fail=1; }
  [ "$(wc -l <"$tmp/err")" -le 1 ] || { echo "FAIL $1: more than one error line"; cat "$tmp/err"; fail=1; }
}

check version 0 "$ember" --version && expect_out version "ember "
check unknown-option 109 "$ember" --bogus
check no-subcommand 2 "$ember"

vocab=${EMBER_O200K_TIKTOKEN:-$src/.cache/vocab/o200k_base.tiktoken}
if [ -f "$vocab" ]; then
  check tokenize-ids 0 "$ember" tokenize --tokenizer "$vocab" --text "hello world" --ids && expect_out tokenize-ids "24912 2375"
  check tokenize-table 0 "$ember" tokenize --tokenizer "$vocab" --text "hello world" && expect_out tokenize-table '" world"'
  check tokenize-special-as-text 0 "$ember" tokenize --tokenizer "$vocab" --text "<|start|>" --ids
  grep -q 200006 "$tmp/out" && { echo "FAIL tokenize-special-as-text: became a special token"; fail=1; }
  check tokenize-special-allowed 0 "$ember" tokenize --tokenizer "$vocab" --text "<|start|>" --ids --allow-special && expect_out tokenize-special-allowed "200006"
  printf 'caf\xc3\xa9 \xff\n' >"$tmp/in.txt"
  check tokenize-file 0 "$ember" tokenize --tokenizer "$vocab" --file "$tmp/in.txt" --ids
  ids=$(cat "$tmp/out")
  check detokenize 0 "$ember" detokenize --tokenizer "$vocab" --ids "$ids"
  cmp -s "$tmp/out" "$tmp/in.txt" || { echo "FAIL detokenize: bytes differ from the input"; fail=1; }
  check detokenize-range 1 "$ember" detokenize --tokenizer "$vocab" --ids "1 999999" && expect_err detokenize-range "999999"
  check detokenize-garbage 1 "$ember" detokenize --tokenizer "$vocab" --ids "1 x" && expect_err detokenize-garbage "'x' is not a token id"
  check generate-prompt 0 "$ember" generate --model "$src/tests/data/gpt_oss/tiny_a" --tokenizer "$vocab" --prompt "a!" --max-tokens 4
  check generate-prompt-vocab 1 "$ember" generate --model "$src/tests/data/gpt_oss/tiny_a" --tokenizer "$vocab" --prompt "hi" && expect_err generate-prompt-vocab "outside the model's vocabulary"
  check generate-prompt-ids 0 "$ember" generate --model "$src/tests/data/gpt_oss/tiny_a" --tokenizer "$vocab" --prompt "a!" --max-tokens 4 --ids
  [ "$(wc -w <"$tmp/out")" -eq 4 ] || { echo "FAIL generate-prompt-ids: not 4 ids"; cat "$tmp/out"; fail=1; }
else
  echo "SKIP tokenizer commands: $vocab not found (scripts/fetch-vocab)"
fi
check tokenizer-missing 1 "$ember" tokenize --tokenizer "$tmp/none.tiktoken" --text x && expect_err tokenizer-missing "none.tiktoken"
printf 'bad line\n' >"$tmp/bad.tiktoken"
check tokenizer-malformed 1 "$ember" tokenize --tokenizer "$tmp/bad.tiktoken" --text x && expect_err tokenizer-malformed "bad.tiktoken:1"
check generate-no-tokenizer 1 "$ember" generate --model "$src/tests/data/gpt_oss/tiny_a" --prompt "hi" && expect_err generate-no-tokenizer "no tokenizer found"
check generate-ids 0 "$ember" generate --model "$src/tests/data/gpt_oss/tiny_a" --tokens "1 2 3" --max-tokens 3 --ids
check logits 0 "$ember" logits --model "$src/tests/data/gpt_oss/tiny_a" --tokens "1 2 3" --out "$tmp/l.npy"
check model-missing 1 "$ember" logits --model "$tmp/nope" --tokens "1" --out "$tmp/l.npy" && expect_err model-missing "nope"
# bench: the prefill/decode matrix and its JSON (on the CPU the matrix is opt-in).
check bench-matrix 0 "$ember" bench --model "$src/tests/data/gpt_oss/tiny_a" --prompt-tokens 4 --decode-tokens 3 \
  --prefill 8,16 --decode-context 0,20 --json
for key in '"prefill":[{"prompt_tokens":8,' '{"prompt_tokens":16,' '"decode":[{"context":0,"tokens":3,' '{"context":20,"tokens":3,' \
  '"bound_tokens_per_second":' '"engine":"ops","expert_activations":null'; do
  expect_out bench-matrix "$key"
done
check bench-text 0 "$ember" bench --model "$src/tests/data/gpt_oss/tiny_a" --prompt-tokens 4 --decode-tokens 2 --decode-context 5
expect_out bench-text "decode   at      5:"
check bench-context-too-long 1 "$ember" bench --model "$src/tests/data/gpt_oss/tiny_a" --decode-context 200000 && expect_err bench-context-too-long "decode context 200000"
# model.bin: export (refusals, no overwrite, quiet when piped), inspect, verify, run from it.
if [ -f "$vocab" ]; then
  mb="$tmp/mb"
  check mb-fixture 0 "$ember" fixture --preset custom --out "$mb" --seed 12 --layers 2 --experts 4 --hidden 64 \
    --intermediate 64 --heads 2 --kv-heads 1 --head-dim 64 --vocab 200014 --window 8
  check export 0 "$ember" export --src "$mb" --dst "$tmp/model.bin" --tokenizer "$vocab" && expect_out export "MB/s"
  [ -s "$tmp/err" ] && { echo "FAIL export: progress drawn on a pipe"; cat "$tmp/err"; fail=1; }
  check export-exists 1 "$ember" export --src "$mb" --dst "$tmp/model.bin" --tokenizer "$vocab" && expect_err export-exists "--force"
  check export-force 0 "$ember" export --src "$mb" --dst "$tmp/model.bin" --tokenizer "$vocab" --force
  check export-head-dim 1 "$ember" export --src "$src/tests/data/gpt_oss/tiny_a" --dst "$tmp/x.bin" --tokenizer "$vocab" && expect_err export-head-dim "head_dim"
  [ -e "$tmp/x.bin" ] || [ -e "$tmp/x.bin.partial" ] && { echo "FAIL export-head-dim: left a file"; fail=1; }
  check inspect-bin 0 "$ember" inspect "$tmp/model.bin" && expect_out inspect-bin "block.1.mlp.mlp2_bias"
  check inspect-bin-json 0 "$ember" inspect --json "$tmp/model.bin" && expect_out inspect-bin-json '"num_text_tokens": 199998'
  check verify 0 "$ember" verify "$tmp/model.bin" --against "$mb" && expect_out verify "every tensor matches"
  check mb-fixture-2 0 "$ember" fixture --preset custom --out "$tmp/mb2" --seed 13 --layers 2 --experts 4 --hidden 64 \
    --intermediate 64 --heads 2 --kv-heads 1 --head-dim 64 --vocab 200014 --window 8
  check verify-other 1 "$ember" verify "$tmp/model.bin" --against "$tmp/mb2"
  grep -qF "embedding.weight: differs" "$tmp/err" || { echo "FAIL verify-other: no difference named"; cat "$tmp/err"; fail=1; }
  check logits-bin 0 "$ember" logits --model "$tmp/model.bin" --tokens "1 2 200006" --out "$tmp/lb.npy"
  check generate-bin 0 "$ember" generate --model "$tmp/model.bin" --prompt "Hello" --max-tokens 3
  head -c 100000 "$tmp/model.bin" >"$tmp/trunc.bin"
  check verify-truncated 1 "$ember" verify "$tmp/trunc.bin" && expect_err verify-truncated "truncated"
  printf 'GPT-OSS v1.1xxxxxxxxxxxxxxxxxxxxxxx' >"$tmp/magic.bin"
  check logits-not-bin 1 "$ember" logits --model "$tmp/magic.bin" --tokens "1" --out "$tmp/l.npy" && expect_err logits-not-bin "magic"
fi
[ $fail -eq 0 ] && echo "cli: all checks passed"
exit $fail
