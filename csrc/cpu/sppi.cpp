// SPPI on the CPU (specs/sppi.md §1): transport windows and batched thresholds.
//
// transport_windows_f64: for each real rank r = 1..m (m = n+1), walk the BetaBinomial
//   (N, r, m+1-r) pmf with the recurrence of §1a, accumulating F_r(k) in double, and read
//   off L_r = min{k: F > beta/2}, U_r = min{k >= L_r: F >= 1-beta/2}. It also returns, per
//   rank, how close F came to a threshold at the decisive buckets; the Python layer
//   recomputes the rare rows within 1e-8 of a threshold exactly as upstream does.
// sppi_thresholds: per group, multi-select the needed real and synthetic order statistics
//   (no full sort) and apply the shared index math of device_math.h. OpenMP over groups.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "synthperf/bindings_registry.h"
#include "synthperf/device_math.h"
#include "synthperf/parallel.h"
#include "synthperf/selection.h"

namespace py = pybind11;

namespace synthperf {
namespace {

// log pmf of j ~ BetaBinomial(N, a=r, b=m+1-r) via lgamma (only to find where to start).
double log_pmf(std::int64_t j, std::int64_t N, std::int64_t m, std::int64_t r) {
  auto lc = [](double n, double k) { return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1); };
  return lc(double(j + r - 1), double(r - 1)) + lc(double(N + m - j - r), double(m - r)) - lc(double(N + m), double(m));
}

struct WindowRow {
  std::int64_t L, U;
  double margin;
};

WindowRow window_row(std::int64_t N, std::int64_t m, std::int64_t r, double beta) {
  const double lo = beta / 2.0, hi = 1.0 - beta / 2.0;
  const double kUnderflow = -700.0;
  // Start where the pmf becomes representable: log-concave pmf, increasing up to the mode.
  std::int64_t j0 = 0;
  if (log_pmf(0, N, m, r) < kUnderflow) {
    std::int64_t a = 0, b = m > 1 ? (r - 1) * N / (m - 1) : 0;  // b ~ mode
    while (b - a > 1) {
      const std::int64_t mid = a + (b - a) / 2;
      if (log_pmf(mid, N, m, r) < kUnderflow) a = mid; else b = mid;
    }
    j0 = b;
  }
  double p = std::exp(log_pmf(j0, N, m, r));
  if (j0 == 0) {  // exact-product start: p_0 = prod_{i<r} (m-i)/(N+m-i)
    double q = 1.0;
    for (std::int64_t i = 0; i < r; ++i) q *= double(m - i) / double(N + m - i);
    if (q > 0.0) p = q;
  }
  double F = 0.0, F_prev = 0.0;
  std::int64_t L = -1, U = -1;
  double margin = std::numeric_limits<double>::infinity();
  for (std::int64_t j = j0; j <= N; ++j) {
    F_prev = F;
    F += p;
    const std::int64_t k = j + 1;
    if (L < 0 && F > lo) {
      L = k;
      margin = std::fmin(margin, std::fmin(std::fabs(F - lo), std::fabs(F_prev - lo)));
    }
    if (L >= 0 && F >= hi) {
      U = k;
      margin = std::fmin(margin, std::fmin(std::fabs(F - hi), std::fabs(F_prev - hi)));
      break;
    }
    p *= (double(j + r) * double(N - j)) / (double(j + 1) * double(N - j + m - r));
  }
  if (L < 0 || L == N + 1) return {-1, -1, std::fmin(margin, std::fabs(F - lo))};  // empty row: sentinel
  if (U < 0) {
    U = N + 1;  // the search stops at k = N+1
    margin = std::fmin(margin, std::fabs(F - hi));
  }
  return {L, std::min<std::int64_t>(U, N), margin};
}

py::tuple transport_windows_f64(std::int64_t n_real, std::int64_t n_synth, double beta) {
  const std::int64_t m = n_real + 1, N = n_synth;
  py::array_t<std::int64_t> L(m), U(m);
  py::array_t<double> margin(m);
  auto Lp = L.mutable_data();
  auto Up = U.mutable_data();
  auto Mp = margin.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(dynamic, 4)
    for (std::int64_t r = 1; r <= m; ++r) {
      const WindowRow row = window_row(N, m, r, beta);
      Lp[r - 1] = row.L;
      Up[r - 1] = row.U;
      Mp[r - 1] = row.margin;
    }
  }
  return py::make_tuple(L, U, margin);
}

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;
using IArray = py::array_t<std::int64_t, py::array::c_style>;

