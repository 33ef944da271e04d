#pragma once
// Playing a world model: commit prompt frames, then sample one frame block per step from the
// player's actions. Only the action window the model reads is kept (a rolling buffer; see
// WorldState::action_offset), so memory stays constant however long the game.
#include <cstdint>
#include <deque>
#include <vector>

#include "ember/core/generator.h"
#include "ember/core/tensor.h"
#include "ember/world/action.h"
#include "ember/world/model.h"

namespace ember::world {

using Frame = std::vector<uint8_t>;  // [H][W][3] RGB bytes

// f32 [1, 3, F, H, W] in [-1, 1] -> F frames of RGB bytes (the inverse of frames_to_tensor).
std::vector<Frame> tensor_to_frames(const Tensor& x);

class WorldPlayer {
 public:
  // The model must outlive the player; its keyboard width must match the action space.
  WorldPlayer(const WorldModel& model, ActionSpace space, int64_t height, int64_t width,
              uint64_t seed = 0, SampleOptions options = {});

  // Commits clean prompt frames (a positive multiple of frames_per_block) and the actions between
  // them: actions[i] led from frame i to frame i + 1, so actions.size() == frames.size() - 1.
  void prime(const std::vector<Frame>& frames, const std::vector<Action>& actions);
  // Samples the next frame block: actions[i] leads into the block's frame i (frames_per_block).
  std::vector<Frame> step(const std::vector<Action>& actions);

  int64_t frames_per_block() const { return model_->config().frames_per_block; }
  int64_t next_frame() const { return state_.next_frame; }
  size_t actions_held() const { return actions_.size(); }
  const ActionSpace& space() const { return space_; }

 private:
  ActionTensors window(int64_t block_end);  // actions from state_.action_offset to block_end - 1
  const WorldModel* model_;
  ActionSpace space_;
  int64_t height_, width_;
  Generator gen_;
  SampleOptions options_;
  WorldState state_;
  std::deque<Action> actions_;  // raw frames state_.action_offset ..
};

}  // namespace ember::world
