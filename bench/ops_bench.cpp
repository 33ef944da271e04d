// Kernel benchmarks at gpt-oss-20b shapes: f32 and bf16-weight matmul, MXFP4 matvec, attention
// decode/prefill, next to the memory bandwidth measured in the same run. CPU always; CUDA too
// when a GPU is visible. Counters: GB/s of weights (or K/V) read, GFLOP/s.
//   ops_bench --benchmark_filter=Mxfp4 --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "ember/nn/attention.h"
#include "ember/ops.h"

namespace {

using namespace ember;

void finish(benchmark::State& state, Device d, double bytes, double flops) {
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.SetLabel(d.str());
}

// Memory bandwidth: copy a 1 GiB buffer (bytes read + written), the ceiling for the kernels below.
void BM_MemoryCopy(benchmark::State& state, Device d) {
  Tensor t = ones({int64_t(1) << 28}, DType::F32, d), c = zeros({int64_t(1) << 28}, DType::F32, d);
  for (auto _ : state) {
    c.copy_from(t);  // preallocated: no page faults in the loop
    synchronize(d);
    benchmark::DoNotOptimize(c.raw_data());
  }
  finish(state, d, 2.0 * double(t.nbytes()), 0);
}

// y = x W^T, W [N, K] in the given dtype, x [M, K] f32.
void BM_Linear(benchmark::State& state, Device d, DType wt, int64_t N) {
  const int64_t M = state.range(0), K = 2880;
  Generator g(1);
  Tensor w = randn({N, K}, g, wt, d), x = randn({M, K}, g, DType::F32, d);
  for (auto _ : state) {
    Tensor y = linear(x, w);
    synchronize(d);
    benchmark::DoNotOptimize(y.raw_data());
  }
  finish(state, d, double(w.nbytes()), 2.0 * double(M * N * K));
}

// MXFP4 weights [N, K] (gpt-oss mlp1 of one expert: N = 5760, K = 2880): 4.25 bits a weight.
void BM_Mxfp4Linear(benchmark::State& state, Device d, int64_t N) {
  const int64_t M = state.range(0), K = 2880;
  Generator g(2);
  std::vector<uint8_t> blocks(size_t(N * K / 2)), scales(size_t(N * K / 32));
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = uint8_t(i * 2654435761u >> 7);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = uint8_t(118 + i % 10);
  auto w = Mxfp4Tensor::from_parts(Tensor::from_vector(blocks, {N, K / 32, 16}).to(d),
                                   Tensor::from_vector(scales, {N, K / 32}).to(d));
  Tensor x = randn({M, K}, g, DType::F32, d);
  for (auto _ : state) {
    Tensor y = mxfp4_linear(x, w);
    synchronize(d);
    benchmark::DoNotOptimize(y.raw_data());
  }
  finish(state, d, double(blocks.size() + scales.size()), 2.0 * double(M * N * K));
}

// Decode: 1 query per head against T cached keys; 64 q heads, 8 kv heads, head_dim 64.
void BM_AttentionDecode(benchmark::State& state, Device d) {
  const int64_t T = state.range(0);
  Generator g(3);
  Tensor q = randn({1, 64, 1, 64}, g, DType::F32, d), k = randn({1, 8, T, 64}, g, DType::F32, d),
         v = randn({1, 8, T, 64}, g, DType::F32, d), sinks = randn({64}, g, DType::F32, d);
  for (auto _ : state) {
    Tensor o = nn::scaled_dot_product_attention(q, k, v, {.causal = true, .sinks = sinks});
    synchronize(d);
    benchmark::DoNotOptimize(o.raw_data());
  }
  finish(state, d, double(k.nbytes() + v.nbytes()), 4.0 * 64 * double(T) * 64);
}

// Prefill: T tokens causal, 64/8 heads, head_dim 64, window 128 on the even layers.
void BM_AttentionPrefill(benchmark::State& state, Device d) {
  const int64_t T = state.range(0), window = state.range(1);
  Generator g(4);
  Tensor q = randn({1, 64, T, 64}, g, DType::F32, d), k = randn({1, 8, T, 64}, g, DType::F32, d),
         v = randn({1, 8, T, 64}, g, DType::F32, d);
  for (auto _ : state) {
    Tensor o = nn::scaled_dot_product_attention(q, k, v, {.causal = true, .window = window});
    synchronize(d);
    benchmark::DoNotOptimize(o.raw_data());
  }
  const double pairs = window ? double(T) * double(window) : double(T) * double(T + 1) / 2;
  finish(state, d, double(q.nbytes() + k.nbytes() + v.nbytes()), 4.0 * 64 * pairs * 64);
}

void register_all(Device d) {
  const std::string s = d.is_cpu() ? "cpu" : "cuda";
  benchmark::RegisterBenchmark(("MemoryCopy/" + s).c_str(), BM_MemoryCopy, d)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark(("Linear/f32/2880x5760/" + s).c_str(), BM_Linear, d, DType::F32, 5760)
      ->Arg(1)->Arg(16)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark(("Linear/bf16/2880x5760/" + s).c_str(), BM_Linear, d, DType::BF16, 5760)
      ->Arg(1)->Arg(16)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark(("Linear/bf16/2880x201088/" + s).c_str(), BM_Linear, d, DType::BF16, 201088)
      ->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark(("Mxfp4Linear/2880x5760/" + s).c_str(), BM_Mxfp4Linear, d, 5760)
      ->Arg(1)->Arg(4)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark(("AttentionDecode/" + s).c_str(), BM_AttentionDecode, d)
      ->Arg(4096)->Arg(32768)->Arg(131072)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark(("AttentionPrefill/" + s).c_str(), BM_AttentionPrefill, d)
      ->Args({512, 0})->Args({2048, 0})->Args({2048, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_all(ember::Device::cpu());
  for (int i = 0; i < ember::cuda_device_count(); ++i) register_all(ember::Device::cuda(i));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
