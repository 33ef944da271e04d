#include "ember/world/model.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "ember/diffusion/scheduler.h"
#include "ember/formats/safetensors.h"
#include "ember/nn/attention.h"
#include "ember/nn/patch.h"
#include "ember/nn/rope.h"
#include "ember/ops.h"

namespace ember::world {

// ---------------- config ----------------

WorldConfig WorldConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw_error("world config: invalid JSON: {}", e.what());
  }
  WorldConfig c;
  try {
    c.in_channels = j.at("in_channels");
    c.out_channels = j.at("out_channels");
    c.patch = j.at("patch").get<std::vector<int64_t>>();
    c.dim = j.at("dim");
    c.ffn_dim = j.at("ffn_dim");
    c.freq_dim = j.at("freq_dim");
    c.heads = j.at("heads");
    c.layers = j.at("layers");
    c.eps = j.at("eps");
    c.rope_theta = j.at("rope_theta");
    c.frames_per_block = j.at("frames_per_block");
    c.local_attn_frames = j.at("local_attn_frames");
    c.sink_frames = j.at("sink_frames");
    c.camera_heads = j.value("camera_heads", int64_t(0));
    c.camera_pan = j.value("camera_pan", 0.0);
    const auto& a = j.at("action");
    c.action.keyboard_dim = a.at("keyboard_dim");
    c.action.mouse_dim = a.at("mouse_dim");
    c.action.hidden_size = a.at("hidden_size");
    c.action.keyboard_hidden_dim = a.at("keyboard_hidden_dim");
    c.action.mouse_hidden_dim = a.at("mouse_hidden_dim");
    c.action.heads = a.at("heads");
    c.action.windows_size = a.at("windows_size");
    c.action.frames_per_latent = a.at("frames_per_latent");
    c.action.rope_theta = a.at("rope_theta");
    c.action.rope_split = a.at("rope_split").get<std::vector<int64_t>>();
    c.action.blocks = a.at("blocks").get<std::vector<int64_t>>();
  } catch (const nlohmann::json::exception& e) {
    throw_error("world config: {}", e.what());
  }
  c.validate();
  return c;
}

std::string WorldConfig::to_json() const {
  nlohmann::json a = {{"keyboard_dim", action.keyboard_dim},
                      {"mouse_dim", action.mouse_dim},
                      {"hidden_size", action.hidden_size},
                      {"keyboard_hidden_dim", action.keyboard_hidden_dim},
                      {"mouse_hidden_dim", action.mouse_hidden_dim},
                      {"heads", action.heads},
                      {"windows_size", action.windows_size},
                      {"frames_per_latent", action.frames_per_latent},
                      {"rope_theta", action.rope_theta},
                      {"rope_split", action.rope_split},
                      {"blocks", action.blocks}};
  nlohmann::json j = {{"in_channels", in_channels}, {"out_channels", out_channels},
                      {"patch", patch},             {"dim", dim},
                      {"ffn_dim", ffn_dim},         {"freq_dim", freq_dim},
                      {"heads", heads},             {"layers", layers},
                      {"eps", eps},                 {"rope_theta", rope_theta},
                      {"frames_per_block", frames_per_block},
                      {"local_attn_frames", local_attn_frames},
                      {"sink_frames", sink_frames}, {"camera_heads", camera_heads},
                      {"camera_pan", camera_pan},   {"action", a}};
  return j.dump();
}

