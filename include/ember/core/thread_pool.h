#pragma once
// ember's CPU thread pool. One pool for all of ember's kernels; BLAS runs single-threaded inside it.
#include <cstdint>
#include <functional>

namespace ember {

void set_num_threads(int n);  // n <= 0: all cores
int num_threads();

// Runs fn(begin, end) over [0, n) split into chunks of at least `grain` items on the pool.
// Runs inline when n is small or when called from inside a pool task (no nested parallelism).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace ember
