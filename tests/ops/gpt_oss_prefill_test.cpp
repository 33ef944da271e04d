// The CUDA prefill kernels of gpt-oss (backends/cuda/gpt_oss_prefill.h) against f64 host
// references of model.py's MLPBlock (after the router) and sdpa with sinks, on random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "test_util.h"

#if EMBER_HAS_CUDA
#include "backends/cuda/gpt_oss_prefill.h"
#include "backends/cuda/stream.h"
#endif

namespace ember {
namespace {

#if EMBER_HAS_CUDA
namespace gpu = backend::cuda::gpt_oss;

float bf16_round(float v) { return test::round_bf16({v})[0]; }

template <typename T>
Tensor upload(const std::vector<T>& v) {
  return Tensor::from_vector(v, {int64_t(v.size())}).to(Device::cuda(0));
}
Tensor upload_bf16(const std::vector<float>& v) {  // values already bf16
  return Tensor::from_vector(v, {int64_t(v.size())}).to(DType::BF16).to(Device::cuda(0));
}

#define SKIP_WITHOUT_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible"

// ---- MoE --------------------------------------------------------------------------------

struct MoeShape {
  int T, H, I, E, k;
  int scale_exp;  // MXFP4 scales 2^(scale_exp + {-1, 0, 1})
};

float fp4_value(uint8_t code) {
  static const float kMag[8] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  return code & 8 ? -kMag[code & 7] : kMag[code & 7];
}
// One expert's logical [rows, cols] weight from its MXFP4 blocks [rows, cols/32, 16] and scales.
std::vector<float> dequantize(const uint8_t* blocks, const uint8_t* scales, int rows, int cols) {
  std::vector<float> w(size_t(rows) * cols);
  for (size_t r = 0; r < size_t(rows); ++r)
    for (int b = 0; b < cols / 32; ++b) {
      const float s = std::ldexp(1.f, int(scales[r * (cols / 32) + b]) - 127);
      for (int j = 0; j < 16; ++j) {
        const uint8_t byte = blocks[(r * (cols / 32) + b) * 16 + j];
        w[r * cols + b * 32 + 2 * j] = fp4_value(byte & 15) * s;
        w[r * cols + b * 32 + 2 * j + 1] = fp4_value(byte >> 4) * s;
      }
    }
  return w;
}
double dot(const float* w, const float* x, int n) {
  double s[4] = {0, 0, 0, 0};
  for (int i = 0; i < n; i += 4)
    for (int j = 0; j < 4; ++j) s[j] += double(w[i + j]) * x[i + j];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

void check_moe(const MoeShape& sh, uint64_t seed, int tile_rows = 64) {
  const int T = sh.T, H = sh.H, I = sh.I, E = sh.E, k = sh.k;
  std::mt19937_64 rng(seed);
  const std::vector<float> a = test::round_bf16(test::random_floats(size_t(T) * H, seed + 1));
  const std::vector<float> x0 = test::random_floats(size_t(T) * H, seed + 2);
  const std::vector<float> b1 = test::random_floats(size_t(E) * 2 * I, seed + 3, -.5f, .5f);
  const std::vector<float> b2 = test::random_floats(size_t(E) * H, seed + 4, -.5f, .5f);
  std::vector<int32_t> idx(size_t(T) * k);
  std::vector<float> weight(size_t(T) * k);
  std::vector<int32_t> experts(static_cast<size_t>(E));
  std::iota(experts.begin(), experts.end(), 0);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  for (int t = 0; t < T; ++t) {  // k distinct experts, softmaxed weights
    std::shuffle(experts.begin(), experts.end(), rng);
    float sum = 0;
    for (int s = 0; s < k; ++s) idx[size_t(t * k + s)] = experts[size_t(s)], sum += weight[size_t(t * k + s)] = std::exp(2 * unit(rng));
    for (int s = 0; s < k; ++s) weight[size_t(t * k + s)] /= sum;
  }
  auto random_bytes = [&](size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i += 8) {
      const uint64_t r = rng();
      std::memcpy(v.data() + i, &r, std::min<size_t>(8, n - i));
    }
    return v;
  };
  auto random_scales = [&](size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& s : v) s = uint8_t(127 + sh.scale_exp + int(rng() % 3) - 1);
    return v;
  };
  const std::vector<uint8_t> w1b = random_bytes(size_t(E) * 2 * I * H / 2), w1s = random_scales(size_t(E) * 2 * I * H / 32);
  const std::vector<uint8_t> w2b = random_bytes(size_t(E) * H * I / 2), w2s = random_scales(size_t(E) * H * I / 32);

