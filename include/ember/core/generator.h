#pragma once
// Counter-based random numbers (Philox-4x32-10): the value of element i of a draw depends only on
// (seed, offset + i), so CPU and CUDA produce the same numbers for the same seed.
#include <array>
#include <cstdint>

namespace ember {

std::array<uint32_t, 4> philox4x32(uint64_t key, uint64_t counter_lo, uint64_t counter_hi = 0);

// Uniform in [0, 1) from the top 24 bits of a 32-bit draw (exactly representable in f32).
inline float uint_to_unit_float(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  // Reserves n counters and returns the first; a draw of n values uses counters [r, r + n).
  uint64_t advance(uint64_t n) {
    uint64_t r = offset_;
    offset_ += n;
    return r;
  }
  void set_offset(uint64_t offset) { offset_ = offset; }
  // Host-side scalars (sampling): same stream semantics.
  float uniform();
  float normal();

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The value streams (shared by all backends, defined in terms of philox4x32):
//   uniform(i)  = uint_to_unit_float(philox(seed, i)[0])
//   normal(i)   = sqrt(-2 ln(1 - u0)) * cos(2π u1), u0,u1 from philox(seed, i)[0..1]
float philox_uniform(uint64_t seed, uint64_t index);
float philox_normal(uint64_t seed, uint64_t index);

// Many at once, bit-identical to the scalar functions (AVX2 where the CPU has it):
//   out[4 i + k] = philox4x32(key, first + i)[k]   for i < count, k < 4
//   out[i] = philox_normal(key, first + i)          for i < count
void philox4x32_many(uint64_t key, uint64_t first, uint64_t count, uint32_t* out);
void philox_normal_many(uint64_t key, uint64_t first, uint64_t count, float* out);

}  // namespace ember
