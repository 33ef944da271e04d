// libFuzzer target: the SafeTensors header parser on arbitrary bytes must either accept them or
// throw ember::Error, never crash, leak or read out of bounds.
#include <cstdint>
#include <cstring>
#include <vector>

#include "ember/formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copy into an exactly sized buffer so ASan sees any read past the end.
  std::vector<uint8_t> buf(data, data + size);
  try {
    auto h = ember::formats::safetensors::parse_header(buf.data(), buf.size(), "fuzz.safetensors");
    // Accepted headers must describe spans inside the buffer.
    for (const auto& t : h.tensors)
      if (h.data_offset() + t.end > buf.size()) __builtin_trap();
  } catch (const ember::Error&) {
  }
  return 0;
}
