#pragma once
// This process's memory and CPU time as the kernel accounts them: for benchmarks, for checking
// that weights stay memory-mapped (resident file pages) rather than copied (resident anonymous
// pages), and for telling a slow run from one that shared its cores with other work.
#include <cstdint>

namespace ember {

struct ProcessMemory {
  uint64_t peak_resident = 0;  // high-water mark of resident bytes (VmHWM, else getrusage ru_maxrss)
  uint64_t resident = 0;       // resident now (VmRSS); 0 where the system does not say
  uint64_t resident_anon = 0;  // of which allocated by the process: heap, stacks (RssAnon)
  uint64_t resident_file = 0;  // of which mapped file pages, e.g. weights (RssFile); reclaimable
};

// Linux: /proc/self/status; elsewhere only peak_resident (getrusage).
ProcessMemory process_memory();

// User + system CPU seconds used by all of this process's threads so far (getrusage).
double process_cpu_seconds();

}  // namespace ember
