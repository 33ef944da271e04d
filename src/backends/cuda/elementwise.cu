// CUDA kernels for creation, copies/conversions, elementwise math, where and indexing.
#include "backends/cuda/common.cuh"

namespace ember::backend {

using namespace cuda;

namespace {

#define GRID_LOOP(i, n) for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <typename T>
__global__ void fill_kernel(T* out, int64_t n, double v) {
  GRID_LOOP(i, n) st(out + i, v);
}
template <typename T>
__global__ void arange_kernel(T* out, int64_t n, double start, double step) {
  GRID_LOOP(i, n) st(out + i, start + double(i) * step);
}

__global__ void random_kernel(float* out, int64_t n, bool normal, uint64_t seed, uint64_t offset) {
  GRID_LOOP(i, n) {
    uint32_t r[4];
    philox4x32(seed, offset + uint64_t(i), r);
    const float u0 = float(r[0] >> 8) * (1.0f / 16777216.0f);
    if (!normal) {
      out[i] = u0;
    } else {
      const float u1 = float(r[1] >> 8) * (1.0f / 16777216.0f);
      // same formula as the CPU (libm logf/cosf there; CUDA's are within 1-2 ulp)
      out[i] = sqrtf(-2.0f * logf(1.0f - u0)) * cosf(6.2831853071795864f * u1);
    }
  }
}

template <typename S, typename D>
__global__ void copy_kernel(const S* src, Strided ss, D* dst, Strided ds, int64_t n) {
  GRID_LOOP(i, n) {
    const S* sp = src + ss.offset(i);
    D* dp = dst + ds.offset(i);
    if constexpr (is_float_t<S>::value) {
      const float v = ld(sp);
      if constexpr (is_float_t<D>::value) st(dp, double(v));
      else if constexpr (std::is_same_v<D, bool_t>) dp->v = v != 0;
      else st(dp, trunc(double(v)));
    } else {
      st_int(dp, ld(sp));
    }
  }
}
__global__ void copy_bytes_kernel(const uint8_t* src, Strided ss, uint8_t* dst, Strided ds, int64_t n) {
  GRID_LOOP(i, n) dst[ds.offset(i)] = src[ss.offset(i)];
}

__device__ float unary_f(UnaryOp op, float x, float a, float b) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return fabsf(x);
    case UnaryOp::Exp: return expf(x);
    case UnaryOp::Log: return logf(x);
    case UnaryOp::Sqrt: return sqrtf(x);
    case UnaryOp::Rsqrt: return 1.0f / sqrtf(x);
    case UnaryOp::Sin: return sinf(x);
    case UnaryOp::Cos: return cosf(x);
    case UnaryOp::Tanh: return tanhf(x);
    case UnaryOp::Sigmoid: return 1.0f / (1.0f + expf(-x));
    case UnaryOp::Silu: return x / (1.0f + expf(-x));
    case UnaryOp::Relu: return x > 0 ? x : (isnan(x) ? x : 0.0f);
    case UnaryOp::Gelu: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case UnaryOp::GeluTanh: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case UnaryOp::Elu: return x > 0 ? x : a * (expf(x) - 1.0f);
    case UnaryOp::Erf: return erff(x);
    case UnaryOp::Square: return x * x;
    case UnaryOp::Reciprocal: return 1.0f / x;
    case UnaryOp::Floor: return floorf(x);
    case UnaryOp::Ceil: return ceilf(x);
    case UnaryOp::Round: return rintf(x);
    case UnaryOp::Clamp: return isnan(x) ? x : fminf(fmaxf(x, a), b);
    case UnaryOp::Not: return x == 0 ? 1.0f : 0.0f;
  }
  return x;
}
__device__ long long unary_i(UnaryOp op, long long x, float a, float b) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return x < 0 ? -x : x;
    case UnaryOp::Square: return x * x;
    case UnaryOp::Relu: return x > 0 ? x : 0;
    case UnaryOp::Clamp: {
      const long long lo = (long long)ceilf(a), hi = (long long)floorf(b);
      return x < lo ? lo : (x > hi ? hi : x);
    }
    case UnaryOp::Not: return x == 0;
    default: return x;
  }
}

