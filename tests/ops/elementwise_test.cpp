// Creation, conversion and elementwise ops on every device against scalar references.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ember/ops.h"
#include "test_util.h"

namespace ember {
namespace {

class Elementwise : public testing::TestWithParam<Device> {};

TEST_P(Elementwise, Creation) {
  Device d = GetParam();
  EXPECT_EQ(zeros({2, 3}, DType::F32, d).to_vector<float>(), std::vector<float>(6, 0.f));
  EXPECT_EQ(full({4}, 2.5, DType::BF16, d).to_vector<float>(), std::vector<float>(4, 2.5f));
  EXPECT_EQ(arange(0, 5, 1, DType::I64, d).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1, 0, -0.25, DType::F32, d).to_vector<float>(), (std::vector<float>{1, 0.75f, 0.5f, 0.25f}));
  EXPECT_EQ(arange(3, 3, 1, DType::F32, d).numel(), 0);
  EXPECT_THROW(arange(0, 1, 0), Error);
  // Seeded random: the same numbers on every device (counter-based Philox).
  Generator g1(7), g2(7);
  auto u = rand({1000}, g1, DType::F32, d).to_vector<float>();
  for (size_t i = 0; i < u.size(); ++i) ASSERT_EQ(u[i], philox_uniform(7, i));
  auto z = randn({1000}, g2, DType::F32, d).to_vector<float>();
  for (size_t i = 0; i < z.size(); ++i) ASSERT_NEAR(z[i], philox_normal(7, i), 2e-6f * (1 + std::fabs(z[i])));
  EXPECT_EQ(g1.offset(), 1000u);
  EXPECT_THROW(rand({2}, g1, DType::I32, d), Error);
}

TEST_P(Elementwise, ConversionsBetweenEveryDtype) {
  Device d = GetParam();
  std::vector<float> v{-2.75f, -1.f, -0.5f, 0.f, 0.5f, 1.f, 2.25f, 300.f};
  Tensor t = Tensor::from_vector(v, {8}).to(d);
  EXPECT_EQ(t.to(DType::I32).to_vector<int32_t>(), (std::vector<int32_t>{-2, -1, 0, 0, 0, 1, 2, 300}));
  EXPECT_EQ(t.to(DType::Bool).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1, 1, 0, 1, 1, 1, 1}));
  EXPECT_EQ(t.to(DType::U8).to_vector<uint8_t>()[7], 255);  // saturates
  EXPECT_EQ(t.to(DType::BF16).to(DType::F16).to(DType::F32).to_vector<float>(), v);
  EXPECT_EQ(t.to(DType::I64).to(DType::F32).to_vector<float>(),
            (std::vector<float>{-2, -1, 0, 0, 0, 1, 2, 300}));
  // NaN to integers is 0 (defined, never UB).
  Tensor n = full({2}, std::nan(""), DType::F32, d);
  EXPECT_EQ(n.to(DType::I32).to_vector<int32_t>(), (std::vector<int32_t>{0, 0}));
  // Cross-device round trips keep bits.
  Tensor r = t.to(DType::BF16).to(Device::cpu()).to(d);
  EXPECT_EQ(r.to_vector<float>(), v);
}

float ref_unary(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(std::fabs(x) + 0.1f);
    case UnaryOp::Sqrt: return std::sqrt(std::fabs(x));
    case UnaryOp::Rsqrt: return 1 / std::sqrt(std::fabs(x) + 0.1f);
    case UnaryOp::Sin: return std::sin(x);
    case UnaryOp::Cos: return std::cos(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return 1 / (1 + std::exp(-x));
    case UnaryOp::Silu: return x / (1 + std::exp(-x));
    case UnaryOp::Relu: return x > 0 ? x : 0;
    case UnaryOp::Gelu: return 0.5f * x * (1 + std::erf(x / std::sqrt(2.f)));
    case UnaryOp::GeluTanh:
      return 0.5f * x * (1 + std::tanh(std::sqrt(2 / 3.14159265358979f) * (x + 0.044715f * x * x * x)));
    case UnaryOp::Erf: return std::erf(x);
    case UnaryOp::Square: return x * x;
    case UnaryOp::Floor: return std::floor(x);
    case UnaryOp::Ceil: return std::ceil(x);
    default: return 0;
  }
}

