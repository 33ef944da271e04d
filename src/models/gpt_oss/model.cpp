// The gpt-oss forward pass (gpt_oss/torch/model.py) over ember's ops. Activations in f32; weights
// stay as loaded (bf16 views of the mapped checkpoint, MXFP4 experts packed; weights.cpp maps them).
#include <cmath>
#include <filesystem>

#include "backends/gpt_oss_runtime.h"
#include "ember/formats/modelbin.h"
#include "ember/models/gpt_oss.h"
#include "ember/nn/attention.h"
#include "ember/nn/streaming_attention.h"
#include "ember/ops.h"
#include "generate/sampling_params.h"

namespace ember::models::gpt_oss {

namespace {

Tensor round_bf16(const Tensor& x, bool on) { return on ? x.to(DType::BF16).to(DType::F32) : x; }

// The CUDA runtime's int8 activations: per block of 32 along the last dim, q = round(a / s) with
// s = max|a| / 127 (nearest even), dequantised back to f32.
Tensor round_int8(const Tensor& x, bool on) {
  if (!on) return x;
  auto v = x.to(Device::cpu()).contiguous().to_vector<float>();
  for (size_t b = 0; b + 32 <= v.size(); b += 32) {
    float amax = 0;
    for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[b + i]));
    const float s = amax / 127.0f;
    for (size_t i = 0; i < 32; ++i) v[b + i] = s > 0 ? std::nearbyint(v[b + i] / s) * s : 0.0f;
  }
  return Tensor::from_vector(v, x.shape()).to(x.device());
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
  const Tensor t = round_bf16(rms_norm(x, b.attn_norm, float(c.rms_norm_eps)), rounding_.attention_input);
  Tensor q = linear(t, b.q_weight, b.q_bias).view({T, Hq, hd});  // model.py: the q rows of qkv
  Tensor k = linear(t, b.k_weight, b.k_bias).view({T, Hkv, hd});
  Tensor v = linear(t, b.v_weight, b.v_bias).view({T, Hkv, hd});
  q = round_bf16(rope_.apply(q, start_pos, 0), rounding_.qkv);
  k = round_bf16(rope_.apply(k, start_pos, 0), rounding_.qkv || rounding_.kv);
  v = round_bf16(v, rounding_.qkv || rounding_.kv);
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
  Tensor flat = round_bf16(o.permute({0, 2, 1, 3}).reshape({T, Hq * hd}), rounding_.attention_output);
  return add(x, linear(flat, b.out_weight, b.out_bias));
}

Tensor Model::moe(const Block& b, const Tensor& x) const {
  const auto& c = config_;
  const int64_t T = x.dim(0), k = c.experts_per_token;
  Tensor t = rms_norm(x, b.mlp_norm, float(c.rms_norm_eps));
  Tensor g = linear(t, b.gate_weight, b.gate_bias);  // [T, E]
  auto [values, indices] = topk(g, k);               // sorted, as torch.topk(sorted=True)
  Tensor weights = softmax(values, 1);              // over the selected experts only
  const auto* w1 = std::get_if<Mxfp4Tensor>(&b.mlp1_weight.w);
  const auto* w2 = std::get_if<Mxfp4Tensor>(&b.mlp2_weight.w);
  if (device_.is_cuda() && w1 && w2 && T <= 64 && !rounding_.mlp && !rounding_.expert_int8)  // decode, short chunks: fused, no host round trip
    return add(x, moe_mxfp4(t, indices, weights, *w1, b.mlp1_bias, *w2, b.mlp2_bias, float(c.swiglu_limit)));
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
    Tensor rows = index_select(round_int8(round_bf16(t, rounding_.mlp), rounding_.expert_int8), 0,
                               Tensor::from_vector(tokens, {int64_t(tokens.size())}).to(device_));
    Tensor h = b.mlp1_weight.linear(rows, e, b.mlp1_bias.select(0, e));  // [n, 2I]
    Tensor y = b.mlp2_weight.linear(round_int8(round_bf16(swiglu(h, float(c.swiglu_limit)), rounding_.mlp), rounding_.expert_int8), e,
                                    b.mlp2_bias.select(0, e));
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
  Tensor x = ember::embedding(embedding_, ids).to(DType::F32);  // [T, H]
  for (int64_t n = 0; n < c.num_hidden_layers; ++n) {
    const Block& b = blocks_[size_t(n)];
    x = attention(b, n, x, start_pos, caches ? &(*caches)[size_t(n)] : nullptr);
    x = moe(b, x);
  }
  if (last_only) x = x.narrow(0, x.dim(0) - 1, 1);
  return linear(round_bf16(rms_norm(x, norm_, float(c.rms_norm_eps)), rounding_.unembedding_input), unembedding_);
}

