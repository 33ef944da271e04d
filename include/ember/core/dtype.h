#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace ember {

// Element types. F8 types are carried as data only (SafeTensors), no arithmetic.
enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8, Bool, F8E4M3, F8E5M2 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "f32", "bf16", ...
std::optional<DType> dtype_from_name(std::string_view name);
bool is_floating(DType t);  // f32, f16, bf16 (types with arithmetic in float)
bool is_integral(DType t);  // i32, i64, u8, bool

// bf16/f16 <-> f32, round-to-nearest-even, NaN preserved (as PyTorch converts).
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Storage types for 16-bit floats, distinct from uint16_t for overloads and templates.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) : bits(f32_to_bf16(f)) {}
  explicit operator float() const { return bf16_to_f32(bits); }
};
struct f16 {
  uint16_t bits = 0;
  f16() = default;
  explicit f16(float f) : bits(f32_to_f16(f)) {}
  explicit operator float() const { return f16_to_f32(bits); }
};

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<f16>() { return DType::F16; }
template <> constexpr DType dtype_of<bf16>() { return DType::BF16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }

}  // namespace ember
