#pragma once
// Byte-level BPE merges by rank, as tiktoken's _byte_pair_merge does them: repeatedly merge the
// adjacent pair whose concatenation has the lowest rank, the leftmost one on ties.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ember::tokenizer::detail {

inline constexpr uint32_t kNoRank = UINT32_MAX;

// bytes -> rank, an open-addressing table over one byte arena (200k entries: ~6 MB).
class RankTable {
 public:
  // Adds `bytes` with `rank`; false if the bytes are already present.
  bool insert(std::string_view bytes, uint32_t rank);
  uint32_t find(std::string_view bytes) const;  // kNoRank when absent
  size_t size() const { return count_; }

 private:
  struct Slot {
    uint32_t tag = 0, offset = 0, length = 0, rank = kNoRank;  // tag: high hash bits, checked first
  };
  static uint64_t hash(std::string_view s);
  void grow();
  std::string arena_;
  std::vector<Slot> slots_;
  size_t count_ = 0;
};

// Token boundaries of `piece` (offsets; first 0, last piece.size()) after all merges.
// The quadratic scan (tiktoken's own loop, fast for short pieces) and a heap over a linked list,
// O(n log n), for long ones give the same boundaries; byte_pair_merge picks by length.
std::vector<uint32_t> byte_pair_merge(std::string_view piece, const RankTable& ranks);
std::vector<uint32_t> byte_pair_merge_scan(std::string_view piece, const RankTable& ranks);
std::vector<uint32_t> byte_pair_merge_heap(std::string_view piece, const RankTable& ranks);

}  // namespace ember::tokenizer::detail
