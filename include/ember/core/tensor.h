#pragma once
// Tensor: a value type over shared storage (PyTorch-like semantics).
// Copying a Tensor shares storage; views (slice, permute, reshape of contiguous data) share too.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "ember/core/device.h"
#include "ember/core/dtype.h"
#include "ember/core/error.h"
#include "ember/core/shape.h"

namespace ember {

// A block of bytes on one device. Either owned (freed with the storage) or borrowed from another
// owner (a memory-mapped file, a caller's buffer) that `keepalive` keeps alive.
class Storage {
 public:
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
  static std::shared_ptr<Storage> borrow(void* data, size_t nbytes, Device device,
                                         std::shared_ptr<const void> keepalive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  bool borrowed() const { return keepalive_ != nullptr; }

 private:
  Storage(void* data, size_t nbytes, Device device, std::shared_ptr<const void> keepalive)
      : data_(data), nbytes_(nbytes), device_(device), keepalive_(std::move(keepalive)) {}
  void* data_;
  size_t nbytes_;
  Device device_;
  std::shared_ptr<const void> keepalive_;  // null: owned, freed by the device allocator
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: defined() == false
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  // Uninitialised contiguous tensor.
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  // Copies host values into a new CPU tensor (then .to(device) for another device).
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  static Tensor from_data(const void* data, const Shape& shape, DType dtype);  // CPU copy
  // A view of caller-owned CPU (or device) memory; `keepalive` owns it.
  static Tensor borrow(void* data, const Shape& shape, DType dtype, Device device,
                       std::shared_ptr<const void> keepalive);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int ndim() const { return shape_.size(); }
  int64_t dim(int i) const;  // negative i counts from the back
  int64_t numel() const { return shape_.numel(); }
  int64_t offset() const { return offset_; }  // in elements
  DType dtype() const { return dtype_; }
  Device device() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // Pointer to the first element (device pointer on CUDA).
  void* raw_data() const;
  template <typename T>
  T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(raw_data());
  }

  // Views (no copy). Dims may be negative. Throw ember::Error naming the argument on misuse.
  Tensor view(const Shape& shape) const;  // contiguous only; one dim may be -1
  Tensor reshape(const Shape& shape) const;  // view if possible, else contiguous copy
  Tensor permute(std::span<const int> dims) const;
  Tensor permute(std::initializer_list<int> dims) const {
    return permute(std::span<const int>(dims.begin(), dims.size()));
  }
  Tensor transpose(int d0, int d1) const;
  Tensor slice(int dim, int64_t start, int64_t end, int64_t step = 1) const;  // Python semantics
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  Tensor select(int dim, int64_t index) const;  // removes dim
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;
  Tensor expand(const Shape& shape) const;  // broadcast with stride 0
  Tensor flatten() const { return reshape({-1}); }

  // Copies.
  Tensor contiguous() const;  // this if already contiguous
  Tensor clone() const;
  Tensor to(Device device) const;  // this if already there
  Tensor to(DType dtype) const;    // this if already that dtype
  void copy_from(const Tensor& src);  // same shape (src broadcastable), any dtype/device

  // Host helpers, mostly for tests and tools: values converted to T (float/double/int64_t).
  template <typename T>
  std::vector<T> to_vector() const;
  template <typename T>
  T item() const;

  std::string str() const;  // "Tensor(f32, [2, 3], cpu)"

 private:
  void check_dtype(DType expected) const;
  std::shared_ptr<Storage> storage_;
  Shape shape_, strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::F32;
};

// Normalise a possibly negative dim against ndim; throws naming `what`.
int wrap_dim(int dim, int ndim, const char* what = "dim");

}  // namespace ember
