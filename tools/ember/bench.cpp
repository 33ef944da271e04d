// ember bench: load a gpt-oss checkpoint, prefill seeded synthetic prompt tokens, decode greedily
// with the KV cache, and print tokens/s, time to first token, load time and peak memory.
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "ember/core/thread_pool.h"
#include "ember/models/gpt_oss.h"

namespace ember::cli {

void register_bench(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("bench", "Time loading, prefill and decoding of a gpt-oss checkpoint");
  struct Opts {
    std::string model;
    int64_t prompt_tokens = 128, decode_tokens = 32;
    uint64_t seed = 0;
    bool json = false;
    std::vector<int64_t> prefill, decode_context;
    std::string engine = "auto";
    int64_t chunk = 8192;
    double peak_gbs = 3000;
    float temperature = 0.0f, top_p = 1.0f;
    int64_t top_k = 0;
  };
  cmd->footer("Global options apply: --device cpu|cuda[:N], --threads N (e.g. ember bench --model DIR --device cuda).");
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "Checkpoint directory (original layout, or a download with original/)")
      ->required();
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "Synthetic prompt tokens, prefilled in one pass")
      ->capture_default_str();
  cmd->add_option("--decode-tokens", o->decode_tokens, "Decode steps after the prefill (greedy unless --temperature)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the prompt's token ids")->capture_default_str();
  cmd->add_option("--prefill", o->prefill,
                  "Also time prefills of these prompt lengths (default on CUDA: 512,2048,8192; 0 for none)")
      ->delimiter(',');
  cmd->add_option("--decode-context", o->decode_context,
                  "Also time --decode-tokens greedy steps from these context lengths (default on CUDA: "
                  "0,4096,32768; -1 for none)")
      ->delimiter(',');
  cmd->add_option("--engine", o->engine, "CUDA: auto (fused runtime when possible), fused, or ops (op by op)")
      ->check(CLI::IsMember({"auto", "fused", "ops"}))
      ->capture_default_str();
  cmd->add_option("--chunk", o->chunk, "Prefill chunk (tokens per forward pass)")->capture_default_str();
  cmd->add_option("--peak-gbs", o->peak_gbs, "Memory bandwidth the decode GB/s are compared with (H100: ~3000 in practice)")
      ->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Decode steps sample at this temperature (0: greedy)")
      ->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "With --temperature: nucleus sampling mass")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "With --temperature: keep the k most likely tokens (0 = off)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o, &global] {
    EMBER_CHECK(o->prompt_tokens > 0, "--prompt-tokens must be positive, got {}", o->prompt_tokens);
    EMBER_CHECK(o->decode_tokens >= 0, "--decode-tokens must not be negative, got {}", o->decode_tokens);
    models::gpt_oss::BenchOptions bo;
    bo.prompt_tokens = o->prompt_tokens;
    bo.decode_tokens = o->decode_tokens;
    bo.seed = o->seed;
    bo.device = global.parsed_device();
    EMBER_CHECK(o->temperature > 0 || (o->top_p == 1.0f && o->top_k == 0),
                "--top-p and --top-k need --temperature > 0 (decode is greedy without it)");
    if (o->temperature > 0)  // checked by bench() before it loads the model
      bo.sampling = generate::SamplingConfig{.temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p};
    // On CUDA the matrix of the GPU issue by default; a lone 0 / -1 turns a part off.
    bo.prefill_lengths = o->prefill;
    bo.decode_contexts = o->decode_context;
    if (bo.device.is_cuda() && bo.prefill_lengths.empty()) bo.prefill_lengths = {512, 2048, 8192};
    if (bo.device.is_cuda() && bo.decode_contexts.empty()) bo.decode_contexts = {0, 4096, 32768};
    if (bo.prefill_lengths == std::vector<int64_t>{0}) bo.prefill_lengths.clear();
    if (bo.decode_contexts == std::vector<int64_t>{-1}) bo.decode_contexts.clear();
    bo.max_chunk = o->chunk;
    bo.engine = o->engine == "fused" ? models::gpt_oss::Engine::Fused
                : o->engine == "ops" ? models::gpt_oss::Engine::Ops
                                     : models::gpt_oss::Engine::Auto;
    const bool draw = stderr_is_terminal();
    // A phase starts at the previous phase's last report (decode right after "prefill done").
    auto phase_start = std::chrono::steady_clock::now(), last_event = phase_start, last_draw = phase_start;
    std::string phase;
    if (draw) {
      bo.progress = [&](const char* name, uint64_t done, uint64_t total) {
        const auto now = std::chrono::steady_clock::now();
        const bool new_phase = phase != name;
        if (new_phase) phase = name, phase_start = last_event;
        last_event = now;
        // Redraw at most 10 times a second, and at the start and end of each phase.
        if (!new_phase && done != total && now - last_draw < std::chrono::milliseconds(100)) return;
        last_draw = now;
        const double s = std::chrono::duration<double>(now - phase_start).count();
        if (phase == "load")
          std::fprintf(stderr, "\rloading %.2f / %.2f GB ", double(done) / 1e9, double(total) / 1e9);
        else if (phase == "prefill")
          std::fprintf(stderr, "\r%-40s", done ? "prefill done" : "prefill...");
        else if (phase == "matrix")
          std::fprintf(stderr, "\rmatrix %llu / %llu points ", (unsigned long long)done, (unsigned long long)total);
        else
          std::fprintf(stderr, "\rdecode %llu / %llu  %.2f tok/s ", (unsigned long long)done,
                       (unsigned long long)total, double(done) / std::max(s, 1e-9));
        std::fflush(stderr);
      };
    }
    const std::string dir = models::gpt_oss::resolve_checkpoint_dir(o->model);
    const auto r = models::gpt_oss::bench(dir, bo);
    if (draw) std::fprintf(stderr, "\r%-40s\r", "");
    const auto& c = r.config;
    const auto& m = r.memory;
    auto decode_gbs = [](const models::gpt_oss::BenchPoint& p) { return p.bytes_per_token * p.tokens_per_second() / 1e9; };
    if (o->json) {
      nlohmann::ordered_json j = {{"model", dir},
                                  {"device", bo.device.str()},
                                  {"engine", r.fused ? "fused" : "ops"},
                                  {"expert_activations", r.experts.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(r.experts)},
                                  {"threads", num_threads()},
                                  {"layers", c.num_hidden_layers},
                                  {"experts", c.num_experts},
                                  {"hidden_size", c.hidden_size},
                                  {"vocab_size", c.vocab_size},
                                  {"seed", o->seed},
                                  {"prompt_tokens", r.prompt_tokens},
                                  {"decode_tokens", r.decode_tokens},
                                  {"sampling", bo.sampling ? nlohmann::ordered_json{{"temperature", bo.sampling->temperature},
                                                                                    {"top_k", bo.sampling->top_k},
                                                                                    {"top_p", bo.sampling->top_p}}
                                                           : nlohmann::ordered_json()},
                                  {"load_seconds", r.load_seconds},
                                  {"prefill_seconds", r.prefill_seconds},
                                  {"prefill_tokens_per_second", r.prefill_tokens_per_second()},
                                  {"time_to_first_token_seconds", r.time_to_first_token},
                                  {"decode_seconds", r.decode_seconds},
                                  {"decode_tokens_per_second", r.decode_tokens_per_second()},
                                  {"prefill_cpu_seconds", r.prefill_cpu_seconds},
                                  {"decode_cpu_seconds", r.decode_cpu_seconds},
                                  {"peak_resident_bytes", m.peak_resident},
                                  {"resident_bytes", m.resident},
                                  {"resident_anon_bytes", m.resident_anon},
                                  {"resident_file_bytes", m.resident_file}};
      if (bo.device.is_cuda())
        j["device_memory"] = {{"used_bytes", r.device_memory.used},
                              {"total_bytes", r.device_memory.total},
                              {"allocated_bytes", r.device_memory.allocated},
                              {"peak_allocated_bytes", r.device_memory.peak_allocated},
                              {"runtime_bytes", r.runtime_device_bytes}};
      auto& pre = j["prefill"] = nlohmann::json::array();
      for (const auto& p : r.prefill_points)
        pre.push_back({{"prompt_tokens", p.tokens}, {"seconds", p.seconds}, {"tokens_per_second", p.tokens_per_second()}});
      auto& dec = j["decode"] = nlohmann::json::array();
      for (const auto& p : r.decode_points)
        dec.push_back({{"context", p.context},
                       {"tokens", p.tokens},
                       {"seconds", p.seconds},
                       {"tokens_per_second", p.tokens_per_second()},
                       {"bytes_per_token", p.bytes_per_token},
                       {"gb_per_second", decode_gbs(p)},
                       {"bound_tokens_per_second", o->peak_gbs * 1e9 / p.bytes_per_token},
                       {"fraction_of_peak", decode_gbs(p) / o->peak_gbs}});
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    auto size = [](uint64_t b) {
      return b >= 1'000'000'000 ? fmt::format("{:.2f} GB", double(b) / 1e9) : fmt::format("{:.1f} MB", double(b) / 1e6);
    };
    std::printf("model    %s (%lld layers, %lld experts, hidden %lld) on %s, %d CPU thread%s\n", dir.c_str(),
                (long long)c.num_hidden_layers, (long long)c.num_experts, (long long)c.hidden_size,
                bo.device.str().c_str(), num_threads(), num_threads() == 1 ? "" : "s");
    std::printf("load     %.3f s\n", r.load_seconds);
    // CPU time / wall time: below the thread count when the cores were shared with other work.
    auto busy = [](double cpu, double wall) { return cpu / std::max(wall, 1e-9); };
    std::printf("prefill  %lld tokens in %.3f s: %.2f tok/s (time to first token %.3f s; %.2f cores busy)\n",
                (long long)r.prompt_tokens, r.prefill_seconds, r.prefill_tokens_per_second(), r.time_to_first_token,
                busy(r.prefill_cpu_seconds, r.prefill_seconds));
    const std::string how = bo.sampling ? fmt::format("sampled: temperature {:g}, top-k {}, top-p {:g}; ",
                                                      bo.sampling->temperature, bo.sampling->top_k, bo.sampling->top_p)
                                        : std::string();
    std::printf("decode   %lld tokens in %.3f s: %.2f tok/s (%s%.2f cores busy)\n", (long long)r.decode_tokens,
                r.decode_seconds, r.decode_tokens_per_second(), how.c_str(), busy(r.decode_cpu_seconds, r.decode_seconds));
    std::printf("memory   peak resident %s; now %s = %s mapped files + %s allocated\n", size(m.peak_resident).c_str(),
                size(m.resident).c_str(), size(m.resident_file).c_str(), size(m.resident_anon).c_str());
    if (bo.device.is_cuda())
      std::printf("gpu      %s engine%s; ember allocated peak %s (KV cache + workspace %s); device in use %s of %s\n",
                  r.fused ? "fused" : "ops", r.experts.empty() ? "" : (" (" + r.experts + " experts)").c_str(),
                  size(r.device_memory.peak_allocated).c_str(),
                  size(r.runtime_device_bytes).c_str(), size(r.device_memory.used).c_str(),
                  size(r.device_memory.total).c_str());
    for (const auto& p : r.prefill_points)
      std::printf("prefill  %6lld tokens: %10.1f tok/s (%.3f s)\n", (long long)p.tokens, p.tokens_per_second(), p.seconds);
    for (const auto& p : r.decode_points)
      std::printf("decode   at %6lld: %8.1f tok/s, %.1f MB a token, %7.0f GB/s = %.0f%% of %.0f GB/s (bound %.0f tok/s)\n",
                  (long long)p.context, p.tokens_per_second(), p.bytes_per_token / 1e6, decode_gbs(p),
                  100 * decode_gbs(p) / o->peak_gbs, o->peak_gbs, o->peak_gbs * 1e9 / p.bytes_per_token);
  });
}

}  // namespace ember::cli
