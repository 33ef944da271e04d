#pragma once
// gpt-oss (spec/gpt-oss.md): configuration, weights in the original checkpoint layout or the
// Hugging Face one, and the forward pass built from ember's blocks, mirroring
// gpt_oss/torch/model.py.
#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ember/core/process.h"
#include "ember/core/mxfp4.h"
#include "ember/formats/safetensors.h"
#include "ember/generate/runner.h"
#include "ember/nn/kv_cache.h"
#include "ember/nn/rope.h"

namespace ember::formats::modelbin {
struct ModelHeader;
}
namespace ember::backend {
class GptOssRuntime;
}

namespace ember::models::gpt_oss {

struct Config {
  int64_t num_hidden_layers = 36;
  int64_t num_experts = 128;
  int64_t experts_per_token = 4;
  int64_t vocab_size = 201088;
  int64_t hidden_size = 2880;
  int64_t intermediate_size = 2880;
  double swiglu_limit = 7.0;
  int64_t head_dim = 64;
  int64_t num_attention_heads = 64;
  int64_t num_key_value_heads = 8;
  int64_t sliding_window = 128;
  int64_t initial_context_length = 4096;
  double rope_theta = 150000.0;
  double rope_scaling_factor = 32.0;
  double rope_ntk_alpha = 1.0;
  double rope_ntk_beta = 32.0;
  double rms_norm_eps = 1e-5;  // model.py hard-codes it; transformers reads rms_norm_eps

  int64_t context_length() const { return int64_t(double(initial_context_length) * std::max(1.0, rope_scaling_factor)); }
  bool layer_has_window(int64_t layer) const { return layer % 2 == 0; }  // model.py: layer_idx % 2 == 0
  nn::RopeConfig rope() const;
  // Throws naming the field when sizes are inconsistent (heads not dividing, MXFP4 blocks...).
  void validate(const std::string& where = "config") const;
  // The original config.json (gpt-oss field names) or the Hugging Face one (transformers names).
  static Config from_json_file(const std::string& path);
  static Config from_json_text(const std::string& text, const std::string& where);
};

// One projection of every expert (mlp1 = HF gate_up_proj, mlp2 = HF down_proj). Either packed
// MXFP4 of logical shape [E, out, in] (original layout, and HF's *_blocks/*_scales, which are the
// same bytes), or a dense float tensor [E, in, out] (HF's dequantized gate_up_proj/down_proj, used
// as x @ W[e]). Both stay as loaded: mapped, never expanded.
struct ExpertWeights {
  std::variant<Mxfp4Tensor, Tensor> w;
  // x [n, in] -> x W[e]^T + bias [out], f32 [n, out].
  Tensor linear(const Tensor& x, int64_t e, const Tensor& bias) const;
};

// q/k/v are views of the original's fused qkv (rows: q heads, k heads, v heads) or HF's q/k/v_proj.
struct Block {
  Tensor attn_norm, q_weight, q_bias, k_weight, k_bias, v_weight, v_bias, sinks, out_weight, out_bias;
  Tensor mlp_norm, gate_weight, gate_bias, mlp1_bias, mlp2_bias;
  ExpertWeights mlp1_weight, mlp2_weight;  // [E, 2I, H] (interleaved glu/linear rows), [E, H, I]
};

enum class CheckpointLayout { Original, HuggingFace };

class Model {
 public:
  // A checkpoint directory with config.json and *.safetensors (sharded or not) in the original
  // layout (block.N.attn.qkv...) or the Hugging Face one (model.layers.N.self_attn.q_proj...,
  // experts MXFP4 or dequantized), told apart by the tensor names. Errors name the tensor.
  // A model.bin file (OpenAI's Metal format, formats/modelbin.h) is accepted too. On the CPU the
  // weights stay views of the mapped files (nothing is read until used); `progress(bytes_done,
  // bytes_total)` follows the tensors as they are mapped or copied to the device.
  static Model load(const std::string& dir, Device device = Device::cpu(),
                    const std::function<void(uint64_t, uint64_t)>& progress = nullptr);
  // From a model.bin: vocabulary 200014 (its embedding rows), q/k rows restored to the
  // checkpoint's half-split order and scale, MXFP4 scales without the +14 offset.
  static Model load_modelbin(const std::string& path, Device device = Device::cpu());
  static CheckpointLayout detect_layout(const formats::safetensors::Checkpoint& ckpt);
  Model(Config config, std::vector<Block> blocks, Tensor embedding, Tensor norm, Tensor unembedding, Device device);
  const Config& config() const { return config_; }
  Device device() const { return device_; }
  const std::vector<Block>& blocks() const { return blocks_; }
  const Tensor& embedding() const { return embedding_; }
  const Tensor& norm() const { return norm_; }
  const Tensor& unembedding() const { return unembedding_; }

