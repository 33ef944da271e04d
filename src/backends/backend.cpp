#include "backends/backend.h"
#include "backends/gpt_oss_runtime.h"
#include "ember/core/process.h"

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

std::unique_ptr<GptOssRuntime> make_gpt_oss_runtime(Device device, const GptOssDims& dims, const GptOssWeights& weights,
                                                    int64_t max_context, int64_t max_chunk, std::string* why) {
  if (!device.is_cuda()) {
    if (why) *why = "the fused runtime runs on CUDA devices only";
    return nullptr;
  }
#ifdef EMBER_HAS_CUDA
  return make_gpt_oss_cuda_runtime(device.index, dims, weights, max_context, max_chunk, why);
#else
  (void)dims, (void)weights, (void)max_context, (void)max_chunk;
  if (why) *why = "ember was built without CUDA";
  return nullptr;
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

DeviceMemory device_memory(Device device) {
  DeviceMemory m;
#ifdef EMBER_HAS_CUDA
  if (device.is_cuda()) {
    uint64_t v[4];
    backend::cuda_memory_info(device.index, v);
    m = {v[0], v[1], v[2], v[3]};
  }
#else
  (void)device;
#endif
  return m;
}



}  // namespace ember
