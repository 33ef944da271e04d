// The fused gpt-oss runtime on CUDA (backends/gpt_oss_runtime.h): a decode step is ~6 kernels a
// layer over preallocated buffers, captured once into a CUDA graph; the position and the token live
// in device memory so that the graph replays unchanged. Prefill runs the same layers for a chunk of
// tokens with cuBLAS for the dense projections.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "backends/cuda/common.cuh"
#include "backends/cuda/gpt_oss_prefill.h"
#include "backends/cuda/sampling.h"
#include "backends/gpt_oss_runtime.h"

namespace ember::backend {

using namespace cuda;

namespace {

constexpr int kThreads = 256, kWarps = 8;
constexpr int kMaxHeadDim = 64;
constexpr int kAttnTile = 32;
// Below this many tokens a prefill chunk runs the experts token by token (f32, each selected
// expert read once per token), from it on as one grouped GEMM on tensor cores (bf16 inputs).
constexpr int64_t kTiledMoeMinTokens = 8;

// ---------------------------------------------------------------- small device helpers

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Sum (or maximum) over the block (every thread gets it); `red` holds 32 floats of shared memory.
template <bool Max>
__device__ float block_reduce(float v, float* red) {
  v = Max ? warp_max(v) : warp_sum(v);
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) red[w] = v;
  __syncthreads();
  v = lane < int(blockDim.x / 32) ? red[lane] : Max ? -INFINITY : 0.f;
  return Max ? warp_max(v) : warp_sum(v);
}
__device__ float block_sum(float v, float* red) { return block_reduce<false>(v, red); }
__device__ float block_max(float v, float* red) { return block_reduce<true>(v, red); }

__device__ __forceinline__ int64_t lmin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t lmax(int64_t a, int64_t b) { return a > b ? a : b; }

__device__ __forceinline__ float bf_lo(uint32_t u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float bf_hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

// Weights are read once a step: keep them out of L1.
__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

// Programmatic dependent launch (sm_90): a kernel launched with the attribute may start while the
// previous one finishes; it loads what does not depend on it (weights, older cache rows), then waits for it.
// Launched without the attribute, both instructions do nothing.
__device__ __forceinline__ void wait_previous_kernel() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void allow_next_kernel() { asm volatile("griddepcontrol.launch_dependents;" :::); }
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }
// The warp prefetches `bytes` from `p` into L2 (one 128-byte line per lane and step).
__device__ __forceinline__ void prefetch_row(const void* p, size_t bytes, int lane) {
  for (size_t off = size_t(lane) * 128; off < bytes; off += 32 * 128) prefetch_l2(static_cast<const char*>(p) + off);
}
__device__ __forceinline__ float dot8(uint4 w, const float* x) {
  const float4 a = *reinterpret_cast<const float4*>(x), b = *reinterpret_cast<const float4*>(x + 4);
  return bf_lo(w.x) * a.x + bf_hi(w.x) * a.y + bf_lo(w.y) * a.z + bf_hi(w.y) * a.w + bf_lo(w.z) * b.x +
         bf_hi(w.z) * b.y + bf_lo(w.w) * b.z + bf_hi(w.w) * b.w;
}

// Dots of R bf16 rows (K/8 16-byte chunks each) with x in shared memory; every lane gets the sums.
// Loads go out in batches of 8 per lane (U = 8/R steps of R rows) before any is used: these
// kernels are short, so bytes in flight early decide their speed.
template <int R>
struct RowBatch {
  static constexpr int U = R >= 8 ? 1 : 8 / R;
  uint4 w[U][R];
};
// The lane's batch at chunk c0 (lane, lane + 32, ...) of each row.
template <int R>
__device__ __forceinline__ void load_rows_bf16(const uint16_t* const (&rows)[R], int chunks, int c0, RowBatch<R>& b) {
#pragma unroll
  for (int u = 0; u < RowBatch<R>::U; ++u)
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (c0 + 32 * u < chunks) b.w[u][r] = ld_stream(reinterpret_cast<const uint4*>(rows[r]) + c0 + 32 * u);
}
// `first`: the batch at c0 = lane was loaded already (load_rows_bf16), before the kernel waited
// for the previous one: weights do not depend on it, so their first bytes are on the way while
// it finishes.
template <int R, bool Preloaded = false>
__device__ __forceinline__ void dot_rows_bf16(const uint16_t* const (&rows)[R], const float* xs, int chunks, int lane,
                                              float (&out)[R], const RowBatch<R>* first = nullptr) {
  constexpr int U = RowBatch<R>::U;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.f;
  auto add = [&](const RowBatch<R>& b, int c0) {
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (c0 + 32 * u < chunks) acc[r] += dot8(b.w[u][r], xs + (c0 + 32 * u) * 8);
  };
  int c0 = lane;
  if (Preloaded) add(*first, c0), c0 += 32 * U;
  for (; c0 < chunks; c0 += 32 * U) {
    RowBatch<R> b;
    load_rows_bf16(rows, chunks, c0, b);
    add(b, c0);
  }
#pragma unroll
  for (int r = 0; r < R; ++r) out[r] = warp_sum(acc[r]);
}

// rms_norm(x) * w into shared memory (all threads; synchronises). n % 4 == 0 and n <= 4 * 4 *
// blockDim.x: every thread issues all its loads (x and w, 16 bytes each) before using any, since
// this prologue sits on the critical path of short kernels.
__device__ void norm_to_smem(const float* x, const float* w, int n, float eps, float* xs, float* red) {
  constexpr int kMax = 4;  // float4s a thread
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const float4* w4 = reinterpret_cast<const float4*>(w);
  float4 xv[kMax], wv[kMax];
  const int n4 = n / 4;
#pragma unroll
  for (int j = 0; j < kMax; ++j) {
    const int i = threadIdx.x + j * int(blockDim.x);
    if (i < n4) xv[j] = x4[i], wv[j] = __ldg(w4 + i);
  }
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kMax; ++j)
    if (threadIdx.x + j * int(blockDim.x) < n4) ss += xv[j].x * xv[j].x + xv[j].y * xv[j].y + xv[j].z * xv[j].z + xv[j].w * xv[j].w;
  ss = block_sum(ss, red);
  const float r = 1.0f / sqrtf(ss / float(n) + eps);
#pragma unroll
  for (int j = 0; j < kMax; ++j) {
    const int i = threadIdx.x + j * int(blockDim.x);
    if (i < n4)
      reinterpret_cast<float4*>(xs)[i] =
          make_float4(xv[j].x * r * wv[j].x, xv[j].y * r * wv[j].y, xv[j].z * r * wv[j].z, xv[j].w * r * wv[j].w);
  }
  __syncthreads();
}

// Copies n floats (n % 4 == 0, 16-byte aligned) to shared memory, 4 loads a thread in flight.
__device__ void copy_to_smem(const float* src, int n, float* dst) {
  constexpr int kMax = 4;
  const float4* s4 = reinterpret_cast<const float4*>(src);
  const int n4 = n / 4;
  for (int i0 = threadIdx.x; i0 < n4; i0 += kMax * int(blockDim.x)) {
    float4 v[kMax];
#pragma unroll
    for (int j = 0; j < kMax; ++j) {
      const int i = i0 + j * int(blockDim.x);
      if (i < n4) v[j] = s4[i];
    }
#pragma unroll
    for (int j = 0; j < kMax; ++j) {
      const int i = i0 + j * int(blockDim.x);
      if (i < n4) reinterpret_cast<float4*>(dst)[i] = v[j];
    }
  }
  __syncthreads();
}

// gpt-oss's clamped SwiGLU of one (glu, linear) pair, biases added (model.py's swiglu).
__device__ __forceinline__ float swiglu_clamped(float glu, float lin, float limit) {
  glu = fminf(glu, limit);
  lin = fmaxf(fminf(lin, limit), -limit);
  return glu / (1.0f + expf(-1.702f * glu)) * (lin + 1.0f);
}

// 2^(s-127) for a UE8 scale byte.
__device__ __forceinline__ float ue8(uint32_t s) { return s ? __uint_as_float(s << 23) : ldexpf(1.0f, -127); }

// The 16 E2M1 values in shared memory: 16 words in 16 banks, so any pattern of lookups by a warp
// is conflict-free (same word: broadcast).
__device__ __forceinline__ void init_fp4_lut(float* lut) {
  if (threadIdx.x < 16) {
    const uint32_t c = threadIdx.x, m = c & 7;
    const float mag = m < 2 ? 0.5f * float(m) : float(2 + (m & 1)) * float(1 << ((m >> 1) - 1)) * 0.5f;
    lut[c] = c & 8 ? -mag : mag;
  }
}

// ---- MXFP4 x int8 (decode with EMBER_GPT_OSS_EXPERTS=int8): activations quantised per block of 32 to int8 with
// scale max|a|/127 (round to nearest even), products summed exactly in int32 (dp4a), each
// block's sum scaled in f32. About 1.4 instructions a weight against ~5 for the f32 table
// lookups, which leaves the expert kernels memory-bound.

// PTX prmt itself: __byte_perm documents only the low 3 bits of each selector nibble.
__device__ __forceinline__ int prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return int(r);
}

// 8 FP4 codes (value i in nibble i) against 8 int8 activations (xa: values 0-3, xb: 4-7). prmt
// looks the codes up in a table of doubled magnitudes; a selector nibble with its top bit set
// yields 0 (a positive byte's sign replicated), which splits positive codes (pos) from negative
// ones (neg): the dot is (pos - neg) / 2.
__device__ __forceinline__ void fp4x8_dot_i8(uint32_t q, int xa, int xb, int& pos, int& neg) {
  constexpr uint32_t kT0 = 0x03020100u, kT1 = 0x0C080604u;  // 0 1 2 3 | 4 6 8 12 (2x E2M1)
  const uint32_t qn = q ^ 0x88888888u;
  pos = __dp4a(prmt(kT0, kT1, q), xa, pos);
  pos = __dp4a(prmt(kT0, kT1, q >> 16), xb, pos);
  neg = __dp4a(prmt(kT0, kT1, qn), xa, neg);
  neg = __dp4a(prmt(kT0, kT1, qn >> 16), xb, neg);
}

// 2^(s-127) / 2 (the table's doubling folded in) for a UE8 scale byte.
__device__ __forceinline__ float half_ue8(uint32_t s) {
  return s >= 2 ? __uint_as_float((s - 1) << 23) : ldexpf(1.0f, int(s) - 128);
}

__device__ __forceinline__ uint32_t ld_stream_u32(const void* p) {
  uint32_t r;
  asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(r) : "l"(p));
  return r;
}

// One 32-bit word of an MXFP4 block (8 codes, value i in nibble i) against 8 f32 activations
// (lo: values 0-3, hi: 4-7), two accumulator chains.
__device__ __forceinline__ float fp4_word_dot(uint32_t q, float4 lo, float4 hi, const float* lut) {
  float s0 = lut[q & 15] * lo.x, s1 = lut[(q >> 4) & 15] * lo.y;
  s0 = fmaf(lut[(q >> 8) & 15], lo.z, s0), s1 = fmaf(lut[(q >> 12) & 15], lo.w, s1);
  s0 = fmaf(lut[(q >> 16) & 15], hi.x, s0), s1 = fmaf(lut[(q >> 20) & 15], hi.y, s1);
  s0 = fmaf(lut[(q >> 24) & 15], hi.z, s0), s1 = fmaf(lut[q >> 28], hi.w, s1);
  return s0 + s1;
}

