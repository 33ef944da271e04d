// Sampling on the device (backends/cuda/sampling.h): one cooperative kernel a token. Each block
// owns a contiguous chunk of the vocabulary and walks it in tiles of kThreads in index order, so
// that "the first in index order" (ties, the CDF) is a prefix over blocks, then over tiles.
#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "backends/cuda/common.cuh"
#include "backends/cuda/sampling.h"
#include "ember/core/error.h"

namespace ember::backend::cuda {

namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 512, kWarps = kThreads / 32;
constexpr int kBuckets = 2048;  // radix digits of 11, 11 and 10 bits
constexpr int kLevels = 3;
constexpr int kSelects = 3;     // top-k, top-p, min-p's min_tokens_to_keep: one histogram set each
constexpr int kEpochs = 12;     // reductions a call makes at most, each with its own partials
constexpr double kFix = 0x1p62; // top-p's masses in fixed point: exact integer atomics

struct State {
  float temperature, top_p, min_p, repetition_penalty, frequency_penalty, presence_penalty;
  int top_k;     // min(max(k, min_tokens_to_keep), vocab); 0: off (or keeps every token)
  int min_keep;  // min(min_tokens_to_keep, vocab)
  int greedy, penalties;
  unsigned long long seed, offset;
  int failed;
};

struct Args {
  const float* logits;
  int32_t* token;
  State* st;
  int32_t* counts;              // [V] occurrences of each token in the history
  float* x;                     // [V] the processed logits (removed: -inf)
  unsigned* hcount;             // [kSelects][kLevels][kBuckets]
  unsigned long long* hmass;    // same
  double* psum;                 // [kEpochs][G] per-block partials
  float* pval;
  int* pidx;
  int* pint;
  int V, chunk;
};

// The order of std::stable_sort by value as a uint32 (sampler.cpp's ascending_order): -0 == +0.
__device__ __forceinline__ uint32_t order_key(float v) {
  const uint32_t b = v == 0.0f ? 0u : __float_as_uint(v);
  return b & 0x80000000u ? ~b : b | 0x80000000u;
}
__device__ __forceinline__ float fixed_to_float(unsigned long long m) { return float(double(m) / kFix); }

struct Shared {
  unsigned count[kBuckets];
  unsigned long long mass[kBuckets];
  double scan_d[kWarps];
  unsigned long long scan_u[kWarps];
  float red_f[kWarps];
  int red_i[kWarps];
  int best;
  unsigned cut_below, cut_ties;
  unsigned long long cut_mass, cut_tie_mass;
};

// Inclusive scan over the block in a fixed tree (deterministic); `total` gets the block's sum.
template <typename T>
__device__ T block_scan(T v, T* smem, T& total) {
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const T n = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += n;
  }
  __syncthreads();
  if (lane == 31) smem[w] = v;
  __syncthreads();
  if (w == 0) {
    T t = lane < kWarps ? smem[lane] : T(0);
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const T n = __shfl_up_sync(0xffffffffu, t, o);
      if (lane >= o) t += n;
    }
    if (lane < kWarps) smem[lane] = t;
  }
  __syncthreads();
  if (w > 0) v += smem[w - 1];
  total = smem[kWarps - 1];
  return v;
}

// The largest value (first index on ties) over the block; every thread gets it.
__device__ void block_argmax(float& v, int& i, Shared& sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
  }
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) sh.red_f[w] = v, sh.red_i[w] = i;
  __syncthreads();
  v = sh.red_f[0], i = sh.red_i[0];
  for (int k = 1; k < kWarps; ++k)
    if (sh.red_f[k] > v || (sh.red_f[k] == v && sh.red_i[k] < i)) v = sh.red_f[k], i = sh.red_i[k];
}

__device__ int block_max_int(int v, Shared& sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = ::max(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) sh.red_i[w] = v;
  __syncthreads();
  v = sh.red_i[0];
  for (int k = 1; k < kWarps; ++k) v = ::max(v, sh.red_i[k]);
  return v;
}

// Everything a kernel call shares between its phases.
struct Ctx {
  const Args& a;
  Shared& sh;
  cg::grid_group grid;
  int lo, hi, tiles, epoch;
  double m;  // the largest processed logit

