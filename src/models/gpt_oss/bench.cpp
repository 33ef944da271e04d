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

std::vector<int32_t> synthetic_tokens(const Config& c, uint64_t seed, int64_t n) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(int32_t(philox4x32(seed, uint64_t(i))[0] % uint32_t(c.vocab_size)));
  return out;
}

}  // namespace

double decode_bytes_per_token(const Config& c, int64_t context, int kv_bytes) {
  const double H = double(c.hidden_size), D = double(c.head_dim), Hq = double(c.num_attention_heads),
               Hkv = double(c.num_key_value_heads), I = double(c.intermediate_size);
  const double attention = ((Hq + 2 * Hkv) * D * H + H * Hq * D) * 2;
  const double router = double(c.num_experts) * H * 2;
  const double experts = double(c.experts_per_token) * (2 * I * H + H * I) * 17.0 / 32.0;
  double kv = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int64_t keys = c.layer_has_window(l) ? std::min(context + 1, c.sliding_window) : context + 1;
    kv += double(keys) * 2 * Hkv * D * kv_bytes;
  }
  return double(c.num_hidden_layers) * (attention + router + experts) + kv + double(c.vocab_size) * H * 2;
}

BenchResult bench(const std::string& dir, const BenchOptions& o) {
  EMBER_CHECK(o.prompt_tokens > 0, "bench: prompt_tokens must be positive, got {}", o.prompt_tokens);
  EMBER_CHECK(o.decode_tokens >= 0, "bench: decode_tokens must not be negative, got {}", o.decode_tokens);
  EMBER_CHECK(o.max_chunk > 0, "bench: max_chunk must be positive, got {}", o.max_chunk);
  if (o.sampling) o.sampling->validate();  // before loading the model
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
  for (int64_t n : o.prefill_lengths)
    EMBER_CHECK(n > 0 && n <= c.context_length(), "bench: prefill length {} outside 1..{}", n, c.context_length());
  for (int64_t n : o.decode_contexts)
    EMBER_CHECK(n >= 0 && n + o.decode_tokens + 1 <= c.context_length(),
                "bench: decode context {} + {} steps exceed the context length {}", n, o.decode_tokens,
                c.context_length());
  r.prompt_tokens = o.prompt_tokens;
  r.decode_tokens = o.decode_tokens;
  Generator gen(o.seed);
  // `count` steps from `token`: greedy, or fed once and then sampled (count forwards either way).
  auto decode_steps = [&](CausalLM& lm, int32_t token, int64_t count,
                          const std::function<bool(int32_t)>& on_token) -> std::vector<int32_t> {
    if (!o.sampling || o.sampling->greedy() || count == 0) return lm.decode_greedy(token, count, on_token);
    const Tensor logits = lm.forward(std::span(&token, 1), lm.position(), false);
    return lm.sample(logits, count, *o.sampling, gen, {}, on_token);
  };
  r.prompt = synthetic_tokens(c, o.seed, o.prompt_tokens);

  {
    CausalLM lm(model, context, std::min(o.prompt_tokens, o.max_chunk), o.engine);
    r.fused = lm.fused();
    report("prefill", 0, 1);
    start = std::chrono::steady_clock::now();
    double cpu = process_cpu_seconds();
    // Reading the logits [1, V] back to the host waits for the device.
    std::vector<float> logits = lm.forward(r.prompt, 0, false).to_vector<float>();
    r.prefill_seconds = seconds_since(start);
    r.prefill_cpu_seconds = process_cpu_seconds() - cpu;
    r.generated.push_back(generate::argmax(logits));  // greedy
    r.time_to_first_token = seconds_since(start);
    report("prefill", 1, 1);

    start = std::chrono::steady_clock::now();
    cpu = process_cpu_seconds();
    int64_t steps = 0;
    const auto tokens = decode_steps(lm, r.generated.back(), o.decode_tokens, [&](int32_t) {
      report("decode", uint64_t(++steps), uint64_t(o.decode_tokens));
      return true;
    });
    r.decode_seconds = seconds_since(start);
    r.decode_cpu_seconds = process_cpu_seconds() - cpu;
    r.generated.insert(r.generated.end(), tokens.begin(), tokens.end());
    r.runtime_device_bytes = lm.device_bytes();
    r.experts = lm.fused_experts();
  }

  const uint64_t points = o.prefill_lengths.size() + o.decode_contexts.size();
  uint64_t done = 0;
  if (points) report("matrix", 0, points);
  for (int64_t n : o.prefill_lengths) {
    CausalLM lm(model, n, std::min(n, o.max_chunk), o.engine);
    const auto prompt = synthetic_tokens(c, o.seed + 1, n);
    start = std::chrono::steady_clock::now();
    (void)lm.forward(prompt, 0, false).to_vector<float>();
    r.prefill_points.push_back({n, 0, seconds_since(start), 0});
    report("matrix", ++done, points);
  }
  if (!o.decode_contexts.empty()) {
    const int64_t most = *std::max_element(o.decode_contexts.begin(), o.decode_contexts.end());
    CausalLM lm(model, most + o.decode_tokens + 1, std::min<int64_t>(std::max<int64_t>(most, 1), o.max_chunk), o.engine);
    const auto fill = synthetic_tokens(c, o.seed + 2, most + 1);
    for (int64_t ctx : o.decode_contexts) {
      lm.reset();
      if (ctx > 0) (void)lm.forward(std::span(fill).first(size_t(ctx)), 0, false).to_vector<float>();
      start = std::chrono::steady_clock::now();
      const auto out = decode_steps(lm, fill[size_t(ctx)], o.decode_tokens, nullptr);
      const double s = seconds_since(start);
      r.decode_points.push_back({int64_t(out.size()), ctx, s, decode_bytes_per_token(c, ctx + o.decode_tokens / 2, lm.fused() ? 2 : 4)});
      report("matrix", ++done, points);
    }
  }
  r.memory = process_memory();
  r.device_memory = device_memory(o.device);
  return r;
}

}  // namespace ember::models::gpt_oss
