#pragma once
// Per-layer K/V caches for a model and the window policy that sizes them.
#include <vector>

#include "ember/nn/kv_cache.h"
#include "ember/nn/streaming_attention.h"

namespace ember::generate {

// Which layers attend to a window: none (Full), all (Fixed), or alternate layers (EveryOther:
// gpt-oss applies its sliding window on even layers).
class WindowPolicy {
 public:
  static WindowPolicy full() { return WindowPolicy(Kind::Full, 0, true); }
  static WindowPolicy fixed(int64_t window);
  static WindowPolicy every_other(int64_t window, bool window_on_even = true);
  nn::AttnWindow window_for_layer(int layer) const;

 private:
  enum class Kind { Full, Fixed, EveryOther };
  WindowPolicy(Kind kind, int64_t window, bool on_even) : kind_(kind), window_(window), on_even_(on_even) {}
  Kind kind_;
  int64_t window_;
  bool on_even_;
};

struct CacheConfig {
  int layers = 0;
  int64_t batch = 1;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_context = 0;  // positions a full-attention layer keeps
  int64_t max_chunk = 1;    // largest chunk fed at once (prefill chunk)
  int64_t sink_tokens = 0;
  WindowPolicy policy = WindowPolicy::full();
  DType dtype = DType::F32;
  Device device = Device::cpu();
};

class CacheManager {
 public:
  explicit CacheManager(const CacheConfig& config);
  int layers() const { return int(caches_.size()); }
  nn::KVCache& layer(int i);
  nn::AttnWindow window(int i) const;
  // A windowed layer holds sinks + window - 1 + max_chunk slots: exactly what chunked attention
  // needs to equal the full computation; a full layer holds max_context.
  int64_t capacity(int i) const { return caches_.at(size_t(i)).capacity(); }
  int64_t position() const { return caches_.empty() ? 0 : caches_[0].next_position(); }
  size_t bytes() const;
  void reset();
  void truncate(int64_t position);

 private:
  CacheConfig config_;
  std::vector<nn::KVCache> caches_;
};

}  // namespace ember::generate
