// matmul, linear and the MXFP4 products: argument checks and layout preparation.
#include "backends/backend.h"
#include "ember/ops.h"

#include <cmath>
#include <vector>

namespace ember {

namespace {

// Gives a 3-D [B, R, C] view whose last two dims are row-major contiguous, flipping `trans` when
// the input is a transposed view of contiguous memory (no copy then).
Tensor prepare(const Tensor& t, const Shape& batch, bool& trans) {
  Tensor x = t;
  const int nd = x.ndim();
  const bool rowmajor = x.strides()[nd - 1] == 1 || x.dim(-1) == 1;
  const bool colmajor = !rowmajor && (x.strides()[nd - 2] == 1 || x.dim(-2) == 1) &&
                        x.strides()[nd - 1] == x.dim(-2);
  if (!rowmajor && colmajor) {
    x = x.transpose(-1, -2);
    trans = !trans;
  } else if (!rowmajor || (x.dim(-2) > 1 && x.strides()[nd - 2] != x.dim(-1))) {
    x = x.contiguous();
  }
  Shape full = batch;
  full.push_back(x.dim(-2));
  full.push_back(x.dim(-1));
  x = x.expand(full);
  // Collapse batch dims to one: needs a uniform batch stride; else copy.
  int64_t B = batch.numel();
  if (batch.size() == 0) return x.unsqueeze(0);
  bool uniform = true;
  for (int i = 0; i + 1 < batch.size(); ++i)
    if (x.strides()[i] != x.strides()[i + 1] * batch[i + 1] && batch[i] != 1) uniform = false;
  if (batch.size() == 1) uniform = true;
  if (!uniform) x = x.contiguous();
  const int64_t bstride = x.strides()[batch.size() - 1];
  return Tensor(x.storage(), {B, x.dim(-2), x.dim(-1)}, {B == 1 ? 0 : bstride, x.strides()[x.ndim() - 2], 1},
                x.offset(), x.dtype());
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  EMBER_CHECK(a.defined() && b.defined(), "matmul: undefined input");
  EMBER_CHECK(a.device() == b.device(), "matmul: a on {} and b on {}", a.device().str(), b.device().str());
  EMBER_CHECK(a.ndim() >= 2 && b.ndim() >= 2, "matmul: inputs need at least 2 dims, got {} and {}",
              a.shape().str(), b.shape().str());
  EMBER_CHECK(is_floating(a.dtype()) && is_floating(b.dtype()),
              "matmul: inputs must be f32, f16 or bf16, got {} and {}", dtype_name(a.dtype()), dtype_name(b.dtype()));
  const int64_t M = trans_a ? a.dim(-1) : a.dim(-2), K = trans_a ? a.dim(-2) : a.dim(-1);
  const int64_t Kb = trans_b ? b.dim(-1) : b.dim(-2), N = trans_b ? b.dim(-2) : b.dim(-1);
  EMBER_CHECK(K == Kb, "matmul: inner dimensions differ: a {} (K={}) and b {} (K={})", a.shape().str(), K,
              b.shape().str(), Kb);
  // Broadcast batch dims.
  Shape ba(std::span<const int64_t>(a.shape().begin(), a.shape().end() - 2));
  Shape bb(std::span<const int64_t>(b.shape().begin(), b.shape().end() - 2));
  Shape batch;
  const int nb = std::max(ba.size(), bb.size());
  for (int i = 0; i < nb; ++i) {
    const int ia = i - (nb - ba.size()), ib = i - (nb - bb.size());
    const int64_t da = ia >= 0 ? ba[ia] : 1, db = ib >= 0 ? bb[ib] : 1;
    EMBER_CHECK(da == db || da == 1 || db == 1, "matmul: batch dims of {} and {} do not broadcast",
                a.shape().str(), b.shape().str());
    batch.push_back(da == 1 ? db : da);
  }
  bool ta = trans_a, tb = trans_b;
  Tensor a3 = prepare(a, batch, ta), b3 = prepare(b, batch, tb);
  const DType out_t = (a.dtype() == b.dtype() && a.dtype() != DType::F32) ? a.dtype() : DType::F32;
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, out_t, a.device());
  if (!out.numel()) return out;
  if (K == 0) return zeros(out_shape, out_t, a.device());
  backend::backend_for(a.device()).matmul(a3, b3, ta, tb, out.view({batch.numel(), M, N}));
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias) {
  EMBER_CHECK(weight.defined() && weight.ndim() == 2, "linear: weight must be [out, in], got {}",
              weight.defined() ? weight.shape().str() : "undefined");
  EMBER_CHECK(x.defined() && x.ndim() >= 1 && x.dim(-1) == weight.dim(1),
              "linear: x {} does not end in the weight's input size {}", x.defined() ? x.shape().str() : "?",
              weight.dim(1));
  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 1] = weight.dim(0);
  Tensor x2 = x.reshape({-1, x.dim(-1)});
  Tensor y = matmul(x2, weight, false, true);
  if (bias) {
    EMBER_CHECK(bias->shape() == (Shape{weight.dim(0)}), "linear: bias has shape {}, expected [{}]",
                bias->shape().str(), weight.dim(0));
    y = add(y, *bias);
  }
  return y.view(out_shape);
}

