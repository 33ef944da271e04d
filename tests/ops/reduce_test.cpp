// Reductions, softmax, norms, top-k and layout ops on every device against scalar references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ember/ops.h"
#include "test_util.h"

namespace ember {
namespace {

class Reduce : public testing::TestWithParam<Device> {};

TEST_P(Reduce, SumMeanMaxArgOverEachAxis) {
  Device d = GetParam();
  const int64_t A = 3, B = 5, C = 7;
  auto v = test::random_floats(size_t(A * B * C), 21, -5, 5);
  Tensor x = Tensor::from_vector(v, {A, B, C}).to(d);
  auto at = [&](int64_t i, int64_t j, int64_t k) { return v[size_t((i * B + j) * C + k)]; };
  for (int dim = 0; dim < 3; ++dim) {
    const int64_t n = x.dim(dim);
    std::vector<float> s, m, mx, mn;
    std::vector<int64_t> am;
    for (int64_t i = 0; i < (dim == 0 ? 1 : A); ++i)
      for (int64_t j = 0; j < (dim == 1 ? 1 : B); ++j)
        for (int64_t k = 0; k < (dim == 2 ? 1 : C); ++k) {
          double acc = 0;
          float best = -INFINITY, worst = INFINITY;
          int64_t arg = 0;
          for (int64_t t = 0; t < n; ++t) {
            float e = dim == 0 ? at(t, j, k) : dim == 1 ? at(i, t, k) : at(i, j, t);
            acc += e;
            if (e > best) best = e, arg = t;
            worst = std::min(worst, e);
          }
          s.push_back(float(acc)), m.push_back(float(acc / n)), mx.push_back(best), mn.push_back(worst), am.push_back(arg);
        }
    EXPECT_TRUE(test::all_close(sum(x, dim), s, 1e-5f, 1e-5f)) << dim;
    EXPECT_TRUE(test::all_close(mean(x, dim), m, 1e-5f, 1e-6f)) << dim;
    EXPECT_EQ(max(x, dim).to_vector<float>(), mx) << dim;
    EXPECT_EQ(min(x, dim).to_vector<float>(), mn) << dim;
    EXPECT_EQ(argmax(x, dim).to_vector<int64_t>(), am) << dim;
    EXPECT_EQ(sum(x, dim, true).dim(dim), 1);
  }
  EXPECT_NEAR(sum_all(x).item<float>(), std::accumulate(v.begin(), v.end(), 0.0), 1e-3);
  EXPECT_EQ(sum(arange(0, 10, 1, DType::I32, d), 0).dtype(), DType::I64);
  EXPECT_EQ(sum(arange(0, 10, 1, DType::I32, d), 0).item<int64_t>(), 45);
  EXPECT_THROW(sum(x, 3), Error);
  EXPECT_THROW(max(zeros({0}, DType::F32, d), 0), Error);
  EXPECT_EQ(sum(zeros({0, 2}, DType::F32, d), 0).to_vector<float>(), (std::vector<float>{0, 0}));
}

TEST_P(Reduce, ArgmaxTiesAndNaN) {
  Device d = GetParam();
  Tensor t = Tensor::from_vector(std::vector<float>{1, 3, 3, 2, std::nanf(""), 0, 5, std::nanf("")}, {2, 4}).to(d);
  EXPECT_EQ(argmax(t, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));  // first max; NaN wins
  // A long row on every device (block reductions).
  std::vector<float> big(100003, 0.f);
  big[77777] = 2.f;
  big[88888] = 2.f;
  EXPECT_EQ(argmax(Tensor::from_vector(big, {100003}).to(d), 0).item<int64_t>(), 77777);
}

TEST_P(Reduce, SoftmaxAndLogSoftmax) {
  Device d = GetParam();
  const int64_t R = 4, N = 37;
  auto v = test::random_floats(size_t(R * N), 5, -10, 10);
  v[3] = 1000.f;  // stability: no overflow
  v[N + 2] = -INFINITY;
  Tensor x = Tensor::from_vector(v, {R, N}).to(d);
  std::vector<float> sm, lsm;
  for (int64_t r = 0; r < R; ++r) {
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < N; ++j) m = std::max(m, double(v[size_t(r * N + j)]));
    for (int64_t j = 0; j < N; ++j) s += std::exp(double(v[size_t(r * N + j)]) - m);
    for (int64_t j = 0; j < N; ++j) {
      sm.push_back(float(std::exp(double(v[size_t(r * N + j)]) - m) / s));
      lsm.push_back(float(double(v[size_t(r * N + j)]) - m - std::log(s)));
    }
  }
  EXPECT_TRUE(test::all_close(softmax(x, -1), sm, 1e-5f, 1e-7f));
  EXPECT_TRUE(test::all_close(log_softmax(x, 1), lsm, 1e-5f, 1e-5f));
  // Over a non-last dim equals over the last dim of the transpose.
  Tensor xt = x.transpose(0, 1).contiguous();
  EXPECT_TRUE(test::all_close(softmax(xt, 0).transpose(0, 1).contiguous(), sm, 1e-5f, 1e-7f));
  // A row of -inf gives zeros... torch gives NaN; ember documents 0 for a fully masked row? No:
  auto allneg = softmax(full({1, 3}, -INFINITY, DType::F32, d), -1).to_vector<float>();
  for (float f : allneg) EXPECT_TRUE(std::isnan(f) || f == 0.f);
}

TEST_P(Reduce, RmsNormAndLayerNorm) {
  Device d = GetParam();
  const int64_t R = 5, N = 48;
  auto v = test::random_floats(size_t(R * N), 8, -3, 3);
  auto w = test::random_floats(size_t(N), 9, 0.5, 1.5);
  auto b = test::random_floats(size_t(N), 10, -1, 1);
  std::vector<float> rn, ln;
  for (int64_t r = 0; r < R; ++r) {
    double ss = 0, mu = 0, var = 0;
    for (int64_t j = 0; j < N; ++j) ss += double(v[size_t(r * N + j)]) * v[size_t(r * N + j)], mu += v[size_t(r * N + j)];
    mu /= N;
    for (int64_t j = 0; j < N; ++j) var += (v[size_t(r * N + j)] - mu) * (v[size_t(r * N + j)] - mu);
    var /= N;
    for (int64_t j = 0; j < N; ++j) {
      rn.push_back(float(v[size_t(r * N + j)] / std::sqrt(ss / N + 1e-5) * w[size_t(j)]));
      ln.push_back(float((v[size_t(r * N + j)] - mu) / std::sqrt(var + 1e-5) * w[size_t(j)] + b[size_t(j)]));
    }
  }
  Tensor x = Tensor::from_vector(v, {R, N}).to(d);
  Tensor tw = Tensor::from_vector(w, {N}).to(d), tb = Tensor::from_vector(b, {N}).to(d);
  EXPECT_TRUE(test::all_close(rms_norm(x, tw, 1e-5f), rn, 1e-5f, 1e-6f));
  EXPECT_TRUE(test::all_close(rms_norm(x, tw.to(DType::BF16), 1e-5f),
                              rms_norm(x, tw.to(DType::BF16).to(DType::F32), 1e-5f).to_vector<float>(), 0, 0));
  EXPECT_TRUE(test::all_close(layer_norm(x, tw, tb, 1e-5f), ln, 1e-5f, 1e-5f));
  EXPECT_EQ(rms_norm(x.to(DType::BF16), tw).dtype(), DType::BF16);
  EXPECT_THROW(rms_norm(x, zeros({N + 1}, DType::F32, d)), Error);
  EXPECT_THROW(layer_norm(x, zeros({3}, DType::F32, d), std::nullopt), Error);
}

TEST_P(Reduce, TopkSortedWithStableTies) {
  Device d = GetParam();
  Tensor x = Tensor::from_vector(std::vector<float>{1, 5, 3, 5, 2, 9, std::nanf(""), 0, -1, 4}, {2, 5}).to(d);
  auto [v, i] = topk(x, 3);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 2, 1, 0, 4}));
  auto vv = v.to_vector<float>();
  EXPECT_EQ(vv[0], 5.f);
  EXPECT_TRUE(std::isnan(vv[3]));
  EXPECT_EQ(vv[4], 9.f);
  // A big random row: the k largest, in order.
  auto r = test::random_floats(5000, 31, -1, 1);
  auto [bv, bi] = topk(Tensor::from_vector(r, {5000}).to(d), 16);
  auto sorted = r;
  std::sort(sorted.rbegin(), sorted.rend());
  EXPECT_EQ(bv.to_vector<float>(), std::vector<float>(sorted.begin(), sorted.begin() + 16));
  auto idx = bi.to_vector<int64_t>();
  for (int j = 0; j < 16; ++j) EXPECT_EQ(r[size_t(idx[size_t(j)])], sorted[size_t(j)]);
  EXPECT_THROW(topk(x, 6), Error);
}

