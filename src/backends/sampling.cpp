#include "backends/sampling.h"

#include <cmath>

#include "ember/core/error.h"

namespace ember::backend {

void validate(const SamplingParams& p) {
  EMBER_CHECK(std::isfinite(p.temperature) && p.temperature >= 0, "sampling: temperature must be >= 0, got {}",
              p.temperature);
  EMBER_CHECK(p.top_k >= 0, "sampling: top_k must be >= 0, got {}", p.top_k);
  EMBER_CHECK(p.top_p > 0 && p.top_p <= 1, "sampling: top_p must be in (0, 1], got {}", p.top_p);
  EMBER_CHECK(p.min_p >= 0 && p.min_p <= 1, "sampling: min_p must be in [0, 1], got {}", p.min_p);
  EMBER_CHECK(p.repetition_penalty > 0, "sampling: repetition_penalty must be > 0, got {}", p.repetition_penalty);
  EMBER_CHECK(std::isfinite(p.frequency_penalty) && std::isfinite(p.presence_penalty),
              "sampling: frequency/presence penalties must be finite");
  EMBER_CHECK(p.min_tokens_to_keep >= 1, "sampling: min_tokens_to_keep must be >= 1");
}

}  // namespace ember::backend
