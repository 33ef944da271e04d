// The op vocabulary except matmul and MXFP4: argument checks, dtype promotion, broadcasting and
// layout preparation, then one backend kernel (contracts in src/backends/backend.h).
#include <algorithm>
#include <cmath>

#include "backends/backend.h"
#include "ember/ops.h"

namespace ember {

namespace {

backend::Backend& be(const Tensor& t) { return backend::backend_for(t.device()); }

void check_defined(const Tensor& t, const char* op, const char* arg) {
  EMBER_CHECK(t.defined(), "{}: {} is an undefined tensor", op, arg);
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  EMBER_CHECK(a.device() == b.device(), "{}: tensors on different devices ({} and {})", op,
              a.device().str(), b.device().str());
}

int rank(DType t) {
  switch (t) {
    case DType::Bool: return 0;
    case DType::U8: return 1;
    case DType::I32: return 2;
    case DType::I64: return 3;
    case DType::BF16:
    case DType::F16: return 4;
    case DType::F32: return 5;
    default: throw_error("dtype {} has no arithmetic", dtype_name(t));
  }
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int n = std::max(a.size(), b.size());
  Shape out;
  for (int i = 0; i < n; ++i) {
    const int ia = i - (n - a.size()), ib = i - (n - b.size());
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    EMBER_CHECK(da == db || da == 1 || db == 1, "{}: shapes {} and {} do not broadcast", op, a.str(),
                b.str());
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge;
}

// Makes x a contiguous float tensor for float-only ops (integers become f32, as torch does).
Tensor as_float(const Tensor& x) { return is_floating(x.dtype()) ? x : x.to(DType::F32); }

struct Split {
  int64_t outer, n, inner;
};
Split split_at(const Shape& s, int d) {
  Split r{1, s[d], 1};
  for (int i = 0; i < d; ++i) r.outer *= s[i];
  for (int i = d + 1; i < s.size(); ++i) r.inner *= s[i];
  return r;
}

Tensor index_to_i64(const Tensor& index, int64_t bound, const char* op) {
  EMBER_CHECK(index.dtype() == DType::I32 || index.dtype() == DType::I64,
              "{}: index must be i32 or i64, got {}", op, dtype_name(index.dtype()));
  Tensor idx = index.to(DType::I64).contiguous();
  // Range check on the host: an out-of-range index is user input, never a crash.
  auto host = idx.to_vector<int64_t>();
  for (size_t i = 0; i < host.size(); ++i)
    EMBER_CHECK(host[i] >= 0 && host[i] < bound, "{}: index {} at position {} is out of range [0, {})",
                op, host[i], i, bound);
  return idx;
}

}  // namespace

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if ((a == DType::BF16 && b == DType::F16) || (a == DType::F16 && b == DType::BF16)) return DType::F32;
  return rank(a) >= rank(b) ? a : b;
}

// ---------------- creation ----------------

void fill_(Tensor& t, double value) {
  check_defined(t, "fill_", "t");
  if (!t.numel()) return;
  if (t.is_contiguous()) {
    be(t).fill(t, value);
  } else {
    t.copy_from(full({}, value, t.dtype(), t.device()));
  }
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  if (t.numel()) be(t).fill(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  EMBER_CHECK(step != 0 && std::isfinite(step), "arange: step must be finite and non-zero, got {}", step);
  EMBER_CHECK(std::isfinite(start) && std::isfinite(end), "arange: start and end must be finite");
  const double count = std::ceil((end - start) / step);
  EMBER_CHECK(count < 1e12, "arange: {} elements is too many", count);
  Tensor t = Tensor::empty({std::max<int64_t>(0, int64_t(count))}, dtype, device);
  if (t.numel()) be(t).arange(t, start, step);
  return t;
}

static Tensor random_tensor(const Shape& shape, Generator& gen, DType dtype, Device device, bool normal) {
  EMBER_CHECK(is_floating(dtype), "{}: dtype must be f32, f16 or bf16, got {}", normal ? "randn" : "rand",
              dtype_name(dtype));
  Tensor t = Tensor::empty(shape, DType::F32, device);
  const uint64_t offset = gen.advance(uint64_t(t.numel()));
  if (t.numel()) be(t).random(t, normal, gen.seed(), offset);
  return t.to(dtype);
}
Tensor rand(const Shape& shape, Generator& gen, DType dtype, Device device) {
  return random_tensor(shape, gen, dtype, device, false);
}
Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  return random_tensor(shape, gen, dtype, device, true);
}

// ---------------- elementwise ----------------

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  check_defined(a, "binary op", "a");
  check_defined(b, "binary op", "b");
  check_same_device(a, b, "binary op");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "binary op");
  DType compute = promote_types(a.dtype(), b.dtype());
  if (op == BinaryOp::And || op == BinaryOp::Or) compute = DType::Bool;
  if ((op == BinaryOp::Div) && !is_floating(compute)) compute = DType::F32;  // true division
  if (!is_comparison(op) && op != BinaryOp::And && op != BinaryOp::Or && compute == DType::Bool)
    compute = DType::U8;  // bool arithmetic: like torch, add/mul of bools count in integers
  const DType out_dtype = (is_comparison(op) || op == BinaryOp::And || op == BinaryOp::Or) ? DType::Bool : compute;
  Tensor out = Tensor::empty(shape, out_dtype, a.device());
  if (!out.numel()) return out;
  be(a).binary(op, a.to(compute).expand(shape), b.to(compute).expand(shape), out);
  return out;
}