  __device__ int index(int t) const { return lo + t * kThreads + int(threadIdx.x); }
  // exp(x - max) in double, sampler.cpp's probabilities() before the division.
  __device__ double weight(float x) const { return x == -INFINITY ? 0.0 : ::exp(double(x) - m); }
  __device__ double* psum(int e) const { return a.psum + size_t(e) * gridDim.x; }
  __device__ int* pint(int e) const { return a.pint + size_t(e) * gridDim.x; }

  // Sum over blocks of the per-block partials of epoch `e`, in block order (every block alike).
  __device__ double sum_blocks(int e) {
    double total = 0;
    for (int b0 = 0; b0 < int(gridDim.x); b0 += kThreads) {
      const int b = b0 + int(threadIdx.x);
      double t;
      (void)block_scan(b < int(gridDim.x) ? __ldcg(psum(e) + b) : 0.0, sh.scan_d, t);
      total += t;
    }
    return total;
  }
  // Sum of the int partials of blocks [0, upto).
  __device__ long long count_blocks(int e, int upto) {
    long long total = 0;
    for (int b0 = 0; b0 < upto; b0 += kThreads) {
      const int b = b0 + int(threadIdx.x);
      unsigned long long t;
      (void)block_scan<unsigned long long>(b < upto ? (unsigned long long)__ldcg(pint(e) + b) : 0ull, sh.scan_u, t);
      total += (long long)t;
    }
    return total;
  }

  // The cut of a prefix of the ascending (key, index) order: element of rank i (0-based) is
  // removed while i < cap and, with masses, while float(mass of ranks <= i) <= limit. Returns the
  // key of the first element kept, the count and mass below that key and of its ties (three
  // passes: radix digits of 11, 11 and 10 bits, each a histogram and one scan of it).
  template <typename Mass>
  __device__ void select(int which, unsigned cap, float limit, bool use_mass, Mass mass_of, uint32_t& key,
                         unsigned& below, unsigned long long& below_mass, unsigned& ties,
                         unsigned long long& tie_mass) {
    uint32_t prefix = 0;
    below = 0, below_mass = 0;
    for (int level = 0; level < kLevels; ++level) {
      const int shift = level == 0 ? 21 : level == 1 ? 10 : 0, bits = level == 2 ? 10 : 11;
      for (int j = threadIdx.x; j < kBuckets; j += kThreads) sh.count[j] = 0, sh.mass[j] = 0;
      __syncthreads();
      for (int t = 0; t < tiles; ++t) {
        const int i = index(t);
        if (i >= hi) continue;
        const float x = a.x[i];
        const uint32_t k = order_key(x);
        if (level > 0 && (k >> (shift + bits)) != prefix) continue;
        const uint32_t d = (k >> shift) & ((1u << bits) - 1);
        atomicAdd(&sh.count[d], 1u);
        if (use_mass) atomicAdd(&sh.mass[d], mass_of(x));
      }
      __syncthreads();
      unsigned* gc = a.hcount + size_t(which * kLevels + level) * kBuckets;
      unsigned long long* gm = a.hmass + size_t(which * kLevels + level) * kBuckets;
      for (int j = threadIdx.x; j < kBuckets; j += kThreads)
        if (sh.count[j]) {
          atomicAdd(gc + j, sh.count[j]);
          if (use_mass) atomicAdd(gm + j, sh.mass[j]);
        }
      grid.sync();
      // Every block scans the same histogram the same way: the same cut everywhere.
      constexpr int kPer = kBuckets / kThreads;
      unsigned c[kPer];
      unsigned long long mm[kPer];
      unsigned long long tc = 0, tm = 0;
#pragma unroll
      for (int q = 0; q < kPer; ++q) {
        const int j = int(threadIdx.x) * kPer + q;
        c[q] = __ldcg(gc + j);
        mm[q] = use_mass ? __ldcg(gm + j) : 0ull;
        tc += c[q], tm += mm[q];
      }
      if (threadIdx.x == 0) sh.best = 0x7fffffff;
      unsigned long long total;
      unsigned long long cum_c = block_scan(tc, sh.scan_u, total) - tc + below;
      unsigned long long cum_m = block_scan(tm, sh.scan_u, total) - tm + below_mass;
      int found = 0x7fffffff;
      unsigned long long fc = 0, fm = 0;
#pragma unroll
      for (int q = 0; q < kPer; ++q) {
        if (found != 0x7fffffff || c[q] == 0) continue;
        const unsigned long long ac = cum_c + c[q], am = cum_m + mm[q];
        if (ac > cap || (use_mass && fixed_to_float(am) > limit)) {
          found = int(threadIdx.x) * kPer + q, fc = cum_c, fm = cum_m;
        } else {
          cum_c = ac, cum_m = am;
        }
      }
      if (found != 0x7fffffff) atomicMin(&sh.best, found);
      __syncthreads();
      if (found != 0x7fffffff && found == sh.best) {
        sh.cut_below = unsigned(fc), sh.cut_mass = fm;
        sh.cut_ties = c[found % kPer], sh.cut_tie_mass = mm[found % kPer];
      }
      __syncthreads();
      // A cut always exists (cap < the count); the guard only keeps a broken input in range.
      const int bucket = sh.best == 0x7fffffff ? 0 : sh.best;
      prefix = (prefix << bits) | uint32_t(bucket);
      below = sh.cut_below, below_mass = sh.cut_mass, ties = sh.cut_ties, tie_mass = sh.cut_tie_mass;
      __syncthreads();
    }
    key = prefix;
  }

