#pragma once
// The CPU backend. Methods are defined by concern: memory.cpp, elementwise.cpp, reduce.cpp,
// layout.cpp, matmul.cpp, mxfp4.cpp.
#include "backends/backend.h"

namespace ember::backend {

class CpuBackend final : public Backend {
 public:
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr) noexcept override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void copy_on_device(void* dst, const void* src, size_t nbytes) override;
  void synchronize() override {}

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
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& sinks,
                 const Tensor& bias, const Tensor& mask, const Tensor& q_positions,
                 const Tensor& key_positions,
                 const AttentionParams& params, const Tensor& out) override;
};

}  // namespace ember::backend
