// The gpt-oss forward pass (gpt_oss/torch/model.py) over ember's ops. Activations in f32; weights
// stay as loaded (bf16 views of the mapped checkpoint, MXFP4 experts packed).
#include <cmath>
#include <filesystem>

#include "ember/models/gpt_oss.h"
#include "ember/nn/attention.h"
#include "ember/nn/streaming_attention.h"
#include "ember/ops.h"

namespace ember::models::gpt_oss {

namespace {

// Counts the bytes of the tensors taken so far, for Model::load's progress.
struct LoadProgress {
  explicit LoadProgress(const std::function<void(uint64_t, uint64_t)>& r) : report(r) {}
  const std::function<void(uint64_t, uint64_t)>& report;
  uint64_t done = 0, total = 0;
  void add(uint64_t bytes) {
    done += bytes;
    if (report) report(done, total);
  }
};

Tensor expect(const formats::safetensors::Checkpoint& ckpt, const std::string& name, const Shape& shape,
              Device device, LoadProgress& progress) {
  EMBER_CHECK(ckpt.contains(name), "{}: missing tensor '{}'", ckpt.path(), name);
  Tensor t = ckpt.get(name);
  EMBER_CHECK(t.shape() == shape, "{}: tensor '{}' has shape {}, expected {}", ckpt.path(), name, t.shape().str(),
              shape.str());
  EMBER_CHECK(is_floating(t.dtype()), "{}: tensor '{}' has dtype {}, expected bf16/f16/f32", ckpt.path(), name,
              dtype_name(t.dtype()));
  Tensor out = t.to(device);
  progress.add(ckpt.info(name).nbytes());
  return out;
}

Mxfp4Tensor expect_mxfp4(const formats::safetensors::Checkpoint& ckpt, const std::string& name, int64_t E,
                         int64_t rows, int64_t cols, Device device, LoadProgress& progress) {
  const std::string bn = name + ".blocks", sn = name + ".scales";
  for (const auto& n : {bn, sn}) EMBER_CHECK(ckpt.contains(n), "{}: missing tensor '{}'", ckpt.path(), n);
  Tensor blocks = ckpt.get(bn), scales = ckpt.get(sn);
  EMBER_CHECK(blocks.dtype() == DType::U8 && scales.dtype() == DType::U8, "{}: tensors '{}' and '{}' must be U8",
              ckpt.path(), bn, sn);
  EMBER_CHECK(blocks.shape() == (Shape{E, rows, cols / 32, 16}), "{}: tensor '{}' has shape {}, expected {}",
              ckpt.path(), bn, blocks.shape().str(), (Shape{E, rows, cols / 32, 16}).str());
  EMBER_CHECK(scales.shape() == (Shape{E, rows, cols / 32}), "{}: tensor '{}' has shape {}, expected {}",
              ckpt.path(), sn, scales.shape().str(), (Shape{E, rows, cols / 32}).str());
  Mxfp4Tensor out = Mxfp4Tensor::from_parts(blocks.to(device), scales.to(device), name);
  progress.add(ckpt.info(bn).nbytes() + ckpt.info(sn).nbytes());
  return out;
}

// The clamped SwiGLU of model.py on h [n, 2I] (interleaved: glu = h[:, 0::2], lin = h[:, 1::2]).
Tensor swiglu(const Tensor& h, float limit) {
  const int64_t n = h.dim(0), I = h.dim(1) / 2;
  Tensor hv = h.view({n, I, 2});
  Tensor glu = clamp(hv.select(-1, 0), -INFINITY, limit);
  Tensor lin = clamp(hv.select(-1, 1), -limit, limit);
  Tensor out_glu = mul(glu, sigmoid(mul(glu, 1.702)));
  return mul(out_glu, add(lin, 1.0));
}

}  // namespace

Model::Model(Config config, std::vector<Block> blocks, Tensor embedding, Tensor norm, Tensor unembedding, Device device)
    : config_(std::move(config)), blocks_(std::move(blocks)), embedding_(std::move(embedding)), norm_(std::move(norm)),
      unembedding_(std::move(unembedding)), rope_(config_.rope()), device_(device) {}

Model Model::load(const std::string& dir, Device device, const std::function<void(uint64_t, uint64_t)>& progress) {
  namespace fs = std::filesystem;
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  EMBER_CHECK(fs::exists(cfg_path), "{}: no config.json in the checkpoint directory", dir);
  Config c = Config::from_json_file(cfg_path);
  auto ckpt = formats::safetensors::Checkpoint::open(dir);
  LoadProgress lp(progress);
  for (const auto& name : ckpt.names()) lp.total += ckpt.info(name).nbytes();
  const int64_t H = c.hidden_size, I = c.intermediate_size, E = c.num_experts, V = c.vocab_size;
  const int64_t Q = c.num_attention_heads * c.head_dim, KV = c.num_key_value_heads * c.head_dim;
  std::vector<Block> blocks;
  for (int64_t n = 0; n < c.num_hidden_layers; ++n) {
    const std::string p = "block." + std::to_string(n) + ".";
    Block b;
    b.attn_norm = expect(ckpt, p + "attn.norm.scale", {H}, device, lp);
    b.qkv_weight = expect(ckpt, p + "attn.qkv.weight", {Q + 2 * KV, H}, device, lp);
    b.qkv_bias = expect(ckpt, p + "attn.qkv.bias", {Q + 2 * KV}, device, lp);
    b.sinks = expect(ckpt, p + "attn.sinks", {c.num_attention_heads}, device, lp);
    b.out_weight = expect(ckpt, p + "attn.out.weight", {H, Q}, device, lp);
    b.out_bias = expect(ckpt, p + "attn.out.bias", {H}, device, lp);
    b.mlp_norm = expect(ckpt, p + "mlp.norm.scale", {H}, device, lp);
    b.gate_weight = expect(ckpt, p + "mlp.gate.weight", {E, H}, device, lp);
    b.gate_bias = expect(ckpt, p + "mlp.gate.bias", {E}, device, lp);
    b.mlp1_weight = expect_mxfp4(ckpt, p + "mlp.mlp1_weight", E, 2 * I, H, device, lp);
    b.mlp1_bias = expect(ckpt, p + "mlp.mlp1_bias", {E, 2 * I}, device, lp);
    b.mlp2_weight = expect_mxfp4(ckpt, p + "mlp.mlp2_weight", E, H, I, device, lp);
    b.mlp2_bias = expect(ckpt, p + "mlp.mlp2_bias", {E, H}, device, lp);
    blocks.push_back(std::move(b));
  }
  Tensor embedding = expect(ckpt, "embedding.weight", {V, H}, device, lp);
  Tensor norm = expect(ckpt, "norm.scale", {H}, device, lp);
  Tensor unembedding = expect(ckpt, "unembedding.weight", {V, H}, device, lp);
  if (progress && lp.done != lp.total) progress(lp.total, lp.total);  // tensors the model does not use
  return Model(c, std::move(blocks), std::move(embedding), std::move(norm), std::move(unembedding), device);
}

std::vector<nn::KVCache> Model::make_caches(int64_t max_context, int64_t max_chunk) const {
  std::vector<nn::KVCache> caches;
  for (int64_t n = 0; n < config_.num_hidden_layers; ++n) {
    const int64_t cap = config_.layer_has_window(n) ? std::min(max_context, config_.sliding_window - 1 + max_chunk)
                                                    : max_context;
    caches.emplace_back(1, config_.num_key_value_heads, std::max(cap, max_chunk), config_.head_dim, config_.head_dim,
                        0, DType::F32, device_);
  }
  return caches;
}

Tensor Model::attention(const Block& b, int64_t layer, const Tensor& x, int64_t start_pos, nn::KVCache* cache) const {
  const auto& c = config_;
  const int64_t T = x.dim(0), Hq = c.num_attention_heads, Hkv = c.num_key_value_heads, hd = c.head_dim;
  Tensor t = rms_norm(x, b.attn_norm, 1e-5f);
  Tensor qkv = linear(t, b.qkv_weight, b.qkv_bias);  // [T, (Hq + 2 Hkv) hd]
  Tensor q = qkv.narrow(1, 0, Hq * hd).contiguous().view({T, Hq, hd});
  Tensor k = qkv.narrow(1, Hq * hd, Hkv * hd).contiguous().view({T, Hkv, hd});
  Tensor v = qkv.narrow(1, (Hq + Hkv) * hd, Hkv * hd).contiguous().view({T, Hkv, hd});
  q = rope_.apply(q, start_pos, 0);
  k = rope_.apply(k, start_pos, 0);
  // [T, H, hd] -> [1, H, T, hd] views
  Tensor q4 = q.unsqueeze(0).permute({0, 2, 1, 3}), k4 = k.unsqueeze(0).permute({0, 2, 1, 3}),
         v4 = v.unsqueeze(0).permute({0, 2, 1, 3});
  const int64_t window = c.layer_has_window(layer) ? c.sliding_window : 0;
  Tensor o;
  if (cache) {
    nn::StreamingOptions so;
    so.window = window ? nn::AttnWindow::of(window) : nn::AttnWindow::full();
    so.sinks = b.sinks;
    o = nn::streaming_attention(q4, k4.contiguous(), v4.contiguous(), *cache, start_pos, so);
  } else {
    EMBER_CHECK(start_pos == 0, "gpt-oss forward without caches starts at position 0, got {}", start_pos);
    o = nn::scaled_dot_product_attention(q4, k4, v4,
                                         {.scale = float(1.0 / std::sqrt(double(hd))), .causal = true, .window = window, .sinks = b.sinks});
  }
  Tensor flat = o.permute({0, 2, 1, 3}).reshape({T, Hq * hd});
  return add(x, linear(flat, b.out_weight, b.out_bias));
}

Tensor Model::moe(const Block& b, const Tensor& x) const {
  const auto& c = config_;
  const int64_t T = x.dim(0), k = c.experts_per_token;
  Tensor t = rms_norm(x, b.mlp_norm, 1e-5f);
  Tensor g = linear(t, b.gate_weight, b.gate_bias);  // [T, E]
  auto [values, indices] = topk(g, k);               // sorted, as torch.topk(sorted=True)
  Tensor weights = softmax(values, 1);              // over the selected experts only
  // Group the (token, slot) pairs by expert, run each selected expert once on its rows, then
  // put the rows back in (token, slot) order with one gather.
  const auto idx = indices.to_vector<int64_t>();
  std::vector<std::vector<int64_t>> by_expert(static_cast<size_t>(c.num_experts));
  for (int64_t i = 0; i < T * k; ++i) by_expert[size_t(idx[size_t(i)])].push_back(i);
  std::vector<Tensor> outputs;
  std::vector<int64_t> position(static_cast<size_t>(T * k));
  int64_t row = 0;
  for (int64_t e = 0; e < c.num_experts; ++e) {
    const auto& pairs = by_expert[size_t(e)];
    if (pairs.empty()) continue;
    std::vector<int64_t> tokens;
    for (int64_t p : pairs) tokens.push_back(p / k), position[size_t(p)] = row++;
    Tensor rows = index_select(t, 0, Tensor::from_vector(tokens, {int64_t(tokens.size())}).to(device_));
    Tensor h = mxfp4_linear(rows, b.mlp1_weight.select(e), b.mlp1_bias.select(0, e));
    Tensor y = mxfp4_linear(swiglu(h, float(c.swiglu_limit)), b.mlp2_weight.select(e), b.mlp2_bias.select(0, e));
    outputs.push_back(y);
  }
  Tensor ys = index_select(cat(outputs, 0), 0, Tensor::from_vector(position, {T * k}).to(device_));  // [T k, H]
  Tensor mixed = sum(mul(ys.view({T, k, c.hidden_size}), weights.unsqueeze(-1)), 1);
  return add(x, mixed);
}

Tensor Model::forward(const std::vector<int32_t>& tokens, int64_t start_pos, std::vector<nn::KVCache>* caches,
                      bool last_only) const {
  const auto& c = config_;
  EMBER_CHECK(!tokens.empty(), "gpt-oss forward: no tokens");
  EMBER_CHECK(start_pos + int64_t(tokens.size()) <= c.context_length(),
              "gpt-oss forward: positions up to {} exceed the context length {}", start_pos + int64_t(tokens.size()),
              c.context_length());
  if (caches)
    EMBER_CHECK(int64_t(caches->size()) == c.num_hidden_layers, "gpt-oss forward: {} caches for {} layers",
                caches->size(), c.num_hidden_layers);
  for (int32_t tok : tokens)
    EMBER_CHECK(tok >= 0 && tok < c.vocab_size, "gpt-oss forward: token {} outside the vocabulary of {}", tok,
                c.vocab_size);
  Tensor ids = Tensor::from_vector(tokens, {int64_t(tokens.size())}).to(device_);
  Tensor x = embedding(embedding_, ids).to(DType::F32);  // [T, H]
  for (int64_t n = 0; n < c.num_hidden_layers; ++n) {
    const Block& b = blocks_[size_t(n)];
    x = attention(b, n, x, start_pos, caches ? &(*caches)[size_t(n)] : nullptr);
    x = moe(b, x);
  }
  if (last_only) x = x.narrow(0, x.dim(0) - 1, 1);
  return linear(rms_norm(x, norm_, 1e-5f), unembedding_);
}

std::string resolve_checkpoint_dir(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  EMBER_CHECK(fs::exists(path, ec), "{}: no such file or directory", path);
  EMBER_CHECK(!path.ends_with(".bin"), "{}: model.bin files are not supported yet (the model.bin issue adds them)",
              path);
  EMBER_CHECK(fs::is_directory(path, ec), "{}: expected a checkpoint directory", path);
  if (fs::exists(fs::path(path) / "original" / "config.json", ec)) return (fs::path(path) / "original").string();
  EMBER_CHECK(fs::exists(fs::path(path) / "config.json", ec), "{}: no config.json (nor original/config.json)", path);
  return path;
}

CausalLM::CausalLM(const Model& model, int64_t max_context, int64_t max_chunk)
    : model_(model), max_context_(std::min(max_context, model.config().context_length())), max_chunk_(max_chunk) {
  EMBER_CHECK(max_context_ > 0 && max_chunk_ > 0, "CausalLM: max_context and max_chunk must be positive");
  reset();
}

Tensor CausalLM::forward(std::span<const int32_t> tokens, int64_t start_pos, bool all_logits) {
  return model_.forward(std::vector<int32_t>(tokens.begin(), tokens.end()), start_pos, &caches_, !all_logits);
}

void CausalLM::reset() { caches_ = model_.make_caches(max_context_, max_chunk_); }

}  // namespace ember::models::gpt_oss