static Tensor scalar_like(const Tensor& a, double s) {
  DType t = a.dtype();
  if (!is_floating(t) && s != std::floor(s)) t = DType::F32;
  if (t == DType::Bool) t = (s == 0 || s == 1) ? DType::Bool : DType::I64;
  return full({}, s, t, a.device());
}

Tensor binary(BinaryOp op, const Tensor& a, double s) {
  check_defined(a, "binary op", "a");
  Tensor sc = scalar_like(a, s);
  // The scalar never widens a float tensor's dtype (torch's wrapped-number rule).
  if (is_floating(a.dtype())) sc = sc.to(a.dtype());
  return binary(op, a, sc);
}
Tensor add(const Tensor& a, double s) { return binary(BinaryOp::Add, a, s); }
Tensor mul(const Tensor& a, double s) { return binary(BinaryOp::Mul, a, s); }

void binary_(BinaryOp op, Tensor& a, const Tensor& b) {
  Tensor r = binary(op, a, b);
  EMBER_CHECK(r.shape() == a.shape(), "in-place op: result shape {} differs from the target {}",
              r.shape().str(), a.shape().str());
  a.copy_from(r);
}

Tensor unary(UnaryOp op, const Tensor& x, float a, float b) {
  check_defined(x, "unary op", "x");
  Tensor in = x;
  const bool int_ok = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Square ||
                      op == UnaryOp::Relu || op == UnaryOp::Clamp;
  if (op == UnaryOp::Not) {
    in = x.to(DType::Bool);
  } else if (!is_floating(x.dtype()) && !(int_ok && x.dtype() != DType::Bool)) {
    in = x.to(DType::F32);
  }
  if (op == UnaryOp::Clamp) EMBER_CHECK(!(a > b), "clamp: lo {} is greater than hi {}", a, b);
  Tensor out = Tensor::empty(in.shape(), in.dtype(), in.device());
  if (out.numel()) be(in).unary(op, in, out, a, b);
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where", "cond");
  check_same_device(cond, a, "where");
  check_same_device(a, b, "where");
  EMBER_CHECK(cond.dtype() == DType::Bool, "where: cond must be bool, got {}", dtype_name(cond.dtype()));
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  const DType t = promote_types(a.dtype(), b.dtype());
  Tensor out = Tensor::empty(shape, t, a.device());
  if (out.numel()) be(a).where(cond.expand(shape), a.to(t).expand(shape), b.to(t).expand(shape), out);
  return out;
}

// ---------------- layout ----------------

