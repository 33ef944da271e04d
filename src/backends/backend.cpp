#include "backends/backend.h"

#include "backends/cpu/cpu_backend.h"
#ifdef EMBER_HAS_CUDA
#include "backends/cuda/cuda_backend.h"
#endif

namespace ember {

namespace backend {

Backend& cpu() {
  static CpuBackend instance;
  return instance;
}

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu();
#ifdef EMBER_HAS_CUDA
  return cuda_backend(device.index);
#else
  throw_error("device {}: ember was built without CUDA (configure with -DEMBER_CUDA=ON)",
              device.str());
#endif
}

}  // namespace backend

bool cuda_compiled() {
#ifdef EMBER_HAS_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef EMBER_HAS_CUDA
  static const int count = backend::cuda_device_count_impl();
  return count;
#else
  return 0;
#endif
}

bool cuda_available() { return cuda_device_count() > 0; }



}  // namespace ember
