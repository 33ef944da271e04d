// Prefill kernels of the fused gpt-oss CUDA runtime: the grouped MXFP4 MoE (route, two expert
// GEMMs on tensor cores with fused epilogues, a deterministic combine) and flash attention with
// learned sinks over the bf16 ring cache. mma.sync m16n8k16 bf16 -> f32 throughout (sm_80+).
#include "backends/cuda/gpt_oss_prefill.h"

#include <cuda_bf16.h>

#include <algorithm>

#include "backends/cuda/common.cuh"

namespace ember::backend::cuda::gpt_oss {
namespace {

// ---- tensor-core and async-copy primitives -------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return uint32_t(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared; zero-filled (src not read) when !valid.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
// c[16x8] += a[16x16] b[16x8], bf16 inputs, f32 accumulators (PTX fragment layouts).
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  return uint32_t(f32_to_bf16_bits(lo)) | (uint32_t(f32_to_bf16_bits(hi)) << 16);
}
__device__ __forceinline__ uint32_t bf16x2_mul(uint32_t a, uint32_t b) {
  __nv_bfloat162 r = __hmul2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&b));
  return *reinterpret_cast<uint32_t*>(&r);
}

// ---- MXFP4 -> bf16 ------------------------------------------------------------------------

// 8 FP4 codes (value 2j in the low nibble of byte j) -> 4 words of bf16 pairs, times `scale2`
// (the block's 2^(s-127) in both halves). The magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6 come from
// two byte tables (low and high byte of their bf16 bits) through prmt; bit 3 is the sign.
__device__ __forceinline__ void decode_fp4x8(uint32_t w, uint32_t scale2, uint32_t out[4]) {
  constexpr uint32_t kLo0 = 0xC0800000u, kLo1 = 0xC0804000u;  // low bytes of mags 0-3, 4-7
  constexpr uint32_t kHi0 = 0x3F3F3F00u, kHi1 = 0x40404040u;  // high bytes
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const uint32_t v = w >> (16 * half);  // codes of values 4*half .. 4*half+3 in the low 16 bits
    const uint32_t sel = v & 0x7777u;
    const uint32_t lo = __byte_perm(kLo0, kLo1, sel), hi = __byte_perm(kHi0, kHi1, sel);
    uint32_t p01 = __byte_perm(lo, hi, 0x5140), p23 = __byte_perm(lo, hi, 0x7362);
    p01 |= ((v << 12) & 0x8000u) | ((v << 24) & 0x80000000u);
    p23 |= ((v << 4) & 0x8000u) | ((v << 16) & 0x80000000u);
    out[2 * half] = bf16x2_mul(p01, scale2);
    out[2 * half + 1] = bf16x2_mul(p23, scale2);
  }
}
__device__ __forceinline__ uint32_t ue8_bf16x2(uint32_t s) {
  const uint32_t b = s ? (s << 7) : 0x0040u;  // 2^(s-127) as bf16 (s = 0: the subnormal 2^-127)
  return b | (b << 16);
}

// ---- MoE ----------------------------------------------------------------------------------

// Expert GEMM tile: BM (token, slot) rows x kBN weight rows, kBK inputs per step; 8 warps as
// BM/32 (rows) x 8/(BM/32) (weight rows), each 32 rows. Shared rows padded to kLds halves
// (conflict-free ldmatrix). BM is 64 (kBM) or 128: a tile's decoded weights serve BM rows.
constexpr int kBM = 64, kBN = 128, kBK = 64, kLds = kBK + 8, kGemmThreads = 256;
constexpr int kMaxExperts = 256;
constexpr size_t gemm_smem(int bm) { return size_t(2) * (bm + kBN) * kLds * sizeof(uint16_t); }

struct MoeGemm {
  const uint16_t* a;       // up: the MLP input [T, H], rows gathered; down: act [Tk, I] (grouped)
  const uint8_t* blocks;   // [E, N, K/32, 16]
  const uint8_t* scales;   // [E, N, K/32]
  const float* bias;       // [E, N]
  int N, K, k;             // weight rows and inputs of one expert; slots per token
  const int* sorted;       // [Tk] pair ids t*k+s grouped by expert
  const int* offsets;      // [E+1] first grouped row of each expert
  const int2* tiles;       // (expert, first grouped row) of each row tile
  const int* n_tiles;
  uint16_t* act;           // up: bf16 [Tk, N/2] (grouped rows)
  float limit;
  const float* weight;     // down: router weights [Tk]
  float* y;                // down: f32 [Tk, N] (pair rows)
};

