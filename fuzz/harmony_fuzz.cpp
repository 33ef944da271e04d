// libFuzzer target: the Harmony parser on arbitrary token streams (and the schema renderer on
// arbitrary JSON) must either succeed or throw ember::Error, never crash. Needs the o200k
// vocabulary: EMBER_O200K_TIKTOKEN=path/to/o200k_base.tiktoken.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ember/core/error.h"
#include "ember/harmony.h"

namespace {

const ember::harmony::HarmonyEncoding& encoding() {
  static const auto tok = [] {
    const char* path = std::getenv("EMBER_O200K_TIKTOKEN");
    if (!path) {
      std::fprintf(stderr, "harmony_fuzz: set EMBER_O200K_TIKTOKEN to o200k_base.tiktoken\n");
      std::abort();
    }
    return std::make_unique<ember::tokenizer::Tokenizer>(
        ember::tokenizer::Tokenizer::o200k_harmony(path));
  }();
  static const ember::harmony::HarmonyEncoding enc(*tok);
  return enc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& enc = encoding();
  if (size == 0) return 0;
  // First byte: options; the rest: 3-byte token ids, biased towards the Harmony specials.
  const bool strict = data[0] & 1;
  std::optional<ember::harmony::Role> role;
  if (data[0] & 2) role = ember::harmony::Role::kAssistant;
  if (data[0] & 4) {
    try {
      ember::harmony::json_schema_to_typescript(
          std::string(reinterpret_cast<const char*>(data + 1), size - 1));
    } catch (const ember::Error&) {
    }
    return 0;
  }
  std::vector<ember::tokenizer::Token> tokens;
  for (size_t i = 1; i + 3 <= size; i += 3) {
    uint32_t v = data[i] | (data[i + 1] << 8) | (uint32_t(data[i + 2]) << 16);
    tokens.push_back(v & 0x800000 ? 200000 + (v % 16) : v % 201100);
  }
  try {
    enc.parse_messages_from_completion_tokens(tokens, role, {strict});
  } catch (const ember::Error&) {
  }
  return 0;
}
