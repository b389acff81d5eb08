// SPPI on the CPU (specs/sppi.md §1): transport windows and batched thresholds.
//
// transport_windows_f64: for each real rank r = 1..m (m = n+1), walk the BetaBinomial
//   (N, r, m+1-r) pmf with the recurrence of §1a, accumulating F_r(k) in double, and read
//   off L_r = min{k: F > beta/2}, U_r = min{k >= L_r: F >= 1-beta/2}, certified equal to
//   upstream's evaluation by a rigorous relative error bound, a double-double pass for the
//   rows near a threshold, and (status 2, very rare) the Python big-int evaluation.
// sppi_thresholds: per group, multi-select the needed real and synthetic order statistics
//   (no full sort) and apply the shared index math of device_math.h. OpenMP over groups.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "synthperf/bindings_registry.h"
#include "synthperf/device_math.h"
#include "synthperf/parallel.h"
#include "synthperf/selection.h"

namespace py = pybind11;

namespace synthperf {
namespace {

// ---------------------------------------------------------------------------------------
// Transport windows, exactly as upstream evaluates them (spec §1a-§1b): upstream sums the
// correctly rounded doubles fl(P_r(k)) sequentially from k = 1, so F_up(k) is a specific
// double. We reproduce its two decisions (F > beta/2, F >= 1-beta/2) without big integers:
//
// 1. Fast pass (double recurrence, every row). Term j = k-1 carries at most 2r + 4j + 2
//    roundings (start product, then per step two products, one division, one multiply;
//    scaling by powers of two is exact), so |p~_j - P_j| <= rho_j P_j, rho_j = gamma(2r+4j+2).
//    Both sums are sequential, so |F(k) - F_up(k)| <= E(k) = (rho + u) S + gamma_k (S~ + S_up)
//    + (skipped tiny terms) -- a rigorous bound, relative to F. A decision is certain when F
//    is farther than E from the threshold at the decisive buckets (L, L-1, U, U-1; F_up is
//    monotone in k, so the other buckets follow).
// 2. Rows that are not certain are redone in double-double (error <= 64 u^2 per operation,
//    a generous multiple of the published bounds for these algorithms, Joldes-Muller-Popescu
//    2017): each term's correct rounding fl(P_j) is then known, or known to lie in
//    {t, next(t)}; summing the lower and the upper candidates sequentially brackets F_up
//    exactly (rounded addition is monotone), so equal (L, U) from both brackets are exact.
// 3. Rows still open (probability ~ 1e-7 per row) return status 2; Python recomputes them
//    with big integers (windows.exact_window_row).
constexpr double kU = 0x1p-53;  // unit roundoff of double

double gamma_n(double n) {
  const double nu = n * kU;
  return nu < 0.5 ? nu / (1.0 - nu) : 1.0;
}

struct WindowRow {
  std::int64_t L, U;
  int status;  // 0: fast pass certain, 1: settled in double-double, 2: needs the big-int evaluation
};

// Rescale x (value x 2^e) into [2^-600, 2^600]; exact.
inline void renorm(double& x, std::int64_t& e) {
  if (x != 0.0 && (x < 0x1p-600 || x > 0x1p600)) {
    int k = 0;
    x = std::frexp(x, &k);
    e += k;
  }
}

// Rigorous bound on |F(k) - F_up(k)| after k terms (see 1. above).
double fast_error_bound(double F, std::int64_t k, std::int64_t r) {
  const double rho = gamma_n(double(2 * r + 4 * (k - 1) + 2));
  const double g = gamma_n(double(k));
  const double tiny = double(k) * 0x1p-999;  // skipped terms (< 2^-1000 each) and subnormal rounding
  if (rho > 0.01 || g > 0.01) return std::numeric_limits<double>::infinity();
  const double S = (F + tiny) * (1.0 + 4.0 * (rho + g + kU));  // bounds S~, S and S_up
  return 1.01 * (rho + kU + 2.1 * g) * S + tiny;
}

WindowRow window_row_fast(std::int64_t N, std::int64_t m, std::int64_t r, double beta) {
  const double lo = beta / 2.0, hi = 1.0 - beta / 2.0;
  auto ratio = [&](std::int64_t j) {
    return (double(j + r) * double(N - j)) / (double(j + 1) * double(N - j + m - r));
  };
  double x = 1.0;  // p_j = x 2^e, starting at p_0 = prod_{i<r} (m-i)/(N+m-i)
  std::int64_t e = 0, j = 0;
  for (std::int64_t i = 0; i < r; ++i) {
    x *= double(m - i) / double(N + m - i);
    renorm(x, e);
  }
  // Phase A: terms below 2^-1000 (they only enter the error bound's `tiny` part): walk on.
  for (; j <= N; ++j) {
    if (x != 0.0 && e >= -1700 && std::ilogb(x) + e >= -1000) break;
    x *= ratio(j);
    renorm(x, e);
  }
  double p = j <= N ? std::ldexp(x, int(e)) : 0.0;  // exact: a normal double
  double F = 0.0, F_prev = 0.0;
  std::int64_t L = -1, U = -1;
  bool certain = true;
  auto clear = [&](double Fk, std::int64_t k, double thr) { return std::fabs(Fk - thr) > fast_error_bound(Fk, k, r); };
  // Phase B: the plain recurrence (errors as counted in fast_error_bound).
  for (; j <= N; ++j) {
    const std::int64_t k = j + 1;
    F_prev = F;
    F += p;
    if (L < 0 && F > lo) {
      L = k;
      if (k >= 2 && !clear(F_prev, k - 1, lo)) certain = false;  // F_up(L-1) <= lo
      if (L == N + 1) break;                                      // empty row: only L >= N+1 matters
      if (!clear(F, k, lo)) certain = false;                      // F_up(L) > lo
    }
    if (L >= 0 && F >= hi) {
      U = k;
      if (!clear(F, k, hi)) certain = false;                        // F_up(U) >= hi
      if (U > L && !clear(F_prev, k - 1, hi)) certain = false;      // F_up(U-1) < hi
      break;
    }
    p *= ratio(j);
    if (p < 0x1p-1000 && j < N) certain = false;  // left the normal range: the bound no longer applies
  }
  if (L < 0) {  // never above lo: F_up(N+1) <= lo must be certain
    if (!clear(F, N + 1, lo)) certain = false;
    return {-1, -1, certain ? 0 : 2};
  }
  if (L == N + 1) return {-1, -1, certain ? 0 : 2};
  if (U < 0) {  // the search stops at k = N+1: F_up(N+1) < hi must be certain
    if (!clear(F, N + 1, hi)) certain = false;
    U = N + 1;
  }
  return {L, std::min<std::int64_t>(U, N), certain ? 0 : 2};
}

// ---- double-double (hi + lo, |lo| <= ulp(hi)/2); no FMA needed (Dekker products) ----
struct DD {
  double hi, lo;
};
#define SP_AI inline __attribute__((always_inline))
SP_AI DD fast_two_sum(double a, double b) {
  const double s = a + b;
  return {s, b - (s - a)};
}
SP_AI DD two_sum(double a, double b) {
  const double s = a + b, bb = s - a;
  return {s, (a - (s - bb)) + (b - bb)};
}
SP_AI void split(double a, double& h, double& l) {
  const double t = 134217729.0 * a;  // 2^27 + 1
  h = t - (t - a);
  l = a - h;
}
// kFma: exact product error by a hardware FMA (only inside functions built for the "fma"
// target, chosen at run time); else Dekker's split product (no contraction happens there:
// without the fma target the compiler emits no FMA instructions).
template <bool kFma>
SP_AI DD two_prod(double a, double b) {
  const double p = a * b;
  if constexpr (kFma) {
    return {p, __builtin_fma(a, b, -p)};
  } else {
    double ah, al, bh, bl;
    split(a, ah, al);
    split(b, bh, bl);
    return {p, ((ah * bh - p) + ah * bl + al * bh) + al * bl};
  }
}
SP_AI DD dd_add(DD a, DD b) {
  DD s = two_sum(a.hi, b.hi), t = two_sum(a.lo, b.lo);
  s.lo += t.hi;
  s = fast_two_sum(s.hi, s.lo);
  s.lo += t.lo;
  return fast_two_sum(s.hi, s.lo);
}
SP_AI DD dd_neg(DD a) { return {-a.hi, -a.lo}; }
template <bool kFma>
SP_AI DD dd_mul(DD a, DD b) {
  DD p = two_prod<kFma>(a.hi, b.hi);
  p.lo += a.hi * b.lo + a.lo * b.hi;
  return fast_two_sum(p.hi, p.lo);
}
template <bool kFma>
SP_AI DD dd_mul_d(DD a, double b) {
  DD p = two_prod<kFma>(a.hi, b);
  p.lo += a.lo * b;
  return fast_two_sum(p.hi, p.lo);
}
template <bool kFma>
SP_AI DD dd_div(DD a, DD b) {  // the QD library's accurate division (three quotient digits)
  const double q1 = a.hi / b.hi;
  DD r = dd_add(a, dd_neg(dd_mul_d<kFma>(b, q1)));
  const double q2 = r.hi / b.hi;
  r = dd_add(r, dd_neg(dd_mul_d<kFma>(b, q2)));
  const double q3 = r.hi / b.hi;
  const DD q = fast_two_sum(q1, q2);
  DD s = two_sum(q.hi, q3);
  s.lo += q.lo;
  return fast_two_sum(s.hi, s.lo);
}
template <bool kFma>
SP_AI DD dd_div_exact_d(double a, double b) {  // a / b for doubles a, b (QD's dd / d step)
  const double q1 = a / b;
  const DD p = two_prod<kFma>(q1, b);
  DD t = two_sum(a, -p.hi);
  t.lo -= p.lo;
  const double q2 = (t.hi + t.lo) / b;
  return fast_two_sum(q1, q2);
}
SP_AI DD dd_from_int(std::int64_t v) {  // exact for |v| < 2^62
  const double h = double(v);
  return {h, double(v - std::int64_t(h))};
}
SP_AI void dd_renorm(DD& x, std::int64_t& e) {
  if (x.hi != 0.0 && (std::fabs(x.hi) < 0x1p-600 || std::fabs(x.hi) > 0x1p600)) {
    int k = 0;
    x.hi = std::frexp(x.hi, &k);
    x.lo = std::ldexp(x.lo, -k);
    e += k;
  }
}
constexpr double kDDOpError = 64.0 * kU * kU;  // per dd multiply or divide (generous)

// The correctly rounded double of the value (x 2^e) lies in [*t_lo, *t_hi] given a relative error
// bound rho on the value; t_lo == t_hi when it is certain.
inline void rounding_candidates(DD x, std::int64_t e, double rho, double* t_lo, double* t_hi) {
  if (x.hi == 0.0 || std::ilogb(x.hi) + e < -900) {  // tiny (< 2^-899 even with the error): [0, 2^-899]
    *t_lo = 0.0;
    *t_hi = 0x1p-899;
    return;
  }
  const double th = std::ldexp(x.hi, int(e)), tl = std::ldexp(x.lo, int(e));
  const double td = 2.0 * rho * th;
  const double up = std::nextafter(th, std::numeric_limits<double>::infinity());
  const double dn = std::nextafter(th, 0.0);
  *t_lo = (tl - td) > -(th - dn) / 2 ? th : dn;
  *t_hi = (tl + td) < (up - th) / 2 ? th : up;
}

template <bool kFma>
SP_AI WindowRow window_row_dd_impl(std::int64_t N, std::int64_t m, std::int64_t r, double beta) {
  if (N + m >= (std::int64_t(1) << 31)) return {-1, -1, 2};  // int64 products would overflow
  const double lo = beta / 2.0, hi = 1.0 - beta / 2.0;
  DD x{1.0, 0.0};
  std::int64_t e = 0, ops = 0;
  for (std::int64_t i = 0; i < r; ++i) {
    x = dd_div<kFma>(dd_mul<kFma>(x, dd_from_int(m - i)), dd_from_int(N + m - i));
    dd_renorm(x, e);
    ops += 2;
  }
  constexpr std::int64_t kExactInt = std::int64_t(1) << 53;
  const std::int64_t none = N + 2;
  std::int64_t La = none, Lb = none, Ua = none, Ub = none;  // from the upper / lower bracket
  double F_lo = 0.0, F_hi = 0.0;
  for (std::int64_t j = 0; j <= N; ++j) {
    const std::int64_t k = j + 1;
    double t_lo, t_hi;
    rounding_candidates(x, e, 1.01 * double(ops + 1) * kDDOpError, &t_lo, &t_hi);
    F_lo += t_lo;
    F_hi += t_hi;
    if (La == none && F_hi > lo) La = k;
    if (Lb == none && F_lo > lo) Lb = k;
    if (Ua == none && F_hi >= hi) Ua = k;
    if (Ub == none && F_lo >= hi) Ub = k;
    if (Lb != none && Ub != none) break;  // both brackets decided
    const std::int64_t num = (j + r) * (N - j), den = (j + 1) * (N - j + m - r);
    if (num < kExactInt && den < kExactInt)  // ratio off the dependency chain, then one dd multiply
      x = dd_mul<kFma>(x, dd_div_exact_d<kFma>(double(num), double(den)));
    else
      x = dd_div<kFma>(dd_mul<kFma>(x, dd_from_int(num)), dd_from_int(den));
    dd_renorm(x, e);
    ops += 2;
  }
  // L_up in [La, Lb]; U_raw = max(L_up, first k with F_up >= hi) in [max(La, Ua), max(Lb, Ub)].
  auto window = [&](std::int64_t Lk, std::int64_t Uk) -> std::pair<std::int64_t, std::int64_t> {
    if (Lk >= N + 1) return {-1, -1};
    const std::int64_t U_raw = std::min<std::int64_t>(std::max(Lk, Uk), N + 1);
    return {Lk, std::min<std::int64_t>(U_raw, N)};
  };
  const auto a = window(La, Ua), b = window(Lb, Ub);
  if (a != b) return {-1, -1, 2};
  return {a.first, a.second, 1};
}

WindowRow window_row_dd_portable(std::int64_t N, std::int64_t m, std::int64_t r, double beta) {
  return window_row_dd_impl<false>(N, m, r, beta);
}
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("fma"))) WindowRow window_row_dd_fma(std::int64_t N, std::int64_t m, std::int64_t r, double beta) {
  return window_row_dd_impl<true>(N, m, r, beta);
}
WindowRow window_row_dd(std::int64_t N, std::int64_t m, std::int64_t r, double beta) {
  static const bool has_fma = __builtin_cpu_supports("fma");
  return has_fma ? window_row_dd_fma(N, m, r, beta) : window_row_dd_portable(N, m, r, beta);
}
#else
WindowRow window_row_dd(std::int64_t N, std::int64_t m, std::int64_t r, double beta) {
  return window_row_dd_portable(N, m, r, beta);
}
#endif