size_t max_row_tiles(int Tk, int E, int bm = kBM) { return size_t(Tk / bm + std::min(E, Tk) + 1); }

// Groups the T*k (token, slot) pairs by expert: counts, prefix sum, row tiles, scatter. One block.
__global__ void moe_route_kernel(const int32_t* idx, int Tk, int E, int bm, int* offsets, int* sorted,
                                 int2* tiles, int* n_tiles) {
  __shared__ int count[kMaxExperts], start[kMaxExperts], cursor[kMaxExperts], tile0[kMaxExperts];
  for (int e = threadIdx.x; e < E; e += blockDim.x) count[e] = 0, cursor[e] = 0;
  __syncthreads();
  for (int p = threadIdx.x; p < Tk; p += blockDim.x) atomicAdd(&count[idx[p]], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int rows = 0, nt = 0;
    for (int e = 0; e < E; ++e) {
      start[e] = rows, tile0[e] = nt, offsets[e] = rows;
      rows += count[e], nt += (count[e] + bm - 1) / bm;
    }
    offsets[E] = rows, *n_tiles = nt;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x)
    for (int i = 0; i * bm < count[e]; ++i) tiles[tile0[e] + i] = make_int2(e, start[e] + i * bm);
  // Order inside an expert's group does not matter: every row is computed on its own and the
  // down GEMM writes by pair id.
  for (int p = threadIdx.x; p < Tk; p += blockDim.x) {
    const int e = idx[p];
    sorted[start[e] + atomicAdd(&cursor[e], 1)] = p;
  }
}

