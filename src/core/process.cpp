#include "ember/core/process.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstring>

namespace ember {

ProcessMemory process_memory() {
  ProcessMemory m;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      unsigned long long kb = 0;
      char key[32];
      if (std::sscanf(line, "%31[^:]: %llu kB", key, &kb) != 2) continue;
      const uint64_t bytes = uint64_t(kb) * 1024;
      if (!std::strcmp(key, "VmHWM")) m.peak_resident = bytes;
      else if (!std::strcmp(key, "VmRSS")) m.resident = bytes;
      else if (!std::strcmp(key, "RssAnon")) m.resident_anon = bytes;
      else if (!std::strcmp(key, "RssFile")) m.resident_file = bytes;
    }
    std::fclose(f);
  }
  if (m.peak_resident == 0) {
    rusage u{};
    if (getrusage(RUSAGE_SELF, &u) == 0) m.peak_resident = uint64_t(u.ru_maxrss) * 1024;  // kB on Linux
  }
  return m;
}

double process_cpu_seconds() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  auto s = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) * 1e-6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

}  // namespace ember
