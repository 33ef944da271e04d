#include "ember/world/model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ember/formats/safetensors.h"
#include "ember/ops.h"
#include "ember/world/action.h"
#include "test_util.h"

namespace ember::world {
namespace {

// world_golden: a file without the camera keys (camera heads off), one clip; world_golden_camera:
// one of two heads camera-aware, two clips with different mice (tests/golden/world_golden.py).
std::string golden_path(const std::string& name) {
  return std::string(EMBER_TEST_DATA_DIR) + "/world/" + name + ".safetensors";
}

// max |a - b| / max |b|: the relative error the parity target (1e-4) is stated in.
double rel_err(const Tensor& a, const Tensor& b) {
  auto x = a.to(Device::cpu()).contiguous().to_vector<float>();
  auto y = b.to(Device::cpu()).contiguous().to_vector<float>();
  EXPECT_EQ(x.size(), y.size());
  double d = 0, m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    d = std::max(d, double(std::fabs(x[i] - y[i])));
    m = std::max(m, double(std::fabs(y[i])));
  }
  return d / m;
}

class WorldModelGolden : public testing::TestWithParam<std::tuple<std::string, Device>> {
 protected:
  void SetUp() override {
    const std::string path = golden_path(std::get<0>(GetParam()));
    file_ = std::make_unique<formats::safetensors::File>(formats::safetensors::File::open(path));
    model_ = std::make_unique<WorldModel>(WorldModel::load(path, dev()));
  }
  Device dev() const { return std::get<1>(GetParam()); }
  Tensor g(const std::string& name) const {
    return file_->get("golden." + name).to(DType::F32).contiguous().to(dev());
  }
  std::vector<float> t_full() const { return g("t_full").to(Device::cpu()).to_vector<float>(); }
  struct Clip {
    Tensor x, mouse, keyboard;
    std::vector<float> t;
  };
  // A random clip with one frame per action of `compact` and timesteps step * f mod 1000.
  Clip random_clip(Generator& gen, int64_t H, int64_t W, const std::string& compact, int step) const {
    ActionSpace space({{"jump", "Space", ' '}});
    ActionTensors at = space.to_tensors(space.parse_compact(compact));
    const int64_t F = at.keyboard.dim(1);
    Clip c{randn({1, 3, F, H, W}, gen, DType::F32, dev()), at.mouse.to(dev()), at.keyboard.to(dev()), {}};
    for (int64_t f = 0; f < F; ++f) c.t.push_back(float(step * f % 1000));
    return c;
  }
  std::unique_ptr<formats::safetensors::File> file_;
  std::unique_ptr<WorldModel> model_;
};

TEST_P(WorldModelGolden, FullBlockCausalForwardMatchesPyTorch) {
  Tensor v = model_->forward(g("clip"), t_full(), g("mouse"), g("keyboard"));
  double e = rel_err(v, g("full_v"));
  RecordProperty("rel_err", std::to_string(e));
  std::printf("world full forward: rel err %.3g\n", e);
  EXPECT_LT(e, 1e-4);
}

TEST_P(WorldModelGolden, StreamingBlocksMatchPyTorchFullForward) {
  const auto& c = model_->config();
  Tensor clip = g("clip"), mouse = g("mouse"), kb = g("keyboard");
  auto t = t_full();
  WorldState st = model_->make_state(clip.dim(0), clip.dim(3), clip.dim(4));
  std::vector<Tensor> outs;
  for (int64_t f = 0; f < clip.dim(2); f += c.frames_per_block) {
    std::vector<float> tb(t.begin() + f, t.begin() + f + c.frames_per_block);
    outs.push_back(model_->forward_block(clip.narrow(2, f, c.frames_per_block).contiguous(), tb,
                                         mouse, kb, st, true));
  }
  double e = rel_err(cat(outs, 2), g("full_v"));
  std::printf("world streaming blocks vs full: rel err %.3g\n", e);
  EXPECT_LT(e, 1e-4);
}

TEST_P(WorldModelGolden, FewStepSamplingPerBlockMatchesPyTorch) {
  const auto& c = model_->config();
  Tensor n0 = g("noise0"), n1 = g("noise1"), mouse = g("mouse"), kb = g("keyboard");
  SampleOptions o;
  o.sigmas = g("sigmas").to(Device::cpu()).to_vector<float>();
  WorldState st = model_->make_state(n0.dim(0), n0.dim(3), n0.dim(4));
  std::vector<Tensor> outs;
  for (int64_t f = 0; f < n0.dim(2); f += c.frames_per_block) {
    outs.push_back(model_->sample_block(n0.narrow(2, f, c.frames_per_block).contiguous(), mouse, kb,
                                        st, o, {n1.narrow(2, f, c.frames_per_block).contiguous()}));
    double e = rel_err(outs.back(), g("sample_x0").narrow(2, f, c.frames_per_block));
    std::printf("world sampled block at frame %lld: rel err %.3g\n", (long long)f, e);
    EXPECT_LT(e, 1e-4) << "block at frame " << f;
  }
  EXPECT_EQ(st.next_frame, n0.dim(2));
}

// Ember only: a longer clip (the window slides, sinks stay), uncommitted passes in between.
TEST_P(WorldModelGolden, ChunkedStreamingEqualsFullBlockCausalOnLongerClip) {
  const auto& c = model_->config();
  const int64_t F = 12, H = 16, W = 16;
  Generator gen(5);
  auto [clip, mouse, kb, t] = random_clip(gen, H, W, "W W+D@0.1,0 . S@0,-0.2 A A+Space D .@0.3,0.1 W W S+A W", 37);
  ASSERT_EQ(clip.dim(2), F);
  Tensor full = model_->forward(clip, t, mouse, kb);
  WorldState st = model_->make_state(1, H, W);
  std::vector<Tensor> outs;
  for (int64_t f = 0; f < F; f += c.frames_per_block) {
    Tensor blk = clip.narrow(2, f, c.frames_per_block).contiguous();
    std::vector<float> tb(t.begin() + f, t.begin() + f + c.frames_per_block);
    // A denoising-step pass on other inputs first: it must leave no trace in the caches.
    Tensor junk = randn(blk.shape(), gen, DType::F32, dev());
    model_->forward_block(junk, std::vector<float>(tb.size(), 500.f), mouse, kb, st, false);
    outs.push_back(model_->forward_block(blk, tb, mouse, kb, st, true));
  }
  double e = rel_err(cat(outs, 2), full);
  std::printf("world chunked vs full (12 frames): rel err %.3g\n", e);
  EXPECT_LT(e, 1e-5);
}

// A player's rolling action buffer (action_offset > 0, only the rows a block reads): the same as
// the whole action history. With camera heads the state's camera carries the older mouse.
TEST_P(WorldModelGolden, RollingActionBufferEqualsTheWholeHistory) {
  const auto& c = model_->config();
  const int64_t F = 10, H = 16, W = 16, r = c.action.frames_per_latent;
  const int64_t pad_t = r * c.action.windows_size;
  Generator gen(6);
  auto [clip, mouse, kb, t] =
      random_clip(gen, H, W, ".@0.1,0 D@0.2,-0.1 .@-0.3,0 W .@0,0.2 A@0.1,0.1 S .@-0.2,-0.2 D@0.3,0 W", 53);
  ASSERT_EQ(clip.dim(2), F);
  Tensor full = model_->forward(clip, t, mouse, kb);
  WorldState st = model_->make_state(1, H, W);
  std::vector<Tensor> outs;
  for (int64_t f = 0; f < F; f += c.frames_per_block) {
    const int64_t first = std::max<int64_t>(0, r * f - pad_t), last = r * (f + c.frames_per_block - 1);
    st.action_offset = first;
    Tensor m = mouse.narrow(1, first, last + 1 - first).contiguous();
    Tensor k = kb.narrow(1, first, last + 1 - first).contiguous();
    std::vector<float> tb(t.begin() + f, t.begin() + f + c.frames_per_block);
    outs.push_back(model_->forward_block(clip.narrow(2, f, c.frames_per_block).contiguous(), tb, m, k,
                                         st, true));
  }
  double e = rel_err(cat(outs, 2), full);
  std::printf("world rolling action buffer vs full: rel err %.3g\n", e);
  EXPECT_LT(e, 1e-5);
}

TEST_P(WorldModelGolden, LongRolloutKeepsCacheSizeConstant) {
  const auto& c = model_->config();
  WorldState st = model_->make_state(1, 16, 16);
  const int64_t frames = 40;
  ActionSpace space({{"jump", "Space", ' '}});
  std::vector<Action> acts(size_t(frames), space.idle());
  ActionTensors at = space.to_tensors(acts);
  Tensor kb = at.keyboard.to(dev()), mouse = at.mouse.to(dev());
  Generator gen(9);
  SampleOptions o;
  o.sigmas = {1.0f, 0.5f};
  const int64_t cap = st.self[0].capacity();
  for (int64_t f = 0; f < frames; f += c.frames_per_block) {
    Tensor n = randn({1, 3, c.frames_per_block, 16, 16}, gen, DType::F32, dev());
    Tensor x = model_->sample_block(n, mouse, kb, st, o, {}, &gen);
    ASSERT_EQ(x.shape(), n.shape());
    EXPECT_EQ(st.self[0].capacity(), cap);
    const int64_t S = 16, end = f + c.frames_per_block;
    for (int64_t p : st.self[0].positions())
      if (p >= 0) {
        EXPECT_TRUE(p < c.sink_frames * S || p >= (end - c.local_attn_frames) * S) << p;
      }
  }
  EXPECT_EQ(st.next_frame, frames);
}

TEST_P(WorldModelGolden, BadInputsGiveClearErrors) {
  Tensor clip = g("clip"), mouse = g("mouse"), kb = g("keyboard");
  auto t = t_full();
  auto msg = [&](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg([&] { model_->forward(clip, t, mouse.narrow(1, 0, 3), kb); }).find("mouse must be"),
            std::string::npos);
  EXPECT_NE(msg([&] { model_->forward(clip, t, mouse, kb.narrow(2, 0, 4)); }).find("keyboard must be"),
            std::string::npos);
  EXPECT_NE(msg([&] { model_->forward(clip, {0.f}, mouse, kb); }).find("1 timesteps for 6 frames"),
            std::string::npos);
  EXPECT_NE(msg([&] { model_->forward(clip.narrow(2, 0, 3), {0, 0, 0}, mouse, kb); }).find("multiple"),
            std::string::npos);
  WorldState st = model_->make_state(1, 16, 16);
  EXPECT_NE(msg([&] { model_->forward_block(clip, t, mouse, kb, st, true); }).find("a block must be"),
            std::string::npos);
  EXPECT_THROW(model_->make_state(1, 15, 16), Error);
  EXPECT_NE(msg([] { WorldModel::load(std::string(EMBER_TEST_DATA_DIR) + "/world/none.safetensors"); })
                .size(),
            0u);
  EXPECT_NE(msg([] { WorldConfig::from_json("{\"dim\": 3}"); }).find("world config"), std::string::npos);
  WorldConfig cfg = model_->config();
  EXPECT_EQ(WorldConfig::from_json(cfg.to_json()).to_json(), cfg.to_json());
  WorldConfig bad = cfg;
  bad.camera_heads = cfg.heads + 1;
  EXPECT_NE(msg([&] { bad.validate(); }).find("camera_heads"), std::string::npos);
  bad = cfg;
  bad.camera_pan = std::nan("");
  EXPECT_NE(msg([&] { bad.validate(); }).find("camera_pan"), std::string::npos);
}

TEST_P(WorldModelGolden, ActionsAreCausalAndMatter) {
  // Latent frame f reads the actions of raw frames f-3 .. f-1: changing raw frame 3's keys and
  // mouse must leave frames 0..3 (blocks 0 and 1) unchanged and change frames 4 and 5.
  Tensor clip = g("clip"), mouse = g("mouse"), kb = g("keyboard");
  auto t = t_full();
  Tensor base = model_->forward(clip, t, mouse, kb).to(Device::cpu());
  Tensor kb2 = kb.to(Device::cpu()).clone(), mouse2 = mouse.to(Device::cpu()).clone();
  kb2.narrow(1, 3, 1).copy_from(sub(ones({kb.dim(0), 1, kb.dim(2)}), kb2.narrow(1, 3, 1)));
  mouse2.narrow(1, 3, 1).copy_from(full({mouse.dim(0), 1, 2}, 0.7));
  Tensor out = model_->forward(clip, t, mouse2.to(dev()), kb2.to(dev())).to(Device::cpu());
  EXPECT_LT(rel_err(out.narrow(2, 0, 4), base.narrow(2, 0, 4)), 1e-6);
  EXPECT_GT(rel_err(out.narrow(2, 4, 2), base.narrow(2, 4, 2)), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    WorldDevices, WorldModelGolden,
    testing::Combine(testing::Values(std::string("world_golden"), std::string("world_golden_camera")),
                     testing::ValuesIn(test::test_devices())),
    [](const testing::TestParamInfo<WorldModelGolden::ParamType>& info) {
      const std::string& f = std::get<0>(info.param);
      return (f == "world_golden" ? std::string("plain_") : std::string("camera_")) +
             test::device_test_name(testing::TestParamInfo<Device>(std::get<1>(info.param), info.index));
    });

}  // namespace
}  // namespace ember::world