void WorldConfig::validate() const {
  EMBER_CHECK(patch.size() == 3 && patch[0] == 1 && patch[1] > 0 && patch[2] > 0,
              "world config: patch must be (1, ph, pw)");
  EMBER_CHECK(dim > 0 && heads > 0 && dim % heads == 0 && (dim / heads) % 2 == 0,
              "world config: dim {} must split into {} heads of even size", dim, heads);
  EMBER_CHECK(layers > 0 && ffn_dim > 0 && freq_dim > 0 && freq_dim % 2 == 0,
              "world config: layers, ffn_dim and (even) freq_dim must be positive");
  EMBER_CHECK(frames_per_block >= 1 && local_attn_frames >= frames_per_block && sink_frames >= 0,
              "world config: need 1 <= frames_per_block ({}) <= local_attn_frames ({}), sink_frames "
              ">= 0",
              frames_per_block, local_attn_frames);
  EMBER_CHECK(camera_heads >= 0 && camera_heads <= heads && std::isfinite(camera_pan),
              "world config: camera_heads {} must be in [0, {}] and camera_pan finite", camera_heads,
              heads);
  const auto& a = action;
  EMBER_CHECK(a.keyboard_dim > 0 && a.mouse_dim > 0 && a.hidden_size > 0 && a.heads > 0 &&
                  a.windows_size > 0 && a.frames_per_latent > 0,
              "world config: action sizes must be positive");
  EMBER_CHECK(a.mouse_hidden_dim % a.heads == 0 && a.keyboard_hidden_dim % a.heads == 0,
              "world config: action hidden dims must divide into {} heads", a.heads);
  EMBER_CHECK(a.rope_split.size() == 3 &&
                  a.rope_split[0] + a.rope_split[1] + a.rope_split[2] == a.mouse_hidden_dim / a.heads &&
                  a.mouse_hidden_dim == a.keyboard_hidden_dim,
              "world config: action rope_split must sum to the action head dim (mouse and keyboard "
              "hidden dims equal)");
  for (int64_t b : a.blocks)
    EMBER_CHECK(b >= 0 && b < layers, "world config: action block {} outside [0, {})", b, layers);
}

bool WorldConfig::has_action(int64_t block) const {
  return std::find(action.blocks.begin(), action.blocks.end(), block) != action.blocks.end();
}

// ---------------- weights ----------------

namespace {

struct Linear {
  Tensor w;
  std::optional<Tensor> b;
  Tensor operator()(const Tensor& x) const { return linear(x, w, b); }
};

Linear load_linear(const WeightSource& s, const std::string& name, int64_t out, int64_t in,
                   bool bias = true) {
  Linear l{s.get(name + ".weight", {out, in}), std::nullopt};
  if (bias) l.b = s.get(name + ".bias", {out});
  return l;
}

struct ActionWeights {
  Linear kb_embed0, kb_embed2, mouse_mlp0, mouse_mlp2;
  Tensor mouse_ln_w, mouse_ln_b;
  Linear t_qkv, proj_mouse, mouse_attn_q, keyboard_attn_kv, proj_keyboard;
};

struct BlockWeights {
  Linear q, k, v, o;
  Tensor norm_q, norm_k;
  Tensor modulation;  // [6, D]
  Linear ffn0, ffn2;
  std::optional<ActionWeights> action;
};

class FileWeights : public WeightSource {
 public:
  FileWeights(const formats::safetensors::File& f, Device d) : f_(f), d_(d) {}
  Tensor get(const std::string& name, const Shape& shape) const override {
    EMBER_CHECK(f_.contains(name), "{}: tensor '{}' is missing", f_.path(), name);
    Tensor t = f_.get(name);
    EMBER_CHECK(t.shape() == shape, "{}: tensor '{}' has shape {}, expected {}", f_.path(), name,
                t.shape().str(), shape.str());
    return t.to(DType::F32).contiguous().to(d_);
  }

