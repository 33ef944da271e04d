// gpt-oss weight mapping: checkpoint tensor names and shapes -> Model. Two layouts:
//   original (gpt_oss/torch/weights.py):  block.N.attn.qkv.weight, block.N.mlp.mlp1_weight.blocks ...
//   Hugging Face (transformers' modeling_gpt_oss.py, convert_gpt_oss_weights_to_hf.py):
//     model.layers.N.self_attn.{q,k,v,o}_proj, mlp.router, mlp.experts.gate_up_proj_blocks ... or,
//     dequantized, mlp.experts.gate_up_proj [E, H, 2I] and down_proj [E, I, H].
// HF's MXFP4 tensors are the original's bytes under new names (same [E, out, in/32, 16] layout,
// gate/up rows interleaved as mlp1's glu/linear rows); its dequantized experts are those values
// transposed to [E, in, out] (integrations/mxfp4.py: convert_moe_packed_tensors(...).transpose(1, 2)).
#include <filesystem>
#include <functional>

#include "ember/formats/modelbin.h"
#include "ember/models/gpt_oss.h"
#include "ember/ops.h"

namespace ember::models::gpt_oss {

namespace {

using formats::safetensors::Checkpoint;

// Fetches tensors by name, checking presence, shape and dtype; every error names the tensor.
class Loader {
 public:
  Loader(const Checkpoint& ckpt, Device device, const std::function<void(uint64_t, uint64_t)>& progress)
      : ckpt_(ckpt), device_(device), progress_(progress) {
    for (const auto& name : ckpt.names()) total_ += ckpt.info(name).nbytes();
  }
  // Called at the end: tensors the model does not use count as done.
  void finish() const {
    if (progress_ && done_ != total_) progress_(total_, total_);
  }

  bool has(const std::string& name) const { return ckpt_.contains(name); }

  // A float tensor (bf16, f16 or f32) of exactly `shape`.
  Tensor dense(const std::string& name, const Shape& shape) const {
    Tensor t = fetch(name, shape);
    EMBER_CHECK(is_floating(t.dtype()), "{}: tensor '{}' has dtype {}, expected bf16, f16 or f32", where(name), name,
                dtype_name(t.dtype()));
    Tensor out = t.to(device_);
    advance(name);
    return out;
  }

  // Packed MXFP4 of logical shape [E, rows, cols]: blocks [E, rows, cols/32, 16], scales [E, rows, cols/32].
  Mxfp4Tensor mxfp4(const std::string& blocks_name, const std::string& scales_name, int64_t E, int64_t rows,
                    int64_t cols) const {
    Tensor blocks = fetch(blocks_name, {E, rows, cols / kMxfp4BlockSize, 16});
    Tensor scales = fetch(scales_name, {E, rows, cols / kMxfp4BlockSize});
    for (const auto& [n, t] : {std::pair{blocks_name, blocks}, std::pair{scales_name, scales}})
      EMBER_CHECK(t.dtype() == DType::U8, "{}: tensor '{}' has dtype {}, expected U8 (MXFP4)", where(n), n,
                  dtype_name(t.dtype()));
    Mxfp4Tensor out = Mxfp4Tensor::from_parts(blocks.to(device_), scales.to(device_), blocks_name);
    advance(blocks_name);
    advance(scales_name);
    return out;
  }

  // HF experts `base` (e.g. model.layers.0.mlp.experts.gate_up_proj) of logical [E, out, in]:
  // base_blocks/base_scales when present, else the dequantized base [E, in, out].
  ExpertWeights hf_experts(const std::string& base, int64_t E, int64_t out, int64_t in) const {
    if (has(base + "_blocks") || has(base + "_scales"))
      return {mxfp4(base + "_blocks", base + "_scales", E, out, in)};
    EMBER_CHECK(has(base), "{}: missing tensor '{}_blocks' (MXFP4 experts) or '{}' (dequantized experts)",
                ckpt_.path(), base, base);
    return {dense(base, {E, in, out})};
  }

 private:
  void advance(const std::string& name) const {
    done_ += ckpt_.info(name).nbytes();
    if (progress_) progress_(done_, total_);
  }
  Tensor fetch(const std::string& name, const Shape& shape) const {
    EMBER_CHECK(has(name), "{}: missing tensor '{}'", ckpt_.path(), name);
    Tensor t = ckpt_.get(name);
    EMBER_CHECK(t.shape() == shape, "{}: tensor '{}' has shape {}, expected {}", where(name), name, t.shape().str(),
                shape.str());
    return t;
  }
  std::string where(const std::string& name) const { return ckpt_.file_of(name).path(); }