TEST_P(Reduce, CatStackIndexSelectGatherEmbedding) {
  Device d = GetParam();
  Tensor a = arange(0, 6, 1, DType::F32, d).view({2, 3}), b = arange(6, 10, 1, DType::F32, d).view({2, 2});
  EXPECT_EQ(cat({a, b}, 1).to_vector<float>(), (std::vector<float>{0, 1, 2, 6, 7, 3, 4, 5, 8, 9}));
  EXPECT_EQ(cat({a, a.to(DType::BF16)}, 0).dtype(), DType::F32);
  EXPECT_THROW(cat({a, b}, 0), Error);
  EXPECT_EQ(stack({a, a}, 1).shape(), (Shape{2, 2, 3}));
  Tensor idx = Tensor::from_vector(std::vector<int32_t>{2, 0, 2}, {3}).to(d);
  EXPECT_EQ(index_select(a, 1, idx).to_vector<float>(), (std::vector<float>{2, 0, 2, 5, 3, 5}));
  Tensor g = Tensor::from_vector(std::vector<int64_t>{1, 1, 0, 2, 0, 0}, {2, 3}).to(d);
  EXPECT_EQ(gather(a, 1, g).to_vector<float>(), (std::vector<float>{1, 1, 0, 5, 3, 3}));
  Tensor g0 = Tensor::from_vector(std::vector<int64_t>{1, 0}, {1, 2}).to(d);
  EXPECT_EQ(gather(a, 0, g0).to_vector<float>(), (std::vector<float>{3, 1}));  // index narrower than x
  Tensor emb = arange(0, 12, 1, DType::BF16, d).view({4, 3});
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{3, 0, 3, 1}, {2, 2}).to(d);
  Tensor e = embedding(emb, ids);
  EXPECT_EQ(e.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(e.dtype(), DType::BF16);
  EXPECT_EQ(e.to_vector<float>(), (std::vector<float>{9, 10, 11, 0, 1, 2, 9, 10, 11, 3, 4, 5}));
  EXPECT_THROW(embedding(emb, Tensor::from_vector(std::vector<int64_t>{4}, {1}).to(d)), Error);
  EXPECT_THROW(embedding(emb, Tensor::from_vector(std::vector<int64_t>{-1}, {1}).to(d)), Error);
  EXPECT_THROW(index_select(a, 0, ones({2}, DType::F32, d)), Error);
}

EMBER_INSTANTIATE_DEVICES(Reduce);

}  // namespace
}  // namespace ember
