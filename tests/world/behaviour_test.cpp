// Behaviour of the shipped model (models/world/world32.safetensors, trained by
// tools/world/train.py): played from a synthetic prompt, does the generated world do what the
// synthetic world prescribes for the same actions? The sprite is found by its white border (no
// ground colour is near white), the camera pan by the best-aligning shift between frames; both
// detectors run on the synthetic truth too, so the expectation is the world's own.
//
// STATUS (model of 2026-11-23, fourth session: 465 s on an H100, 40-px/unit pans, two camera-aware
// RoPE heads): D and A take the sprite the truth's 14 px to the wall in all three worlds and no
// key keeps it exactly still; A in world 1 has one 2-px vertical jump where the sprite reaches the
// wall (frame 5 -> 6), hence the cross-axis tolerance of 2.5 px; the ground follows the mouse in
// 15 of 15 frame pairs each way. The models before the camera heads never used the mouse (ratio
// 0.0006-0.0008 in MouseChangesThePredictedVelocity; docs/world.md, "Why the mouse was ignored").
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "ember/core/generator.h"
#include "ember/core/process.h"
#include "ember/ops.h"
#include "ember/world/player.h"
#include "ember/world/synthetic.h"

namespace ember::world {
namespace {

const std::string kModel = std::string(EMBER_SOURCE_DIR) + "/models/world/world32.safetensors";
constexpr int kN = SyntheticWorld::kSize;

struct Point {
  double x = 0, y = 0;
};

// Centroid of the near-white pixels (the sprite's border), if any.
std::optional<Point> sprite(const Frame& f) {
  double sx = 0, sy = 0, n = 0;
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) {
      const uint8_t* p = &f[size_t((y * kN + x) * 3)];
      if (std::min({p[0], p[1], p[2]}) >= 150) sx += x, sy += y, n += 1;
    }
  if (n < 4) return std::nullopt;
  return Point{sx / n, sy / n};
}

// Horizontal shift s in [-8, 8] minimising mean |b(x, y) - a(x + s, y)| away from the sprite:
// the ground moves left by s pixels from a to b (camera right by s).
int ground_shift(const Frame& a, const Frame& b) {
  const auto c = sprite(a), d = sprite(b);
  auto near_sprite = [&](int x, int y) {
    return (c && std::abs(x - c->x) < 4 && std::abs(y - c->y) < 4) ||
           (d && std::abs(x - d->x) < 4 && std::abs(y - d->y) < 4);
  };
  int best = 0;
  double best_err = 1e30;
  for (int s = -8; s <= 8; ++s) {
    double err = 0, n = 0;
    for (int y = 0; y < kN; ++y)
      for (int x = std::max(0, -s); x < std::min(kN, kN - s); ++x) {
        if (near_sprite(x, y) || near_sprite(x + s, y)) continue;
        for (int ch = 0; ch < 3; ++ch)
          err += std::abs(int(b[size_t((y * kN + x) * 3 + ch)]) -
                          int(a[size_t((y * kN + x + s) * 3 + ch)]));
        n += 3;
      }
    if (n > 0 && err / n < best_err) best_err = err / n, best = s;
  }
  return best;
}

struct Rollout {
  std::vector<Frame> truth, model;  // frames 0 .. 1 + actions (prompt: frames 0 and 1)
};

// Prompt: the synthetic world's first two frames (idle); then `actions` lead into frames 2, 3, ...
Rollout play(const WorldModel& m, const std::vector<Action>& actions, int64_t seed) {
  const ActionSpace space = synthetic_action_space();
  std::vector<Action> all{space.idle()};
  all.insert(all.end(), actions.begin(), actions.end());
  all.push_back(space.idle());  // rollout returns one frame per action
  Rollout r;
  r.truth = synthetic_rollout(all, seed);
  WorldPlayer p(m, space, kN, kN, uint64_t(seed));
  p.prime({r.truth[0], r.truth[1]}, {space.idle()});
  r.model = {r.truth[0], r.truth[1]};
  for (size_t i = 0; i < actions.size(); i += 2) {
    auto fr = p.step({actions[i], actions[i + 1]});
    r.model.insert(r.model.end(), fr.begin(), fr.end());
  }
  return r;
}

class WorldBehaviour : public testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = new WorldModel(WorldModel::load(kModel)); }
  static void TearDownTestSuite() { delete model_; }
  static WorldModel* model_;
};
WorldModel* WorldBehaviour::model_ = nullptr;