  // Where the op-by-op forward pass rounds activations, to reproduce the fused CUDA runtime's
  // numerics on any device (tests); all off by default: f32 throughout, the reference. The
  // runtime's prefill rounds to bf16 at every point but `kv`'s; its decode step rounds K/V and
  // the experts' activations (`mlp`) to bf16. With EMBER_GPT_OSS_EXPERTS=f32 the experts' stay
  // f32 (no `mlp`) in decode and in prefill chunks under 8 tokens, which run them like decode;
  // with EMBER_GPT_OSS_EXPERTS=int8 `expert_int8` replaces `mlp` there.
  struct ActivationRounding {
    bool attention_input = false;    // bf16: the normed input of the q/k/v projections
    bool qkv = false;                // bf16: q, and k/v as cached (after RoPE)
    bool kv = false;                 // bf16: k/v only (the cache)
    bool attention_output = false;   // bf16: the input of the output projection
    bool mlp = false;                // bf16: the experts' normed input and their SwiGLU output
    bool expert_int8 = false;        // int8 per block of 32, scale max|a|/127: the same two
    bool unembedding_input = false;  // bf16: the final normed activations
  };
  void set_activation_rounding(const ActivationRounding& r) { rounding_ = r; }

  // Per-layer caches for incremental decoding (windowed layers keep window - 1 + max_chunk).
  std::vector<nn::KVCache> make_caches(int64_t max_context, int64_t max_chunk) const;
  // Logits [T, V] (f32) for tokens at positions start_pos..; with caches the tokens continue
  // the cached sequence; without, they are the whole sequence (start_pos must be 0).
  Tensor forward(const std::vector<int32_t>& tokens, int64_t start_pos = 0,
                 std::vector<nn::KVCache>* caches = nullptr, bool last_only = false) const;

