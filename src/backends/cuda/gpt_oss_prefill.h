#pragma once
// Prefill kernels of the fused gpt-oss CUDA runtime (many tokens a step): the grouped MXFP4 MoE and
// flash-style attention with learned sinks, GQA and the sliding window over the bf16 ring cache.
// Plain C++ declarations (bf16 as raw uint16_t bits) so that host code and tests compiled without
// nvcc can call them; pointers are device pointers; everything runs on `stream`, nothing syncs.
#include <cstddef>
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace ember::backend::cuda::gpt_oss {

// x[t] += sum_s weight[t, s] * (W2[e] swiglu(W1[e] a[t] + b1[e]) + b2[e]),  e = idx[t, s]
// for t < T, s < k (gpt_oss/torch/model.py MLPBlock: swiglu with alpha 1.702 and the clamp
// `limit` on both halves as there, glu = even rows of W1, linear = odd rows).
struct MoePrefillArgs {
  int T = 0, H = 0, I = 0, E = 0, k = 0;
  float swiglu_limit = 7.0f;
  const uint16_t* a = nullptr;        // bf16 [T, H]: the MLP's normed input
  const int32_t* idx = nullptr;       // [T, k] expert ids in [0, E)
  const float* weight = nullptr;      // [T, k] softmaxed router weights
  const uint8_t* w1_blocks = nullptr; // [E, 2I, H/32, 16] MXFP4 (checkpoint layout)
  const uint8_t* w1_scales = nullptr; // [E, 2I, H/32]      UE8 (2^(s-127))
  const float* b1 = nullptr;          // [E, 2I]
  const uint8_t* w2_blocks = nullptr; // [E, H, I/32, 16]
  const uint8_t* w2_scales = nullptr; // [E, H, I/32]
  const float* b2 = nullptr;          // [E, H]
  float* x = nullptr;                 // [T, H] f32 residual stream, updated in place
  void* workspace = nullptr;          // moe_prefill_workspace_bytes(...) bytes, 256-byte aligned
  int tile_rows = 64;                 // (token, slot) rows a GEMM tile: 64 or 128
};
size_t moe_prefill_workspace_bytes(int T, int H, int I, int E, int k);
void moe_prefill(const MoePrefillArgs& args, cudaStream_t stream);

// out[i, h] = softmax-weighted sum of V over the keys query i may see, with head h's learned sink
// logit in the softmax denominator only (model.py sdpa): query i sits at position start_pos + i
// and sees positions max(0, p - window + 1) .. p (window > 0) or 0 .. p (window == 0). Keys and
// values of position p live at slot p % cap of the ring cache, already RoPE'd; all of them are
// present. Query head h reads KV head h / (Hq / Hkv).
struct AttentionPrefillArgs {
  int T = 0, Hq = 0, Hkv = 0, head_dim = 64;
  int64_t start_pos = 0;
  int window = 0;
  int64_t cap = 0;                  // ring slots
  float scale = 0.125f;             // 1/sqrt(head_dim)
  const uint16_t* q = nullptr;      // bf16 [T, Hq, head_dim], RoPE'd
  const uint16_t* k_cache = nullptr;  // bf16 [Hkv, cap, head_dim]
  const uint16_t* v_cache = nullptr;  // bf16 [Hkv, cap, head_dim]
  const float* sinks = nullptr;     // [Hq]
  uint16_t* out = nullptr;          // bf16 [T, Hq * head_dim]
};
void attention_prefill(const AttentionPrefillArgs& args, cudaStream_t stream);

}  // namespace ember::backend::cuda::gpt_oss