// Dots of R MXFP4 rows (nb blocks each) with f32 activations; rows g*G .. g*G+G-1 share x[g]. A
// lane takes one 4-byte word (8 values) of a row at a time, so a warp reads 128 contiguous bytes of
// each row and 1 KB of contiguous f32 activations an instruction (a lane per 16-byte block made
// the activation loads touch 32 lines each, which bound these kernels: 353 -> 394 tok/s on an
// H100); U words a lane are loaded before any is used. Every lane gets the sums.
template <int R, int G, int U>
__device__ __forceinline__ void dot_rows_mxfp4_f32(const uint8_t* const (&blocks)[R], const uint8_t* const (&scales)[R],
                                                   const float* const (&x)[R / G], int nb, int lane, const float* lut,
                                                   float (&out)[R]) {
  const int words = nb * 4;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.f;
  for (int w0 = lane; w0 < words; w0 += 32 * U) {
    uint32_t q[U][R], sc[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (w0 + 32 * u < words) {
          const int w = w0 + 32 * u;
          q[u][r] = ld_stream_u32(blocks[r] + 4 * size_t(w));
          sc[u][r] = __ldg(scales[r] + (w >> 2));
        }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int w = w0 + 32 * u;
      if (w >= words) break;
#pragma unroll
      for (int g = 0; g < R / G; ++g) {
        const float4* x4 = reinterpret_cast<const float4*>(x[g]) + 2 * w;
        const float4 lo = __ldg(x4), hi = __ldg(x4 + 1);
#pragma unroll
        for (int j = 0; j < G; ++j) {
          const int r = g * G + j;
          acc[r] = fmaf(fp4_word_dot(q[u][r], lo, hi, lut), ue8(sc[u][r]), acc[r]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) out[r] = warp_sum(acc[r]);
}

// int8 activations keep a lane per 16-byte block: their loads are 4x smaller than f32's, and this
// layout measured faster for them (508.3 tok/s on an H100 against 436.3 with a lane per word).
// Dots of R MXFP4 rows, row r against its own int8 activations xq[r] (nb*32) with per-block
// scales xs[r]; every lane gets the sums.
template <int R>
__device__ __forceinline__ void dot_rows_mxfp4_q8(const uint8_t* const (&blocks)[R], const uint8_t* const (&scales)[R],
                                                  const int8_t* const (&xq)[R], const float* const (&xs)[R], int nb,
                                                  int lane, float (&out)[R]) {
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.f;
  for (int b = lane; b < nb; b += 32) {
    uint4 w[R];
    uint32_t sc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      w[r] = ld_stream(reinterpret_cast<const uint4*>(blocks[r]) + b);
      sc[r] = __ldg(scales[r] + b);
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      // Rows sharing activations reload them from L1; the compiler keeps them when it can.
      const int4 xa = *reinterpret_cast<const int4*>(xq[r] + b * 32), xb = *reinterpret_cast<const int4*>(xq[r] + b * 32 + 16);
      int pos = 0, neg = 0;
      fp4x8_dot_i8(w[r].x, xa.x, xa.y, pos, neg);
      fp4x8_dot_i8(w[r].y, xa.z, xa.w, pos, neg);
      fp4x8_dot_i8(w[r].z, xb.x, xb.y, pos, neg);
      fp4x8_dot_i8(w[r].w, xb.z, xb.w, pos, neg);
      acc[r] = fmaf(float(pos - neg), xs[r][b] * half_ue8(sc[r]), acc[r]);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) out[r] = warp_sum(acc[r]);
}

// One warp quantises 32 values (one per lane) to int8 with scale max|v|/127.
__device__ __forceinline__ void quantize32(float v, int lane, int8_t* q, float* scale) {
  const float amax = warp_max(fabsf(v));
  const float s = amax / 127.0f;
  q[lane] = int8_t(s > 0.f ? __float2int_rn(v / s) : 0);
  if (lane == 0) *scale = s;
}

// ---- bf16 experts (the default): the experts' activations rounded to bf16, as in prefill, and held
// exactly in f16 after a power-of-two scale; FP4 codes turned into f16 in registers; products on
// tensor cores (mma.m16n8k16, f32 accumulation), each 32-value block's sum scaled in f32: no table
// lookups (the f32 kernels' cost), so what bounds them is the weight loads (dot8_mxfp4_f16).

// The exponent p that puts max|a| in [2^14, 2^15) once scaled by 2^p: bf16 values down to 2^-14
// below the maximum stay exact in f16 (normal), smaller ones lose low bits (relative 2^-25 of the max).
__device__ __forceinline__ int f16_exponent(float amax) {
  if (!(amax > 0.f) || !isfinite(amax)) return 0;
  int e;
  frexpf(amax, &e);  // amax in [2^(e-1), 2^e)
  const int p = 15 - e;
  return p < -60 ? -60 : p > 60 ? 60 : p;
}
// f16_exponent of the n values at v (the whole block; every thread gets it).
__device__ int f16_exponent_of(const float* v, int n, float* red) {
  float m = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, fabsf(v[i]));
  return f16_exponent(block_max(m, red));
}
__device__ __forceinline__ uint16_t f16_scaled(float v, int p) {
  return __half_as_ushort(__float2half_rn(ldexpf(__bfloat162float(__float2bfloat16_rn(v)), p)));
}
// Where value i of an activation vector goes: the values (r, r+4) of each word of 8 sit side by
// side, the order fp4_pair_f16 produces the codes in, so a lane loads its mma operands in one go.
__device__ __forceinline__ int f16_pair_index(int i) { return (i & ~7) | ((i & 3) << 1) | ((i >> 2) & 1); }

// Codes I and I+4 of a word (code i in nibble i) as f16x2 holding value * 2^-14, exactly: each
// code moved to the top of its half, its sign left there and its exponent and mantissa bits
// shifted under f16's low exponent bits (E2M1's 0.5 becomes an f16 subnormal).
template <int I>
__device__ __forceinline__ uint32_t fp4_pair_f16(uint32_t q) {
  const uint32_t a = q << (4 * (3 - I));
  return (a & 0x80008000u) | ((a >> 3) & 0x0E000E00u);
}

// c = A B (+ c) for one m16n8k16 f16 tile, f32 accumulation.
__device__ __forceinline__ void mma_f16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                        uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Unlike ld_stream_u32, allocates in L1: a quad reads 16 bytes of a 32-byte sector whose other
// half the next block's load wants.
__device__ __forceinline__ uint32_t ld_weight_u32(const uint8_t* p) {
  uint32_t r;
  asm volatile("ld.global.nc.u32 %0, [%1];" : "=r"(r) : "l"(p));
  return r;
}

// ---------------------------------------------------------------- kernels

struct RopeArgs {
  const float* inv_freq;  // [D/2]
  float concentration;
};

// (x0, x1) = pair (i, i + D/2) of a head at position pos, rotated as model.py's _apply_rotary_emb.
__device__ __forceinline__ void rope_pair(float& x0, float& x1, int64_t pos, int i, RopeArgs r) {
  const float angle = float(pos) * r.inv_freq[i];  // f32 product as the reference
  double sd, cd;
  sincos(double(angle), &sd, &cd);
  const float c = float(cd) * r.concentration, s = float(sd) * r.concentration;
  const float a = x0, b = x1;
  x0 = a * c - b * s;
  x1 = b * c + a * s;
}

// grid (ceil(H / blockDim), T): one value a thread, so a decode step's embedding is one round trip.
__global__ void embed_kernel(const uint16_t* emb, const int32_t* tokens, int H, float* x) {
  wait_previous_kernel();
  allow_next_kernel();
  const int t = blockIdx.y, i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < H) x[size_t(t) * H + i] = __uint_as_float(uint32_t(emb[size_t(tokens[t]) * size_t(H) + i]) << 16);
}

struct QkvDecodeArgs {
  const float* x;
  const float* norm_w;
  float eps;
  const uint16_t *wq, *wk, *wv;
  const float* bias;  // [Hq*D | Hkv*D | Hkv*D]
  int H, Hq, Hkv, D;
  RopeArgs rope;
  const int64_t* pos;
  uint16_t *k_cache, *v_cache;  // [Hkv, cap, D]
  int64_t cap;
  float* q;  // [Hq*D], RoPE'd
  int preload;  // the first batch of weights loaded before waiting for the previous kernel
};

// rms_norm + q/k/v projections + bias + RoPE; k and v go to the cache slot of the position. One
// warp per rotated pair of rows (i, i + D/2) of a head.
__global__ void __launch_bounds__(kThreads, 3) qkv_decode_kernel(QkvDecodeArgs a) {
  extern __shared__ float xs[];
  __shared__ float red[32];
  const int lane = threadIdx.x % 32, half = a.D / 2;
  const int p = blockIdx.x * kWarps + threadIdx.x / 32;
  const int heads = a.Hq + 2 * a.Hkv;
  const bool active = p < heads * half;
  const int head = p / half, i = p % half;
  const uint16_t* base = head < a.Hq ? a.wq : head < a.Hq + a.Hkv ? a.wk : a.wv;
  const int hh = head < a.Hq ? head : head < a.Hq + a.Hkv ? head - a.Hq : head - a.Hq - a.Hkv;
  const uint16_t* rows[2] = {base + size_t(hh * a.D + i) * a.H, base + size_t(hh * a.D + i + half) * a.H};
  RowBatch<2> first;
  if (a.preload && active) load_rows_bf16(rows, a.H / 8, lane, first);
  wait_previous_kernel();
  allow_next_kernel();
  norm_to_smem(a.x, a.norm_w, a.H, a.eps, xs, red);
  if (!active) return;
  float d[2];
  if (a.preload)
    dot_rows_bf16<2, true>(rows, xs, a.H / 8, lane, d, &first);
  else
    dot_rows_bf16<2>(rows, xs, a.H / 8, lane, d);
  if (lane != 0) return;
  float x0 = d[0] + a.bias[head * a.D + i], x1 = d[1] + a.bias[head * a.D + i + half];
  const int64_t pos = *a.pos;
  if (head < a.Hq + a.Hkv) rope_pair(x0, x1, pos, i, a.rope);
  if (head < a.Hq) {
    a.q[head * a.D + i] = x0;
    a.q[head * a.D + i + half] = x1;
  } else {
    uint16_t* c = head < a.Hq + a.Hkv ? a.k_cache : a.v_cache;
    const size_t off = (size_t(hh) * size_t(a.cap) + size_t(pos % a.cap)) * a.D;
    c[off + i] = f32_to_bf16_bits(x0);
    c[off + i + half] = f32_to_bf16_bits(x1);
  }
}

struct AttnDecodeArgs {
  const float* q;  // [Hq*D]
  const uint16_t *k_cache, *v_cache;
  int64_t cap;
  const int64_t* pos;
  int window;
  const float* sinks;
  float scale;
  int Hq, Hkv, D, splits;
  int64_t min_share;  // keys a block takes at least
  float* partial;  // [splits, Hq, 2 + D]
  int* counter;    // [Hkv], zero between launches
  float* out;      // [Hq*D]
};

// Split-K decode attention: block (g, s) takes KV head g's G query heads (one warp each) over the
// s-th share of the visible keys; the last block of g to finish merges the shares with the sink.
__global__ void __launch_bounds__(512) attn_decode_kernel(AttnDecodeArgs a) {
  __shared__ uint4 ks[kAttnTile][kMaxHeadDim / 8 + 1];
  __shared__ uint32_t vs[kAttnTile][kMaxHeadDim / 2 + 1];
  __shared__ __align__(16) float qs[16][kMaxHeadDim];
  __shared__ bool last;
  const int g = blockIdx.x, s = blockIdx.y, G = a.Hq / a.Hkv, w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int h = g * G + w, D = a.D, c8 = D / 8, c2 = D / 2;
  // The position was advanced by the previous step's last kernel, not by the one this waits for.
  const int64_t pos = *a.pos;
  const int64_t n = a.window > 0 ? lmin(pos + 1, a.window) : pos + 1, lo = pos + 1 - n;
  // Shares of at least min_share keys: a short context takes one block per KV head (no merge),
  // a long one all `splits`. Blocks past the shares in use leave at once.
  const int used = int(lmin(a.splits, (n + a.min_share - 1) / a.min_share));
  if (s >= used) return;
  const int64_t chunk = (n + used - 1) / used, begin = lo + s * chunk, end = lmin(begin + chunk, pos + 1);
  // Rows j of the tile at t0 into shared memory; `early`: all but the current position's, whose
  // key and value the q/k/v kernel is still writing (a row is one 128-byte line at D = 64).
  auto load_tile = [&](int64_t t0, int nk, int early) {
    for (int e = threadIdx.x; e < kAttnTile * c8; e += blockDim.x) {
      const int j = e / c8, c = e % c8;
      const bool current = t0 + j == pos;
      if (j < nk && (early == 0 || (early == 1 && !current) || (early == 2 && current))) {
        const size_t row = (size_t(g) * size_t(a.cap) + size_t((t0 + j) % a.cap)) * D;
        ks[j][c] = __ldcg(reinterpret_cast<const uint4*>(a.k_cache + row + c * 8));
        const uint4 v = __ldcg(reinterpret_cast<const uint4*>(a.v_cache + row + c * 8));
        vs[j][c * 4] = v.x, vs[j][c * 4 + 1] = v.y, vs[j][c * 4 + 2] = v.z, vs[j][c * 4 + 3] = v.w;
      }
    }
  };
  // The first tile's older keys and values do not depend on the previous kernel: loaded before
  // waiting for it.
  load_tile(begin, int(lmin(kAttnTile, end - begin)), 1);
  wait_previous_kernel();
  allow_next_kernel();
  load_tile(begin, int(lmin(kAttnTile, end - begin)), 2);
  for (int d = lane; d < D; d += 32) qs[w][d] = a.q[h * D + d] * a.scale;
  float m = -INFINITY, l = 0.f, o0 = 0.f, o1 = 0.f;
  for (int64_t t0 = begin; t0 < end; t0 += kAttnTile) {
    const int nk = int(lmin(kAttnTile, end - t0));
    if (t0 != begin) {
      __syncthreads();
      load_tile(t0, nk, 0);
    }
    __syncthreads();
    float sc = -INFINITY;
    if (lane < nk) {
      sc = 0.f;
      for (int c = 0; c < c8; ++c) sc += dot8(ks[lane][c], &qs[w][c * 8]);
    }
    const float m_new = fmaxf(m, warp_max(sc));
    const float corr = __expf(m - m_new), p = lane < nk ? __expf(sc - m_new) : 0.f;
    l = l * corr + warp_sum(p);
    o0 *= corr, o1 *= corr;
    for (int j = 0; j < nk; ++j) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
      if (lane < c2) {
        const uint32_t v2 = vs[j][lane];
        o0 += pj * bf_lo(v2), o1 += pj * bf_hi(v2);
      }
    }
    m = m_new;
  }
  const float sink = a.sinks[h];
  if (used == 1) {  // the whole range here: finish with the sink, no merge
    const float M = fmaxf(m, sink), f = __expf(m - M), L = l * f + __expf(sink - M);
    if (lane < c2) a.out[h * D + 2 * lane] = o0 * f / L, a.out[h * D + 2 * lane + 1] = o1 * f / L;
    return;
  }
  float* P = a.partial + (size_t(s) * a.Hq + h) * (2 + D);
  if (lane == 0) P[0] = m, P[1] = l;
  if (lane < c2) P[2 + 2 * lane] = o0, P[3 + 2 * lane] = o1;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&a.counter[g], 1) == used - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  // Merge: lanes take the shares' maxima and sums in parallel (used <= 64).
  float ms = -INFINITY, ls = 0.f, ms2 = -INFINITY, ls2 = 0.f;
  if (lane < used) ms = __ldcg(a.partial + (size_t(lane) * a.Hq + h) * (2 + D)), ls = __ldcg(a.partial + (size_t(lane) * a.Hq + h) * (2 + D) + 1);
  if (lane + 32 < used)
    ms2 = __ldcg(a.partial + (size_t(lane + 32) * a.Hq + h) * (2 + D)), ls2 = __ldcg(a.partial + (size_t(lane + 32) * a.Hq + h) * (2 + D) + 1);
  const float M = fmaxf(sink, warp_max(fmaxf(ms, ms2)));
  const float L = __expf(sink - M) + warp_sum((lane < used ? ls * __expf(ms - M) : 0.f) + (lane + 32 < used ? ls2 * __expf(ms2 - M) : 0.f));
  float r0 = 0.f, r1 = 0.f;
#pragma unroll 4
  for (int t = 0; t < used; ++t) {
    const float* Q = a.partial + (size_t(t) * a.Hq + h) * (2 + D);
    const float f = __expf(__ldcg(Q) - M);
    if (lane < c2) r0 += __ldcg(Q + 2 + 2 * lane) * f, r1 += __ldcg(Q + 3 + 2 * lane) * f;
  }
  if (lane < c2) a.out[h * D + 2 * lane] = r0 / L, a.out[h * D + 2 * lane + 1] = r1 / L;
  if (threadIdx.x == 0) a.counter[g] = 0;
}