  // Device run.
  Tensor d_a = upload_bf16(a), d_idx = upload(idx), d_w = upload(weight), d_w1b = upload(w1b), d_w1s = upload(w1s),
         d_b1 = upload(b1), d_w2b = upload(w2b), d_w2s = upload(w2s), d_b2 = upload(b2), d_x = upload(x0);
  const size_t ws_bytes = gpu::moe_prefill_workspace_bytes(T, H, I, E, k);
  Tensor d_ws = Tensor::empty({int64_t(ws_bytes)}, DType::U8, Device::cuda(0));
  gpu::MoePrefillArgs args;
  args.T = T, args.H = H, args.I = I, args.E = E, args.k = k, args.swiglu_limit = 7.0f;
  args.a = static_cast<const uint16_t*>(d_a.raw_data());
  args.idx = static_cast<const int32_t*>(d_idx.raw_data());
  args.weight = static_cast<const float*>(d_w.raw_data());
  args.w1_blocks = static_cast<const uint8_t*>(d_w1b.raw_data());
  args.w1_scales = static_cast<const uint8_t*>(d_w1s.raw_data());
  args.b1 = static_cast<const float*>(d_b1.raw_data());
  args.w2_blocks = static_cast<const uint8_t*>(d_w2b.raw_data());
  args.w2_scales = static_cast<const uint8_t*>(d_w2s.raw_data());
  args.b2 = static_cast<const float*>(d_b2.raw_data());
  args.x = static_cast<float*>(d_x.raw_data());
  args.workspace = d_ws.raw_data();
  args.tile_rows = tile_rows;
  gpu::moe_prefill(args, backend::cuda::stream_for(0));
  synchronize(Device::cuda(0));
  const std::vector<float> got = d_x.to(Device::cpu()).to_vector<float>();
  // A second run on the same input adds the same MoE output again: bit-identical (deterministic).
  gpu::moe_prefill(args, backend::cuda::stream_for(0));
  synchronize(Device::cuda(0));
  const std::vector<float> got2 = d_x.to(Device::cpu()).to_vector<float>();

  // Reference, expert by expert (dequantizing one expert at a time). act is rounded to bf16 as
  // the kernel stores it. Tolerance per output: the kernel's act may round to the other bf16
  // neighbour where its f32 pre-activation lands across a rounding midpoint (an error of at most
  // 2^-7 |act_j| on some j); such flips are rare and of random sign, so their sum is bounded
  // (with margin 4) by 4 * 2^-7 * sqrt(sum_s w_s^2 sum_j (w2_nj act_j)^2); plus f32 accumulation,
  // 1e-5 of sum |terms|.
  std::vector<double> ref(x0.begin(), x0.end()), rms(size_t(T) * H, 0.0), mag(size_t(T) * H, 0.0);
  std::vector<float> act(static_cast<size_t>(I));
  for (int e = 0; e < E; ++e) {
    std::vector<std::pair<int, int>> pairs;
    for (int t = 0; t < T; ++t)
      for (int s = 0; s < k; ++s)
        if (idx[size_t(t * k + s)] == e) pairs.emplace_back(t, s);
    if (pairs.empty()) continue;
    const std::vector<float> w1 = dequantize(&w1b[size_t(e) * 2 * I * H / 2], &w1s[size_t(e) * 2 * I * H / 32], 2 * I, H);
    const std::vector<float> w2 = dequantize(&w2b[size_t(e) * H * I / 2], &w2s[size_t(e) * H * I / 32], H, I);
    for (auto [t, s] : pairs) {
      const float* at = &a[size_t(t) * H];
      for (int j = 0; j < I; ++j) {
        double glu = b1[size_t(e) * 2 * I + 2 * j] + dot(&w1[size_t(2 * j) * H], at, H);
        double lin = b1[size_t(e) * 2 * I + 2 * j + 1] + dot(&w1[size_t(2 * j + 1) * H], at, H);
        glu = std::min(glu, 7.0);
        lin = std::clamp(lin, -7.0, 7.0);
        act[size_t(j)] = bf16_round(float(glu / (1.0 + std::exp(-1.702 * glu)) * (lin + 1.0)));
      }
      const double w = weight[size_t(t * k + s)];
      for (int n = 0; n < H; ++n) {
        const float* w2n = &w2[size_t(n) * I];
        double sq = 0, ab = std::abs(b2[size_t(e) * H + n]);
        for (int j = 0; j < I; ++j) {
          const double term = double(w2n[j]) * act[size_t(j)];
          sq += term * term, ab += std::abs(term);
        }
        ref[size_t(t) * H + n] += w * (b2[size_t(e) * H + n] + dot(w2n, act.data(), I));
        rms[size_t(t) * H + n] += w * w * sq;
        mag[size_t(t) * H + n] += w * ab;
      }
    }
  }
  double worst = 0, worst_err = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double tol = 4 * std::ldexp(1.0, -7) * std::sqrt(rms[i]) + 1e-5 * (mag[i] + std::abs(x0[i]));
    const double err = std::abs(double(got[i]) - ref[i]);
    if (!(err / tol <= worst)) worst = err / tol, worst_i = i, worst_err = err;  // NaN lands here too
  }
  EXPECT_LE(worst, 1.0) << "T=" << T << " H=" << H << " I=" << I << " E=" << E << ": worst at " << worst_i
                        << ": " << got[worst_i] << " vs " << ref[worst_i] << " (error " << worst_err << ")";
  for (size_t i = 0; i < ref.size(); ++i) {
    const double once = double(got[i]) - x0[i];  // second run: x0 + 2 * moe, up to f32 rounding of the sums
    if (std::abs(double(got2[i]) - (double(got[i]) + once)) > 1e-5 * (std::abs(got2[i]) + 1)) {
      ADD_FAILURE() << "second run differs at " << i << ": " << got2[i] << " vs " << got[i] + once;
      break;
    }
  }
  std::printf("[ moe T=%d H=%d I=%d E=%d k=%d, %d-row tiles ] worst error / tolerance %.3f\n", T, H, I, E, k, tile_rows,
              worst);
}

