#include <cmath>

#include "ember/core/mxfp4.h"
#include "ember/ops.h"

namespace ember {

Mxfp4Tensor Mxfp4Tensor::from_parts(Tensor blocks, Tensor scales, const std::string& name) {
  EMBER_CHECK(blocks.defined() && scales.defined(), "{}: blocks or scales missing", name);
  EMBER_CHECK(blocks.dtype() == DType::U8 && scales.dtype() == DType::U8,
              "{}: blocks and scales must be u8, got {} and {}", name, dtype_name(blocks.dtype()),
              dtype_name(scales.dtype()));
  EMBER_CHECK(blocks.ndim() >= 3 && blocks.dim(-1) == 16,
              "{}: blocks must be [..., rows, cols/32, 16], got {}", name, blocks.shape().str());
  EMBER_CHECK(scales.ndim() == blocks.ndim() - 1,
              "{}: scales {} must have one dim fewer than blocks {}", name, scales.shape().str(),
              blocks.shape().str());
  for (int i = 0; i < scales.ndim(); ++i)
    EMBER_CHECK(scales.dim(i) == blocks.dim(i), "{}: scales {} do not match blocks {}", name,
                scales.shape().str(), blocks.shape().str());
  EMBER_CHECK(blocks.device() == scales.device(), "{}: blocks and scales on different devices", name);
  Mxfp4Tensor t;
  t.shape = scales.shape();
  t.shape[t.shape.size() - 1] = scales.dim(-1) * kMxfp4BlockSize;
  t.blocks = std::move(blocks);
  t.scales = std::move(scales);
  return t;
}

Mxfp4Tensor Mxfp4Tensor::to(Device device) const {
  return from_parts(blocks.to(device), scales.to(device));
}

Mxfp4Tensor Mxfp4Tensor::select(int64_t index) const {
  EMBER_CHECK(shape.size() >= 3, "mxfp4 select: tensor {} has no leading dim to select", shape.str());
  return from_parts(blocks.select(0, index), scales.select(0, index));
}

Mxfp4Tensor Mxfp4Tensor::quantize(const Tensor& x) {
  EMBER_CHECK(x.ndim() >= 2 && x.dim(-1) % kMxfp4BlockSize == 0,
              "mxfp4 quantize: x must be [..., rows, cols] with cols a multiple of 32, got {}",
              x.shape().str());
  auto v = x.to_vector<float>();
  const int64_t nblocks = int64_t(v.size()) / kMxfp4BlockSize;
  std::vector<uint8_t> blocks(static_cast<size_t>(nblocks * 16)), scales(static_cast<size_t>(nblocks));
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* p = v.data() + b * kMxfp4BlockSize;
    float amax = 0;
    for (int i = 0; i < kMxfp4BlockSize; ++i) amax = std::max(amax, std::fabs(p[i]));
    // Smallest power of two 2^e with amax / 2^e <= 6 (the largest E2M1 magnitude).
    int e = amax > 0 ? int(std::ceil(std::log2(amax / 6.0f))) : -127;
    e = std::clamp(e, -127, 127);
    scales[size_t(b)] = uint8_t(e + 127);
    const float inv = std::ldexp(1.0f, -e);
    for (int i = 0; i < kMxfp4BlockSize; ++i) {
      const float y = p[i] * inv;
      // nearest code; ties go to the lower magnitude code
      int best = 0;
      float err = INFINITY;
      for (int c = 0; c < 16; ++c) {
        const float d = std::fabs(kFp4Values[c] - y);
        if (d < err) err = d, best = c;
      }
      uint8_t& byte = blocks[size_t(b * 16 + i / 2)];
      byte = uint8_t(i % 2 ? (byte | (best << 4)) : (byte | best));
    }
  }
  Shape bs = x.shape();
  bs[bs.size() - 1] = x.dim(-1) / kMxfp4BlockSize;
  Shape ss = bs;
  bs.push_back(16);
  return from_parts(Tensor::from_vector(blocks, bs).to(x.device()),
                    Tensor::from_vector(scales, ss).to(x.device()), "quantize");
}

}  // namespace ember