// x[n] += W[n] . o + b[n] (decode: one token; o in shared memory). One warp per row.
__global__ void __launch_bounds__(kThreads, 3) out_proj_decode_kernel(const float* o, const uint16_t* W, const float* b,
                                                                   int K, int N, float* x, int preload) {
  extern __shared__ float os[];
  const int n = blockIdx.x * kWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  const uint16_t* rows[1] = {W + size_t(n < N ? n : 0) * K};
  RowBatch<1> first;
  if (preload && n < N) load_rows_bf16(rows, K / 8, lane, first);
  wait_previous_kernel();
  allow_next_kernel();
  copy_to_smem(o, K, os);
  if (n >= N) return;
  float d[1];
  if (preload)
    dot_rows_bf16<1, true>(rows, os, K / 8, lane, d, &first);
  else
    dot_rows_bf16<1>(rows, os, K / 8, lane, d);
  if (lane == 0) x[n] += d[0] + b[n];
}

// Top-k of E router logits (sorted, ties to the lower index as torch.topk) and the softmax over
// them, by one warp.
__device__ void topk_softmax_warp(const float* logits, int E, int k, int32_t* idx, float* weight, int lane) {
  float vals[8];        // k <= 8
  uint32_t taken = 0;   // bit c: this lane's expert lane + 32c is chosen (E <= 256)
  for (int j = 0; j < k; ++j) {
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int e = lane, c = 0; e < E; e += 32, ++c) {
      const float v = logits[e];
      if (!((taken >> c) & 1) && (v > best || (v == best && e < bi))) best = v, bi = e;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
    }
    if (bi % 32 == lane) taken |= 1u << (bi / 32);
    vals[j] = best;
    if (lane == 0) idx[j] = bi;
  }
  if (lane == 0) {
    float sum = 0.f;
    for (int j = 0; j < k; ++j) sum += expf(vals[j] - vals[0]);
    for (int j = 0; j < k; ++j) weight[j] = expf(vals[j] - vals[0]) / sum;
  }
}

struct RouterDecodeArgs {
  const float* x;
  const float* norm_w;
  float eps;
  const float* gate_w;  // f32 [E, H]
  const float* gate_b;
  int H, E, k;
  float* logits;   // [E]
  int* counter;    // zero between launches
  int32_t* idx;    // [k]
  float* weight;   // [k]
  float* t;        // [H] the normed input for the experts
  int8_t* xq;      // [H] the same quantised per block of 32 (int8 experts)
  float* xscale;   // [H/32]
  uint16_t* xh;    // [H] the same as scaled f16, pair order (bf16 experts)
  int* xexp;       // [1] its scale's exponent
  int topk_in_experts;  // 1: only the logits; the expert kernel takes the top-k
};

// rms_norm + router logits, one block per expert (the whole block on one row keeps it short);
// the blocks share out writing the experts' input (f32 and int8); the last block to finish picks
// the top-k and their softmax.
__global__ void __launch_bounds__(kThreads) router_decode_kernel(RouterDecodeArgs a) {
  extern __shared__ float xs[];
  __shared__ float red[32];
  __shared__ bool last;
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32, e = blockIdx.x;
  const float* row = a.gate_w + size_t(e) * a.H;
  // The gate row does not depend on the previous kernel: into registers before waiting for it.
  constexpr int kG = 4;
  float4 gv[kG];
#pragma unroll
  for (int j = 0; j < kG; ++j) {
    const int i = (threadIdx.x + j * int(blockDim.x)) * 4;
    gv[j] = i < a.H ? __ldg(reinterpret_cast<const float4*>(row + i)) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  wait_previous_kernel();
  allow_next_kernel();
  norm_to_smem(a.x, a.norm_w, a.H, a.eps, xs, red);
  if (a.t)
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < a.H; i += gridDim.x * blockDim.x) a.t[i] = xs[i];
  if (a.xh) {
    const int p = f16_exponent_of(xs, a.H, red);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < a.H; i += gridDim.x * blockDim.x)
      a.xh[f16_pair_index(i)] = f16_scaled(xs[i], p);
    if (blockIdx.x == 0 && threadIdx.x == 0) *a.xexp = p;
  }
  if (a.xq)
    for (int b = blockIdx.x + int(gridDim.x) * w; b < a.H / 32; b += int(gridDim.x) * kWarps)
      quantize32(xs[b * 32 + lane], lane, a.xq + b * 32, a.xscale + b);
  float acc = 0.f;
#pragma unroll
  for (int j = 0; j < kG; ++j) {
    const int i = (threadIdx.x + j * int(blockDim.x)) * 4;
    if (i < a.H) acc += gv[j].x * xs[i] + gv[j].y * xs[i + 1] + gv[j].z * xs[i + 2] + gv[j].w * xs[i + 3];
  }
  for (int i = (threadIdx.x + kG * int(blockDim.x)) * 4; i < a.H; i += blockDim.x * 4) {
    const float4 g = *reinterpret_cast<const float4*>(row + i);
    acc += g.x * xs[i] + g.y * xs[i + 1] + g.z * xs[i + 2] + g.w * xs[i + 3];
  }
  acc = block_sum(acc, red);
  if (a.topk_in_experts) {  // the up kernel picks the experts from the logits itself
    if (threadIdx.x == 0) a.logits[e] = acc + a.gate_b[e];
    return;
  }
  if (threadIdx.x == 0) {
    a.logits[e] = acc + a.gate_b[e];
    __threadfence();
    last = atomicAdd(a.counter, 1) == int(gridDim.x) - 1;
  }
  __syncthreads();
  if (!last || w != 0) return;
  __threadfence();
  __shared__ float lg[256];
  for (int i = lane; i < a.E; i += 32) lg[i] = __ldcg(a.logits + i);
  __syncwarp();
  topk_softmax_warp(lg, a.E, a.k, a.idx, a.weight, lane);
  if (lane == 0) *a.counter = 0;
}

// A decode step's warps fit one wave of 132 SMs: 2880 up-projection warps (4 experts x 5760 rows / 8)
// at 3 blocks of 8 warps an SM (85 registers), 1440 down-projection warps at 2 (128 registers);
// 2 words a lane and row in flight fit both.
constexpr int kUpBlocksPerSm = 3, kDownBlocksPerSm = 2, kExpertUnroll = 2;

struct MoeUpArgs {
  const float* t;       // [T, H] the normed input
  const int32_t* idx;   // [T, k]
  int k, H, I;
  const uint8_t *blocks, *scales;  // [E, 2I, H/32, 16], [E, 2I, H/32]
  const float* bias;               // [E, 2I]
  float limit;
  float* act;  // [T*k, I]
};

// f32 experts (EMBER_GPT_OSS_EXPERTS=f32). Clamped SwiGLU of the up projection: a warp takes 4
// consecutive j (glu and linear rows together, 8 rows in flight). grid (I/32, k, T).
__global__ void __launch_bounds__(kThreads, kUpBlocksPerSm) moe_up_kernel(MoeUpArgs a) {
  __shared__ float lut[16];
  init_fp4_lut(lut);
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  wait_previous_kernel();
  allow_next_kernel();
  __syncthreads();
  const int t = blockIdx.z, ts = t * a.k + blockIdx.y, e = a.idx[ts], nb = a.H / 32;
  const int j0 = blockIdx.x * 32 + w * 4;
  const uint8_t* blocks[8];
  const uint8_t* scales[8];
  const float* x[1] = {a.t + size_t(t) * a.H};
#pragma unroll
  for (int r = 0; r < 8; ++r) {
    const size_t row = size_t(e) * 2 * a.I + 2 * j0 + r;
    blocks[r] = a.blocks + row * nb * 16, scales[r] = a.scales + row * nb;
  }
  float d[8];
  dot_rows_mxfp4_f32<8, 8, kExpertUnroll>(blocks, scales, x, nb, lane, lut, d);
  if (lane < 4) {
    const float* b = a.bias + size_t(e) * 2 * a.I + 2 * (j0 + lane);
    const float glu = lane == 0 ? d[0] : lane == 1 ? d[2] : lane == 2 ? d[4] : d[6];
    const float lin = lane == 0 ? d[1] : lane == 1 ? d[3] : lane == 2 ? d[5] : d[7];
    a.act[size_t(ts) * a.I + j0 + lane] = swiglu_clamped(glu + b[0], lin + b[1], a.limit);
  }
}

struct MoeDownArgs {
  const float* act;     // [T*k, I]
  const int32_t* idx;
  const float* weight;  // [T, k]
  int k, H, I;
  const uint8_t *blocks, *scales;  // [E, H, I/32, 16], [E, H, I/32]
  const float* bias;               // [E, H]
  float* x;                        // [T, H] += sum_s weight * (W2 act + b2)
};

// One warp per two adjacent output features n, n+1 of token blockIdx.y: the 2k rows read
// together, each slot's activations loaded once for both, slots summed in order. The router ran
// two kernels back, so its expert ids can steer a prefetch before the up projection is done.
__global__ void __launch_bounds__(kThreads, kDownBlocksPerSm) moe_down_kernel(MoeDownArgs a) {
  __shared__ float lut[16];
  init_fp4_lut(lut);
  const int lane = threadIdx.x % 32;
  const int n = 2 * (blockIdx.x * kWarps + threadIdx.x / 32), t = blockIdx.y;
  const int nb = a.I / 32;
  const bool active = n < a.H;  // H is even (a multiple of 32)
  if (active)
    for (int s = 0; s < a.k; ++s) {
      const size_t row = size_t(a.idx[t * a.k + s]) * a.H + n;
      prefetch_row(a.blocks + row * nb * 16, size_t(nb) * 16 * 2, lane);
    }
  wait_previous_kernel();
  allow_next_kernel();
  __syncthreads();
  if (!active) return;
  float total0 = 0.f, total1 = 0.f;
  for (int s = 0; s < a.k; s += 4) {
    const int ns = a.k - s < 4 ? a.k - s : 4;
    const uint8_t* blocks[8];
    const uint8_t* scales[8];
    const float* x[4];
    size_t rows[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int ts = t * a.k + s + (u < ns ? u : 0);
      rows[u] = size_t(a.idx[ts]) * a.H + n;
#pragma unroll
      for (int j = 0; j < 2; ++j)
        blocks[2 * u + j] = a.blocks + (rows[u] + j) * nb * 16, scales[2 * u + j] = a.scales + (rows[u] + j) * nb;
      x[u] = a.act + size_t(ts) * a.I;
    }
    float y[8];
    dot_rows_mxfp4_f32<8, 2, kExpertUnroll>(blocks, scales, x, nb, lane, lut, y);
    for (int u = 0; u < ns; ++u) {
      const float wgt = a.weight[t * a.k + s + u];
      total0 += wgt * (y[2 * u] + a.bias[rows[u]]);
      total1 += wgt * (y[2 * u + 1] + a.bias[rows[u] + 1]);
    }
  }
  if (lane == 0) a.x[size_t(t) * a.H + n] += total0, a.x[size_t(t) * a.H + n + 1] += total1;
}

struct MoeQ8Args {
  const int8_t* xq;     // [T, H]
  const float* xscale;  // [T, H/32]
  const int32_t* idx;   // [T, k]
  const float* weight;  // [T, k]
  int k, H, I;
  const uint8_t *w1b, *w1s, *w2b, *w2s;
  const float *b1, *b2;
  float limit;
  int8_t* actq;     // [T*k, I]
  float* actscale;  // [T*k, I/32]
  float* x;         // [T, H] residual
};

