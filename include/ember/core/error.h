#pragma once
// ember's one error type. Messages name the file, tensor, field or argument at fault.
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace ember {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// throw_error("{}: tensor '{}' has shape {}", file, name, shape)
template <typename... Args>
[[noreturn]] void throw_error(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// For argument checks at API boundaries (user input): never compiled out.
#define EMBER_CHECK(cond, ...)                          \
  do {                                                  \
    if (!(cond)) ::ember::throw_error(__VA_ARGS__);     \
  } while (0)

}  // namespace ember
