// Inflationary-flows math shared by the C++ CPU core (g++) and the CUDA kernels (nvcc).
//
// specs/inflationary_flows.md §1.2 (flow) and §3 (discrete / empirical score). Every
// function is SP_HD (= __host__ __device__ under nvcc) so the CPU tests exercise the
// same arithmetic the GPU runs.
//
// Contents
//   1. exp that vectorises on the CPU (Cody-Waite reduction + Taylor polynomial); on the
//      device the native exp is used.
//   2. Discrete-score weights: logits l = -1/2 sum_c (u_c - y_c)^2 / gamma_c, the upstream
//      1e-30 clamp (clamp mode) and the online-softmax rescale (stable mode).
//   3. The scaled pfODE right-hand side in denoiser form,
//        f = (s'/s) z + a (z - s D),   a = gamma'/(2 gamma)  (§1.2 "Flow"),
//      and the Euler / Heun combines (§1.4).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifndef SP_HD
#if defined(__CUDACC__)
#define SP_HD __host__ __device__ __forceinline__
#else
#define SP_HD inline
#endif
#endif

// SP_HD plus forced inlining on the host: the CPU kernel has AVX2 and baseline clones
// (target_clones), and GCC does not inline plain-inline callees across target options,
// which would leave a call inside every vector loop.
#if defined(__CUDACC__)
#define SP_FLOWS_HD SP_HD
#else
#define SP_FLOWS_HD SP_HD __attribute__((always_inline))
#endif

namespace synthperf {
namespace flows {

// ln(1e-30): upstream clamps each weight at 1e-30, i.e. clamps the logit here (§3).
constexpr double kClampLogit = -69.07755278982137;

// ---------------------------------------------------------------------------------------
// 1. exp. x is clamped to the normal range first, so the result is never inf/NaN; below the
//    clamp the result is exactly 0 (not the ~1e-38 of the clamp): products of such tiny weights
//    would be subnormal, and subnormal arithmetic is ~100x slower on x86. Relative error
//    ~2e-7 (float), ~2e-16 (double).
// ---------------------------------------------------------------------------------------
SP_FLOWS_HD float fast_exp(float x) {
#if defined(__CUDA_ARCH__)
  return __expf(x < -87.0f ? -87.0f : x);
#else
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float t = x * 1.44269504088896341f + 12582912.0f;  // round(x/ln2) in the low bits
  const float n = t - 12582912.0f;
  std::int32_t ti;
  std::memcpy(&ti, &t, sizeof(ti));
  const std::int32_t k = ti - 0x4B400000;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  const bool underflow = x <= -87.0f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (k + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return underflow ? 0.0f : p * scale;
#endif
}

SP_FLOWS_HD double fast_exp(double x) {
#if defined(__CUDA_ARCH__)
  return exp(x < -708.0 ? -708.0 : x);
#else
  x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double t = x * 1.4426950408889634 + 6755399441055744.0;
  const double n = t - 6755399441055744.0;
  std::int64_t ti;
  std::memcpy(&ti, &t, sizeof(ti));
  const std::int64_t k = ti - 0x4338000000000000LL;
  const double r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
  const bool underflow = x <= -708.0;
  double p = 1.0 / 479001600.0;  // 1/12!
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const std::int64_t bits = (k + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return underflow ? 0.0 : p * scale;
#endif
}

// ---------------------------------------------------------------------------------------
// 2. Weights.
// ---------------------------------------------------------------------------------------

// One logit term: -(u - y)^2 * half_inv_gamma, with half_inv_gamma = 1/(2 gamma_c).
template <typename T>
SP_FLOWS_HD T logit_term(T u, T y, T half_inv_gamma) {
  const T diff = u - y;
  return -diff * diff * half_inv_gamma;
}

// Clamp mode: w = max(exp(l), 1e-30) = exp(max(l, ln 1e-30)). Because l <= 0 no running
// maximum is needed; when every l < ln 1e-30 the weights are uniform (D = mean(Y)).
template <typename T>
SP_FLOWS_HD T clamp_weight(T logit) {
  const T lo = static_cast<T>(kClampLogit);
  return fast_exp(logit > lo ? logit : lo);
}

// Stable mode (flash-style online softmax): the running maximum m moves to max(m, tile_max)
// and the running sums are multiplied by exp(m_old - m_new). Returns that factor (0 the
// first time, when m_old = -inf).
template <typename T>
SP_FLOWS_HD T online_rescale(T m_old, T m_new) {
  return m_old == -INFINITY ? T(0) : fast_exp(m_old - m_new);
}

// ---------------------------------------------------------------------------------------
// 3. pfODE right-hand side (denoiser form) and solver combines.
// ---------------------------------------------------------------------------------------

// f = r z + a (z - s D) with r = s'/s, a = gamma'/(2 gamma) (all per dimension).
template <typename T>
SP_FLOWS_HD T flow_rhs(T z, T r, T a, T s, T denoiser) {
  return r * z + a * (z - s * denoiser);
}

// Euler: z + dt f.   Heun corrector: z + dt/2 (f0 + f1).
template <typename T>
SP_FLOWS_HD T euler_update(T z, T dt, T f) { return z + dt * f; }
template <typename T>
SP_FLOWS_HD T heun_update(T z, T dt, T f0, T f1) { return z + T(0.5) * dt * (f0 + f1); }

// Schedule closed forms (§1.2), for kernels that compute them in place of a table:
//   gamma_i(t) = gamma0 exp(rho (1 + g_i) t),   s(t) = A0 / sqrt(xi* + gamma*(t)).
SP_FLOWS_HD double schedule_gamma(double gamma0, double rho, double g, double t) {
  return gamma0 * exp(rho * (1.0 + g) * t);
}
SP_FLOWS_HD double schedule_scale(double end_vars, double xi_star, double gamma_star) {
  return end_vars / sqrt(xi_star + gamma_star);
}
SP_FLOWS_HD double schedule_scale_dot(double end_vars, double rho, double g_star, double xi_star,
                                double gamma_star) {
  return -0.5 * end_vars * rho * (1.0 + g_star) * gamma_star * pow(xi_star + gamma_star, -1.5);
}

}  // namespace flows
}  // namespace synthperf
