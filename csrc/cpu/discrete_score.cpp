// Discrete (empirical) score and fused pfODE integration, CPU backend.
//
// specs/inflationary_flows.md §3: for queries u [M, d] against reference points Y [N, d]
// and per-dimension noise gamma [d], the denoiser of the Gaussian-smoothed empirical
// distribution is D(u) = sum_j pi_j y_j with pi = softmax_j(l_j), l_j = -1/2 sum_c
// (u_c - y_jc)^2 / gamma_c, and the score is (D - u) / gamma.
//
// Layout and memory: Y arrives transposed, yT [d, N], so the inner loops run over data
// points j with unit stride and vectorise (#pragma omp simd). Each query streams Y in
// tiles of kTile points; a tile's logits live in a stack buffer, so memory is O((M+N)d)
// and no M x N matrix is ever formed. Per query, the weighted sum is accumulated as
// acc_c = sum_j w_j (y_jc - u_c) (better conditioned than sum_j w_j y_jc when gamma is
// small), tile partial sums in T and cross-tile sums in double. OpenMP splits the queries.
//
// integrate_discrete runs whole trajectories: particles are independent given Y, so each
// thread carries its particles through every time step (no barrier, no Python loop).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "synthperf/bindings_registry.h"
#include "synthperf/flows_math.h"

namespace py = pybind11;

