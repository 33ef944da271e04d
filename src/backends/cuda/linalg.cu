// CUDA matrix products: cuBLAS (f32 compute, no TF32, so results match the CPU to f32 rounding)
// and first MXFP4 kernels that decode blocks in registers, never the whole weight.
#include <cublas_v2.h>

#include <mutex>
#include <vector>

#include "backends/cuda/common.cuh"

namespace ember::backend {

using namespace cuda;

namespace {

cublasHandle_t handle_for(int device, cudaStream_t stream) {
  static std::mutex mutex;
  static std::vector<cublasHandle_t> handles;
  std::lock_guard lock(mutex);
  if (int(handles.size()) <= device) handles.resize(size_t(device) + 1, nullptr);
  if (!handles[size_t(device)]) {
    EMBER_CUBLAS_CHECK(cublasCreate(&handles[size_t(device)]));
    EMBER_CUBLAS_CHECK(cublasSetMathMode(handles[size_t(device)], CUBLAS_PEDANTIC_MATH));
  }
  EMBER_CUBLAS_CHECK(cublasSetStream(handles[size_t(device)], stream));
  return handles[size_t(device)];
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: throw_error("matmul: dtype {} unsupported on CUDA", dtype_name(t));
  }
}

// Converts a 16-bit [B, R, C] operand (row stride ld, batch stride bs) to a dense f32 copy.
template <typename T>
__global__ void widen_kernel(const T* src, int64_t B, int64_t R, int64_t C, int64_t bs, int64_t lds, float* dst) {
  const int64_t n = B * R * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / (R * C), r = (i / C) % R, c = i % C;
    dst[i] = ld(src + b * bs + r * lds + c);
  }
}

__device__ __forceinline__ float fp4(uint8_t code) {
  const float mag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  const float v = mag[code & 7];
  return code & 8 ? -v : v;
}

template <typename O>
__global__ void mxfp4_dequant_kernel(const uint8_t* blocks, const uint8_t* scales, int64_t nblocks_total, O* out) {
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < nblocks_total;
       b += int64_t(gridDim.x) * blockDim.x) {
    const float sc = ldexpf(1.0f, int(scales[b]) - 127);
    const uint8_t* blk = blocks + b * 16;
    for (int j = 0; j < 16; ++j) {
      st(out + b * 32 + 2 * j, double(fp4(blk[j] & 0x0f) * sc));
      st(out + b * 32 + 2 * j + 1, double(fp4(blk[j] >> 4) * sc));
    }
  }
}

// One warp per output feature n: lanes walk the K/32 blocks (16-byte loads), decode in registers
// and accumulate against up to kRows rows of x per pass.
constexpr int kRows = 8;
template <typename B>
__global__ void mxfp4_linear_kernel(const float* x, int64_t M, int64_t K, const uint8_t* blocks, const uint8_t* scales,
                                    const B* bias, int64_t N, float* out) {
  const int lane = threadIdx.x % 32;
  const int64_t n = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (n >= N) return;
  const int64_t nb = K / 32;
  const uint4* wrow = reinterpret_cast<const uint4*>(blocks + n * nb * 16);
  for (int64_t m0 = 0; m0 < M; m0 += kRows) {
    float acc[kRows] = {};
    const int rows = int(M - m0 < kRows ? M - m0 : kRows);
    for (int64_t k = lane; k < nb; k += 32) {
      const uint4 q = wrow[k];
      const float sc = ldexpf(1.0f, int(scales[n * nb + k]) - 127);
      const uint8_t* bytes = reinterpret_cast<const uint8_t*>(&q);
      float w[32];
#pragma unroll
      for (int j = 0; j < 16; ++j) w[2 * j] = fp4(bytes[j] & 0x0f) * sc, w[2 * j + 1] = fp4(bytes[j] >> 4) * sc;
      for (int r = 0; r < rows; ++r) {
        const float* xr = x + (m0 + r) * K + k * 32;
        float s = 0;
#pragma unroll
        for (int j = 0; j < 32; ++j) s += xr[j] * w[j];
        acc[r] += s;
      }
    }
    for (int r = 0; r < rows; ++r) {
      float v = acc[r];
      for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
      if (lane == 0) out[(m0 + r) * N + n] = v + (bias ? float(ld(bias + n)) : 0.f);
    }
  }
}


// ---- gpt-oss MoE over MXFP4 experts (decode: a few tokens, each selected expert read once) ----