// Batched SPPI thresholds. real [B, ldr] with real_len [B]; synth [B, lds] with synth_len [B];
// alphas [A]; windows: L_flat/U_flat hold each group's table of length real_len[b]+1 starting
// at win_offset[b]. out [B, A]. Values are already validated (no NaN, sizes in range).
// Returns (status, group, which): status 0 = ok, 1 = NaN in group `group` of the real
// (which = 0) or synthetic (which = 1) scores. Data errors come back as values, and the
// Python wrapper raises: no C++ exception crosses the OpenMP region / released GIL.
template <typename T>
py::tuple sppi_thresholds(CArray<T> real, IArray real_len, CArray<T> synth, IArray synth_len,
                     CArray<double> alphas, IArray L_flat, IArray U_flat, IArray win_offset,
                     double top, CArray<T> out, bool simd) {
  const std::int64_t B = real.shape(0), ldr = real.shape(1), lds = synth.shape(1), A = alphas.shape(0);
  if (synth.shape(0) != B || real_len.shape(0) != B || synth_len.shape(0) != B ||
      win_offset.shape(0) != B || out.shape(0) != B || out.shape(1) != A)
    throw py::value_error("sppi_thresholds: inconsistent batch shapes");
  const T* rp = real.data();
  const T* sp = synth.data();
  const std::int64_t* rl = real_len.data();
  const std::int64_t* sl = synth_len.data();
  const double* ap = alphas.data();
  const std::int64_t* Lf = L_flat.data();
  const std::int64_t* Uf = U_flat.data();
  const std::int64_t* off = win_offset.data();
  T* op = out.mutable_data();
  const T t_top = static_cast<T>(top);
  const T neg_inf = -std::numeric_limits<T>::infinity();
  ErrorSlot err;
  {
  py::gil_scoped_release release;
  const bool parallel = B * (ldr + lds) >= kParallelMinElements && B > 1;
#pragma omp parallel if (parallel)
  {
    RowScratch<T> s;
    std::vector<T> real_vals, synth_vals;
    std::vector<std::int64_t> real_ranks, synth_ranks, r_plus(A), r_minus(A), syn_rank(A);
#pragma omp for schedule(dynamic, 8)
    for (std::int64_t b = 0; b < B; ++b) {
      if (err.failed()) continue;
      const std::int64_t n = rl[b], N = sl[b], m = n + 1;
      const std::int64_t* Lw = Lf + off[b];
      const std::int64_t* Uw = Uf + off[b];
      real_ranks.clear();
      synth_ranks.clear();
      for (std::int64_t a = 0; a < A; ++a) {
        const std::int64_t K = sppi_K(N, ap[a]);
        syn_rank[a] = sppi_synth_rank(N, ap[a]);
        r_plus[a] = last_rank_with_bound_at_most(Uw, m, K);
        r_minus[a] = last_rank_with_bound_at_most(Lw, m, K);
        if (syn_rank[a] >= 1) synth_ranks.push_back(syn_rank[a]);
        if (r_plus[a] >= 1 && r_plus[a] <= n) real_ranks.push_back(r_plus[a]);
        if (r_minus[a] >= 1 && r_minus[a] <= n) real_ranks.push_back(r_minus[a]);
      }
      // Select the needed order statistics straight from the read-only rows (histogram select).
      // A NaN anywhere in a group's valid scores is an error (detected by the min/max pass).
      real_vals.resize(real_ranks.empty() ? 1 : real_ranks.size());
      const std::int64_t probe = 1;
      if (!select_row(rp + b * ldr, n, real_ranks.empty() ? &probe : real_ranks.data(),
                      real_ranks.empty() ? 1 : (std::int64_t)real_ranks.size(), real_vals.data(), s, simd)) {
        err.set(kSelectNaN, b, 0);
        continue;
      }
      synth_vals.resize(synth_ranks.empty() ? 1 : synth_ranks.size());
      if (!select_row(sp + b * lds, N, synth_ranks.empty() ? &probe : synth_ranks.data(),
                      synth_ranks.empty() ? 1 : (std::int64_t)synth_ranks.size(), synth_vals.data(), s, simd,
                      b + 1 < B ? sp + (b + 1) * lds : nullptr)) {
        err.set(kSelectNaN, b, 1);
        continue;
      }
      std::size_t ri = 0, si = 0;
      for (std::int64_t a = 0; a < A; ++a) {
        const T q_syn = syn_rank[a] >= 1 ? synth_vals[si++] : t_top;
        T s_plus, s_minus;
        if (r_plus[a] == 0) s_plus = neg_inf; else if (r_plus[a] <= n) s_plus = real_vals[ri++]; else s_plus = t_top;
        if (r_minus[a] == 0) s_minus = neg_inf; else if (r_minus[a] <= n) s_minus = real_vals[ri++]; else s_minus = t_top;
        op[b * A + a] = sppi_clip(q_syn, s_minus, s_plus);
      }
    }
  }
  }
  const SelectError e = err.get();
  return py::make_tuple(e.status, e.row, e.value);
}

void register_sppi(py::module_& m) {
  m.def("transport_windows_f64", &transport_windows_f64, py::arg("n_real"), py::arg("n_synth"), py::arg("beta"),
        "SPPI windows (L, U, margin) for m = n_real+1 ranks; see specs/sppi.md §1b.");
  // simd=False forces the portable selection path (tests of the CPUs without AVX-512).
  m.def("sppi_thresholds_f32", &sppi_thresholds<float>, py::arg("real"), py::arg("real_len"), py::arg("synth"),
        py::arg("synth_len"), py::arg("alphas"), py::arg("L_flat"), py::arg("U_flat"), py::arg("win_offset"),
        py::arg("top"), py::arg("out"), py::arg("simd") = true);
  m.def("sppi_thresholds_f64", &sppi_thresholds<double>, py::arg("real"), py::arg("real_len"), py::arg("synth"),
        py::arg("synth_len"), py::arg("alphas"), py::arg("L_flat"), py::arg("U_flat"), py::arg("win_offset"),
        py::arg("top"), py::arg("out"), py::arg("simd") = true);
}

}  // namespace
}  // namespace synthperf

SYNTHPERF_REGISTER_BINDINGS(sppi, synthperf::register_sppi)
