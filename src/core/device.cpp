#include "ember/core/device.h"

#include <charconv>

#include <fmt/format.h>

#include "ember/core/error.h"

namespace ember {

std::string Device::str() const { return is_cpu() ? "cpu" : fmt::format("cuda:{}", index); }

Device Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.starts_with("cuda:")) {
    std::string_view num = text.substr(5);
    int index = -1;
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), index);
    if (ec == std::errc() && p == num.data() + num.size() && index >= 0) return cuda(index);
  }
  throw_error("invalid device '{}': expected cpu, cuda or cuda:N", text);
}

}  // namespace ember