  // How many elements with key `key` lie in blocks before this one (a pass and a grid sync).
  __device__ long long ties_before(uint32_t key) {
    const int e = epoch++;
    unsigned n = 0;
    for (int t = 0; t < tiles; ++t) {
      const int i = index(t);
      n += i < hi && order_key(a.x[i]) == key;
    }
    unsigned long long total;
    (void)block_scan<unsigned long long>(n, sh.scan_u, total);
    if (threadIdx.x == 0) pint(e)[blockIdx.x] = int(total);
    grid.sync();
    return count_blocks(e, int(blockIdx.x));
  }

  // Sets x[i] = -inf where remove(x, key, tie_rank) (tie_rank: the element's rank by index among
  // those with key `tie_key`, counted from `tie_base` for this block), then writes the block's
  // partials of what is left: sum of weights (tile by tile in index order, as the final draw
  // walks it), last index of nonzero weight, argmax. Returns the total weight (after a grid sync).
  template <typename Remove>
  __device__ double mark(Remove remove, uint32_t tie_key, long long tie_base, bool ranks) {
    const int e = epoch++;
    double run = 0;
    int last = -1;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    long long rank = tie_base;
    for (int t = 0; t < tiles; ++t) {
      const int i = index(t);
      float x = i < hi ? a.x[i] : -INFINITY;
      const uint32_t k = order_key(x);
      long long my_rank = 0;
      if (ranks) {
        unsigned long long n;
        const unsigned long long is_tie = i < hi && k == tie_key;
        my_rank = rank + (long long)(block_scan(is_tie, sh.scan_u, n) - is_tie);
        rank += (long long)n;
      }
      if (i < hi && remove(x, k, my_rank)) {
        x = -INFINITY;
        a.x[i] = x;
      }
      const double w = i < hi ? weight(x) : 0.0;
      double tile;
      (void)block_scan(w, sh.scan_d, tile);
      run += tile;
      if (w > 0) last = i;
      if (x > bv) bv = x, bi = i;  // i increases along the thread's tiles: first on ties
    }
    int li = block_max_int(last, sh);
    block_argmax(bv, bi, sh);
    if (threadIdx.x == 0) {
      psum(e)[blockIdx.x] = run;
      pint(e)[blockIdx.x] = li;
      a.pval[size_t(e) * gridDim.x + blockIdx.x] = bv;
      a.pidx[size_t(e) * gridDim.x + blockIdx.x] = bi;
    }
    grid.sync();
    return sum_blocks(e);
  }
};