TEST(GptOssPrefillMoe, SmallShapes) {
  SKIP_WITHOUT_GPU();
  for (int rows : {64, 128})
    for (int T : {1, 7, 33, 300}) check_moe({T, 256, 256, 32, 4, -4}, 100 + uint64_t(T), rows);
}

TEST(GptOssPrefillMoe, NonSquareAndOddTileCounts) {
  SKIP_WITHOUT_GPU();
  for (int rows : {64, 128})
    check_moe({45, 192, 320, 8, 2, -4}, 7, rows);  // H = 192: 1.5 weight-row tiles of 128 in the down GEMM
}

TEST(GptOssPrefillMoe, Gpt20bShape) {
  SKIP_WITHOUT_GPU();
  for (int rows : {64, 128}) check_moe({64, 2880, 2880, 32, 4, -6}, 20, rows);
}

TEST(GptOssPrefillMoe, SeveralRowTilesAnExpert) {
  SKIP_WITHOUT_GPU();
  // 150 rows an expert: 3 tiles of 64 (the last partial), 2 of 128.
  for (int rows : {64, 128}) check_moe({600, 256, 256, 8, 2, -4}, 31, rows);
}

TEST(GptOssPrefillMoe, BadTileRowsAreRefused) {
  SKIP_WITHOUT_GPU();
  gpu::MoePrefillArgs args;
  args.T = 1, args.H = 64, args.I = 64, args.E = 2, args.k = 1, args.tile_rows = 96;
  EXPECT_THROW(gpu::moe_prefill(args, backend::cuda::stream_for(0)), Error);
}

// ---- attention ----------------------------------------------------------------------------

struct AttnCase {
  int T, Hq, Hkv;
  int64_t start_pos;
  int window;
  int64_t cap;
};