// kUp: act = swiglu(W1[e] a + b1[e]) (pairs of weight rows glu/lin -> one act column, bf16).
// !kUp: y[pair] = weight[pair] * (W2[e] act + b2[e]) (f32).
template <bool kUp, int BM>
__global__ void __launch_bounds__(kGemmThreads, 2) moe_gemm_kernel(MoeGemm g) {
  constexpr int WM = BM / 32, WN = 8 / WM, NI = kBN / WN / 8;  // warps along rows/columns; 8-column tiles a warp
  if (int(blockIdx.x) >= *g.n_tiles) return;
  const int2 tile = g.tiles[blockIdx.x];
  const int e = tile.x, row0 = tile.y, rows = ::min(BM, g.offsets[e + 1] - row0);
  const int n0 = blockIdx.y * kBN;

  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* sA = smem;                   // [2][BM][kLds]
  uint16_t* sB = smem + 2 * BM * kLds;  // [2][kBN][kLds]
  __shared__ int pair_of_row[BM];
  const int tid = threadIdx.x;
  if (tid < BM) pair_of_row[tid] = tid < rows ? g.sorted[row0 + tid] : 0;
  __syncthreads();

  // A: BM/32 chunks of 8 inputs a thread per step.
  constexpr int AC = BM * 8 / kGemmThreads;
  const uint16_t* a_src[AC];
  bool a_ok[AC];
#pragma unroll
  for (int i = 0; i < AC; ++i) {
    const int c = tid + i * kGemmThreads, r = c >> 3, cc = c & 7;
    a_ok[i] = r < rows;
    const size_t row = kUp ? size_t(pair_of_row[r] / g.k) : size_t(row0 + r);
    a_src[i] = a_ok[i] ? g.a + row * g.K + cc * 8 : g.a;
  }
  auto load_a = [&](int buf, int kt) {
#pragma unroll
    for (int i = 0; i < AC; ++i) {
      const int c = tid + i * kGemmThreads, r = c >> 3, cc = c & 7;
      cp_async16(sA + (buf * BM + r) * kLds + cc * 8, a_ok[i] ? a_src[i] + kt * kBK : g.a, a_ok[i]);
    }
  };
  // B: one MXFP4 block (32 inputs of one weight row) a thread per step, decoded into shared bf16.
  const int bn = tid >> 1, bh = tid & 1, kblocks = g.K / 32;
  const bool b_ok = n0 + bn < g.N;
  const size_t brow = size_t(e) * g.N + (b_ok ? n0 + bn : 0);
  const uint4* b_src = reinterpret_cast<const uint4*>(g.blocks) + brow * kblocks + bh;
  const uint8_t* s_src = g.scales + brow * kblocks + bh;
  uint4 braw = make_uint4(0, 0, 0, 0);
  uint32_t bscale = 0;
  auto fetch_b = [&](int kt) {
    if (b_ok) braw = __ldg(b_src + kt * 2), bscale = __ldg(s_src + kt * 2);
  };
  auto store_b = [&](int buf) {
    const uint32_t s2 = ue8_bf16x2(bscale);
    uint32_t v[16];
    decode_fp4x8(braw.x, s2, v);
    decode_fp4x8(braw.y, s2, v + 4);
    decode_fp4x8(braw.z, s2, v + 8);
    decode_fp4x8(braw.w, s2, v + 12);
    uint4* dst = reinterpret_cast<uint4*>(sB + (buf * kBN + bn) * kLds + bh * 32);
#pragma unroll
    for (int i = 0; i < 4; ++i) dst[i] = make_uint4(v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]);
  };

  const int warp = tid >> 5, lane = tid & 31, wm = warp / WN, wn = warp % WN;
  float acc[2][NI][4] = {};
  const int nk = g.K / kBK;
  load_a(0, 0);
  cp_async_commit();
  fetch_b(0);
  store_b(0);
  cp_async_wait<0>();
  __syncthreads();
  for (int kt = 0; kt < nk; ++kt) {
    const int cur = kt & 1;
    if (kt + 1 < nk) {
      load_a(cur ^ 1, kt + 1);
      cp_async_commit();
      fetch_b(kt + 1);
    }
    const uint16_t* a_tile = sA + cur * BM * kLds;
    const uint16_t* b_tile = sB + cur * kBN * kLds;
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t af[2][4], bf[NI / 2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
        ldmatrix_x4(af[mi], a_tile + (wm * 32 + mi * 16 + (lane & 15)) * kLds + kk * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int nj = 0; nj < NI / 2; ++nj)
        ldmatrix_x4(bf[nj], b_tile + (wn * NI * 8 + nj * 16 + (lane & 7) + (lane >> 4) * 8) * kLds + kk * 16 +
                                ((lane >> 3) & 1) * 8);
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni)
          mma_bf16(acc[mi][ni], af[mi], bf[ni >> 1][(ni & 1) * 2], bf[ni >> 1][(ni & 1) * 2 + 1]);
    }
    if (kt + 1 < nk) {
      store_b(cur ^ 1);
      cp_async_wait<0>();
    }
    __syncthreads();
  }

  // Epilogue. Thread holds (row lane/4 [+8], columns 2*(lane%4), +1) of each 16x8 tile.
  const int gr = lane >> 2, gc = (lane & 3) * 2;
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) {
      const int col = n0 + wn * NI * 8 + ni * 8 + gc;
      if (col >= g.N) continue;
      const float bias0 = g.bias[size_t(e) * g.N + col], bias1 = g.bias[size_t(e) * g.N + col + 1];
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int r = wm * 32 + mi * 16 + gr + hr * 8;
        if (r >= rows) continue;
        const float v0 = acc[mi][ni][2 * hr] + bias0, v1 = acc[mi][ni][2 * hr + 1] + bias1;
        if constexpr (kUp) {
          // model.py swiglu: glu = even row, linear = odd row, both clamped.
          const float glu = fminf(v0, g.limit), lin = fminf(fmaxf(v1, -g.limit), g.limit);
          const float out = glu / (1.0f + __expf(-1.702f * glu)) * (lin + 1.0f);
          g.act[size_t(row0 + r) * (g.N / 2) + col / 2] = f32_to_bf16_bits(out);
        } else {
          const int pair = pair_of_row[r];
          const float w = g.weight[pair];
          *reinterpret_cast<float2*>(g.y + size_t(pair) * g.N + col) = make_float2(v0 * w, v1 * w);
        }
      }
    }
}