 private:
  const formats::safetensors::File& f_;
  Device d_;
};

// Wan's sinusoidal_embedding_1d: [cos, sin] of t * 10000^(-i/half), in float64.
Tensor sinusoidal_embedding(const std::vector<float>& t, int64_t dim, Device device) {
  const int64_t half = dim / 2;
  std::vector<float> out(t.size() * size_t(dim));
  for (size_t f = 0; f < t.size(); ++f)
    for (int64_t i = 0; i < half; ++i) {
      const double a = double(t[f]) * std::pow(10000.0, -double(i) / double(half));
      out[f * size_t(dim) + size_t(i)] = float(std::cos(a));
      out[f * size_t(dim) + size_t(half + i)] = float(std::sin(a));
    }
  return Tensor::from_vector(out, {int64_t(t.size()), dim}).to(device);
}

// Attention of q [B, H, Tq, D] to k/v [B, H, Tk, D] holding positions k_start.. — after the
// cache's slots when there is a cache, which then takes the chunk. q_pos: each query's position
// for the visibility rule (causal, window, sink positions always visible).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, nn::KVCache* cache,
              int64_t k_start, const std::vector<int64_t>& q_pos, int64_t window, int64_t sinks) {
  std::vector<int64_t> kpos;
  Tensor keys = k, values = v;
  if (cache) {
    kpos = cache->positions();
    keys = cat({cache->keys(), k}, 2);
    values = cat({cache->values(), v}, 2);
  }
  for (int64_t i = 0; i < k.dim(2); ++i) kpos.push_back(k_start + i);
  nn::AttentionOptions o;
  o.causal = true;
  o.window = window;
  o.sink_positions = sinks;
  o.key_positions = Tensor::from_vector(kpos, {int64_t(kpos.size())}).to(q.device());
  o.q_positions = Tensor::from_vector(q_pos, {int64_t(q_pos.size())}).to(q.device());
  Tensor out = nn::scaled_dot_product_attention(q, keys, values, o);
  if (cache) cache->append(k, v, k_start);
  return out;
}

// [B, T, H*hd] -> [B, H, T, hd]
Tensor heads_first(const Tensor& x, int64_t heads) {
  return x.view({x.dim(0), x.dim(1), heads, x.dim(2) / heads}).permute({0, 2, 1, 3});
}
// [B, H, T, hd] -> [B, T, H*hd]
Tensor heads_last(const Tensor& x) {
  return x.permute({0, 2, 1, 3}).reshape({x.dim(0), x.dim(2), x.dim(1) * x.dim(3)});
}

}  // namespace

struct WorldModel::Impl {
  std::optional<nn::PatchEmbed> patch_embed;
  std::optional<nn::Unpatchify> unpatchify;
  Linear time0, time2, time_proj;
  std::vector<BlockWeights> blocks;
  Tensor head_modulation;  // [2, D]
  std::optional<nn::Rope3d> rope, action_rope;
  Tensor ones_action;      // rms_norm weight of the action module's weightless norms
};

WorldModel::WorldModel(WorldConfig config, const WeightSource& s, Device device)
    : config_(std::move(config)), device_(device), impl_(std::make_unique<Impl>()) {
  const auto& c = config_;
  c.validate();
  auto& m = *impl_;
  const int64_t D = c.dim, pt = c.patch[0], ph = c.patch[1], pw = c.patch[2];
  m.patch_embed.emplace(s.get("patch_embedding.weight", {D, c.in_channels, pt, ph, pw}),
                        s.get("patch_embedding.bias", {D}));
  m.unpatchify.emplace(s.get("head.head.weight", {D, c.out_channels, pt, ph, pw}),
                       s.get("head.head.bias", {c.out_channels}));
  m.time0 = load_linear(s, "time_embedding.0", D, c.freq_dim);
  m.time2 = load_linear(s, "time_embedding.2", D, D);
  m.time_proj = load_linear(s, "time_projection.1", 6 * D, D);
  m.head_modulation = s.get("head.modulation", {1, 2, D}).view({2, D});
  const auto& a = c.action;
  const int64_t pad_t = a.frames_per_latent * a.windows_size;
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    BlockWeights b;
    b.q = load_linear(s, p + "self_attn.q", D, D);
    b.k = load_linear(s, p + "self_attn.k", D, D);
    b.v = load_linear(s, p + "self_attn.v", D, D);
    b.o = load_linear(s, p + "self_attn.o", D, D);
    b.norm_q = s.get(p + "self_attn.norm_q.weight", {D});
    b.norm_k = s.get(p + "self_attn.norm_k.weight", {D});
    b.modulation = s.get(p + "modulation", {1, 6, D}).view({6, D});
    b.ffn0 = load_linear(s, p + "ffn.0", c.ffn_dim, D);
    b.ffn2 = load_linear(s, p + "ffn.2", D, c.ffn_dim);
    if (c.has_action(i)) {
      const std::string q = p + "action_model.";
      const int64_t mc = a.mouse_hidden_dim, kc = a.keyboard_hidden_dim;
      ActionWeights w;
      w.kb_embed0 = load_linear(s, q + "keyboard_embed.0", a.hidden_size, a.keyboard_dim);
      w.kb_embed2 = load_linear(s, q + "keyboard_embed.2", a.hidden_size, a.hidden_size);
      w.mouse_mlp0 = load_linear(s, q + "mouse_mlp.0", mc, a.mouse_dim * pad_t + D);
      w.mouse_mlp2 = load_linear(s, q + "mouse_mlp.2", mc, mc);
      w.mouse_ln_w = s.get(q + "mouse_mlp.3.weight", {mc});
      w.mouse_ln_b = s.get(q + "mouse_mlp.3.bias", {mc});
      w.t_qkv = load_linear(s, q + "t_qkv", 3 * mc, mc, false);
      w.proj_mouse = load_linear(s, q + "proj_mouse", D, mc, false);
      w.mouse_attn_q = load_linear(s, q + "mouse_attn_q", kc, D, false);
      w.keyboard_attn_kv = load_linear(s, q + "keyboard_attn_kv", 2 * kc, a.hidden_size * pad_t, false);
      w.proj_keyboard = load_linear(s, q + "proj_keyboard", D, kc, false);
      b.action = std::move(w);
    }
    m.blocks.push_back(std::move(b));
  }
  m.rope.emplace(nn::Rope3dConfig{D / c.heads, c.rope_theta, std::nullopt});
  m.action_rope.emplace(nn::Rope3dConfig{
      a.mouse_hidden_dim / a.heads, a.rope_theta,
      std::array<int64_t, 3>{a.rope_split[0], a.rope_split[1], a.rope_split[2]}});
  m.ones_action = ones({a.mouse_hidden_dim / a.heads}, DType::F32, device);
}

