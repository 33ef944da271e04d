// ember fixture: write a synthetic gpt-oss checkpoint (original layout) with seeded random values.
#include <chrono>
#include <cstdio>

#include "commands.h"
#include "ember/models/gpt_oss.h"

namespace ember::cli {

void register_fixture(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("fixture", "Write a synthetic gpt-oss checkpoint (config.json + model.safetensors)");
  struct Opts {
    std::string preset = "tiny", out;
    uint64_t seed = 0;
    int64_t layers = 0, experts = 0, hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0,
            window = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--preset", o->preset, "tiny, 20b, 120b, or custom (tiny's shapes, overridden below)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "Output directory")->required();
  cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  cmd->add_option("--layers", o->layers, "num_hidden_layers");
  cmd->add_option("--experts", o->experts, "num_experts");
  cmd->add_option("--hidden", o->hidden, "hidden_size (multiple of 32)");
  cmd->add_option("--intermediate", o->intermediate, "intermediate_size (multiple of 32)");
  cmd->add_option("--heads", o->heads, "num_attention_heads");
  cmd->add_option("--kv-heads", o->kv_heads, "num_key_value_heads");
  cmd->add_option("--head-dim", o->head_dim, "head_dim");
  cmd->add_option("--vocab", o->vocab, "vocab_size");
  cmd->add_option("--window", o->window, "sliding_window");
  cmd->callback([o] {
    auto c = models::gpt_oss::preset(o->preset == "custom" ? "tiny" : o->preset);
    auto set = [](int64_t v, int64_t& field) { if (v > 0) field = v; };
    set(o->layers, c.num_hidden_layers);
    set(o->experts, c.num_experts);
    set(o->hidden, c.hidden_size);
    set(o->intermediate, c.intermediate_size);
    set(o->heads, c.num_attention_heads);
    set(o->kv_heads, c.num_key_value_heads);
    set(o->head_dim, c.head_dim);
    set(o->vocab, c.vocab_size);
    set(o->window, c.sliding_window);
    const auto start = std::chrono::steady_clock::now();
    const bool draw = stderr_is_terminal();
    uint64_t last = 0;
    models::gpt_oss::write_fixture(c, o->out, o->seed, [&](uint64_t done, uint64_t total) {
      if (!draw || (done - last < (64u << 20) && done != total)) return;
      last = done;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\rwriting %.2f / %.2f GB  %.0f MB/s ", double(done) / 1e9, double(total) / 1e9,
                   double(done) / 1e6 / std::max(s, 1e-9));
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (draw) std::fprintf(stderr, "\n");
    std::printf("wrote %s (%lld layers, %lld experts, hidden %lld) in %.1f s\n", o->out.c_str(),
                (long long)c.num_hidden_layers, (long long)c.num_experts, (long long)c.hidden_size, s);
  });
}

}  // namespace ember::cli
