#pragma once
// This process's memory and CPU time as the kernel accounts them: for benchmarks, for checking
// that weights stay memory-mapped (resident file pages) rather than copied (resident anonymous
// pages), and for telling a slow run from one that shared its cores with other work.
#include <cstdint>

#include "ember/core/device.h"

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

// Memory of a CUDA device: what the driver reports in use (all processes) and in total, and what
// ember's allocator (the stream-ordered pool every device tensor comes from) holds now and held at
// most since the program started. All zero for the CPU.
struct DeviceMemory {
  uint64_t used = 0, total = 0, allocated = 0, peak_allocated = 0;
};
DeviceMemory device_memory(Device device);

}  // namespace ember
