#include "ember/diffusion/scheduler.h"

#include <algorithm>
#include <cmath>

#include "ember/ops.h"

namespace ember::diffusion {

namespace {

// The schedules are computed as the references compute them: numpy float64 arrays, or float32
// arrays when custom values arrive (np.float32); `Num` rounds after every operation in f32 mode.
struct Num {
  bool f32;
  double r(double x) const { return f32 ? double(float(x)) : x; }
};

// numpy.linspace(start, stop, n) in float64.
std::vector<double> linspace(double start, double stop, int64_t n) {
  std::vector<double> y(static_cast<size_t>(std::max<int64_t>(n, 0)));
  if (n == 1) {
    y[0] = start;
    return y;
  }
  const double step = (stop - start) / double(n - 1);
  for (int64_t i = 0; i < n; ++i) y[size_t(i)] = double(i) * step + start;
  if (n > 1) y[size_t(n - 1)] = stop;
  return y;
}

// torch f32 ops with python-float scalars (cast to f32): shift * s / (1 + (shift - 1) * s).
float shift_f32(float s, double shift) {
  float a = float(shift) * s;
  float b = 1.0f + float(shift - 1.0) * s;
  return a / b;
}

std::vector<float> to_f32(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// Inverse CDF of the Beta(a, b) distribution (scipy.stats.beta.ppf) by bisection on the
// regularized incomplete beta function, evaluated with its continued fraction.
double betacf(double a, double b, double x) {
  const int kMaxIter = 300;
  const double eps = 1e-16, fpmin = 1e-300;
  double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
  if (std::abs(d) < fpmin) d = fpmin;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= kMaxIter; ++m) {
    int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::abs(d) < fpmin) d = fpmin;
    c = 1 + aa / c;
    if (std::abs(c) < fpmin) c = fpmin;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::abs(d) < fpmin) d = fpmin;
    c = 1 + aa / c;
    if (std::abs(c) < fpmin) c = fpmin;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (std::abs(del - 1) < eps) break;
  }
  return h;
}
double betainc(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  double bt = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) +
                       b * std::log(1 - x));
  if (x < (a + 1) / (a + b + 2)) return bt * betacf(a, b, x) / a;
  return 1 - bt * betacf(b, a, 1 - x) / b;
}
double beta_ppf(double q, double a, double b) {
  if (q <= 0) return 0;
  if (q >= 1) return 1;
  double lo = 0, hi = 1;
  for (int i = 0; i < 200; ++i) {
    double mid = 0.5 * (lo + hi);
    (betainc(a, b, mid) < q ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

// ---------------- Scheduler ----------------

void Scheduler::set_sigmas(const std::vector<float>&, std::optional<double>) {
  throw_error("{}: this scheduler does not accept custom sigmas", name());
}
void Scheduler::set_custom_timesteps(const std::vector<float>&, std::optional<double>) {
  throw_error("{}: this scheduler does not accept custom timesteps", name());
}

void Scheduler::set_begin_index(int64_t index) {
  require_schedule("set_begin_index");
  EMBER_CHECK(index >= 0 && index < int64_t(timesteps_.size()),
              "{}: begin index {} outside the {} timesteps", name(), index, timesteps_.size());
  begin_index_ = index;
}

void Scheduler::reset() { step_index_.reset(), begin_index_.reset(); }

void Scheduler::require_schedule(const char* what) const {
  EMBER_CHECK(!timesteps_.empty(), "{}: {} before set_timesteps", name(), what);
}

int64_t Scheduler::index_for_timestep(float timestep) const {
  std::vector<int64_t> hits;
  for (size_t i = 0; i < timesteps_.size(); ++i)
    if (timesteps_[i] == timestep) hits.push_back(int64_t(i));
  EMBER_CHECK(!hits.empty(), "{}: timestep {} is not in the schedule", name(), timestep);
  return hits.size() > 1 ? hits[1] : hits[0];
}

int64_t Scheduler::begin_step(const Tensor& model_output, float timestep, const Tensor& sample, int64_t lookahead) {
  require_schedule("step");
  EMBER_CHECK(model_output.shape() == sample.shape(), "{}: model_output {} and sample {} differ in shape", name(),
              model_output.shape().str(), sample.shape().str());
  if (!step_index_) init_step_index(timestep);
  const int64_t i = *step_index_;
  EMBER_CHECK(i + lookahead < int64_t(sigmas_.size()) && i < int64_t(timesteps_.size()),
              "{}: step called after the last timestep", name());
  return i;
}

Tensor Scheduler::step_noise(const StepOptions& o, const Tensor& sample) const {
  Tensor noise = o.noise ? *o.noise
                 : o.generator ? randn(sample.shape(), *o.generator, DType::F32, sample.device())
                               : Tensor();
  EMBER_CHECK(noise.defined(), "{}: this step draws fresh noise: pass a generator or noise", name());
  EMBER_CHECK(noise.shape() == sample.shape(), "{}: noise {} does not match sample {}", name(), noise.shape().str(),
              sample.shape().str());
  return noise;
}

void Scheduler::init_step_index(float timestep) {
  step_index_ = begin_index_ ? *begin_index_ : index_for_timestep(timestep);
}

Tensor Scheduler::scale_noise(const Tensor& sample, float timestep, const Tensor& noise) const {
  require_schedule("scale_noise");
  EMBER_CHECK(sample.shape() == noise.shape(), "{}: scale_noise: noise {} does not match sample {}",
              name(), noise.shape().str(), sample.shape().str());
  int64_t idx = !begin_index_ ? index_for_timestep(timestep) : step_index_ ? *step_index_ : *begin_index_;
  const double sigma = sigmas_[size_t(idx)];
  // sigma * noise + (1 - sigma) * sample, with the sigma in the sample's dtype
  return add(mul(noise, sigma), mul(sample, 1.0 - sigma));
}

// ---------------- configuration ----------------

void FlowMatchConfig::validate() const {
  EMBER_CHECK(num_train_timesteps > 0, "flow-match: num_train_timesteps must be positive");
  EMBER_CHECK(shift > 0, "flow-match: shift must be positive, got {}", shift);
  EMBER_CHECK(int(use_karras_sigmas) + int(use_exponential_sigmas) + int(use_beta_sigmas) <= 1,
              "flow-match: only one of use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas");
  EMBER_CHECK(time_shift_type == "exponential" || time_shift_type == "linear",
              "flow-match: time_shift_type must be 'exponential' or 'linear', got '{}'",
              time_shift_type);
  if (shift_terminal)
    EMBER_CHECK(*shift_terminal < 1, "flow-match: shift_terminal must be < 1, got {}", *shift_terminal);
  if (sigma_max) EMBER_CHECK(*sigma_max > 0 && *sigma_max <= 1, "flow-match: sigma_max must be in (0, 1]");
}

double calculate_shift(int64_t image_seq_len, const FlowMatchConfig& c) {
  const double m = (c.max_shift - c.base_shift) / double(c.max_image_seq_len - c.base_image_seq_len);
  const double b = c.base_shift - m * double(c.base_image_seq_len);
  return double(image_seq_len) * m + b;
}

// The training schedule's end points (as __init__ computes them in f32).
static std::pair<double, double> train_sigma_range(const FlowMatchConfig& c) {
  const int64_t N = c.num_train_timesteps;
  // np.linspace(1, sigma_max * N, N, dtype=float32)[::-1]: first = sigma_max*N, last = 1.
  const float hi = float(c.sigma_max.value_or(1.0) * double(N)), lo = 1.0f;
  float smax = hi / float(N), smin = lo / float(N);
  if (!c.use_dynamic_shifting) smax = shift_f32(smax, c.shift), smin = shift_f32(smin, c.shift);
  return {double(smin), double(smax)};
}

// ---------------- Euler ----------------

FlowMatchEuler::FlowMatchEuler(FlowMatchConfig config) : config_(std::move(config)) {
  config_.validate();
  std::tie(sigma_min_, sigma_max_) = train_sigma_range(config_);
}

void FlowMatchEuler::set_timesteps(int64_t n, std::optional<double> mu) {
  EMBER_CHECK(n >= 1, "{}: num_inference_steps must be >= 1, got {}", name(), n);
  build(n, nullptr, nullptr, mu);
}
void FlowMatchEuler::set_sigmas(const std::vector<float>& sigmas, std::optional<double> mu) {
  EMBER_CHECK(!sigmas.empty(), "{}: custom sigmas are empty", name());
  build(std::nullopt, &sigmas, nullptr, mu);
}
void FlowMatchEuler::set_custom_timesteps(const std::vector<float>& t, std::optional<double> mu) {
  EMBER_CHECK(!t.empty(), "{}: custom timesteps are empty", name());
  build(std::nullopt, nullptr, &t, mu);
}

void FlowMatchEuler::build(std::optional<int64_t> n, const std::vector<float>* custom_sigmas,
                           const std::vector<float>* custom_timesteps, std::optional<double> mu) {
  const auto& c = config_;
  EMBER_CHECK(!c.use_dynamic_shifting || mu, "{}: mu must be given when use_dynamic_shifting is on",
              name());
  const double N = double(c.num_train_timesteps);
  std::vector<double> s;
  Num num{custom_sigmas || custom_timesteps};
  if (custom_sigmas) {
    s.assign(custom_sigmas->begin(), custom_sigmas->end());
  } else if (custom_timesteps) {
    for (float t : *custom_timesteps) s.push_back(num.r(double(t) / N));
  } else {
    for (double t : linspace(sigma_max_ * N, sigma_min_ * N, *n)) s.push_back(t / N);
  }
  const int64_t steps = int64_t(s.size());
  for (auto& x : s) {
    if (c.use_dynamic_shifting) {
      const double e = c.time_shift_type == "exponential" ? std::exp(*mu) : *mu;
      const double inv = num.r(num.r(1.0 / x) - 1.0);
      x = num.r(e / num.r(e + inv));
    } else {
      x = num.f32 ? double(shift_f32(float(x), c.shift)) : c.shift * x / (1 + (c.shift - 1) * x);
    }
  }
  if (c.shift_terminal) {
    const double scale = num.r((1 - s.back()) / num.r(1 - *c.shift_terminal));
    for (auto& x : s) x = num.r(1 - num.r(num.r(1 - x) / scale));
  }
  if (c.use_karras_sigmas || c.use_exponential_sigmas || c.use_beta_sigmas) {
    const double smin = double(float(s.back())), smax = double(float(s.front()));
    const double lo = num.f32 ? smin : s.back(), hi = num.f32 ? smax : s.front();
    std::vector<double> out;
    if (c.use_karras_sigmas) {
      const double rho = 7.0, min_inv = std::pow(lo, 1 / rho), max_inv = std::pow(hi, 1 / rho);
      for (double r : linspace(0, 1, steps)) out.push_back(std::pow(max_inv + r * (min_inv - max_inv), rho));
    } else if (c.use_exponential_sigmas) {
      for (double v : linspace(std::log(hi), std::log(lo), steps)) out.push_back(std::exp(v));
    } else {
      for (double t : linspace(0, 1, steps)) out.push_back(lo + beta_ppf(1 - t, 0.6, 0.6) * (hi - lo));
    }
    s = out;
  }
  std::vector<float> sig = to_f32(s);
  timesteps_.clear();
  for (float& x : sig) {
    if (c.invert_sigmas) x = 1.0f - x;
    timesteps_.push_back(x * float(c.num_train_timesteps));
  }
  sig.push_back(c.invert_sigmas ? 1.0f : 0.0f);
  sigmas_ = std::move(sig);
  num_inference_steps_ = steps;
  step_index_.reset();
  begin_index_.reset();
}

Tensor apply_omega(const Tensor& dx, float omega) {
  // logistic between 0.9 and 1.1 (k = 0.1), computed in float64 as numpy does
  const double w = 0.9 + 0.2 / (1.0 + std::exp(-0.1 * double(omega)));
  Tensor m = mean(dx.reshape({-1}), 0, false);  // scalar
  return add(mul(sub(dx, m), w), m);
}

Tensor FlowMatchEuler::step(const Tensor& model_output, float timestep, const Tensor& sample,
                            const StepOptions& o) {
  const int64_t i = begin_step(model_output, timestep, sample, 1);
  Tensor x = sample.to(DType::F32);
  const float sigma = sigmas_[size_t(i)], sigma_next = sigmas_[size_t(i + 1)];
  Tensor prev;
  if (config_.stochastic_sampling) {
    Tensor noise = step_noise(o, sample);
    Tensor x0 = sub(x, mul(model_output, sigma));
    prev = add(mul(x0, 1.0f - sigma_next), mul(noise.to(x0.dtype()), sigma_next));
  } else {
    const float dt = sigma_next - sigma;
    Tensor dx = mul(model_output, dt);
    prev = add(x, config_.acestep_update ? apply_omega(dx, o.omega) : dx);
  }
  step_index_ = i + 1;
  return prev.to(model_output.dtype());
}

// ---------------- Heun ----------------

FlowMatchHeun::FlowMatchHeun(FlowMatchConfig config) : config_(std::move(config)) {
  config_.validate();
  EMBER_CHECK(!config_.use_dynamic_shifting && !config_.stochastic_sampling,
              "flow-match-heun: dynamic shifting and stochastic sampling are not part of this scheduler");
  std::tie(sigma_min_, sigma_max_) = train_sigma_range(config_);
}

void FlowMatchHeun::set_timesteps(int64_t n, std::optional<double>) {
  EMBER_CHECK(n >= 1, "{}: num_inference_steps must be >= 1, got {}", name(), n);
  const double N = double(config_.num_train_timesteps), sh = config_.shift;
  std::vector<float> s;
  for (double t : linspace(sigma_max_ * N, sigma_min_ * N, n)) {
    double x = t / N;
    s.push_back(float(sh * x / (1 + (sh - 1) * x)));
  }
  timesteps_.clear();
  sigmas_.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    const float t = s[i] * float(config_.num_train_timesteps);
    timesteps_.push_back(t);
    if (i > 0) timesteps_.push_back(t);
  }
  for (size_t i = 0; i < s.size(); ++i) {
    sigmas_.push_back(s[i]);
    if (i > 0) sigmas_.push_back(s[i]);
  }
  sigmas_.push_back(0.0f);
  num_inference_steps_ = n;
  reset();
}

void FlowMatchHeun::reset() {
  Scheduler::reset();
  prev_derivative_ = prev_sample_ = Tensor();
  prev_dt_ = 0;
}

Tensor FlowMatchHeun::step(const Tensor& model_output, float timestep, const Tensor& sample,
                           const StepOptions& o) {
  const int64_t i = begin_step(model_output, timestep, sample, 0);
  Tensor x = sample.to(DType::F32);
  Tensor derivative;
  float dt;
  if (state_in_first_order()) {
    const float sigma = sigmas_[size_t(i)], sigma_next = sigmas_[size_t(i + 1)];
    const float sigma_hat = sigma * (0.0f + 1.0f);  // s_churn = 0: gamma = 0
    Tensor denoised = sub(x, mul(model_output, sigma));
    derivative = div(sub(x, denoised), full({}, sigma_hat, DType::F32, x.device()));
    dt = sigma_next - sigma_hat;
    prev_derivative_ = derivative;
    prev_dt_ = dt;
    prev_sample_ = x;
  } else {
    const float sigma_next = sigmas_[size_t(i)];
    Tensor denoised = sub(x, mul(model_output, sigma_next));
    derivative = div(sub(x, denoised), full({}, sigma_next, DType::F32, x.device()));
    derivative = mul(add(prev_derivative_, derivative), 0.5);
    dt = prev_dt_;
    x = prev_sample_;
    prev_derivative_ = prev_sample_ = Tensor();
  }
  Tensor dx = mul(derivative, dt);
  Tensor prev = add(x, config_.acestep_update ? apply_omega(dx, o.omega) : dx);
  step_index_ = i + 1;
  return prev.to(model_output.dtype());
}

// ---------------- PingPong ----------------

PingPong::PingPong(FlowMatchConfig config) : FlowMatchEuler(std::move(config)) {
  EMBER_CHECK(!config_.stochastic_sampling && !config_.use_karras_sigmas &&
                  !config_.use_exponential_sigmas && !config_.use_beta_sigmas && !config_.shift_terminal &&
                  !config_.invert_sigmas,
              "pingpong: only shift, dynamic shifting and sigma_max apply to this scheduler");
}

Tensor PingPong::step(const Tensor& model_output, float timestep, const Tensor& sample,
                      const StepOptions& o) {
  const int64_t i = begin_step(model_output, timestep, sample, 1);
  Tensor x = sample.to(DType::F32);
  const float sigma = sigmas_[size_t(i)], sigma_next = sigmas_[size_t(i + 1)];
  Tensor noise = step_noise(o, sample);
  Tensor denoised = sub(x, mul(model_output, sigma));
  Tensor prev = add(mul(denoised, 1.0f - sigma_next), mul(noise.to(DType::F32), sigma_next));
  step_index_ = i + 1;
  return prev.to(model_output.dtype());
}

// ---------------- retrieve_timesteps ----------------

RetrievedTimesteps retrieve_timesteps(Scheduler& s, std::optional<int64_t> n,
                                      const std::optional<std::vector<float>>& timesteps,
                                      const std::optional<std::vector<float>>& sigmas,
                                      std::optional<double> mu) {
  EMBER_CHECK(!(timesteps && sigmas),
              "retrieve_timesteps: only one of timesteps or sigmas can be passed; choose one to set "
              "custom values");
  if (timesteps) {
    EMBER_CHECK(s.accepts_timesteps(),
                "retrieve_timesteps: the {} scheduler does not support custom timestep schedules",
                s.name());
    s.set_custom_timesteps(*timesteps, mu);
  } else if (sigmas) {
    EMBER_CHECK(s.accepts_sigmas(),
                "retrieve_timesteps: the {} scheduler does not support custom sigmas schedules",
                s.name());
    s.set_sigmas(*sigmas, mu);
  } else {
    EMBER_CHECK(n.has_value(), "retrieve_timesteps: give num_inference_steps, timesteps or sigmas");
    s.set_timesteps(*n, mu);
  }
  return {s.timesteps(), int64_t(s.timesteps().size())};
}

}  // namespace ember::diffusion
