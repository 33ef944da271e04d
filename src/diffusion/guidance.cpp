#include "ember/diffusion/guidance.h"

#include <algorithm>

#include "ember/ops.h"

namespace ember::diffusion {

namespace {

void check_pair(const Tensor& a, const Tensor& b, const char* what) {
  EMBER_CHECK(a.defined() && b.defined(), "{}: undefined input", what);
  EMBER_CHECK(a.shape() == b.shape(), "{}: cond {} and uncond {} differ in shape", what, a.shape().str(),
              b.shape().str());
  EMBER_CHECK(a.device() == b.device(), "{}: inputs on different devices", what);
}

// Sum over several dims, keeping them (dims normalised and applied from the last).
Tensor sum_dims(const Tensor& x, const std::vector<int>& dims) {
  std::vector<int> ds;
  for (int d : dims) ds.push_back(wrap_dim(d, x.ndim(), "guidance dim"));
  std::sort(ds.rbegin(), ds.rend());
  EMBER_CHECK(std::adjacent_find(ds.begin(), ds.end()) == ds.end(), "guidance: repeated dim");
  Tensor r = x;
  for (int d : ds) r = sum(r, d, true);
  return r;
}

}  // namespace

Tensor cfg(const Tensor& cond, const Tensor& uncond, float scale) {
  check_pair(cond, uncond, "cfg");
  return add(uncond, mul(sub(cond, uncond), scale));
}

Tensor cfg_double_condition(const Tensor& cond, const Tensor& uncond, const Tensor& text_only, float s_text,
                            float s_lyric) {
  check_pair(cond, uncond, "cfg_double_condition");
  check_pair(cond, text_only, "cfg_double_condition");
  return add(add(mul(uncond, 1.0 - double(s_text)), mul(text_only, double(s_text) - double(s_lyric))),
             mul(cond, s_lyric));
}

void MomentumBuffer::update(const Tensor& value) {
  average_ = average_.defined() ? add(value, mul(average_, momentum_)) : value;
}

Tensor apg(const Tensor& cond, const Tensor& uncond, float scale, MomentumBuffer* momentum, const ApgOptions& o) {
  check_pair(cond, uncond, "apg");
  EMBER_CHECK(!o.dims.empty(), "apg: dims is empty");
  Tensor diff = sub(cond, uncond);
  if (momentum) {
    momentum->update(diff);
    diff = momentum->running_average();
  }
  if (o.norm_threshold > 0) {
    Tensor norm = sqrt(sum_dims(mul(diff, diff), o.dims));
    Tensor factor = minimum(ones({}, norm.dtype(), norm.device()), div(full({}, o.norm_threshold, norm.dtype(), norm.device()), norm));
    diff = mul(diff, factor);
  }
  // project(diff, cond): cond normalised over dims (F.normalize, eps 1e-12).
  Tensor c = cond.to(DType::F32), v0 = diff.to(DType::F32);
  Tensor cn = sqrt(sum_dims(mul(c, c), o.dims));
  Tensor v1 = div(c, maximum(cn, full({}, 1e-12, DType::F32, c.device())));
  Tensor parallel = mul(sum_dims(mul(v0, v1), o.dims), v1);
  Tensor orthogonal = sub(v0, parallel);
  Tensor update = add(orthogonal.to(diff.dtype()), mul(parallel.to(diff.dtype()), o.eta));
  return add(cond, mul(update, double(scale) - 1.0));
}

Tensor optimized_scale(const Tensor& pos, const Tensor& neg) {
  check_pair(pos, neg, "optimized_scale");
  EMBER_CHECK(pos.ndim() == 2, "optimized_scale: inputs must be [B, N], got {}", pos.shape().str());
  Tensor dot = sum(mul(pos, neg), 1, true);
  Tensor sq = add(sum(mul(neg, neg), 1, true), 1e-8);
  return div(dot, sq);
}

Tensor cfg_zero_star(const Tensor& cond, const Tensor& uncond, float scale, int64_t step, int64_t zero_steps,
                     bool use_zero_init) {
  check_pair(cond, uncond, "cfg_zero_star");
  EMBER_CHECK(cond.ndim() >= 1, "cfg_zero_star: inputs need a batch dim");
  if (step <= zero_steps && use_zero_init) return mul(cond, 0.0);
  const int64_t B = cond.dim(0);
  Tensor alpha = optimized_scale(cond.reshape({B, -1}), uncond.reshape({B, -1}));
  Shape s(std::vector<int64_t>(size_t(cond.ndim()), 1));
  s[0] = B;
  alpha = alpha.view(s);
  Tensor au = mul(uncond, alpha);
  return add(au, mul(sub(cond, au), scale));
}

}  // namespace ember::diffusion