WorldModel::~WorldModel() = default;
WorldModel::WorldModel(WorldModel&&) noexcept = default;

WorldModel WorldModel::load(const std::string& path, Device device) {
  auto f = formats::safetensors::File::open(path);
  auto it = f.header().metadata.find("ember.world.config");
  EMBER_CHECK(it != f.header().metadata.end(), "{}: no 'ember.world.config' in the metadata", path);
  WorldConfig c;
  try {
    c = WorldConfig::from_json(it->second);
  } catch (const Error& e) {
    throw_error("{}: {}", path, e.what());
  }
  return WorldModel(c, FileWeights(f, device), device);
}

WorldState WorldModel::make_state(int64_t batch, int64_t height, int64_t width) const {
  const auto& c = config_;
  EMBER_CHECK(batch > 0 && height > 0 && width > 0 && height % c.patch[1] == 0 &&
                  width % c.patch[2] == 0,
              "world: frame {}x{} is not a positive multiple of the patch {}x{}", height, width,
              c.patch[1], c.patch[2]);
  const int64_t S = (height / c.patch[1]) * (width / c.patch[2]);
  const int64_t hd = c.dim / c.heads, ahd = c.action.mouse_hidden_dim / c.action.heads;
  WorldState st;
  st.batch = batch;
  if (c.camera_heads > 0) st.camera.assign(size_t(batch * 2), 0.0);
  st.height = height;
  st.width = width;
  for (int64_t i = 0; i < c.layers; ++i) {
    st.self.emplace_back(batch, c.heads, (c.sink_frames + c.local_attn_frames) * S, hd, hd,
                         c.sink_frames * S, DType::F32, device_);
    if (c.has_action(i)) {
      st.mouse.emplace_back(batch * S, c.action.heads, c.local_attn_frames, ahd, ahd, 0,
                            DType::F32, device_);
      st.keyboard.emplace_back(batch, c.action.heads, c.local_attn_frames, ahd, ahd, 0,
                               DType::F32, device_);
    }
  }
  return st;
}