// mode 0: fast pass, double-double for the uncertain rows; mode 1: double-double for every
// row (tests); mode 2: the same with the portable (no-FMA) double-double (tests). Returns (L, U, status) with status per row as in WindowRow.
py::tuple transport_windows_f64(std::int64_t n_real, std::int64_t n_synth, double beta, int mode) {
  if (mode < 0 || mode > 2) throw py::value_error("transport_windows_f64: mode must be 0, 1 or 2");
  if (n_real < 1 || n_synth < n_real + 2) throw py::value_error("transport_windows_f64: need 1 <= n_real, n_synth >= n_real + 2");
  if (!(beta > 0.0 && beta < 1.0)) throw py::value_error("transport_windows_f64: beta must lie in (0, 1)");
  const std::int64_t m = n_real + 1, N = n_synth;
  py::array_t<std::int64_t> L(m), U(m);
  py::array_t<std::int8_t> status(m);
  auto Lp = L.mutable_data();
  auto Up = U.mutable_data();
  auto Sp = status.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t r = 1; r <= m; ++r) {
      WindowRow row = mode != 0 ? WindowRow{-1, -1, 2} : window_row_fast(N, m, r, beta);
      if (row.status != 0) row = mode == 2 ? window_row_dd_portable(N, m, r, beta) : window_row_dd(N, m, r, beta);
      Lp[r - 1] = row.L;
      Up[r - 1] = row.U;
      Sp[r - 1] = static_cast<std::int8_t>(row.status);
    }
  }
  return py::make_tuple(L, U, status);
}