// The largest t in [0, ties] with below + t <= cap and (with masses) float(mass + t q) <= limit.
__device__ unsigned removed_ties(unsigned below, unsigned long long below_mass, unsigned ties,
                                 unsigned long long q, unsigned cap, float limit, bool use_mass) {
  auto ok = [&](unsigned t) {
    return below + t <= cap && (!use_mass || fixed_to_float(below_mass + (unsigned long long)t * q) <= limit);
  };
  unsigned lo = 0, hi = ties;  // ok(lo) holds
  while (lo < hi) {
    const unsigned mid = lo + (hi - lo + 1) / 2;
    if (ok(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(Args a) {
  __shared__ Shared sh;
  const State s = *a.st;
  Ctx c{a, sh, cg::this_grid(), int(blockIdx.x) * a.chunk, ::min(a.V, int(blockIdx.x + 1) * a.chunk),
        a.chunk / kThreads, 0, 0.0};
  const int V = a.V;

  // Penalties and temperature, in process_logits' f32 arithmetic (no contraction into FMAs).
  float mx = -INFINITY;
  for (int t = 0; t < c.tiles; ++t) {
    const int i = c.index(t);
    if (i >= c.hi) continue;
    float l = a.logits[i];
    if (s.penalties) {
      const int n = a.counts[i];
      if (n > 0) {
        if (s.repetition_penalty != 1.0f)
          l = l < 0 ? __fmul_rn(l, s.repetition_penalty) : __fdiv_rn(l, s.repetition_penalty);
        if (s.frequency_penalty != 0.0f || s.presence_penalty != 0.0f)
          l = __fsub_rn(l, __fadd_rn(__fmul_rn(s.frequency_penalty, float(n)), s.presence_penalty));
      }
    }
    if (!s.greedy && s.temperature != 1.0f) l = __fdiv_rn(l, s.temperature);
    a.x[i] = l;
    mx = fmaxf(mx, l);
  }
  {
    int unused = 0;
    block_argmax(mx, unused, sh);
    const int e = c.epoch++;
    if (threadIdx.x == 0) a.pval[size_t(e) * gridDim.x + blockIdx.x] = mx;
    c.grid.sync();
    float m = -INFINITY;
    for (int b = threadIdx.x; b < int(gridDim.x); b += kThreads) m = fmaxf(m, __ldcg(a.pval + size_t(e) * gridDim.x + b));
    unused = 0;
    block_argmax(m, unused, sh);
    c.m = m;
  }
  const bool finite = c.m != -INFINITY;  // else every weight is 0: nothing to filter
  auto none = [](float, uint32_t, long long) { return false; };
  auto zero_mass = [](float) { return 0ull; };
  uint32_t key;
  unsigned below, ties;
  unsigned long long below_mass, tie_mass;

  // top-k: keep values >= the k-th largest (all its ties).
  double S;
  if (finite && s.top_k > 0) {
    c.select(0, unsigned(V - s.top_k), INFINITY, false, zero_mass, key, below, below_mass, ties, tie_mass);
    const uint32_t kth = key;
    S = c.mark([kth](float, uint32_t k, long long) { return k < kth; }, 0, 0, false);
  } else {
    S = c.mark(none, 0, 0, false);
  }

  // top-p: remove the ascending prefix whose f32 cumulative probability stays <= 1 - top_p,
  // never the last min_tokens_to_keep.
  if (finite && s.top_p < 1.0f) {
    const float limit = __fsub_rn(1.0f, s.top_p);
    const unsigned cap = unsigned(V - s.min_keep);
    const double m = c.m, sum = S;
    auto mass_of = [m, sum](float x) {
      const float p = float((x == -INFINITY ? 0.0 : ::exp(double(x) - m)) / sum);
      return (unsigned long long)(double(p) * kFix);
    };
    c.select(1, cap, limit, true, mass_of, key, below, below_mass, ties, tie_mass);
    const unsigned r = removed_ties(below, below_mass, ties, ties ? tie_mass / ties : 0, cap, limit, true);
    const uint32_t cut = key;
    const long long base = r > 0 ? c.ties_before(cut) : 0;
    S = c.mark([cut, r](float, uint32_t k, long long rank) { return k < cut || (k == cut && rank < r); },
               cut, base, r > 0);
  }

  // min-p: keep probabilities >= min_p * the largest, and at least the min_tokens_to_keep most
  // probable (equal ones in index order).
  if (finite && s.min_p > 0.0f) {
    const double sum = S, m = c.m, threshold = double(s.min_p) * (1.0 / sum);
    auto kept = [m, sum, threshold](float x) {
      return (x == -INFINITY ? 0.0 : ::exp(double(x) - m)) / sum >= threshold;
    };
    const int e = c.epoch++;
    unsigned n = 0;
    for (int t = 0; t < c.tiles; ++t) {
      const int i = c.index(t);
      n += i < c.hi && kept(a.x[i]);
    }
    unsigned long long total;
    (void)block_scan<unsigned long long>(n, sh.scan_u, total);
    if (threadIdx.x == 0) c.pint(e)[blockIdx.x] = int(total);
    c.grid.sync();
    const long long n_kept = c.count_blocks(e, int(gridDim.x));
    if (n_kept >= s.min_keep) {
      S = c.mark([kept](float x, uint32_t, long long) { return !kept(x); }, 0, 0, false);
    } else {
      // The min_keep largest in (value descending, index ascending) order are the complement of
      // the V - min_keep first in (value ascending, index descending) order: of the ties at the
      // cut, the lowest indices stay.
      const unsigned cap = unsigned(V - s.min_keep);
      c.select(2, cap, INFINITY, false, zero_mass, key, below, below_mass, ties, tie_mass);
      const unsigned stay = ties - (cap - below);
      const uint32_t cut = key;
      const bool ranks = stay < ties;
      const long long base = ranks ? c.ties_before(cut) : 0;
      S = c.mark(
          [kept, cut, stay](float x, uint32_t k, long long rank) {
            return !(kept(x) || k > cut || (k == cut && rank < (long long)stay));
          },
          cut, base, ranks);
    }
  }

  // The draw (or the argmax when greedy) from the last mark's partials.
  const int e = c.epoch - 1;
  for (size_t j = size_t(blockIdx.x) * kThreads + threadIdx.x; j < size_t(kSelects) * kLevels * kBuckets;
       j += size_t(gridDim.x) * kThreads)
    a.hcount[j] = 0, a.hmass[j] = 0;  // every histogram read is behind the last grid sync
  const int G = int(gridDim.x);
  if (s.greedy) {
    if (blockIdx.x != 0) return;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int b = threadIdx.x; b < G; b += kThreads) {
      const float v = __ldcg(a.pval + size_t(e) * G + b);
      const int i = __ldcg(a.pidx + size_t(e) * G + b);
      if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
    }
    block_argmax(bv, bi, sh);
    if (threadIdx.x == 0) {
      const int tok = bi == 0x7fffffff ? 0 : bi;  // all -inf: argmax's first index
      *a.token = tok;
      if (s.penalties) a.counts[tok] += 1;
    }
    return;
  }
  if (!(S > 0)) {  // the host Sampler throws: every token was filtered out
    if (blockIdx.x == 0 && threadIdx.x == 0) *a.token = 0, a.st->failed = 1, a.st->offset = s.offset + 1;
    return;
  }
  uint32_t r4[4];
  philox4x32(s.seed, s.offset, r4);
  const double u = double(float(r4[0] >> 8) * (1.0f / 16777216.0f));
  // Sampler::sample: the first token (index order) with u < the cumulative probability. Here:
  // u * S < the cumulative weight, both in double, summed in another order than the host's.
  const double target = u * S;
  // The block whose partials cross the target: a prefix over blocks in block order.
  int chosen = -1;
  double base = 0;
  {
    double run = 0;
    for (int b0 = 0; b0 < G && chosen < 0; b0 += kThreads) {
      const int b = b0 + int(threadIdx.x);
      const double p = b < G ? __ldcg(c.psum(e) + b) : 0.0;
      double tot;
      const double incl = run + block_scan(p, sh.scan_d, tot);
      const int hit = b < G && target < incl ? b : 0x7fffffff;
      if (threadIdx.x == 0) sh.best = 0x7fffffff;
      __syncthreads();
      if (hit != 0x7fffffff) atomicMin(&sh.best, hit);
      __syncthreads();
      if (sh.best != 0x7fffffff) {
        chosen = sh.best;
        if (b == chosen) sh.scan_d[0] = incl - p;  // after block_scan's last read of scan_d
      }
      __syncthreads();
      if (chosen >= 0) base = sh.scan_d[0];
      run += tot;
      __syncthreads();
    }
  }
  int tok = -1;
  if (chosen < 0) {  // rounding left the target above the total: the last nonzero token
    if (blockIdx.x != 0) return;
    int li = -1;
    for (int b = threadIdx.x; b < G; b += kThreads) li = ::max(li, __ldcg(c.pint(e) + b));
    tok = block_max_int(li, sh);
  } else {
    if (int(blockIdx.x) != chosen) return;
    // Walk the chunk as mark() did (same sums in the same order), from the target less what
    // the blocks before hold.
    const double want = target - base;
    double run = 0;
    int last = -1;
    for (int t = 0; t < c.tiles && tok < 0; ++t) {
      const int i = c.index(t);
      const double w = i < c.hi ? c.weight(a.x[i]) : 0.0;
      double tile;
      const double incl = run + block_scan(w, sh.scan_d, tile);
      if (w > 0) last = i;
      const int hit = w > 0 && want < incl ? i : 0x7fffffff;
      if (threadIdx.x == 0) sh.best = 0x7fffffff;
      __syncthreads();
      if (hit != 0x7fffffff) atomicMin(&sh.best, hit);
      __syncthreads();
      if (sh.best != 0x7fffffff) tok = sh.best;
      run += tile;
      __syncthreads();
    }
    if (tok < 0) tok = block_max_int(last, sh);  // the chunk's own sums fell short by rounding
  }
  if (threadIdx.x == 0) {
    *a.token = tok;
    if (s.penalties) a.counts[tok] += 1;
    a.st->offset = s.offset + 1;
  }
}

__global__ void count_history_kernel(const int32_t* history, int64_t n, int32_t* counts) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    atomicAdd(counts + history[i], 1);
}

}  // namespace

DeviceSampler::DeviceSampler(int device, int64_t vocab) : device_(device), vocab_(vocab) {
  EMBER_CHECK(vocab > 0 && vocab < (int64_t(1) << 30), "device sampler: vocabulary of {} tokens", vocab);
  set_device(device_);
  cudaDeviceProp prop{};
  EMBER_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  EMBER_CHECK(prop.cooperativeLaunch, "device sampler: device {} has no cooperative launch", device_);
  int per_sm = 0;
  EMBER_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, sample_kernel, kThreads, 0));
  EMBER_CHECK(per_sm > 0, "device sampler: the kernel does not fit on an SM");
  // One block per SM at most (each grid sync waits for the slowest), fewer for small vocabularies.
  const int64_t max_blocks = int64_t(prop.multiProcessorCount) * std::min(per_sm, 1);
  const int64_t tiles = (vocab + kThreads - 1) / kThreads;
  const int64_t tiles_per_block = (tiles + max_blocks - 1) / max_blocks;
  chunk_ = int(tiles_per_block * kThreads);
  blocks_ = int((vocab + chunk_ - 1) / chunk_);
  const Device d = Device::cuda(device_);
  auto buf = [&](int64_t n, DType t) { return Tensor::empty({n}, t, d); };
  state_ = buf(int64_t(sizeof(State)), DType::U8);
  counts_ = buf(vocab, DType::I32), x_ = buf(vocab, DType::F32);
  hist_count_ = buf(int64_t(kSelects) * kLevels * kBuckets, DType::I32);
  hist_mass_ = buf(int64_t(kSelects) * kLevels * kBuckets, DType::I64);
  part_sum_ = buf(int64_t(kEpochs) * blocks_, DType::I64);  // doubles
  part_val_ = buf(int64_t(kEpochs) * blocks_, DType::F32);
  part_idx_ = buf(int64_t(kEpochs) * blocks_, DType::I32);
  part_int_ = buf(int64_t(kEpochs) * blocks_, DType::I32);
  cudaStream_t stream = stream_for(device_);
  for (const Tensor* t : {&state_, &counts_, &hist_count_, &hist_mass_})
    EMBER_CUDA_CHECK(cudaMemsetAsync(t->raw_data(), 0, t->nbytes(), stream));
  EMBER_CUDA_CHECK(cudaMallocHost(&host_status_, sizeof(int)));
  *host_status_ = 0;
}

