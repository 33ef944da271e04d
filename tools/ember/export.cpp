// ember export: a gpt-oss checkpoint (original layout) -> OpenAI's Metal model.bin, byte for byte
// what gpt_oss/metal/scripts/create-local-model.py writes.
#include <chrono>
#include <cstdio>

#include "commands.h"
#include "ember/formats/modelbin.h"

namespace ember::cli {

void register_export(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("export", "Convert a gpt-oss checkpoint (original layout) to a Metal model.bin");
  struct Opts {
    std::string src, dst, tokenizer;
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--src", o->src, "Checkpoint directory (config.json + *.safetensors, original layout)")->required();
  cmd->add_option("--dst", o->dst, "Output model.bin")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "o200k_base.tiktoken or tokenizer.json (default: found beside --src)");
  cmd->add_flag("--force", o->force, "Overwrite --dst if it exists");
  cmd->callback([o] {
    const auto start = std::chrono::steady_clock::now();
    const bool draw = stderr_is_terminal();
    uint64_t last = 0;
    formats::modelbin::ExportOptions opts;
    opts.tokenizer_path = o->tokenizer;
    opts.force = o->force;
    opts.progress = [&](uint64_t done, uint64_t total) {
      if (!draw || (done - last < (64u << 20) && done != total)) return;
      last = done;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\rwriting %.2f / %.2f GB  %.0f MB/s ", double(done) / 1e9, double(total) / 1e9,
                   double(done) / 1e6 / std::max(s, 1e-9));
    };
    const auto stats = formats::modelbin::export_checkpoint(o->src, o->dst, opts);
    if (draw) std::fprintf(stderr, "\n");
    std::printf("wrote %s: %llu bytes in %.2f s (%.0f MB/s)\n", o->dst.c_str(), (unsigned long long)stats.bytes,
                stats.seconds, double(stats.bytes) / 1e6 / std::max(stats.seconds, 1e-9));
  });
}

}  // namespace ember::cli
