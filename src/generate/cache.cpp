#include "ember/generate/cache.h"

#include <algorithm>

namespace ember::generate {

WindowPolicy WindowPolicy::fixed(int64_t window) {
  EMBER_CHECK(window >= 1, "WindowPolicy: window must be >= 1, got {}", window);
  return WindowPolicy(Kind::Fixed, window, true);
}

WindowPolicy WindowPolicy::every_other(int64_t window, bool window_on_even) {
  EMBER_CHECK(window >= 1, "WindowPolicy: window must be >= 1, got {}", window);
  return WindowPolicy(Kind::EveryOther, window, window_on_even);
}

nn::AttnWindow WindowPolicy::window_for_layer(int layer) const {
  switch (kind_) {
    case Kind::Full:
      return nn::AttnWindow::full();
    case Kind::Fixed:
      return nn::AttnWindow::of(window_);
    case Kind::EveryOther:
      return ((layer % 2 == 0) == on_even_) ? nn::AttnWindow::of(window_) : nn::AttnWindow::full();
  }
  return nn::AttnWindow::full();
}

CacheManager::CacheManager(const CacheConfig& c) : config_(c) {
  EMBER_CHECK(c.layers > 0, "CacheManager: layers must be positive, got {}", c.layers);
  EMBER_CHECK(c.max_context > 0 && c.max_chunk > 0,
              "CacheManager: max_context and max_chunk must be positive");
  caches_.reserve(size_t(c.layers));
  for (int i = 0; i < c.layers; ++i) {
    nn::AttnWindow w = c.policy.window_for_layer(i);
    int64_t capacity = c.sink_tokens + c.max_context;
    if (!w.is_full()) capacity = std::min(capacity, c.sink_tokens + w.size() - 1 + c.max_chunk);
    capacity = std::max(capacity, c.sink_tokens + c.max_chunk);
    caches_.emplace_back(c.batch, c.kv_heads, capacity, c.head_dim, c.head_dim, c.sink_tokens,
                         c.dtype, c.device);
  }
}

nn::KVCache& CacheManager::layer(int i) {
  EMBER_CHECK(i >= 0 && i < layers(), "CacheManager: layer {} out of range [0, {})", i, layers());
  return caches_[size_t(i)];
}

nn::AttnWindow CacheManager::window(int i) const { return config_.policy.window_for_layer(i); }

size_t CacheManager::bytes() const {
  size_t n = 0;
  for (const auto& c : caches_) n += c.keys().nbytes() + c.values().nbytes();
  return n;
}

void CacheManager::reset() {
  for (auto& c : caches_) c.reset();
}

void CacheManager::truncate(int64_t position) {
  for (auto& c : caches_) c.truncate(position);
}

}  // namespace ember::generate
