#include "ember/core/tensor.h"

#include <algorithm>
#include <cstring>

#include "backends/backend.h"

namespace ember {

// ---------------- Storage ----------------

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  void* p = backend::backend_for(device).allocate(nbytes);
  return std::shared_ptr<Storage>(new Storage(p, nbytes, device, nullptr));
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t nbytes, Device device,
                                         std::shared_ptr<const void> keepalive) {
  if (!keepalive) keepalive = std::make_shared<int>(0);  // borrowed without an owner: caller's job
  return std::shared_ptr<Storage>(new Storage(data, nbytes, device, std::move(keepalive)));
}

Storage::~Storage() {
  if (!keepalive_ && data_) backend::backend_for(device_).deallocate(data_);
}

// ---------------- helpers ----------------

int wrap_dim(int dim, int ndim, const char* what) {
  int d = dim < 0 ? dim + ndim : dim;
  EMBER_CHECK(d >= 0 && d < ndim, "{} {} is out of range for a tensor with {} dims", what, dim,
              ndim);
  return d;
}

// ---------------- Tensor ----------------

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset,
               DType dtype)
    : storage_(std::move(storage)), shape_(shape), strides_(strides), offset_(offset),
      dtype_(dtype) {
  EMBER_CHECK(shape_.size() == strides_.size(), "shape {} and strides {} differ in rank",
              shape_.str(), strides_.str());
  for (int i = 0; i < shape_.size(); ++i)
    EMBER_CHECK(shape_[i] >= 0, "negative dimension in shape {}", shape_.str());
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int i = 0; i < shape.size(); ++i)
    EMBER_CHECK(shape[i] >= 0, "negative dimension in shape {}", shape.str());
  auto storage = Storage::allocate(size_t(shape.numel()) * dtype_size(dtype), device);
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::from_data(const void* data, const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  if (t.nbytes()) std::memcpy(t.raw_data(), data, t.nbytes());
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  EMBER_CHECK(int64_t(values.size()) == shape.numel(),
              "from_vector: {} values do not fill shape {}", values.size(), shape.str());
  if constexpr (std::is_same_v<T, bool>) {
    Tensor t = empty(shape, DType::Bool);
    auto* p = static_cast<uint8_t*>(t.raw_data());
    for (size_t i = 0; i < values.size(); ++i) p[i] = values[i] ? 1 : 0;
    return t;
  } else {
    return from_data(values.data(), shape, dtype_of<T>());
  }
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<f16>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<bf16>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<uint8_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<bool>&, const Shape&);

Tensor Tensor::borrow(void* data, const Shape& shape, DType dtype, Device device,
                      std::shared_ptr<const void> keepalive) {
  size_t nbytes = size_t(shape.numel()) * dtype_size(dtype);
  return Tensor(Storage::borrow(data, nbytes, device, std::move(keepalive)), shape,
                contiguous_strides(shape), 0, dtype);
}

int64_t Tensor::dim(int i) const { return shape_[wrap_dim(i, ndim())]; }

Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  EMBER_CHECK(storage_, "use of an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * int64_t(dtype_size(dtype_));
}

void Tensor::check_dtype(DType expected) const {
  EMBER_CHECK(dtype_ == expected, "tensor has dtype {}, accessed as {}", dtype_name(dtype_),
              dtype_name(expected));
}

Tensor Tensor::view(const Shape& shape) const {
  EMBER_CHECK(is_contiguous(), "view: tensor with shape {} and strides {} is not contiguous",
              shape_.str(), strides_.str());
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      EMBER_CHECK(infer < 0, "view: shape {} has more than one -1", shape.str());
      infer = i;
    } else {
      EMBER_CHECK(s[i] >= 0, "view: invalid dimension in shape {}", shape.str());
      known *= s[i];
    }
  }
  if (infer >= 0) {
    EMBER_CHECK(known > 0 && numel() % known == 0, "view: cannot infer -1 in {} for {} elements",
                shape.str(), numel());
    s[infer] = numel() / known;
  }
  EMBER_CHECK(s.numel() == numel(), "view: shape {} does not match {} elements of shape {}",
              shape.str(), numel(), shape_.str());
  return Tensor(storage_, s, contiguous_strides(s), offset_, dtype_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  return is_contiguous() ? view(shape) : contiguous().view(shape);
}

