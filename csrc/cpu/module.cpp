// pybind11 bindings of the CPU core: synthperf._native.
//
// The Python layer (python/synthperf/ops/*) validates shapes and dtypes and hands over
// C-contiguous numpy buffers; these functions re-check what they rely on, release the GIL
// for the work, and turn kernel status codes into ValueError with the argument named.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "synthperf/bindings_registry.h"
#include "synthperf/order_stats.h"
#include "synthperf/parallel.h"

namespace py = pybind11;
using synthperf::SelectError;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;
using IArray = py::array_t<std::int64_t, py::array::c_style>;

#define SP_CHECK(cond, msg)                          \
  do {                                               \
    if (!(cond)) throw py::value_error(std::string(msg)); \
  } while (0)

// Returns (status, row, value) (order_stats.h SelectStatus; 0 = ok). Data errors come back as
// values and synthperf.ops.order_stats raises ValueError: no C++ exception is thrown after
// the OpenMP region / released GIL. Shape errors (programming errors) still throw up front.
// kAlgo 0: histogram selection (AVX-512 passes when `simd` and supported), 1: bitwise twin,
// 2: radix twin.
template <typename T, int kAlgo>
py::tuple order_statistics(CArray<T> x, IArray lengths, IArray ranks, CArray<T> out, bool simd,
                           std::optional<double> zero_rank_value) {
  SP_CHECK(x.ndim() == 2, "x must be 2-D [B, n]");
  SP_CHECK(lengths.ndim() == 1 && lengths.shape(0) == x.shape(0), "lengths must have shape [B]");
  SP_CHECK(ranks.ndim() == 2 && (ranks.shape(0) == 1 || ranks.shape(0) == x.shape(0)),
           "ranks must have shape [1, A] or [B, A]");
  SP_CHECK(out.ndim() == 2 && out.shape(0) == x.shape(0) && out.shape(1) == ranks.shape(1),
           "out must have shape [B, A]");
  const std::int64_t B = x.shape(0), ld = x.shape(1), A = ranks.shape(1);
  const T* xp = x.data();
  const std::int64_t* lp = lengths.data();
  const std::int64_t* rp = ranks.data();
  T* op = out.mutable_data();
  const std::int64_t R = ranks.shape(0);
  SelectError err;
  {
    py::gil_scoped_release release;
    if constexpr (kAlgo == 1) {
      err = synthperf::order_statistics_bitwise_cpu<T>(xp, B, ld, lp, rp, R, A, op);
    } else if constexpr (kAlgo == 2) {
      err = synthperf::order_statistics_radix_cpu<T>(xp, B, ld, lp, rp, R, A, op);
    } else {
      const T fill = static_cast<T>(zero_rank_value.value_or(0.0));
      err = synthperf::order_statistics_cpu<T>(xp, B, ld, lp, rp, R, A, op, simd,
                                               zero_rank_value ? &fill : nullptr);
    }
  }
  return py::make_tuple(err.status, err.row, err.value);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "synthperf C++ CPU core (OpenMP). Called through synthperf.ops; not a public API.";
  m.def("max_threads", &synthperf::max_threads, "OpenMP threads a parallel region will use.");
  m.def("set_num_threads", &synthperf::set_num_threads, py::arg("n"),
        "Pin the OpenMP thread count (benchmarks); same effect as OMP_NUM_THREADS.");
  m.def("simd_select_supported", &synthperf::simd_select_supported,
        "True when the CPU backend's AVX-512 selection passes run on this CPU.");
#ifdef SYNTHPERF_HAVE_OPENMP
  m.attr("has_openmp") = true;
#else
  m.attr("has_openmp") = false;
#endif
  // Output arrays are noconvert: a non-C-contiguous or wrongly typed `out` raises TypeError
  // instead of being converted into a temporary that the kernel would fill and drop.
  // zero_rank_value: when given, rank 0 is allowed and yields it (split conformal's top).
  m.def("order_statistics_f32", &order_statistics<float, 0>, py::arg("x"), py::arg("lengths"),
        py::arg("ranks"), py::arg("out").noconvert(), py::arg("simd") = true, py::arg("zero_rank_value") = py::none());
  m.def("order_statistics_f64", &order_statistics<double, 0>, py::arg("x"), py::arg("lengths"),
        py::arg("ranks"), py::arg("out").noconvert(), py::arg("simd") = true, py::arg("zero_rank_value") = py::none());
  // The GPU algorithms' CPU twins (no SIMD variant).
#define SP_TWIN(name, T, algo)                                                             \
  m.def(name, [](CArray<T> x, IArray l, IArray r, CArray<T> o) {                           \
    return order_statistics<T, algo>(x, l, r, o, false, std::nullopt);                     \
  }, py::arg("x"), py::arg("lengths"), py::arg("ranks"), py::arg("out").noconvert())
  SP_TWIN("order_statistics_bitwise_f32", float, 1);
  SP_TWIN("order_statistics_bitwise_f64", double, 1);
  SP_TWIN("order_statistics_radix_f32", float, 2);
  SP_TWIN("order_statistics_radix_f64", double, 2);
#undef SP_TWIN
  synthperf::register_all_bindings(m);  // csrc/cpu/*.cpp groups (SPPI, flows, ...)
}
