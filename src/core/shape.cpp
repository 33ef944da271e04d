#include "ember/core/shape.h"

#include <fmt/format.h>

#include "ember/core/error.h"

namespace ember {

Shape::Shape(std::initializer_list<int64_t> dims)
    : Shape(std::span<const int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const int64_t> dims) {
  EMBER_CHECK(dims.size() <= size_t(kMaxDims), "shape has {} dims; at most {} are supported",
              dims.size(), kMaxDims);
  for (size_t i = 0; i < dims.size(); ++i) d_[i] = dims[i];
  n_ = int(dims.size());
}

void Shape::push_back(int64_t v) {
  EMBER_CHECK(n_ < kMaxDims, "shape would exceed {} dims", kMaxDims);
  d_[n_++] = v;
}

void Shape::insert(int pos, int64_t v) {
  EMBER_CHECK(n_ < kMaxDims, "shape would exceed {} dims", kMaxDims);
  for (int i = n_; i > pos; --i) d_[i] = d_[i - 1];
  d_[pos] = v;
  ++n_;
}

void Shape::erase(int pos) {
  for (int i = pos; i + 1 < n_; ++i) d_[i] = d_[i + 1];
  d_[--n_] = 0;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < n_; ++i) n *= d_[i];
  return n;
}

std::string Shape::str() const { return fmt::format("[{}]", fmt::join(begin(), end(), ", ")); }

bool Shape::operator==(const Shape& o) const {
  if (n_ != o.n_) return false;
  for (int i = 0; i < n_; ++i)
    if (d_[i] != o.d_[i]) return false;
  return true;
}

Shape contiguous_strides(const Shape& shape) {
  Shape s = shape;
  int64_t acc = 1;
  for (int i = shape.size() - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= std::max<int64_t>(shape[i], 1);
  }
  return s;
}

}  // namespace ember