DeviceSampler::~DeviceSampler() {
  if (host_status_) cudaFreeHost(host_status_);
}

size_t DeviceSampler::device_bytes() const {
  size_t n = 0;
  for (const Tensor* t : {&state_, &counts_, &x_, &hist_count_, &hist_mass_, &part_sum_, &part_val_, &part_idx_, &part_int_})
    n += t->nbytes();
  return n;
}

void DeviceSampler::configure(const SamplingParams& p, std::span<const int32_t> history, cudaStream_t stream) {
  validate(p);
  for (int32_t t : history)
    EMBER_CHECK(t >= 0 && t < vocab_, "sampler: history token {} outside the vocabulary of {}", t, vocab_);
  set_device(device_);
  State s{};
  s.temperature = p.temperature, s.top_p = p.top_p, s.min_p = p.min_p;
  s.repetition_penalty = p.repetition_penalty, s.frequency_penalty = p.frequency_penalty;
  s.presence_penalty = p.presence_penalty;
  const int64_t k = std::min(std::max(p.top_k, p.min_tokens_to_keep), vocab_);
  s.top_k = p.top_k > 0 && k < vocab_ ? int(k) : 0;  // k >= vocab keeps everything, as apply_top_k does
  s.min_keep = int(std::min(p.min_tokens_to_keep, vocab_));
  s.greedy = p.temperature == 0.0f;
  s.penalties = p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
  s.seed = p.seed, s.offset = p.offset, s.failed = 0;
  // Through pinned memory: the copy must not read `s` after this returns.
  State* staged = nullptr;
  EMBER_CUDA_CHECK(cudaMallocHost(&staged, sizeof(State)));
  *staged = s;
  EMBER_CUDA_CHECK(cudaMemcpyAsync(state_.raw_data(), staged, sizeof(State), cudaMemcpyHostToDevice, stream));
  EMBER_CUDA_CHECK(cudaMemsetAsync(counts_.raw_data(), 0, counts_.nbytes(), stream));
  Tensor h;
  if (s.penalties && !history.empty()) {
    h = Tensor::from_vector(std::vector<int32_t>(history.begin(), history.end()), {int64_t(history.size())})
            .to(Device::cuda(device_));
    count_history_kernel<<<blocks_for(int64_t(history.size())), 256, 0, stream>>>(dptr<int32_t>(h), int64_t(history.size()),
                                                                                  dptr<int32_t>(counts_));
    EMBER_CUDA_LAUNCHED();
  }
  // Once a generation: `staged` and `h` must outlive the copies.
  const cudaError_t err = cudaStreamSynchronize(stream);
  cudaFreeHost(staged);
  EMBER_CUDA_CHECK(err);
}