// As moe_up_kernel with int8 activations; a block's 32 SwiGLU outputs are quantised for the down
// projection. grid (I/32, k, T).
__global__ void __launch_bounds__(kThreads) moe_up_q8_kernel(MoeQ8Args a) {
  __shared__ float act[32];
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  wait_previous_kernel();
  allow_next_kernel();
  const int t = blockIdx.z, ts = t * a.k + blockIdx.y, e = a.idx[ts], nb = a.H / 32;
  const int j0 = blockIdx.x * 32 + w * 4;
  const uint8_t* blocks[8];
  const uint8_t* scales[8];
  const int8_t* xq[8];
  const float* xs[8];
#pragma unroll
  for (int r = 0; r < 8; ++r) {
    const size_t row = size_t(e) * 2 * a.I + 2 * j0 + r;
    blocks[r] = a.w1b + row * nb * 16, scales[r] = a.w1s + row * nb;
    xq[r] = a.xq + size_t(t) * a.H, xs[r] = a.xscale + size_t(t) * nb;
  }
  float d[8];
  dot_rows_mxfp4_q8<8>(blocks, scales, xq, xs, nb, lane, d);
  if (lane < 4) {
    const float* b = a.b1 + size_t(e) * 2 * a.I + 2 * (j0 + lane);
    const float glu = lane == 0 ? d[0] : lane == 1 ? d[2] : lane == 2 ? d[4] : d[6];
    const float lin = lane == 0 ? d[1] : lane == 1 ? d[3] : lane == 2 ? d[5] : d[7];
    act[w * 4 + lane] = swiglu_clamped(glu + b[0], lin + b[1], a.limit);
  }
  __syncthreads();
  if (w == 0)
    quantize32(act[lane], lane, a.actq + size_t(ts) * a.I + blockIdx.x * 32,
               a.actscale + size_t(ts) * (a.I / 32) + blockIdx.x);
}

// As moe_down_kernel with int8 activations.
__global__ void __launch_bounds__(kThreads) moe_down_q8_kernel(MoeQ8Args a) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * kWarps + threadIdx.x / 32, t = blockIdx.y;
  const int nb = a.I / 32;
  const bool active = n < a.H;
  if (active)
    for (int s = 0; s < a.k; ++s)
      prefetch_row(a.w2b + (size_t(a.idx[t * a.k + s]) * a.H + n) * nb * 16, size_t(nb) * 16, lane);
  wait_previous_kernel();
  allow_next_kernel();
  if (!active) return;
  float total = 0.f;
  for (int s = 0; s < a.k; s += 4) {
    const int ns = a.k - s < 4 ? a.k - s : 4;
    const uint8_t* blocks[4];
    const uint8_t* scales[4];
    const int8_t* xq[4];
    const float* xs[4];
    size_t rows[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int ts = t * a.k + s + (u < ns ? u : 0);
      rows[u] = size_t(a.idx[ts]) * a.H + n;
      blocks[u] = a.w2b + rows[u] * nb * 16, scales[u] = a.w2s + rows[u] * nb;
      xq[u] = a.actq + size_t(ts) * a.I, xs[u] = a.actscale + size_t(ts) * nb;
    }
    float y[4];
    dot_rows_mxfp4_q8<4>(blocks, scales, xq, xs, nb, lane, y);
    for (int u = 0; u < ns; ++u) total += a.weight[t * a.k + s + u] * (y[u] + a.b2[rows[u]]);
  }
  if (lane == 0) a.x[size_t(t) * a.H + n] += total;
}

struct MoeF16Args {
  const uint16_t* xh;  // [T, H] the experts' input, f16 pair order, scaled by 2^xexp[t]
  const int* xexp;     // [T]
  int32_t* idx;        // [T, k] (decode: written by the up kernel)
  float* weight;       // [T, k]
  int k, H, I;
  const uint8_t *w1b, *w1s, *w2b, *w2s;
  const float *b1, *b2;
  float limit;
  uint16_t* acth;  // [T*k, I] SwiGLU outputs, f16 pair order, scaled by 2^act_exp
  int act_exp;
  float* x;        // [T, H] += sum_s weight * (W2 act + b2)
  const float* logits;  // [T, E] router logits (decode): the up kernel writes idx/weight from them
  int E;
};

// Dots of 8 MXFP4 rows (w: row 0's blocks, rows nb*16 bytes apart; scales likewise) with one f16
// activation vector x (pair order) over blocks [lo, hi), in two groups of 4 rows. An mma's 16 rows
// are 4 weight rows x 4 consecutive blocks (M-row m: row m/4 of the group at block b0 + m%4) and
// its 8 columns the activations of those 4 blocks (twice), so the diagonal C[m][m%4] is that
// row's dot over that block, scaled by the block's 2^(s-127) in f32. Lane (g, t) holds word t of
// its M-rows' blocks, so the 4 quads of a row read 64 contiguous bytes. The kernels before this
// put 16 weight rows of one block in an mma: a warp's load touched 8 rows (8 cache lines) for 16
// bytes each, and the L1's line-a-cycle throughput, not DRAM, bounded them (446 -> 471 tok/s on
// an H100 with this layout; 8 blocks x 2 rows an mma, 128 bytes a row, measured 467). Returns the
// 8 sums on lane 0, in units of 2^-14 (the codes) and 2^p (the activation): the caller scales them.
template <int U>
__device__ __forceinline__ void dot8_mxfp4_f16(const uint8_t* w, const uint8_t* sc, const uint4* x, int nb, int lo, int hi,
                                               int lane, float (&out)[8]) {
  const int g = lane >> 2, t = lane & 3, j = g & 3, rh = g >> 2;
  const size_t stride = size_t(nb) * 16;
  // rows of the lane's four M-rows: group 0 (rh, 2 + rh), group 1 (4 + rh, 6 + rh)
  const uint8_t* wp[4] = {w + rh * stride + 4 * t, w + (2 + rh) * stride + 4 * t, w + (4 + rh) * stride + 4 * t,
                          w + (6 + rh) * stride + 4 * t};
  const uint8_t* sp[4] = {sc + rh * nb, sc + (2 + rh) * nb, sc + (4 + rh) * nb, sc + (6 + rh) * nb};
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  for (int b0 = lo; b0 < hi; b0 += 4 * U) {
    uint32_t q[U][4], e[U][4];
    uint4 xv[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int b = b0 + 4 * u + j;
      if (b < hi) {
#pragma unroll
        for (int r = 0; r < 4; ++r) q[u][r] = ld_weight_u32(wp[r] + 16 * size_t(b)), e[u][r] = __ldg(sp[r] + b);
        xv[u] = __ldg(x + 4 * b + t);
      } else {
#pragma unroll
        for (int r = 0; r < 4; ++r) q[u][r] = 0u, e[u][r] = 0u;
        xv[u] = make_uint4(0u, 0u, 0u, 0u);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint32_t qa = q[u][2 * h], qb = q[u][2 * h + 1];
        float c[4] = {0.f, 0.f, 0.f, 0.f};
        mma_f16(c, fp4_pair_f16<0>(qa), fp4_pair_f16<0>(qb), fp4_pair_f16<1>(qa), fp4_pair_f16<1>(qb), xv[u].x, xv[u].y);
        mma_f16(c, fp4_pair_f16<2>(qa), fp4_pair_f16<2>(qb), fp4_pair_f16<3>(qa), fp4_pair_f16<3>(qb), xv[u].z, xv[u].w);
        // C[g][n] for n = 2t, 2t+1: the diagonal n % 4 == g % 4 sits in c[g & 1] when t % 2 == j / 2
        acc[2 * h] = fmaf((g & 1) ? c[1] : c[0], __uint_as_float(e[u][2 * h] << 23), acc[2 * h]);
        acc[2 * h + 1] = fmaf((g & 1) ? c[3] : c[2], __uint_as_float(e[u][2 * h + 1] << 23), acc[2 * h + 1]);
      }
    }
  }
  // Lanes (j, t = j/2) of each half-warp hold the 4 block phases of rows rh, 2+rh, 4+rh, 6+rh.
  const bool valid = t == (j >> 1);
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    float v = valid ? acc[r] : 0.f;
#pragma unroll
    for (int o = 1; o < 16; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    out[2 * r] = v, out[2 * r + 1] = __shfl_down_sync(0xffffffffu, v, 16);
  }
}

// A decode step's expert warps fit one wave of 132 SMs at 3 blocks of 8 warps an SM (80 registers):
// 2880 up (4 experts x 5760 rows / 8 rows a warp) and 2880 down (2880 rows / 8 x 4 slots x 2 halves).
constexpr int kExpertBlocksPerSm = 3, kUpUnroll = 4, kDownUnroll = 3;

// Up: 8 warps x 8 rows (64 rows: 32 j, glu and linear rows interleaved) a block; grid (I/32, k, T).
// In decode (a.logits set) every block takes the top-k of the router's logits itself, which saves
// the router a last-block stage on the critical path; block (0, 0) writes them for the down kernel.
__global__ void __launch_bounds__(kThreads, kExpertBlocksPerSm) moe_up_f16_kernel(MoeF16Args a) {
  __shared__ float part[64];
  __shared__ float lg[256];
  __shared__ int32_t sidx[8];
  __shared__ float swt[8];
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  wait_previous_kernel();
  allow_next_kernel();
  const int t = blockIdx.z, ts = t * a.k + blockIdx.y, nb = a.H / 32;
  int e;
  if (a.logits) {
    if (w == 0) {
      for (int i = lane; i < a.E; i += 32) lg[i] = __ldcg(a.logits + size_t(t) * a.E + i);
      __syncwarp();
      topk_softmax_warp(lg, a.E, a.k, sidx, swt, lane);
    }
    __syncthreads();
    e = sidx[blockIdx.y];
    if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x < a.k)
      a.idx[t * a.k + threadIdx.x] = sidx[threadIdx.x], a.weight[t * a.k + threadIdx.x] = swt[threadIdx.x];
  } else {
    e = a.idx[ts];
  }
  const size_t row0 = size_t(e) * 2 * a.I + blockIdx.x * 64 + w * 8;
  float d[8];
  dot8_mxfp4_f16<kUpUnroll>(a.w1b + row0 * nb * 16, a.w1s + row0 * nb,
                            reinterpret_cast<const uint4*>(a.xh + size_t(t) * a.H), nb, 0, nb, lane, d);
  if (lane == 0)
    for (int r = 0; r < 8; ++r) part[w * 8 + r] = d[r];
  __syncthreads();
  if (threadIdx.x < 32) {
    const int j = threadIdx.x, J = blockIdx.x * 32 + j;
    const float f = ldexpf(1.0f, 14 - a.xexp[t]);
    const float* b = a.b1 + size_t(e) * 2 * a.I + 2 * J;
    const float y = swiglu_clamped(part[2 * j] * f + b[0], part[2 * j + 1] * f + b[1], a.limit);
    a.acth[size_t(ts) * a.I + f16_pair_index(J)] = f16_scaled(y, a.act_exp);
  }
}

// Down: 8 output features of token blockIdx.y a block of 8 warps; warp w takes slot w / 2 (w / 2 + 4,
// ...) over half w % 2 of the blocks; the 8 partial sums meet in shared memory in order. Halving K
// doubled the warps in flight (16 rows a block over all the blocks: 468 -> 477 tok/s). grid (H/8, T).
__global__ void __launch_bounds__(kThreads, kExpertBlocksPerSm) moe_down_f16_kernel(MoeF16Args a) {
  __shared__ float part[kWarps][8];
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32, ks = w & 1;
  const int n0 = blockIdx.x * 8, t = blockIdx.y, nb = a.I / 32;
  wait_previous_kernel();
  allow_next_kernel();
  const float f = ldexpf(1.0f, 14 - a.act_exp);
  if (lane < 8) part[w][lane] = 0.f;
  for (int s = w >> 1; s < a.k; s += kWarps / 2) {
    const int ts = t * a.k + s;
    const size_t row0 = size_t(a.idx[ts]) * a.H + n0;
    float d[8];
    dot8_mxfp4_f16<kDownUnroll>(a.w2b + row0 * nb * 16, a.w2s + row0 * nb, reinterpret_cast<const uint4*>(a.acth + size_t(ts) * a.I),
                      nb, ks * nb / 2, (ks + 1) * nb / 2, lane, d);
    if (lane == 0) {
      const float wgt = a.weight[ts];
      for (int r = 0; r < 8; ++r) part[w][r] += wgt * (d[r] * f + (ks == 0 ? a.b2[row0 + r] : 0.f));
    }
  }
  __syncthreads();
  if (threadIdx.x < 8) {
    float sum = 0.f;
#pragma unroll
    for (int q = 0; q < kWarps; ++q) sum += part[q][threadIdx.x];
    a.x[size_t(t) * a.H + n0 + threadIdx.x] += sum;
  }
}

// The experts' f16 input for a prefill chunk's rows (decode's router kernel writes it itself).
__global__ void f16_rows_kernel(const float* x, int H, uint16_t* xh, int* xexp) {
  __shared__ float red[32];
  const float* row = x + size_t(blockIdx.x) * H;
  const int p = f16_exponent_of(row, H, red);
  for (int i = threadIdx.x; i < H; i += blockDim.x) xh[size_t(blockIdx.x) * H + f16_pair_index(i)] = f16_scaled(row[i], p);
  if (threadIdx.x == 0) xexp[blockIdx.x] = p;
}