Tensor mxfp4_dequantize(const Mxfp4Tensor& w, DType dtype) {
  EMBER_CHECK(is_floating(dtype), "mxfp4_dequantize: dtype must be float, got {}", dtype_name(dtype));
  const int64_t R = w.shape.numel() / w.cols();
  Tensor out = Tensor::empty(w.shape, dtype, w.device());
  if (!out.numel()) return out;
  backend::backend_for(w.device())
      .mxfp4_dequantize(w.blocks.contiguous().view({R, w.cols() / 32, 16}),
                        w.scales.contiguous().view({R, w.cols() / 32}), out.view({R, w.cols()}));
  return out;
}

Tensor mxfp4_linear(const Tensor& x, const Mxfp4Tensor& w, const std::optional<Tensor>& bias) {
  EMBER_CHECK(w.shape.size() == 2, "mxfp4_linear: weight must be 2-D [N, K], got {}", w.shape.str());
  EMBER_CHECK(x.defined() && x.ndim() >= 1 && x.dim(-1) == w.cols(),
              "mxfp4_linear: x {} does not end in the weight's input size {}", x.defined() ? x.shape().str() : "?",
              w.cols());
  EMBER_CHECK(is_floating(x.dtype()), "mxfp4_linear: x must be float, got {}", dtype_name(x.dtype()));
  EMBER_CHECK(x.device() == w.device(), "mxfp4_linear: x on {} and weight on {}", x.device().str(),
              w.device().str());
  const int64_t N = w.rows(), K = w.cols();
  Tensor b;
  if (bias) {
    EMBER_CHECK(bias->shape() == (Shape{N}), "mxfp4_linear: bias has shape {}, expected [{}]",
                bias->shape().str(), N);
    b = bias->contiguous();
  }
  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 1] = N;
  Tensor x2 = x.to(DType::F32).contiguous().view({-1, K});
  Tensor out = Tensor::empty({x2.dim(0), N}, DType::F32, x.device());
  if (out.numel())
    backend::backend_for(x.device())
        .mxfp4_linear(x2, w.blocks.contiguous().view({N, K / 32, 16}), w.scales.contiguous().view({N, K / 32}), b,
                      out);
  return out.view(out_shape);
}