template <typename T>
__global__ void unary_kernel(UnaryOp op, const T* x, Strided xs, T* out, int64_t n, float a, float b) {
  GRID_LOOP(i, n) {
    if constexpr (is_float_t<T>::value) st(out + i, double(unary_f(op, ld(x + xs.offset(i)), a, b)));
    else st_int(out + i, unary_i(op, ld(x + xs.offset(i)), a, b));
  }
}

template <typename V>
__device__ V binary_v(BinaryOp op, V x, V y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div:
      if constexpr (std::is_integral_v<V>) return y == 0 ? 0 : x / y;
      else return x / y;
    case BinaryOp::Max:
      if constexpr (!std::is_integral_v<V>) if (isnan(x) || isnan(y)) return x + y;
      return x > y ? x : y;
    case BinaryOp::Min:
      if constexpr (!std::is_integral_v<V>) if (isnan(x) || isnan(y)) return x + y;
      return x < y ? x : y;
    case BinaryOp::Pow:
      if constexpr (std::is_integral_v<V>) {
        if (y < 0) return x == 1 ? 1 : (x == -1 ? (y % 2 ? -1 : 1) : 0);
        V r = 1;
        for (V e = y, base = x; e; e >>= 1, base *= base)
          if (e & 1) r *= base;
        return r;
      } else {
        return powf(x, y);
      }
    case BinaryOp::Eq: return x == y;
    case BinaryOp::Ne: return x != y;
    case BinaryOp::Lt: return x < y;
    case BinaryOp::Le: return x <= y;
    case BinaryOp::Gt: return x > y;
    case BinaryOp::Ge: return x >= y;
    case BinaryOp::And: return (x != 0) && (y != 0);
    case BinaryOp::Or: return (x != 0) || (y != 0);
  }
  return x;
}

template <typename T, bool Cmp>
__global__ void binary_kernel(BinaryOp op, const T* a, Strided as, const T* b, Strided bs, void* out, int64_t n) {
  using V = typename compute<T>::type;
  GRID_LOOP(i, n) {
    const V r = binary_v<V>(op, V(ld(a + as.offset(i))), V(ld(b + bs.offset(i))));
    if constexpr (Cmp) static_cast<uint8_t*>(out)[i] = r != 0;
    else if constexpr (is_float_t<T>::value) st(static_cast<T*>(out) + i, double(r));
    else st_int(static_cast<T*>(out) + i, (long long)r);
  }
}

__global__ void where_kernel(const uint8_t* c, Strided cs, const uint8_t* a, Strided as, const uint8_t* b,
                             Strided bs, uint8_t* out, int64_t n, int es) {
  GRID_LOOP(i, n) {
    const uint8_t* src = c[cs.offset(i)] ? a + as.offset(i) * es : b + bs.offset(i) * es;
    for (int k = 0; k < es; ++k) out[i * es + k] = src[k];
  }
}

__global__ void index_select_kernel(const uint8_t* x, int64_t n, int64_t inner_bytes, const int64_t* idx, int64_t m,
                                    uint8_t* out, int64_t total) {
  GRID_LOOP(t, total) {  // t over out bytes
    const int64_t row = t / inner_bytes, byte = t % inner_bytes;
    const int64_t o = row / m, j = row % m;
    out[t] = x[(o * n + idx[j]) * inner_bytes + byte];
  }
}

__global__ void gather_kernel(const uint8_t* x, int64_t n, int64_t inner, int64_t m, const int64_t* idx,
                              uint8_t* out, int64_t count, int es) {
  GRID_LOOP(t, count) {
    const int64_t o = t / (m * inner), i = t % inner;
    const uint8_t* src = x + ((o * n + idx[t]) * inner + i) * es;
    for (int k = 0; k < es; ++k) out[t * es + k] = src[k];
  }
}

