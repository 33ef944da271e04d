// libFuzzer target: the tokenizer on arbitrary bytes. Mode byte 0: a tiktoken ranks file (must
// load or throw ember::Error); otherwise: encode with o200k must decode back to the input (special
// tokens as text), or, with special tokens allowed, to text that encodes to the same ids (o200k_harmony
// gives id 200018 two names, "<|endofprompt|>" and "<|reserved_200018|>", and decodes it as the
// first, src/tokenizer/tokenizer.cpp); the streaming decoder must give the same bytes as decode. Needs the o200k
// vocabulary: EMBER_O200K_TIKTOKEN=path/to/o200k_base.tiktoken (scripts/fuzz sets it).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "ember/core/error.h"
#include "ember/tokenizer/tokenizer.h"

namespace {

const ember::tokenizer::Tokenizer& o200k() {
  static const auto tok = [] {
    const char* path = std::getenv("EMBER_O200K_TIKTOKEN");
    if (!path) {
      std::fprintf(stderr, "tokenizer_fuzz: set EMBER_O200K_TIKTOKEN to o200k_base.tiktoken\n");
      std::abort();
    }
    return std::make_unique<ember::tokenizer::Tokenizer>(ember::tokenizer::Tokenizer::o200k_harmony(path));
  }();
  return *tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ember::tokenizer;
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 0) {
    try {
      Tokenizer::from_tiktoken_text(body, "fuzz.tiktoken", {{"<|x|>", 1u << 20}}, kO200kPattern);
    } catch (const ember::Error&) {
    }
    return 0;
  }
  const Tokenizer& tok = o200k();
  for (Specials s : {Specials::kAsText, Specials::kAllow}) {
    auto ids = tok.encode(body, s);
    const std::string text = tok.decode(ids);
    if (s == Specials::kAsText ? text != body : tok.encode(text, s) != ids) std::abort();
    StreamDecoder dec(tok);
    std::string streamed;
    for (Token t : ids) streamed += dec.push(t);
    streamed += dec.flush();
    if (streamed != text) std::abort();
  }
  return 0;
}
