#pragma once
// Sampling parameters as the backends take them: generate::SamplingConfig's fields (the backends
// sit below generate, DESIGN.md) plus the draw counter of the Philox stream.
#include <cstdint>

namespace ember::backend {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy (argmax after the processors, no draw)
  int64_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  int64_t min_tokens_to_keep = 1;
  // The token drawn by the i-th sample (i from 0) uses uniform(seed, offset + i), as
  // Generator(seed) with set_offset(offset) would hand them out (ember/core/generator.h).
  uint64_t seed = 0, offset = 0;
};

// Throws ember::Error naming the field (generate::SamplingConfig::validate is this check).
void validate(const SamplingParams& p);

}  // namespace ember::backend