// x[t] += sum over slots s (in order) of y[t*k + s]; H % 4 == 0.
__global__ void moe_combine_kernel(const float* y, float* x, int T, int H, int k) {
  const int H4 = H / 4;
  const int64_t n = int64_t(T) * H4;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / H4, h4 = i % H4;
    const float4* yt = reinterpret_cast<const float4*>(y) + t * k * H4 + h4;
    float4 sum = yt[0];
    for (int s = 1; s < k; ++s) {
      const float4 v = yt[int64_t(s) * H4];
      sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
    }
    float4* xt = reinterpret_cast<float4*>(x) + i;
    float4 xv = *xt;
    xv.x += sum.x, xv.y += sum.y, xv.z += sum.z, xv.w += sum.w;
    *xt = xv;
  }
}

struct MoeWorkspace {
  int* offsets;
  int* n_tiles;
  int2* tiles;
  int* sorted;
  uint16_t* act;
  float* y;
  size_t bytes;
};

MoeWorkspace moe_workspace(void* base, int T, int H, int I, int E, int k) {
  auto align = [](size_t b) { return (b + 255) / 256 * 256; };
  const size_t Tk = size_t(T) * k;
  char* p = static_cast<char*>(base);
  size_t off = 0;
  MoeWorkspace w{};
  auto take = [&](size_t bytes) {
    char* q = p ? p + off : nullptr;
    off += align(bytes);
    return q;
  };
  w.offsets = reinterpret_cast<int*>(take(sizeof(int) * size_t(E + 1)));
  w.n_tiles = reinterpret_cast<int*>(take(sizeof(int)));
  w.tiles = reinterpret_cast<int2*>(take(sizeof(int2) * max_row_tiles(int(Tk), E)));
  w.sorted = reinterpret_cast<int*>(take(sizeof(int) * Tk));
  w.act = reinterpret_cast<uint16_t*>(take(sizeof(uint16_t) * Tk * size_t(I)));
  w.y = reinterpret_cast<float*>(take(sizeof(float) * Tk * size_t(H)));
  w.bytes = off;
  return w;
}

// ---- attention ----------------------------------------------------------------------------

// One block: 64 queries of one q head, 4 warps of 16 query rows; keys in tiles of 64.
constexpr int kAttnBQ = 64, kAttnBK = 64, kHeadDim = 64, kAttnLds = kHeadDim + 8, kAttnThreads = 128;

