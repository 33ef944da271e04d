#include "test_util.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <span>

namespace ember::test {

std::vector<Device> test_devices() {
  const char* only = std::getenv("EMBER_TEST_DEVICES");
  std::string want = only ? only : "";
  std::vector<Device> out;
  if (want.empty() || want == "cpu") out.push_back(Device::cpu());
  if (want.empty() || want == "cuda")
    for (int i = 0; i < cuda_device_count(); ++i) out.push_back(Device::cuda(i));
  return out;
}

std::string device_test_name(const testing::TestParamInfo<Device>& info) {
  return info.param.is_cpu() ? "cpu" : "cuda" + std::to_string(info.param.index);
}

std::vector<float> random_floats(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

testing::AssertionResult all_close(const std::vector<float>& actual,
                                   const std::vector<float>& expected, float rtol, float atol) {
  if (actual.size() != expected.size())
    return testing::AssertionFailure() << "size " << actual.size() << " != " << expected.size();
  double worst = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    double a = actual[i], e = expected[i];
    if (std::isnan(a) != std::isnan(e))
      return testing::AssertionFailure() << "NaN mismatch at " << i << ": " << a << " vs " << e;
    if (std::isnan(a)) continue;
    if (std::isinf(a) || std::isinf(e)) {
      if (a != e) return testing::AssertionFailure() << "inf mismatch at " << i << ": " << a << " vs " << e;
      continue;
    }
    double r = std::abs(a - e) / (atol + rtol * std::abs(e));
    if (r > worst) worst = r, worst_i = i;
  }
  if (worst > 1.0)
    return testing::AssertionFailure() << "at " << worst_i << ": " << actual[worst_i] << " vs "
                                       << expected[worst_i] << " (" << worst << "x tolerance)";
  return testing::AssertionSuccess();
}

testing::AssertionResult all_close(const Tensor& actual, const std::vector<float>& expected,
                                   float rtol, float atol) {
  return all_close(actual.to_vector<float>(), expected, rtol, atol);
}

Tensor non_contiguous(const Tensor& t) {
  if (t.ndim() == 0 || t.numel() == 0) return t;
  const int nd = t.ndim();
  std::vector<int64_t> dims;
  std::vector<int> perm;
  for (int i = nd - 1; i >= 0; --i) dims.push_back(i == 0 ? 2 * t.dim(0) : t.dim(i));
  for (int i = nd - 1; i >= 0; --i) perm.push_back(i);
  Tensor buf = zeros(Shape(dims), t.dtype(), t.device());
  Tensor v = buf.permute(std::span<const int>(perm)).slice(0, 1, 2 * t.dim(0), 2);
  v.copy_from(t);
  return v;
}

std::vector<float> round_bf16(std::vector<float> v) {
  for (auto& x : v) x = bf16_to_f32(f32_to_bf16(x));
  return v;
}
std::vector<float> round_f16(std::vector<float> v) {
  for (auto& x : v) x = f16_to_f32(f32_to_f16(x));
  return v;
}
std::vector<float> round_to(std::vector<float> v, DType dtype) {
  if (dtype == DType::BF16) return round_bf16(std::move(v));
  if (dtype == DType::F16) return round_f16(std::move(v));
  return v;
}

std::optional<std::string> o200k_tiktoken_path() {
  if (const char* env = std::getenv("EMBER_O200K_TIKTOKEN"); env && *env) return std::string(env);
  std::string p = std::string(EMBER_SOURCE_DIR) + "/.cache/vocab/o200k_base.tiktoken";
  if (std::filesystem::exists(p)) return p;
  return std::nullopt;
}

std::optional<std::string> shared_dir(const std::string& sub) {
  auto p = std::filesystem::path(EMBER_SOURCE_DIR).parent_path() / "shared" / sub;
  if (std::filesystem::is_directory(p)) return p.string();
  return std::nullopt;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "ember-test-XXXXXX").string();
  path_ = mkdtemp(tmpl.data()) ? tmpl : throw std::runtime_error("mkdtemp failed");
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace ember::test
