#include "ember/core/generator.h"

#include <algorithm>
#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ember {

namespace {
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
}  // namespace

std::array<uint32_t, 4> philox4x32(uint64_t key, uint64_t counter_lo, uint64_t counter_hi) {
  uint32_t c[4] = {uint32_t(counter_lo), uint32_t(counter_lo >> 32), uint32_t(counter_hi),
                   uint32_t(counter_hi >> 32)};
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(kM0) * c[0];
    uint64_t p1 = uint64_t(kM1) * c[2];
    uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return {c[0], c[1], c[2], c[3]};
}

float philox_uniform(uint64_t seed, uint64_t index) {
  return uint_to_unit_float(philox4x32(seed, index)[0]);
}

namespace {

// Box-Muller on the first two words of one Philox draw (shared by the scalar and batch paths).
inline float box_muller(uint32_t w0, uint32_t w1) {
  float u0 = uint_to_unit_float(w0), u1 = uint_to_unit_float(w1);
  return std::sqrt(-2.0f * std::log(1.0f - u0)) * std::cos(6.2831853071795864f * u1);
}

void philox_many_scalar(uint64_t key, uint64_t first, uint64_t count, uint32_t* out) {
  for (uint64_t i = 0; i < count; ++i) {
    const auto r = philox4x32(key, first + i);
    std::copy(r.begin(), r.end(), out + 4 * i);
  }
}

#if defined(__x86_64__)
// 32x32 -> 64-bit products of 8 lanes by a constant: (hi, lo) words per lane.
__attribute__((target("avx2"))) inline void mulhilo8(__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(a, m);                         // lanes 0, 2, 4, 6 as 64-bit
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);   // lanes 1, 3, 5, 7
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// Eight counters a step, the rounds of philox4x32 on 8-lane vectors.
__attribute__((target("avx2"))) void philox_many_avx2(uint64_t key, uint64_t first, uint64_t count, uint32_t* out) {
  const __m256i m0 = _mm256_set1_epi64x(kM0), m1 = _mm256_set1_epi64x(kM1);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  uint64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    // Counters first + i + l as (low word c0, high word c1); c2 = c3 = 0 (counter_hi).
    const uint64_t base = first + i;
    __m256i c0, c1;
    if (uint32_t(base) <= 0xFFFFFFFFu - 7) {  // no carry into the high word within these 8
      c0 = _mm256_add_epi32(_mm256_set1_epi32(int(uint32_t(base))), lane);
      c1 = _mm256_set1_epi32(int(uint32_t(base >> 32)));
    } else {
      alignas(32) uint32_t lo_words[8], hi_words[8];
      for (int l = 0; l < 8; ++l) {
        const uint64_t ctr = base + uint64_t(l);
        lo_words[l] = uint32_t(ctr), hi_words[l] = uint32_t(ctr >> 32);
      }
      c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo_words));
      c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi_words));
    }
    __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
    uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
    for (int round = 0; round < 10; ++round) {
      __m256i hi0, lo0, hi1, lo1;
      mulhilo8(c0, m0, hi0, lo0);
      mulhilo8(c2, m1, hi1, lo1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(int(k0)));
      c1 = lo1;
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(int(k1)));
      c3 = lo0;
      k0 += kW0;
      k1 += kW1;
    }
    // Transpose the 4 x 8 words into 8 counters of 4 words, in counter order.
    const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
    const __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);  // lanes 0|4, 1|5
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);  // lanes 2|6, 3|7
    __m256i* o = reinterpret_cast<__m256i*>(out + 4 * i);
    _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
    _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
    _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
    _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
  }
  philox_many_scalar(key, first + i, count - i, out + 4 * i);
}
#endif

using PhiloxManyFn = void (*)(uint64_t, uint64_t, uint64_t, uint32_t*);

PhiloxManyFn pick_philox_many() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return philox_many_avx2;
#endif
  return philox_many_scalar;
}

}  // namespace

float philox_normal(uint64_t seed, uint64_t index) {
  auto r = philox4x32(seed, index);
  return box_muller(r[0], r[1]);
}

void philox4x32_many(uint64_t key, uint64_t first, uint64_t count, uint32_t* out) {
  static const PhiloxManyFn fn = pick_philox_many();
  fn(key, first, count, out);
}

void philox_normal_many(uint64_t key, uint64_t first, uint64_t count, float* out) {
  constexpr uint64_t kStep = 256;
  uint32_t words[4 * kStep];
  for (uint64_t i = 0; i < count; i += kStep) {
    const uint64_t n = std::min(kStep, count - i);
    philox4x32_many(key, first + i, n, words);
    for (uint64_t j = 0; j < n; ++j) out[i + j] = box_muller(words[4 * j], words[4 * j + 1]);
  }
}

float Generator::uniform() { return philox_uniform(seed_, advance(1)); }
float Generator::normal() { return philox_normal(seed_, advance(1)); }

}  // namespace ember
