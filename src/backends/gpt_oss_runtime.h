#pragma once
// The fused gpt-oss runtime (internal): the whole forward pass of a gpt-oss model on one CUDA
// device as a fixed sequence of fused kernels over preallocated buffers, its decode step captured
// in a CUDA graph (DESIGN.md: execution model). The op-by-op model (models/gpt_oss/model.cpp)
// stays the reference and the CPU path; this runs when the model lives on a CUDA device.
//
// Numerics: the residual stream, norms, softmaxes, the router and every accumulation are f32.
// Decode reads bf16 weights and the bf16 KV cache (keys after RoPE) against f32 activations,
// except the MXFP4 experts': rounded to bf16 and multiplied on tensor cores (held exactly in f16
// after a power-of-two scale, the FP4 codes converted exactly in registers), the rounding prefill
// has too. EMBER_GPT_OSS_EXPERTS=f32 keeps them f32 (the CPU path's arithmetic, slower);
// EMBER_GPT_OSS_EXPERTS=int8 quantises them to int8 per block of 32 (faster, less exact). Prefill multiplies on tensor cores with activations rounded to bf16 (the
// experts token by token, as decode, in chunks under 8).
// Model::set_activation_rounding reproduces each rounding on the CPU path;
// tests/models/gpt_oss_cuda_test.cpp compares the two.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/sampling.h"
#include "ember/core/tensor.h"

namespace ember::backend {

struct GptOssDims {
  int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, experts = 0, experts_per_token = 0,
          intermediate = 0, vocab = 0, sliding_window = 0;
  float eps = 1e-5f, swiglu_limit = 7.0f;
  std::vector<float> inv_freq;  // RoPE (YaRN) [head_dim / 2]
  float concentration = 1.0f;
  std::vector<bool> windowed;   // per layer
};

// Device tensors as the model holds them (any float dtype for norms, biases and sinks; bf16
// contiguous matrices; MXFP4 blocks/scales in the checkpoint layout).
struct GptOssLayerWeights {
  Tensor attn_norm, q_w, q_b, k_w, k_b, v_w, v_b, sinks, out_w, out_b;
  Tensor mlp_norm, gate_w, gate_b, mlp1_blocks, mlp1_scales, mlp1_b, mlp2_blocks, mlp2_scales, mlp2_b;
};
struct GptOssWeights {
  std::vector<GptOssLayerWeights> layers;
  Tensor embedding, norm, unembedding;
};

class GptOssRuntime {
 public:
  virtual ~GptOssRuntime() = default;
  // Runs tokens at positions position().. (prefill in chunks of at most max_chunk, or one decode
  // step) and returns f32 logits on the device: [T, vocab] or [1, vocab] for the last token.
  virtual Tensor forward(std::span<const int32_t> tokens, bool all_logits) = 0;
  // Greedy decoding entirely on the device: feeds `token`, then `count` steps of the captured
  // graph, each feeding the previous step's argmax; returns the `count` tokens. `on_token`, when
  // set, sees each token as soon as it is on the host (the steps then run one at a time) and may
  // stop early by returning false.
  virtual std::vector<int32_t> decode_greedy(int32_t token, int64_t count,
                                             const std::function<bool(int32_t)>& on_token = nullptr) = 0;
  // Sampling on the device (backends/cuda/sampling.h: the host Sampler's processors, ties and
  // draw): picks a token from the last row of `logits` (f32 rows of vocab on this device, as
  // forward returns them), then `count` - 1 times feeds the last pick through the captured graph,
  // which ends with the sampler, and picks the next; returns the `count` tokens. `history`: the
  // tokens the penalties count before the first pick (each pick joins them). The i-th pick draws
  // uniform(params.seed, params.offset + i) unless greedy. `on_token` as decode_greedy's.
  virtual std::vector<int32_t> sample(const Tensor& logits, int64_t count, const SamplingParams& params,
                                      std::span<const int32_t> history,
                                      const std::function<bool(int32_t)>& on_token = nullptr) = 0;
  virtual int64_t position() const = 0;
  // Forgets positions >= position; false (nothing changed) when a windowed layer's ring no longer
  // holds what the window needs from there.
  virtual bool truncate(int64_t position) = 0;
  virtual void reset() = 0;
  virtual size_t device_bytes() const = 0;  // caches and workspace (weights not included)
  virtual const char* experts() const = 0;  // the experts' decode activations: "bf16", "f32" or "int8"
};

// The CUDA runtime for weights on `device`, or nullptr with `why` set when the model or the build
// does not qualify (not CUDA, no CUDA in the build, weights not MXFP4/bf16, head_dim != 64...).
std::unique_ptr<GptOssRuntime> make_gpt_oss_runtime(Device device, const GptOssDims& dims, const GptOssWeights& weights,
                                                    int64_t max_context, int64_t max_chunk, std::string* why);
#ifdef EMBER_HAS_CUDA
std::unique_ptr<GptOssRuntime> make_gpt_oss_cuda_runtime(int device_index, const GptOssDims& dims,
                                                         const GptOssWeights& weights, int64_t max_context,
                                                         int64_t max_chunk, std::string* why);
#endif

}  // namespace ember::backend
