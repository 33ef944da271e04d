// matmul, linear and the MXFP4 products: argument checks and layout preparation.
#include "backends/backend.h"
#include "ember/ops.h"

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

}  // namespace ember
