// Device-independent math shared by the C++ CPU core (g++) and the CUDA kernels (nvcc).
//
// Everything here is a small inline function marked SP_HD (= __host__ __device__ under
// nvcc, nothing under g++), so the CPU test suite exercises exactly the code the GPU runs.
//
// Contents
//   1. Order-preserving integer keys for IEEE floats (radix/bitwise selection).
//   2. Bitwise selection ("binary lifting" on keys, the Triton kernel): the k-th smallest
//      key is the largest t with #{key < t} < k, one counting pass per key bit; and
//      radix-digit selection (the CUDA kernel): 8 bits per pass from a shared histogram.
//   3. Split-conformal and SPPI index math (specs/sppi.md §1c): exact integer ranks by
//      default, upstream's double expressions (bit parity with upstream) on request.
#pragma once

#include <cstdint>
#include <cmath>

#if defined(__CUDACC__)
#define SP_HD __host__ __device__ __forceinline__
#else
#define SP_HD inline
#endif

namespace synthperf {

// ---------------------------------------------------------------------------------------
// 1. Order-preserving keys: a < b (as floats, no NaN)  <=>  key(a) < key(b) (as unsigned).
//    Negative floats have every bit flipped; non-negative floats get the sign bit set.
//    -0.0 maps just below +0.0, which is harmless: both hold the same value.
// ---------------------------------------------------------------------------------------
template <typename T> struct KeyTraits;

template <> struct KeyTraits<float> {
  using Key = std::uint32_t;
  static constexpr int kBits = 32;
};
template <> struct KeyTraits<double> {
  using Key = std::uint64_t;
  static constexpr int kBits = 64;
};

SP_HD std::uint32_t ordered_key_from_bits(std::uint32_t bits) {
  const std::uint32_t sign = bits >> 31;
  return bits ^ (sign ? 0xFFFFFFFFu : 0x80000000u);
}
SP_HD std::uint64_t ordered_key_from_bits(std::uint64_t bits) {
  const std::uint64_t sign = bits >> 63;
  return bits ^ (sign ? 0xFFFFFFFFFFFFFFFFull : 0x8000000000000000ull);
}
SP_HD std::uint32_t bits_from_ordered_key(std::uint32_t key) {
  const std::uint32_t top = key >> 31;  // set for non-negative values
  return key ^ (top ? 0x80000000u : 0xFFFFFFFFu);
}
SP_HD std::uint64_t bits_from_ordered_key(std::uint64_t key) {
  const std::uint64_t top = key >> 63;
  return key ^ (top ? 0x8000000000000000ull : 0xFFFFFFFFFFFFFFFFull);
}

// ---------------------------------------------------------------------------------------
// 2. Bitwise selection. Start with ans = 0 and visit the bits from the most significant:
//      t = ans | (1 << bit);   if count_less(t) < k then ans = t.
//    After the last bit, ans = the k-th smallest key (1-based k). count_less(t) is the
//    number of valid keys strictly below t; the caller computes it (a loop on the CPU,
//    a block reduction on the GPU) and lifting_step applies the decision.
// ---------------------------------------------------------------------------------------
template <typename Key>
SP_HD Key lifting_candidate(Key ans, int bit) {
  return ans | (Key(1) << bit);
}
template <typename Key>
SP_HD Key lifting_step(Key ans, int bit, std::int64_t count_less_than_candidate, std::int64_t k) {
  return count_less_than_candidate < k ? lifting_candidate(ans, bit) : ans;
}

// ---------------------------------------------------------------------------------------
// 2b. Radix-digit selection (what the CUDA kernel runs): 8-bit digits from the top. At each
//     pass only keys whose already-decided high digits equal `prefix` take part; a
//     256-bin histogram of their next digit is cumulated until it reaches k, which fixes
//     that digit, and k becomes the rank inside the chosen bin. kBits/8 passes per rank.
//     radix_find_digit scans a slice of bins (the whole histogram on the CPU, 8 bins per
//     warp lane on the GPU after an exclusive scan gives `before`).
// ---------------------------------------------------------------------------------------
constexpr int kRadixBits = 8;
constexpr int kRadixBins = 1 << kRadixBits;

template <typename Key>
SP_HD bool radix_prefix_matches(Key key, Key prefix, Key decided_mask) {
  return (key & decided_mask) == prefix;
}
template <typename Key>
SP_HD unsigned radix_digit(Key key, int shift) {
  return static_cast<unsigned>((key >> shift) & Key(kRadixBins - 1));
}
// First bin j in counts[0..nbins) with before + counts[0] + ... + counts[j] >= k; writes the
// rank inside that bin to *k_in_bin. Returns -1 when the slice ends first (k beyond it).
SP_HD int radix_find_digit(const unsigned* counts, int nbins, std::int64_t before, std::int64_t k,
                           std::int64_t* k_in_bin) {
  std::int64_t cum = before;
  for (int j = 0; j < nbins; ++j) {
    const std::int64_t next = cum + counts[j];
    if (cum < k && next >= k) {
      *k_in_bin = k - cum;
      return j;
    }
    cum = next;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------
// 3. Conformal index math (specs/sppi.md §1c and §3). All indices are 1-based ranks.
// ---------------------------------------------------------------------------------------

// Two modes, chosen by `upstream` (one helper for every caller: the C++ core, and through
// _native.conformal_rank_table the Python reference, the bounds and the GPU host math):
//   exact (default): the ranks as the spec defines them, ceil((1-a) M) for the double alpha
//     taken as the exact binary rational it is: M - floor(a M), in integer arithmetic
//     (a = mant 2^(e-53), a 53x64-bit product, a shift). No float rounding at all.
//   upstream: upstream's double expressions, evaluated in exactly upstream's order. They
//     round up by one for some (M, alpha) where (1-a)M is an integer (spec §1d: N=24,
//     alpha=0.2 gives K=21 instead of 20); needed only for bit parity with upstream runs.

// floor(alpha * M) exactly, for a double alpha in [0, 1) and an integer 0 <= M < 2^63.
SP_HD std::int64_t floor_alpha_times(double alpha, std::int64_t M) {
  if (!(alpha > 0.0) || M <= 0) return 0;
  int e = 0;
  const double f = frexp(alpha, &e);  // alpha = f 2^e, f in [0.5, 1), e <= 0
  const std::uint64_t mant = static_cast<std::uint64_t>(ldexp(f, 53));  // exact: alpha = mant 2^(e-53)
  const int shift = 53 - e;  // >= 53
  if (shift >= 128) return 0;  // mant M < 2^117 <= 2^shift
  const unsigned __int128 prod = static_cast<unsigned __int128>(mant) * static_cast<std::uint64_t>(M);
  return static_cast<std::int64_t>(prod >> shift);
}

// ceil((1 - alpha) M) = M - floor(alpha M), exactly.
SP_HD std::int64_t ceil_one_minus_alpha_times(double alpha, std::int64_t M) {
  return M - floor_alpha_times(alpha, M);
}

// Split conformal on n scores: rank ceil((1-a)(n+1)), or 0 ("trivial": threshold = top) when
// it exceeds n. Upstream: level = (1.0-alpha)*(1.0+1.0/n), 0 when level > 1, else
// ceil(level*n) (upstream's 0-based index ceil(level*n)-1, plus one).
SP_HD std::int64_t split_conformal_rank(std::int64_t n, double alpha, bool upstream = false) {
  if (upstream) {
    const double level = (1.0 - alpha) * (1.0 + 1.0 / static_cast<double>(n));
    if (level > 1.0) return 0;
    return static_cast<std::int64_t>(ceil(level * static_cast<double>(n)));
  }
  const std::int64_t k = ceil_one_minus_alpha_times(alpha, n + 1);
  return k > n ? 0 : k;
}

// SPPI synthetic quantities for N synthetic scores (spec §1c):
//   K = ceil((1-a)(N+1));  synthetic rank K+1, or 0 (= top) when K+1 > N.
//   upstream: la = (1-a)(1+1/N), K = ceil(N la); la+ = (1-a)(1+1/N+1/(N(1-a))),
//   synthetic rank ceil(N la+), or 0 when la+ > 1 (mathematically the same integers).
SP_HD std::int64_t sppi_K(std::int64_t N, double alpha, bool upstream = false) {
  if (upstream) {
    const double Nd = static_cast<double>(N);
    const double la = (1.0 - alpha) * (1.0 + 1.0 / Nd);
    return static_cast<std::int64_t>(ceil(Nd * la));
  }
  return ceil_one_minus_alpha_times(alpha, N + 1);
}
SP_HD std::int64_t sppi_synth_rank(std::int64_t N, double alpha, bool upstream = false) {
  if (upstream) {
    const double Nd = static_cast<double>(N);
    const double la_plus = (1.0 - alpha) * (1.0 + 1.0 / Nd + 1.0 / (Nd * (1.0 - alpha)));
    if (la_plus > 1.0) return 0;
    return static_cast<std::int64_t>(ceil(Nd * la_plus));
  }
  const std::int64_t k = sppi_K(N, alpha, false) + 1;
  return k > N ? 0 : k;
}

// r = max{r in 1..m : W[r-1] <= K} for a window bound W that is non-decreasing except for
// a suffix of -1 sentinels (empty windows, specs/sppi.md §1b), which count as satisfied.
// A sentinel in the last row therefore gives r = m. Returns 0 when no rank qualifies
// (upstream crashes there; callers define s = -inf). Binary search: O(log m).
SP_HD std::int64_t last_rank_with_bound_at_most(const std::int64_t* W, std::int64_t m, std::int64_t K) {
  if (m <= 0) return 0;
  if (W[m - 1] < 0 || W[m - 1] <= K) return m;
  std::int64_t lo = 0, hi = m - 1;  // answer in [lo, hi]; ranks 1..lo qualify
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo + 1) / 2;  // candidate rank, 1-based
    if (W[mid - 1] <= K) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// SPPI clip (specs/sppi.md §1c): q = max(min(q_syn, s_minus), s_plus).
template <typename T>
SP_HD T sppi_clip(T q_syn, T s_minus, T s_plus) {
  const T upper = q_syn < s_minus ? q_syn : s_minus;
  return upper > s_plus ? upper : s_plus;
}

}  // namespace synthperf