// Dot of one packed MXFP4 row (nb blocks) with x (nb*32 floats): each lane takes every 32nd block;
// the warp's sum ends up in every lane.
__device__ __forceinline__ float mxfp4_row_dot(const uint8_t* row_blocks, const uint8_t* row_scales, int64_t nb,
                                               const float* x, int lane) {
  const uint4* w = reinterpret_cast<const uint4*>(row_blocks);
  float acc = 0.f;
  for (int64_t k = lane; k < nb; k += 32) {
    const uint4 q = w[k];
    const float sc = ldexpf(1.0f, int(row_scales[k]) - 127);
    const uint8_t* bytes = reinterpret_cast<const uint8_t*>(&q);
    const float4* x4 = reinterpret_cast<const float4*>(x + k * 32);
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float4 xv = x4[j];
      s += xv.x * fp4(bytes[2 * j] & 0x0f) + xv.y * fp4(bytes[2 * j] >> 4) + xv.z * fp4(bytes[2 * j + 1] & 0x0f) +
           xv.w * fp4(bytes[2 * j + 1] >> 4);
    }
    acc += s * sc;
  }
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  return acc;
}

// act[ts, j] = swiglu(W1[e] row 2j . x_t + b1[e, 2j], W1[e] row 2j+1 . x_t + b1[e, 2j+1]), e = idx[ts],
// t = ts / k: one warp per j, grid.y over the T*k (token, slot) pairs.
template <typename B>
__global__ void moe_up_kernel(const float* x, const int64_t* idx, int64_t k, int64_t H, int64_t I,
                              const uint8_t* blocks, const uint8_t* scales, const B* bias, float limit, float* act) {
  const int lane = threadIdx.x % 32;
  const int64_t j = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (j >= I) return;
  const int64_t ts = blockIdx.y, t = ts / k, e = idx[ts], nb = H / 32;
  const int64_t r0 = e * 2 * I + 2 * j;  // glu row; r0 + 1 is the linear row
  const float* xt = x + t * H;
  float glu = mxfp4_row_dot(blocks + r0 * nb * 16, scales + r0 * nb, nb, xt, lane);
  float lin = mxfp4_row_dot(blocks + (r0 + 1) * nb * 16, scales + (r0 + 1) * nb, nb, xt, lane);
  if (lane == 0) {
    glu = fminf(glu + ld(bias + r0), limit);
    lin = fmaxf(fminf(lin + ld(bias + r0 + 1), limit), -limit);
    const float out_glu = glu * (1.0f / (1.0f + expf(-(glu * 1.702f))));
    act[ts * I + j] = out_glu * (lin + 1.0f);
  }
}

// out[t, n] = sum_s weights[t, s] * (W2[e_s] row n . act[t k + s] + b2[e_s, n]): one warp per n,
// the k slots summed in order (deterministic, no atomics), grid.y over tokens.
template <typename B>
__global__ void moe_down_kernel(const float* act, const int64_t* idx, const float* weights, int64_t k, int64_t H,
                                int64_t I, const uint8_t* blocks, const uint8_t* scales, const B* bias, float* out) {
  const int lane = threadIdx.x % 32;
  const int64_t n = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (n >= H) return;
  const int64_t t = blockIdx.y, nb = I / 32;
  float total = 0.f;
  for (int64_t s = 0; s < k; ++s) {
    const int64_t ts = t * k + s, e = idx[ts], r = e * H + n;
    const float y = mxfp4_row_dot(blocks + r * nb * 16, scales + r * nb, nb, act + ts * I, lane) + ld(bias + r);
    total += weights[ts] * y;
  }
  if (lane == 0) out[t * H + n] = total;
}

}  // namespace

