#pragma once
// Sampling on the device: generate/sampler.h's processors and draw for one row of logits, in one
// cooperative kernel (a grid of at most one block per SM that synchronises between phases), so
// that a CUDA graph can hold it and nothing but the token reaches the host. Plain C++ declarations
// so that host code and tests compiled without nvcc can call it; nothing here synchronises unless
// it says so.
//
// The kernel follows process_logits and Sampler::sample step by step (same order, same f32
// arithmetic for penalties and temperature, the same ties): top-k, top-p and the min-p floor of
// min_tokens_to_keep find their cut by a radix select (three histogram passes over the keys'
// bits, 11/11/10) instead of a sort, and rank equal values by index as the host's stable order
// does. Where the host sums in double in index or sorted order, the device sums in double (or,
// for top-p's histogram, in 2^-62 fixed point) in another fixed order, so it is deterministic
// and can differ from the host only when a sum lies within ~1e-11 of a boundary it is compared
// with: u (a multiple of 2^-24) and a CDF step, or top-p's f32 cumulative sum and 1 - top_p.
#include <cstddef>
#include <cstdint>
#include <span>

#include "backends/sampling.h"
#include "ember/core/tensor.h"

typedef struct CUstream_st* cudaStream_t;

namespace ember::backend::cuda {

class DeviceSampler {
 public:
  // Buffers for rows of `vocab` logits on CUDA device `device` (made current).
  DeviceSampler(int device, int64_t vocab);
  ~DeviceSampler();
  DeviceSampler(const DeviceSampler&) = delete;
  DeviceSampler& operator=(const DeviceSampler&) = delete;

  // The parameters of the next sample() calls and the penalties' counts of `history` (tokens in
  // [0, vocab), checked); validated as SamplingConfig::validate does. Enqueued on `stream`.
  void configure(const SamplingParams& params, std::span<const int32_t> history, cudaStream_t stream);
  // Picks a token from `logits` (f32 [vocab], device) into *token (device); the token joins the
  // penalties' counts and, unless greedy, the draw counter advances by one. Capturable in a graph.
  void sample(const float* logits, int32_t* token, cudaStream_t stream);
  // Copies the "every token was filtered out" flag to the host (read it after the stream
  // synchronises); failed() throws ember::Error when it was set, as the host Sampler would.
  void enqueue_status(cudaStream_t stream);
  void check() const;
  // The draw counter after the sample() calls so far (synchronises `stream`).
  uint64_t offset(cudaStream_t stream) const;
  int blocks() const { return blocks_; }
  size_t device_bytes() const;

 private:
  int device_ = 0;
  int64_t vocab_ = 0;
  int blocks_ = 1, chunk_ = 0;
  Tensor state_, counts_, x_, hist_count_, hist_mass_, part_sum_, part_val_, part_idx_, part_int_;
  int* host_status_ = nullptr;  // pinned
};

}  // namespace ember::backend::cuda
