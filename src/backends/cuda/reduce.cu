// CUDA reductions, softmax, norms and top-k. One block per reduced row: threads stride over the
// reduced dimension and combine through shared memory.
#include <cfloat>

#include "backends/cuda/common.cuh"

namespace ember::backend {

using namespace cuda;

namespace {

constexpr int kThreads = 256;

template <typename V>
__device__ V block_sum(V v, V* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  V total = 0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < int(blockDim.x / 32); ++w) total += shared[w];
    shared[0] = total;
  }
  __syncthreads();
  total = shared[0];
  __syncthreads();
  return total;
}

__device__ float block_max(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = shared[0];
    for (int w = 1; w < int(blockDim.x / 32); ++w) m = fmaxf(m, shared[w]);
    shared[0] = m;
  }
  __syncthreads();
  const float r = shared[0];
  __syncthreads();
  return r;
}

// Sum/Mean (float data: double accumulation; ints: int64), one block per (outer, inner).
template <typename T, typename O>
__global__ void sum_kernel(const T* x, int64_t n, int64_t inner, bool mean, O* out) {
  __shared__ double sd[32];
  __shared__ long long si[32];
  const int64_t r = blockIdx.x, o = r / inner, i = r % inner;
  const T* base = x + o * n * inner + i;
  if constexpr (is_float_t<T>::value) {
    double s = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += double(ld(base + j * inner));
    s = block_sum(s, sd);
    if (threadIdx.x == 0) st(out + r, mean ? s / double(n) : s);
  } else {
    long long s = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += ld(base + j * inner);
    s = block_sum(s, si);
    if (threadIdx.x == 0) reinterpret_cast<int64_t*>(out)[r] = s;
  }
}

// Max/Min/ArgMax/ArgMin with the CPU's rules: the first extreme wins; NaN beats everything.
template <typename T>
__global__ void extreme_kernel(const T* x, int64_t n, int64_t inner, bool want_max, bool arg, void* out) {
  using V = typename compute<T>::type;
  __shared__ V sv[kThreads];
  __shared__ int64_t sj[kThreads];
  __shared__ bool snan[kThreads];
  const int64_t r = blockIdx.x, o = r / inner, i = r % inner;
  const T* base = x + o * n * inner + i;
  V best = 0;
  int64_t bj = -1;
  bool bnan = false;
  auto better = [&](V v, bool vnan, int64_t j, V b, bool bn, int64_t bjj) {
    if (bjj < 0) return true;
    if (bn) return vnan && j < bjj;
    if (vnan) return true;
    if (v == b) return j < bjj;
    return want_max ? v > b : v < b;
  };
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const V v = V(ld(base + j * inner));
    bool vn = false;
    if constexpr (is_float_t<T>::value) vn = isnan(float(v));
    if (better(v, vn, j, best, bnan, bj)) best = v, bj = j, bnan = vn;
  }
  sv[threadIdx.x] = best, sj[threadIdx.x] = bj, snan[threadIdx.x] = bnan;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const int t = threadIdx.x + s;
      if (sj[t] >= 0 && better(sv[t], snan[t], sj[t], sv[threadIdx.x], snan[threadIdx.x], sj[threadIdx.x]))
        sv[threadIdx.x] = sv[t], sj[threadIdx.x] = sj[t], snan[threadIdx.x] = snan[t];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    if (arg) static_cast<int64_t*>(out)[r] = sj[0];
    else static_cast<T*>(out)[r] = base[sj[0] * inner];
  }
}

template <typename T>
__global__ void softmax_kernel(const T* x, int64_t n, int64_t inner, bool log, T* out) {
  __shared__ float sf[32];
  __shared__ double sd[32];
  const int64_t r = blockIdx.x, o = r / inner, i = r % inner;
  const T* src = x + o * n * inner + i;
  T* dst = out + o * n * inner + i;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, ld(src + j * inner));
  m = block_max(m, sf);
  if (m == -INFINITY) m = 0;
  double s = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += ::exp(double(ld(src + j * inner) - m));
  s = block_sum(s, sd);
  if (log) {
    const float ls = float(::log(s));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) st(dst + j * inner, double(ld(src + j * inner) - m - ls));
  } else {
    const float inv = float(1.0 / s);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) st(dst + j * inner, double(expf(ld(src + j * inner) - m) * inv));
  }
}

template <typename T, typename W>
__global__ void rms_norm_kernel(const T* x, const W* w, int64_t n, float eps, T* out) {
  __shared__ double sd[32];
  const T* src = x + blockIdx.x * n;
  double ss = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float v = ld(src + j);
    ss += double(v) * v;
  }
  ss = block_sum(ss, sd);
  const float scale = float(1.0 / ::sqrt(ss / double(n) + double(eps)));
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
    st(out + blockIdx.x * n + j, double(ld(src + j) * scale * float(ld(w + j))));
}

