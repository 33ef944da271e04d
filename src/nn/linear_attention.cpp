#include "ember/nn/linear_attention.h"

#include "ember/nn/masks.h"
#include "ember/ops.h"

namespace ember::nn {

Tensor feature_map(const Tensor& x, FeatureMap map) {
  return map == FeatureMap::EluPlusOne ? add(unary(UnaryOp::Elu, x, 1.0f), 1.0) : relu(x);
}

Tensor linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, const LinearAttentionOptions& o,
                        LinearAttentionState* state) {
  EMBER_CHECK(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4,
              "linear_attention: q, k, v must be [B, H, T, D]; got {}, {}, {}", q.shape().str(), k.shape().str(),
              v.shape().str());
  const int64_t B = q.dim(0), H = q.dim(1), T = q.dim(2), D = q.dim(3);
  EMBER_CHECK(k.dim(0) == B && k.dim(1) == H && k.dim(3) == D, "linear_attention: k {} does not match q {}",
              k.shape().str(), q.shape().str());
  EMBER_CHECK(v.dim(0) == B && v.dim(1) == H && v.dim(2) == k.dim(2), "linear_attention: v {} does not match k {}",
              v.shape().str(), k.shape().str());
  EMBER_CHECK(!o.causal || k.dim(2) == T, "linear_attention: causal needs as many keys as queries");
  EMBER_CHECK(!state || o.causal, "linear_attention: a streaming state needs causal = true");
  EMBER_CHECK(o.eps >= 0, "linear_attention: eps must be >= 0");
  const Device dev = q.device();
  Tensor fq = feature_map(q.to(DType::F32), o.feature_map);
  Tensor fk = feature_map(k.to(DType::F32), o.feature_map);
  Tensor vv = v.to(DType::F32);
  if (o.padding_mask) {
    const Tensor& m = *o.padding_mask;
    EMBER_CHECK(m.dtype() == DType::Bool && m.shape() == (Shape{B, k.dim(2)}),
                "linear_attention: padding_mask must be bool [{}, {}], got {} {}", B, k.dim(2), dtype_name(m.dtype()),
                m.shape().str());
    Tensor keep = unary(UnaryOp::Not, m.to(dev)).to(DType::F32).view({B, 1, k.dim(2), 1});
    fk = mul(fk, keep);
    vv = mul(vv, keep);
  }
  Tensor num, den;
  if (!o.causal) {
    Tensor kv = matmul(fk, vv, true, false);             // [B, H, D, Dv]
    Tensor ksum = sum(fk, 2, true);                     // [B, H, 1, D]
    num = matmul(fq, kv);                               // [B, H, T, Dv]
    den = matmul(fq, ksum, false, true);                // [B, H, T, 1]
  } else {
    // Exact prefix sums through a lower-triangular product: A = phi(q) phi(k)^T masked to j <= i.
    Tensor a = matmul(fq, fk, false, true);             // [B, H, T, T]
    Tensor lower = where(causal_mask(T, T, 0, 0, dev), zeros({}, DType::F32, dev), ones({}, DType::F32, dev));
    a = mul(a, lower);
    num = matmul(a, vv);
    den = sum(a, -1, true);
    if (state && !state->empty()) {
      num = add(num, matmul(fq, state->S));
      den = add(den, matmul(fq, state->z.unsqueeze(-1)));
    }
    if (state) {
      Tensor S = matmul(fk, vv, true, false), z = sum(fk, 2);
      const bool first = state->empty();
      state->S = first ? S : add(state->S, S);
      state->z = first ? z : add(state->z, z);
    }
  }
  return div(num, add(den, double(o.eps)));
}

}  // namespace ember::nn
