// AVX-512 lane traits shared by the CPU core's SIMD files (csrc/cpu/*_avx512.cpp only; never
// included by CUDA code). Every function carries a target attribute, so the module is built for
// baseline x86-64 and the AVX-512 instructions run only after simd_select_supported().
#pragma once

#include <cstdint>

// -DSYNTHPERF_NO_SIMD builds the portable core only (what non-x86 / non-GNU compilers get).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(SYNTHPERF_NO_SIMD)
#define SYNTHPERF_SIMD_SELECT 1
#include <immintrin.h>
#if !defined(__clang__)
// GCC 12 reports the _mm512_undefined_*() placeholders inside the intrinsics as uninitialised
// once they are inlined into target("avx512f") functions (GCC PR 105593): not our variables.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

#ifdef SYNTHPERF_SIMD_SELECT
namespace synthperf {
namespace avx512 {

#define SP_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,popcnt")))
#define SP_INLINE static inline __attribute__((always_inline)) SP_TARGET

constexpr int kCountSelectMax = 32;  // rows/buckets up to this size are sorted or finished in registers

// Lane-width traits: the vector operations the passes need, for float64 and float32 rows.
struct F64 {
  using T = double;
  using V = __m512d;
  using M = __mmask8;
  static constexpr int W = 8;
  SP_INLINE M tail(std::int64_t r) { return r >= W ? M(0xFF) : M((1u << r) - 1); }
  SP_INLINE V loadu(const T* p) { return _mm512_loadu_pd(p); }
  SP_INLINE V load(M m, const T* p) { return _mm512_maskz_loadu_pd(m, p); }
  SP_INLINE V set1(T v) { return _mm512_set1_pd(v); }
  SP_INLINE V scaled(V x, V lo, V s) { return _mm512_mul_pd(_mm512_sub_pd(x, lo), s); }
  SP_INLINE V vmin(V a, V b) { return _mm512_min_pd(a, b); }
  SP_INLINE V vmax(V a, V b) { return _mm512_max_pd(a, b); }
  SP_INLINE V mmin(V a, M m, V b) { return _mm512_mask_min_pd(a, m, a, b); }
  SP_INLINE V mmax(V a, M m, V b) { return _mm512_mask_max_pd(a, m, a, b); }
  SP_INLINE M unord(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_UNORD_Q); }
  SP_INLINE M munord(M m, V a) { return _mm512_mask_cmp_pd_mask(m, a, a, _CMP_UNORD_Q); }
  SP_INLINE M lt(M m, V a, V b) { return _mm512_mask_cmp_pd_mask(m, a, b, _CMP_LT_OQ); }
  SP_INLINE M le(M m, V a, V b) { return _mm512_mask_cmp_pd_mask(m, a, b, _CMP_LE_OQ); }
  SP_INLINE M eq(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
  SP_INLINE M eq_masked(M m, V a, V b) { return _mm512_mask_cmp_pd_mask(m, a, b, _CMP_EQ_OQ); }
  SP_INLINE V mask_mov(V a, M m, V b) { return _mm512_mask_mov_pd(a, m, b); }
  SP_INLINE T rmin(V a) { return _mm512_reduce_min_pd(a); }
  SP_INLINE T rmax(V a) { return _mm512_reduce_max_pd(a); }
  SP_INLINE V blend(M m, V a, V b) { return _mm512_mask_blend_pd(m, a, b); }
  SP_INLINE M lt_all(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  SP_INLINE void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  SP_INLINE V load_or(V fill, M m, const T* p) { return _mm512_mask_loadu_pd(fill, m, p); }
  // r[0..8) rows -> r[0..8) columns (8x8 transpose: unpack, then two 128-bit shuffle rounds)
  SP_INLINE void transpose(V* r) {
    V t[8], u[8];
    for (int k = 0; k < 4; ++k) {
      t[2 * k] = _mm512_unpacklo_pd(r[2 * k], r[2 * k + 1]);      // elements 0,2,4,6 of rows 2k, 2k+1
      t[2 * k + 1] = _mm512_unpackhi_pd(r[2 * k], r[2 * k + 1]);  // elements 1,3,5,7
    }
    for (int h = 0; h < 2; ++h) {  // rows 4h..4h+3
      u[4 * h + 0] = _mm512_shuffle_f64x2(t[4 * h], t[4 * h + 2], 0x88);      // elements 0 | 4
      u[4 * h + 1] = _mm512_shuffle_f64x2(t[4 * h], t[4 * h + 2], 0xDD);      // elements 2 | 6
      u[4 * h + 2] = _mm512_shuffle_f64x2(t[4 * h + 1], t[4 * h + 3], 0x88);  // elements 1 | 5
      u[4 * h + 3] = _mm512_shuffle_f64x2(t[4 * h + 1], t[4 * h + 3], 0xDD);  // elements 3 | 7
    }
    r[0] = _mm512_shuffle_f64x2(u[0], u[4], 0x88);
    r[4] = _mm512_shuffle_f64x2(u[0], u[4], 0xDD);
    r[2] = _mm512_shuffle_f64x2(u[1], u[5], 0x88);
    r[6] = _mm512_shuffle_f64x2(u[1], u[5], 0xDD);
    r[1] = _mm512_shuffle_f64x2(u[2], u[6], 0x88);
    r[5] = _mm512_shuffle_f64x2(u[2], u[6], 0xDD);
    r[3] = _mm512_shuffle_f64x2(u[3], u[7], 0x88);
    r[7] = _mm512_shuffle_f64x2(u[3], u[7], 0xDD);
  }
  // W strided elements row[(first + l) * stride], l = 0..W-1
  SP_INLINE V gather_strided(const T* row, std::int64_t first, std::int64_t stride) {
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i ix = _mm512_mullo_epi64(_mm512_add_epi64(lane, _mm512_set1_epi64(first)),
                                          _mm512_set1_epi64(stride));
    return _mm512_i64gather_pd(ix, row, 8);
  }
  // clamp(trunc(t)) of W lanes stored as W uint16 (t already clamped to [0, nb-1])
  SP_INLINE void store_u16(std::uint16_t* p, V t) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi64_epi16(_mm512_cvttpd_epi64(t)));
  }
};

struct F32 {
  using T = float;
  using V = __m512;
  using M = __mmask16;
  static constexpr int W = 16;
  SP_INLINE M tail(std::int64_t r) { return r >= W ? M(0xFFFF) : M((1u << r) - 1); }
  SP_INLINE V loadu(const T* p) { return _mm512_loadu_ps(p); }
  SP_INLINE V load(M m, const T* p) { return _mm512_maskz_loadu_ps(m, p); }
  SP_INLINE V set1(T v) { return _mm512_set1_ps(v); }
  SP_INLINE V scaled(V x, V lo, V s) { return _mm512_mul_ps(_mm512_sub_ps(x, lo), s); }
  SP_INLINE V vmin(V a, V b) { return _mm512_min_ps(a, b); }
  SP_INLINE V vmax(V a, V b) { return _mm512_max_ps(a, b); }
  SP_INLINE V mmin(V a, M m, V b) { return _mm512_mask_min_ps(a, m, a, b); }
  SP_INLINE V mmax(V a, M m, V b) { return _mm512_mask_max_ps(a, m, a, b); }
  SP_INLINE M unord(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q); }
  SP_INLINE M munord(M m, V a) { return _mm512_mask_cmp_ps_mask(m, a, a, _CMP_UNORD_Q); }
  SP_INLINE M lt(M m, V a, V b) { return _mm512_mask_cmp_ps_mask(m, a, b, _CMP_LT_OQ); }
  SP_INLINE M le(M m, V a, V b) { return _mm512_mask_cmp_ps_mask(m, a, b, _CMP_LE_OQ); }
  SP_INLINE M eq(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  SP_INLINE M eq_masked(M m, V a, V b) { return _mm512_mask_cmp_ps_mask(m, a, b, _CMP_EQ_OQ); }
  SP_INLINE V mask_mov(V a, M m, V b) { return _mm512_mask_mov_ps(a, m, b); }
  SP_INLINE T rmin(V a) { return _mm512_reduce_min_ps(a); }
  SP_INLINE T rmax(V a) { return _mm512_reduce_max_ps(a); }
  SP_INLINE V blend(M m, V a, V b) { return _mm512_mask_blend_ps(m, a, b); }
  SP_INLINE M lt_all(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  SP_INLINE void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  SP_INLINE V load_or(V fill, M m, const T* p) { return _mm512_mask_loadu_ps(fill, m, p); }
  // r[0..16) rows -> r[0..16) columns (16x16 transpose: 32-bit and 64-bit unpacks, then a 4x4
  // transpose of 128-bit chunks)
  SP_INLINE void transpose(V* r) {
    V t[16], u[16];
    for (int k = 0; k < 8; ++k) {
      t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
      t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int g = 0; g < 4; ++g) {  // u[4g + e], chunk q: element 4q + e of rows 4g..4g+3
      const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
      const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
      u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
      u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
      u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
      u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int e = 0; e < 4; ++e) {  // column 4q + e = chunk q of u[e], u[4+e], u[8+e], u[12+e]
      const V v0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x44), v1 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xEE);
      const V v2 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x44);
      const V v3 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xEE);
      r[e] = _mm512_shuffle_f32x4(v0, v2, 0x88);
      r[4 + e] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
      r[8 + e] = _mm512_shuffle_f32x4(v1, v3, 0x88);
      r[12 + e] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
  }
  SP_INLINE V gather_strided(const T* row, std::int64_t first, std::int64_t stride) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i ix = _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(std::int32_t(first))),
                                          _mm512_set1_epi32(std::int32_t(stride)));
    return _mm512_i32gather_ps(ix, row, 4);
  }
  SP_INLINE void store_u16(std::uint16_t* p, V t) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(_mm512_cvttps_epi32(t)));
  }
};

}  // namespace avx512
}  // namespace synthperf
#endif  // SYNTHPERF_SIMD_SELECT