Tensor moe_mxfp4(const Tensor& x, const Tensor& indices, const Tensor& weights, const Mxfp4Tensor& w1,
                 const Tensor& b1, const Mxfp4Tensor& w2, const Tensor& b2, float swiglu_limit) {
  EMBER_CHECK(x.defined() && x.ndim() == 2, "moe_mxfp4: x must be [T, H]");
  EMBER_CHECK(w1.shape.size() == 3 && w2.shape.size() == 3, "moe_mxfp4: expert weights must be [E, rows, cols], got {} and {}",
              w1.shape.str(), w2.shape.str());
  const int64_t T = x.dim(0), H = x.dim(1), E = w1.shape[0], I2 = w1.shape[1], I = I2 / 2;
  EMBER_CHECK(I2 % 2 == 0 && w1.shape[2] == H && w2.shape == (Shape{E, H, I}),
              "moe_mxfp4: w1 {} and w2 {} do not fit x [T, {}] (expected w1 [E, 2I, {}], w2 [E, {}, I])", w1.shape.str(),
              w2.shape.str(), H, H, H);
  EMBER_CHECK(indices.defined() && indices.ndim() == 2 && indices.dim(0) == T && indices.dtype() == DType::I64,
              "moe_mxfp4: indices must be i64 [T, k]");
  const int64_t k = indices.dim(1);
  EMBER_CHECK(weights.defined() && weights.shape() == (Shape{T, k}), "moe_mxfp4: weights must be [{}, {}]", T, k);
  EMBER_CHECK(b1.defined() && b1.shape() == (Shape{E, I2}) && b2.defined() && b2.shape() == (Shape{E, H}),
              "moe_mxfp4: biases must be [{}, {}] and [{}, {}]", E, I2, E, H);
  for (const Tensor* t : {&indices, &weights, &b1, &b2})
    EMBER_CHECK(t->device() == x.device(), "moe_mxfp4: all inputs must be on {}", x.device().str());
  EMBER_CHECK(w1.device() == x.device() && w2.device() == x.device(), "moe_mxfp4: experts must be on {}", x.device().str());
  Tensor out = Tensor::empty({T, H}, DType::F32, x.device());
  if (T == 0) return out;
  Tensor xf = x.to(DType::F32).contiguous(), wf = weights.to(DType::F32).contiguous();
  Tensor c1 = b1.contiguous(), c2 = b2.to(b1.dtype()).contiguous();
  if (backend::backend_for(x.device())
          .moe_mxfp4(xf, indices.contiguous(), wf, w1.blocks.contiguous(), w1.scales.contiguous(), c1,
                     w2.blocks.contiguous(), w2.scales.contiguous(), c2, swiglu_limit, out))
    return out;
  // Composed from ops (backends without a fused kernel): group slots by expert as the model does.
  const auto idx = indices.to(Device::cpu()).to_vector<int64_t>();
  std::vector<std::vector<int64_t>> by_expert(static_cast<size_t>(E));
  for (int64_t i = 0; i < T * k; ++i) {
    EMBER_CHECK(idx[size_t(i)] >= 0 && idx[size_t(i)] < E, "moe_mxfp4: expert index {} outside [0, {})", idx[size_t(i)], E);
    by_expert[size_t(idx[size_t(i)])].push_back(i);
  }
  Tensor ys = zeros({T * k, H}, DType::F32, x.device());
  for (int64_t e = 0; e < E; ++e) {
    const auto& pairs = by_expert[size_t(e)];
    if (pairs.empty()) continue;
    std::vector<int64_t> tokens;
    for (int64_t p : pairs) tokens.push_back(p / k);
    Tensor rows = index_select(xf, 0, Tensor::from_vector(tokens, {int64_t(tokens.size())}).to(x.device()));
    Tensor h = mxfp4_linear(rows, w1.select(e), b1.select(0, e)).view({int64_t(tokens.size()), I, 2});
    Tensor glu = clamp(h.select(-1, 0), -INFINITY, swiglu_limit);
    Tensor lin = clamp(h.select(-1, 1), -swiglu_limit, swiglu_limit);
    Tensor act = mul(mul(glu, sigmoid(mul(glu, 1.702))), add(lin, 1.0));
    Tensor y = mxfp4_linear(act, w2.select(e), b2.select(0, e));
    for (size_t r = 0; r < pairs.size(); ++r) ys.select(0, pairs[r]).copy_from(y.select(0, int64_t(r)));
  }
  out.copy_from(sum(mul(ys.view({T, k, H}), wf.unsqueeze(-1)), 1));
  return out;
}

}  // namespace ember
