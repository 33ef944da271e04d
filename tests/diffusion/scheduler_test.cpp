// Schedulers, retrieve_timesteps and guidance against goldens from diffusers and ACE-Step
// (tests/golden/diffusion_golden.py), on every device.
#include <gtest/gtest.h>

#include "ember/diffusion/guidance.h"
#include "ember/diffusion/scheduler.h"
#include "ember/formats/safetensors.h"
#include "ember/ops.h"
#include "test_util.h"

namespace ember::diffusion {
namespace {

const formats::safetensors::File& golden() {
  static const auto f =
      formats::safetensors::File::open(std::string(EMBER_TEST_DATA_DIR) + "/diffusion/diffusion_golden.safetensors");
  return f;
}
std::vector<float> gv(const std::string& n) { return golden().get(n).to_vector<float>(); }
Tensor gt(const std::string& n, Device d) { return golden().get(n).to(d); }

void expect_schedule(const Scheduler& s, const std::string& name) {
  EXPECT_TRUE(test::all_close(s.timesteps(), gv(name + ".timesteps"), 1e-6f, 1e-5f)) << name;
  EXPECT_TRUE(test::all_close(s.sigmas(), gv(name + ".sigmas"), 1e-6f, 1e-7f)) << name;
}

TEST(Schedules, EulerMatchesDiffusers) {
  for (auto [n, shift, name] : {std::tuple{10, 1.0, "euler_n10_s1.0"}, std::tuple{20, 3.0, "euler_n20_s3.0"},
                                std::tuple{27, 2.5, "euler_n27_s2.5"}}) {
    FlowMatchEuler s({.shift = shift});
    s.set_timesteps(n);
    expect_schedule(s, name);
  }
  FlowMatchEuler dyn({.use_dynamic_shifting = true});
  dyn.set_timesteps(12, 0.8);
  expect_schedule(dyn, "euler_dynamic");
  FlowMatchEuler lin({.use_dynamic_shifting = true, .time_shift_type = "linear"});
  lin.set_timesteps(12, 0.8);
  expect_schedule(lin, "euler_dynamic_linear");
  FlowMatchEuler term({.shift = 3.0, .shift_terminal = 0.1});
  term.set_timesteps(15);
  expect_schedule(term, "euler_terminal");
  FlowMatchEuler karras({.shift = 3.0, .use_karras_sigmas = true});
  karras.set_timesteps(9);
  expect_schedule(karras, "euler_karras");
  FlowMatchEuler expo({.shift = 3.0, .use_exponential_sigmas = true});
  expo.set_timesteps(9);
  expect_schedule(expo, "euler_exponential");
  FlowMatchEuler beta({.shift = 3.0, .use_beta_sigmas = true});
  beta.set_timesteps(9);
  expect_schedule(beta, "euler_beta");
  FlowMatchEuler inv({.shift = 2.0, .invert_sigmas = true});
  inv.set_timesteps(8);
  expect_schedule(inv, "euler_invert");
  FlowMatchEuler cs({.shift = 3.0});
  cs.set_sigmas({1.0f, 0.8f, 0.55f, 0.3f, 0.1f});
  expect_schedule(cs, "euler_custom_sigmas");
  FlowMatchEuler ct({.shift = 3.0});
  ct.set_custom_timesteps({1000.f, 750.f, 420.f, 100.f});
  expect_schedule(ct, "euler_custom_timesteps");
}

TEST(Schedules, HeunAndPingPongMatchTheirReferences) {
  FlowMatchHeun h({.shift = 3.0});
  h.set_timesteps(8);
  expect_schedule(h, "heun_n8_s3.0");
  PingPong p({.shift = 3.0});
  p.set_timesteps(10);
  expect_schedule(p, "pingpong_n10_s3.0");
}

TEST(Schedules, RetrieveTimestepsAndMisuse) {
  FlowMatchEuler s({.shift = 3.0});
  auto r = retrieve_timesteps(s, 20);
  EXPECT_EQ(r.num_inference_steps, 20);
  EXPECT_TRUE(test::all_close(r.timesteps, gv("euler_n20_s3.0.timesteps"), 1e-6f, 1e-5f));
  r = retrieve_timesteps(s, std::nullopt, std::nullopt, std::vector<float>{1.0f, 0.8f, 0.55f, 0.3f, 0.1f});
  EXPECT_EQ(r.num_inference_steps, 5);
  EXPECT_THROW(retrieve_timesteps(s, 5, std::vector<float>{1.f}, std::vector<float>{1.f}), Error);
  FlowMatchHeun h;
  EXPECT_THROW(retrieve_timesteps(h, std::nullopt, std::vector<float>{900.f, 500.f}), Error);
  EXPECT_THROW(retrieve_timesteps(h, std::nullopt, std::nullopt, std::vector<float>{0.9f}), Error);
  EXPECT_THROW(retrieve_timesteps(s, std::nullopt), Error);
  FlowMatchEuler fresh;
  EXPECT_THROW(fresh.step(zeros({2}), 1000.f, zeros({2})), Error);  // before set_timesteps
  fresh.set_timesteps(4);
  EXPECT_THROW(fresh.step(zeros({2}), 123.f, zeros({2})), Error);   // not in the schedule
  EXPECT_THROW(fresh.step(zeros({2}), fresh.timesteps()[0], zeros({3})), Error);
  FlowMatchEuler dyn({.use_dynamic_shifting = true});
  EXPECT_THROW(dyn.set_timesteps(4), Error);  // needs mu
  EXPECT_THROW(FlowMatchEuler({.use_karras_sigmas = true, .use_beta_sigmas = true}), Error);
  PingPong p;
  p.set_timesteps(3);
  EXPECT_THROW(p.step(zeros({2}), p.timesteps()[0], zeros({2})), Error);  // needs noise
}

TEST(Schedules, ScaleNoiseAndReset) {
  FlowMatchEuler s({.shift = 3.0});
  s.set_timesteps(10);
  const float t = s.timesteps()[3], sigma = s.sigmas()[3];
  Tensor x = full({4}, 2.0), n = full({4}, -1.0);
  auto v = s.scale_noise(x, t, n).to_vector<float>();
  EXPECT_NEAR(v[0], sigma * -1.0 + (1 - sigma) * 2.0, 1e-6);
  // img2img: start at begin index 3; step counts from there; reset forgets it.
  s.set_begin_index(3);
  s.step(zeros({4}), s.timesteps()[3], x);
  EXPECT_EQ(*s.step_index(), 4);
  s.reset();
  EXPECT_FALSE(s.step_index().has_value());
  EXPECT_THROW(s.set_begin_index(10), Error);
  EXPECT_THROW(s.scale_noise(x, t, zeros({3})), Error);
}

class Trajectories : public testing::TestWithParam<Device> {
 protected:
  // Runs `steps` of a scheduler on the golden x0 with v = 0.5 x + 0.001 t, checking every step.
  void run(Scheduler& s, int64_t steps, const std::string& name, float omega = 0.f, bool noise = false) {
    Device d = GetParam();
    s.set_timesteps(steps);
    Tensor x = gt("traj.x0", d);
    Tensor ref = gt("traj." + name, d);
    Tensor noises = noise ? gt("traj.pingpong_noise", d) : Tensor();
    ASSERT_EQ(ref.dim(0), int64_t(s.timesteps().size()));
    for (size_t i = 0; i < s.timesteps().size(); ++i) {
      const float t = s.timesteps()[i];
      Tensor v = add(mul(x, 0.5), full({}, double(0.001f * t), DType::F32, d));
      StepOptions o{.omega = omega};
      if (noise) o.noise = noises.select(0, int64_t(i));
      x = s.step(v, t, x, o);
      ASSERT_TRUE(test::all_close(x, ref.select(0, int64_t(i)).contiguous().to_vector<float>(), 1e-5f, 1e-5f))
          << name << " step " << i;
    }
  }
};

TEST_P(Trajectories, DiffusersEulerAndHeun) {
  FlowMatchEuler e({.shift = 3.0});
  run(e, 10, "euler");
  FlowMatchHeun h({.shift = 3.0});
  run(h, 5, "heun");
}

TEST_P(Trajectories, AceStepEulerHeunWithOmegaAndPingPong) {
  FlowMatchEuler e0({.shift = 3.0, .acestep_update = true});
  run(e0, 10, "ace_euler_omega0");
  FlowMatchEuler e5({.shift = 3.0, .acestep_update = true});
  run(e5, 10, "ace_euler_omega5", 5.f);
  FlowMatchHeun h5({.shift = 3.0, .acestep_update = true});
  run(h5, 5, "ace_heun_omega5", 5.f);
  PingPong p({.shift = 3.0});
  run(p, 10, "pingpong", 0.f, true);
}

TEST_P(Trajectories, Guidance) {
  Device d = GetParam();
  Tensor c = gt("guid.cond", d), u = gt("guid.uncond", d), t = gt("guid.text", d);
  EXPECT_TRUE(test::all_close(cfg(c, u, 4.5f), gv("guid.cfg"), 1e-5f, 1e-6f));
  EXPECT_TRUE(test::all_close(cfg_double_condition(c, u, t, 5.f, 2.5f), gv("guid.double"), 1e-5f, 1e-5f));
  MomentumBuffer buf;
  Tensor ref = gt("guid.apg_momentum", d);
  for (int i = 0; i < 4; ++i) {
    Tensor ci = mul(c, 1 + 0.1 * i), ui = sub(u, full({}, 0.05 * i, DType::F32, d));
    Tensor out = apg(ci, ui, 3.f, &buf, {.eta = 0.2f, .norm_threshold = 2.5f});
    EXPECT_TRUE(test::all_close(out, ref.select(0, i).contiguous().to_vector<float>(), 1e-5f, 1e-5f)) << i;
  }
  EXPECT_TRUE(test::all_close(apg(c, u, 3.f, nullptr, {.eta = 0.f, .norm_threshold = 0.f}), gv("guid.apg_plain"), 1e-5f, 1e-5f));
  EXPECT_TRUE(test::all_close(apg(c, u, 2.f, nullptr, {.eta = 0.5f, .norm_threshold = 1.f, .dims = {-1}}),
                              gv("guid.apg_dims"), 1e-5f, 1e-5f));
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(test::all_close(cfg_zero_star(c, u, 4.f, i), gv("guid.zero_star" + std::to_string(i)), 1e-5f, 1e-5f)) << i;
  EXPECT_THROW(cfg(c, zeros({2, 3}, DType::F32, d), 1.f), Error);
}

EMBER_INSTANTIATE_DEVICES(Trajectories);

}  // namespace
}  // namespace ember::diffusion