std::string resolve_checkpoint_dir(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  EMBER_CHECK(fs::exists(path, ec), "{}: no such file or directory", path);
  if (fs::is_regular_file(path, ec)) {
    EMBER_CHECK(formats::modelbin::File::has_magic(path),
                "{}: not a model.bin (no 'GPT-OSS v1.0' magic); expected a checkpoint directory or a model.bin", path);
    return path;
  }
  EMBER_CHECK(fs::is_directory(path, ec), "{}: expected a checkpoint directory or a model.bin file", path);
  if (fs::exists(fs::path(path) / "original" / "config.json", ec)) return (fs::path(path) / "original").string();
  EMBER_CHECK(fs::exists(fs::path(path) / "config.json", ec), "{}: no config.json (nor original/config.json)", path);
  return path;
}

namespace {

// The fused runtime's view of the model, or nullptr with `why` when it does not qualify.
std::unique_ptr<backend::GptOssRuntime> make_runtime(const Model& model, int64_t max_context, int64_t max_chunk,
                                                     std::string* why) {
  const Config& c = model.config();
  backend::GptOssDims d;
  d.layers = c.num_hidden_layers, d.hidden = c.hidden_size, d.heads = c.num_attention_heads;
  d.kv_heads = c.num_key_value_heads, d.head_dim = c.head_dim, d.experts = c.num_experts;
  d.experts_per_token = c.experts_per_token, d.intermediate = c.intermediate_size, d.vocab = c.vocab_size;
  d.sliding_window = c.sliding_window;
  d.eps = float(c.rms_norm_eps), d.swiglu_limit = float(c.swiglu_limit);
  const nn::RopeFrequencies f = nn::rope_frequencies(c.rope());
  d.inv_freq = f.inv_freq, d.concentration = f.concentration;
  backend::GptOssWeights w;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    d.windowed.push_back(c.layer_has_window(l));
    const Block& b = model.blocks()[size_t(l)];
    const auto* w1 = std::get_if<Mxfp4Tensor>(&b.mlp1_weight.w);
    const auto* w2 = std::get_if<Mxfp4Tensor>(&b.mlp2_weight.w);
    if (!w1 || !w2) {
      if (why) *why = "the experts are dense (Hugging Face bf16 layout), not MXFP4";
      return nullptr;
    }
    w.layers.push_back({b.attn_norm, b.q_weight, b.q_bias, b.k_weight, b.k_bias, b.v_weight, b.v_bias, b.sinks,
                        b.out_weight, b.out_bias, b.mlp_norm, b.gate_weight, b.gate_bias, w1->blocks, w1->scales,
                        b.mlp1_bias, w2->blocks, w2->scales, b.mlp2_bias});
  }
  w.embedding = model.embedding(), w.norm = model.norm(), w.unembedding = model.unembedding();
  return backend::make_gpt_oss_runtime(model.device(), d, w, max_context, max_chunk, why);
}

}  // namespace

CausalLM::CausalLM(const Model& model, int64_t max_context, int64_t max_chunk, Engine engine)
    : model_(model), max_context_(std::min(max_context, model.config().context_length())), max_chunk_(max_chunk) {
  EMBER_CHECK(max_context_ > 0 && max_chunk_ > 0, "CausalLM: max_context and max_chunk must be positive");
  if (engine != Engine::Ops) {
    std::string why = "the model is on the CPU";
    if (model.device().is_cuda()) runtime_ = make_runtime(model, max_context_, max_chunk_, &why);
    EMBER_CHECK(runtime_ || engine != Engine::Fused, "gpt-oss: the fused CUDA runtime cannot run this model: {}", why);
  }
  reset();
}

CausalLM::~CausalLM() = default;
CausalLM::CausalLM(CausalLM&&) noexcept = default;