// xq/xscale = x [T, H] quantised per block of 32 (one warp per block).
__global__ void quantize_rows_kernel(const float* x, int64_t blocks, int8_t* xq, float* xscale) {
  const int64_t b = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (b >= blocks) return;
  const int lane = threadIdx.x % 32;
  quantize32(x[b * 32 + lane], lane, xq + b * 32, xscale + b);
}

struct UnembedArgs {
  const float* x;  // [H] (the last token's row)
  const float* norm_w;
  float eps;
  const uint16_t* W;  // [V, H]
  int H, V;
  float* logits;       // [V]
  float* part_val;     // [gridDim.x]
  int* part_idx;
  int* counter;
  int32_t* token;      // argmax (first on ties)
  int64_t* pos;        // advanced by one when `advance`
  int advance;
};

// Final rms_norm + unembedding GEMV (rows strided over all warps) + argmax; the last block writes
// the token and advances the position.
__global__ void __launch_bounds__(kThreads) unembed_kernel(UnembedArgs a) {
  extern __shared__ float xs[];
  __shared__ float red[32];
  __shared__ float bv[kWarps];
  __shared__ int bi[kWarps];
  __shared__ bool last;
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  const int warps = gridDim.x * kWarps;
  wait_previous_kernel();
  allow_next_kernel();
  norm_to_smem(a.x, a.norm_w, a.H, a.eps, xs, red);
  float best = -INFINITY;
  int besti = 0x7fffffff;
  int r = blockIdx.x * kWarps + w;
  for (; r + warps < a.V; r += 2 * warps) {
    const uint16_t* rows[2] = {a.W + size_t(r) * a.H, a.W + size_t(r + warps) * a.H};
    float d[2];
    dot_rows_bf16<2>(rows, xs, a.H / 8, lane, d);
    if (lane == 0) a.logits[r] = d[0], a.logits[r + warps] = d[1];
    if (d[0] > best) best = d[0], besti = r;
    if (d[1] > best) best = d[1], besti = r + warps;
  }
  if (r < a.V) {
    const uint16_t* rows[1] = {a.W + size_t(r) * a.H};
    float d[1];
    dot_rows_bf16<1>(rows, xs, a.H / 8, lane, d);
    if (lane == 0) a.logits[r] = d[0];
    if (d[0] > best || (d[0] == best && r < besti)) best = d[0], besti = r;
  }
  if (lane == 0) bv[w] = best, bi[w] = besti;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < kWarps; ++i)
      if (bv[i] > best || (bv[i] == best && bi[i] < besti)) best = bv[i], besti = bi[i];
    a.part_val[blockIdx.x] = best;
    a.part_idx[blockIdx.x] = besti;
    __threadfence();
    last = atomicAdd(a.counter, 1) == int(gridDim.x) - 1;
  }
  __syncthreads();
  if (!last || w != 0) return;
  __threadfence();
  best = -INFINITY, besti = 0x7fffffff;
  for (int b = lane; b < int(gridDim.x); b += 32) {
    const float v = __ldcg(a.part_val + b);
    const int i = __ldcg(a.part_idx + b);
    if (v > best || (v == best && i < besti)) best = v, besti = i;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, besti, o);
    if (ov > best || (ov == best && oi < besti)) best = ov, besti = oi;
  }
  if (lane == 0) {
    *a.token = besti;
    if (a.advance) *a.pos += 1;
    *a.counter = 0;
  }
}

// ---------------------------------------------------------------- prefill kernels

// a = bf16(rms_norm(x) * w) (optional), a32 = the same in f32 (optional).
__global__ void __launch_bounds__(kThreads) norm_rows_kernel(const float* x, const float* w, float eps, int H,
                                                             uint16_t* a, float* a32) {
  extern __shared__ float xs[];
  __shared__ float red[32];
  const int t = blockIdx.x;
  norm_to_smem(x + size_t(t) * H, w, H, eps, xs, red);
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    if (a) a[size_t(t) * H + i] = f32_to_bf16_bits(xs[i]);
    if (a32) a32[size_t(t) * H + i] = xs[i];
  }
}

// x[t] += y[t] + b (the attention output projection of a chunk).
__global__ void residual_add_kernel(const float* y, const float* b, int H, int64_t n, float* x) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] += y[i] + b[i % H];
}

struct QkvPrefillArgs {
  const float* qkv;  // [T, (Hq + 2 Hkv) D] without bias
  const float* bias;
  int T, Hq, Hkv, D;
  int64_t start;
  RopeArgs rope;
  uint16_t *k_cache, *v_cache;
  int64_t cap;
  uint16_t* q;  // bf16 [T, Hq*D]
};

__global__ void qkv_prefill_kernel(QkvPrefillArgs a) {
  const int t = blockIdx.x, half = a.D / 2, heads = a.Hq + 2 * a.Hkv, N = heads * a.D;
  const int64_t pos = a.start + t;
  for (int p = threadIdx.x; p < heads * half; p += blockDim.x) {
    const int head = p / half, i = p % half;
    const float* row = a.qkv + size_t(t) * N;
    float x0 = row[head * a.D + i] + a.bias[head * a.D + i], x1 = row[head * a.D + i + half] + a.bias[head * a.D + i + half];
    if (head < a.Hq + a.Hkv) rope_pair(x0, x1, pos, i, a.rope);
    if (head < a.Hq) {
      a.q[size_t(t) * a.Hq * a.D + head * a.D + i] = f32_to_bf16_bits(x0);
      a.q[size_t(t) * a.Hq * a.D + head * a.D + i + half] = f32_to_bf16_bits(x1);
    } else {
      const int hh = head < a.Hq + a.Hkv ? head - a.Hq : head - a.Hq - a.Hkv;
      uint16_t* c = head < a.Hq + a.Hkv ? a.k_cache : a.v_cache;
      const size_t off = (size_t(hh) * size_t(a.cap) + size_t(pos % a.cap)) * a.D;
      c[off + i] = f32_to_bf16_bits(x0);
      c[off + i + half] = f32_to_bf16_bits(x1);
    }
  }
}

// Router of a chunk: top-k + softmax per token from f32 logits [T, E]. One warp per token.
__global__ void topk_softmax_kernel(const float* logits, int T, int E, int k, int32_t* idx, float* weight) {
  const int t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (t >= T) return;
  topk_softmax_warp(logits + size_t(t) * E, E, k, idx + size_t(t) * k, weight + size_t(t) * k, lane);
}

// Plain prefill attention (one warp per query and head, keys 32 at a time, online softmax): the
// reference path for small chunks, and the fallback when head_dim or the GPU rule out the tiled one.
__global__ void attn_prefill_simple_kernel(gpt_oss::AttentionPrefillArgs a) {
  const int h = blockIdx.x, lane = threadIdx.x % 32;
  const int i = blockIdx.y * (blockDim.x / 32) + threadIdx.x / 32;
  if (i >= a.T) return;
  const int G = a.Hq / a.Hkv, g = h / G, D = a.head_dim, c2 = D / 2;
  const int64_t pos = a.start_pos + i;
  const int64_t lo = a.window > 0 ? lmax(0, pos - a.window + 1) : 0;
  float q[kMaxHeadDim];
  for (int d = 0; d < D; ++d) q[d] = __uint_as_float(uint32_t(a.q[(size_t(i) * a.Hq + h) * D + d]) << 16) * a.scale;
  float m = -INFINITY, l = 0.f, o0 = 0.f, o1 = 0.f;
  for (int64_t t0 = lo; t0 <= pos; t0 += 32) {
    const int nk = int(lmin(32, pos + 1 - t0));
    float sc = -INFINITY;
    if (lane < nk) {
      const uint16_t* k = a.k_cache + (size_t(g) * size_t(a.cap) + size_t((t0 + lane) % a.cap)) * D;
      sc = 0.f;
      for (int d = 0; d < D; ++d) sc += q[d] * __uint_as_float(uint32_t(k[d]) << 16);
    }
    const float m_new = fmaxf(m, warp_max(sc));
    const float corr = __expf(m - m_new), p = lane < nk ? __expf(sc - m_new) : 0.f;
    l = l * corr + warp_sum(p);
    o0 *= corr, o1 *= corr;
    for (int j = 0; j < nk; ++j) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
      if (lane < c2) {
        const uint32_t v2 = *reinterpret_cast<const uint32_t*>(
            a.v_cache + (size_t(g) * size_t(a.cap) + size_t((t0 + j) % a.cap)) * D + 2 * lane);
        o0 += pj * bf_lo(v2), o1 += pj * bf_hi(v2);
      }
    }
    m = m_new;
  }
  const float sink = a.sinks[h], M = fmaxf(m, sink);
  const float f = __expf(m - M), L = l * f + __expf(sink - M);
  if (lane < c2) {
    a.out[(size_t(i) * a.Hq + h) * D + 2 * lane] = f32_to_bf16_bits(o0 * f / L);
    a.out[(size_t(i) * a.Hq + h) * D + 2 * lane + 1] = f32_to_bf16_bits(o1 * f / L);
  }
}

// ---------------------------------------------------------------- the runtime

// Launches with programmatic stream serialization: the kernel may start before the previous one on
// the stream ends (it waits in griddepcontrol.wait before touching the previous kernel's output).
// EMBER_CUDA_PDL=0 turns it off (to measure what it gains).
bool pdl_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("EMBER_CUDA_PDL");
    return !(v && std::string(v) == "0");
  }();
  return on;
}

template <typename... KArgs, typename... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr, cfg.numAttrs = pdl_enabled() ? 1 : 0;
  EMBER_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args...));
}

struct LayerBuffers {
  const uint16_t *wq, *wk, *wv, *wo;
  const uint8_t *w1b, *w1s, *w2b, *w2s;
  Tensor attn_norm, qkv_b, sinks, out_b, mlp_norm, gate_w, gate_b, b1, b2;  // f32 copies
  Tensor k_cache, v_cache;  // bf16 [Hkv, cap, D]
  int64_t cap = 0;
  int window = 0;
  int splits = 1;
};

