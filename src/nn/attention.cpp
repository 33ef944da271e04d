#include "ember/nn/attention.h"

#include <cmath>

#include "backends/backend.h"
#include "ember/ops.h"

namespace ember::nn {

namespace {

// f32 view with a contiguous last dim (copies only when needed).
Tensor as_f32_rows(const Tensor& t) {
  Tensor f = t.to(DType::F32);
  return f.strides()[f.ndim() - 1] == 1 || f.dim(-1) == 1 ? f : f.contiguous();
}

Tensor broadcast_to(const Tensor& t, const Shape& shape, const char* what) {
  EMBER_CHECK(t.ndim() <= 4, "attention: {} has {} dims; at most 4 ([B, Hq, Tq, Tk])", what,
              t.ndim());
  try {
    return t.expand(shape);
  } catch (const Error&) {
    throw_error("attention: {} of shape {} does not broadcast to {}", what, t.shape().str(),
                shape.str());
  }
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& o) {
  EMBER_CHECK(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4,
              "attention: q, k, v must be [B, H, T, D]; got q {}, k {}, v {}", q.shape().str(),
              k.shape().str(), v.shape().str());
  const int64_t B = q.dim(0), Hq = q.dim(1), Tq = q.dim(2), D = q.dim(3);
  const int64_t Hkv = k.dim(1), Tk = k.dim(2);
  EMBER_CHECK(k.dim(0) == B && v.dim(0) == B, "attention: batch sizes differ (q {}, k {}, v {})", B,
              k.dim(0), v.dim(0));
  EMBER_CHECK(k.dim(3) == D, "attention: k head_dim {} != q head_dim {}", k.dim(3), D);
  EMBER_CHECK(v.dim(1) == Hkv && v.dim(2) == Tk, "attention: v {} does not match k {}",
              v.shape().str(), k.shape().str());
  EMBER_CHECK(Hkv > 0 && Hq % Hkv == 0, "attention: q heads {} not divisible by kv heads {}", Hq,
              Hkv);
  EMBER_CHECK(o.window >= 0, "attention: window must be >= 0, got {}", o.window);
  EMBER_CHECK(o.sink_positions >= 0, "attention: sink_positions must be >= 0, got {}",
              o.sink_positions);
  const Device dev = q.device();
  EMBER_CHECK(k.device() == dev && v.device() == dev, "attention: q, k, v on different devices");

  backend::AttentionParams p;
  p.scale = o.scale ? *o.scale : float(1.0 / std::sqrt(double(D)));
  p.causal = o.causal;
  p.window = o.window;
  p.sink_positions = o.sink_positions;
  p.q_offset = o.q_offset ? *o.q_offset : Tk - Tq;
  p.quiet_softmax = o.quiet_softmax;

  const Shape full{B, Hq, Tq, Tk};
  Tensor sinks, bias, mask, positions, qpositions;
  if (o.sinks) {
    EMBER_CHECK(o.sinks->numel() == Hq, "attention: sinks has shape {}, expected [{}]",
                o.sinks->shape().str(), Hq);
    sinks = o.sinks->to(dev).to(DType::F32).contiguous().view({Hq});
  }
  if (o.bias) bias = broadcast_to(o.bias->to(dev).to(DType::F32), full, "bias");
  if (o.mask) {
    if (o.mask->dtype() == DType::Bool) {
      mask = broadcast_to(o.mask->to(dev), full, "mask");
    } else {  // an additive mask is a bias
      EMBER_CHECK(is_floating(o.mask->dtype()), "attention: mask must be bool or float, got {}",
                  dtype_name(o.mask->dtype()));
      Tensor m = broadcast_to(o.mask->to(dev).to(DType::F32), full, "mask");
      bias = bias.defined() ? add(bias, m) : m;
    }
  }
  if (o.key_positions) {
    EMBER_CHECK(o.key_positions->numel() == Tk, "attention: key_positions has {} entries for {} keys",
                o.key_positions->numel(), Tk);
    positions = o.key_positions->to(dev).to(DType::I64).contiguous().view({Tk});
  }

  if (o.q_positions) {
    EMBER_CHECK(o.q_positions->numel() == Tq, "attention: q_positions has {} entries for {} queries",
                o.q_positions->numel(), Tq);
    qpositions = o.q_positions->to(dev).to(DType::I64).contiguous().view({Tq});
  }
  Tensor out = Tensor::empty({B, Hq, Tq, v.dim(3)}, DType::F32, dev);
  if (out.numel() == 0) return out.to(q.dtype());
  backend::backend_for(dev).attention(as_f32_rows(q), as_f32_rows(k), as_f32_rows(v), sinks, bias,
                                      mask, qpositions, positions, p, out);
  return out.to(q.dtype());
}

}  // namespace ember::nn
