// The gpt-oss CUDA prefill kernels at gpt-oss-20b shapes: grouped MXFP4 MoE (H = I = 2880,
// E = 32, k = 4) and flash attention with sinks (Hq = 64, Hkv = 8, head_dim 64), full and with
// the 128-token window. Times are CUDA-event times of 10 back-to-back calls on the backend stream.
// Counters: TFLOP/s (useful math only) and GB/s of the minimum traffic (MoE: every expert's
// MXFP4 weights once plus activations; attention: q, out and the K/V the queries see, once).
//   gpt_oss_prefill_bench [--benchmark_filter=Moe]
#include <benchmark/benchmark.h>

#if EMBER_HAS_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "backends/cuda/gpt_oss_prefill.h"
#include "ember/ops.h"

namespace ember::backend::cuda {
cudaStream_t stream_for(int device);  // backends/cuda/common.cuh (nvcc only)
}

namespace {

using namespace ember;
namespace gpu = ember::backend::cuda::gpt_oss;

template <typename T>
Tensor upload(const std::vector<T>& v) {
  return Tensor::from_vector(v, {int64_t(v.size())}).to(Device::cuda(0));
}
std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i += 8) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    std::memcpy(v.data() + i, &s, std::min<size_t>(8, n - i));
  }
  return v;
}

// Runs `call` 10 times between two events per iteration; reports the time of one call.
template <typename F>
void time_calls(benchmark::State& state, F call, double flops, double bytes) {
  cudaStream_t stream = backend::cuda::stream_for(0);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  call(stream);  // warm-up
  for (auto _ : state) {
    cudaEventRecord(start, stream);
    for (int i = 0; i < 10; ++i) call(stream);
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    state.SetIterationTime(ms / 1e3 / 10);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  state.counters["TFLOP/s"] = benchmark::Counter(flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_MoePrefill(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA device");
  const int T = int(state.range(0)), H = 2880, I = 2880, E = 32, k = 4;
  static Tensor w1b = upload(random_bytes(size_t(E) * 2 * I * H / 2, 1)),
                w2b = upload(random_bytes(size_t(E) * H * I / 2, 2));
  std::vector<uint8_t> s1(size_t(E) * 2 * I * H / 32, 123), s2(size_t(E) * H * I / 32, 121);
  std::vector<int32_t> idx(size_t(T) * k);
  std::vector<int32_t> experts(E);
  std::iota(experts.begin(), experts.end(), 0);
  std::mt19937 rng(3);
  for (int t = 0; t < T; ++t) {
    std::shuffle(experts.begin(), experts.end(), rng);
    std::copy_n(experts.begin(), k, idx.begin() + t * k);
  }
  Tensor w1s = upload(s1), w2s = upload(s2), b1 = upload(std::vector<float>(size_t(E) * 2 * I, 0.1f)),
         b2 = upload(std::vector<float>(size_t(E) * H, 0.1f)), d_idx = upload(idx),
         weight = upload(std::vector<float>(size_t(T) * k, 0.25f)),
         a = ones({int64_t(T) * H}, DType::BF16, Device::cuda(0)), x = zeros({int64_t(T) * H}, DType::F32, Device::cuda(0));
  Tensor ws = Tensor::empty({int64_t(gpu::moe_prefill_workspace_bytes(T, H, I, E, k))}, DType::U8, Device::cuda(0));
  gpu::MoePrefillArgs args;
  args.T = T, args.H = H, args.I = I, args.E = E, args.k = k;
  args.a = static_cast<const uint16_t*>(a.raw_data());
  args.idx = static_cast<const int32_t*>(d_idx.raw_data());
  args.weight = static_cast<const float*>(weight.raw_data());
  args.w1_blocks = static_cast<const uint8_t*>(w1b.raw_data());
  args.w1_scales = static_cast<const uint8_t*>(w1s.raw_data());
  args.b1 = static_cast<const float*>(b1.raw_data());
  args.w2_blocks = static_cast<const uint8_t*>(w2b.raw_data());
  args.w2_scales = static_cast<const uint8_t*>(w2s.raw_data());
  args.b2 = static_cast<const float*>(b2.raw_data());
  args.x = static_cast<float*>(x.raw_data());
  args.workspace = ws.raw_data();
  args.tile_rows = int(state.range(1));
  const double flops = 2.0 * T * k * (2.0 * I * H + double(H) * I);
  const double bytes = E * (2.0 * I * H + double(H) * I) * 17 / 32 + T * H * (2.0 + 8.0);
  time_calls(state, [&](cudaStream_t s) { gpu::moe_prefill(args, s); }, flops, bytes);
}
BENCHMARK(BM_MoePrefill)
    ->ArgsProduct({{512, 2048, 8192}, {64, 128}})  // tokens, rows a GEMM tile
    ->UseManualTime()->Iterations(10)->Unit(benchmark::kMicrosecond);

void BM_AttentionPrefill(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA device");
  const int T = int(state.range(0)), window = int(state.range(1)), Hq = 64, Hkv = 8, D = 64;
  Tensor q = ones({int64_t(T) * Hq * D}, DType::BF16, Device::cuda(0)),
         kc = ones({int64_t(Hkv) * T * D}, DType::BF16, Device::cuda(0)),
         vc = ones({int64_t(Hkv) * T * D}, DType::BF16, Device::cuda(0)),
         sinks = zeros({Hq}, DType::F32, Device::cuda(0)), out = Tensor::empty({int64_t(T) * Hq * D}, DType::BF16, Device::cuda(0));
  gpu::AttentionPrefillArgs args;
  args.T = T, args.Hq = Hq, args.Hkv = Hkv, args.head_dim = D, args.window = window, args.cap = T;
  args.q = static_cast<const uint16_t*>(q.raw_data());
  args.k_cache = static_cast<const uint16_t*>(kc.raw_data());
  args.v_cache = static_cast<const uint16_t*>(vc.raw_data());
  args.sinks = static_cast<const float*>(sinks.raw_data());
  args.out = static_cast<uint16_t*>(out.raw_data());
  double keys = 0;  // (query, key) pairs seen
  for (int i = 0; i < T; ++i) keys += window > 0 ? std::min(i + 1, window) : i + 1;
  const double flops = 4.0 * D * Hq * keys;
  const double bytes = 2.0 * T * Hq * D * 2 + 2.0 * Hkv * T * D * 2;
  time_calls(state, [&](cudaStream_t s) { gpu::attention_prefill(args, s); }, flops, bytes);
}
BENCHMARK(BM_AttentionPrefill)
    ->Args({2048, 0})->Args({2048, 128})->Args({8192, 0})->Args({8192, 128})
    ->UseManualTime()->Iterations(10)->Unit(benchmark::kMicrosecond);

}  // namespace

#else

static void BM_PrefillNeedsCuda(benchmark::State& state) {
  state.SkipWithError("ember built without CUDA (EMBER_CUDA=OFF)");
}
BENCHMARK(BM_PrefillNeedsCuda);

#endif

BENCHMARK_MAIN();
