// o200k tokenizer throughput on the committed parity corpus (tests/data/tokenizer/corpus.jsonl,
// 1.25 MB of mixed scripts, code, emoji and whitespace): encode one thread and batch on all
// threads, decode; and single-line inputs of growing size (time should grow linearly).
// Counters: MB/s of text and tokens/s. Peers on the same corpus: scripts/bench-tokenizer.
//   tokenizer_bench [--benchmark_filter=Encode] (needs scripts/fetch-vocab or EMBER_O200K_TIKTOKEN)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ember/core/thread_pool.h"
#include "ember/tokenizer/tokenizer.h"

namespace {

using namespace ember;
using tokenizer::Tokenizer;

const Tokenizer& tok() {
  static Tokenizer t = [] {
    const char* env = std::getenv("EMBER_O200K_TIKTOKEN");
    std::string path = env && *env ? env : std::string(EMBER_SOURCE_DIR) + "/.cache/vocab/o200k_base.tiktoken";
    return Tokenizer::o200k_harmony(path);
  }();
  return t;
}

const std::vector<std::string>& corpus() {
  static std::vector<std::string> docs = [] {
    std::ifstream in(std::string(EMBER_SOURCE_DIR) + "/tests/data/tokenizer/corpus.jsonl");
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line).get<std::string>());
    return out;
  }();
  return docs;
}

void report(benchmark::State& state, double bytes, double tokens) {
  state.counters["MB/s"] = benchmark::Counter(bytes / 1e6, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tok/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_EncodeCorpusOneThread(benchmark::State& state) {
  const auto& docs = corpus();
  double bytes = 0, tokens = 0;
  for (const auto& d : docs) bytes += double(d.size()), tokens += double(tok().encode(d).size());
  for (auto _ : state)
    for (const auto& d : docs) benchmark::DoNotOptimize(tok().encode(d));
  report(state, bytes, tokens);
}

void BM_EncodeCorpusBatchAllThreads(benchmark::State& state) {
  const auto& docs = corpus();
  std::vector<std::string_view> views(docs.begin(), docs.end());
  double bytes = 0, tokens = 0;
  for (const auto& d : docs) bytes += double(d.size()), tokens += double(tok().encode(d).size());
  for (auto _ : state) benchmark::DoNotOptimize(tok().encode_batch(views));
  report(state, bytes, tokens);
  state.SetLabel(std::to_string(num_threads()) + " threads");
}

void BM_DecodeCorpus(benchmark::State& state) {
  std::vector<std::vector<tokenizer::Token>> ids;
  double bytes = 0, tokens = 0;
  for (const auto& d : corpus()) ids.push_back(tok().encode(d)), bytes += double(d.size()), tokens += double(ids.back().size());
  for (auto _ : state)
    for (const auto& v : ids) benchmark::DoNotOptimize(tok().decode(v));
  report(state, bytes, tokens);
}

// One line of `state.range(0)` bytes made of one repeated unit.
void BM_EncodeSingleLine(benchmark::State& state, std::string unit) {
  std::string s;
  while (s.size() < size_t(state.range(0))) s += unit;
  double tokens = double(tok().encode(s).size());
  for (auto _ : state) benchmark::DoNotOptimize(tok().encode(s));
  report(state, double(s.size()), tokens);
  state.SetComplexityN(state.range(0));
}

BENCHMARK(BM_EncodeCorpusOneThread)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_EncodeCorpusBatchAllThreads)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DecodeCorpus)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_EncodeSingleLine, letters, std::string("a"))
    ->RangeMultiplier(4)->Range(160 << 10, 10 << 20)->Unit(benchmark::kMillisecond)->Complexity();
BENCHMARK_CAPTURE(BM_EncodeSingleLine, words, std::string("the cat sat "))
    ->RangeMultiplier(4)->Range(160 << 10, 10 << 20)->Unit(benchmark::kMillisecond)->Complexity();
BENCHMARK_CAPTURE(BM_EncodeSingleLine, spaces, std::string(" "))
    ->RangeMultiplier(4)->Range(160 << 10, 10 << 20)->Unit(benchmark::kMillisecond)->Complexity();
BENCHMARK_CAPTURE(BM_EncodeSingleLine, cjk, std::string("中文字"))
    ->RangeMultiplier(4)->Range(160 << 10, 10 << 20)->Unit(benchmark::kMillisecond)->Complexity();

}  // namespace

BENCHMARK_MAIN();
