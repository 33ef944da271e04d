#pragma once
// Helpers shared by the CPU kernels: dtype dispatch, element load/store and strided iteration.
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ember/core/tensor.h"
#include "ember/core/thread_pool.h"

namespace ember::backend::cpu_util {

// Calls f(T{}) with the storage type of `t`.
template <typename F>
void dispatch(DType t, F&& f) {
  switch (t) {
    case DType::F32: return f(float{});
    case DType::F16: return f(f16{});
    case DType::BF16: return f(bf16{});
    case DType::I32: return f(int32_t{});
    case DType::I64: return f(int64_t{});
    case DType::U8: return f(uint8_t{});
    case DType::Bool: return f(bool{});
    default: throw_error("CPU kernel: dtype {} has no arithmetic", dtype_name(t));
  }
}

template <typename T>
constexpr bool is_float_v = std::is_same_v<T, float> || std::is_same_v<T, f16> || std::is_same_v<T, bf16>;

// Value as the compute type: float for float storage, int64 for integers, bool as 0/1.
template <typename T>
inline auto load(const T* p) {
  if constexpr (is_float_v<T>) return static_cast<float>(*p);
  else if constexpr (std::is_same_v<T, bool>) return int64_t(*reinterpret_cast<const uint8_t*>(p) != 0);
  else return int64_t(*p);
}

// Conversions with defined results for every input (NaN -> 0, saturating), like a safe cast.
template <typename T>
inline void store(T* p, double v) {
  if constexpr (is_float_v<T>) {
    *p = T(float(v));
  } else if constexpr (std::is_same_v<T, bool>) {
    *reinterpret_cast<uint8_t*>(p) = v != 0 ? 1 : 0;
  } else {
    if (std::isnan(v)) {
      *p = 0;
    } else {
      const double lo = double(std::numeric_limits<T>::lowest()), hi = double(std::numeric_limits<T>::max());
      *p = v <= lo ? std::numeric_limits<T>::lowest() : v >= hi ? std::numeric_limits<T>::max() : T(v);
    }
  }
}
template <typename T>
inline void store_int(T* p, int64_t v) {
  if constexpr (is_float_v<T>) *p = T(float(v));
  else if constexpr (std::is_same_v<T, bool>) *reinterpret_cast<uint8_t*>(p) = v != 0;
  else *p = T(v);
}

// Row-major walk over `shape` for N operands with their own strides (elements). Calls
// fn(offsets, inner_count, inner_strides) once per innermost row; rows are split over threads.
template <size_t N, typename F>
void for_each_row(const Shape& shape, const std::array<Shape, N>& strides, F&& fn) {
  const int nd = shape.size();
  const int64_t inner = nd ? shape[nd - 1] : 1;
  const int64_t rows = nd ? shape.numel() / std::max<int64_t>(inner, 1) : 1;
  if (shape.numel() == 0) return;
  std::array<int64_t, N> inner_stride{};
  for (size_t k = 0; k < N; ++k) inner_stride[k] = nd ? strides[k][nd - 1] : 0;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1));
  parallel_for(rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      std::array<int64_t, N> off{};
      int64_t rem = r;
      for (int d = nd - 2; d >= 0; --d) {
        const int64_t idx = rem % shape[d];
        rem /= shape[d];
        for (size_t k = 0; k < N; ++k) off[k] += idx * strides[k][d];
      }
      fn(off, inner, inner_stride);
    }
  });
}

}  // namespace ember::backend::cpu_util