  const Checkpoint& ckpt_;
  Device device_;
  const std::function<void(uint64_t, uint64_t)>& progress_;
  uint64_t total_ = 0;
  mutable uint64_t done_ = 0;
};

struct Dims {
  int64_t H, I, E, V, Q, KV, heads;
  explicit Dims(const Config& c)
      : H(c.hidden_size), I(c.intermediate_size), E(c.num_experts), V(c.vocab_size),
        Q(c.num_attention_heads * c.head_dim), KV(c.num_key_value_heads * c.head_dim), heads(c.num_attention_heads) {}
};

Block load_original_block(const Loader& L, const Dims& d, int64_t n) {
  const std::string p = "block." + std::to_string(n) + ".";
  Block b;
  b.attn_norm = L.dense(p + "attn.norm.scale", {d.H});
  // qkv rows: q heads, then k heads, then v heads; row views, no copies.
  const Tensor qkv_w = L.dense(p + "attn.qkv.weight", {d.Q + 2 * d.KV, d.H});
  const Tensor qkv_b = L.dense(p + "attn.qkv.bias", {d.Q + 2 * d.KV});
  b.q_weight = qkv_w.narrow(0, 0, d.Q), b.q_bias = qkv_b.narrow(0, 0, d.Q);
  b.k_weight = qkv_w.narrow(0, d.Q, d.KV), b.k_bias = qkv_b.narrow(0, d.Q, d.KV);
  b.v_weight = qkv_w.narrow(0, d.Q + d.KV, d.KV), b.v_bias = qkv_b.narrow(0, d.Q + d.KV, d.KV);
  b.sinks = L.dense(p + "attn.sinks", {d.heads});
  b.out_weight = L.dense(p + "attn.out.weight", {d.H, d.Q});
  b.out_bias = L.dense(p + "attn.out.bias", {d.H});
  b.mlp_norm = L.dense(p + "mlp.norm.scale", {d.H});
  b.gate_weight = L.dense(p + "mlp.gate.weight", {d.E, d.H});
  b.gate_bias = L.dense(p + "mlp.gate.bias", {d.E});
  b.mlp1_weight = {L.mxfp4(p + "mlp.mlp1_weight.blocks", p + "mlp.mlp1_weight.scales", d.E, 2 * d.I, d.H)};
  b.mlp1_bias = L.dense(p + "mlp.mlp1_bias", {d.E, 2 * d.I});
  b.mlp2_weight = {L.mxfp4(p + "mlp.mlp2_weight.blocks", p + "mlp.mlp2_weight.scales", d.E, d.H, d.I)};
  b.mlp2_bias = L.dense(p + "mlp.mlp2_bias", {d.E, d.H});
  return b;
}

Block load_hf_block(const Loader& L, const Dims& d, int64_t n) {
  const std::string p = "model.layers." + std::to_string(n) + ".", a = p + "self_attn.", e = p + "mlp.experts.";
  Block b;
  b.attn_norm = L.dense(p + "input_layernorm.weight", {d.H});
  b.q_weight = L.dense(a + "q_proj.weight", {d.Q, d.H}), b.q_bias = L.dense(a + "q_proj.bias", {d.Q});
  b.k_weight = L.dense(a + "k_proj.weight", {d.KV, d.H}), b.k_bias = L.dense(a + "k_proj.bias", {d.KV});
  b.v_weight = L.dense(a + "v_proj.weight", {d.KV, d.H}), b.v_bias = L.dense(a + "v_proj.bias", {d.KV});
  b.sinks = L.dense(a + "sinks", {d.heads});
  b.out_weight = L.dense(a + "o_proj.weight", {d.H, d.Q});
  b.out_bias = L.dense(a + "o_proj.bias", {d.H});
  b.mlp_norm = L.dense(p + "post_attention_layernorm.weight", {d.H});
  b.gate_weight = L.dense(p + "mlp.router.weight", {d.E, d.H});
  b.gate_bias = L.dense(p + "mlp.router.bias", {d.E});
  b.mlp1_weight = L.hf_experts(e + "gate_up_proj", d.E, 2 * d.I, d.H);  // gate = [..., ::2], up = [..., 1::2]
  b.mlp1_bias = L.dense(e + "gate_up_proj_bias", {d.E, 2 * d.I});
  b.mlp2_weight = L.hf_experts(e + "down_proj", d.E, d.H, d.I);
  b.mlp2_bias = L.dense(e + "down_proj_bias", {d.E, d.H});
  return b;
}

}  // namespace

Tensor ExpertWeights::linear(const Tensor& x, int64_t e, const Tensor& bias) const {
  if (const auto* q = std::get_if<Mxfp4Tensor>(&w)) return mxfp4_linear(x, q->select(e), bias);
  return add(matmul(x, std::get<Tensor>(w).select(0, e)), bias);  // x [n, in] @ W[e] [in, out]
}

CheckpointLayout Model::detect_layout(const Checkpoint& ckpt) {
  if (ckpt.contains("embedding.weight") || ckpt.contains("block.0.attn.norm.scale")) return CheckpointLayout::Original;
  if (ckpt.contains("model.embed_tokens.weight") || ckpt.contains("model.layers.0.input_layernorm.weight"))
    return CheckpointLayout::HuggingFace;
  throw_error("{}: neither the original gpt-oss layout ('embedding.weight', 'block.N....') nor the Hugging Face one "
              "('model.embed_tokens.weight', 'model.layers.N....')",
              ckpt.path());
}

Model Model::load(const std::string& dir, Device device, const std::function<void(uint64_t, uint64_t)>& progress) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(dir, ec) && formats::modelbin::File::has_magic(dir)) return load_modelbin(dir, device);
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  EMBER_CHECK(fs::exists(cfg_path), "{}: no config.json in the checkpoint directory", dir);
  Config c = Config::from_json_file(cfg_path);
  auto ckpt = Checkpoint::open(dir);
  const Loader L(ckpt, device, progress);
  const Dims d(c);
  const bool hf = detect_layout(ckpt) == CheckpointLayout::HuggingFace;
  std::vector<Block> blocks;
  for (int64_t n = 0; n < c.num_hidden_layers; ++n)
    blocks.push_back(hf ? load_hf_block(L, d, n) : load_original_block(L, d, n));
  Tensor embedding = L.dense(hf ? "model.embed_tokens.weight" : "embedding.weight", {d.V, d.H});
  Tensor norm = L.dense(hf ? "model.norm.weight" : "norm.scale", {d.H});
  Tensor unembedding = L.dense(hf ? "lm_head.weight" : "unembedding.weight", {d.V, d.H});
  L.finish();
  return Model(c, std::move(blocks), embedding, norm, unembedding, device);
}

}  // namespace ember::models::gpt_oss