std::vector<std::vector<double>> WorldModel::cameras(const Tensor& mouse, const WorldState* st,
                                                     int64_t start, int64_t frames) const {
  const int64_t B = mouse.dim(0), off = st ? st->action_offset : 0, r = config_.action.frames_per_latent;
  std::vector<std::vector<double>> cams{st ? st->camera : std::vector<double>(size_t(B * 2), 0.0)};
  EMBER_CHECK(int64_t(cams[0].size()) == B * 2, "world: the state's camera holds {} values for batch {}",
              cams[0].size(), B);
  const int64_t from = r * start, to = r * (start + frames);
  EMBER_CHECK(from - off >= 0 && to - off <= mouse.dim(1),
              "world: the camera needs raw mouse frames {} .. {} (held from {}, {} frames)", from,
              to - 1, off, mouse.dim(1));
  const auto m = mouse.narrow(1, from - off, to - from).to(Device::cpu()).to(DType::F32)
                     .contiguous().to_vector<float>();
  for (int64_t f = 0; f < frames; ++f) {
    std::vector<double> cam = cams.back();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = r * f; i < r * (f + 1); ++i)
        for (int64_t k = 0; k < 2; ++k) cam[size_t(b * 2 + k)] += double(m[size_t((b * (to - from) + i) * 2 + k)]);
    cams.push_back(std::move(cam));
  }
  return cams;
}

Tensor WorldModel::forward(const Tensor& x, const std::vector<float>& t, const Tensor& mouse,
                           const Tensor& keyboard) const {
  EMBER_CHECK(x.ndim() == 5 && x.dim(2) % config_.frames_per_block == 0,
              "world: x must be [B, C, F, H, W] with F a multiple of {} frames per block, got {}",
              config_.frames_per_block, x.shape().str());
  return run(x, t, mouse, keyboard, 0, nullptr);
}

Tensor WorldModel::forward_block(const Tensor& x, const std::vector<float>& t, const Tensor& mouse,
                                 const Tensor& keyboard, WorldState& st, bool commit) const {
  EMBER_CHECK(x.ndim() == 5 && x.dim(2) == config_.frames_per_block,
              "world: a block must be [B, C, {}, H, W], got {}", config_.frames_per_block,
              x.shape().str());
  EMBER_CHECK(x.dim(0) == st.batch && x.dim(3) == st.height && x.dim(4) == st.width,
              "world: block {} does not match the state (batch {}, {}x{})", x.shape().str(),
              st.batch, st.height, st.width);
  const int64_t start = st.next_frame;
  std::vector<double> camera_after;
  Tensor out = run(x, t, mouse, keyboard, start, &st, commit && config_.camera_heads > 0 ? &camera_after : nullptr);
  if (commit) {
    if (config_.camera_heads > 0) st.camera = std::move(camera_after);
    st.next_frame = start + x.dim(2);
  } else {
    const int64_t S = (st.height / config_.patch[1]) * (st.width / config_.patch[2]);
    for (auto& c : st.self) c.truncate(start * S);
    for (auto& c : st.mouse) c.truncate(start);
    for (auto& c : st.keyboard) c.truncate(start);
  }
  return out;
}