Action with_keys(const std::string& keys, Mouse mouse = {}) {
  const ActionSpace space = synthetic_action_space();
  Action a = space.parse_compact(keys).at(0);
  a.mouse = mouse;
  return a;
}

constexpr double kCrossTol = 2.5;

// Sprite displacement, model vs truth, over 16 frames of one held action, for three worlds.
void expect_sprite_motion(const WorldModel& m, const std::string& keys, double tol) {
  for (int64_t seed : {1, 2, 3}) {
    const Rollout r = play(m, std::vector<Action>(16, with_keys(keys)), seed);
    const auto t0 = sprite(r.truth[1]), t1 = sprite(r.truth.back());
    ASSERT_TRUE(t0 && t1);
    for (size_t f = 2; f < r.model.size(); ++f) {
      const auto p = sprite(r.model[f]);
      ASSERT_TRUE(p) << keys << " seed " << seed << ": no sprite in generated frame " << f;
    }
    const auto m1 = sprite(r.model.back());
    std::printf("%s seed %lld: truth (%.2f, %.2f) -> (%.2f, %.2f), model -> (%.2f, %.2f)\n",
                keys.c_str(), static_cast<long long>(seed), t0->x, t0->y, t1->x, t1->y, m1->x,
                m1->y);
    // Along the motion within `tol`; across it within kCrossTol (see STATUS above).
    const bool moves_x = t1->x != t0->x, moves_y = t1->y != t0->y;
    EXPECT_NEAR(m1->x - t0->x, t1->x - t0->x, moves_y && !moves_x ? kCrossTol : tol) << keys << " seed " << seed;
    EXPECT_NEAR(m1->y - t0->y, t1->y - t0->y, moves_x && !moves_y ? kCrossTol : tol) << keys << " seed " << seed;
  }
}

TEST_F(WorldBehaviour, HoldingRightMovesTheSpriteRight) { expect_sprite_motion(*model_, "D", 1.5); }
TEST_F(WorldBehaviour, HoldingLeftMovesTheSpriteLeft) { expect_sprite_motion(*model_, "A", 1.5); }
TEST_F(WorldBehaviour, NoKeyKeepsTheSpriteStill) { expect_sprite_motion(*model_, ".", 1.0); }

// Mouse right (dx 0.1 = 4 px a frame): the ground slides left by the truth's shift each frame.
TEST_F(WorldBehaviour, MouseMotionPansTheView) {
  for (float dx : {0.1f, -0.1f}) {
    const int px = dx > 0 ? 4 : -4;
    const Rollout r = play(*model_, std::vector<Action>(16, with_keys(".", {dx, 0.f})), 4);
    std::vector<int> shifts;
    for (size_t f = 2; f + 1 < r.model.size(); ++f) {
      ASSERT_EQ(ground_shift(r.truth[f], r.truth[f + 1]), px);
      shifts.push_back(ground_shift(r.model[f], r.model[f + 1]));
    }
    int right = 0;
    for (int s : shifts) right += s == px;
    std::printf("pan dx %.1f: %d of %zu frame pairs shifted by the truth's 4 px; shifts found:", dx,
                right, shifts.size());
    for (int s : shifts) std::printf(" %d", s);
    std::printf("\n");
    EXPECT_GE(right, int(shifts.size()) * 3 / 4) << "dx " << dx;
  }
}