__global__ void __launch_bounds__(kAttnThreads) attention_prefill_kernel(AttentionPrefillArgs p) {
  __shared__ __align__(16) uint16_t sQ[kAttnBQ * kAttnLds];
  __shared__ __align__(16) uint16_t sK[2][kAttnBK * kAttnLds];
  __shared__ __align__(16) uint16_t sV[2][kAttnBK * kAttnLds];
  const int h = blockIdx.x, hk = h / (p.Hq / p.Hkv);
  const int q0 = (gridDim.y - 1 - blockIdx.y) * kAttnBQ;  // longest rows first
  const int qrows = ::min(kAttnBQ, p.T - q0);
  const int64_t P0 = p.start_pos + q0, P1 = P0 + qrows - 1;  // positions of the first/last query
  const int64_t lo = p.window > 0 ? (P0 - p.window + 1 > 0 ? P0 - p.window + 1 : int64_t(0)) : 0;
  const int n_kv = int((P1 - lo) / kAttnBK) + 1;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t q_stride = int64_t(p.Hq) * kHeadDim;

#pragma unroll
  for (int i = 0; i < kAttnBQ * 8 / kAttnThreads; ++i) {
    const int c = tid + i * kAttnThreads, r = c >> 3, cc = c & 7;
    const bool ok = r < qrows;
    cp_async16(sQ + r * kAttnLds + cc * 8, ok ? p.q + (q0 + r) * q_stride + h * kHeadDim + cc * 8 : p.q, ok);
  }
  const uint16_t* k_head = p.k_cache + int64_t(hk) * p.cap * kHeadDim;
  const uint16_t* v_head = p.v_cache + int64_t(hk) * p.cap * kHeadDim;
  auto load_kv = [&](int buf, int64_t kv0) {
#pragma unroll
    for (int i = 0; i < kAttnBK * 8 / kAttnThreads; ++i) {
      const int c = tid + i * kAttnThreads, r = c >> 3, cc = c & 7;
      const int64_t pos = kv0 + r;
      const bool ok = pos <= P1;
      const int64_t off = (ok ? pos % p.cap : 0) * kHeadDim + cc * 8;
      cp_async16(sK[buf] + r * kAttnLds + cc * 8, k_head + off, ok);
      cp_async16(sV[buf] + r * kAttnLds + cc * 8, v_head + off, ok);
    }
  };
  load_kv(0, lo);
  cp_async_commit();

  // Scores in the log2 domain; the sink starts the running max and the denominator, so a row
  // whose keys of a tile are all masked never sees exp(-inf - -inf).
  constexpr float kLog2e = 1.4426950408889634f;
  const float sl2 = p.scale * kLog2e;
  const float sink = p.sinks[h] * kLog2e;
  const int gr = lane >> 2, gc = (lane & 3) * 2;
  float m[2], l[2];
  for (int i = 0; i < 2; ++i) {
    m[i] = fmaxf(sink, -1e30f);
    l[i] = (lane & 3) == 0 ? exp2f(sink - m[i]) : 0.f;  // per-thread partial sums, reduced at the end
  }
  const int64_t qpos[2] = {P0 + warp * 16 + gr, P0 + warp * 16 + gr + 8};
  float o[8][4] = {};
  uint32_t qf[4][4];

  for (int j = 0; j < n_kv; ++j) {
    const int cur = j & 1;
    const int64_t kv0 = lo + int64_t(j) * kAttnBK;
    if (j + 1 < n_kv) load_kv(cur ^ 1, kv0 + kAttnBK);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    if (j == 0)
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
        ldmatrix_x4(qf[kk], sQ + (warp * 16 + (lane & 15)) * kAttnLds + kk * 16 + (lane >> 4) * 8);

    float s[8][4] = {};
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        ldmatrix_x4(b, sK[cur] + (np * 16 + (lane & 7) + (lane >> 4) * 8) * kAttnLds + kk * 16 + ((lane >> 3) & 1) * 8);
        mma_bf16(s[2 * np], qf[kk], b[0], b[1]);
        mma_bf16(s[2 * np + 1], qf[kk], b[2], b[3]);
      }
    // Every key of the tile visible to every query of the block: no per-element mask.
    const bool full = kv0 + kAttnBK - 1 <= P0 && (p.window == 0 || kv0 > P1 - p.window);
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        float v = s[nt][c] * sl2;
        if (!full) {
          const int64_t kp = kv0 + nt * 8 + gc + (c & 1), qp = qpos[c >> 1];
          if (kp > qp || (p.window > 0 && kp <= qp - p.window)) v = -INFINITY;
        }
        s[nt][c] = v;
        mx[c >> 1] = fmaxf(mx[c >> 1], v);
      }
    float alpha[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      alpha[i] = exp2f(m[i] - mx[i]);
      m[i] = mx[i];
      l[i] *= alpha[i];
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const float e = exp2f(s[nt][c] - m[c >> 1]);
        s[nt][c] = e;
        l[c >> 1] += e;
        o[nt][c] *= alpha[c >> 1];
      }
    // O += P V: the score accumulators of key tiles 2kk, 2kk+1 are the A fragment of keys 16kk..
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                             pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < 4; ++dp) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, sV[cur] + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kAttnLds + dp * 16 + (lane >> 4) * 8);
        mma_bf16(o[2 * dp], a, b[0], b[1]);
        mma_bf16(o[2 * dp + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int r = warp * 16 + gr + hr * 8;
    if (r >= qrows) continue;
    const float inv = 1.0f / l[hr];
    uint32_t* dst = reinterpret_cast<uint32_t*>(p.out + (q0 + r) * q_stride + h * kHeadDim);
#pragma unroll
    for (int dt = 0; dt < 8; ++dt) dst[(dt * 8 + gc) / 2] = pack_bf16(o[dt][2 * hr] * inv, o[dt][2 * hr + 1] * inv);
  }
}

