#pragma once
// The CUDA backend (one instance per device). Methods are defined in the .cu files beside this
// header; every public method first makes device_index current.
#include "backends/backend.h"

namespace ember::backend {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index) : device_index_(device_index) {}
  int device_index() const { return device_index_; }
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr) noexcept override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void copy_on_device(void* dst, const void* src, size_t nbytes) override;
  void synchronize() override;

  void fill(const Tensor& out, double value) override;
  void arange(const Tensor& out, double start, double step) override;
  void random(const Tensor& out, bool normal, uint64_t seed, uint64_t offset) override;
  void copy(const Tensor& src, const Tensor& dst) override;
  void unary(UnaryOp op, const Tensor& x, const Tensor& out, float a, float b) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner,
              const Tensor& out) override;
  void softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log,
               const Tensor& out) override;
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) override;
  void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                  const Tensor& out) override;
  void topk(const Tensor& x, int64_t k, const Tensor& values, const Tensor& indices) override;
  void index_select(const Tensor& x, int64_t outer, int64_t n, int64_t inner, const Tensor& index,
                    const Tensor& out) override;
  void gather(const Tensor& x, int64_t outer, int64_t n, int64_t inner, const Tensor& index,
              const Tensor& out) override;
  void matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
              const Tensor& out) override;
  void mxfp4_dequantize(const Tensor& blocks, const Tensor& scales, const Tensor& out) override;
  void mxfp4_linear(const Tensor& x, const Tensor& blocks, const Tensor& scales, const Tensor& bias,
                    const Tensor& out) override;
  bool moe_mxfp4(const Tensor& x, const Tensor& indices, const Tensor& weights, const Tensor& w1_blocks,
                 const Tensor& w1_scales, const Tensor& b1, const Tensor& w2_blocks, const Tensor& w2_scales,
                 const Tensor& b2, float swiglu_limit, const Tensor& out) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& sinks,
                 const Tensor& bias, const Tensor& mask, const Tensor& q_positions,
                 const Tensor& key_positions,
                 const AttentionParams& params, const Tensor& out) override;

 private:
  int device_index_;
};

// The backend of device `index` (created on first use); throws naming the index if absent.
Backend& cuda_backend(int index);

// used, total, allocated (pool), peak allocated (pool) of device `index`.
void cuda_memory_info(int index, uint64_t out[4]);

// Number of visible CUDA devices (0 when the driver or a device is missing; never throws).
int cuda_device_count_impl();

}  // namespace ember::backend
