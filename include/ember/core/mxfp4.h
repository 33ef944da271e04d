#pragma once
// Packed MXFP4 weights, the gpt-oss checkpoint layout: each row of the logical [.., rows, cols]
// matrix is cut into blocks of 32 FP4 (E2M1) values along cols; a block is 16 bytes (byte j holds
// value 2j in its low nibble, 2j+1 in its high nibble) plus one UE8 scale byte (2^(s-127)).
#include "ember/core/tensor.h"

namespace ember {

inline constexpr int kMxfp4BlockSize = 32;

// The 16 FP4 E2M1 code values.
inline constexpr float kFp4Values[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                         -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

struct Mxfp4Tensor {
  Tensor blocks;  // u8 [..., rows, cols/32, 16]
  Tensor scales;  // u8 [..., rows, cols/32]
  Shape shape;    // logical [..., rows, cols]

  // Validates the three shapes against each other; `name` appears in errors.
  static Mxfp4Tensor from_parts(Tensor blocks, Tensor scales, const std::string& name = "mxfp4");
  Device device() const { return blocks.device(); }
  int64_t rows() const { return shape[shape.size() - 2]; }
  int64_t cols() const { return shape.back(); }
  Mxfp4Tensor to(Device device) const;
  Mxfp4Tensor select(int64_t index) const;  // drops the leading (expert) dim
  // Quantises a float tensor [..., rows, cols] (cols % 32 == 0): the scale is chosen per block as
  // the smallest power of two with max|x|/scale <= 6, values rounded to the nearest E2M1 code.
  static Mxfp4Tensor quantize(const Tensor& x);
};

}  // namespace ember