// Sensitivity, without sampling: prompt = frames 0 and 1 (idle), then the block of frames 2 and 3
// from one noise (sigma 1, so the input is the same whatever the action) under two held actions.
// How far apart are the predicted velocities (RMS), against how far apart the true frames are?
// A model that knows the action predicts x0 = noise - velocity close to the truth, so the ratio
// is near 1 (the shipped model's keys, D vs A: 1.06-1.11 on seeds 1-4; for the mouse less: the 4-px
// strips a pan brings in are unknown, predicted as a mean); one
// that ignores the action has ~0. Unlike the sampled rollouts this needs no detector and is fast.
double velocity_change_ratio(const WorldModel& m, const std::string& a_text, const std::string& b_text,
                             int64_t seed) {
  const ActionSpace space = synthetic_action_space();
  Generator gen(uint64_t(100 + seed));
  const Tensor noise = randn({1, 3, 2, kN, kN}, gen, DType::F32, Device::cpu());
  std::vector<std::vector<float>> v, truth;
  for (const auto& text : {a_text, b_text}) {
    const Action a = space.parse_compact(text).at(0);
    const auto tr = synthetic_rollout({space.idle(), a, a, space.idle()}, seed);
    truth.push_back(frames_to_tensor({tr[2], tr[3]}).to_vector<float>());
    WorldState st = m.make_state(1, kN, kN);
    const ActionTensors p = space.to_tensors({space.idle(), space.idle()});
    m.forward_block(frames_to_tensor({tr[0], tr[1]}), {0.f, 0.f}, p.mouse, p.keyboard, st, true);
    const ActionTensors at = space.to_tensors({space.idle(), a, a, a});
    v.push_back(m.forward_block(noise, {1000.f, 1000.f}, at.mouse, at.keyboard, st, false)
                    .contiguous().to_vector<float>());
  }
  auto rms = [](const std::vector<float>& x, const std::vector<float>& y) {
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += double(x[i] - y[i]) * (x[i] - y[i]);
    return std::sqrt(s / double(x.size()));
  };
  const double dv = rms(v[0], v[1]), dt = rms(truth[0], truth[1]);
  std::printf("%s vs %s seed %lld: velocity change %.5f, true frames change %.4f, ratio %.4f\n",
              a_text.c_str(), b_text.c_str(), static_cast<long long>(seed), dv, dt, dv / dt);
  return dv / dt;
}

TEST_F(WorldBehaviour, KeysChangeThePredictedVelocity) {
  for (int64_t seed : {1, 2, 3, 4}) EXPECT_GE(velocity_change_ratio(*model_, "D", "A", seed), 0.5);
}

// The shipped model gets 0.60-0.78 here; the ones before the camera heads got 0.0006-0.0008.
TEST_F(WorldBehaviour, MouseChangesThePredictedVelocity) {
  for (int64_t seed : {1, 2, 3, 4})
    EXPECT_GE(velocity_change_ratio(*model_, ".@0.1,0", ".@-0.1,0", seed), 0.3);
}

// Streaming: 2,000 frames of varied play keep memory flat (the cache holds sinks + window) and
// the sprite on screen to the end. Measured here (2 cores, ~3 min): resident 19.8 MB after 200
// frames, 19.9 MB after 2,000; the sprite missing in 5 of 2,000 frames. Release only: under the
// sanitizers it would take most of an hour.
TEST_F(WorldBehaviour, TwoThousandFrameRolloutKeepsMemoryFlatAndTheSprite) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "2,000 frames are too slow under AddressSanitizer; this runs in the Release suite";
#endif
  const ActionSpace space = synthetic_action_space();
  const auto truth = synthetic_rollout({space.idle(), space.idle()}, 5);
  WorldPlayer p(*model_, space, kN, kN, 5);
  p.prime({truth[0], truth[1]}, {space.idle()});
  // Walk right and left across the world, pan both ways, rest: all the keys, over and over.
  const auto pattern = space.parse_compact("D D D D A A A A W S .@0.1,0 .@-0.1,0 . . D+W A+S");
  uint64_t rss_after_warmup = 0;
  int lost = 0;
  for (int64_t b = 0; b < 1000; ++b) {
    const auto fr = p.step({pattern[size_t(2 * b) % pattern.size()], pattern[size_t(2 * b + 1) % pattern.size()]});
    for (const auto& f : fr) lost += !sprite(f);
    if (b == 100) rss_after_warmup = process_memory().resident;
  }
  const uint64_t rss_end = process_memory().resident;
  EXPECT_EQ(p.next_frame(), 2 + 2000);
  std::printf("rollout: resident %.1f MB after 200 frames, %.1f MB after 2000; sprite missing in %d frames\n",
              double(rss_after_warmup) / 1e6, double(rss_end) / 1e6, lost);
  if (rss_after_warmup > 0) {  // 0 where the system does not say
    EXPECT_LE(rss_end, rss_after_warmup + 4'000'000) << "memory grew over the rollout";
  }
  const auto last = p.step({space.idle(), space.idle()});
  EXPECT_TRUE(sprite(last.back())) << "no sprite after 2,000 frames";
  EXPECT_LE(lost, 20) << "the sprite went missing in " << lost << " of 2000 frames";
}

}  // namespace
}  // namespace ember::world
