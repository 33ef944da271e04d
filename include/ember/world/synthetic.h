#pragma once
// The synthetic world ember's small world model learns (twin of tools/world/synthetic.py, byte
// for byte): a hashed-colour tiled ground that the camera pans over with the mouse (40 px per
// unit, so 0.1 -> 4 px, one model patch; dy > 0 looks up) and a 4x4 sprite that walks 3 pixels per frame with
// W/S/A/D and hops with the extra key "jump" (symbol Space). Frames are 32x32 RGB bytes.
#include <cstdint>
#include <vector>

#include "ember/core/tensor.h"
#include "ember/world/action.h"

namespace ember::world {

// The action space the synthetic world understands: W/S/A/D plus jump (Space, terminal ' ').
ActionSpace synthetic_action_space();

class SyntheticWorld {
 public:
  static constexpr int kSize = 32, kSprite = 4;
  explicit SyntheticWorld(int64_t seed = 0);
  // Applies one frame's action, returns the new frame [H][W][3] RGB bytes.
  std::vector<uint8_t> step(const Action& a);
  std::vector<uint8_t> render(bool hop = false) const;

 private:
  int64_t cam_x_, cam_y_, x_ = 14, y_ = 14;
};

// Frame 0 is the start; frame i shows the world after the actions of frames 0..i-1 (the model
// conditions frame f on the actions of frames f-3..f-1). One frame per action.
std::vector<std::vector<uint8_t>> synthetic_rollout(const std::vector<Action>& actions,
                                                    int64_t seed = 0);
// Frames as the model's input: f32 [1, 3, F, 32, 32] in [-1, 1].
Tensor frames_to_tensor(const std::vector<std::vector<uint8_t>>& frames);

}  // namespace ember::world
