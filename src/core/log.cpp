#include "ember/core/log.h"

#include <atomic>
#include <cstdio>

namespace ember {

namespace {
std::atomic<LogLevel> g_level{LogLevel::Warn};
}

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

void log_message(LogLevel level, const std::string& message) {
  static const char* const kPrefix[] = {"debug", "info", "warning", "error", ""};
  std::fprintf(stderr, "ember: %s: %s\n", kPrefix[int(level)], message.c_str());
}

}  // namespace ember
