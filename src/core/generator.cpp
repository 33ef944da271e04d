#include "ember/core/generator.h"

#include <cmath>

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

float philox_normal(uint64_t seed, uint64_t index) {
  auto r = philox4x32(seed, index);
  float u0 = uint_to_unit_float(r[0]), u1 = uint_to_unit_float(r[1]);
  return std::sqrt(-2.0f * std::log(1.0f - u0)) * std::cos(6.2831853071795864f * u1);
}

float Generator::uniform() { return philox_uniform(seed_, advance(1)); }
float Generator::normal() { return philox_normal(seed_, advance(1)); }

}  // namespace ember
