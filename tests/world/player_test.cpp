#include "ember/world/player.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "ember/world/synthetic.h"

namespace ember::world {
namespace {

const std::string kModel = std::string(EMBER_SOURCE_DIR) + "/models/world/world32.safetensors";

TEST(WorldPlayer, ShippedModelLoadsWithTheSyntheticActionSpace) {
  const WorldModel m = WorldModel::load(kModel);
  EXPECT_EQ(m.config().action.keyboard_dim, synthetic_action_space().num_keys());
  EXPECT_EQ(m.config().frames_per_block, 2);
}

// A long game keeps the action history at a fixed size (the rolling action buffer; the caches are
// fixed by construction, see model_test), and frames stay valid images.
TEST(WorldPlayer, LongRolloutKeepsTheActionHistoryConstant) {
  const WorldModel m = WorldModel::load(kModel);
  const ActionSpace space = synthetic_action_space();
  SampleOptions fast;
  fast.sigmas = {1.f};  // one step per block: this test is about memory, not quality
  WorldPlayer p(m, space, 32, 32, 7, fast);
  const auto prompt = synthetic_rollout({space.idle(), space.idle()}, 7);
  p.prime(prompt, {space.idle()});
  const auto keys = space.parse_compact("D A W+D S@0.1,0 .@0,-0.1 Space");
  size_t held_after_warmup = 0;
  for (int64_t b = 0; b < 60; ++b) {
    const auto fr = p.step({keys[size_t(b) % keys.size()], keys[size_t(b + 1) % keys.size()]});
    ASSERT_EQ(fr.size(), 2u);
    ASSERT_EQ(fr[0].size(), size_t(32 * 32 * 3));
    if (b == 5) held_after_warmup = p.actions_held();
    if (b > 5) {
      EXPECT_EQ(p.actions_held(), held_after_warmup) << "block " << b;
    }
  }
  EXPECT_EQ(p.next_frame(), 2 + 120);
  // windows_size * frames_per_latent actions read back, plus the block's own.
  EXPECT_LE(held_after_warmup, size_t(3 + 2));
}

// Actions given from WorldState::action_offset on give exactly what the whole history gives.
TEST(WorldPlayer, ActionOffsetMatchesWholeHistory) {
  const WorldModel m = WorldModel::load(kModel);
  const ActionSpace space = synthetic_action_space();
  const auto acts = space.parse_compact("D D A W@0.1,0 S . D+W Space A@0,-0.2 . W S");
  const Tensor clip = frames_to_tensor(synthetic_rollout(acts, 3));
  const ActionTensors all = space.to_tensors(acts);
  WorldState whole = m.make_state(1, 32, 32), rolled = m.make_state(1, 32, 32);
  const std::vector<float> t{0.f, 0.f};
  for (int64_t f = 0; f < 12; f += 2) {
    const Tensor x = clip.narrow(2, f, 2).contiguous();
    const Tensor a = m.forward_block(x, t, all.mouse, all.keyboard, whole, true);
    rolled.action_offset = std::max<int64_t>(0, f - 3);
    const int64_t n = f + 2 - rolled.action_offset;
    const Tensor b = m.forward_block(x, t, all.mouse.narrow(1, rolled.action_offset, n).contiguous(),
                                     all.keyboard.narrow(1, rolled.action_offset, n).contiguous(),
                                     rolled, true);
    EXPECT_EQ(a.contiguous().to_vector<float>(), b.contiguous().to_vector<float>()) << "frame " << f;
  }
  rolled.action_offset = 20;  // past what the next block reads
  EXPECT_THROW(m.forward_block(clip.narrow(2, 0, 2).contiguous(), t, all.mouse, all.keyboard, rolled,
                               false),
               Error);
}

TEST(WorldPlayer, ClearErrors) {
  const WorldModel m = WorldModel::load(kModel);
  const ActionSpace space = synthetic_action_space();
  WorldPlayer p(m, space, 32, 32);
  EXPECT_THROW(p.step({space.idle(), space.idle()}), Error);  // not primed
  const auto prompt = synthetic_rollout({space.idle(), space.idle(), space.idle()}, 0);
  EXPECT_THROW(p.prime(prompt, {space.idle(), space.idle()}), Error);  // 3 frames, not 2k
  EXPECT_THROW(p.prime({prompt[0], prompt[1]}, {}), Error);             // missing action
  p.prime({prompt[0], prompt[1]}, {space.idle()});
  EXPECT_THROW(p.step({space.idle()}), Error);  // one action for a two-frame block
  EXPECT_THROW(WorldPlayer(m, ActionSpace(), 32, 32), Error);  // 4 keys, model takes 5
}

}  // namespace
}  // namespace ember::world