TEST_P(Elementwise, UnaryOpsMatchScalarReference) {
  Device d = GetParam();
  auto xs = test::random_floats(257, 3, -4, 4);
  for (UnaryOp op : {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Exp, UnaryOp::Sin, UnaryOp::Cos, UnaryOp::Tanh,
                     UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::Relu, UnaryOp::Gelu, UnaryOp::GeluTanh, UnaryOp::Erf,
                     UnaryOp::Square, UnaryOp::Floor, UnaryOp::Ceil}) {
    std::vector<float> ref;
    for (float x : xs) ref.push_back(ref_unary(op, x));
    Tensor x = Tensor::from_vector(xs, {257}).to(d);
    EXPECT_TRUE(test::all_close(unary(op, x), ref, 2e-6f, 2e-6f)) << int(op);
    // bf16 storage: the reference sees the bf16-rounded inputs; computed in f32, rounded once.
    Tensor xb = x.to(DType::BF16);
    std::vector<float> refb;
    for (float v : xb.to_vector<float>()) refb.push_back(ref_unary(op, v));
    EXPECT_TRUE(test::all_close(unary(op, xb), refb, 1e-2f, 1e-2f)) << int(op);
  }
  std::vector<float> pos;
  for (float x : xs) pos.push_back(std::fabs(x) + 0.1f);
  Tensor p = Tensor::from_vector(pos, {257}).to(d);
  std::vector<float> lg, sq, rs;
  for (float x : pos) lg.push_back(std::log(x)), sq.push_back(std::sqrt(x)), rs.push_back(1 / std::sqrt(x));
  EXPECT_TRUE(test::all_close(log(p), lg, 2e-6f, 2e-6f));
  EXPECT_TRUE(test::all_close(sqrt(p), sq, 2e-6f, 2e-6f));
  EXPECT_TRUE(test::all_close(rsqrt(p), rs, 2e-6f, 2e-6f));
  Tensor c = clamp(Tensor::from_vector(xs, {257}).to(d), -1.f, 2.f);
  for (float v : c.to_vector<float>()) ASSERT_TRUE(v >= -1.f && v <= 2.f);
  EXPECT_THROW(clamp(c, 3.f, 2.f), Error);
  // Integer inputs: exp promotes to f32, neg keeps the dtype.
  Tensor i = arange(-2, 3, 1, DType::I32, d);
  EXPECT_EQ(neg(i).dtype(), DType::I32);
  EXPECT_EQ(neg(i).to_vector<int32_t>(), (std::vector<int32_t>{2, 1, 0, -1, -2}));
  EXPECT_EQ(exp(i).dtype(), DType::F32);
  EXPECT_EQ(unary(UnaryOp::Round, Tensor::from_vector(std::vector<float>{0.5f, 1.5f, 2.5f, -0.5f}, {4}).to(d))
                .to_vector<float>(),
            (std::vector<float>{0.f, 2.f, 2.f, -0.f}));  // half to even
}

