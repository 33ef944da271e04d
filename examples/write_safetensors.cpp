// Writes a small SafeTensors file with ember's tensor ops, reads it back and checks it.
//   write_safetensors OUT.safetensors
#include <cstdio>

#include "ember/formats/safetensors.h"
#include "ember/ops.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.safetensors\n", argv[0]);
    return 2;
  }
  try {
    using namespace ember;
    Generator gen(2024);
    Tensor w = randn({4, 8}, gen);                  // f32 weights
    Tensor x = arange(0, 8, 1).view({1, 8});
    Tensor y = linear(x, w, arange(0, 4, 1));       // [1, 4]
    formats::safetensors::write(argv[1],
                                {{"linear.weight", w.to(DType::BF16)},
                                 {"linear.bias", arange(0, 4, 1)},
                                 {"example.input", x},
                                 {"example.output", y},
                                 {"example.tokens", arange(0, 16, 1, DType::I64)}},
                                {{"producer", "ember examples/write_safetensors"}});
    auto file = formats::safetensors::File::open(argv[1]);
    Tensor back = file.get("example.output");
    const float diff = max(unary(UnaryOp::Abs, sub(back, y)).flatten(), 0).item<float>();
    std::printf("wrote %s: %zu tensors, round-trip max |diff| = %g\n", argv[1], file.tensors().size(), diff);
    return diff == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
