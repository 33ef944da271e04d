#include "ember/core/dtype.h"

#include <cmath>

namespace ember {

namespace {
struct Info {
  DType type;
  size_t size;
  const char* name;
};
constexpr Info kInfo[] = {
    {DType::F32, 4, "f32"},      {DType::F16, 2, "f16"},       {DType::BF16, 2, "bf16"},
    {DType::I32, 4, "i32"},      {DType::I64, 8, "i64"},       {DType::U8, 1, "u8"},
    {DType::Bool, 1, "bool"},    {DType::F8E4M3, 1, "f8e4m3"}, {DType::F8E5M2, 1, "f8e5m2"},
};
}  // namespace

size_t dtype_size(DType t) { return kInfo[size_t(t)].size; }
const char* dtype_name(DType t) { return kInfo[size_t(t)].name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& i : kInfo)
    if (name == i.name) return i.type;
  return std::nullopt;
}

bool is_floating(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
bool is_integral(DType t) {
  return t == DType::I32 || t == DType::I64 || t == DType::U8 || t == DType::Bool;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      u = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 0x1f) {
    u = sign | 0x7f800000u | mant << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t sign = uint16_t((u >> 16) & 0x8000);
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00;    // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00;   // overflow (rounds to inf) or inf
  if (abs < 0x38800000u) {                        // subnormal or zero in f16
    if (abs < 0x33000000u) return sign;           // below half the smallest subnormal
    uint32_t mant = (abs & 0x7fffff) | 0x800000;
    int shift = 126 - int(abs >> 23);             // 14..24
    uint32_t half = 1u << (shift - 1);
    uint32_t rest = mant & ((1u << shift) - 1);
    uint32_t r = mant >> shift;
    if (rest > half || (rest == half && (r & 1))) ++r;
    return sign | uint16_t(r);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15 (in place)
  uint32_t out = r >> 13;
  uint32_t rest = r & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (out & 1))) ++out;
  return sign | uint16_t(out);
}

}  // namespace ember
