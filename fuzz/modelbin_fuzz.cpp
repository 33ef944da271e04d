// libFuzzer target: the model.bin reader on arbitrary bytes must either accept them or throw
// ember::Error, never crash, leak or read out of bounds; accepted files must describe sections
// inside the buffer, and their tokenizer and structure checks must run likewise.
#include <cstdint>
#include <cstring>
#include <memory>

#include "ember/core/error.h"
#include "ember/formats/modelbin.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exactly sized heap copy, so ASan sees any read past the end.
  std::shared_ptr<uint8_t[]> buf(new uint8_t[size ? size : 1]);
  if (size) std::memcpy(buf.get(), data, size);
  namespace mb = ember::formats::modelbin;
  try {
    const auto f = mb::File::from_bytes(std::shared_ptr<const uint8_t>(buf, buf.get()), size, "fuzz.bin");
    for (const auto& s : f.layout().sections)
      if (s.end() > size) __builtin_trap();
    (void)mb::check_structure(f);
    for (uint32_t id = 0; id < f.tokenizer_header().num_text_tokens; ++id) (void)f.token_bytes(id);
    (void)f.tokenizer();
  } catch (const ember::Error&) {
  }
  return 0;
}
