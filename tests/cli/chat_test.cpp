// ember chat end to end, non-interactive, on a "scripted" gpt-oss checkpoint: o200k_harmony's
// vocabulary, every layer zero, and embedding/unembedding chosen so that greedy (or any
// temperature) decoding continues "<|start|>assistant" with
// "<|channel|>final<|message|>Hello world<|return|>".
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "ember/formats/safetensors.h"
#include "ember/models/gpt_oss.h"
#include "ember/ops.h"
#include "ember/tokenizer/tokenizer.h"
#include "test_util.h"

#ifdef EMBER_CLI_PATH

namespace ember {
namespace {

namespace st = formats::safetensors;

// The ember program under test (EMBER_CLI overrides the built one, e.g. in a copied bundle).
std::string ember_cli() {
  const char* env = std::getenv("EMBER_CLI");
  return env && *env ? env : EMBER_CLI_PATH;
}

std::string run(const std::string& cmd, int* status) {
  std::string out;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  *status = ::pclose(p);
  return out;
}

// Writes the scripted checkpoint; the chain maps each token to the next.
void write_scripted(const std::string& dir, const std::vector<tokenizer::Token>& chain) {
  models::gpt_oss::Config c = models::gpt_oss::preset("tiny");
  c.vocab_size = 201088;
  c.num_hidden_layers = 2;
  c.hidden_size = 64;
  c.intermediate_size = 64;
  c.head_dim = 64;  // model.bin's exporter requires 64 (the model.bin case below)
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.num_experts = 4;
  c.experts_per_token = 2;
  test::TempDir random;
  models::gpt_oss::write_fixture(c, random.path(), 1);
  auto ckpt = st::Checkpoint::open(random.path());
  std::vector<std::pair<std::string, Tensor>> tensors;
  const int64_t H = c.hidden_size;
  for (const auto& name : ckpt.names()) {
    const auto& info = ckpt.info(name);
    Tensor t = zeros(Shape(info.shape), *info.ember_dtype());
    if (name.ends_with("norm.scale")) t = ones(Shape(info.shape), *info.ember_dtype());
    if (name == "embedding.weight" || name == "unembedding.weight") {
      std::vector<float> v(size_t(c.vocab_size * H), 0.0f);
      for (size_t i = 0; i + 1 < chain.size(); ++i) {
        if (name == "embedding.weight") v[size_t(chain[i]) * H + i] = 1.0f;        // token i -> e_i
        else v[size_t(chain[i + 1]) * H + i] = 10.0f;                             // e_i -> next token
      }
      t = Tensor::from_vector(v, {c.vocab_size, H}).to(*info.ember_dtype());
    }
    tensors.emplace_back(name, t);
  }
  std::filesystem::create_directories(dir);
  st::write(dir + "/model.safetensors", tensors);
  std::filesystem::copy_file(random.file("config.json"), dir + "/config.json");
}

TEST(CliChat, NonInteractiveAnswersOnePerLineWithFinalOnly) {
  auto vocab = test::o200k_tiktoken_path();
  if (!vocab) GTEST_SKIP() << "o200k_base.tiktoken not found: run scripts/fetch-vocab";
  auto tok = tokenizer::Tokenizer::o200k_harmony(*vocab);
  std::vector<tokenizer::Token> chain = {tok.encode("assistant")[0], tok.special_or_throw("<|channel|>"),
                                         tok.encode("final")[0],     tok.special_or_throw("<|message|>"),
                                         tok.encode("Hello")[0],     tok.encode(" world")[0],
                                         tok.special_or_throw("<|return|>")};
  test::TempDir dir;
  write_scripted(dir.file("scripted"), chain);
  std::ofstream(dir.file("in.txt")) << "hi\n\nhow are you?\n";
  int status = 0;
  std::string cmd = ember_cli() + " chat --model " + dir.file("scripted") + " --tokenizer " + *vocab +
                    " --reasoning low < " + dir.file("in.txt") + " 2>" + dir.file("err.txt");
  std::string out = run(cmd, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "Hello world\nHello world\n");  // two non-empty lines, two answers

  // Greedy, a second turn (its prompt holds the first answer), and a tight answer budget.
  cmd = ember_cli() + " chat --model " + dir.file("scripted") + " --tokenizer " + *vocab +
        " --temperature 0 --max-tokens 4 < " + dir.file("in.txt") + " 2>" + dir.file("err.txt");
  out = run(cmd, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "Hello\nHello\n");  // 4 tokens: <|channel|> final <|message|> Hello

  // The same model exported to model.bin chats on its own: the tokenizer comes from the file.
  cmd = ember_cli() + " export --src " + dir.file("scripted") + " --dst " + dir.file("scripted.bin") + " --tokenizer " +
        *vocab + " 2>&1";
  out = run(cmd, &status);
  ASSERT_EQ(status, 0) << out;
  cmd = ember_cli() + " chat --model " + dir.file("scripted.bin") + " --temperature 0 < " + dir.file("in.txt") + " 2>" +
        dir.file("err.txt");
  out = run(cmd, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "Hello world\nHello world\n");

  // A model whose vocabulary lacks Harmony's tokens is refused with one clear line.
  cmd = ember_cli() + " chat --model " + std::string(EMBER_TEST_DATA_DIR) + "/gpt_oss/tiny_a --tokenizer " +
        *vocab + " < " + dir.file("in.txt") + " 2>&1";
  out = run(cmd, &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("lacks Harmony's special tokens"), std::string::npos) << out;
}

}  // namespace
}  // namespace ember

#endif  // EMBER_CLI_PATH