// The route and the two expert GEMMs with BM-row tiles.
template <int BM>
void moe_gemms(const MoePrefillArgs& args, const MoeWorkspace& ws, cudaStream_t stream) {
  const int T = args.T, H = args.H, I = args.I, E = args.E, k = args.k, Tk = T * k;
  constexpr size_t smem = gemm_smem(BM);
  // Per device (cheap; not a stream operation, so allowed while capturing a graph).
  EMBER_CUDA_CHECK(cudaFuncSetAttribute(moe_gemm_kernel<true, BM>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  EMBER_CUDA_CHECK(cudaFuncSetAttribute(moe_gemm_kernel<false, BM>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));

  moe_route_kernel<<<1, 1024, 0, stream>>>(args.idx, Tk, E, BM, ws.offsets, ws.sorted, ws.tiles, ws.n_tiles);
  EMBER_CUDA_LAUNCHED();
  const unsigned row_tiles = unsigned(max_row_tiles(Tk, E, BM));

  MoeGemm up{};
  up.a = args.a, up.blocks = args.w1_blocks, up.scales = args.w1_scales, up.bias = args.b1;
  up.N = 2 * I, up.K = H, up.k = k;
  up.sorted = ws.sorted, up.offsets = ws.offsets, up.tiles = ws.tiles, up.n_tiles = ws.n_tiles;
  up.act = ws.act, up.limit = args.swiglu_limit;
  moe_gemm_kernel<true, BM><<<dim3(row_tiles, unsigned((up.N + kBN - 1) / kBN)), kGemmThreads, smem, stream>>>(up);
  EMBER_CUDA_LAUNCHED();

  MoeGemm down = up;
  down.a = ws.act, down.blocks = args.w2_blocks, down.scales = args.w2_scales, down.bias = args.b2;
  down.N = H, down.K = I;
  down.act = nullptr, down.weight = args.weight, down.y = ws.y;
  moe_gemm_kernel<false, BM><<<dim3(row_tiles, unsigned((H + kBN - 1) / kBN)), kGemmThreads, smem, stream>>>(down);
  EMBER_CUDA_LAUNCHED();
}

}  // namespace

size_t moe_prefill_workspace_bytes(int T, int H, int I, int E, int k) {
  return moe_workspace(nullptr, T, H, I, E, k).bytes;
}

void moe_prefill(const MoePrefillArgs& args, cudaStream_t stream) {
  const int T = args.T, H = args.H, I = args.I, E = args.E, k = args.k;
  if (T < 0 || H <= 0 || I <= 0 || E <= 0 || k <= 0 || H % kBK != 0 || I % kBK != 0 || E > kMaxExperts)
    throw_error("moe_prefill: unsupported shape T={} H={} I={} E={} k={} (H and I multiples of {}, E <= {})",
                T, H, I, E, k, kBK, kMaxExperts);
  if (T == 0) return;
  if (reinterpret_cast<uintptr_t>(args.workspace) % 256 != 0)
    throw_error("moe_prefill: workspace must be 256-byte aligned");
  if (args.tile_rows != 64 && args.tile_rows != 128)
    throw_error("moe_prefill: tile_rows {} (expected 64 or 128)", args.tile_rows);
  const MoeWorkspace ws = moe_workspace(args.workspace, T, H, I, E, k);
  if (args.tile_rows == 128)
    moe_gemms<128>(args, ws, stream);
  else
    moe_gemms<kBM>(args, ws, stream);

  const int64_t n4 = int64_t(T) * (H / 4);
  const int blocks = int(std::min<int64_t>((n4 + 255) / 256, 4096));
  moe_combine_kernel<<<blocks, 256, 0, stream>>>(ws.y, args.x, T, H, k);
  EMBER_CUDA_LAUNCHED();
}

void attention_prefill(const AttentionPrefillArgs& args, cudaStream_t stream) {
  if (args.head_dim != kHeadDim || args.Hq <= 0 || args.Hkv <= 0 || args.Hq % args.Hkv != 0 || args.cap <= 0 ||
      args.T < 0 || args.start_pos < 0 || args.window < 0)
    throw_error("attention_prefill: unsupported shape T={} Hq={} Hkv={} head_dim={} cap={} (head_dim {})", args.T,
                args.Hq, args.Hkv, args.head_dim, args.cap, kHeadDim);
  if (args.T == 0) return;
  const dim3 grid(unsigned(args.Hq), unsigned((args.T + kAttnBQ - 1) / kAttnBQ));
  attention_prefill_kernel<<<grid, kAttnThreads, 0, stream>>>(args);
  EMBER_CUDA_LAUNCHED();
}

}  // namespace ember::backend::cuda::gpt_oss
