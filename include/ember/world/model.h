#pragma once
// A small interactive world model in the shape of Matrix-Game-2 (SkyworkAI/Matrix-Game,
// Matrix-Game-2/wan/modules/causal_model.py, action_module.py), built from ember primitives only:
// video patch embedding, 3D RoPE with a streaming frame offset, block-causal attention over a
// rolling KV cache with sink frames and a local window, Matrix-Game-2's ActionModule (mouse and
// keyboard conditioning), unpatchify, and few-step flow-matching sampling per frame block.
// The PyTorch definition of the same network is tests/golden/world/model.py.
//
// Differences from Matrix-Game-2, by design: pixels instead of VAE latents (one action per frame,
// frames_per_latent = 1), no image/CLIP cross-attention, the head is ConvTranspose3d (ember's
// Unpatchify) instead of Linear + einsum, and optional camera-aware RoPE heads (camera_heads:
// without them the shipped model never learned to pan with the mouse, docs/world.md).
//
// Visibility ("block-causal"): a query in frame f, whose block (frames_per_block frames, blocks
// aligned at frame 0) ends at frame e, sees key frames k <= e with k > e - local_attn_frames,
// plus the first sink_frames frames. The action module's temporal attention uses the same rule
// without sinks.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ember/core/generator.h"
#include "ember/core/tensor.h"
#include "ember/nn/kv_cache.h"

namespace ember::world {

struct ActionModuleConfig {
  int64_t keyboard_dim = 4;
  int64_t mouse_dim = 2;
  int64_t hidden_size = 32;           // keyboard_embed width
  int64_t keyboard_hidden_dim = 64;
  int64_t mouse_hidden_dim = 64;
  int64_t heads = 4;
  int64_t windows_size = 3;           // latent frames of actions per frame
  int64_t frames_per_latent = 1;      // Matrix-Game-2's vae_time_compression_ratio
  double rope_theta = 256.0;
  std::vector<int64_t> rope_split{4, 6, 6};  // (t, h, w); only t rotates (h = w = 0)
  std::vector<int64_t> blocks{0, 1, 2, 3};   // transformer blocks that have an action module
};

struct WorldConfig {
  int64_t in_channels = 3, out_channels = 3;
  std::vector<int64_t> patch{1, 4, 4};  // (pt, ph, pw); pt must be 1
  int64_t dim = 128, ffn_dim = 512, freq_dim = 64, heads = 4, layers = 4;
  double eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t frames_per_block = 2;
  int64_t local_attn_frames = 6;
  int64_t sink_frames = 1;
  // Camera-aware RoPE (ember's, not Matrix-Game-2's): the last camera_heads heads of every
  // self-attention place their tokens at world positions, the screen position plus the camera
  // offset the mouse has moved since frame 0 (camera_pan pixels a mouse unit: yaw moves +x,
  // pitch -y), so ground that a pan moves keeps its position. 0 heads: off (files without the
  // keys load as off).
  int64_t camera_heads = 0;
  double camera_pan = 0.0;
  ActionModuleConfig action;

  static WorldConfig from_json(const std::string& json);  // the golden's/checkpoint's metadata
  std::string to_json() const;
  void validate() const;
  bool has_action(int64_t block) const;
};

// Name -> f32 tensor on the model's device; a missing name or wrong shape is an error.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual Tensor get(const std::string& name, const Shape& shape) const = 0;
};

// Rolling caches of one stream: per block the self-attention cache (sinks + window, in tokens)
// and, where the block has an action module, the mouse and keyboard caches (window, in frames).
// Fixed size: memory stays constant however long the rollout.
struct WorldState {
  std::vector<nn::KVCache> self, mouse, keyboard;
  int64_t batch = 0, height = 0, width = 0;
  int64_t next_frame = 0;  // first frame of the next block
  // Raw action frame held by row 0 of the mouse/keyboard tensors given to forward_block and
  // sample_block. A player keeps a rolling buffer of the last frames_per_latent * windows_size +
  // frames_per_block + 1 actions and sets this, so the action history does not grow either.
  int64_t action_offset = 0;
  // Camera-aware heads: per batch row the (pitch, yaw) sums of the raw mouse frames before
  // frames_per_latent * next_frame (the camera of the next block's first frame).
  std::vector<double> camera;
};

struct SampleOptions {
  std::vector<float> sigmas{1.0f, 0.75f, 0.5f, 0.25f};  // few-step schedule (a final 0 is implied)
  float context_timestep = 0.f;  // t of the clean pass that writes the block into the caches
};

class WorldModel {
 public:
  WorldModel(WorldConfig config, const WeightSource& weights, Device device = Device::cpu());
  // A SafeTensors file holding the weights (names as in model.py) and the config as JSON in the
  // metadata key "ember.world.config".
  static WorldModel load(const std::string& path, Device device = Device::cpu());
  ~WorldModel();
  WorldModel(WorldModel&&) noexcept;

  const WorldConfig& config() const { return config_; }
  Device device() const { return device_; }

  // Full block-causal forward over a clip (no cache): x [B, C, F, H, W] with F a multiple of
  // frames_per_block, t [F] timesteps (sigma * 1000) per frame, mouse [B, N, 2] (pitch, yaw),
  // keyboard [B, N, K] with N >= frames_per_latent * (F - 1) + 1 raw action frames.
  // Returns the flow prediction (velocity) [B, C, F, H, W].
  Tensor forward(const Tensor& x, const std::vector<float>& t, const Tensor& mouse,
                 const Tensor& keyboard) const;

  WorldState make_state(int64_t batch, int64_t height, int64_t width) const;
  // One frame block at state.next_frame: x [B, C, frames_per_block, H, W]. Actions cover raw
  // frames 0 .. at least frames_per_latent * (block end) (only the window is read). commit: keep
  // the block's K/V in the caches and advance next_frame; otherwise the caches are as before.
  Tensor forward_block(const Tensor& x, const std::vector<float>& t, const Tensor& mouse,
                       const Tensor& keyboard, WorldState& state, bool commit) const;

  // Matrix-Game-2's few-step sampling of one block (ember's PingPong scheduler: predict x0,
  // re-noise to the next sigma with fresh noise), then the clean pass that commits the block.
  // `noise` starts the block; step_noise[i] re-noises after step i (or drawn from `gen`).
  Tensor sample_block(const Tensor& noise, const Tensor& mouse, const Tensor& keyboard,
                      WorldState& state, const SampleOptions& options = {},
                      const std::vector<Tensor>& step_noise = {}, Generator* gen = nullptr) const;

 private:
  struct Impl;
  // camera_after (camera heads): also gets the camera after the block's last frame, what a
  // committed block leaves in the state, from the same host copy of the mouse.
  Tensor run(const Tensor& x, const std::vector<float>& t, const Tensor& mouse,
             const Tensor& keyboard, int64_t start_frame, WorldState* state,
             std::vector<double>* camera_after = nullptr) const;
  // The camera ([batch * 2] mouse sums) at frames start .. start + frames: the state's (zeros
  // without a state) plus the mouse of the raw frames in between, copied to the host once.
  std::vector<std::vector<double>> cameras(const Tensor& mouse, const WorldState* state, int64_t start,
                                           int64_t frames) const;
  WorldConfig config_;
  Device device_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember::world
