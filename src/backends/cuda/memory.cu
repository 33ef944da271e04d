// Device memory, copies, streams and the per-device backend instances.
#include <memory>
#include <mutex>
#include <vector>

#include "backends/cuda/common.cuh"

namespace ember::backend {

namespace cuda {

namespace {
std::mutex g_mutex;
std::vector<cudaStream_t> g_streams;
}  // namespace

void set_device(int device) { EMBER_CUDA_CHECK(cudaSetDevice(device)); }

cudaStream_t stream_for(int device) {
  set_device(device);
  std::lock_guard lock(g_mutex);
  if (int(g_streams.size()) <= device) g_streams.resize(size_t(device) + 1, nullptr);
  if (!g_streams[size_t(device)]) EMBER_CUDA_CHECK(cudaStreamCreateWithFlags(&g_streams[size_t(device)], cudaStreamNonBlocking));
  return g_streams[size_t(device)];
}

}  // namespace cuda

using namespace cuda;

int cuda_device_count_impl() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: not an error for a CPU-only run
    return 0;
  }
  return n;
}

Backend& cuda_backend(int index) {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<CudaBackend>> instances;
  std::lock_guard lock(mutex);
  const int count = cuda_device_count_impl();
  EMBER_CHECK(index >= 0 && index < count, "device cuda:{}: {} CUDA device(s) visible", index, count);
  if (instances.empty()) instances.resize(size_t(count));
  if (!instances[size_t(index)]) instances[size_t(index)] = std::make_unique<CudaBackend>(index);
  return *instances[size_t(index)];
}

void cuda_memory_info(int index, uint64_t out[4]) {
  set_device(index);
  size_t free = 0, total = 0;
  EMBER_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  cudaMemPool_t pool = nullptr;
  EMBER_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, index));
  unsigned long long used = 0, high = 0;  // cuuint64_t
  EMBER_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used));
  EMBER_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high));
  out[0] = total - free, out[1] = total, out[2] = used, out[3] = high;
}

void* CudaBackend::allocate(size_t nbytes) {
  cudaStream_t s = stream_for(device_index_);
  void* p = nullptr;
  cudaError_t err = cudaMallocAsync(&p, std::max<size_t>(nbytes, 1), s);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw_error("cuda:{}: out of device memory allocating {} bytes ({})", device_index_, nbytes,
                cudaGetErrorString(err));
  }
  return p;
}

void CudaBackend::deallocate(void* ptr) noexcept {
  if (!ptr) return;
  if (cudaSetDevice(device_index_) != cudaSuccess) return;
  try {
    (void)cudaFreeAsync(ptr, stream_for(device_index_));
  } catch (...) {
  }
}

void CudaBackend::copy_from_host(void* dst, const void* src, size_t nbytes) {
  cudaStream_t s = stream_for(device_index_);
  EMBER_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s));
  EMBER_CUDA_CHECK(cudaStreamSynchronize(s));  // the host buffer may be freed on return
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t nbytes) {
  cudaStream_t s = stream_for(device_index_);
  EMBER_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
  EMBER_CUDA_CHECK(cudaStreamSynchronize(s));
}

void CudaBackend::copy_on_device(void* dst, const void* src, size_t nbytes) {
  EMBER_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, stream_for(device_index_)));
}

void CudaBackend::synchronize() { EMBER_CUDA_CHECK(cudaStreamSynchronize(stream_for(device_index_))); }

}  // namespace ember::backend