// Conformal rank tables through the one shared helper (device_math.h): kind 0 = split
// conformal ranks for sizes n, 1 = SPPI K for sizes N, 2 = SPPI synthetic rank for sizes N.
// sizes [P], alphas [A] -> int64 [P, A].
py::array_t<std::int64_t> conformal_rank_table(int kind, py::array_t<std::int64_t, py::array::c_style> sizes,
                                               py::array_t<double, py::array::c_style> alphas, bool upstream) {
  if (kind < 0 || kind > 2) throw py::value_error("conformal_rank_table: kind must be 0, 1 or 2");
  if (sizes.ndim() != 1 || alphas.ndim() != 1)
    throw py::value_error("conformal_rank_table: sizes and alphas must be 1-D");
  const std::int64_t P = sizes.shape(0), A = alphas.shape(0);
  py::array_t<std::int64_t> out({P, A});
  const std::int64_t* sp = sizes.data();
  const double* ap = alphas.data();
  std::int64_t* op = out.mutable_data();
  for (std::int64_t p = 0; p < P; ++p) {
    if (sp[p] < 1 || sp[p] >= (std::int64_t(1) << 62)) throw py::value_error("conformal_rank_table: sizes must lie in [1, 2^62)");
    for (std::int64_t a = 0; a < A; ++a) {
      if (!(ap[a] > 0.0 && ap[a] < 1.0)) throw py::value_error("conformal_rank_table: alphas must lie in (0, 1)");
      op[p * A + a] = kind == 0 ? split_conformal_rank(sp[p], ap[a], upstream)
                    : kind == 1 ? sppi_K(sp[p], ap[a], upstream) : sppi_synth_rank(sp[p], ap[a], upstream);
    }
  }
  return out;
}

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;
using IArray = py::array_t<std::int64_t, py::array::c_style>;

