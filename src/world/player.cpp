#include "ember/world/player.h"

#include <algorithm>
#include <cmath>

#include "ember/core/error.h"
#include "ember/ops.h"
#include "ember/world/synthetic.h"

namespace ember::world {

std::vector<Frame> tensor_to_frames(const Tensor& x) {
  EMBER_CHECK(x.ndim() == 5 && x.dim(0) == 1 && x.dim(1) == 3,
              "world: frames must be [1, 3, F, H, W], got {}", x.shape().str());
  const int64_t F = x.dim(2), H = x.dim(3), W = x.dim(4);
  const auto v = x.to(Device::cpu()).to(DType::F32).contiguous().to_vector<float>();
  std::vector<Frame> out(size_t(F), Frame(size_t(H * W * 3)));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t f = 0; f < F; ++f)
      for (int64_t i = 0; i < H * W; ++i) {
        const float b = std::round((v[size_t(((c * F + f) * H * W) + i)] + 1.f) * 127.5f);
        out[size_t(f)][size_t(i * 3 + c)] = uint8_t(std::clamp(b, 0.f, 255.f));
      }
  return out;
}

WorldPlayer::WorldPlayer(const WorldModel& model, ActionSpace space, int64_t height,
                         int64_t width, uint64_t seed, SampleOptions options)
    : model_(&model), space_(std::move(space)), height_(height), width_(width), gen_(seed),
      options_(std::move(options)), state_(model.make_state(1, height, width)) {
  EMBER_CHECK(space_.num_keys() == model.config().action.keyboard_dim,
              "world: the action space has {} keys, the model takes {}", space_.num_keys(),
              model.config().action.keyboard_dim);
  EMBER_CHECK(model.config().action.mouse_dim == 2, "world: the model's mouse has {} axes, not 2",
              model.config().action.mouse_dim);
}

ActionTensors WorldPlayer::window(int64_t block_end) {
  // Drop what no block from next_frame on reads (latent frame f reads raw r*f - pad_t ..).
  const auto& a = model_->config().action;
  const int64_t first_read =
      std::max<int64_t>(0, a.frames_per_latent * state_.next_frame - a.frames_per_latent * a.windows_size);
  while (state_.action_offset < first_read && !actions_.empty()) {
    actions_.pop_front();
    ++state_.action_offset;
  }
  // The model asks for raw frames up to r * (block_end - 1); those past the history are never
  // read (they lead into later frames): pad with the last action.
  const int64_t need = a.frames_per_latent * (block_end - 1) + 1 - state_.action_offset;
  std::vector<Action> w(actions_.begin(), actions_.end());
  while (int64_t(w.size()) < need) w.push_back(w.empty() ? space_.idle() : w.back());
  return space_.to_tensors(w);
}

void WorldPlayer::prime(const std::vector<Frame>& frames, const std::vector<Action>& actions) {
  const int64_t fpb = frames_per_block();
  EMBER_CHECK(state_.next_frame == 0, "world: prime comes before the first step");
  EMBER_CHECK(!frames.empty() && int64_t(frames.size()) % fpb == 0,
              "world: {} prompt frames, need a positive multiple of {}", frames.size(), fpb);
  EMBER_CHECK(actions.size() + 1 == frames.size(),
              "world: {} prompt frames need {} actions between them, got {}", frames.size(),
              frames.size() - 1, actions.size());
  for (const auto& f : frames)
    EMBER_CHECK(int64_t(f.size()) == height_ * width_ * 3, "world: a prompt frame has {} bytes, "
                "expected {}x{}x3", f.size(), height_, width_);
  for (size_t i = 0; i < actions.size(); ++i) space_.validate(actions[i], int64_t(i));
  actions_.assign(actions.begin(), actions.end());
  const Tensor clip = frames_to_tensor(frames).to(model_->device());
  const std::vector<float> t(size_t(fpb), options_.context_timestep);
  for (int64_t f = 0; f < int64_t(frames.size()); f += fpb) {
    const ActionTensors at = window(f + fpb);
    model_->forward_block(clip.narrow(2, f, fpb).contiguous(), t, at.mouse.to(model_->device()),
                          at.keyboard.to(model_->device()), state_, /*commit=*/true);
  }
}

std::vector<Frame> WorldPlayer::step(const std::vector<Action>& actions) {
  const int64_t fpb = frames_per_block();
  EMBER_CHECK(state_.next_frame > 0, "world: prime the player with prompt frames first");
  EMBER_CHECK(int64_t(actions.size()) == fpb, "world: a step takes {} actions (one per frame), got {}",
              fpb, actions.size());
  for (const auto& a : actions) space_.validate(a);
  actions_.insert(actions_.end(), actions.begin(), actions.end());
  const ActionTensors at = window(state_.next_frame + fpb);
  const Device d = model_->device();
  Tensor noise = randn({1, model_->config().in_channels, fpb, height_, width_}, gen_, DType::F32, d);
  Tensor x = model_->sample_block(noise, at.mouse.to(d), at.keyboard.to(d), state_, options_, {},
                                  &gen_);
  return tensor_to_frames(x);
}

}  // namespace ember::world
