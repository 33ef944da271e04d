#include "ember/world/synthetic.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "ember/core/error.h"

namespace ember::world {

namespace {

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

uint32_t hash2(int64_t a, int64_t b) {
  uint32_t h = uint32_t(uint64_t(a * 73856093)) ^ uint32_t(uint64_t(b * 19349663));
  h ^= h >> 13;
  h *= 0x5BD1E995u;
  h ^= h >> 15;
  return h;
}

constexpr std::array<std::array<int, 3>, 6> kPalette{{{200, 60, 50},
                                                      {60, 170, 80},
                                                      {50, 90, 200},
                                                      {220, 190, 60},
                                                      {150, 70, 170},
                                                      {90, 200, 210}}};

std::array<uint8_t, 3> texel(int64_t u, int64_t v) {
  const auto& base = kPalette[hash2(floor_div(u, 8), floor_div(v, 8)) % kPalette.size()];
  const int shade = ((floor_div(u, 2) + floor_div(v, 2)) % 2 != 0) ? 30 : 0;
  return {uint8_t(std::max(0, base[0] - shade)), uint8_t(std::max(0, base[1] - shade)),
          uint8_t(std::max(0, base[2] - shade))};
}

// Camera pixels per mouse unit and sprite pixels per frame per key (tools/world/synthetic.py's PAN
// and STEP).
constexpr double kPan = 40.0;
constexpr int64_t kStep = 3;

int64_t pan(float d) { return int64_t(std::floor(double(d) * kPan + 0.5)); }

}  // namespace

ActionSpace synthetic_action_space() { return ActionSpace({{"jump", "Space", ' '}}); }

SyntheticWorld::SyntheticWorld(int64_t seed) : cam_x_((seed * 37) % 256), cam_y_((seed * 91) % 256) {}

std::vector<uint8_t> SyntheticWorld::step(const Action& a) {
  EMBER_CHECK(a.keys.size() == 5, "synthetic world: action has {} keys, expected 5 (W S A D Space)",
              a.keys.size());
  EMBER_CHECK(std::isfinite(a.mouse.dx) && std::isfinite(a.mouse.dy),
              "synthetic world: mouse is not finite");
  cam_x_ += pan(a.mouse.dx);
  cam_y_ -= pan(a.mouse.dy);
  y_ += kStep * (int64_t(a.keys[1]) - int64_t(a.keys[0]));
  x_ += kStep * (int64_t(a.keys[3]) - int64_t(a.keys[2]));
  x_ = std::clamp<int64_t>(x_, 0, kSize - kSprite);
  y_ = std::clamp<int64_t>(y_, 2, kSize - kSprite);
  return render(a.keys[4] != 0);
}

std::vector<uint8_t> SyntheticWorld::render(bool hop) const {
  std::vector<uint8_t> out;
  out.reserve(size_t(kSize * kSize * 3));
  const int64_t sy = y_ - (hop ? 2 : 0);
  for (int64_t y = 0; y < kSize; ++y)
    for (int64_t x = 0; x < kSize; ++x) {
      std::array<uint8_t, 3> c;
      if (x >= x_ && x < x_ + kSprite && y >= sy && y < sy + kSprite) {
        const bool edge = x == x_ || x == x_ + kSprite - 1 || y == sy || y == sy + kSprite - 1;
        c = edge ? std::array<uint8_t, 3>{255, 255, 255} : std::array<uint8_t, 3>{240, 40, 40};
      } else {
        c = texel(x + cam_x_, y + cam_y_);
      }
      out.insert(out.end(), c.begin(), c.end());
    }
  return out;
}

std::vector<std::vector<uint8_t>> synthetic_rollout(const std::vector<Action>& actions, int64_t seed) {
  SyntheticWorld w(seed);
  std::vector<std::vector<uint8_t>> frames;
  if (actions.empty()) return frames;
  frames.push_back(w.render());
  for (size_t i = 0; i + 1 < actions.size(); ++i) frames.push_back(w.step(actions[i]));
  return frames;
}

Tensor frames_to_tensor(const std::vector<std::vector<uint8_t>>& frames) {
  const int64_t F = int64_t(frames.size()), S = SyntheticWorld::kSize;
  std::vector<float> v(size_t(3 * F * S * S));
  for (int64_t f = 0; f < F; ++f) {
    EMBER_CHECK(int64_t(frames[size_t(f)].size()) == S * S * 3, "frames_to_tensor: frame {} has {} bytes",
                f, frames[size_t(f)].size());
    for (int64_t i = 0; i < S * S; ++i)
      for (int64_t ch = 0; ch < 3; ++ch)
        v[size_t((ch * F + f) * S * S + i)] = float(frames[size_t(f)][size_t(i * 3 + ch)]) / 127.5f - 1.f;
  }
  return Tensor::from_vector(v, {1, 3, F, S, S});
}

}  // namespace ember::world
