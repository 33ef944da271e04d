#pragma once
// Shared pieces of the CUDA kernels: error checks, the per-device stream, element types and
// conversions, strided indexing.
#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/stream.h"

namespace ember::backend::cuda {

#define EMBER_CUDA_CHECK(call)                                                                   \
  do {                                                                                           \
    cudaError_t err_ = (call);                                                                   \
    if (err_ != cudaSuccess)                                                                     \
      ::ember::throw_error("CUDA error in {} ({}:{}): {}", #call, __FILE__, __LINE__,            \
                           cudaGetErrorString(err_));                                            \
  } while (0)

// For cuBLAS calls (the including file includes cublas_v2.h).
#define EMBER_CUBLAS_CHECK(call)                                                                 \
  do {                                                                                           \
    cublasStatus_t st_ = (call);                                                                 \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                            \
      ::ember::throw_error("cuBLAS error {} in {} ({}:{})", int(st_), #call, __FILE__, __LINE__); \
  } while (0)

// After a launch: configuration errors show up here, not at the call.
#define EMBER_CUDA_LAUNCHED() EMBER_CUDA_CHECK(cudaGetLastError())

void set_device(int device);

// Storage types on the device (16-bit floats and bool as raw bits).
struct bf16_t { uint16_t v; };
struct f16_t { uint16_t v; };
struct bool_t { uint8_t v; };

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t b) { return __uint_as_float(uint32_t(b) << 16); }
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
__device__ __forceinline__ float f16_bits_to_f32(uint16_t b) {
  // IEEE half to float without cuda_fp16 intrinsics (exact).
  uint32_t sign = uint32_t(b & 0x8000) << 16, exp = (b >> 10) & 0x1f, mant = b & 0x3ff;
  if (exp == 0) {
    const float m = float(mant) * 5.9604644775390625e-8f;  // subnormal: mant * 2^-24
    return sign ? -m : m;
  }
  if (exp == 0x1f) return __uint_as_float(sign | 0x7f800000u | (mant << 13));
  return __uint_as_float(sign | ((exp + 112) << 23) | (mant << 13));
}
__device__ __forceinline__ uint16_t f32_to_f16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00;
  if (a >= 0x477ff000u) return sign | 0x7c00;
  if (a < 0x38800000u) {
    if (a < 0x33000000u) return sign;
    uint32_t mant = (a & 0x7fffff) | 0x800000;
    int shift = 126 - int(a >> 23);
    uint32_t half = 1u << (shift - 1), rest = mant & ((1u << shift) - 1), r = mant >> shift;
    if (rest > half || (rest == half && (r & 1))) ++r;
    return sign | uint16_t(r);
  }
  uint32_t r = a - 0x38000000u, out = r >> 13, rest = r & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (out & 1))) ++out;
  return sign | uint16_t(out);
}

// Philox4x32-10 with the high counter word 0, identical to philox4x32 in src/core/generator.cpp
// (the same seed gives the same numbers on the host and the device).
__device__ __forceinline__ void philox4x32(uint64_t key, uint64_t ctr, uint32_t out[4]) {
  uint32_t c0 = uint32_t(ctr), c1 = uint32_t(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int r = 0; r < 10; ++r) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0, c1 = lo1, c2 = n2, c3 = lo0;
    k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

template <typename T> struct is_float_t { static constexpr bool value = false; };
template <> struct is_float_t<float> { static constexpr bool value = true; };
template <> struct is_float_t<bf16_t> { static constexpr bool value = true; };
template <> struct is_float_t<f16_t> { static constexpr bool value = true; };

// Compute type: float for float storage, int64 for integers and bool.
template <typename T> struct compute { using type = long long; };
template <> struct compute<float> { using type = float; };
template <> struct compute<bf16_t> { using type = float; };
template <> struct compute<f16_t> { using type = float; };

__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const bf16_t* p) { return bf16_bits_to_f32(p->v); }
__device__ __forceinline__ float ld(const f16_t* p) { return f16_bits_to_f32(p->v); }
__device__ __forceinline__ long long ld(const int32_t* p) { return *p; }
__device__ __forceinline__ long long ld(const int64_t* p) { return *p; }
__device__ __forceinline__ long long ld(const uint8_t* p) { return *p; }
__device__ __forceinline__ long long ld(const bool_t* p) { return p->v != 0; }