namespace synthperf {
namespace flows {
namespace {

constexpr std::int64_t kTile = 512;

template <typename T>
struct Scratch {
  std::vector<T> logits = std::vector<T>(kTile);
  std::vector<double> acc;
  std::vector<T> hinv, u, f0, z1;
  explicit Scratch(std::int64_t d) : acc(d), hinv(d), u(d), f0(d), z1(d) {}
};

// Small-d fast path (d <= 4, unrolled): per tile, pass 1 fuses the logits with the tile
// maximum, pass 2 fuses exp, the weight sum and the d weighted sums (named scalar
// reductions), so each tile is read twice instead of 2d + 3 times.
template <typename T, int D>
__attribute__((always_inline)) inline void denoise_small(const T* u, const T* yT, std::int64_t N,
                                                         const T* hinv, bool clamp, Scratch<T>& s) {
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  double l = 0.0;
  T m = -std::numeric_limits<T>::infinity();
  T* lg = s.logits.data();
  const T u0 = u[0], u1 = D > 1 ? u[1] : T(0), u2 = D > 2 ? u[2] : T(0), u3 = D > 3 ? u[3] : T(0);
  const T h0 = hinv[0], h1 = D > 1 ? hinv[1] : T(0), h2 = D > 2 ? hinv[2] : T(0), h3 = D > 3 ? hinv[3] : T(0);
  for (std::int64_t j0 = 0; j0 < N; j0 += kTile) {
    const std::int64_t nb = (N - j0 < kTile) ? N - j0 : kTile;
    const T* y0 = yT + j0;
    const T* y1 = yT + (D > 1 ? 1 : 0) * N + j0;
    const T* y2 = yT + (D > 2 ? 2 : 0) * N + j0;
    const T* y3 = yT + (D > 3 ? 3 : 0) * N + j0;
    T mm = T(0);
    if (!clamp) {
      T tmax = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : tmax)
      for (std::int64_t j = 0; j < nb; ++j) {
        T v = logit_term(u0, y0[j], h0);
        if (D > 1) v += logit_term(u1, y1[j], h1);
        if (D > 2) v += logit_term(u2, y2[j], h2);
        if (D > 3) v += logit_term(u3, y3[j], h3);
        lg[j] = v;
        tmax = v > tmax ? v : tmax;
      }
      if (tmax > m) {
        const double scale = static_cast<double>(online_rescale(m, tmax));
        l *= scale;
        for (int c = 0; c < D; ++c) acc[c] *= scale;
        m = tmax;
      }
      mm = m;
    }
    T lt = T(0), a0 = T(0), a1 = T(0), a2 = T(0), a3 = T(0);
    // The branch stays outside the vector loops (GCC does not if-convert it).
#define SP_ACCUMULATE(w)                              \
  lt += w;                                            \
  a0 += w * (y0[j] - u0);                             \
  if (D > 1) a1 += w * (y1[j] - u1);                  \
  if (D > 2) a2 += w * (y2[j] - u2);                  \
  if (D > 3) a3 += w * (y3[j] - u3);
    if (clamp) {
#pragma omp simd reduction(+ : lt, a0, a1, a2, a3)
      for (std::int64_t j = 0; j < nb; ++j) {
        T v = logit_term(u0, y0[j], h0);
        if (D > 1) v += logit_term(u1, y1[j], h1);
        if (D > 2) v += logit_term(u2, y2[j], h2);
        if (D > 3) v += logit_term(u3, y3[j], h3);
        const T w = clamp_weight(v);
        SP_ACCUMULATE(w)
      }
    } else {
#pragma omp simd reduction(+ : lt, a0, a1, a2, a3)
      for (std::int64_t j = 0; j < nb; ++j) {
        const T w = fast_exp(lg[j] - mm);
        SP_ACCUMULATE(w)
      }
    }
#undef SP_ACCUMULATE
    l += static_cast<double>(lt);
    acc[0] += static_cast<double>(a0);
    if (D > 1) acc[1] += static_cast<double>(a1);
    if (D > 2) acc[2] += static_cast<double>(a2);
    if (D > 3) acc[3] += static_cast<double>(a3);
  }
  for (int c = 0; c < D; ++c) s.acc[c] = acc[c] / l;
}

// acc[c] <- sum_j pi_j (y_jc - u_c) for one query u (so D = u + acc, score = acc / gamma).
template <typename T>
__attribute__((always_inline)) inline void denoise_offset_impl(const T* u, const T* yT, std::int64_t N, std::int64_t d, const T* hinv,
                    bool clamp, Scratch<T>& s) {
  switch (d) {
    case 1: denoise_small<T, 1>(u, yT, N, hinv, clamp, s); return;
    case 2: denoise_small<T, 2>(u, yT, N, hinv, clamp, s); return;
    case 3: denoise_small<T, 3>(u, yT, N, hinv, clamp, s); return;
    case 4: denoise_small<T, 4>(u, yT, N, hinv, clamp, s); return;
    default: break;
  }
  double* acc = s.acc.data();
  for (std::int64_t c = 0; c < d; ++c) acc[c] = 0.0;
  double l = 0.0;
  T m = -std::numeric_limits<T>::infinity();
  T* lg = s.logits.data();
  for (std::int64_t j0 = 0; j0 < N; j0 += kTile) {
    const std::int64_t nb = (N - j0 < kTile) ? N - j0 : kTile;
#pragma omp simd
    for (std::int64_t j = 0; j < nb; ++j) lg[j] = T(0);
    for (std::int64_t c = 0; c < d; ++c) {
      const T uc = u[c], hc = hinv[c];
      const T* yc = yT + c * N + j0;
#pragma omp simd
      for (std::int64_t j = 0; j < nb; ++j) lg[j] += logit_term(uc, yc[j], hc);
    }
    if (clamp) {
#pragma omp simd
      for (std::int64_t j = 0; j < nb; ++j) lg[j] = clamp_weight(lg[j]);
    } else {
      T tmax = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : tmax)
      for (std::int64_t j = 0; j < nb; ++j) tmax = lg[j] > tmax ? lg[j] : tmax;
      if (tmax > m) {
        const double scale = static_cast<double>(online_rescale(m, tmax));
        l *= scale;
        for (std::int64_t c = 0; c < d; ++c) acc[c] *= scale;
        m = tmax;
      }
      const T mm = m;
#pragma omp simd
      for (std::int64_t j = 0; j < nb; ++j) lg[j] = fast_exp(lg[j] - mm);
    }
    T lt = T(0);
#pragma omp simd reduction(+ : lt)
    for (std::int64_t j = 0; j < nb; ++j) lt += lg[j];
    l += static_cast<double>(lt);
    for (std::int64_t c = 0; c < d; ++c) {
      const T uc = u[c];
      const T* yc = yT + c * N + j0;
      T at = T(0);
#pragma omp simd reduction(+ : at)
      for (std::int64_t j = 0; j < nb; ++j) at += lg[j] * (yc[j] - uc);
      acc[c] += static_cast<double>(at);
    }
  }
  for (std::int64_t c = 0; c < d; ++c) acc[c] /= l;
}

// Runtime dispatch: the package is built without -march, so the hot loop is compiled three
// times (AVX-512, AVX2+FMA, baseline) and picked once by CPUID. Measured at M = N = 20 000,
// d = 2 on 2 cores (stable mode): AVX-512 ~0.09 s, AVX2 ~0.6 s, SSE2 ~1.1 s. Feature lists (not
// "arch=") keep the always_inline helpers inlinable into every variant.
#if defined(__GNUC__) && defined(__x86_64__)
#define SP_DISPATCH 1
#define SP_DEFINE_VARIANT(suffix, attr)                                                          \
  attr void denoise_offset_##suffix(const float* u, const float* yT, std::int64_t N,           \
                                    std::int64_t d, const float* hinv, bool clamp,             \
                                    Scratch<float>& s) {                                       \
    denoise_offset_impl<float>(u, yT, N, d, hinv, clamp, s);                                   \
  }                                                                                            \
  attr void denoise_offset_##suffix(const double* u, const double* yT, std::int64_t N,         \
                                    std::int64_t d, const double* hinv, bool clamp,            \
                                    Scratch<double>& s) {                                      \
    denoise_offset_impl<double>(u, yT, N, d, hinv, clamp, s);                                  \
  }
