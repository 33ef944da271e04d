#pragma once
// ember's one error type. Messages name the file, tensor, field or argument at fault.
#include <stdexcept>
#include <string>
#include <utility>

#ifndef __CUDACC__
#include <fmt/format.h>
#else
#include <sstream>
#endif

namespace ember {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

#ifndef __CUDACC__
// throw_error("{}: tensor '{}' has shape {}", file, name, shape)
template <typename... Args>
[[noreturn]] void throw_error(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}
#else
// nvcc cannot compile fmt's compile-time format checks: CUDA sources get a plain "{}" formatter.
namespace detail {
inline void format_into(std::ostringstream& out, const char* f) { out << f; }
template <typename T, typename... Rest>
void format_into(std::ostringstream& out, const char* f, T&& value, Rest&&... rest) {
  for (; *f; ++f) {
    if (f[0] == '{' && f[1] == '}') {
      out << value;
      return format_into(out, f + 2, std::forward<Rest>(rest)...);
    }
    out << *f;
  }
}
}  // namespace detail
template <typename... Args>
[[noreturn]] void throw_error(const char* f, Args&&... args) {
  std::ostringstream out;
  detail::format_into(out, f, std::forward<Args>(args)...);
  throw Error(out.str());
}
#endif

// For argument checks at API boundaries (user input): never compiled out.
#define EMBER_CHECK(cond, ...)                          \
  do {                                                  \
    if (!(cond)) ::ember::throw_error(__VA_ARGS__);     \
  } while (0)

}  // namespace ember
