// Host sampling of one row of gpt-oss-sized logits (201,088 entries): what `ember generate` pays
// a token when it samples on the CPU. Logits ~ N(0, 2) with 20 spikes of +12 (a peaked LM-like
// distribution); seeded, so every configuration sees the same row.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "ember/generate/sampler.h"

namespace {

using ember::generate::Sampler;
using ember::generate::SamplingConfig;

std::vector<float> logits_row() {
  std::mt19937 rng(0);
  std::normal_distribution<float> nd(0.f, 2.f);
  std::vector<float> l(201088);
  for (auto& v : l) v = nd(rng);
  for (int i = 0; i < 20; ++i) l[rng() % l.size()] += 12.f;
  return l;
}

void run(benchmark::State& state, SamplingConfig c) {
  const auto row = logits_row();
  Sampler s(c, 1);
  for (auto _ : state) benchmark::DoNotOptimize(s.sample(row, {}));
}

void BM_Greedy(benchmark::State& s) { run(s, {.temperature = 0.f}); }
void BM_Temperature(benchmark::State& s) { run(s, {.temperature = 1.f}); }
void BM_TopP(benchmark::State& s) { run(s, {.temperature = 1.f, .top_p = 0.9f}); }
void BM_TopK(benchmark::State& s) { run(s, {.temperature = 1.f, .top_k = 50}); }
void BM_MinP(benchmark::State& s) { run(s, {.temperature = 1.f, .min_p = 0.05f}); }
BENCHMARK(BM_Greedy)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Temperature)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TopP)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TopK)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MinP)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
