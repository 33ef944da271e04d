#include "ember/world/synthetic.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "test_util.h"

namespace ember::world {
namespace {

// Must equal GOLDEN_ACTIONS in tools/world/synthetic.py (seed 0).
constexpr const char* kGoldenActions =
    "W@0,0.2 W+D@0.1,0 D .@0,-0.1 S+Space A@-0.3,0.1 W+A . D@0.3,0";

TEST(WorldSynthetic, MatchesPythonTwinByteForByte) {
  std::ifstream in(std::string(EMBER_TEST_DATA_DIR) + "/world/synthetic_golden.bin", std::ios::binary);
  ASSERT_TRUE(in.good());
  std::vector<uint8_t> golden((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto frames = synthetic_rollout(synthetic_action_space().parse_compact(kGoldenActions), 0);
  ASSERT_EQ(frames.size(), 9u);
  ASSERT_EQ(golden.size(), 9u * 32 * 32 * 3);
  for (size_t f = 0; f < frames.size(); ++f)
    EXPECT_TRUE(std::equal(frames[f].begin(), frames[f].end(), golden.begin() + long(f * 3072)))
        << "frame " << f;
}

TEST(WorldSynthetic, KeysMoveTheSpriteAndMousePansTheGround) {
  ActionSpace s = synthetic_action_space();
  SyntheticWorld w(1);
  auto f0 = w.render();
  auto f1 = w.step(s.parse_frame("."));
  EXPECT_EQ(f0, f1);  // no action, no change
  SyntheticWorld a(1), b(1);
  auto moved = a.step(s.parse_frame("D"));
  EXPECT_NE(moved, f0);
  // D moves the sprite 3 px right: its white top-left corner goes from (14, 14) to (17, 14).
  EXPECT_EQ(moved[size_t((14 * 32 + 17) * 3)], 255);
  EXPECT_EQ(moved[size_t((14 * 32 + 17) * 3 + 1)], 255);
  EXPECT_EQ(moved[size_t((14 * 32 + 20) * 3)], 255);
  // Panning right by 4 px (0.1 x 40 px per unit) shifts the ground left by 4 px (away from the
  // sprite).
  auto panned = b.step(s.parse_frame(". 0.1 0"));
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x + 4 < 32; ++x) {
      bool sprite = (x >= 14 && x < 18) || (x + 4 >= 14 && x + 4 < 18);
      if (sprite && y >= 14 && y < 18) continue;
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(panned[size_t((y * 32 + x) * 3 + c)], f0[size_t((y * 32 + x + 4) * 3 + c)]);
    }
  Tensor t = frames_to_tensor({f0, moved});
  EXPECT_EQ(t.shape(), (Shape{1, 3, 2, 32, 32}));
  EXPECT_THROW(w.step(ActionSpace().idle()), Error);  // 4 keys, the world needs 5
}

}  // namespace
}  // namespace ember::world