Tensor cat(const std::vector<Tensor>& tensors, int dim) {
  EMBER_CHECK(!tensors.empty(), "cat: no tensors given");
  const Tensor& first = tensors[0];
  const int nd = first.ndim();
  EMBER_CHECK(nd > 0, "cat: zero-dimensional tensors cannot be concatenated");
  const int d = wrap_dim(dim, nd, "cat dim");
  DType t = first.dtype();
  int64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& x = tensors[i];
    check_defined(x, "cat", "tensor");
    check_same_device(first, x, "cat");
    EMBER_CHECK(x.ndim() == nd, "cat: tensor {} has {} dims, tensor 0 has {}", i, x.ndim(), nd);
    for (int k = 0; k < nd; ++k)
      EMBER_CHECK(k == d || x.dim(k) == first.dim(k), "cat: tensor {} has shape {}, tensor 0 has {} (dim {})",
                  i, x.shape().str(), first.shape().str(), k);
    total += x.dim(d);
    t = promote_types(t, x.dtype());
  }
  Shape shape = first.shape();
  shape[d] = total;
  Tensor out = Tensor::empty(shape, t, first.device());
  int64_t off = 0;
  for (const Tensor& x : tensors) {
    if (x.dim(d)) {
      Tensor dst = out.narrow(d, off, x.dim(d));
      be(out).copy(x, dst);
    }
    off += x.dim(d);
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int dim) {
  EMBER_CHECK(!tensors.empty(), "stack: no tensors given");
  const int d = wrap_dim(dim, tensors[0].ndim() + 1, "stack dim");
  std::vector<Tensor> u;
  for (size_t i = 0; i < tensors.size(); ++i) {
    EMBER_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor {} has shape {}, tensor 0 has {}",
                i, tensors[i].shape().str(), tensors[0].shape().str());
    u.push_back(tensors[i].unsqueeze(d));
  }
  return cat(u, d);
}

Tensor index_select(const Tensor& x, int dim, const Tensor& index) {
  check_defined(x, "index_select", "x");
  check_same_device(x, index, "index_select");
  EMBER_CHECK(index.ndim() <= 1, "index_select: index must be 1-D, got {}", index.shape().str());
  const int d = wrap_dim(dim, x.ndim(), "index_select dim");
  Tensor idx = index_to_i64(index.reshape({-1}), x.dim(d), "index_select");
  Tensor xc = x.contiguous();
  Split s = split_at(xc.shape(), d);
  Shape shape = x.shape();
  shape[d] = idx.numel();
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  if (out.numel()) be(x).index_select(xc, s.outer, s.n, s.inner, idx, out);
  return out;
}

Tensor gather(const Tensor& x, int dim, const Tensor& index) {
  check_defined(x, "gather", "x");
  check_same_device(x, index, "gather");
  EMBER_CHECK(index.ndim() == x.ndim(), "gather: index has {} dims, x has {}", index.ndim(), x.ndim());
  const int d = wrap_dim(dim, x.ndim(), "gather dim");
  Tensor xs = x;
  for (int k = 0; k < x.ndim(); ++k) {
    if (k == d) continue;
    EMBER_CHECK(index.dim(k) <= x.dim(k), "gather: index size {} exceeds x size {} at dim {}",
                index.dim(k), x.dim(k), k);
    xs = xs.narrow(k, 0, index.dim(k));
  }
  Tensor idx = index_to_i64(index, x.dim(d), "gather");
  Tensor xc = xs.contiguous();
  Split s = split_at(xc.shape(), d);
  Tensor out = Tensor::empty(index.shape(), x.dtype(), x.device());
  if (out.numel()) be(x).gather(xc, s.outer, s.n, s.inner, idx, out);
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  check_defined(weight, "embedding", "weight");
  EMBER_CHECK(weight.ndim() == 2, "embedding: weight must be [vocab, dim], got {}", weight.shape().str());
  Tensor rows = index_select(weight, 0, ids.reshape({-1}));
  Shape shape = ids.shape();
  shape.push_back(weight.dim(1));
  return rows.view(shape);
}

// ---------------- reductions ----------------

Tensor reduce(ReduceOp op, const Tensor& x, int dim, bool keepdim) {
  check_defined(x, "reduce", "x");
  EMBER_CHECK(x.ndim() > 0, "reduce: x is zero-dimensional; use a 1-D view");
  const int d = wrap_dim(dim, x.ndim(), "reduce dim");
  Tensor in = x;
  if (op == ReduceOp::Mean && !is_floating(x.dtype())) in = x.to(DType::F32);
  if (in.dtype() == DType::Bool) in = in.to(DType::U8);
  in = in.contiguous();
  Split s = split_at(in.shape(), d);
  Shape shape = in.shape();
  if (keepdim) shape[d] = 1;
  else shape.erase(d);
  DType t = in.dtype();
  if (op == ReduceOp::ArgMax || op == ReduceOp::ArgMin) t = DType::I64;
  else if (op == ReduceOp::Sum && !is_floating(t)) t = DType::I64;
  if (s.n == 0) {
    EMBER_CHECK(op == ReduceOp::Sum || op == ReduceOp::Mean,
                "reduce: cannot take a max/min/arg over the empty dim {}", d);
    return full(shape, op == ReduceOp::Sum ? 0.0 : NAN, t, x.device());
  }
  Tensor out = Tensor::empty(shape, t, x.device());
  if (out.numel()) be(in).reduce(op, in, s.outer, s.n, s.inner, out);
  return out;
}

