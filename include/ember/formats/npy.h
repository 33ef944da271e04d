#pragma once
// NumPy .npy files (format version 1.0): the tensor's dtype, shape and C-order data.
#include <string>

#include "ember/core/tensor.h"

namespace ember::formats::npy {

// Writes atomically (temporary file, then rename). f32, f16, i32, i64, u8, bool; bf16 is written
// as f32 (NumPy has no bf16).
void write(const std::string& path, const Tensor& t);
// Reads a little-endian, C-order .npy of a dtype above; errors name the file.
Tensor read(const std::string& path);

}  // namespace ember::formats::npy