Tensor Tensor::permute(std::span<const int> dims) const {
  EMBER_CHECK(int(dims.size()) == ndim(), "permute: {} dims given for a tensor with {}",
              dims.size(), ndim());
  Shape s = shape_, st = strides_;
  bool used[kMaxDims] = {};
  for (int i = 0; i < ndim(); ++i) {
    int d = wrap_dim(dims[i], ndim(), "permute dim");
    EMBER_CHECK(!used[d], "permute: dim {} repeated", d);
    used[d] = true;
    s[i] = shape_[d];
    st[i] = strides_[d];
  }
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::transpose(int d0, int d1) const {
  d0 = wrap_dim(d0, ndim(), "transpose dim0");
  d1 = wrap_dim(d1, ndim(), "transpose dim1");
  Shape s = shape_, st = strides_;
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end, int64_t step) const {
  int d = wrap_dim(dim, ndim(), "slice dim");
  EMBER_CHECK(step > 0, "slice: step must be positive, got {}", step);
  int64_t n = shape_[d];
  auto clampi = [n](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + n : v, 0, n); };
  start = clampi(start);
  end = std::max(clampi(end), start);
  Shape s = shape_, st = strides_;
  s[d] = (end - start + step - 1) / step;
  st[d] = strides_[d] * step;
  return Tensor(storage_, s, st, offset_ + start * strides_[d], dtype_);
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  int d = wrap_dim(dim, ndim(), "narrow dim");
  EMBER_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d],
              "narrow: [{}, {}) is outside dim {} of size {}", start, start + length, d,
              shape_[d]);
  return slice(d, start, start + length);
}

Tensor Tensor::select(int dim, int64_t index) const {
  int d = wrap_dim(dim, ndim(), "select dim");
  int64_t n = shape_[d];
  if (index < 0) index += n;
  EMBER_CHECK(index >= 0 && index < n, "select: index {} out of range for dim {} of size {}",
              index, d, n);
  Shape s = shape_, st = strides_;
  s.erase(d);
  st.erase(d);
  return Tensor(storage_, s, st, offset_ + index * strides_[d], dtype_);
}

Tensor Tensor::unsqueeze(int dim) const {
  int d = wrap_dim(dim, ndim() + 1, "unsqueeze dim");
  Shape s = shape_, st = strides_;
  int64_t stride = d < ndim() ? strides_[d] * shape_[d] : 1;
  s.insert(d, 1);
  st.insert(d, stride);
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::squeeze(int dim) const {
  int d = wrap_dim(dim, ndim(), "squeeze dim");
  EMBER_CHECK(shape_[d] == 1, "squeeze: dim {} has size {}, not 1", d, shape_[d]);
  Shape s = shape_, st = strides_;
  s.erase(d);
  st.erase(d);
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::expand(const Shape& shape) const {
  EMBER_CHECK(shape.size() >= ndim(), "expand: cannot expand {} to fewer dims {}", shape_.str(),
              shape.str());
  int lead = shape.size() - ndim();
  Shape s = shape, st = shape;
  for (int i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      EMBER_CHECK(shape[i] >= 0, "expand: invalid size in {}", shape.str());
      st[i] = 0;
      continue;
    }
    int64_t have = shape_[i - lead];
    int64_t want = shape[i] == -1 ? have : shape[i];
    s[i] = want;
    if (have == want) {
      st[i] = strides_[i - lead];
    } else {
      EMBER_CHECK(have == 1, "expand: shape {} cannot broadcast to {}", shape_.str(),
                  shape.str());
      st[i] = 0;
    }
  }
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_, device());
  if (numel()) backend::backend_for(device()).copy(*this, out);
  return out;
}

Tensor Tensor::to(Device target) const {
  Device here = device();
  if (here == target) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape_, dtype_, target);
  size_t n = src.nbytes();
  if (n == 0) return out;
  if (here.is_cpu()) {
    backend::backend_for(target).copy_from_host(out.raw_data(), src.raw_data(), n);
  } else if (target.is_cpu()) {
    backend::backend_for(here).copy_to_host(out.raw_data(), src.raw_data(), n);
  } else {  // between two GPUs: through the host
    return src.to(Device::cpu()).to(target);
  }
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out = empty(shape_, dtype, device());
  if (numel()) backend::backend_for(device()).copy(*this, out);
  return out;
}

void Tensor::copy_from(const Tensor& src) {
  EMBER_CHECK(defined() && src.defined(), "copy_from: undefined tensor");
  Tensor s = src.device() == device() ? src : src.to(device());
  s = s.expand(shape_);
  if (numel()) backend::backend_for(device()).copy(s, *this);
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor t = to(Device::cpu());
  if constexpr (std::is_same_v<T, double>) {
    t = t.to(DType::F32).contiguous();
  } else {
    t = t.to(dtype_of<T>()).contiguous();
  }
  std::vector<T> out(size_t(t.numel()));
  if constexpr (std::is_same_v<T, double>) {
    const float* p = static_cast<const float*>(t.raw_data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else {
    if (!out.empty()) std::memcpy(out.data(), t.raw_data(), out.size() * sizeof(T));
  }
  return out;
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;
template std::vector<bf16> Tensor::to_vector() const;
template std::vector<f16> Tensor::to_vector() const;

template <typename T>
T Tensor::item() const {
  EMBER_CHECK(numel() == 1, "item: tensor with shape {} has {} elements, not 1", shape_.str(),
              numel());
  return to_vector<T>()[0];
}
template float Tensor::item() const;
template double Tensor::item() const;
template int32_t Tensor::item() const;
template int64_t Tensor::item() const;

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return fmt::format("Tensor({}, {}, {})", dtype_name(dtype_), shape_.str(), device().str());
}

}  // namespace ember
