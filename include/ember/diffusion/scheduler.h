#pragma once
// Flow-matching schedulers (spec/diffusion.md): a common interface and diffusers' Euler and Heun
// and ACE-Step's PingPong, each reproducing its reference's schedule and update exactly.
#include <optional>
#include <string>
#include <vector>

#include "ember/core/generator.h"
#include "ember/core/tensor.h"

namespace ember::diffusion {

// Per-step extras. omega: ACE-Step's mean-preserving scale (0 = plain step). generator: noise for
// stochastic steps (PingPong, stochastic Euler); noise: an explicit draw in the sample's shape
// (takes precedence; lets tests feed the reference's noise).
struct StepOptions {
  float omega = 0.0f;
  Generator* generator = nullptr;
  std::optional<Tensor> noise;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual std::string name() const = 0;
  virtual int order() const { return 1; }

  // Exactly one of: a step count, custom sigmas, custom timesteps. mu: dynamic shifting.
  virtual void set_timesteps(int64_t num_inference_steps, std::optional<double> mu = std::nullopt) = 0;
  virtual void set_sigmas(const std::vector<float>& sigmas, std::optional<double> mu = std::nullopt);
  virtual void set_custom_timesteps(const std::vector<float>& timesteps,
                                    std::optional<double> mu = std::nullopt);
  virtual bool accepts_sigmas() const { return false; }
  virtual bool accepts_timesteps() const { return false; }

  const std::vector<float>& timesteps() const { return timesteps_; }
  const std::vector<float>& sigmas() const { return sigmas_; }  // with the terminal sigma appended
  int64_t num_inference_steps() const { return num_inference_steps_; }
  std::optional<int64_t> step_index() const { return step_index_; }
  void set_begin_index(int64_t index);

  // prev_sample from the model output at `timestep` (one of timesteps()). Math in f32; the result
  // takes model_output's dtype.
  virtual Tensor step(const Tensor& model_output, float timestep, const Tensor& sample,
                      const StepOptions& options = {}) = 0;
  // Forward process: sigma * noise + (1 - sigma) * sample at `timestep` (img2img starts).
  Tensor scale_noise(const Tensor& sample, float timestep, const Tensor& noise) const;
  // Forgets the step position (the schedule stays).
  virtual void reset();

 protected:
  // diffusers' index_for_timestep: the second match if the timestep occurs twice.
  int64_t index_for_timestep(float timestep) const;
  void init_step_index(float timestep);
  void require_schedule(const char* what) const;
  // Checks a step's arguments, finds the step index and that `lookahead` more sigmas exist.
  int64_t begin_step(const Tensor& model_output, float timestep, const Tensor& sample, int64_t lookahead);
  // StepOptions' noise, or a draw from its generator, in the sample's shape.
  Tensor step_noise(const StepOptions& o, const Tensor& sample) const;

  std::vector<float> timesteps_, sigmas_;
  int64_t num_inference_steps_ = 0;
  std::optional<int64_t> step_index_, begin_index_;
};

struct FlowMatchConfig {
  int64_t num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5, max_shift = 1.15;
  int64_t base_image_seq_len = 256, max_image_seq_len = 4096;
  bool invert_sigmas = false;
  std::optional<double> shift_terminal;
  bool use_karras_sigmas = false;
  bool use_exponential_sigmas = false;
  bool use_beta_sigmas = false;
  std::string time_shift_type = "exponential";  // or "linear"
  bool stochastic_sampling = false;
  std::optional<double> sigma_max;  // ACE-Step's PingPong config field (caps the schedule)
  // ACE-Step's copies of Euler/Heun always take the omega mean-shift update (equal to diffusers'
  // in exact arithmetic at omega 0, not bit for bit).
  bool acestep_update = false;
  void validate() const;
};

// mu for dynamic shifting from an image sequence length (diffusers' calculate_shift).
double calculate_shift(int64_t image_seq_len, const FlowMatchConfig& config);

// diffusers FlowMatchEulerDiscreteScheduler.
class FlowMatchEuler : public Scheduler {
 public:
  explicit FlowMatchEuler(FlowMatchConfig config = {});
  std::string name() const override { return "flow-match-euler"; }
  const FlowMatchConfig& config() const { return config_; }
  void set_timesteps(int64_t n, std::optional<double> mu = std::nullopt) override;
  void set_sigmas(const std::vector<float>& sigmas, std::optional<double> mu = std::nullopt) override;
  void set_custom_timesteps(const std::vector<float>& t, std::optional<double> mu = std::nullopt) override;
  bool accepts_sigmas() const override { return true; }
  bool accepts_timesteps() const override { return true; }
  Tensor step(const Tensor& model_output, float timestep, const Tensor& sample,
              const StepOptions& options = {}) override;

 protected:
  // The full set_timesteps of the reference; sigmas/timesteps given as float32 values or absent.
  void build(std::optional<int64_t> n, const std::vector<float>* sigmas,
             const std::vector<float>* timesteps, std::optional<double> mu);
  FlowMatchConfig config_;
  double sigma_min_, sigma_max_;
};

// diffusers FlowMatchHeunDiscreteScheduler: two model calls per interval.
class FlowMatchHeun : public Scheduler {
 public:
  explicit FlowMatchHeun(FlowMatchConfig config = {});
  std::string name() const override { return "flow-match-heun"; }
  int order() const override { return 2; }
  void set_timesteps(int64_t n, std::optional<double> mu = std::nullopt) override;
  Tensor step(const Tensor& model_output, float timestep, const Tensor& sample,
              const StepOptions& options = {}) override;
  bool state_in_first_order() const { return !prev_derivative_.defined(); }
  void reset() override;

 private:
  FlowMatchConfig config_;
  double sigma_min_, sigma_max_;
  Tensor prev_derivative_, prev_sample_;
  float prev_dt_ = 0;
};

// ACE-Step's FlowMatchPingPongScheduler: denoise to x0, re-noise to the next sigma with fresh noise.
class PingPong : public FlowMatchEuler {
 public:
  explicit PingPong(FlowMatchConfig config = {});
  std::string name() const override { return "pingpong"; }
  Tensor step(const Tensor& model_output, float timestep, const Tensor& sample,
              const StepOptions& options = {}) override;
};

// ACE-Step's omega rescale of an update dx: (dx - mean(dx)) * omega' + mean(dx),
// omega' = 0.9 + 0.2 / (1 + exp(-0.1 omega)); omega = 0 leaves dx unchanged in exact arithmetic.
Tensor apply_omega(const Tensor& dx, float omega);

// diffusers' retrieve_timesteps: step count, or custom timesteps, or custom sigmas (not both).
struct RetrievedTimesteps {
  std::vector<float> timesteps;
  int64_t num_inference_steps;
};
RetrievedTimesteps retrieve_timesteps(Scheduler& scheduler, std::optional<int64_t> num_inference_steps,
                                      const std::optional<std::vector<float>>& timesteps = std::nullopt,
                                      const std::optional<std::vector<float>>& sigmas = std::nullopt,
                                      std::optional<double> mu = std::nullopt);

}  // namespace ember::diffusion
