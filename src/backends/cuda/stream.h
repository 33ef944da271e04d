#pragma once
// The CUDA backend's stream for a device, declared for host code compiled without nvcc (tests
// that launch backend kernels on it); defined in memory.cu.
#include <cuda_runtime_api.h>

namespace ember::backend::cuda {

// Makes the backend's device current and gives its stream (created on first use).
cudaStream_t stream_for(int device);

}  // namespace ember::backend::cuda
