#pragma once
// The kernel list every backend implements (internal). The ops layer (src/ops) validates arguments
// and prepares layouts as each kernel's contract says; kernels trust their inputs.
#include <cstdint>

#include "ember/ops.h"

namespace ember::backend {

// Scalar parameters of the fused attention kernel (see nn/attention.h for the semantics).
struct AttentionParams {
  float scale = 1.0f;
  bool causal = false;
  int64_t window = 0;
  int64_t sink_positions = 0;
  int64_t q_offset = 0;
  bool quiet_softmax = false;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // ---- memory (device pointers; the CPU backend uses host memory, 64-byte aligned) ----
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr) noexcept = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_on_device(void* dst, const void* src, size_t nbytes) = 0;
  virtual void synchronize() = 0;

  // ---- kernels; `out` tensors are contiguous and already allocated on this device ----
  // out: any dtype. value converted to the dtype.
  virtual void fill(const Tensor& out, double value) = 0;
  // out[i] = start + i*step, computed in double then converted.
  virtual void arange(const Tensor& out, double start, double step) = 0;
  // out f32: philox_uniform / philox_normal(seed, offset + i) (generator.h).
  virtual void random(const Tensor& out, bool normal, uint64_t seed, uint64_t offset) = 0;
  // src and dst have the same shape and any strides (src strides may be 0), any dtypes: converts
  // (float->int truncates toward zero, anything->bool is != 0). dst need not be contiguous.
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;
  // x: out's shape, any strides, same dtype as out. Float dtypes for all ops; Neg/Abs/Square also
  // on i32/i64; Not on bool.
  virtual void unary(UnaryOp op, const Tensor& x, const Tensor& out, float a, float b) = 0;
  // a, b: out's shape (broadcast via 0 strides), any strides, one common dtype; out has that dtype
  // (Bool for comparisons Eq..Ge; And/Or take and give Bool).
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  // cond (Bool), a, b: out's shape with any strides; a, b, out share a dtype.
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  // x contiguous, seen as [outer, n, inner]; out contiguous [outer, inner]. Float x: out has x's
  // dtype (ArgMax/ArgMin: i64). Integer x: Sum gives i64, Max/Min keep the dtype. f32 accumulation
  // (f64 for Sum/Mean of f32 is not required). n >= 1.
  virtual void reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner,
                      const Tensor& out) = 0;
  // x contiguous float [outer, n, inner], out same shape and dtype; max-subtracted, f32 math.
  virtual void softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log,
                       const Tensor& out) = 0;
  // x contiguous float [rows, n]; weight [n] contiguous, any float dtype; out like x.
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) = 0;
  // weight, bias: [n] contiguous any float dtype, or undefined (no scale / no shift).
  virtual void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                          const Tensor& out) = 0;
  // x contiguous float [rows, n]; values [rows, k] x's dtype, indices [rows, k] i64; sorted
  // descending, ties broken by lower index; NaN counts as larger than any number (torch).
  virtual void topk(const Tensor& x, int64_t k, const Tensor& values, const Tensor& indices) = 0;
  // x contiguous [outer, n, inner] any dtype; index contiguous i64 [m], values in [0, n)
  // (checked by ops); out [outer, m, inner] x's dtype.
  virtual void index_select(const Tensor& x, int64_t outer, int64_t n, int64_t inner,
                            const Tensor& index, const Tensor& out) = 0;
  // x contiguous [outer, n, inner]; index contiguous i64 [outer, m, inner] in [0, n);
  // out[o, j, i] = x[o, index[o, j, i], i].
  virtual void gather(const Tensor& x, int64_t outer, int64_t n, int64_t inner,
                      const Tensor& index, const Tensor& out) = 0;
  // a: [B, M, K] (trans_a: [B, K, M]); b: [B, K, N] (trans_b: [B, N, K]). The last two dims of
  // each are row-major contiguous; the batch stride may be 0 (broadcast) or any value.
  // a, b each f32, f16 or bf16 (may differ); out [B, M, N] contiguous, f32 or (when a and b
  // share a 16-bit dtype) that dtype; f32 accumulation.
  virtual void matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                      const Tensor& out) = 0;
  // blocks u8 [R, C/32, 16], scales u8 [R, C/32], contiguous; out [R, C] contiguous f32/f16/bf16.
  virtual void mxfp4_dequantize(const Tensor& blocks, const Tensor& scales, const Tensor& out) = 0;
  // x contiguous [M, K] f32; W = (blocks [N, K/32, 16], scales [N, K/32]) contiguous;
  // bias [N] contiguous any float dtype or undefined; out [M, N] f32: out = x W^T + bias.
  virtual void mxfp4_linear(const Tensor& x, const Tensor& blocks, const Tensor& scales,
                            const Tensor& bias, const Tensor& out) = 0;
  // gpt-oss's MoE over MXFP4 experts for a few tokens, fused (ops.h moe_mxfp4). x [T, H] f32;
  // indices [T, k] i64; weights [T, k] f32; w1 blocks [E, 2I, H/32, 16], scales [E, 2I, H/32];
  // b1 [E, 2I]; w2 blocks [E, H, I/32, 16], scales [E, H, I/32]; b2 [E, H]; all contiguous,
  // biases any float dtype (both the same); out [T, H] f32. False: no fused kernel here (the
  // op then composes it from other ops).
  virtual bool moe_mxfp4(const Tensor& x, const Tensor& indices, const Tensor& weights,
                         const Tensor& w1_blocks, const Tensor& w1_scales, const Tensor& b1,
                         const Tensor& w2_blocks, const Tensor& w2_scales, const Tensor& b2,
                         float swiglu_limit, const Tensor& out) {
    (void)x, (void)indices, (void)weights, (void)w1_blocks, (void)w1_scales, (void)b1, (void)w2_blocks,
        (void)w2_scales, (void)b2, (void)swiglu_limit, (void)out;
    return false;
  }
  // Fused attention. q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv]: f32, any strides
  // with the last dim contiguous. sinks: f32 [Hq] contiguous or undefined. bias: f32 and mask:
  // bool, each expanded to [B, Hq, Tq, Tk] (0 strides allowed) or undefined. q_positions: i64
  // [Tq] contiguous or undefined (then query i is at q_offset + i). key_positions: i64 [Tk]
  // contiguous or undefined (then key j is at j). out: [B, Hq, Tq, Dv] f32.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& sinks,
                         const Tensor& bias, const Tensor& mask, const Tensor& q_positions,
                         const Tensor& key_positions,
                         const AttentionParams& params, const Tensor& out) = 0;
};

// The backend for a device; throws ember::Error if ember was built without CUDA or the device
// index does not exist.
Backend& backend_for(Device device);
Backend& cpu();

}  // namespace ember::backend
