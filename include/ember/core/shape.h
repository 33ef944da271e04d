#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace ember {

inline constexpr int kMaxDims = 6;

// A small fixed-capacity list of dimensions (or strides), up to kMaxDims.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(std::span<const int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims) : Shape(std::span<const int64_t>(dims)) {}

  int size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t operator[](int i) const { return d_[i]; }
  int64_t& operator[](int i) { return d_[i]; }
  const int64_t* begin() const { return d_.data(); }
  const int64_t* end() const { return d_.data() + n_; }
  int64_t back() const { return d_[n_ - 1]; }
  void push_back(int64_t v);
  void insert(int pos, int64_t v);
  void erase(int pos);
  int64_t numel() const;  // product; 1 for a scalar
  std::vector<int64_t> vec() const { return {begin(), end()}; }
  std::string str() const;  // "[2, 3]"
  bool operator==(const Shape& o) const;

 private:
  std::array<int64_t, kMaxDims> d_{};
  int n_ = 0;
};

// Row-major strides (in elements) for a shape.
Shape contiguous_strides(const Shape& shape);

}  // namespace ember
