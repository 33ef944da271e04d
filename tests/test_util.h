#pragma once
// Shared test helpers: the devices to run on, random inputs, and tolerance checks.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "ember/ops.h"

namespace ember::test {

// CPU always; CUDA devices when ember was built with CUDA and a GPU is visible.
// EMBER_TEST_DEVICES=cpu or =cuda restricts the list.
std::vector<Device> test_devices();

// Printable name for parameterised tests ("cpu", "cuda0").
std::string device_test_name(const testing::TestParamInfo<Device>& info);

// Random f32 values in [lo, hi) from a seeded std::mt19937 (independent of ember's generator).
std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f);

// Max |a - b| / (atol + rtol * |b|) <= 1 over all elements; reports the worst index.
testing::AssertionResult all_close(const std::vector<float>& actual,
                                   const std::vector<float>& expected, float rtol, float atol);
testing::AssertionResult all_close(const Tensor& actual, const std::vector<float>& expected,
                                   float rtol, float atol);

// The same values as `t` (same device and dtype) in a non-contiguous layout: dims stored in reverse
// order and every element at an odd position of a buffer twice as long along dim 0.
Tensor non_contiguous(const Tensor& t);

// f32 values rounded through bf16 / f16 (round-to-nearest-even), as a 16-bit tensor stores them.
std::vector<float> round_bf16(std::vector<float> v);
std::vector<float> round_f16(std::vector<float> v);
// Rounds through `dtype` (f32: unchanged; bf16/f16 as above).
std::vector<float> round_to(std::vector<float> v, DType dtype);

// The official o200k_base.tiktoken (scripts/fetch-vocab puts it in .cache/vocab/; the environment
// variable EMBER_O200K_TIKTOKEN overrides). nullopt when absent: tests GTEST_SKIP with a message.
std::optional<std::string> o200k_tiktoken_path();
// ../shared/<sub> beside the checkout (reference data that is not committed), when present.
std::optional<std::string> shared_dir(const std::string& sub);

// A fresh temporary directory, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace ember::test

namespace ember {
// gtest prints parameters with this (instead of raw bytes).
inline void PrintTo(const Device& d, std::ostream* os) { *os << d.str(); }
}  // namespace ember

// INSTANTIATE_TEST_SUITE_P over every available device.
#define EMBER_INSTANTIATE_DEVICES(Suite) \
  INSTANTIATE_TEST_SUITE_P(Devices, Suite, testing::ValuesIn(::ember::test::test_devices()), \
                           ::ember::test::device_test_name)