 private:
  Tensor attention(const Block& b, int64_t layer, const Tensor& x, int64_t start_pos, nn::KVCache* cache) const;
  Tensor moe(const Block& b, const Tensor& x) const;
  Config config_;
  std::vector<Block> blocks_;
  Tensor embedding_, norm_, unembedding_;
  nn::Rope rope_;
  Device device_;
  ActivationRounding rounding_;
};

// Synthetic checkpoints in the original layout (config.json + model.safetensors) with seeded
// random values: bf16 weights ~ N(0, sigma), MXFP4 experts with random codes and scales near 2^-4.
// Streamed tensor by tensor in 1 MiB pieces (constant memory, any size), written atomically.
// `progress(bytes_done, bytes_total)` is called as it goes.
Config preset(const std::string& name);  // "tiny", "20b", "120b"
void write_fixture(const Config& config, const std::string& dir, uint64_t seed,
                   const std::function<void(uint64_t, uint64_t)>& progress = nullptr);

// The configuration a model.bin header describes (YaRN's config values recovered from its derived
// terms: the simplest values that reproduce the stored f32s exactly).
Config config_from_modelbin(const formats::modelbin::ModelHeader& header, uint32_t vocabulary_size);

// Resolves --model: a checkpoint directory (either layout), a model.bin file, or a Hugging Face
// download whose original/ holds the original layout (preferred when present). Throws naming the
// path otherwise.
std::string resolve_checkpoint_dir(const std::string& path);

// How CausalLM runs a model that lives on a CUDA device.
enum class Engine {
  Auto,   // the fused runtime when the weights qualify (MXFP4 experts, bf16 matrices), else ops
  Fused,  // the fused runtime or an error saying why not
  Ops,    // op by op (model.cpp), as on the CPU
};

// `ember bench`: load a checkpoint, prefill `prompt_tokens` seeded random token ids in one forward
// pass, then `decode_tokens` greedy steps of one token each with the KV cache (CausalLM: the fused
// runtime on CUDA). Every phase ends with its result on the host, so device work is included.
// With `prefill_lengths` / `decode_contexts` it also measures a matrix: prefill tokens/s of a
// fresh prompt of each length, and decode tokens/s of `decode_tokens` steps starting at each
// context length (the context filled first, untimed).
struct BenchOptions {
  int64_t prompt_tokens = 128;
  int64_t decode_tokens = 32;
  uint64_t seed = 0;  // the prompt's ids: philox4x32(seed, i)[0] % vocab_size
  Device device = Device::cpu();
  Engine engine = Engine::Auto;
  std::vector<int64_t> prefill_lengths;
  std::vector<int64_t> decode_contexts;
  int64_t max_chunk = 8192;  // prefill chunk (the matrix's context fill, long prompts)
  // Decode steps sample with this (CausalLM::sample: on the fused runtime on the device, seeded
  // by `seed`) instead of taking the argmax; the first token stays the prefill's argmax.
  std::optional<generate::SamplingConfig> sampling;
  // phase "load" (bytes done, total), "prefill" (0 or 1 of 1 passes), "decode" (steps done, total),
  // "matrix" (points done, total).
  std::function<void(const char* phase, uint64_t done, uint64_t total)> progress;
};

struct BenchPoint {
  int64_t tokens = 0;     // prefill: prompt length; decode: steps
  int64_t context = 0;    // decode: the position of the first step
  double seconds = 0;
  double bytes_per_token = 0;  // decode: weights and KV cache a step reads (decode_bytes_per_token)
  double tokens_per_second() const { return double(tokens) / std::max(seconds, 1e-12); }
};

// Bytes one decode step at `context` must read at least: attention, router and unembedding
// weights (bf16), the selected experts (MXFP4: 17 bytes per 32 weights), and the visible K/V
// (bf16 on the fused runtime: `kv_bytes` = 2; f32 on the ops path: 4).
double decode_bytes_per_token(const Config& c, int64_t context, int kv_bytes = 2);

struct BenchResult {
  Config config;
  bool fused = false;                // the fused CUDA runtime ran it
  int64_t prompt_tokens = 0, decode_tokens = 0;
  double load_seconds = 0;
  double prefill_seconds = 0;        // the prompt's forward pass, its logits read back
  double time_to_first_token = 0;    // from the start of the prefill to the first token's id
  double decode_seconds = 0;         // all decode steps
  // CPU seconds of all threads in the prefill and decode phases: cpu / wall below the thread
  // count means the cores were shared (or waited on the device or the disk).
  double prefill_cpu_seconds = 0, decode_cpu_seconds = 0;
  std::vector<int32_t> prompt;       // the synthetic prompt
  std::vector<int32_t> generated;    // the first token (from the prefill), then one per decode step
  std::vector<BenchPoint> prefill_points, decode_points;
  ProcessMemory memory;              // read after the run; peak_resident covers loading too
  DeviceMemory device_memory;        // CUDA: read after the run (peak_allocated covers everything)
  size_t runtime_device_bytes = 0;   // fused runtime: KV cache + workspace of the main run
  std::string experts;               // fused runtime: the experts' decode activations (bf16/f32/int8)
  double prefill_tokens_per_second() const { return double(prompt_tokens) / std::max(prefill_seconds, 1e-12); }
  double decode_tokens_per_second() const { return double(decode_tokens) / std::max(decode_seconds, 1e-12); }
};

BenchResult bench(const std::string& dir, const BenchOptions& options);

// The model with its own per-layer caches, for generate::run. On a CUDA device it runs the fused
// runtime (src/backends/gpt_oss_runtime.h: bf16 KV cache, decode captured in a CUDA graph) unless
// told otherwise; on the CPU, the op-by-op forward pass.
class CausalLM : public generate::CausalModel {
 public:
  CausalLM(const Model& model, int64_t max_context, int64_t max_chunk, Engine engine = Engine::Auto);
  ~CausalLM() override;
  CausalLM(CausalLM&&) noexcept;
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t max_context() const override { return max_context_; }
  // start_pos must be position() or earlier (then it rewinds first; an error when it cannot).
  Tensor forward(std::span<const int32_t> tokens, int64_t start_pos, bool all_logits) override;
  void reset() override;
  // Forgets positions >= `position` so that decoding continues from there (a chat turn that
  // re-renders the end of the conversation). False, with the caches untouched, when a windowed
  // layer's ring has already overwritten positions the window still needs: then reset().
  bool rewind(int64_t position);
  int64_t position() const;  // the next position to feed
  // Greedy decoding: feeds `token` at position(), then returns `count` argmax tokens, each fed in
  // turn. With the fused runtime the steps replay a CUDA graph and the argmax stays on the device;
  // `on_token` (optional) sees each token as it arrives and may stop early by returning false.
  std::vector<int32_t> decode_greedy(int32_t token, int64_t count,
                                     const std::function<bool(int32_t)>& on_token = nullptr);
  // generate::CausalModel's: the same from `start_pos` (rewinding first if it is earlier).
  std::vector<int32_t> decode_greedy(int32_t token, int64_t start_pos, int64_t count,
                                     const std::function<bool(int32_t)>& on_token) override;
  // Sampling (generate::CausalModel::sample's contract) from position(). With the fused runtime the
  // processors and the draw run on the device (the same tokens as the host Sampler for the same
  // generator state, backends/cuda/sampling.h says when they could differ) and each step replays
  // a CUDA graph that ends with the sampler: no logits reach the host.
  std::vector<int32_t> sample(const Tensor& logits, int64_t count, const generate::SamplingConfig& sampling,
                              Generator& generator, std::span<const int32_t> history,
                              const std::function<bool(int32_t)>& on_token = nullptr);
  std::vector<int32_t> sample(const Tensor& logits, int64_t start_pos, int64_t count,
                              const generate::SamplingConfig& sampling, Generator& generator,
                              std::span<const int32_t> history,
                              const std::function<bool(int32_t)>& on_token) override;
  bool fused() const { return runtime_ != nullptr; }
  size_t device_bytes() const;  // fused runtime: KV cache and workspace on the device
  // Fused runtime: the experts' decode activations ("bf16", "f32", "int8"; EMBER_GPT_OSS_EXPERTS);
  // empty on the op path.
  std::string fused_experts() const;

 private:
  void seek(int64_t start_pos);  // rewinds to start_pos if earlier; throws unless it is then position()
  const Model& model_;
  int64_t max_context_, max_chunk_;
  std::vector<nn::KVCache> caches_;
  std::unique_ptr<backend::GptOssRuntime> runtime_;
};

}  // namespace ember::models::gpt_oss