// Batched SPPI thresholds. real [B, ldr] with real_len [B]; synth [B, lds] with synth_len [B];
// alphas [A]; windows: L_flat/U_flat hold each group's table of length real_len[b]+1 starting
// at win_offset[b]. out [B, A]. Python validates first (synthperf.ops.sppi); the sizes,
// offsets and alphas are checked again here (cheaply, before any index is formed) and raise
// ValueError; NaN is found in the selection pass.
// Returns (status, group, which): status 0 = ok, 1 = NaN in group `group` of the real
// (which = 0) or synthetic (which = 1) scores. Data errors come back as values, and the
// Python wrapper raises: no C++ exception crosses the OpenMP region / released GIL.
template <typename T>
py::tuple sppi_thresholds(CArray<T> real, IArray real_len, CArray<T> synth, IArray synth_len,
                     CArray<double> alphas, IArray L_flat, IArray U_flat, IArray win_offset,
                     double top, CArray<T> out, bool simd, bool upstream) {
  if (real.ndim() != 2 || synth.ndim() != 2 || out.ndim() != 2 || alphas.ndim() != 1 || real_len.ndim() != 1 ||
      synth_len.ndim() != 1 || win_offset.ndim() != 1)
    throw py::value_error("sppi_thresholds: real, synth, out must be 2-D and alphas, real_len, synth_len, "
                          "win_offset 1-D");
  const std::int64_t B = real.shape(0), ldr = real.shape(1), lds = synth.shape(1), A = alphas.shape(0);
  if (synth.shape(0) != B || real_len.shape(0) != B || synth_len.shape(0) != B ||
      win_offset.shape(0) != B || out.shape(0) != B || out.shape(1) != A)
    throw py::value_error("sppi_thresholds: inconsistent batch shapes");
  if (L_flat.ndim() != 1 || U_flat.ndim() != 1 || L_flat.shape(0) != U_flat.shape(0))
    throw py::value_error("sppi_thresholds: L_flat and U_flat must be 1-D of the same length");
  const std::int64_t W = L_flat.shape(0);
  {  // every index the loop below forms, checked once (O(B)): no read past any buffer
    const std::int64_t* rl0 = real_len.data();
    const std::int64_t* sl0 = synth_len.data();
    const std::int64_t* off0 = win_offset.data();
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t n = rl0[b], N = sl0[b], o = off0[b];
      if (n < 1 || n > ldr)
        throw py::value_error("sppi_thresholds: real_len[" + std::to_string(b) + "] = " + std::to_string(n) +
                              " must lie in [1, " + std::to_string(ldr) + "] (the width of real)");
      if (N < n + 2 || N > lds)
        throw py::value_error("sppi_thresholds: synth_len[" + std::to_string(b) + "] = " + std::to_string(N) +
                              " must lie in [real_len + 2, " + std::to_string(lds) + "] (the width of synth)");
      if (o < 0 || o > W - (n + 1))
        throw py::value_error("sppi_thresholds: win_offset[" + std::to_string(b) + "] = " + std::to_string(o) +
                              " leaves no window table of real_len + 1 = " + std::to_string(n + 1) +
                              " entries inside L_flat/U_flat (length " + std::to_string(W) + ")");
    }
    const double* ap0 = alphas.data();
    for (std::int64_t a = 0; a < A; ++a)
      if (!(ap0[a] > 0.0 && ap0[a] < 1.0)) throw py::value_error("sppi_thresholds: alphas must lie in (0, 1)");
  }
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
        const std::int64_t K = sppi_K(N, ap[a], upstream);
        syn_rank[a] = sppi_synth_rank(N, ap[a], upstream);
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
        py::arg("mode") = 0,
        "SPPI windows (L, U, status) for m = n_real+1 ranks; see specs/sppi.md §1b. status 2 rows need "
        "the big-int evaluation; mode=1 runs the double-double pass on every row.");
  m.def("conformal_rank_table", &conformal_rank_table, py::arg("kind"), py::arg("sizes"), py::arg("alphas"),
        py::arg("upstream") = false,
        "Conformal ranks [P, A] (kind 0 split conformal, 1 SPPI K, 2 SPPI synthetic rank); exact unless upstream.");
  // simd=False forces the portable selection path (tests of the CPUs without AVX-512).
  m.def("sppi_thresholds_f32", &sppi_thresholds<float>, py::arg("real"), py::arg("real_len"), py::arg("synth"),
        py::arg("synth_len"), py::arg("alphas"), py::arg("L_flat"), py::arg("U_flat"), py::arg("win_offset"),
        py::arg("top"), py::arg("out").noconvert(), py::arg("simd") = true, py::arg("upstream") = false);
  m.def("sppi_thresholds_f64", &sppi_thresholds<double>, py::arg("real"), py::arg("real_len"), py::arg("synth"),
        py::arg("synth_len"), py::arg("alphas"), py::arg("L_flat"), py::arg("U_flat"), py::arg("win_offset"),
        py::arg("top"), py::arg("out").noconvert(), py::arg("simd") = true, py::arg("upstream") = false);
}

}  // namespace
}  // namespace synthperf

SYNTHPERF_REGISTER_BINDINGS(sppi, synthperf::register_sppi)
