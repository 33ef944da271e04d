#pragma once
// Logits processors and samplers. Applied in the order of spec/primitives.md: repetition,
// frequency and presence penalties, temperature, top-k, top-p, min-p; then greedy or seeded
// multinomial sampling. Processors follow Hugging Face transformers' definitions
// (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopK/TopP/MinPLogitsWarper);
// frequency/presence penalties follow the OpenAI API definition.
#include <cstdint>
#include <span>
#include <vector>

#include "ember/core/generator.h"
#include "ember/core/tensor.h"

namespace ember::generate {

struct SamplingConfig {
  float temperature = 1.0f;        // 0: greedy
  int64_t top_k = 0;               // 0: off
  float top_p = 1.0f;              // 1: off
  float min_p = 0.0f;              // 0: off
  float repetition_penalty = 1.0f; // 1: off; > 1 discourages tokens already seen
  float frequency_penalty = 0.0f;  // subtracts penalty * count(token)
  float presence_penalty = 0.0f;   // subtracts penalty once for any token seen
  int64_t min_tokens_to_keep = 1;
  void validate() const;           // throws ember::Error naming the field
  bool greedy() const { return temperature == 0.0f; }
};

// In-place processors on one row of logits (vocab entries). `history`: tokens generated or
// prompted so far (what the penalties look at).
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> history, float penalty);
void apply_frequency_presence(std::span<float> logits, std::span<const int32_t> history,
                              float frequency_penalty, float presence_penalty);
void apply_temperature(std::span<float> logits, float temperature);
void apply_top_k(std::span<float> logits, int64_t k, int64_t min_tokens_to_keep = 1);
void apply_top_p(std::span<float> logits, float p, int64_t min_tokens_to_keep = 1);
void apply_min_p(std::span<float> logits, float min_p, int64_t min_tokens_to_keep = 1);
// All processors of `config` in order (temperature skipped when greedy).
void process_logits(std::span<float> logits, std::span<const int32_t> history,
                    const SamplingConfig& config);

class Sampler {
 public:
  explicit Sampler(SamplingConfig config = {}, uint64_t seed = 0);
  const SamplingConfig& config() const { return config_; }
  // Picks the next token from one row of logits (copied to the host; f32/bf16/f16, any device).
  int32_t sample(const Tensor& logits, std::span<const int32_t> history);
  int32_t sample(std::vector<float> logits, std::span<const int32_t> history);
  Generator& generator() { return gen_; }

 private:
  SamplingConfig config_;
  Generator gen_;
};

// Index of the largest value (first on ties), as torch.argmax.
int32_t argmax(std::span<const float> logits);

}  // namespace ember::generate