Tensor WorldModel::run(const Tensor& x_in, const std::vector<float>& t, const Tensor& mouse,
                       const Tensor& keyboard, int64_t start, WorldState* st,
                       std::vector<double>* camera_after) const {
  const auto& c = config_;
  const auto& m = *impl_;
  const auto& a = c.action;
  EMBER_CHECK(x_in.dim(1) == c.in_channels, "world: x has {} channels, the model takes {}",
              x_in.dim(1), c.in_channels);
  const int64_t B = x_in.dim(0), F = x_in.dim(2), D = c.dim;
  EMBER_CHECK(int64_t(t.size()) == F, "world: {} timesteps for {} frames", t.size(), F);
  const int64_t end = start + F;  // one past the last frame
  const int64_t r = a.frames_per_latent, pad_t = r * a.windows_size;
  // The action tensors hold raw frames off .. ; the block reads from raw frame first_read on.
  const int64_t off = st ? st->action_offset : 0;
  const int64_t first_read = std::max<int64_t>(0, r * start - pad_t);
  EMBER_CHECK(off >= 0 && off <= first_read,
              "world: action_offset {} is past raw frame {}, which the block at frame {} reads", off,
              first_read, start);
  const int64_t need = r * (end - 1) + 1 - off;
  EMBER_CHECK(mouse.ndim() == 3 && mouse.dim(0) == B && mouse.dim(2) == a.mouse_dim &&
                  mouse.dim(1) >= need,
              "world: mouse must be [{}, >= {}, {}] for frames up to {} from action frame {}, got {}",
              B, need, a.mouse_dim, end - 1, off, mouse.shape().str());
  EMBER_CHECK(keyboard.ndim() == 3 && keyboard.dim(0) == B && keyboard.dim(2) == a.keyboard_dim &&
                  keyboard.dim(1) >= need,
              "world: keyboard must be [{}, >= {}, {}] for frames up to {} from action frame {}, "
              "got {}",
              B, need, a.keyboard_dim, end - 1, off, keyboard.shape().str());

  // Patch embedding: [B, C, F, H, W] -> tokens [B, F*S, D], frame-major.
  Tensor x = m.patch_embed->forward(x_in.to(DType::F32));
  const auto grid = m.patch_embed->grid(x_in.shape());  // (F, gh, gw)
  const int64_t gh = grid[1], gw = grid[2], S = gh * gw, N = F * S;

  // Per-frame timestep embedding e [F, D] and its six modulation vectors e0 [F, 6, D].
  Tensor e = m.time2(silu(m.time0(sinusoidal_embedding(t, c.freq_dim, device_))));
  Tensor e0 = m.time_proj(silu(e)).view({F, 6, D});

  // Block-causal positions: every query counts as the last position of its frame block.
  auto block_end = [&](int64_t f) { return (f / c.frames_per_block + 1) * c.frames_per_block - 1; };
  std::vector<int64_t> q_tok(static_cast<size_t>(N)), q_frame_tok(static_cast<size_t>(N)),
      q_frame(static_cast<size_t>(F));
  for (int64_t f = 0; f < F; ++f) {
    const int64_t e_f = block_end(start + f);
    q_frame[size_t(f)] = e_f;
    for (int64_t s = 0; s < S; ++s) {
      q_tok[size_t(f * S + s)] = (e_f + 1) * S - 1;
      q_frame_tok[size_t(f * S + s)] = e_f;
    }
  }
  // Action windows: latent frame f reads raw frames r*f - pad_t .. r*f - 1 (below 0: frame 0).
  std::vector<int64_t> widx;
  for (int64_t f = start; f < end; ++f)
    for (int64_t j = 0; j < pad_t; ++j) widx.push_back(std::max<int64_t>(0, r * f - pad_t + j) - off);
  Tensor widx_t = Tensor::from_vector(widx, {int64_t(widx.size())}).to(device_);
  // Action RoPE tables: per frame, and per token (frame of each token).
  auto [acos_f, asin_f] = m.action_rope->tables(F, 1, 1, start, device_);
  std::vector<int64_t> tok_frame(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) tok_frame[size_t(i)] = i / S;
  Tensor tok_frame_t = Tensor::from_vector(tok_frame, {N}).to(device_);
  Tensor acos_t = index_select(acos_f, 0, tok_frame_t), asin_t = index_select(asin_f, 0, tok_frame_t);

  // Camera-aware heads: per batch row, RoPE tables at the world position of every token, the
  // camera of frame f being the mouse sums of the raw frames before r * f.
  std::vector<std::pair<Tensor, Tensor>> world_rope;
  if (c.camera_heads > 0) {
    const double ky = c.camera_pan / double(c.patch[1]), kx = c.camera_pan / double(c.patch[2]);
    std::vector<std::vector<std::array<double, 3>>> pos(static_cast<size_t>(B));
    // frames start .. end - 1, and the frame after when asked
    const auto cams = cameras(mouse, st, start, camera_after ? F : F - 1);
    if (camera_after) *camera_after = cams.back();
    for (int64_t f = 0; f < F; ++f) {
      const std::vector<double>& cam = cams[size_t(f)];
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < gh; ++h)
          for (int64_t w = 0; w < gw; ++w)
            pos[size_t(b)].push_back({double(start + f), double(h) - cam[size_t(b * 2)] * ky,
                                      double(w) + cam[size_t(b * 2 + 1)] * kx});
    }
    for (int64_t b = 0; b < B; ++b) world_rope.push_back(m.rope->tables_at(pos[size_t(b)], device_));
  }
  // Self-attention RoPE: screen positions, then the camera heads of each row at world positions.
  auto rope_self = [&](const Tensor& t4) {
    Tensor screen = m.rope->apply(t4, F, gh, gw, start, 2);
    if (c.camera_heads == 0) return screen;
    const int64_t sc = c.heads - c.camera_heads;
    std::vector<Tensor> rows;
    for (int64_t b = 0; b < B; ++b) {
      Tensor wb = nn::apply_rotary(t4.narrow(0, b, 1).narrow(1, sc, c.camera_heads).contiguous(),
                                   world_rope[size_t(b)].first, world_rope[size_t(b)].second, 2,
                                   nn::RopeLayout::Interleaved);
      rows.push_back(sc > 0 ? cat({screen.narrow(0, b, 1).narrow(1, 0, sc), wb}, 1) : wb);
    }
    return B == 1 ? rows[0] : cat(rows, 0);
  };

  const int64_t ah = a.heads, ahd = a.mouse_hidden_dim / ah;
  int64_t action_i = 0;
  for (int64_t li = 0; li < c.layers; ++li) {
    const BlockWeights& b = m.blocks[size_t(li)];
    Tensor mod = add(b.modulation.unsqueeze(0), e0);  // [F, 6, D]
    auto part = [&](int64_t k) { return mod.narrow(1, k, 1); };  // [F, 1, D]
    auto modulate = [&](const Tensor& h, int64_t shift, int64_t scale) {
      Tensor n = layer_norm(h, std::nullopt, std::nullopt, float(c.eps)).view({B, F, S, D});
      return add(mul(n, add(part(scale), 1.0)), part(shift)).view({B, N, D});
    };
    auto gated = [&](const Tensor& y, int64_t g) {
      return mul(y.view({B, F, S, D}), part(g)).view({B, N, D});
    };

    // Self-attention: q/k RMS-normed over the full dim, 3D RoPE at the frame offset.
    Tensor h = modulate(x, 0, 1);
    Tensor q = heads_first(rms_norm(b.q(h), b.norm_q, float(c.eps)), c.heads);
    Tensor k = heads_first(rms_norm(b.k(h), b.norm_k, float(c.eps)), c.heads);
    Tensor v = heads_first(b.v(h), c.heads);
    q = rope_self(q);
    k = rope_self(k);
    Tensor y = attend(q, k, v, st ? &st->self[size_t(li)] : nullptr, start * S, q_tok,
                      c.local_attn_frames * S, c.sink_frames * S);
    x = add(x, gated(b.o(heads_last(y)), 2));

    if (b.action) {
      const ActionWeights& w = *b.action;
      nn::KVCache* mc = st ? &st->mouse[size_t(action_i)] : nullptr;
      nn::KVCache* kc = st ? &st->keyboard[size_t(action_i)] : nullptr;
      ++action_i;
      // Mouse: per spatial token, temporal self-attention over [hidden, mouse window].
      Tensor hs = x.view({B, F, S, D}).permute({0, 2, 1, 3}).reshape({B * S, F, D});
      Tensor gm = index_select(mouse.to(DType::F32), 1, widx_t).reshape({B, 1, F, pad_t * a.mouse_dim});
      gm = gm.expand({B, S, F, pad_t * a.mouse_dim}).reshape({B * S, F, pad_t * a.mouse_dim});
      Tensor mm = w.mouse_mlp0(cat({hs, gm}, 2));
      mm = w.mouse_mlp2(gelu_tanh(mm));
      mm = layer_norm(mm, w.mouse_ln_w, w.mouse_ln_b, 1e-5f);
      Tensor qkv = w.t_qkv(mm).view({B * S, F, 3, ah, ahd});
      auto take = [&](const Tensor& t5, int64_t i) { return t5.select(2, i).permute({0, 2, 1, 3}); };
      Tensor mq = rms_norm(take(qkv, 0).contiguous(), m.ones_action, 1e-6f);
      Tensor mk = rms_norm(take(qkv, 1).contiguous(), m.ones_action, 1e-6f);
      Tensor mv = take(qkv, 2);
      mq = m.action_rope->apply(mq, F, 1, 1, start, 2);
      mk = m.action_rope->apply(mk, F, 1, 1, start, 2);
      Tensor my = attend(mq, mk, mv, mc, start, q_frame, c.local_attn_frames, 0);  // [B*S, ah, F, ahd]
      my = my.permute({0, 2, 1, 3}).reshape({B, S, F, ah * ahd}).permute({0, 2, 1, 3})
               .reshape({B, N, ah * ahd});
      x = add(x, w.proj_mouse(my));

      // Keyboard: every token cross-attends to the embedded keyboard windows of visible frames.
      Tensor kb = index_select(keyboard.to(DType::F32), 1, widx_t);   // [B, F*pad_t, K]
      kb = w.kb_embed2(silu(w.kb_embed0(kb))).reshape({B, F, pad_t * a.hidden_size});
      Tensor kv = w.keyboard_attn_kv(kb).view({B, F, 2, ah, ahd});
      Tensor kk = rms_norm(take(kv, 0).contiguous(), m.ones_action, 1e-6f);
      Tensor kvv = take(kv, 1);
      Tensor kq = rms_norm(heads_first(w.mouse_attn_q(x), ah).contiguous(), m.ones_action, 1e-6f);
      kq = nn::apply_rotary(kq, acos_t, asin_t, 2, nn::RopeLayout::Interleaved);
      kk = m.action_rope->apply(kk, F, 1, 1, start, 2);
      Tensor ky = attend(kq, kk, kvv, kc, start, q_frame_tok, c.local_attn_frames, 0);
      x = add(x, w.proj_keyboard(heads_last(ky)));
    }

    x = add(x, gated(b.ffn2(gelu_tanh(b.ffn0(modulate(x, 3, 4)))), 5));
  }

  // Head: modulated norm with (head.modulation + e), then ConvTranspose3d back to pixels.
  Tensor hm = add(m.head_modulation.unsqueeze(0), e.unsqueeze(1));  // [F, 2, D]
  Tensor n = layer_norm(x, std::nullopt, std::nullopt, float(c.eps)).view({B, F, S, D});
  Tensor y = add(mul(n, add(hm.narrow(1, 1, 1), 1.0)), hm.narrow(1, 0, 1)).view({B, N, D});
  return m.unpatchify->forward(y, {F, gh, gw});
}

