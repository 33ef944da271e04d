// Fused attention on CUDA, first correct version: one warp per query row walks the visible keys
// with an online softmax; lanes split the head dimension (dot products by warp shuffle).
// Sinks, quiet softmax, bias, masks and absolute positions follow the CPU kernel exactly.
#include "backends/cuda/common.cuh"

namespace ember::backend {

using namespace cuda;

namespace {

__device__ __forceinline__ int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

constexpr int kMaxPerLane = 8;  // head_dim and v_dim up to 256

struct AttnArgs {
  const float *q, *k, *v, *sinks, *bias;
  const uint8_t* mask;
  const int64_t *qpos, *kpos;
  float* out;
  int64_t B, Hq, Tq, D, Hkv, Tk, Dv;
  int64_t qs[4], ks[4], vs[4], bs[4], ms[4];
  AttentionParams p;
};

__global__ void attention_kernel(AttnArgs a) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= a.B * a.Hq * a.Tq) return;
  const int64_t b = row / (a.Hq * a.Tq), h = (row / a.Tq) % a.Hq, i = row % a.Tq;
  const int64_t kvh = h / (a.Hq / a.Hkv);
  const float* qrow = a.q + b * a.qs[0] + h * a.qs[1] + i * a.qs[2];
  const float* kb = a.k + b * a.ks[0] + kvh * a.ks[1];
  const float* vb = a.v + b * a.vs[0] + kvh * a.vs[1];
  const int64_t qpos = a.qpos ? a.qpos[i] : a.p.q_offset + i;

  float qreg[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int t = 0; t < kMaxPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    qreg[t] = d < a.D ? qrow[d] : 0.f;
    acc[t] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  int64_t lo = 0, hi = a.Tk;
  if (!a.kpos) {
    if (a.p.causal) hi = clamp64(qpos + 1, 0, a.Tk);
    if (a.p.window > 0) lo = clamp64(qpos - a.p.window + 1, 0, hi);
  }
  auto visit = [&](int64_t j) {
    const int64_t kp = a.kpos ? a.kpos[j] : j;
    if (kp < 0) return;
    if (a.p.causal && kp > qpos) return;
    if (a.p.window > 0 && kp <= qpos - a.p.window && kp >= a.p.sink_positions) return;
    if (a.mask && a.mask[b * a.ms[0] + h * a.ms[1] + i * a.ms[2] + j * a.ms[3]]) return;
    const float* krow = kb + j * a.ks[2];
    float dot = 0.f;
#pragma unroll
    for (int t = 0; t < kMaxPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < a.D) dot += qreg[t] * krow[d];
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    float s = dot * a.p.scale;
    if (a.bias) s += a.bias[b * a.bs[0] + h * a.bs[1] + i * a.bs[2] + j * a.bs[3]];
    if (s == -INFINITY) return;
    const float mn = fmaxf(m, s);
    const float r = m == -INFINITY ? 0.f : expf(m - mn);
    const float w = expf(s - mn);
    l = l * r + w;
    const float* vrow = vb + j * a.vs[2];
#pragma unroll
    for (int t = 0; t < kMaxPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      acc[t] = acc[t] * r + (d < a.Dv ? w * vrow[d] : 0.f);
    }
    m = mn;
  };
  if (!a.kpos && a.p.window > 0 && a.p.sink_positions > 0)
    for (int64_t j = 0; j < (a.p.sink_positions < lo ? a.p.sink_positions : lo); ++j) visit(j);
  for (int64_t j = lo; j < hi; ++j) visit(j);

  float* orow = a.out + row * a.Dv;
  if (l == 0.f) {
    for (int64_t d = lane; d < a.Dv; d += 32) orow[d] = 0.f;
    return;
  }
  float extra = 0.f;
  if (a.sinks) {
    const float s = a.sinks[h];
    if (s > m) {
      const float r = expf(m - s);
      l *= r;
#pragma unroll
      for (int t = 0; t < kMaxPerLane; ++t) acc[t] *= r;
      m = s;
    }
    extra += expf(s - m);
  }
  if (a.p.quiet_softmax) {
    if (0.f > m) {
      const float r = expf(m);
      l *= r;
#pragma unroll
      for (int t = 0; t < kMaxPerLane; ++t) acc[t] *= r;
      extra *= r;
      m = 0.f;
    }
    extra += expf(-m);
  }
  const float inv = 1.0f / (l + extra);
#pragma unroll
  for (int t = 0; t < kMaxPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < a.Dv) orow[d] = acc[t] * inv;
  }
}

void strides4(const Tensor& t, int64_t out[4]) {
  for (int i = 0; i < 4; ++i) out[i] = t.defined() ? t.strides()[i] : 0;
}

}  // namespace

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& sinks, const Tensor& bias,
                            const Tensor& mask, const Tensor& q_positions, const Tensor& key_positions,
                            const AttentionParams& params, const Tensor& out) {
  cudaStream_t s = stream_for(device_index_);
  AttnArgs a{};
  a.q = dptr<float>(q), a.k = dptr<float>(k), a.v = dptr<float>(v);
  a.sinks = sinks.defined() ? dptr<float>(sinks) : nullptr;
  a.bias = bias.defined() ? dptr<float>(bias) : nullptr;
  a.mask = mask.defined() ? dptr<uint8_t>(mask) : nullptr;
  a.qpos = q_positions.defined() ? dptr<int64_t>(q_positions) : nullptr;
  a.kpos = key_positions.defined() ? dptr<int64_t>(key_positions) : nullptr;
  a.out = dptr<float>(out);
  a.B = q.dim(0), a.Hq = q.dim(1), a.Tq = q.dim(2), a.D = q.dim(3);
  a.Hkv = k.dim(1), a.Tk = k.dim(2), a.Dv = v.dim(3);
  EMBER_CHECK(a.D <= 32 * kMaxPerLane && a.Dv <= 32 * kMaxPerLane,
              "attention on CUDA: head dims up to {} are supported, got {} and {}", 32 * kMaxPerLane, a.D, a.Dv);
  strides4(q, a.qs), strides4(k, a.ks), strides4(v, a.vs), strides4(bias, a.bs), strides4(mask, a.ms);
  a.p = params;
  const int64_t rows = a.B * a.Hq * a.Tq;
  const int warps = 4;
  attention_kernel<<<unsigned((rows + warps - 1) / warps), warps * 32, 0, s>>>(a);
  EMBER_CUDA_LAUNCHED();
}

}  // namespace ember::backend
