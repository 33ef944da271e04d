#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace ember {

struct Device {
  enum class Kind : uint8_t { CPU, CUDA };
  Kind kind = Kind::CPU;
  int index = 0;

  static Device cpu() { return {Kind::CPU, 0}; }
  static Device cuda(int index = 0) { return {Kind::CUDA, index}; }
  bool is_cpu() const { return kind == Kind::CPU; }
  bool is_cuda() const { return kind == Kind::CUDA; }
  bool operator==(const Device&) const = default;

  std::string str() const;                    // "cpu", "cuda:0"
  static Device parse(std::string_view text);  // "cpu", "cuda", "cuda:N"; throws ember::Error
};

// True when ember was compiled with CUDA and at least one device is visible.
bool cuda_available();
int cuda_device_count();
bool cuda_compiled();

}  // namespace ember
