#pragma once
// The op vocabulary. Every op validates its arguments (errors name the argument), then runs on the
// device of its inputs. Inputs of one op must share a device. Results are new contiguous tensors.
//
// dtype rules: float ops (unary math, softmax, norms, matmul) accept f32/f16/bf16 and compute in
// f32; binary ops promote (bool < u8 < i32 < i64 < bf16/f16 < f32; bf16 with f16 gives f32).
#include <optional>
#include <utility>
#include <vector>

#include "ember/core/generator.h"
#include "ember/core/mxfp4.h"
#include "ember/core/tensor.h"

namespace ember {

// Result dtype of mixing a and b (the rule above).
DType promote_types(DType a, DType b);

// ---- creation ----
Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
// [start, end) with step, like torch.arange.
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::F32,
              Device device = Device::cpu());
// Seeded, identical on every backend (see generator.h). Consumes numel counters of `gen`.
Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device device = Device::cpu());
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device device = Device::cpu());
void fill_(Tensor& t, double value);

// ---- layout ----
// Concatenate along dim; shapes must agree elsewhere; dtypes are promoted.
Tensor cat(const std::vector<Tensor>& tensors, int dim);
Tensor stack(const std::vector<Tensor>& tensors, int dim);
// out[.., i, ..] = x[.., index[i], ..] along dim; index i32/i64 1-D.
Tensor index_select(const Tensor& x, int dim, const Tensor& index);
// torch.gather: out has index's shape; out[i][j] = x[i][index[i][j]] (dim 1) etc.
Tensor gather(const Tensor& x, int dim, const Tensor& index);
// weight [V, D], ids i32/i64 of any shape -> [*ids.shape, D]; out-of-range ids are an error.
Tensor embedding(const Tensor& weight, const Tensor& ids);
// where(cond, a, b): cond bool, broadcast.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- elementwise (broadcasting) ----
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Max, Min, Pow, Eq, Ne, Lt, Le, Gt, Ge, And, Or };
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }
inline Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Max, a, b); }
inline Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Min, a, b); }
// Scalar forms: the scalar takes the tensor's dtype (float scalar with an int tensor gives f32).
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor binary(BinaryOp op, const Tensor& a, double s);
// In place: a = a op b (b broadcast to a's shape, result cast to a's dtype).
void binary_(BinaryOp op, Tensor& a, const Tensor& b);
inline void add_(Tensor& a, const Tensor& b) { binary_(BinaryOp::Add, a, b); }

enum class UnaryOp : uint8_t {
  Neg, Abs, Exp, Log, Sqrt, Rsqrt, Sin, Cos, Tanh, Sigmoid, Silu, Relu, Gelu, GeluTanh, Elu,
  Erf, Square, Reciprocal, Floor, Ceil, Round, Clamp, Not,
};
// `a`, `b` are the op's parameters (Clamp: lo, hi; Elu: alpha).
Tensor unary(UnaryOp op, const Tensor& x, float a = 0.f, float b = 0.f);
inline Tensor neg(const Tensor& x) { return unary(UnaryOp::Neg, x); }
inline Tensor exp(const Tensor& x) { return unary(UnaryOp::Exp, x); }
inline Tensor log(const Tensor& x) { return unary(UnaryOp::Log, x); }
inline Tensor sqrt(const Tensor& x) { return unary(UnaryOp::Sqrt, x); }
inline Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::Rsqrt, x); }
inline Tensor sin(const Tensor& x) { return unary(UnaryOp::Sin, x); }
inline Tensor cos(const Tensor& x) { return unary(UnaryOp::Cos, x); }
inline Tensor tanh(const Tensor& x) { return unary(UnaryOp::Tanh, x); }
inline Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::Sigmoid, x); }
inline Tensor silu(const Tensor& x) { return unary(UnaryOp::Silu, x); }
inline Tensor relu(const Tensor& x) { return unary(UnaryOp::Relu, x); }
inline Tensor gelu(const Tensor& x) { return unary(UnaryOp::Gelu, x); }  // erf form
inline Tensor gelu_tanh(const Tensor& x) { return unary(UnaryOp::GeluTanh, x); }
inline Tensor clamp(const Tensor& x, float lo, float hi) { return unary(UnaryOp::Clamp, x, lo, hi); }