Tensor WorldModel::sample_block(const Tensor& noise, const Tensor& mouse, const Tensor& keyboard,
                                WorldState& st, const SampleOptions& o,
                                const std::vector<Tensor>& step_noise, Generator* gen) const {
  EMBER_CHECK(!o.sigmas.empty(), "world: sample_block needs at least one sigma");
  EMBER_CHECK(step_noise.empty() || step_noise.size() + 1 >= o.sigmas.size(),
              "world: {} step noises for {} steps (need one per step but the last)",
              step_noise.size(), o.sigmas.size());
  EMBER_CHECK(!step_noise.empty() || gen || o.sigmas.size() == 1,
              "world: sample_block needs step noises or a generator");
  diffusion::PingPong sched;
  sched.set_sigmas(o.sigmas);
  const auto ts = sched.timesteps();
  const int64_t F = noise.dim(2);
  Tensor x = noise.to(DType::F32);
  for (size_t i = 0; i < ts.size(); ++i) {
    Tensor v = forward_block(x, std::vector<float>(size_t(F), ts[i]), mouse, keyboard, st, false);
    diffusion::StepOptions so;
    if (i + 1 < ts.size()) {
      if (!step_noise.empty()) so.noise = step_noise[i].to(DType::F32);
      else so.generator = gen;
    } else {
      so.noise = zeros(x.shape(), DType::F32, x.device());  // sigma_next = 0: the noise is unused
    }
    x = sched.step(v, ts[i], x, so);
  }
  forward_block(x, std::vector<float>(size_t(F), o.context_timestep), mouse, keyboard, st, true);
  return x;
}

}  // namespace ember::world