TEST_P(Elementwise, BinaryOpsBroadcastAndPromote) {
  Device d = GetParam();
  auto av = test::random_floats(3 * 4 * 5, 11, -3, 3);
  auto bv = test::random_floats(4 * 1, 12, 0.5, 3);
  Tensor a = Tensor::from_vector(av, {3, 4, 5}).to(d);
  Tensor b = Tensor::from_vector(bv, {4, 1}).to(d);
  auto check = [&](BinaryOp op, auto f) {
    std::vector<float> ref;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j)
        for (int k = 0; k < 5; ++k) ref.push_back(f(av[size_t((i * 4 + j) * 5 + k)], bv[size_t(j)]));
    Tensor r = binary(op, a, b);
    EXPECT_EQ(r.shape(), (Shape{3, 4, 5}));
    EXPECT_TRUE(test::all_close(r, ref, 1e-6f, 1e-6f)) << int(op);
    // Same result from non-contiguous views of the same values.
    Tensor at = a.permute({2, 0, 1}).contiguous().permute({1, 2, 0});
    EXPECT_TRUE(test::all_close(binary(op, at, b), ref, 1e-6f, 1e-6f)) << int(op);
  };
  check(BinaryOp::Add, [](float x, float y) { return x + y; });
  check(BinaryOp::Sub, [](float x, float y) { return x - y; });
  check(BinaryOp::Mul, [](float x, float y) { return x * y; });
  check(BinaryOp::Div, [](float x, float y) { return x / y; });
  check(BinaryOp::Max, [](float x, float y) { return std::max(x, y); });
  check(BinaryOp::Min, [](float x, float y) { return std::min(x, y); });
  {
    Tensor pa = unary(UnaryOp::Abs, a);
    auto pv = pa.to_vector<float>();
    std::vector<float> ref;
    for (int i = 0; i < 60; ++i) ref.push_back(std::pow(pv[size_t(i)], bv[size_t((i / 5) % 4)]));
    EXPECT_TRUE(test::all_close(binary(BinaryOp::Pow, pa, b), ref, 1e-5f, 1e-6f));
  }
  auto lt = binary(BinaryOp::Lt, a, b);
  EXPECT_EQ(lt.dtype(), DType::Bool);
  auto ltv = lt.to_vector<uint8_t>();
  for (int i = 0; i < 60; ++i) ASSERT_EQ(ltv[size_t(i)], av[size_t(i)] < bv[size_t((i / 5) % 4)] ? 1 : 0);
  // Promotion: i32 + bf16 -> bf16; bf16 + f16 -> f32; int / int -> f32 true division.
  Tensor i = arange(1, 4, 1, DType::I32, d);
  EXPECT_EQ(add(i, ones({3}, DType::BF16, d)).dtype(), DType::BF16);
  EXPECT_EQ(add(ones({3}, DType::F16, d), ones({3}, DType::BF16, d)).dtype(), DType::F32);
  EXPECT_EQ(div(i, full({}, 2.0, DType::I32, d)).to_vector<float>(), (std::vector<float>{0.5f, 1.f, 1.5f}));
  EXPECT_EQ(mul(i, full({}, 3.0, DType::I64, d)).to_vector<int64_t>(), (std::vector<int64_t>{3, 6, 9}));
  EXPECT_EQ(add(i, 0.5).dtype(), DType::F32);  // a fractional scalar makes ints float
  EXPECT_EQ(mul(ones({2}, DType::BF16, d), 3.0).dtype(), DType::BF16);
  EXPECT_THROW(add(zeros({3}, DType::F32, d), zeros({4}, DType::F32, d)), Error);
  Tensor acc = zeros({2, 3}, DType::F32, d);
  add_(acc, ones({3}, DType::F32, d));
  add_(acc, ones({2, 1}, DType::F32, d));
  EXPECT_EQ(acc.to_vector<float>(), std::vector<float>(6, 2.f));
}

TEST_P(Elementwise, PowOfNegativeBaseIsNaNLikeTorch) {
  Device d = GetParam();
  auto r = binary(BinaryOp::Pow, full({1}, -2.0, DType::F32, d), full({1}, 0.5, DType::F32, d)).to_vector<float>();
  EXPECT_TRUE(std::isnan(r[0]));
  EXPECT_EQ(binary(BinaryOp::Pow, arange(1, 4, 1, DType::I64, d), full({}, 2.0, DType::I64, d)).to_vector<int64_t>(),
            (std::vector<int64_t>{1, 4, 9}));
}

TEST_P(Elementwise, WhereAndLogic) {
  Device d = GetParam();
  Tensor c = Tensor::from_vector(std::vector<bool>{true, false, true}, {3, 1}).to(d);
  Tensor w = where(c, arange(0, 4, 1, DType::F32, d), full({}, -1.0, DType::F32, d));
  EXPECT_EQ(w.shape(), (Shape{3, 4}));
  EXPECT_EQ(w.to_vector<float>(), (std::vector<float>{0, 1, 2, 3, -1, -1, -1, -1, 0, 1, 2, 3}));
  Tensor o = binary(BinaryOp::Or, c, Tensor::from_vector(std::vector<bool>{false, true}, {2}).to(d));
  EXPECT_EQ(o.to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1, 0, 1, 1, 1}));
  EXPECT_EQ(unary(UnaryOp::Not, c).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1, 0}));
  EXPECT_THROW(where(ones({3}, DType::F32, d), ones({3}, DType::F32, d), ones({3}, DType::F32, d)), Error);
}

TEST_P(Elementwise, NaNPropagatesThroughMaxMin) {
  Device d = GetParam();
  Tensor a = Tensor::from_vector(std::vector<float>{std::nanf(""), 1.f}, {2}).to(d);
  Tensor b = Tensor::from_vector(std::vector<float>{0.f, std::nanf("")}, {2}).to(d);
  for (float v : maximum(a, b).to_vector<float>()) EXPECT_TRUE(std::isnan(v));
  for (float v : minimum(a, b).to_vector<float>()) EXPECT_TRUE(std::isnan(v));
}

EMBER_INSTANTIATE_DEVICES(Elementwise);

}  // namespace
}  // namespace ember
