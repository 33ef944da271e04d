// CPU matrix products: f32 GEMM through CBLAS; 16-bit weights converted tile by tile (or read
// directly by a GEMV when there are few rows); MXFP4 decoded block by block, never whole.
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernel_util.h"
#include "ember/core/mxfp4.h"

namespace ember::backend {

using namespace cpu_util;

namespace {

// One BLAS thread: ember's own pool provides the parallelism (DESIGN.md, Threads).
struct BlasThreads {
  BlasThreads() {
#if defined(OPENBLAS_VERSION) || defined(OPENBLAS_CONST)
    openblas_set_num_threads(1);
#endif
  }
};

template <typename T>
float to_f(T v) {
  return float(v);
}

// Converts rows [r0, r1) of a [R, C] matrix of type T (row stride ld) to f32.
template <typename T>
void rows_to_f32(const T* src, int64_t ld, int64_t r0, int64_t r1, int64_t C, float* dst) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < C; ++c) dst[(r - r0) * C + c] = to_f(src[r * ld + c]);
}

// f32 view of a [R, C] row-major matrix (converted when 16-bit).
std::vector<float> as_f32(const Tensor& t, const void* base, int64_t R, int64_t C, int64_t ld) {
  std::vector<float> out(static_cast<size_t>(R * C));
  dispatch(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_float_v<T>) {
      const T* p = static_cast<const T*>(base);
      parallel_for(R, std::max<int64_t>(1, 65536 / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
        rows_to_f32(p, ld, b, e, C, out.data() + b * C);
      });
    }
  });
  return out;
}

#if defined(__x86_64__)
// bf16 weight rows [n0, n1) against M <= 8 rows of x: 8 bf16 at a time widened in registers (a
// 16-bit shift), one FMA accumulator per x row, so each weight byte is read once.
__attribute__((target("avx2,fma"))) void gemv_bf16_avx2(const float* x, int64_t M, int64_t K, const uint16_t* w,
                                                       int64_t ldw, float* y, int64_t ldy, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    const uint16_t* wr = w + n * ldw;
    __m256 acc[8];
    for (int64_t m = 0; m < M; ++m) acc[m] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + k));
      const __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      for (int64_t m = 0; m < M; ++m) acc[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * K + k), wv, acc[m]);
    }
    for (int64_t m = 0; m < M; ++m) {
      __m128 q = _mm_add_ps(_mm256_castps256_ps128(acc[m]), _mm256_extractf128_ps(acc[m], 1));
      q = _mm_add_ps(q, _mm_movehl_ps(q, q));
      q = _mm_add_ss(q, _mm_movehdup_ps(q));
      float t = _mm_cvtss_f32(q);
      for (int64_t kk = k; kk < K; ++kk) t += x[m * K + kk] * bf16_to_f32(wr[kk]);
      y[m * ldy + n] = t;
    }
  }
}
#endif

// y[m, n] = sum_k x[m, k] w[n, k] for few rows m, reading the 16-bit/f32 weight once.
template <typename W>
void gemv_rows(const float* x, int64_t M, int64_t K, const W* w, int64_t ldw, float* y, int64_t ldy) {
#if defined(__x86_64__)
  if constexpr (std::is_same_v<W, bf16>) {
    static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2) {
      parallel_for(ldy, 16, [&](int64_t b, int64_t e) {
        gemv_bf16_avx2(x, M, K, reinterpret_cast<const uint16_t*>(w), ldw, y, ldy, b, e);
      });
      return;
    }
  }
#endif
  parallel_for(/*N*/ ldy, 16, [&](int64_t b, int64_t e) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = b; n < e; ++n) {
      const W* wr = w + n * ldw;
      for (int64_t k = 0; k < K; ++k) row[size_t(k)] = to_f(wr[k]);
      for (int64_t m = 0; m < M; ++m) {
        const float* xr = x + m * K;
        float s[8] = {};
        int64_t k = 0;
        for (; k + 8 <= K; k += 8)
          for (int j = 0; j < 8; ++j) s[j] += xr[k + j] * row[size_t(k + j)];
        float t = 0;
        for (; k < K; ++k) t += xr[k] * row[size_t(k)];
        y[m * ldy + n] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
      }
    }
  });
}

}  // namespace

