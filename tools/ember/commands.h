#pragma once
// Each subcommand lives in its own file and registers itself on the CLI11 app from main.cpp.
// A subcommand's run function throws ember::Error for user-facing failures; main prints one line.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "ember/core/device.h"
#include "ember/tokenizer/tokenizer.h"

namespace ember::cli {

// Options shared by every subcommand (set on the top-level app, parsed before the subcommand runs).
struct GlobalOptions {
  int threads = 0;             // --threads, 0 = all cores
  std::string device = "cpu";  // --device cpu|cuda[:N]
  int verbosity = 0;           // -v (+1 each), -q (-1)
  Device parsed_device() const { return Device::parse(device); }
};

// Registers one subcommand; the callback installed on it runs after global options are applied.
using Register = void (*)(CLI::App& app, const GlobalOptions& global);

void register_inspect(CLI::App& app, const GlobalOptions& global);
void register_logits(CLI::App& app, const GlobalOptions& global);
void register_generate(CLI::App& app, const GlobalOptions& global);
void register_fixture(CLI::App& app, const GlobalOptions& global);
void register_tokenize(CLI::App& app, const GlobalOptions& global);
void register_detokenize(CLI::App& app, const GlobalOptions& global);
void register_chat(CLI::App& app, const GlobalOptions& global);
void register_export(CLI::App& app, const GlobalOptions& global);
void register_verify(CLI::App& app, const GlobalOptions& global);
void register_bench(CLI::App& app, const GlobalOptions& global);
void register_world(CLI::App& app, const GlobalOptions& global);

// "1 2 3" -> ids; errors name the option.
std::vector<int32_t> parse_token_ids(const std::string& text, const char* option);
// --tokenizer FILE, or the tokenizer.json / *.tiktoken found beside the model (clear error if none).
tokenizer::Tokenizer load_model_tokenizer(const std::string& model, const std::string& explicit_path);

// True when stdout / stderr is a terminal (progress displays draw only then).
bool stderr_is_terminal();

}  // namespace ember::cli