class CudaGptOss final : public GptOssRuntime {
 public:
  CudaGptOss(int dev, const GptOssDims& d, const GptOssWeights& w, int64_t max_context, int64_t max_chunk)
      : dev_(dev), d_(d), max_context_(max_context), max_chunk_(std::min(max_chunk, max_context)) {
    set_device(dev_);
    stream_ = stream_for(dev_);
    const Device device = Device::cuda(dev_);
    cudaDeviceProp prop{};
    EMBER_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev_));
    sms_ = prop.multiProcessorCount;
    auto f32 = [&](const Tensor& t) { return t.to(DType::F32).contiguous(); };
    const int64_t H = d_.hidden, D = d_.head_dim, C = max_chunk_;
    for (int64_t l = 0; l < d_.layers; ++l) {
      const auto& lw = w.layers[size_t(l)];
      LayerBuffers b;
      b.wq = dptr<uint16_t>(lw.q_w), b.wk = dptr<uint16_t>(lw.k_w), b.wv = dptr<uint16_t>(lw.v_w), b.wo = dptr<uint16_t>(lw.out_w);
      b.w1b = dptr<uint8_t>(lw.mlp1_blocks), b.w1s = dptr<uint8_t>(lw.mlp1_scales);
      b.w2b = dptr<uint8_t>(lw.mlp2_blocks), b.w2s = dptr<uint8_t>(lw.mlp2_scales);
      b.attn_norm = f32(lw.attn_norm), b.sinks = f32(lw.sinks), b.out_b = f32(lw.out_b), b.mlp_norm = f32(lw.mlp_norm);
      b.qkv_b = cat({f32(lw.q_b), f32(lw.k_b), f32(lw.v_b)}, 0);
      b.gate_w = f32(lw.gate_w), b.gate_b = f32(lw.gate_b), b.b1 = f32(lw.mlp1_b), b.b2 = f32(lw.mlp2_b);
      b.window = d_.windowed[size_t(l)] ? int(d_.sliding_window) : 0;
      b.cap = b.window ? std::min(max_context_, b.window - 1 + max_chunk_) : max_context_;
      b.cap = std::max(b.cap, max_chunk_);
      // Enough shares that a long context fills the GPU (4 blocks an SM, up to the merge's 64: at
      // 32k context 2 blocks an SM decoded 295-296 tok/s on an H100, 4 or more 360); a window
      // needs few.
      b.splits = b.window ? int(std::clamp<int64_t>((b.window + min_share_ - 1) / min_share_, 1, 64))
                          : int(std::clamp<int64_t>(sms_ * 4 / std::max<int64_t>(d_.kv_heads, 1), 1, 64));
      b.k_cache = Tensor::empty({d_.kv_heads, b.cap, D}, DType::BF16, device);
      b.v_cache = Tensor::empty({d_.kv_heads, b.cap, D}, DType::BF16, device);
      keep_.push_back(lw.q_w), keep_.push_back(lw.k_w), keep_.push_back(lw.v_w), keep_.push_back(lw.out_w);
      keep_.push_back(lw.mlp1_blocks), keep_.push_back(lw.mlp1_scales), keep_.push_back(lw.mlp2_blocks),
          keep_.push_back(lw.mlp2_scales);
      max_splits_ = std::max(max_splits_, b.splits);
      layers_.push_back(std::move(b));
    }
    embedding_ = w.embedding, unembedding_ = w.unembedding, norm_ = f32(w.norm);
    inv_freq_ = Tensor::from_vector(d_.inv_freq, {int64_t(d_.inv_freq.size())}).to(device);
    const int64_t Nqkv = (d_.heads + 2 * d_.kv_heads) * D, Nq = d_.heads * D, k = d_.experts_per_token;
    auto buf = [&](Shape s, DType t) { return Tensor::empty(s, t, device); };
    x_ = buf({C, H}, DType::F32), y_ = buf({C, H}, DType::F32), a_ = buf({C, H}, DType::BF16), a32_ = buf({C, H}, DType::F32);
    qkv_ = buf({C, Nqkv}, DType::F32), qb_ = buf({C, Nq}, DType::BF16), ob_ = buf({C, Nq}, DType::BF16);
    q32_ = buf({Nq}, DType::F32), o32_ = buf({Nq}, DType::F32);
    router_ = buf({C, d_.experts}, DType::F32), idx_ = buf({C, k}, DType::I32), weight_ = buf({C, k}, DType::F32);
    // bf16 experts hold the SwiGLU output scaled by 2^act_exp_ in f16: |y| <= limit * (limit + 1)
    // for the clamped SwiGLU; without a finite clamp there is no such bound, and the f32 kernels run.
    if (experts_ == Experts::Bf16 && !(std::isfinite(d_.swiglu_limit) && d_.swiglu_limit > 0.f && d_.swiglu_limit < 1e4f))
      experts_ = Experts::F32;
    if (experts_ == Experts::Bf16) {
      int e = 0;
      std::frexp(double(d_.swiglu_limit) * (double(d_.swiglu_limit) + 1.0), &e);
      act_exp_ = 15 - e;
      xh_ = buf({C, H}, DType::F16), xexp_ = buf({C}, DType::I32), acth_ = buf({C * k, d_.intermediate}, DType::F16);
    } else if (experts_ == Experts::Int8) {
      xq_ = buf({C, H}, DType::U8), xscale_ = buf({C, H / 32}, DType::F32);
      actq_ = buf({C * k, d_.intermediate}, DType::U8), actscale_ = buf({C * k, d_.intermediate / 32}, DType::F32);
    } else {
      act_ = buf({C * k, d_.intermediate}, DType::F32);
    }
    // The tiled prefill kernels (gpt_oss_prefill.cu) take head_dim 64 and H, I multiples of 64.
    tiled_attention_ = D == 64;
    tiled_moe_ = H % 64 == 0 && d_.intermediate % 64 == 0 && d_.experts <= 256;
    if (tiled_moe_)
      moe_workspace_ = buf({int64_t(gpt_oss::moe_prefill_workspace_bytes(int(C), int(H), int(d_.intermediate),
                                                                           int(d_.experts), int(k)))},
                           DType::U8);
    partial_ = buf({max_splits_, d_.heads, 2 + D}, DType::F32);
    unembed_blocks_ = sms_ * 4;
    part_val_ = buf({unembed_blocks_}, DType::F32), part_idx_ = buf({unembed_blocks_}, DType::I32);
    counters_ = buf({d_.kv_heads + 2}, DType::I32);
    logits_ = buf({1, d_.vocab}, DType::F32);
    tokens_ = buf({C}, DType::I32), pos_dev_ = buf({1}, DType::I64);
    EMBER_CUDA_CHECK(cudaMemsetAsync(counters_.raw_data(), 0, counters_.nbytes(), stream_));
    EMBER_CUDA_CHECK(cudaMallocHost(&host_tokens_, sizeof(int32_t) * 2));
    EMBER_CUBLAS_CHECK(cublasCreate(&cublas_));
    EMBER_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // The router's f32 GEMM stays f32 (no TF32): a flipped expert choice is a different model.
    EMBER_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
    for (const Tensor* t : {&x_, &y_, &a_, &a32_, &qkv_, &qb_, &ob_, &q32_, &o32_, &router_, &idx_,
                            &weight_, &act_, &xq_, &xscale_, &actq_, &actscale_, &xh_, &xexp_, &acth_, &partial_, &part_val_, &part_idx_, &counters_, &logits_,
                            &tokens_, &pos_dev_})
      if (t->defined()) workspace_bytes_ += t->nbytes();
    for (const auto& b : layers_) workspace_bytes_ += b.k_cache.nbytes() + b.v_cache.nbytes();
    if (tiled_moe_) workspace_bytes_ += moe_workspace_.nbytes();
    set_position(0);
  }

  ~CudaGptOss() override {
    set_device(dev_);
    cudaStreamSynchronize(stream_);
    if (profiling_ && profiled_steps_) {
      double total = 0;
      for (const auto& [k, v] : profile_) total += v.ms;
      std::fprintf(stderr, "decode profile over %lld steps (eager launches, %.3f ms a step):\n", (long long)profiled_steps_,
                   total / double(profiled_steps_));
      for (const auto& [k, v] : profile_) {
        std::fprintf(stderr, "  %-10s %8.1f us a step (%5.1f%%), %6.2f us a launch", k.c_str(),
                     1000.0 * v.ms / double(profiled_steps_), 100.0 * v.ms / total, 1000.0 * v.ms / double(v.launches));
        if (v.bytes > 0)  // launch gaps included: a lower bound on the kernel's own bandwidth
          std::fprintf(stderr, ", %7.2f MB a launch at %6.0f GB/s", v.bytes / double(v.launches) / 1e6, v.bytes / (v.ms * 1e6));
        std::fprintf(stderr, "\n");
      }
    }
    if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
    if (sample_graph_exec_) cudaGraphExecDestroy(sample_graph_exec_);
    if (cublas_) cublasDestroy(cublas_);
    if (host_tokens_) cudaFreeHost(host_tokens_);
  }

  int64_t position() const override { return pos_; }
  size_t device_bytes() const override { return workspace_bytes_ + (sampler_ ? sampler_->device_bytes() : 0); }
  const char* experts() const override {
    return experts_ == Experts::F32 ? "f32" : experts_ == Experts::Int8 ? "int8" : "bf16";
  }
  void reset() override { set_position(0); }

  bool truncate(int64_t position) override {
    if (position < 0 || position > pos_) return false;
    for (const auto& b : layers_) {
      // The ring holds positions [pos_ - cap, pos_); from `position` on the window needs
      // [position - window + 1, position).
      const int64_t held_from = std::max<int64_t>(0, pos_ - b.cap);
      const int64_t needed_from = b.window ? std::max<int64_t>(0, position - b.window + 1) : 0;
      if (position > 0 && needed_from < held_from) return false;
    }
    set_position(position);
    return true;
  }

  Tensor forward(std::span<const int32_t> tokens, bool all_logits) override {
    set_device(dev_);
    const int64_t T = int64_t(tokens.size());
    EMBER_CHECK(T > 0, "gpt-oss CUDA runtime: no tokens");
    EMBER_CHECK(pos_ + T <= max_context_, "gpt-oss CUDA runtime: positions up to {} exceed the context of {} tokens",
                pos_ + T, max_context_);
    for (int32_t t : tokens)
      EMBER_CHECK(t >= 0 && t < d_.vocab, "gpt-oss forward: token {} outside the vocabulary of {}", t, d_.vocab);
    if (T == 1 && !all_logits) {
      step(tokens[0]);
      Tensor out = Tensor::empty({1, d_.vocab}, DType::F32, Device::cuda(dev_));
      EMBER_CUDA_CHECK(cudaMemcpyAsync(out.raw_data(), logits_.raw_data(), logits_.nbytes(), cudaMemcpyDeviceToDevice, stream_));
      return out;
    }
    Tensor all;
    if (all_logits) all = Tensor::empty({T, d_.vocab}, DType::F32, Device::cuda(dev_));
    for (int64_t s = 0; s < T; s += max_chunk_) {
      const int64_t n = std::min(max_chunk_, T - s);
      const bool last_chunk = s + n == T;
      prefill(tokens.subspan(size_t(s), size_t(n)), all_logits ? dptr<float>(all) + s * d_.vocab : nullptr,
              !all_logits && last_chunk);
    }
    if (all_logits) return all;
    Tensor out = Tensor::empty({1, d_.vocab}, DType::F32, Device::cuda(dev_));
    EMBER_CUDA_CHECK(cudaMemcpyAsync(out.raw_data(), logits_.raw_data(), logits_.nbytes(), cudaMemcpyDeviceToDevice, stream_));
    return out;
  }

  std::vector<int32_t> decode_greedy(int32_t token, int64_t count, const std::function<bool(int32_t)>& on_token) override {
    set_device(dev_);
    EMBER_CHECK(token >= 0 && token < d_.vocab, "gpt-oss decode: token {} outside the vocabulary of {}", token, d_.vocab);
    EMBER_CHECK(pos_ + count <= max_context_, "gpt-oss decode: {} steps from position {} exceed the context of {}",
                count, pos_, max_context_);
    std::vector<int32_t> out;
    if (count <= 0) return out;
    EMBER_CUDA_CHECK(cudaMemcpyAsync(tokens_.raw_data(), &token, sizeof token, cudaMemcpyHostToDevice, stream_));
    int32_t* pinned = nullptr;
    if (!on_token) EMBER_CUDA_CHECK(cudaMallocHost(&pinned, sizeof(int32_t) * size_t(count)));
    for (int64_t i = 0; i < count; ++i) {
      launch_graph();
      ++pos_;
      if (on_token) {
        EMBER_CUDA_CHECK(cudaMemcpyAsync(host_tokens_, tokens_.raw_data(), sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
        EMBER_CUDA_CHECK(cudaStreamSynchronize(stream_));
        out.push_back(host_tokens_[0]);
        if (!on_token(host_tokens_[0])) return out;
      } else {
        EMBER_CUDA_CHECK(cudaMemcpyAsync(pinned + i, tokens_.raw_data(), sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
      }
    }
    if (!on_token) {
      const cudaError_t err = cudaStreamSynchronize(stream_);
      out.assign(pinned, pinned + count);
      cudaFreeHost(pinned);
      EMBER_CUDA_CHECK(err);
    }
    return out;
  }

  std::vector<int32_t> sample(const Tensor& logits, int64_t count, const SamplingParams& params,
                              std::span<const int32_t> history, const std::function<bool(int32_t)>& on_token) override {
    set_device(dev_);
    EMBER_CHECK(logits.defined() && logits.device() == Device::cuda(dev_) && logits.dtype() == DType::F32 &&
                    logits.is_contiguous() && logits.numel() > 0 && logits.numel() % d_.vocab == 0,
                "gpt-oss sample: logits must be contiguous f32 rows of {} on cuda:{}", d_.vocab, dev_);
    EMBER_CHECK(pos_ + count - 1 <= max_context_, "gpt-oss sample: {} steps from position {} exceed the context of {}",
                count - 1, pos_, max_context_);
    std::vector<int32_t> out;
    if (count <= 0) return out;
    if (!sampler_) sampler_ = std::make_unique<DeviceSampler>(dev_, d_.vocab);
    sampler_->configure(params, history, stream_);
    const float* row = static_cast<const float*>(logits.raw_data()) + (logits.numel() - d_.vocab);
    if (row != dptr<float>(logits_))
      EMBER_CUDA_CHECK(cudaMemcpyAsync(logits_.raw_data(), row, sizeof(float) * size_t(d_.vocab), cudaMemcpyDeviceToDevice,
                                       stream_));
    int32_t* pinned = nullptr;
    if (!on_token) EMBER_CUDA_CHECK(cudaMallocHost(&pinned, sizeof(int32_t) * size_t(count)));
    for (int64_t i = 0; i < count; ++i) {
      if (i == 0) {
        sampler_->sample(dptr<float>(logits_), dptr<int32_t>(tokens_), stream_);
      } else {
        launch_sample_graph();
        ++pos_;
      }
      if (on_token) {
        EMBER_CUDA_CHECK(cudaMemcpyAsync(host_tokens_, tokens_.raw_data(), sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
        sampler_->enqueue_status(stream_);
        EMBER_CUDA_CHECK(cudaStreamSynchronize(stream_));
        sampler_->check();
        out.push_back(host_tokens_[0]);
        if (!on_token(host_tokens_[0])) return out;
      } else {
        EMBER_CUDA_CHECK(cudaMemcpyAsync(pinned + i, tokens_.raw_data(), sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
      }
    }
    if (!on_token) {
      sampler_->enqueue_status(stream_);
      const cudaError_t err = cudaStreamSynchronize(stream_);
      out.assign(pinned, pinned + count);
      cudaFreeHost(pinned);
      EMBER_CUDA_CHECK(err);
      sampler_->check();
    }
    return out;
  }

 private:
  void set_position(int64_t p) {
    pos_ = p;
    EMBER_CUDA_CHECK(cudaMemcpyAsync(pos_dev_.raw_data(), &p, sizeof p, cudaMemcpyHostToDevice, stream_));
  }

  RopeArgs rope() const { return {dptr<float>(inv_freq_), d_.concentration}; }

  // One decode step for `token` (host) through the graph; logits_ and tokens_[0] get the result.
  void step(int32_t token) {
    EMBER_CUDA_CHECK(cudaMemcpyAsync(tokens_.raw_data(), &token, sizeof token, cudaMemcpyHostToDevice, stream_));
    launch_graph();
    ++pos_;
  }

  // EMBER_CUDA_PROFILE=1: decode steps run eagerly with an event after every kernel; the time per
  // kernel kind, and the bandwidth its weights and cache reads (`bytes`) took, are printed when the
  // runtime goes away.
  void mark(const char* label, double bytes = 0) {
    if (!profiling_) return;
    cudaEvent_t e;
    EMBER_CUDA_CHECK(cudaEventCreate(&e));
    EMBER_CUDA_CHECK(cudaEventRecord(e, stream_));
    marks_.push_back({label, e, bytes});
  }
  void collect_marks() {
    EMBER_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (size_t i = 1; i < marks_.size(); ++i) {
      float ms = 0;
      EMBER_CUDA_CHECK(cudaEventElapsedTime(&ms, marks_[i - 1].event, marks_[i].event));
      auto& slot = profile_[marks_[i].label];
      slot.ms += ms, slot.launches += 1, slot.bytes += marks_[i].bytes;
    }
    for (auto& m : marks_) cudaEventDestroy(m.event);
    marks_.clear();
    ++profiled_steps_;
  }

  void launch_graph() {
    if (profiling_) {
      mark("start");
      decode_kernels();
      collect_marks();
      return;
    }
    if (!graph_exec_) graph_exec_ = capture([&] { decode_kernels(); });
    EMBER_CUDA_CHECK(cudaGraphLaunch(graph_exec_, stream_));
  }

  // A decode step whose token comes from the device sampler (it overwrites the argmax in tokens_).
  void launch_sample_graph() {
    auto step = [&] {
      decode_kernels();
      sampler_->sample(dptr<float>(logits_), dptr<int32_t>(tokens_), stream_);
      mark("sample");
    };
    if (profiling_) {
      mark("start");
      step();
      collect_marks();
      return;
    }
    if (!sample_graph_exec_ && !sample_eager_) {
      try {
        sample_graph_exec_ = capture(step);
      } catch (const Error& e) {
        // A driver that cannot capture the cooperative launch: the graph, then the sampler.
        std::fprintf(stderr, "gpt-oss: sampling outside the decode graph (%s)\n", e.what());
        (void)cudaGetLastError();  // the refused launch's error must not surface at the next check
        sample_eager_ = true;
      }
    }
    if (sample_eager_) {
      launch_graph();
      sampler_->sample(dptr<float>(logits_), dptr<int32_t>(tokens_), stream_);
      return;
    }
    EMBER_CUDA_CHECK(cudaGraphLaunch(sample_graph_exec_, stream_));
  }

  template <typename F>
  cudaGraphExec_t capture(F&& kernels) {
    cudaGraph_t graph = nullptr;
    EMBER_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      kernels();
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    EMBER_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    EMBER_CUDA_CHECK(err);
    return exec;
  }

  // The decode step's kernels (captured once): token tokens_[0] at position *pos_dev_.
  void decode_kernels() {
    const int H = int(d_.hidden), D = int(d_.head_dim), Hq = int(d_.heads), Hkv = int(d_.kv_heads);
    const int k = int(d_.experts_per_token), E = int(d_.experts);
    const size_t hsmem = sizeof(float) * size_t(H);
    launch_pdl(embed_kernel, dim3(unsigned((H + kThreads - 1) / kThreads), 1), kThreads, 0, stream_, (const uint16_t*)dptr<uint16_t>(embedding_),
               (const int32_t*)dptr<int32_t>(tokens_), H, dptr<float>(x_));
    mark("embed", 2.0 * H);
    for (auto& b : layers_) {
      QkvDecodeArgs qa{dptr<float>(x_), dptr<float>(b.attn_norm), d_.eps, b.wq, b.wk, b.wv, dptr<float>(b.qkv_b), H, Hq,
                       Hkv, D, rope(), dptr<int64_t>(pos_dev_), dptr<uint16_t>(b.k_cache), dptr<uint16_t>(b.v_cache),
                       b.cap, dptr<float>(q32_), preload_ ? 1 : 0};
      const int pairs = (Hq + 2 * Hkv) * D / 2;
      launch_pdl(qkv_decode_kernel, (pairs + kWarps - 1) / kWarps, kThreads, hsmem, stream_, qa);
      mark("qkv", 2.0 * (Hq + 2 * Hkv) * D * H);
      AttnDecodeArgs aa{dptr<float>(q32_), dptr<uint16_t>(b.k_cache), dptr<uint16_t>(b.v_cache), b.cap,
                        dptr<int64_t>(pos_dev_), b.window, dptr<float>(b.sinks), 1.0f / std::sqrt(float(D)), Hq, Hkv,
                        D, b.splits, min_share_, dptr<float>(partial_), dptr<int>(counters_), dptr<float>(o32_)};
      launch_pdl(attn_decode_kernel, dim3(unsigned(Hkv), unsigned(b.splits)), 32 * (Hq / Hkv), 0, stream_, aa);
      mark(b.window ? "attn_win" : "attn_full",
           4.0 * double(b.window ? std::min<int64_t>(pos_ + 1, b.window) : pos_ + 1) * Hkv * D);
      launch_pdl(out_proj_decode_kernel, (H + kWarps - 1) / kWarps, kThreads, sizeof(float) * size_t(Hq * D), stream_,
                 (const float*)dptr<float>(o32_), b.wo, (const float*)dptr<float>(b.out_b), Hq * D, H, dptr<float>(x_),
                 preload_ ? 1 : 0);
      mark("out_proj", 2.0 * Hq * D * H);
      RouterDecodeArgs ra{dptr<float>(x_), dptr<float>(b.mlp_norm), d_.eps, dptr<float>(b.gate_w), dptr<float>(b.gate_b),
                          H, E, k, dptr<float>(router_), dptr<int>(counters_) + Hkv, dptr<int32_t>(idx_),
                          dptr<float>(weight_), experts_ == Experts::F32 ? dptr<float>(a32_) : nullptr,
                          experts_ == Experts::Int8 ? dptr<int8_t>(xq_) : nullptr,
                          experts_ == Experts::Int8 ? dptr<float>(xscale_) : nullptr,
                          experts_ == Experts::Bf16 ? dptr<uint16_t>(xh_) : nullptr,
                          experts_ == Experts::Bf16 ? dptr<int>(xexp_) : nullptr, topk_in_experts() ? 1 : 0};
      launch_pdl(router_decode_kernel, E, kThreads, hsmem, stream_, ra);
      mark("router", 4.0 * E * H);
      moe(b, 1, /*pdl=*/true);
    }
    unembed(dptr<float>(x_), /*advance=*/true, /*pdl=*/true);
    mark("unembed", 2.0 * double(d_.vocab) * H);
  }

  // The experts for T tokens (decode, or a prefill chunk below kTiledMoeMinTokens), their input
  // in a32_ (and, when int8, already quantised in xq_ for decode).
  void moe(const LayerBuffers& b, int T, bool pdl) {
    const int H = int(d_.hidden), k = int(d_.experts_per_token), I = int(d_.intermediate);
    const dim3 up(unsigned(I / 32), unsigned(k), unsigned(T)), down(unsigned((H / 2 + kWarps - 1) / kWarps), unsigned(T));
    // MXFP4 bytes the selected experts' rows hold (16-byte blocks and a scale byte per 32 values)
    const double up_bytes = 17.0 * k * T * 2 * I * (H / 32), down_bytes = 17.0 * k * T * H * (I / 32);
    auto go = [&](auto kernel, dim3 grid, auto args) {
      if (pdl) {
        launch_pdl(kernel, grid, kThreads, 0, stream_, args);
      } else {
        kernel<<<grid, kThreads, 0, stream_>>>(args);
        EMBER_CUDA_LAUNCHED();
      }
    };
    if (experts_ == Experts::Bf16) {
      if (!pdl) {  // prefill: the chunk's inputs in f16 (decode's router kernel wrote them)
        f16_rows_kernel<<<unsigned(T), kThreads, 0, stream_>>>(dptr<float>(a32_), H, dptr<uint16_t>(xh_), dptr<int>(xexp_));
        EMBER_CUDA_LAUNCHED();
      }
      MoeF16Args fa{dptr<uint16_t>(xh_), dptr<int>(xexp_), dptr<int32_t>(idx_), dptr<float>(weight_), k, H, I, b.w1b, b.w1s,
                    b.w2b, b.w2s, dptr<float>(b.b1), dptr<float>(b.b2), d_.swiglu_limit, dptr<uint16_t>(acth_), act_exp_,
                    dptr<float>(x_), pdl && T == 1 && topk_in_experts() ? dptr<float>(router_) : nullptr, int(d_.experts)};
      go(moe_up_f16_kernel, up, fa);
      mark("moe_up", up_bytes);
      go(moe_down_f16_kernel, dim3(unsigned(H / 8), unsigned(T)), fa);
      mark("moe_down", down_bytes);
      return;
    }
    if (experts_ == Experts::Int8) {
      if (!pdl) {  // prefill: quantise the chunk's inputs (decode's router kernel did)
        const int64_t blocks = int64_t(T) * H / 32;
        quantize_rows_kernel<<<unsigned((blocks + kWarps - 1) / kWarps), kThreads, 0, stream_>>>(
            dptr<float>(a32_), blocks, dptr<int8_t>(xq_), dptr<float>(xscale_));
        EMBER_CUDA_LAUNCHED();
      }
      MoeQ8Args qa{dptr<int8_t>(xq_), dptr<float>(xscale_), dptr<int32_t>(idx_), dptr<float>(weight_), k, H, I, b.w1b,
                   b.w1s, b.w2b, b.w2s, dptr<float>(b.b1), dptr<float>(b.b2), d_.swiglu_limit, dptr<int8_t>(actq_),
                   dptr<float>(actscale_), dptr<float>(x_)};
      go(moe_up_q8_kernel, up, qa);
      mark("moe_up", up_bytes);
      go(moe_down_q8_kernel, dim3(unsigned((H + kWarps - 1) / kWarps), unsigned(T)), qa);
      mark("moe_down", down_bytes);
      return;
    }
    MoeUpArgs ua{dptr<float>(a32_), dptr<int32_t>(idx_), k, H, I, b.w1b, b.w1s, dptr<float>(b.b1), d_.swiglu_limit,
                 dptr<float>(act_)};
    go(moe_up_kernel, up, ua);
    mark("moe_up", up_bytes);
    MoeDownArgs da{dptr<float>(act_), dptr<int32_t>(idx_), dptr<float>(weight_), k, H, I, b.w2b, b.w2s, dptr<float>(b.b2),
                   dptr<float>(x_)};
    go(moe_down_kernel, down, da);
    mark("moe_down", down_bytes);
  }

  void unembed(const float* xrow, bool advance, bool pdl = false) {
    const int H = int(d_.hidden);
    UnembedArgs ua{xrow, dptr<float>(norm_), d_.eps, dptr<uint16_t>(unembedding_), H, int(d_.vocab), dptr<float>(logits_),
                   dptr<float>(part_val_), dptr<int>(part_idx_), dptr<int>(counters_) + d_.kv_heads + 1,
                   dptr<int32_t>(tokens_), dptr<int64_t>(pos_dev_), advance ? 1 : 0};
    if (pdl) {
      launch_pdl(unembed_kernel, unsigned(unembed_blocks_), kThreads, sizeof(float) * size_t(H), stream_, ua);
      return;
    }
    unembed_kernel<<<unsigned(unembed_blocks_), kThreads, sizeof(float) * size_t(H), stream_>>>(ua);
    EMBER_CUDA_LAUNCHED();
  }

  // C[T, N] (f32, row stride ldc) = A[T, K] (bf16) x W[N, K]^T (bf16).
  void gemm_bf16(const uint16_t* A, const uint16_t* W, float* C, int64_t T, int64_t N, int64_t K, int64_t ldc, float beta = 0.f) {
    const float alpha = 1.0f;
    EMBER_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(T), int(K), &alpha, W, CUDA_R_16BF, int(K), A,
                              CUDA_R_16BF, int(K), &beta, C, CUDA_R_32F, int(ldc), CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
  }

  // A chunk of T tokens at pos_: logits of every token into `all` [T, V], or of the last token
  // into logits_ (and its argmax into tokens_[0]) when `last`.
  void prefill(std::span<const int32_t> tokens, float* all, bool last) {
    const int64_t T = int64_t(tokens.size());
    const int H = int(d_.hidden), D = int(d_.head_dim), Hq = int(d_.heads), Hkv = int(d_.kv_heads);
    const int k = int(d_.experts_per_token), E = int(d_.experts);
    const int64_t Nqkv = (Hq + 2 * Hkv) * D;
    const size_t hsmem = sizeof(float) * size_t(H);
    EMBER_CUDA_CHECK(cudaMemcpyAsync(tokens_.raw_data(), tokens.data(), sizeof(int32_t) * size_t(T),
                                     cudaMemcpyHostToDevice, stream_));
    embed_kernel<<<dim3(unsigned((H + kThreads - 1) / kThreads), unsigned(T)), kThreads, 0, stream_>>>(dptr<uint16_t>(embedding_), dptr<int32_t>(tokens_), H, dptr<float>(x_));
    EMBER_CUDA_LAUNCHED();
    for (auto& b : layers_) {
      norm_rows_kernel<<<unsigned(T), kThreads, hsmem, stream_>>>(dptr<float>(x_), dptr<float>(b.attn_norm), d_.eps, H,
                                                                   dptr<uint16_t>(a_), nullptr);
      EMBER_CUDA_LAUNCHED();
      float* qkv = dptr<float>(qkv_);
      gemm_bf16(dptr<uint16_t>(a_), b.wq, qkv, T, int64_t(Hq) * D, H, Nqkv);
      gemm_bf16(dptr<uint16_t>(a_), b.wk, qkv + int64_t(Hq) * D, T, int64_t(Hkv) * D, H, Nqkv);
      gemm_bf16(dptr<uint16_t>(a_), b.wv, qkv + int64_t(Hq + Hkv) * D, T, int64_t(Hkv) * D, H, Nqkv);
      QkvPrefillArgs qa{qkv, dptr<float>(b.qkv_b), int(T), Hq, Hkv, D, pos_, rope(), dptr<uint16_t>(b.k_cache),
                        dptr<uint16_t>(b.v_cache), b.cap, dptr<uint16_t>(qb_)};
      qkv_prefill_kernel<<<unsigned(T), kThreads, 0, stream_>>>(qa);
      EMBER_CUDA_LAUNCHED();
      gpt_oss::AttentionPrefillArgs aa;
      aa.T = int(T), aa.Hq = Hq, aa.Hkv = Hkv, aa.head_dim = D, aa.start_pos = pos_, aa.window = b.window, aa.cap = b.cap;
      aa.scale = 1.0f / std::sqrt(float(D)), aa.q = dptr<uint16_t>(qb_), aa.k_cache = dptr<uint16_t>(b.k_cache);
      aa.v_cache = dptr<uint16_t>(b.v_cache), aa.sinks = dptr<float>(b.sinks), aa.out = dptr<uint16_t>(ob_);
      attention(aa);
      gemm_bf16(dptr<uint16_t>(ob_), b.wo, dptr<float>(y_), T, H, int64_t(Hq) * D, H);
      residual_add_kernel<<<blocks_for(T * H), kThreads, 0, stream_>>>(dptr<float>(y_), dptr<float>(b.out_b), H, T * H,
                                                                       dptr<float>(x_));
      EMBER_CUDA_LAUNCHED();
      norm_rows_kernel<<<unsigned(T), kThreads, hsmem, stream_>>>(dptr<float>(x_), dptr<float>(b.mlp_norm), d_.eps, H,
                                                                   dptr<uint16_t>(a_), dptr<float>(a32_));
      EMBER_CUDA_LAUNCHED();
      // Router in f32: logits[T, E] = a32 gate_w^T + gate_b.
      {
        const float alpha = 1.0f, beta = 0.0f;
        EMBER_CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, E, int(T), H, &alpha, dptr<float>(b.gate_w), H,
                                 dptr<float>(a32_), H, &beta, dptr<float>(router_), E));
      }
      add_bias(dptr<float>(router_), dptr<float>(b.gate_b), T, E);
      topk_softmax_kernel<<<unsigned((T + 7) / 8), kThreads, 0, stream_>>>(dptr<float>(router_), int(T), E, k,
                                                                          dptr<int32_t>(idx_), dptr<float>(weight_));
      EMBER_CUDA_LAUNCHED();
      if (tiled_moe_ && T >= kTiledMoeMinTokens) {
        gpt_oss::MoePrefillArgs ma;
        ma.T = int(T), ma.H = H, ma.I = int(d_.intermediate), ma.E = E, ma.k = k, ma.swiglu_limit = d_.swiglu_limit;
        ma.a = dptr<uint16_t>(a_), ma.idx = dptr<int32_t>(idx_), ma.weight = dptr<float>(weight_);
        ma.w1_blocks = b.w1b, ma.w1_scales = b.w1s, ma.b1 = dptr<float>(b.b1);
        ma.w2_blocks = b.w2b, ma.w2_scales = b.w2s, ma.b2 = dptr<float>(b.b2);
        ma.x = dptr<float>(x_), ma.workspace = moe_workspace_.raw_data();
        // 128-row tiles once an expert averages 64 rows: each decoded weight tile serves twice the
        // rows (the MXFP4 decode, not the products, bounds these GEMMs). On an H100, 20b at 8192
        // tokens: 35.7k tok/s against 29.9k; 120b at 512 tokens (16 rows an expert) was slower
        // with them (4.6k against 5.9k).
        ma.tile_rows = moe_tile_rows_ ? moe_tile_rows_ : T * k >= 64 * E ? 128 : 64;
        gpt_oss::moe_prefill(ma, stream_);
      } else {
        moe(b, int(T), /*pdl=*/false);
      }
    }
    if (all) {
      norm_rows_kernel<<<unsigned(T), kThreads, hsmem, stream_>>>(dptr<float>(x_), dptr<float>(norm_), d_.eps, H,
                                                                   dptr<uint16_t>(a_), nullptr);
      EMBER_CUDA_LAUNCHED();
      gemm_bf16(dptr<uint16_t>(a_), dptr<uint16_t>(unembedding_), all, T, d_.vocab, H, d_.vocab);
    }
    if (last) unembed(dptr<float>(x_) + (T - 1) * H, /*advance=*/false);
    set_position(pos_ + T);
  }

  void add_bias(float* y, const float* b, int64_t T, int64_t N);
  void attention(const gpt_oss::AttentionPrefillArgs& a);

  int dev_;
  GptOssDims d_;
  int64_t max_context_, max_chunk_;
  cudaStream_t stream_ = nullptr;
  int sms_ = 0;
  std::vector<LayerBuffers> layers_;
  std::vector<Tensor> keep_;
  Tensor embedding_, unembedding_, norm_, inv_freq_;
  Tensor x_, y_, a_, a32_, qkv_, qb_, ob_, q32_, o32_, router_, idx_, weight_, act_, xq_, xscale_, actq_, actscale_;
  Tensor partial_, part_val_, part_idx_, counters_, logits_, tokens_, pos_dev_;
  Tensor moe_workspace_;
  bool tiled_attention_ = false, tiled_moe_ = false;
  // Keys a decode attention block takes at least (EMBER_GPT_OSS_ATTN_SHARE). 32 was the fastest
  // of 32/64/128/256 on an H100 (20b, decode at context 128-384: 447.3/442.5/435.2/432.5 tok/s).
  int64_t min_share_ = [] {
    const char* v = std::getenv("EMBER_GPT_OSS_ATTN_SHARE");
    return v ? std::max<int64_t>(1, std::atoll(v)) : int64_t(32);
  }();
  // The experts' decode activations (EMBER_GPT_OSS_EXPERTS): bf16 (default; tensor cores, the
  // rounding prefill has too), f32 (the CPU path's arithmetic, ~0.85x the decode speed) or int8
  // per block of 32 (as llama.cpp does; less exact, ~1.06x).
  enum class Experts { Bf16, F32, Int8 };
  Experts experts_ = [] {
    const char* v = std::getenv("EMBER_GPT_OSS_EXPERTS");
    const std::string s = v ? v : "";
    EMBER_CHECK(s.empty() || s == "bf16" || s == "f32" || s == "int8",
                "EMBER_GPT_OSS_EXPERTS={}: expected bf16 (the default), f32 or int8", s);
    return s == "f32" ? Experts::F32 : s == "int8" ? Experts::Int8 : Experts::Bf16;
  }();
  int act_exp_ = 0;
  // Rows a prefill expert-GEMM tile (EMBER_GPT_OSS_MOE_TILE_ROWS=64|128; unset: by rows an expert).
  int moe_tile_rows_ = [] {
    const char* v = std::getenv("EMBER_GPT_OSS_MOE_TILE_ROWS");
    const std::string s = v ? v : "";
    EMBER_CHECK(s.empty() || s == "64" || s == "128", "EMBER_GPT_OSS_MOE_TILE_ROWS={}: expected 64 or 128", s);
    return s.empty() ? 0 : std::stoi(s);
  }();
  // The bf16 experts' up kernel takes decode's top-k from the router's logits itself.
  bool topk_in_experts() const { return experts_ == Experts::Bf16 && d_.experts <= 256; }
  // The first batch of q/k/v and output-projection weights is loaded before a kernel waits for the
  // previous one (EMBER_GPT_OSS_PRELOAD=0: after, to measure what it gains).
  bool preload_ = [] {
    const char* v = std::getenv("EMBER_GPT_OSS_PRELOAD");
    return !(v && std::string(v) == "0");
  }();
  Tensor xh_, xexp_, acth_;
  int max_splits_ = 1;
  int64_t unembed_blocks_ = 0;
  int64_t pos_ = 0;
  int32_t* host_tokens_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudaGraphExec_t graph_exec_ = nullptr;
  // Device sampling (made on first use): its graph is the decode step followed by the sampler.
  std::unique_ptr<DeviceSampler> sampler_;
  cudaGraphExec_t sample_graph_exec_ = nullptr;
  bool sample_eager_ = false;
  size_t workspace_bytes_ = 0;
  bool profiling_ = [] {
    const char* v = std::getenv("EMBER_CUDA_PROFILE");
    return v && std::string(v) == "1";
  }();
  struct Mark {
    const char* label;
    cudaEvent_t event;
    double bytes;
  };
  struct KernelTime {
    double ms = 0, bytes = 0;
    int64_t launches = 0;
  };
  std::vector<Mark> marks_;
  std::map<std::string, KernelTime> profile_;
  int64_t profiled_steps_ = 0;
};

__global__ void add_bias_kernel(float* y, const float* b, int64_t N, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += b[i % N];
}

void CudaGptOss::add_bias(float* y, const float* b, int64_t T, int64_t N) {
  add_bias_kernel<<<blocks_for(T * N), kThreads, 0, stream_>>>(y, b, N, T * N);
  EMBER_CUDA_LAUNCHED();
}

void CudaGptOss::attention(const gpt_oss::AttentionPrefillArgs& a) {
  if (tiled_attention_) return gpt_oss::attention_prefill(a, stream_);
  attn_prefill_simple_kernel<<<dim3(unsigned(a.Hq), unsigned((a.T + kWarps - 1) / kWarps)), kThreads, 0, stream_>>>(a);
  EMBER_CUDA_LAUNCHED();
}

}  // namespace

std::unique_ptr<GptOssRuntime> make_gpt_oss_cuda_runtime(int device_index, const GptOssDims& d, const GptOssWeights& w,
                                                         int64_t max_context, int64_t max_chunk, std::string* why) {
  auto fail = [&](std::string reason) -> std::unique_ptr<GptOssRuntime> {
    if (why) *why = std::move(reason);
    return nullptr;
  };
  if (d.head_dim % 8 || d.head_dim > kMaxHeadDim) return fail("head_dim " + std::to_string(d.head_dim) + " (needs a multiple of 8, at most 64)");
  if (d.hidden % 32 || d.intermediate % 32) return fail("hidden and intermediate sizes must be multiples of 32");
  if (d.hidden > 4096 || d.heads * d.head_dim > 8192) return fail("hidden size above 4096 or heads x head_dim above 8192");
  if (d.kv_heads <= 0 || d.heads % d.kv_heads || d.heads / d.kv_heads > 16) return fail("query heads per KV head must divide and be <= 16");
  if (d.experts > 256 || d.experts_per_token > 8 || d.experts_per_token > d.experts) return fail("at most 256 experts and 8 per token");
  if (int64_t(d.windowed.size()) != d.layers || int64_t(w.layers.size()) != d.layers) return fail("layer count mismatch");
  auto dense = [&](const Tensor& t, int64_t rows, int64_t cols) {
    return t.defined() && t.device().is_cuda() && t.dtype() == DType::BF16 && t.is_contiguous() && t.ndim() == 2 &&
           t.dim(0) == rows && t.dim(1) == cols && reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0;
  };
  auto packed = [&](const Tensor& t) {
    return t.defined() && t.device().is_cuda() && t.dtype() == DType::U8 && t.is_contiguous() &&
           reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0;
  };
  const int64_t H = d.hidden, D = d.head_dim;
  for (int64_t l = 0; l < d.layers; ++l) {
    const auto& lw = w.layers[size_t(l)];
    if (!dense(lw.q_w, d.heads * D, H) || !dense(lw.k_w, d.kv_heads * D, H) || !dense(lw.v_w, d.kv_heads * D, H) ||
        !dense(lw.out_w, H, d.heads * D))
      return fail("layer " + std::to_string(l) + ": attention weights are not contiguous bf16 on the device");
    if (!packed(lw.mlp1_blocks) || !packed(lw.mlp1_scales) || !packed(lw.mlp2_blocks) || !packed(lw.mlp2_scales) ||
        lw.mlp1_blocks.numel() != d.experts * 2 * d.intermediate * H / 2 || lw.mlp2_blocks.numel() != d.experts * H * d.intermediate / 2)
      return fail("layer " + std::to_string(l) + ": experts are not MXFP4 on the device");
  }
  if (!dense(w.embedding, d.vocab, H) || !dense(w.unembedding, d.vocab, H))
    return fail("embedding/unembedding are not contiguous bf16 on the device");
  if (max_chunk <= 0 || max_context <= 0) return fail("max_context and max_chunk must be positive");
  return std::make_unique<CudaGptOss>(device_index, d, w, max_context, max_chunk);
}

}  // namespace ember::backend