void CpuBackend::matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, const Tensor& out) {
  static BlasThreads once;
  const int64_t B = out.dim(0), M = out.dim(1), N = out.dim(2);
  const int64_t K = trans_a ? a.dim(1) : a.dim(2);
  const int64_t lda = a.strides()[1], ldb = b.strides()[1];
  const size_t ea = dtype_size(a.dtype()), eb = dtype_size(b.dtype());
  const bool f32_out = out.dtype() == DType::F32;
  std::vector<float> tmp_out;
  for (int64_t bi = 0; bi < B; ++bi) {
    const char* ap = static_cast<const char*>(a.raw_data()) + bi * a.strides()[0] * int64_t(ea);
    const char* bp = static_cast<const char*>(b.raw_data()) + bi * b.strides()[0] * int64_t(eb);
    float* op = f32_out ? out.data<float>() + bi * M * N : nullptr;
    if (!f32_out) {
      tmp_out.assign(size_t(M * N), 0.f);
      op = tmp_out.data();
    }
    // Few rows against a [N, K] weight: read the weight once in its own dtype.
    if (M <= 8 && !trans_a && trans_b) {
      std::vector<float> xf = as_f32(a, ap, M, K, lda);
      dispatch(b.dtype(), [&](auto tag) {
        using T = decltype(tag);
        if constexpr (is_float_v<T>) gemv_rows(xf.data(), M, K, reinterpret_cast<const T*>(bp), ldb, op, N);
      });
    } else if (!trans_a && trans_b) {
      // x [M, K] times a weight [N, K]^T (Linear): split N into tiles over ember's threads, each
      // a single-threaded sgemm; 16-bit weights are converted a tile at a time (cache resident).
      std::vector<float> xf = a.dtype() == DType::F32 ? std::vector<float>() : as_f32(a, ap, M, K, lda);
      const float* A = a.dtype() == DType::F32 ? reinterpret_cast<const float*>(ap) : xf.data();
      const int64_t la = a.dtype() == DType::F32 ? lda : K;
      constexpr int64_t kTile = 128;
      parallel_for((N + kTile - 1) / kTile, 1, [&](int64_t t0, int64_t t1) {
        std::vector<float> wt(b.dtype() == DType::F32 ? 0 : static_cast<size_t>(kTile * K));
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t n0 = t * kTile, nt = std::min(kTile, N - n0);
          const float* W = reinterpret_cast<const float*>(bp) + n0 * ldb;
          int64_t lw = ldb;
          if (b.dtype() != DType::F32) {
            dispatch(b.dtype(), [&](auto tag) {
              using T = decltype(tag);
              if constexpr (is_float_v<T>) rows_to_f32(reinterpret_cast<const T*>(bp), ldb, n0, n0 + nt, K, wt.data());
            });
            W = wt.data(), lw = K;
          }
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(nt), int(K), 1.0f, A, int(la), W, int(lw),
                      0.0f, op + n0, int(N));
        }
      });
    } else {
      const int64_t ar = trans_a ? K : M, ac = trans_a ? M : K;
      const int64_t br = trans_b ? N : K, bc = trans_b ? K : N;
      std::vector<float> af, bf;
      const float* A = reinterpret_cast<const float*>(ap);
      const float* Bm = reinterpret_cast<const float*>(bp);
      int64_t la = lda, lb = ldb;
      if (a.dtype() != DType::F32) af = as_f32(a, ap, ar, ac, lda), A = af.data(), la = ac;
      if (b.dtype() != DType::F32) bf = as_f32(b, bp, br, bc, ldb), Bm = bf.data(), lb = bc;
      // Split the M rows over ember's threads; each calls single-threaded sgemm on its slice.
      const int64_t grain = std::max<int64_t>(16, (M + num_threads() - 1) / num_threads());
      parallel_for(M, grain, [&](int64_t m0, int64_t m1) {
        const float* As = trans_a ? A + m0 : A + m0 * la;
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                    int(m1 - m0), int(N), int(K), 1.0f, As, int(la), Bm, int(lb), 0.0f, op + m0 * N, int(N));
      });
    }
    if (!f32_out) {
      dispatch(out.dtype(), [&](auto tag) {
        using T = decltype(tag);
        T* o = static_cast<T*>(out.raw_data()) + bi * M * N;
        for (int64_t i = 0; i < M * N; ++i) store(o + i, double(tmp_out[size_t(i)]));
      });
    }
  }
}