// ---- reductions over one axis ----
enum class ReduceOp : uint8_t { Sum, Mean, Max, Min, ArgMax, ArgMin };
// ArgMax/ArgMin give i64 (first index of the extreme value, as torch); others keep float dtype
// (integer sums give i64).
Tensor reduce(ReduceOp op, const Tensor& x, int dim, bool keepdim = false);
inline Tensor sum(const Tensor& x, int dim, bool keepdim = false) { return reduce(ReduceOp::Sum, x, dim, keepdim); }
inline Tensor mean(const Tensor& x, int dim, bool keepdim = false) { return reduce(ReduceOp::Mean, x, dim, keepdim); }
inline Tensor max(const Tensor& x, int dim, bool keepdim = false) { return reduce(ReduceOp::Max, x, dim, keepdim); }
inline Tensor min(const Tensor& x, int dim, bool keepdim = false) { return reduce(ReduceOp::Min, x, dim, keepdim); }
inline Tensor argmax(const Tensor& x, int dim, bool keepdim = false) { return reduce(ReduceOp::ArgMax, x, dim, keepdim); }
Tensor sum_all(const Tensor& x);  // scalar (shape [])

Tensor softmax(const Tensor& x, int dim = -1);
Tensor log_softmax(const Tensor& x, int dim = -1);
// Over the last dim, f32 accumulation: x * rsqrt(mean(x^2) + eps) * weight. Output dtype = x's.
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps = 1e-5f);
Tensor layer_norm(const Tensor& x, const std::optional<Tensor>& weight,
                  const std::optional<Tensor>& bias, float eps = 1e-5f);
// Largest k along the last dim, sorted descending (ties: lower index first). Indices i64.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k);

// ---- matrix products ----
// a [.., M, K] (or [.., K, M] with trans_a), b [.., K, N] (or [.., N, K] with trans_b); batch dims
// broadcast. Mixed dtypes allowed (f32 activations with bf16/f16 weights); result f32 unless both
// inputs share a 16-bit dtype (then that dtype, with f32 accumulation).
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// y = x W^T + bias, W [N, K] (PyTorch Linear layout), x [.., K] -> [.., N].
Tensor linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias = std::nullopt);

// ---- MXFP4 ----
Tensor mxfp4_dequantize(const Mxfp4Tensor& w, DType dtype = DType::F32);
// y = x W^T (+ bias): x [.., K] float, W logical [N, K] MXFP4 -> [.., N] f32. Never expands W.
Tensor mxfp4_linear(const Tensor& x, const Mxfp4Tensor& w, const std::optional<Tensor>& bias = std::nullopt);
// gpt-oss's mixture of MXFP4 experts (gpt_oss/torch/model.py MLPBlock after the router): for token
// t, the sum over slots s of weights[t,s] * (W2[e] swiglu(W1[e] x_t + b1[e]) + b2[e]) with
// e = indices[t,s] and model.py's clamped SwiGLU (alpha 1.702) on W1's interleaved glu/linear
// rows. x [T, H] float; indices [T, k] i64; weights [T, k] float; w1 [E, 2I, H], b1 [E, 2I];
// w2 [E, H, I], b2 [E, H]. f32 [T, H]. On CUDA one fused pass per projection that reads each
// selected expert's rows once and never leaves the device (decode: no host round trip).
Tensor moe_mxfp4(const Tensor& x, const Tensor& indices, const Tensor& weights, const Mxfp4Tensor& w1,
                 const Tensor& b1, const Mxfp4Tensor& w2, const Tensor& b2, float swiglu_limit);

// ---- device ----
void synchronize(Device device);

}  // namespace ember
