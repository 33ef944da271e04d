#pragma once
// generate::SamplingConfig as the backends take it (internal: include/ember stays free of
// backend headers).
#include <cstdint>

#include "backends/sampling.h"
#include "ember/generate/sampler.h"

namespace ember::generate {

backend::SamplingParams to_sampling_params(const SamplingConfig& c, uint64_t seed = 0, uint64_t offset = 0);

}  // namespace ember::generate