bool is_cmp(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge || op == BinaryOp::And || op == BinaryOp::Or;
}

}  // namespace

void CudaBackend::fill(const Tensor& out, double value) {
  cudaStream_t s = stream_for(device_index_);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<blocks_for(out.numel()), 256, 0, s>>>(dptr<T>(out), out.numel(), value);
  });
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::arange(const Tensor& out, double start, double step) {
  cudaStream_t s = stream_for(device_index_);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    arange_kernel<T><<<blocks_for(out.numel()), 256, 0, s>>>(dptr<T>(out), out.numel(), start, step);
  });
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::random(const Tensor& out, bool normal, uint64_t seed, uint64_t offset) {
  cudaStream_t s = stream_for(device_index_);
  random_kernel<<<blocks_for(out.numel()), 256, 0, s>>>(dptr<float>(out), out.numel(), normal, seed, offset);
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::copy(const Tensor& src, const Tensor& dst) {
  cudaStream_t s = stream_for(device_index_);
  const int64_t n = dst.numel();
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    EMBER_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDeviceToDevice, s));
    return;
  }
  if (src.dtype() == dst.dtype() && (src.dtype() == DType::F8E4M3 || src.dtype() == DType::F8E5M2)) {
    copy_bytes_kernel<<<blocks_for(n), 256, 0, s>>>(dptr<uint8_t>(src), strided(src), dptr<uint8_t>(dst),
                                                    strided(dst), n);
    EMBER_CUDA_LAUNCHED();
    return;
  }
  dispatch(src.dtype(), [&](auto st_) {
    using S = decltype(st_);
    dispatch(dst.dtype(), [&](auto dt_) {
      using D = decltype(dt_);
      copy_kernel<S, D><<<blocks_for(n), 256, 0, s>>>(dptr<S>(src), strided(src), dptr<D>(dst), strided(dst), n);
    });
  });
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::unary(UnaryOp op, const Tensor& x, const Tensor& out, float a, float b) {
  cudaStream_t s = stream_for(device_index_);
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    unary_kernel<T><<<blocks_for(out.numel()), 256, 0, s>>>(op, dptr<T>(x), strided(x), dptr<T>(out), out.numel(), a, b);
  });
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  const int64_t n = out.numel();
  dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (is_cmp(op))
      binary_kernel<T, true><<<blocks_for(n), 256, 0, s>>>(op, dptr<T>(a), strided(a), dptr<T>(b), strided(b),
                                                           out.raw_data(), n);
    else
      binary_kernel<T, false><<<blocks_for(n), 256, 0, s>>>(op, dptr<T>(a), strided(a), dptr<T>(b), strided(b),
                                                            out.raw_data(), n);
  });
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  where_kernel<<<blocks_for(out.numel()), 256, 0, s>>>(dptr<uint8_t>(cond), strided(cond), dptr<uint8_t>(a), strided(a),
                                                       dptr<uint8_t>(b), strided(b), dptr<uint8_t>(out), out.numel(),
                                                       int(dtype_size(out.dtype())));
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::index_select(const Tensor& x, int64_t, int64_t n, int64_t inner, const Tensor& index,
                               const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  const int64_t total = int64_t(out.nbytes());
  index_select_kernel<<<blocks_for(total), 256, 0, s>>>(dptr<uint8_t>(x), n, inner * int64_t(dtype_size(x.dtype())),
                                                        dptr<int64_t>(index), index.numel(), dptr<uint8_t>(out), total);
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::gather(const Tensor& x, int64_t outer, int64_t n, int64_t inner, const Tensor& index,
                         const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  const int64_t m = index.numel() / std::max<int64_t>(outer * inner, 1);
  gather_kernel<<<blocks_for(index.numel()), 256, 0, s>>>(dptr<uint8_t>(x), n, inner, m, dptr<int64_t>(index),
                                                          dptr<uint8_t>(out), index.numel(), int(dtype_size(x.dtype())));
  EMBER_CUDA_LAUNCHED();
}

}  // namespace ember::backend