template <typename T, typename W>
__global__ void layer_norm_kernel(const T* x, const W* w, const W* b, int64_t n, float eps, T* out) {
  __shared__ double sd[32];
  const T* src = x + blockIdx.x * n;
  double s = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += ld(src + j);
  const double mean = block_sum(s, sd) / double(n);
  double v = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const double d = ld(src + j) - mean;
    v += d * d;
  }
  const double inv = 1.0 / ::sqrt(block_sum(v, sd) / double(n) + double(eps));
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
    st(out + blockIdx.x * n + j,
       (double(ld(src + j)) - mean) * inv * (w ? double(ld(w + j)) : 1.0) + (b ? double(ld(b + j)) : 0.0));
}

// Top-k by k rounds of a block-wide argmax over the not-yet-taken entries (taken marked in a
// scratch row). Fast for the small k of routing and sampling; correct for any k.
template <typename T>
__global__ void topk_kernel(const T* x, int64_t n, int64_t k, uint8_t* taken, T* values, int64_t* indices) {
  __shared__ float sv[kThreads];
  __shared__ int64_t sj[kThreads];
  __shared__ bool snan[kThreads];
  const T* row = x + blockIdx.x * n;
  uint8_t* tk = taken + blockIdx.x * n;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) tk[j] = 0;
  __syncthreads();
  for (int64_t r = 0; r < k; ++r) {
    float best = 0;
    int64_t bj = -1;
    bool bnan = false;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      if (tk[j]) continue;
      const float v = ld(row + j);
      const bool vn = isnan(v);
      bool better;
      if (bj < 0) better = true;
      else if (bnan) better = false;  // j increases within a thread: keep the earlier NaN
      else if (vn) better = true;
      else better = v > best;
      if (better) best = v, bj = j, bnan = vn;
    }
    sv[threadIdx.x] = best, sj[threadIdx.x] = bj, snan[threadIdx.x] = bnan;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        const int t = threadIdx.x + s;
        const int64_t a = sj[threadIdx.x], c = sj[t];
        bool take = false;
        if (c >= 0) {
          if (a < 0) take = true;
          else if (snan[threadIdx.x] != snan[t]) take = snan[t];
          else if (snan[t] || sv[t] == sv[threadIdx.x]) take = c < a;
          else take = sv[t] > sv[threadIdx.x];
        }
        if (take) sv[threadIdx.x] = sv[t], sj[threadIdx.x] = c, snan[threadIdx.x] = snan[t];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const int64_t j = sj[0];
      values[blockIdx.x * k + r] = row[j];
      indices[blockIdx.x * k + r] = j;
      tk[j] = 1;
    }
    __syncthreads();
  }
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner, const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  const unsigned rows = unsigned(outer * inner);
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (op == ReduceOp::Sum || op == ReduceOp::Mean) {
      dispatch(out.dtype(), [&](auto ot) {
        using O = decltype(ot);
        sum_kernel<T, O><<<rows, kThreads, 0, s>>>(dptr<T>(x), n, inner, op == ReduceOp::Mean, dptr<O>(out));
      });
    } else {
      const bool want_max = op == ReduceOp::Max || op == ReduceOp::ArgMax;
      const bool arg = op == ReduceOp::ArgMax || op == ReduceOp::ArgMin;
      extreme_kernel<T><<<rows, kThreads, 0, s>>>(dptr<T>(x), n, inner, want_max, arg, out.raw_data());
    }
  });
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log, const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_float_t<T>::value)
      softmax_kernel<T><<<unsigned(outer * inner), kThreads, 0, s>>>(dptr<T>(x), n, inner, log, dptr<T>(out));
  });
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  const int64_t n = x.dim(-1), rows = x.numel() / n;
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dispatch(weight.dtype(), [&](auto wt) {
      using W = decltype(wt);
      if constexpr (is_float_t<T>::value && is_float_t<W>::value)
        rms_norm_kernel<T, W><<<unsigned(rows), kThreads, 0, s>>>(dptr<T>(x), dptr<W>(weight), n, eps, dptr<T>(out));
    });
  });
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  const int64_t n = x.dim(-1), rows = x.numel() / n;
  // weight and bias in f32 so one kernel covers every combination
  Tensor w = weight.defined() ? weight.to(DType::F32) : Tensor();
  Tensor b = bias.defined() ? bias.to(DType::F32) : Tensor();
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_float_t<T>::value)
      layer_norm_kernel<T, float><<<unsigned(rows), kThreads, 0, s>>>(
          dptr<T>(x), w.defined() ? dptr<float>(w) : nullptr, b.defined() ? dptr<float>(b) : nullptr, n, eps,
          dptr<T>(out));
  });
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::topk(const Tensor& x, int64_t k, const Tensor& values, const Tensor& indices) {
  cudaStream_t s = stream_for(device_index_);
  const int64_t n = x.dim(-1), rows = x.numel() / n;
  Tensor taken = Tensor::empty({rows, n}, DType::U8, Device::cuda(device_index_));
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_float_t<T>::value)
      topk_kernel<T><<<unsigned(rows), kThreads, 0, s>>>(dptr<T>(x), n, k, dptr<uint8_t>(taken), dptr<T>(values),
                                                         dptr<int64_t>(indices));
  });
  EMBER_CUDA_LAUNCHED();
}

}  // namespace ember::backend