void DeviceSampler::sample(const float* logits, int32_t* token, cudaStream_t stream) {
  Args a{logits,
         token,
         static_cast<State*>(state_.raw_data()),
         dptr<int32_t>(counts_),
         dptr<float>(x_),
         static_cast<unsigned*>(hist_count_.raw_data()),
         static_cast<unsigned long long*>(hist_mass_.raw_data()),
         dptr<double>(part_sum_),
         dptr<float>(part_val_),
         dptr<int>(part_idx_),
         dptr<int>(part_int_),
         int(vocab_),
         chunk_};
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(blocks_)), cfg.blockDim = dim3(kThreads), cfg.dynamicSmemBytes = 0, cfg.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeCooperative;  // grid.sync() needs every block resident
  attr.val.cooperative = 1;
  cfg.attrs = &attr, cfg.numAttrs = 1;
  EMBER_CUDA_CHECK(cudaLaunchKernelEx(&cfg, sample_kernel, a));
}

void DeviceSampler::enqueue_status(cudaStream_t stream) {
  EMBER_CUDA_CHECK(cudaMemcpyAsync(host_status_, static_cast<char*>(state_.raw_data()) + offsetof(State, failed),
                                   sizeof(int), cudaMemcpyDeviceToHost, stream));
}

void DeviceSampler::check() const {
  EMBER_CHECK(!*host_status_, "sampler: every token was filtered out (all logits -inf or NaN)");
}

uint64_t DeviceSampler::offset(cudaStream_t stream) const {
  unsigned long long v = 0;
  EMBER_CUDA_CHECK(cudaMemcpyAsync(&v, static_cast<char*>(state_.raw_data()) + offsetof(State, offset), sizeof v,
                                   cudaMemcpyDeviceToHost, stream));
  EMBER_CUDA_CHECK(cudaStreamSynchronize(stream));
  return uint64_t(v);
}

}  // namespace ember::backend::cuda