void CudaBackend::matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  cublasHandle_t h = handle_for(device_index_, s);
  const int64_t B = out.dim(0), M = out.dim(1), N = out.dim(2), K = trans_a ? a.dim(1) : a.dim(2);
  Tensor A = a, Bm = b;
  // Mixed precision: widen the 16-bit operand so the product is an exact f32 GEMM like the CPU's.
  auto widen = [&](const Tensor& t) {
    const int64_t R = t.dim(1), C = t.dim(2);
    Tensor w = Tensor::empty({t.dim(0), R, C}, DType::F32, t.device());
    dispatch(t.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (is_float_t<T>::value)
        widen_kernel<T><<<blocks_for(w.numel()), 256, 0, s>>>(dptr<T>(t), t.dim(0), R, C, t.strides()[0],
                                                              t.strides()[1], dptr<float>(w));
    });
    EMBER_CUDA_LAUNCHED();
    return w;
  };
  if (a.dtype() != b.dtype() || out.dtype() == DType::F32) {
    if (A.dtype() != DType::F32) A = widen(A);
    if (Bm.dtype() != DType::F32) Bm = widen(Bm);
  }
  const float alpha = 1.0f, beta = 0.0f;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
  const int64_t strideA = A.dim(0) == 1 ? 0 : A.strides()[0], strideB = Bm.dim(0) == 1 ? 0 : Bm.strides()[0];
  EMBER_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K), &alpha,
      Bm.raw_data(), cuda_type(Bm.dtype()), int(Bm.strides()[1]), strideB, A.raw_data(), cuda_type(A.dtype()),
      int(A.strides()[1]), strideA, &beta, out.raw_data(), cuda_type(out.dtype()), int(N), M * N, int(B),
      CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::mxfp4_dequantize(const Tensor& blocks, const Tensor& scales, const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  const int64_t nb = scales.numel();
  dispatch(out.dtype(), [&](auto tag) {
    using O = decltype(tag);
    if constexpr (is_float_t<O>::value)
      mxfp4_dequant_kernel<O><<<blocks_for(nb), 256, 0, s>>>(dptr<uint8_t>(blocks), dptr<uint8_t>(scales), nb,
                                                             dptr<O>(out));
  });
  EMBER_CUDA_LAUNCHED();
}

void CudaBackend::mxfp4_linear(const Tensor& x, const Tensor& blocks, const Tensor& scales, const Tensor& bias,
                               const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  const int64_t M = x.dim(0), K = x.dim(1), N = blocks.dim(0);
  const int warps = 8;
  const unsigned grid = unsigned((N + warps - 1) / warps);
  auto launch = [&](auto tag) {
    using B = decltype(tag);
    mxfp4_linear_kernel<B><<<grid, warps * 32, 0, s>>>(dptr<float>(x), M, K, dptr<uint8_t>(blocks),
                                                       dptr<uint8_t>(scales), bias.defined() ? dptr<B>(bias) : nullptr,
                                                       N, dptr<float>(out));
  };
  if (bias.defined()) {
    dispatch(bias.dtype(), [&](auto tag) {
      if constexpr (is_float_t<decltype(tag)>::value) launch(tag);
    });
  } else {
    launch(float{});
  }
  EMBER_CUDA_LAUNCHED();
}

bool CudaBackend::moe_mxfp4(const Tensor& x, const Tensor& indices, const Tensor& weights, const Tensor& w1_blocks,
                            const Tensor& w1_scales, const Tensor& b1, const Tensor& w2_blocks, const Tensor& w2_scales,
                            const Tensor& b2, float swiglu_limit, const Tensor& out) {
  // 16-byte loads of x, act and the blocks.
  for (const Tensor* t : {&x, &w1_blocks, &w2_blocks})
    if (reinterpret_cast<uintptr_t>(t->raw_data()) % 16) return false;
  cudaStream_t s = stream_for(device_index_);
  const int64_t T = x.dim(0), H = x.dim(1), k = indices.dim(1), I = w2_blocks.dim(2) * 32;
  Tensor act = Tensor::empty({T * k, I}, DType::F32, x.device());
  const int warps = 8;
  dispatch(b1.dtype(), [&](auto tag) {
    using B = decltype(tag);
    if constexpr (is_float_t<B>::value) {
      moe_up_kernel<B><<<dim3(unsigned((I + warps - 1) / warps), unsigned(T * k)), warps * 32, 0, s>>>(
          dptr<float>(x), dptr<int64_t>(indices), k, H, I, dptr<uint8_t>(w1_blocks), dptr<uint8_t>(w1_scales),
          dptr<B>(b1), swiglu_limit, dptr<float>(act));
      EMBER_CUDA_LAUNCHED();
      moe_down_kernel<B><<<dim3(unsigned((H + warps - 1) / warps), unsigned(T)), warps * 32, 0, s>>>(
          dptr<float>(act), dptr<int64_t>(indices), dptr<float>(weights), k, H, I, dptr<uint8_t>(w2_blocks),
          dptr<uint8_t>(w2_scales), dptr<B>(b2), dptr<float>(out));
      EMBER_CUDA_LAUNCHED();
    }
  });
  return true;
}

}  // namespace ember::backend
