// CPU kernels for creation, copies, elementwise math, reductions, norms, top-k and indexing.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernel_util.h"
#include "ember/core/generator.h"

namespace ember::backend {

using namespace cpu_util;

namespace {

float apply_unary(UnaryOp op, float x, float a, float b) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Rsqrt: return 1.0f / std::sqrt(x);
    case UnaryOp::Sin: return std::sin(x);
    case UnaryOp::Cos: return std::cos(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return 1.0f / (1.0f + std::exp(-x));
    case UnaryOp::Silu: return x / (1.0f + std::exp(-x));
    case UnaryOp::Relu: return x > 0 ? x : (std::isnan(x) ? x : 0.0f);
    case UnaryOp::Gelu: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case UnaryOp::GeluTanh: {
      const float k = 0.7978845608028654f;  // sqrt(2/pi)
      return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
    }
    case UnaryOp::Elu: return x > 0 ? x : a * (std::exp(x) - 1.0f);
    case UnaryOp::Erf: return std::erf(x);
    case UnaryOp::Square: return x * x;
    case UnaryOp::Reciprocal: return 1.0f / x;
    case UnaryOp::Floor: return std::floor(x);
    case UnaryOp::Ceil: return std::ceil(x);
    case UnaryOp::Round: return std::nearbyint(x);  // half to even, as torch.round
    case UnaryOp::Clamp: return std::isnan(x) ? x : std::min(std::max(x, a), b);
    case UnaryOp::Not: return x == 0 ? 1.0f : 0.0f;
  }
  return x;
}

int64_t apply_unary_int(UnaryOp op, int64_t x, float a, float b) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return x < 0 ? -x : x;
    case UnaryOp::Square: return x * x;
    case UnaryOp::Relu: return x > 0 ? x : 0;
    case UnaryOp::Clamp: return std::min<int64_t>(std::max<int64_t>(x, int64_t(std::ceil(a))), int64_t(std::floor(b)));
    case UnaryOp::Not: return x == 0;
    default: throw_error("unary op {} needs a float tensor", int(op));
  }
}

template <typename V>
V apply_binary(BinaryOp op, V x, V y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div:
      if constexpr (std::is_integral_v<V>) return y == 0 ? 0 : x / y;
      else return x / y;
    case BinaryOp::Max:
      if constexpr (!std::is_integral_v<V>) if (std::isnan(x) || std::isnan(y)) return x + y;
      return x > y ? x : y;
    case BinaryOp::Min:
      if constexpr (!std::is_integral_v<V>) if (std::isnan(x) || std::isnan(y)) return x + y;
      return x < y ? x : y;
    case BinaryOp::Pow:
      if constexpr (std::is_integral_v<V>) {
        if (y < 0) return x == 1 ? 1 : (x == -1 ? (y % 2 ? -1 : 1) : 0);
        V r = 1;
        for (V e = y, base = x; e; e >>= 1, base *= base)
          if (e & 1) r *= base;
        return r;
      } else {
        return std::pow(x, y);
      }
    case BinaryOp::Eq: return x == y;
    case BinaryOp::Ne: return x != y;
    case BinaryOp::Lt: return x < y;
    case BinaryOp::Le: return x <= y;
    case BinaryOp::Gt: return x > y;
    case BinaryOp::Ge: return x >= y;
    case BinaryOp::And: return (x != 0) && (y != 0);
    case BinaryOp::Or: return (x != 0) || (y != 0);
  }
  return x;
}

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge || op == BinaryOp::And || op == BinaryOp::Or;
}

// A small float vector (norm weights) as f32 on the host, or `fill` when t is undefined.
std::vector<float> load_floats(const Tensor& t, int64_t n, float fill) {
  std::vector<float> v(static_cast<size_t>(n), fill);
  if (t.defined())
    dispatch(t.dtype(), [&](auto tag) {
      using T = decltype(tag);
      for (int64_t j = 0; j < n; ++j) v[size_t(j)] = float(load(static_cast<const T*>(t.raw_data()) + j));
    });
  return v;
}

template <typename T>
const T* ptr(const Tensor& t) {
  return static_cast<const T*>(t.raw_data());
}
template <typename T>
T* mptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

}  // namespace

// ---------------- creation ----------------

void CpuBackend::fill(const Tensor& out, double value) {
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v;
    store(&v, value);
    T* p = mptr<T>(out);
    parallel_for(out.numel(), 1 << 16, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, v); });
  });
}