void check_attention(const AttnCase& c, uint64_t seed) {
  constexpr int D = 64;
  const int64_t total = c.start_pos + c.T;
  const std::vector<float> q = test::round_bf16(test::random_floats(size_t(c.T) * c.Hq * D, seed + 1, -2.f, 2.f));
  const std::vector<float> kpos = test::round_bf16(test::random_floats(size_t(total) * c.Hkv * D, seed + 2, -2.f, 2.f));
  const std::vector<float> vpos = test::round_bf16(test::random_floats(size_t(total) * c.Hkv * D, seed + 3));
  const std::vector<float> sinks = test::random_floats(size_t(c.Hq), seed + 4, -1.f, 3.f);
  // Ring cache [Hkv, cap, D]: position p at slot p % cap (later positions overwrite).
  std::vector<float> kc(size_t(c.Hkv * c.cap) * D, 0.f), vc(kc.size(), 0.f);
  for (int64_t p = 0; p < total; ++p)
    for (int h = 0; h < c.Hkv; ++h)
      for (int d = 0; d < D; ++d) {
        kc[size_t((h * c.cap + p % c.cap) * D + d)] = kpos[size_t((p * c.Hkv + h) * D + d)];
        vc[size_t((h * c.cap + p % c.cap) * D + d)] = vpos[size_t((p * c.Hkv + h) * D + d)];
      }
  Tensor d_q = upload_bf16(q), d_k = upload_bf16(kc), d_v = upload_bf16(vc), d_s = upload(sinks);
  Tensor d_out = Tensor::empty({int64_t(c.T) * c.Hq * D}, DType::BF16, Device::cuda(0));
  gpu::AttentionPrefillArgs args;
  args.T = c.T, args.Hq = c.Hq, args.Hkv = c.Hkv, args.head_dim = D, args.start_pos = c.start_pos;
  args.window = c.window, args.cap = c.cap, args.scale = 0.125f;
  args.q = static_cast<const uint16_t*>(d_q.raw_data());
  args.k_cache = static_cast<const uint16_t*>(d_k.raw_data());
  args.v_cache = static_cast<const uint16_t*>(d_v.raw_data());
  args.sinks = static_cast<const float*>(d_s.raw_data());
  args.out = static_cast<uint16_t*>(d_out.raw_data());
  gpu::attention_prefill(args, backend::cuda::stream_for(0));
  synchronize(Device::cuda(0));
  const std::vector<float> got = d_out.to(Device::cpu()).to_vector<float>();

  // Reference in f64 from the position-indexed K/V. Tolerance: the kernel rounds the softmax
  // numerators to bf16 before P.V (unit roundoff 2^-8 each, so at most 2^-8 sum_j p_j |v_j|) and
  // the output to bf16 (2^-8 |out|); 1e-4 of sum_j p_j |v_j| covers f32 scores and exp2.
  double worst = 0;
  size_t worst_i = 0;
  std::vector<double> ref(got.size());
  for (int i = 0; i < c.T; ++i) {
    const int64_t pos = c.start_pos + i;
    const int64_t lo = c.window > 0 ? std::max<int64_t>(0, pos - c.window + 1) : 0;
    for (int h = 0; h < c.Hq; ++h) {
      const int hk = h / (c.Hq / c.Hkv);
      std::vector<double> sc;
      double mx = sinks[size_t(h)];
      for (int64_t p = lo; p <= pos; ++p) {
        double s = 0;
        for (int d = 0; d < D; ++d) s += double(q[size_t((i * c.Hq + h) * D + d)]) * kpos[size_t((p * c.Hkv + hk) * D + d)];
        sc.push_back(s * 0.125);
        mx = std::max(mx, s * 0.125);
      }
      double den = std::exp(sinks[size_t(h)] - mx);
      for (double& s : sc) den += s = std::exp(s - mx);
      for (int d = 0; d < D; ++d) {
        double num = 0, abs_num = 0;
        for (int64_t p = lo; p <= pos; ++p) {
          const double v = vpos[size_t((p * c.Hkv + hk) * D + d)];
          num += sc[size_t(p - lo)] * v, abs_num += sc[size_t(p - lo)] * std::abs(v);
        }
        const size_t o = size_t((i * c.Hq + h) * D + d);
        ref[o] = num / den;
        const double tol = (std::ldexp(1.0, -8) + 1e-4) * abs_num / den + std::ldexp(1.0, -8) * std::abs(ref[o]) + 1e-6;
        const double r = std::abs(got[o] - ref[o]) / tol;
        if (!(r <= worst)) worst = r, worst_i = o;  // NaN lands here too
      }
    }
  }
  EXPECT_LE(worst, 1.0) << "T=" << c.T << " start_pos=" << c.start_pos << " window=" << c.window << " cap=" << c.cap
                        << ": worst at " << worst_i << ": " << got[worst_i] << " vs " << ref[worst_i];
  std::printf("[ attention T=%d Hq=%d Hkv=%d start_pos=%lld window=%d cap=%lld ] worst error / tolerance %.3f\n",
              c.T, c.Hq, c.Hkv, (long long)c.start_pos, c.window, (long long)c.cap, worst);
}

TEST(GptOssPrefillAttention, FullCausalFromZero) {
  SKIP_WITHOUT_GPU();
  check_attention({100, 16, 2, 0, 0, 128}, 1);
  check_attention({1, 16, 2, 0, 0, 8}, 2);
}

TEST(GptOssPrefillAttention, FullCausalContinuingChunk) {
  SKIP_WITHOUT_GPU();
  check_attention({65, 16, 2, 40, 0, 105}, 3);   // cap == total: no slot reused
  check_attention({3, 16, 2, 200, 0, 203}, 4);
}

TEST(GptOssPrefillAttention, SlidingWindowOnRing) {
  SKIP_WITHOUT_GPU();
  check_attention({130, 16, 2, 0, 128, 260}, 5);
  check_attention({130, 16, 2, 500, 128, 260}, 6);  // ring wrapped: total 630 > cap 260
  check_attention({77, 16, 2, 300, 128, 256}, 7);
  check_attention({5, 16, 2, 1000, 128, 140}, 8);
}

TEST(GptOssPrefillAttention, Gpt20bHeads) {
  SKIP_WITHOUT_GPU();
  check_attention({200, 64, 8, 0, 0, 256}, 9);
  check_attention({200, 64, 8, 333, 128, 330}, 10);
}

#else

TEST(GptOssPrefill, NeedsCuda) { GTEST_SKIP() << "ember built without CUDA (EMBER_CUDA=OFF): prefill kernels not compiled"; }

#endif

}  // namespace
}  // namespace ember