namespace {

// 2^(s - 127) as the reference's torch.ldexp does (s = 0 gives 2^-127, a subnormal f32).
inline float ue8_scale(uint8_t s) { return std::ldexp(1.0f, int(s) - 127); }

// Decodes one 32-value block into f32.
inline void decode_block(const uint8_t* blk, uint8_t scale, float* out) {
  const float sc = ue8_scale(scale);
  for (int j = 0; j < 16; ++j) {
    out[2 * j] = kFp4Values[blk[j] & 0x0f] * sc;
    out[2 * j + 1] = kFp4Values[blk[j] >> 4] * sc;
  }
}

// Dot products of one MXFP4 weight row with `rows` rows of x (row stride K), accumulated into acc.
void mxfp4_row_scalar(const uint8_t* blk, const uint8_t* sc, int64_t nb, const float* x, int64_t K, int64_t rows,
                      float* acc) {
  float w[32];
  for (int64_t k = 0; k < nb; ++k) {
    decode_block(blk + k * 16, sc[k], w);
    for (int64_t m = 0; m < rows; ++m) {
      const float* xr = x + m * K + k * 32;
      float s = 0;
      for (int j = 0; j < 32; ++j) s += xr[j] * w[j];
      acc[m] += s;
    }
  }
}

#if defined(__x86_64__)
// 2^(s - 128) for every UE8 scale byte s (the AVX2 codes are 2x their value): a table lookup in
// the hot loop instead of an ldexp call (which was ~18% of a gpt-oss-20b decode step).
const float* ue8_half_scales() {
  static const auto table = [] {
    std::array<float, 256> t{};
    for (int s = 0; s < 256; ++s) t[size_t(s)] = std::ldexp(1.0f, s - 128);
    return t;
  }();
  return table.data();
}

// AVX2: the 16 codes of a block map through one byte shuffle to 2x their value (small integers),
// are widened to f32 8 at a time and FMA'd against x; the block's 2^(s-128) is applied once.
__attribute__((target("avx2,fma"))) void mxfp4_row_avx2(const uint8_t* blk, const uint8_t* sc, int64_t nb,
                                                          const float* x, int64_t K, int64_t rows, float* acc) {
  const __m128i lut = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  const float* half_scales = ue8_half_scales();
  for (int64_t m0 = 0; m0 < rows; m0 += 4) {
    const int64_t mr = std::min<int64_t>(4, rows - m0);
    __m256 sum[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t k = 0; k < nb; ++k) {
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + k * 16));
      const __m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(q, low4));                     // values 0,2,4..
      const __m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(q, 4), low4));  // values 1,3,5..
      const __m128i v0 = _mm_unpacklo_epi8(lo, hi), v1 = _mm_unpackhi_epi8(lo, hi);         // in order
      const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v0));
      const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v0, 8)));
      const __m256 w2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v1));
      const __m256 w3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v1, 8)));
      const __m256 scale = _mm256_set1_ps(half_scales[sc[k]]);  // codes are 2x
      for (int64_t r = 0; r < mr; ++r) {
        const float* xr = x + (m0 + r) * K + k * 32;
        __m256 t = _mm256_mul_ps(w0, _mm256_loadu_ps(xr));
        t = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xr + 8), t);
        t = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xr + 16), t);
        t = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xr + 24), t);
        sum[r] = _mm256_fmadd_ps(t, scale, sum[r]);
      }
    }
    for (int64_t r = 0; r < mr; ++r) {
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(sum[r]), _mm256_extractf128_ps(sum[r], 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
      acc[m0 + r] += _mm_cvtss_f32(h);
    }
  }
}
#endif

using Mxfp4RowFn = void (*)(const uint8_t*, const uint8_t*, int64_t, const float*, int64_t, int64_t, float*);
Mxfp4RowFn pick_mxfp4_row() {
#if defined(__x86_64__)
  // scale 2^-128 for code 0 is a subnormal-safe ldexp; avx2 path needs exact power-of-two math only
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return mxfp4_row_avx2;
#endif
  return mxfp4_row_scalar;
}

}  // namespace

void CpuBackend::mxfp4_dequantize(const Tensor& blocks, const Tensor& scales, const Tensor& out) {
  const int64_t R = blocks.dim(0), nb = blocks.dim(1), C = nb * 32;
  const uint8_t* bp = static_cast<const uint8_t*>(blocks.raw_data());
  const uint8_t* sp = static_cast<const uint8_t*>(scales.raw_data());
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_float_v<T>) {
      T* o = static_cast<T*>(out.raw_data());
      parallel_for(R, 16, [&](int64_t b, int64_t e) {
        float buf[32];
        for (int64_t r = b; r < e; ++r)
          for (int64_t k = 0; k < nb; ++k) {
            decode_block(bp + (r * nb + k) * 16, sp[r * nb + k], buf);
            for (int j = 0; j < 32; ++j) store(o + r * C + k * 32 + j, double(buf[j]));
          }
      });
    }
  });
}

void CpuBackend::mxfp4_linear(const Tensor& x, const Tensor& blocks, const Tensor& scales, const Tensor& bias,
                              const Tensor& out) {
  const int64_t M = x.dim(0), K = x.dim(1), N = blocks.dim(0), nb = K / 32;
  const float* xp = x.data<float>();
  const uint8_t* bp = static_cast<const uint8_t*>(blocks.raw_data());
  const uint8_t* sp = static_cast<const uint8_t*>(scales.raw_data());
  float* op = out.data<float>();
  std::vector<float> bv;
  if (bias.defined()) {
    bv.resize(size_t(N));
    dispatch(bias.dtype(), [&](auto tag) {
      using T = decltype(tag);
      for (int64_t n = 0; n < N; ++n) bv[size_t(n)] = float(load(static_cast<const T*>(bias.raw_data()) + n));
    });
  }
  // Each weight row is decoded block by block once and applied to every x row.
  static const Mxfp4RowFn row_fn = pick_mxfp4_row();
  parallel_for(N, 16, [&](int64_t b, int64_t e) {
    std::vector<float> acc(static_cast<size_t>(M));
    for (int64_t n = b; n < e; ++n) {
      std::fill(acc.begin(), acc.end(), 0.f);
      row_fn(bp + n * nb * 16, sp + n * nb, nb, xp, K, M, acc.data());
      for (int64_t m = 0; m < M; ++m) op[m * N + n] = acc[size_t(m)] + (bv.empty() ? 0.f : bv[size_t(n)]);
    }
  });
}

}  // namespace ember::backend