// Stores with the CPU backend's conversion rules (NaN -> 0 and saturation for integers).
template <typename I>
__device__ __forceinline__ I sat(double v) {
  if (isnan(v)) return 0;
  const double lo = sizeof(I) == 1 ? 0.0 : sizeof(I) == 4 ? -2147483648.0 : -9223372036854775808.0;
  const double hi = sizeof(I) == 1 ? 255.0 : sizeof(I) == 4 ? 2147483647.0 : 9223372036854775807.0;
  if (v <= lo) return sizeof(I) == 1 ? I(0) : sizeof(I) == 4 ? I(-2147483647 - 1) : I(-9223372036854775807LL - 1);
  if (v >= hi) return sizeof(I) == 1 ? I(255) : sizeof(I) == 4 ? I(2147483647) : I(9223372036854775807LL);
  return I(v);
}
__device__ __forceinline__ void st(float* p, double v) { *p = float(v); }
__device__ __forceinline__ void st(bf16_t* p, double v) { p->v = f32_to_bf16_bits(float(v)); }
__device__ __forceinline__ void st(f16_t* p, double v) { p->v = f32_to_f16_bits(float(v)); }
__device__ __forceinline__ void st(int32_t* p, double v) { *p = sat<int32_t>(v); }
__device__ __forceinline__ void st(int64_t* p, double v) { *p = sat<int64_t>(v); }
__device__ __forceinline__ void st(uint8_t* p, double v) { *p = sat<uint8_t>(v); }
__device__ __forceinline__ void st(bool_t* p, double v) { p->v = v != 0; }
__device__ __forceinline__ void st_int(float* p, long long v) { *p = float(v); }
__device__ __forceinline__ void st_int(bf16_t* p, long long v) { p->v = f32_to_bf16_bits(float(v)); }
__device__ __forceinline__ void st_int(f16_t* p, long long v) { p->v = f32_to_f16_bits(float(v)); }
__device__ __forceinline__ void st_int(int32_t* p, long long v) { *p = int32_t(v); }
__device__ __forceinline__ void st_int(int64_t* p, long long v) { *p = v; }
__device__ __forceinline__ void st_int(uint8_t* p, long long v) { *p = uint8_t(v); }
__device__ __forceinline__ void st_int(bool_t* p, long long v) { p->v = v != 0; }

// Shape and strides of one operand, passed by value to kernels.
struct Strided {
  int nd;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
  __device__ __forceinline__ int64_t offset(int64_t linear) const {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; --d) {
      const int64_t i = linear % shape[d];
      linear /= shape[d];
      off += i * strides[d];
    }
    return off;
  }
};
inline Strided strided(const Tensor& t) {
  Strided s{};
  s.nd = t.ndim();
  for (int i = 0; i < t.ndim(); ++i) s.shape[i] = t.dim(i), s.strides[i] = t.strides()[i];
  return s;
}

// Calls f(T{}) with the device storage type of dtype t.
template <typename F>
void dispatch(DType t, F&& f) {
  switch (t) {
    case DType::F32: return f(float{});
    case DType::F16: return f(f16_t{});
    case DType::BF16: return f(bf16_t{});
    case DType::I32: return f(int32_t{});
    case DType::I64: return f(int64_t{});
    case DType::U8: return f(uint8_t{});
    case DType::Bool: return f(bool_t{});
    default: throw_error("CUDA kernel: dtype {} has no arithmetic", dtype_name(t));
  }
}

inline unsigned blocks_for(int64_t n, int threads = 256) {
  return unsigned(std::min<int64_t>((n + threads - 1) / threads, 65535LL * 32));
}

template <typename T>
T* dptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

}  // namespace ember::backend::cuda