SP_DEFINE_VARIANT(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma"))))
SP_DEFINE_VARIANT(avx2, __attribute__((target("avx2,fma"))))
#endif
SP_DEFINE_VARIANT(base, )

enum class Isa { kBase, kAvx2, kAvx512 };
// SYNTHPERF_FLOWS_ISA=base|avx2 caps the choice (tests run every variant this way).
inline Isa detect_isa() {
#if defined(SP_DISPATCH)
  const char* cap = std::getenv("SYNTHPERF_FLOWS_ISA");
  if (cap && std::string(cap) == "base") return Isa::kBase;
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (cap && std::string(cap) == "avx2") return avx2 ? Isa::kAvx2 : Isa::kBase;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    return Isa::kAvx512;
  if (avx2) return Isa::kAvx2;
#endif
  return Isa::kBase;
}
inline Isa isa() {
  static const Isa value = detect_isa();
  return value;
}

template <typename T>
inline void denoise_offset(const T* u, const T* yT, std::int64_t N, std::int64_t d, const T* hinv,
                           bool clamp, Scratch<T>& s) {
#if defined(SP_DISPATCH)
  switch (isa()) {
    case Isa::kAvx512: denoise_offset_avx512(u, yT, N, d, hinv, clamp, s); return;
    case Isa::kAvx2: denoise_offset_avx2(u, yT, N, d, hinv, clamp, s); return;
    default: break;
  }
#endif
  denoise_offset_base(u, yT, N, d, hinv, clamp, s);
}

template <typename T>
void discrete_score_cpu(const T* u, std::int64_t M, const T* yT, std::int64_t N, std::int64_t d,
                        const T* gamma, bool clamp, T* dbar, T* score) {
#pragma omp parallel
  {
    Scratch<T> s(d);
    for (std::int64_t c = 0; c < d; ++c) s.hinv[c] = T(0.5) / gamma[c];
#pragma omp for schedule(dynamic, 16)
    for (std::int64_t i = 0; i < M; ++i) {
      const T* ui = u + i * d;
      denoise_offset(ui, yT, N, d, s.hinv.data(), clamp, s);
      for (std::int64_t c = 0; c < d; ++c) {
        if (dbar) dbar[i * d + c] = static_cast<T>(ui[c] + s.acc[c]);
        if (score) score[i * d + c] = static_cast<T>(s.acc[c] / gamma[c]);
      }
    }
  }
}

// Tables are per time point k (n rows of d): s, r = s'/s, a = gamma'/(2 gamma), gamma.
// save_at[k] = snapshot slot (>= 0) for step k, or -1. z_out has n_save + 1 slots.
template <typename T>
void integrate_discrete_cpu(const T* z0, std::int64_t M, const T* yT, std::int64_t N,
                            std::int64_t d, const double* s_tab, const double* r_tab,
                            const double* a_tab, const double* g_tab, const double* times,
                            std::int64_t n, bool heun, bool clamp, const std::int64_t* save_at,
                            std::int64_t n_save, T* z_out, T* d_out, T* score_out, T* dz_out) {
  const std::int64_t plane = M * d;
#pragma omp parallel
  {
    Scratch<T> s(d);
    std::vector<T> z(d);
#pragma omp for schedule(dynamic, 4)
    for (std::int64_t i = 0; i < M; ++i) {
      for (std::int64_t c = 0; c < d; ++c) { z[c] = z0[i * d + c]; z_out[i * d + c] = z[c]; }
      for (std::int64_t k = 0; k + 1 < n; ++k) {
        const double dt = times[k + 1] - times[k];
        const double* sk = s_tab + k * d;
        for (std::int64_t c = 0; c < d; ++c) {
          s.u[c] = static_cast<T>(z[c] / sk[c]);
          s.hinv[c] = static_cast<T>(0.5 / g_tab[k * d + c]);
        }
        denoise_offset(s.u.data(), yT, N, d, s.hinv.data(), clamp, s);
        const std::int64_t slot = save_at[k];
        for (std::int64_t c = 0; c < d; ++c) {
          const double D = s.u[c] + s.acc[c];
          s.f0[c] = static_cast<T>(flow_rhs<double>(z[c], r_tab[k * d + c], a_tab[k * d + c], sk[c], D));
          if (slot >= 0) {
            d_out[slot * plane + i * d + c] = static_cast<T>(D);
            score_out[slot * plane + i * d + c] = static_cast<T>(s.acc[c] / g_tab[k * d + c]);
          }
          s.z1[c] = static_cast<T>(euler_update<double>(z[c], dt, s.f0[c]));
        }
        if (heun) {
          const double* sn = s_tab + (k + 1) * d;
          for (std::int64_t c = 0; c < d; ++c) {
            s.u[c] = static_cast<T>(s.z1[c] / sn[c]);
            s.hinv[c] = static_cast<T>(0.5 / g_tab[(k + 1) * d + c]);
          }
          denoise_offset(s.u.data(), yT, N, d, s.hinv.data(), clamp, s);
          for (std::int64_t c = 0; c < d; ++c) {
            const double D = s.u[c] + s.acc[c];
            const double f1 = flow_rhs<double>(s.z1[c], r_tab[(k + 1) * d + c], a_tab[(k + 1) * d + c], sn[c], D);
            s.z1[c] = static_cast<T>(heun_update<double>(z[c], dt, s.f0[c], f1));
          }
        }
        for (std::int64_t c = 0; c < d; ++c) {
          if (slot >= 0) dz_out[slot * plane + i * d + c] = s.z1[c] - z[c];
          z[c] = s.z1[c];
          if (slot >= 0) z_out[(slot + 1) * plane + i * d + c] = z[c];
        }
      }
    }
  }
  (void)n_save;
}

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;
using DArray = py::array_t<double, py::array::c_style>;
using IArray = py::array_t<std::int64_t, py::array::c_style>;

void check(bool cond, const std::string& msg) {
  if (!cond) throw py::value_error(msg);
}

template <typename T>
void bind_score(CArray<T> u, CArray<T> yT, CArray<T> gamma, bool clamp, CArray<T> dbar,
                CArray<T> score) {
  check(u.ndim() == 2, "x must be 2-D [M, d]");
  check(yT.ndim() == 2 && yT.shape(0) == u.shape(1), "data (transposed) must be [d, N] with d = x.shape[1]");
  check(gamma.ndim() == 1 && gamma.shape(0) == u.shape(1), "gamma must have shape [d]");
  check(dbar.ndim() == 2 && dbar.shape(0) == u.shape(0) && dbar.shape(1) == u.shape(1), "dbar out must be [M, d]");
  check(score.ndim() == 2 && score.shape(0) == u.shape(0) && score.shape(1) == u.shape(1), "score out must be [M, d]");
  check(yT.shape(1) > 0, "data must hold at least one point");
  const std::int64_t M = u.shape(0), d = u.shape(1), N = yT.shape(1);
  const T *up = u.data(), *yp = yT.data(), *gp = gamma.data();
  T *dp = dbar.mutable_data(), *sp = score.mutable_data();
  py::gil_scoped_release release;
  discrete_score_cpu<T>(up, M, yp, N, d, gp, clamp, dp, sp);
}

template <typename T>
void bind_integrate(CArray<T> z0, CArray<T> yT, DArray s_tab, DArray r_tab, DArray a_tab,
                    DArray g_tab, DArray times, bool heun, bool clamp, IArray save_at,
                    CArray<T> z_out, CArray<T> d_out, CArray<T> score_out, CArray<T> dz_out) {
  check(z0.ndim() == 2, "z0 must be 2-D [M, d]");
  const std::int64_t M = z0.shape(0), d = z0.shape(1);
  check(yT.ndim() == 2 && yT.shape(0) == d && yT.shape(1) > 0, "data (transposed) must be [d, N], N >= 1");
  const std::int64_t n = times.ndim() == 1 ? times.shape(0) : -1;
  check(n >= 2, "times must be 1-D with at least 2 points");
  for (auto* tab : {&s_tab, &r_tab, &a_tab, &g_tab})
    check(tab->ndim() == 2 && tab->shape(0) == n && tab->shape(1) == d, "schedule tables must be [n_times, d]");
  check(save_at.ndim() == 1 && save_at.shape(0) == n - 1, "save_at must have n_times - 1 entries");
  std::int64_t n_save = 0;
  for (std::int64_t k = 0; k < n - 1; ++k) {
    const std::int64_t v = save_at.data()[k];
    check(v == -1 || v == n_save, "save_at must number the saved steps 0, 1, 2, ... in order");
    if (v >= 0) ++n_save;
  }
  check(z_out.ndim() == 3 && z_out.shape(0) == n_save + 1 && z_out.shape(1) == M && z_out.shape(2) == d,
        "z_out must be [n_save + 1, M, d]");
  for (auto* o : {&d_out, &score_out, &dz_out})
    check(o->ndim() == 3 && o->shape(0) == n_save && o->shape(1) == M && o->shape(2) == d,
          "d_out/score_out/dz_out must be [n_save, M, d]");
  const std::int64_t N = yT.shape(1);
  const T *zp = z0.data(), *yp = yT.data();
  const double *sp = s_tab.data(), *rp = r_tab.data(), *ap = a_tab.data(), *gp = g_tab.data(),
               *tp = times.data();
  const std::int64_t* sv = save_at.data();
  T *zo = z_out.mutable_data(), *dout = d_out.mutable_data(), *so = score_out.mutable_data(),
    *dzo = dz_out.mutable_data();
  py::gil_scoped_release release;
  integrate_discrete_cpu<T>(zp, M, yp, N, d, sp, rp, ap, gp, tp, n, heun, clamp, sv, n_save,
                            zo, dout, so, dzo);
}

void register_flows(py::module_& m) {
  // Output arrays are noconvert: pybind11 would otherwise convert a Fortran-order or
  // strided `out` into a C-order temporary, the kernel would fill that and the caller's
  // array would keep uninitialised memory. Now such an `out` raises TypeError.
  m.def("discrete_score_f32", &bind_score<float>, py::arg("x"), py::arg("data_t"), py::arg("gamma"),
        py::arg("clamp"), py::arg("dbar").noconvert(), py::arg("score").noconvert());
  m.def("discrete_score_f64", &bind_score<double>, py::arg("x"), py::arg("data_t"), py::arg("gamma"),
        py::arg("clamp"), py::arg("dbar").noconvert(), py::arg("score").noconvert());
#define SP_INTEGRATE_ARGS                                                                           \
  py::arg("z0"), py::arg("data_t"), py::arg("s_tab"), py::arg("r_tab"), py::arg("a_tab"), py::arg("g_tab"), \
      py::arg("times"), py::arg("heun"), py::arg("clamp"), py::arg("save_at"), py::arg("z_out").noconvert(), \
      py::arg("d_out").noconvert(), py::arg("score_out").noconvert(), py::arg("dz_out").noconvert()
  m.def("integrate_discrete_f32", &bind_integrate<float>, SP_INTEGRATE_ARGS);
  m.def("integrate_discrete_f64", &bind_integrate<double>, SP_INTEGRATE_ARGS);
#undef SP_INTEGRATE_ARGS
}

}  // namespace
}  // namespace flows
}  // namespace synthperf

SYNTHPERF_REGISTER_BINDINGS(flows_discrete_score, synthperf::flows::register_flows)