void CpuBackend::arange(const Tensor& out, double start, double step) {
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = mptr<T>(out);
    for (int64_t i = 0; i < out.numel(); ++i) store(p + i, start + double(i) * step);
  });
}

void CpuBackend::random(const Tensor& out, bool normal, uint64_t seed, uint64_t offset) {
  float* p = out.data<float>();
  parallel_for(out.numel(), 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      p[i] = normal ? philox_normal(seed, offset + uint64_t(i)) : philox_uniform(seed, offset + uint64_t(i));
  });
}

// ---------------- copy / convert ----------------

void CpuBackend::copy(const Tensor& src, const Tensor& dst) {
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    const size_t n = dst.nbytes();
    const char* s = static_cast<const char*>(src.raw_data());
    char* d = static_cast<char*>(dst.raw_data());
    parallel_for(int64_t(n), 1 << 20, [&](int64_t b, int64_t e) { std::memcpy(d + b, s + b, size_t(e - b)); });
    return;
  }
  if (src.dtype() == dst.dtype() && dtype_size(src.dtype()) == 1 &&
      (src.dtype() == DType::F8E4M3 || src.dtype() == DType::F8E5M2)) {  // raw bytes
    const auto* s = ptr<uint8_t>(src);
    auto* d = mptr<uint8_t>(dst);
    for_each_row<2>(dst.shape(), {src.strides(), dst.strides()}, [&](auto off, int64_t n, auto st) {
      for (int64_t i = 0; i < n; ++i) d[off[1] + i * st[1]] = s[off[0] + i * st[0]];
    });
    return;
  }
  dispatch(src.dtype(), [&](auto stag) {
    using S = decltype(stag);
    dispatch(dst.dtype(), [&](auto dtag) {
      using D = decltype(dtag);
      const S* s = ptr<S>(src);
      D* d = mptr<D>(dst);
      for_each_row<2>(dst.shape(), {src.strides(), dst.strides()}, [&](auto off, int64_t n, auto st) {
        for (int64_t i = 0; i < n; ++i) {
          const S* sp = s + off[0] + i * st[0];
          D* dp = d + off[1] + i * st[1];
          if constexpr (std::is_same_v<S, D> && !std::is_same_v<S, bool>) {
            *dp = *sp;
          } else if constexpr (is_float_v<S>) {
            if constexpr (std::is_same_v<D, bool> || !is_float_v<D>) {
              // float -> int truncates toward zero; -> bool is != 0
              store(dp, std::is_same_v<D, bool> ? double(load(sp) != 0) : std::trunc(double(load(sp))));
            } else {
              store(dp, double(load(sp)));
            }
          } else {
            store_int(dp, load(sp));
          }
        }
      });
    });
  });
}

// ---------------- elementwise ----------------

void CpuBackend::unary(UnaryOp op, const Tensor& x, const Tensor& out, float a, float b) {
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = ptr<T>(x);
    T* op_ = mptr<T>(out);
    for_each_row<2>(out.shape(), {x.strides(), out.strides()}, [&](auto off, int64_t n, auto st) {
      for (int64_t i = 0; i < n; ++i) {
        const T* s = xp + off[0] + i * st[0];
        T* d = op_ + off[1] + i * st[1];
        if constexpr (is_float_v<T>) store(d, double(apply_unary(op, load(s), a, b)));
        else store_int(d, apply_unary_int(op, load(s), a, b));
      }
    });
  });
}

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const bool cmp = is_comparison(op);
  dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using V = std::conditional_t<is_float_v<T>, float, int64_t>;
    const T* ap = ptr<T>(a);
    const T* bp = ptr<T>(b);
    if (cmp) {
      uint8_t* o = mptr<uint8_t>(out);
      for_each_row<3>(out.shape(), {a.strides(), b.strides(), out.strides()}, [&](auto off, int64_t n, auto st) {
        for (int64_t i = 0; i < n; ++i)
          o[off[2] + i * st[2]] =
              apply_binary<V>(op, V(load(ap + off[0] + i * st[0])), V(load(bp + off[1] + i * st[1]))) != 0;
      });
    } else {
      T* o = mptr<T>(out);
      for_each_row<3>(out.shape(), {a.strides(), b.strides(), out.strides()}, [&](auto off, int64_t n, auto st) {
        for (int64_t i = 0; i < n; ++i) {
          V r = apply_binary<V>(op, V(load(ap + off[0] + i * st[0])), V(load(bp + off[1] + i * st[1])));
          if constexpr (is_float_v<T>) store(o + off[2] + i * st[2], double(r));
          else store_int(o + off[2] + i * st[2], r);
        }
      });
    }
  });
}

void CpuBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  const uint8_t* c = ptr<uint8_t>(cond);
  const size_t es = dtype_size(out.dtype());
  const char* ap = static_cast<const char*>(a.raw_data());
  const char* bp = static_cast<const char*>(b.raw_data());
  char* o = static_cast<char*>(out.raw_data());
  for_each_row<4>(out.shape(), {cond.strides(), a.strides(), b.strides(), out.strides()},
                  [&](auto off, int64_t n, auto st) {
                    for (int64_t i = 0; i < n; ++i) {
                      const char* src = c[off[0] + i * st[0]] ? ap + (off[1] + i * st[1]) * int64_t(es)
                                                              : bp + (off[2] + i * st[2]) * int64_t(es);
                      std::memcpy(o + (off[3] + i * st[3]) * int64_t(es), src, es);
                    }
                  });
}

// ---------------- reductions ----------------

void CpuBackend::reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner,
                        const Tensor& out) {
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = ptr<T>(x);
    parallel_for(outer * inner, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t o = r / inner, i = r % inner;
        const T* base = xp + o * n * inner + i;
        if (op == ReduceOp::Sum || op == ReduceOp::Mean) {
          if constexpr (is_float_v<T>) {
            double s = 0;
            for (int64_t j = 0; j < n; ++j) s += double(load(base + j * inner));
            if (op == ReduceOp::Mean) s /= double(n);
            dispatch(out.dtype(), [&](auto ot) { store(mptr<decltype(ot)>(out) + r, s); });
          } else {
            int64_t s = 0;
            for (int64_t j = 0; j < n; ++j) s += load(base + j * inner);
            mptr<int64_t>(out)[r] = s;
          }
        } else {
          // Max/Min keep the first extreme; NaN wins (torch semantics). Arg* give its index.
          const bool want_max = op == ReduceOp::Max || op == ReduceOp::ArgMax;
          auto best = load(base);
          int64_t best_j = 0;
          for (int64_t j = 1; j < n; ++j) {
            auto v = load(base + j * inner);
            bool better;
            if constexpr (is_float_v<T>) {
              if (std::isnan(best)) break;
              better = std::isnan(v) || (want_max ? v > best : v < best);
            } else {
              better = want_max ? v > best : v < best;
            }
            if (better) best = v, best_j = j;
          }
          if (op == ReduceOp::ArgMax || op == ReduceOp::ArgMin) mptr<int64_t>(out)[r] = best_j;
          else mptr<T>(out)[r] = base[best_j * inner];
        }
      }
    });
  });
}

void CpuBackend::softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log,
                         const Tensor& out) {
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_float_v<T>) {
      const T* xp = ptr<T>(x);
      T* op_ = mptr<T>(out);
      parallel_for(outer * inner, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
        std::vector<float> buf(static_cast<size_t>(n));
        for (int64_t r = b; r < e; ++r) {
          const int64_t o = r / inner, i = r % inner;
          const T* src = xp + o * n * inner + i;
          T* dst = op_ + o * n * inner + i;
          float m = -INFINITY;
          for (int64_t j = 0; j < n; ++j) m = std::max(m, buf[size_t(j)] = load(src + j * inner));
          if (m == -INFINITY) m = 0;  // all -inf: keep exp(-inf) = 0 and avoid inf - inf
          double s = 0;
          for (int64_t j = 0; j < n; ++j) s += std::exp(double(buf[size_t(j)] - m));
          if (log) {
            const float ls = float(std::log(s));
            for (int64_t j = 0; j < n; ++j) store(dst + j * inner, double(buf[size_t(j)] - m - ls));
          } else {
            const float inv = float(1.0 / s);
            for (int64_t j = 0; j < n; ++j) store(dst + j * inner, double(std::exp(buf[size_t(j)] - m) * inv));
          }
        }
      });
    }
  });
}

void CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) {
  const int64_t n = x.dim(-1), rows = x.numel() / std::max<int64_t>(n, 1);
  const std::vector<float> w = load_floats(weight, n, 1.0f);
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_float_v<T>) {
      const T* xp = ptr<T>(x);
      T* op_ = mptr<T>(out);
      parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* src = xp + r * n;
          double ss = 0;
          for (int64_t j = 0; j < n; ++j) {
            const float v = load(src + j);
            ss += double(v) * v;
          }
          const float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
          for (int64_t j = 0; j < n; ++j) store(op_ + r * n + j, double(load(src + j) * scale * w[size_t(j)]));
        }
      });
    }
  });
}

void CpuBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                            const Tensor& out) {
  const int64_t n = x.dim(-1), rows = x.numel() / std::max<int64_t>(n, 1);
  const std::vector<float> w = load_floats(weight, n, 1.0f), bv = load_floats(bias, n, 0.0f);
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_float_v<T>) {
      const T* xp = ptr<T>(x);
      T* op_ = mptr<T>(out);
      parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* src = xp + r * n;
          double mean = 0, var = 0;
          for (int64_t j = 0; j < n; ++j) mean += load(src + j);
          mean /= double(n);
          for (int64_t j = 0; j < n; ++j) {
            const double d = load(src + j) - mean;
            var += d * d;
          }
          var /= double(n);  // biased, as torch.nn.functional.layer_norm
          const double inv = 1.0 / std::sqrt(var + double(eps));
          for (int64_t j = 0; j < n; ++j)
            store(op_ + r * n + j, (double(load(src + j)) - mean) * inv * w[size_t(j)] + bv[size_t(j)]);
        }
      });
    }
  });
}

void CpuBackend::topk(const Tensor& x, int64_t k, const Tensor& values, const Tensor& indices) {
  const int64_t n = x.dim(-1), rows = x.numel() / std::max<int64_t>(n, 1);
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_float_v<T>) {
      const T* xp = ptr<T>(x);
      T* vp = mptr<T>(values);
      int64_t* ip = mptr<int64_t>(indices);
      parallel_for(rows, 1, [&](int64_t b, int64_t e) {
        std::vector<int64_t> idx(static_cast<size_t>(n));
        for (int64_t r = b; r < e; ++r) {
          const T* row = xp + r * n;
          std::iota(idx.begin(), idx.end(), 0);
          // Descending; NaN largest; ties by lower index.
          auto greater = [&](int64_t a, int64_t c) {
            float va = load(row + a), vc = load(row + c);
            bool na = std::isnan(va), nc = std::isnan(vc);
            if (na != nc) return na;
            if (!na && va != vc) return va > vc;
            return a < c;
          };
          std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), greater);
          for (int64_t j = 0; j < k; ++j) {
            vp[r * k + j] = row[idx[size_t(j)]];
            ip[r * k + j] = idx[size_t(j)];
          }
        }
      });
    }
  });
}

// ---------------- indexing ----------------

void CpuBackend::index_select(const Tensor& x, int64_t outer, int64_t n, int64_t inner,
                              const Tensor& index, const Tensor& out) {
  const size_t es = dtype_size(x.dtype());
  const int64_t m = index.numel();
  const int64_t* idx = ptr<int64_t>(index);
  const char* xp = static_cast<const char*>(x.raw_data());
  char* op_ = static_cast<char*>(out.raw_data());
  const size_t row = size_t(inner) * es;
  parallel_for(outer * m, std::max<int64_t>(1, 65536 / int64_t(std::max<size_t>(row, 1))), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t o = r / m, j = r % m;
      std::memcpy(op_ + size_t(r) * row, xp + (size_t(o * n + idx[j])) * row, row);
    }
  });
}

void CpuBackend::gather(const Tensor& x, int64_t outer, int64_t n, int64_t inner, const Tensor& index,
                        const Tensor& out) {
  const size_t es = dtype_size(x.dtype());
  const int64_t m = index.numel() / std::max<int64_t>(outer * inner, 1);
  const int64_t* idx = ptr<int64_t>(index);
  const char* xp = static_cast<const char*>(x.raw_data());
  char* op_ = static_cast<char*>(out.raw_data());
  parallel_for(index.numel(), 4096, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / (m * inner), i = t % inner;
      std::memcpy(op_ + size_t(t) * es, xp + size_t((o * n + idx[t]) * inner + i) * es, es);
    }
  });
}

}  // namespace ember::backend