void CausalLM::seek(int64_t start_pos) {
  if (start_pos < position())
    EMBER_CHECK(rewind(start_pos), "gpt-oss: cannot go back from position {} to {}: the sliding window has moved on",
                position(), start_pos);
  EMBER_CHECK(start_pos == position(), "gpt-oss: input at position {} but the cache holds {} positions", start_pos,
              position());
}

Tensor CausalLM::forward(std::span<const int32_t> tokens, int64_t start_pos, bool all_logits) {
  seek(start_pos);
  if (runtime_) return runtime_->forward(tokens, all_logits);
  return model_.forward(std::vector<int32_t>(tokens.begin(), tokens.end()), start_pos, &caches_, !all_logits);
}

std::vector<int32_t> CausalLM::decode_greedy(int32_t token, int64_t count, const std::function<bool(int32_t)>& on_token) {
  return decode_greedy(token, position(), count, on_token);
}

std::vector<int32_t> CausalLM::decode_greedy(int32_t token, int64_t start_pos, int64_t count,
                                             const std::function<bool(int32_t)>& on_token) {
  seek(start_pos);
  if (runtime_) return runtime_->decode_greedy(token, count, on_token);
  return generate::CausalModel::decode_greedy(token, start_pos, count, on_token);
}

std::vector<int32_t> CausalLM::sample(const Tensor& logits, int64_t count, const generate::SamplingConfig& sampling,
                                      Generator& generator, std::span<const int32_t> history,
                                      const std::function<bool(int32_t)>& on_token) {
  return sample(logits, position(), count, sampling, generator, history, on_token);
}

std::vector<int32_t> CausalLM::sample(const Tensor& logits, int64_t start_pos, int64_t count,
                                      const generate::SamplingConfig& sampling, Generator& generator,
                                      std::span<const int32_t> history, const std::function<bool(int32_t)>& on_token) {
  seek(start_pos);
  if (!runtime_ || !logits.device().is_cuda())
    return generate::CausalModel::sample(logits, start_pos, count, sampling, generator, history, on_token);
  sampling.validate();  // before anything, as the host path (count 0 included)
  const backend::SamplingParams p = generate::to_sampling_params(sampling, generator.seed(), generator.offset());
  // Drawn tokens are counted as they arrive, so that an error or an early stop leaves the
  // generator where the host Sampler would have left it.
  int64_t picked = 0;
  auto counted = [&](int32_t t) {
    ++picked;
    return !on_token || on_token(t);
  };
  std::vector<int32_t> out;
  try {
    out = runtime_->sample(logits.contiguous(), count, p, history, on_token ? std::function<bool(int32_t)>(counted) : nullptr);
  } catch (...) {
    if (!sampling.greedy()) generator.set_offset(p.offset + uint64_t(picked));
    throw;
  }
  if (!sampling.greedy()) generator.set_offset(p.offset + uint64_t(out.size()));
  return out;
}

void CausalLM::reset() {
  if (runtime_)
    runtime_->reset();
  else
    caches_ = model_.make_caches(max_context_, max_chunk_);
}

int64_t CausalLM::position() const {
  if (runtime_) return runtime_->position();
  return caches_.empty() ? 0 : caches_[0].next_position();
}

size_t CausalLM::device_bytes() const { return runtime_ ? runtime_->device_bytes() : 0; }
std::string CausalLM::fused_experts() const { return runtime_ ? runtime_->experts() : ""; }

bool CausalLM::rewind(int64_t position) {
  if (runtime_) return runtime_->truncate(position);
  if (position < 0 || position > this->position()) return false;
  const Config& c = model_.config();
  for (size_t l = 0; l < caches_.size(); ++l) {
    // Positions the layer attends to from `position` on must all still be held.
    int64_t oldest = c.layer_has_window(int64_t(l)) ? std::max<int64_t>(0, position - c.sliding_window + 1) : 0;
    std::vector<bool> held(size_t(position - oldest), false);
    for (int64_t p : caches_[l].positions())
      if (p >= oldest && p < position) held[size_t(p - oldest)] = true;
    for (bool h : held)
      if (!h) return false;
  }
  for (auto& cache : caches_) cache.truncate(position);
  return true;
}

}  // namespace ember::models::gpt_oss
