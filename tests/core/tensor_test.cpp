#include "ember/core/tensor.h"

#include <gtest/gtest.h>

#include <numeric>

#include "ember/ops.h"
#include "test_util.h"

namespace ember {
namespace {

std::vector<float> iota(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0.f);
  return v;
}

TEST(Shape, Basics) {
  Shape s{2, 3, 4};
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.str(), "[2, 3, 4]");
  EXPECT_EQ(contiguous_strides(s), (Shape{12, 4, 1}));
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_THROW((Shape{1, 1, 1, 1, 1, 1, 1}), Error);
}

TEST(Tensor, ViewsShareStorageWithoutCopies) {
  Tensor t = Tensor::from_vector(iota(24), {2, 3, 4});
  EXPECT_TRUE(t.is_contiguous());
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.storage(), t.storage());
  Tensor s = t.slice(2, 1, 4, 2);  // columns 1, 3
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.offset(), 1);
  EXPECT_EQ(s.strides(), (Shape{12, 4, 2}));
  Tensor sel = t.select(1, -1);
  EXPECT_EQ(sel.shape(), (Shape{2, 4}));
  EXPECT_EQ(sel.offset(), 8);
  Tensor u = t.unsqueeze(0).unsqueeze(-1);
  EXPECT_EQ(u.shape(), (Shape{1, 2, 3, 4, 1}));
  EXPECT_TRUE(u.is_contiguous());
  EXPECT_EQ(u.squeeze(0).squeeze(-1).shape(), t.shape());
  Tensor v = t.view({6, -1});
  EXPECT_EQ(v.shape(), (Shape{6, 4}));
  EXPECT_EQ(v.raw_data(), t.raw_data());
}

TEST(Tensor, ValuesThroughViews) {
  Tensor t = Tensor::from_vector(iota(24), {2, 3, 4});
  // p[k, i, j] = t[i, j, k] = 12 i + 4 j + k
  auto p = t.permute({2, 0, 1}).contiguous().to_vector<float>();
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) ASSERT_EQ(p[size_t(k * 6 + i * 3 + j)], 12 * i + 4 * j + k);
  auto s = t.slice(1, 1, 3).slice(2, 0, 4, 3).to_vector<float>();  // rows 1..2, cols 0 and 3
  EXPECT_EQ(s, (std::vector<float>{4, 7, 8, 11, 16, 19, 20, 23}));
  auto e = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3, 1}).expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  auto ev = e.to_vector<float>();
  for (int i = 0; i < 24; ++i) ASSERT_EQ(ev[size_t(i)], float((i / 4) % 3 + 1));
  // reshape of a non-contiguous tensor copies.
  Tensor r = t.transpose(0, 2).reshape({-1});
  EXPECT_NE(r.storage(), t.storage());
  EXPECT_EQ(r.to_vector<float>()[1], 12.f);
}

TEST(Tensor, DtypeConversionsAndItem) {
  Tensor t = Tensor::from_vector(std::vector<float>{1.5f, -2.25f, 3.f}, {3});
  EXPECT_EQ(t.to(DType::BF16).to_vector<float>(), (std::vector<float>{1.5f, -2.25f, 3.f}));
  EXPECT_EQ(t.to(DType::I32).to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(t.select(0, 2).item<float>(), 3.f);
  EXPECT_THROW(t.item<float>(), Error);
  EXPECT_THROW(t.data<int32_t>(), Error);
}

TEST(Tensor, BorrowKeepsOwnerAlive) {
  auto owner = std::make_shared<std::vector<float>>(iota(6));
  std::weak_ptr<std::vector<float>> weak = owner;
  Tensor t = Tensor::borrow(owner->data(), {2, 3}, DType::F32, Device::cpu(), owner);
  owner.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(t.slice(1, 2, 3).to_vector<float>(), (std::vector<float>{2, 5}));
  t = Tensor();
  EXPECT_TRUE(weak.expired());
}

TEST(Tensor, BadArgumentsNameTheProblem) {
  Tensor t = Tensor::from_vector(iota(6), {2, 3});
  EXPECT_THROW(t.view({4, 2}), Error);
  EXPECT_THROW(t.view({-1, -1}), Error);
  EXPECT_THROW(t.transpose(0, 1).view({6}), Error);
  EXPECT_THROW(t.permute({0, 0}), Error);
  EXPECT_THROW(t.select(2, 0), Error);
  EXPECT_THROW(t.select(0, 5), Error);
  EXPECT_THROW(t.narrow(1, 2, 2), Error);
  EXPECT_THROW(t.expand({2, 4}), Error);
  EXPECT_THROW(t.squeeze(0), Error);
  EXPECT_THROW(Tensor::from_vector(iota(5), {2, 3}), Error);
  try {
    t.select(3, 0);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("select dim 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Device::parse("gpu"), Error);
  EXPECT_THROW(Device::parse("cuda:x"), Error);
  EXPECT_EQ(Device::parse("cuda:1"), Device::cuda(1));
}

class TensorDevice : public testing::TestWithParam<Device> {};

TEST_P(TensorDevice, RoundTripAndStridedCopy) {
  Device d = GetParam();
  Tensor t = Tensor::from_vector(iota(24), {2, 3, 4}).to(d);
  EXPECT_EQ(t.device(), d);
  EXPECT_EQ(t.to_vector<float>(), iota(24));
  Tensor p = t.permute({1, 2, 0}).contiguous();
  EXPECT_EQ(p.device(), d);
  EXPECT_EQ(p.to_vector<float>(),
            Tensor::from_vector(iota(24), {2, 3, 4}).permute({1, 2, 0}).contiguous().to_vector<float>());
  Tensor dst = Tensor::empty({2, 3, 4}, DType::BF16, d);
  dst.copy_from(Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {4}));
  auto v = dst.to_vector<float>();
  for (int i = 0; i < 24; ++i) ASSERT_EQ(v[size_t(i)], float(i % 4 + 1));
}

EMBER_INSTANTIATE_DEVICES(TensorDevice);

}  // namespace
}  // namespace ember
