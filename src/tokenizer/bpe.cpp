#include "tokenizer/bpe.h"

#include <cstddef>
#include <cstring>
#include <queue>

namespace ember::tokenizer::detail {

namespace {
__extension__ typedef unsigned __int128 u128;
inline uint64_t mix(uint64_t a, uint64_t b) {
  u128 r = static_cast<u128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
}  // namespace

uint64_t RankTable::hash(std::string_view s) {
  // Multiply-fold over 8-byte words (wyhash-style): one step for the short pairs BPE asks about.
  constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull;
  uint64_t h = s.size() * k0;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = mix(h ^ w, k1);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  return mix(h ^ tail ^ k0, k1);
}

void RankTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
  size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.rank == kNoRank) continue;
    size_t i = hash(std::string_view(arena_).substr(s.offset, s.length)) & mask;
    while (slots_[i].rank != kNoRank) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

bool RankTable::insert(std::string_view bytes, uint32_t rank) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  size_t mask = slots_.size() - 1;
  uint64_t h = hash(bytes);
  uint32_t tag = static_cast<uint32_t>(h >> 32);
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.rank == kNoRank) {
      s = Slot{tag, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(bytes.size()), rank};
      arena_.append(bytes);
      ++count_;
      return true;
    }
    if (s.tag == tag && s.length == bytes.size() &&
        std::memcmp(arena_.data() + s.offset, bytes.data(), s.length) == 0)
      return false;
  }
}

uint32_t RankTable::find(std::string_view bytes) const {
  if (slots_.empty()) return kNoRank;
  size_t mask = slots_.size() - 1;
  uint64_t h = hash(bytes);
  uint32_t tag = static_cast<uint32_t>(h >> 32);
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.rank == kNoRank) return kNoRank;
    if (s.tag == tag && s.length == bytes.size() &&
        std::memcmp(arena_.data() + s.offset, bytes.data(), s.length) == 0)
      return s.rank;
  }
}

std::vector<uint32_t> byte_pair_merge_scan(std::string_view piece, const RankTable& ranks) {
  // parts[i] = (start offset, rank of merging part i with part i+1); two sentinels at the end.
  struct Part {
    uint32_t start, rank;
  };
  const size_t n = piece.size();
  std::vector<Part> parts;
  parts.reserve(n + 1);
  for (size_t i = 0; i + 1 < n; ++i)
    parts.push_back({static_cast<uint32_t>(i), ranks.find(piece.substr(i, 2))});
  parts.push_back({static_cast<uint32_t>(n - 1), kNoRank});
  parts.push_back({static_cast<uint32_t>(n), kNoRank});
  auto pair_rank = [&](size_t i) {
    return i + 3 < parts.size() ? ranks.find(piece.substr(parts[i].start, parts[i + 3].start - parts[i].start))
                                : kNoRank;
  };
  for (;;) {
    uint32_t best = kNoRank;
    size_t at = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i)
      if (parts[i].rank < best) best = parts[i].rank, at = i;
    if (best == kNoRank) break;
    if (at > 0) parts[at - 1].rank = pair_rank(at - 1);
    parts[at].rank = pair_rank(at);
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(at) + 1);
  }
  std::vector<uint32_t> bounds;
  bounds.reserve(parts.size() - 1);
  for (size_t i = 0; i + 1 < parts.size(); ++i) bounds.push_back(parts[i].start);
  bounds.push_back(static_cast<uint32_t>(n));
  return bounds;
}

std::vector<uint32_t> byte_pair_merge_heap(std::string_view piece, const RankTable& ranks) {
  // Parts as a doubly linked list over byte positions; a min-heap of (rank, start) candidate
  // merges, stale entries skipped by checking that the pair still spans the same bytes.
  const uint32_t n = static_cast<uint32_t>(piece.size());
  std::vector<uint32_t> next(n + 1), prev(n + 1);
  std::vector<bool> alive(n + 1, true);
  for (uint32_t i = 0; i <= n; ++i) next[i] = i + 1, prev[i] = i ? i - 1 : 0;
  struct Cand {
    uint32_t rank, start, end;  // merging the parts that start at `start` and cover [start, end)
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : start > o.start; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  auto push = [&](uint32_t s) {
    if (s >= n) return;
    uint32_t mid = next[s];
    if (mid >= n) return;
    uint32_t e = next[mid];
    uint32_t r = ranks.find(piece.substr(s, e - s));
    if (r != kNoRank) heap.push({r, s, e});
  };
  for (uint32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    if (!alive[c.start] || next[c.start] >= n) continue;
    if (next[next[c.start]] != c.end) continue;  // stale: a neighbour merged since
    uint32_t mid = next[c.start];
    alive[mid] = false;
    next[c.start] = c.end;
    if (c.end <= n) prev[c.end] = c.start;
    if (c.start > 0) push(prev[c.start]);
    push(c.start);
  }
  std::vector<uint32_t> bounds;
  for (uint32_t i = 0; i < n; i = next[i]) bounds.push_back(i);
  bounds.push_back(n);
  return bounds;
}

std::vector<uint32_t> byte_pair_merge(std::string_view piece, const RankTable& ranks) {
  return piece.size() <= 256 ? byte_pair_merge_scan(piece, ranks) : byte_pair_merge_heap(piece, ranks);
}

}  // namespace ember::tokenizer::detail
