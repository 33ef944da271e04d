#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "backends/cpu/cpu_backend.h"

namespace ember::backend {

namespace {
constexpr size_t kAlignment = 64;
}

void* CpuBackend::allocate(size_t nbytes) {
  size_t rounded = (std::max<size_t>(nbytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  EMBER_CHECK(p, "out of host memory allocating {} bytes", nbytes);
  return p;
}

void CpuBackend::deallocate(void* ptr) noexcept { std::free(ptr); }

void CpuBackend::copy_from_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes) std::memcpy(dst, src, nbytes);
}
void CpuBackend::copy_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes) std::memcpy(dst, src, nbytes);
}
void CpuBackend::copy_on_device(void* dst, const void* src, size_t nbytes) {
  if (nbytes) std::memcpy(dst, src, nbytes);
}

}  // namespace ember::backend