Tensor sum_all(const Tensor& x) { return reduce(ReduceOp::Sum, x.reshape({-1}), 0, false); }

static Tensor softmax_impl(const Tensor& x, int dim, bool log) {
  check_defined(x, log ? "log_softmax" : "softmax", "x");
  EMBER_CHECK(x.ndim() > 0, "softmax: x is zero-dimensional");
  const int d = wrap_dim(dim, x.ndim(), "softmax dim");
  Tensor in = as_float(x).contiguous();
  Split s = split_at(in.shape(), d);
  Tensor out = Tensor::empty(in.shape(), in.dtype(), in.device());
  if (out.numel()) be(in).softmax(in, s.outer, s.n, s.inner, log, out);
  return out;
}
Tensor softmax(const Tensor& x, int dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int dim) { return softmax_impl(x, dim, true); }

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  check_defined(x, "rms_norm", "x");
  check_defined(weight, "rms_norm", "weight");
  check_same_device(x, weight, "rms_norm");
  EMBER_CHECK(x.ndim() >= 1 && weight.shape() == (Shape{x.dim(-1)}),
              "rms_norm: weight has shape {}, expected [{}]", weight.shape().str(), x.ndim() ? x.dim(-1) : 0);
  EMBER_CHECK(is_floating(weight.dtype()), "rms_norm: weight must be float, got {}", dtype_name(weight.dtype()));
  EMBER_CHECK(eps >= 0, "rms_norm: eps must be >= 0, got {}", eps);
  Tensor in = as_float(x).contiguous();
  Tensor out = Tensor::empty(in.shape(), in.dtype(), in.device());
  if (out.numel()) be(in).rms_norm(in, weight.contiguous(), eps, out);
  return out;
}

Tensor layer_norm(const Tensor& x, const std::optional<Tensor>& weight, const std::optional<Tensor>& bias,
                  float eps) {
  check_defined(x, "layer_norm", "x");
  EMBER_CHECK(x.ndim() >= 1, "layer_norm: x is zero-dimensional");
  const int64_t n = x.dim(-1);
  for (const auto* p : {&weight, &bias})
    if (*p) {
      check_same_device(x, **p, "layer_norm");
      EMBER_CHECK((*p)->shape() == (Shape{n}) && is_floating((*p)->dtype()),
                  "layer_norm: {} must be float [{}], got {} {}", p == &weight ? "weight" : "bias", n,
                  dtype_name((*p)->dtype()), (*p)->shape().str());
    }
  EMBER_CHECK(eps >= 0, "layer_norm: eps must be >= 0, got {}", eps);
  Tensor in = as_float(x).contiguous();
  Tensor out = Tensor::empty(in.shape(), in.dtype(), in.device());
  if (out.numel())
    be(in).layer_norm(in, weight ? weight->contiguous() : Tensor(), bias ? bias->contiguous() : Tensor(), eps, out);
  return out;
}

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k) {
  check_defined(x, "topk", "x");
  EMBER_CHECK(x.ndim() >= 1, "topk: x is zero-dimensional");
  EMBER_CHECK(k >= 0 && k <= x.dim(-1), "topk: k = {} outside [0, {}]", k, x.dim(-1));
  Tensor in = as_float(x).contiguous();
  Shape shape = in.shape();
  shape[shape.size() - 1] = k;
  Tensor values = Tensor::empty(shape, in.dtype(), in.device());
  Tensor indices = Tensor::empty(shape, DType::I64, in.device());
  if (values.numel()) be(in).topk(in, k, values, indices);
  return {values, indices};
}

void synchronize(Device device) { backend::backend_for(device).synchronize(); }

}  // namespace ember
