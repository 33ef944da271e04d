// ember tokenize / ember detokenize: the o200k tokenizer from the command line.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include <filesystem>

#include "commands.h"
#include "ember/formats/modelbin.h"
#include "ember/core/error.h"
#include "ember/tokenizer/tokenizer.h"

namespace ember::cli {

namespace {

// A token's bytes as a readable, quoted string: printable UTF-8 kept, the rest escaped.
std::string show_bytes(std::string_view b) {
  std::string out = "\"";
  for (size_t i = 0; i < b.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(b[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c >= 0x20 && c < 0x7F) {
      out += char(c);
    } else {
      // Keep a whole valid multi-byte sequence, escape anything else byte by byte.
      size_t len = 0;
      if (c >= 0xC2 && c <= 0xF4) {
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (i + need <= b.size()) {
          len = need;
          for (size_t k = 1; k < need; ++k)
            if ((static_cast<unsigned char>(b[i + k]) & 0xC0) != 0x80) len = 0;
        }
      }
      if (len) {
        out.append(b.substr(i, len));
        i += len - 1;
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        out += buf;
      }
    }
  }
  return out + "\"";
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EMBER_CHECK(bool(in), "--file {}: cannot open", path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

tokenizer::Tokenizer load_model_tokenizer(const std::string& model, const std::string& explicit_path) {
  if (!explicit_path.empty()) return tokenizer::Tokenizer::load(explicit_path);
  std::error_code ec;
  if (std::filesystem::is_regular_file(model, ec) && formats::modelbin::File::has_magic(model))
    return formats::modelbin::File::open(model).tokenizer();  // the vocabulary model.bin carries
  auto found = tokenizer::find_tokenizer_file(model);
  EMBER_CHECK(found.has_value(),
              "{}: no tokenizer found (looked for tokenizer.json or *.tiktoken beside it and in two parent "
              "directories); pass --tokenizer FILE", model);
  return tokenizer::Tokenizer::load(*found);
}

std::vector<int32_t> parse_token_ids(const std::string& text, const char* option) {
  std::vector<int32_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    EMBER_CHECK(used == word.size() && v >= 0 && v <= INT32_MAX, "{}: '{}' is not a token id", option, word);
    ids.push_back(int32_t(v));
  }
  EMBER_CHECK(!ids.empty(), "{}: no token ids given", option);
  return ids;
}

void register_tokenize(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("tokenize", "Encode text with a tokenizer (o200k_base.tiktoken or tokenizer.json)");
  struct Opts {
    std::string tokenizer, text, file;
    bool ids = false, allow_special = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--tokenizer", o->tokenizer, "o200k_base.tiktoken or tokenizer.json")->required();
  auto* text = cmd->add_option("--text", o->text, "Text to encode");
  auto* file = cmd->add_option("--file", o->file, "File whose bytes to encode");
  text->excludes(file);
  cmd->add_flag("--ids", o->ids, "Print only the ids, separated by spaces");
  cmd->add_flag("--allow-special", o->allow_special,
                "Turn special-token text (<|start|> ...) into special tokens (default: plain text)");
  cmd->callback([o] {
    EMBER_CHECK(!o->text.empty() || !o->file.empty(), "give the text with --text or --file");
    auto tok = tokenizer::Tokenizer::load(o->tokenizer);
    std::string input = o->file.empty() ? o->text : read_all(o->file);
    auto ids = tok.encode(input, o->allow_special ? tokenizer::Specials::kAllow : tokenizer::Specials::kAsText);
    if (o->ids) {
      for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %u" : "%u", ids[i]);
      std::printf("\n");
      return;
    }
    std::printf("%6s  %7s  %s\n", "#", "id", "bytes");
    for (size_t i = 0; i < ids.size(); ++i)
      std::printf("%6zu  %7u  %s%s\n", i, ids[i], show_bytes(tok.token_bytes(ids[i])).c_str(),
                  tok.is_special(ids[i]) ? "  (special)" : "");
    std::printf("%zu tokens, %zu bytes\n", ids.size(), input.size());
  });
}

void register_detokenize(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("detokenize", "Decode token ids to raw bytes on stdout");
  struct Opts {
    std::string tokenizer, ids;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--tokenizer", o->tokenizer, "o200k_base.tiktoken or tokenizer.json")->required();
  cmd->add_option("--ids", o->ids, "Token ids separated by spaces")->required();
  cmd->callback([o] {
    auto tok = tokenizer::Tokenizer::load(o->tokenizer);
    auto ids = parse_token_ids(o->ids, "--ids");
    std::string out;
    for (int32_t id : ids) {
      EMBER_CHECK(uint32_t(id) < tok.vocab_size(), "--ids: token id {} is outside the vocabulary (size {})", id,
                  tok.vocab_size());
      out += tok.token_bytes(uint32_t(id));
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
  });
}

}  // namespace ember::cli
