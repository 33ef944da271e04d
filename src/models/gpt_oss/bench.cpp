// Load, prefill and decode timings for `ember bench` (tools/ember/bench.cpp prints them).
#include <chrono>

#include "ember/core/generator.h"
#include "ember/generate/sampler.h"
#include "ember/models/gpt_oss.h"

namespace ember::models::gpt_oss {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

BenchResult bench(const std::string& dir, const BenchOptions& o) {
  EMBER_CHECK(o.prompt_tokens > 0, "bench: prompt_tokens must be positive, got {}", o.prompt_tokens);
  EMBER_CHECK(o.decode_tokens >= 0, "bench: decode_tokens must not be negative, got {}", o.decode_tokens);
  auto report = [&](const char* phase, uint64_t done, uint64_t total) {
    if (o.progress) o.progress(phase, done, total);
  };
  BenchResult r;
  auto start = std::chrono::steady_clock::now();
  const Model model = Model::load(dir, o.device, [&](uint64_t done, uint64_t total) { report("load", done, total); });
  r.load_seconds = seconds_since(start);
  const Config& c = model.config();
  r.config = c;
  const int64_t context = o.prompt_tokens + o.decode_tokens;
  EMBER_CHECK(context <= c.context_length(), "bench: {} prompt + {} decode tokens exceed the context length {}",
              o.prompt_tokens, o.decode_tokens, c.context_length());
  r.prompt_tokens = o.prompt_tokens;
  r.decode_tokens = o.decode_tokens;
  for (int64_t i = 0; i < o.prompt_tokens; ++i)
    r.prompt.push_back(int32_t(philox4x32(o.seed, uint64_t(i))[0] % uint32_t(c.vocab_size)));

  auto caches = model.make_caches(context, o.prompt_tokens);
  report("prefill", 0, 1);
  start = std::chrono::steady_clock::now();
  double cpu = process_cpu_seconds();
  // Reading the logits [1, V] back to the host waits for the device.
  std::vector<float> logits = model.forward(r.prompt, 0, &caches, /*last_only=*/true).to_vector<float>();
  r.prefill_seconds = seconds_since(start);
  r.prefill_cpu_seconds = process_cpu_seconds() - cpu;
  r.generated.push_back(generate::argmax(logits));  // greedy
  r.time_to_first_token = seconds_since(start);
  report("prefill", 1, 1);

  start = std::chrono::steady_clock::now();
  cpu = process_cpu_seconds();
  for (int64_t i = 0; i < o.decode_tokens; ++i) {
    logits = model.forward({r.generated.back()}, o.prompt_tokens + i, &caches, true).to_vector<float>();
    r.generated.push_back(generate::argmax(logits));
    report("decode", uint64_t(i + 1), uint64_t(o.decode_tokens));
  }
  r.decode_seconds = seconds_since(start);
  r.decode_cpu_seconds = process_cpu_seconds() - cpu;
  r.memory = process_memory();
  return r;
}

}  // namespace ember::models::gpt_oss
