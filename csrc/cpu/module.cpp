// pybind11 bindings of the CPU core: synthperf._native.
//
// The Python layer (python/synthperf/ops/*) validates shapes and dtypes and hands over
// C-contiguous numpy buffers; these functions re-check what they rely on, release the GIL
// for the work, and turn kernel status codes into ValueError with the argument named.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <sstream>
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

void raise_select_error(const SelectError& e, const char* x_name) {
  std::ostringstream os;
  switch (e.status) {
    case synthperf::kSelectNaN:
      os << x_name << " contains NaN in row " << e.row << " (within its valid length); "
         << "remove or impute NaN scores before selecting order statistics";
      break;
    case synthperf::kSelectRankOutOfRange:
      os << "ranks out of range for row " << e.row << ": got rank " << e.value
         << ", ranks are 1-based and must lie in [1, length of the row]";
      break;
    case synthperf::kSelectBadLength:
      os << "lengths[" << e.row << "] = " << e.value << " is invalid: each row needs between 1 and "
         << "x.shape[1] valid entries";
      break;
    default:
      os << "order statistics failed with status " << e.status;
  }
  throw py::value_error(os.str());
}

template <typename T, bool kBitwise>
void order_statistics(CArray<T> x, IArray lengths, IArray ranks, CArray<T> out) {
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
    if constexpr (kBitwise) {
      err = synthperf::order_statistics_bitwise_cpu<T>(xp, B, ld, lp, rp, R, A, op);
    } else {
      err = synthperf::order_statistics_cpu<T>(xp, B, ld, lp, rp, R, A, op);
    }
  }
  if (err.status != synthperf::kSelectOk) raise_select_error(err, "x");
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "synthperf C++ CPU core (OpenMP). Called through synthperf.ops; not a public API.";
  m.def("max_threads", &synthperf::max_threads, "OpenMP threads a parallel region will use.");
  m.def("set_num_threads", &synthperf::set_num_threads, py::arg("n"),
        "Pin the OpenMP thread count (benchmarks); same effect as OMP_NUM_THREADS.");
#ifdef SYNTHPERF_HAVE_OPENMP
  m.attr("has_openmp") = true;
#else
  m.attr("has_openmp") = false;
#endif
  m.def("order_statistics_f32", &order_statistics<float, false>, py::arg("x"), py::arg("lengths"),
        py::arg("ranks"), py::arg("out"));
  m.def("order_statistics_f64", &order_statistics<double, false>, py::arg("x"), py::arg("lengths"),
        py::arg("ranks"), py::arg("out"));
  m.def("order_statistics_bitwise_f32", &order_statistics<float, true>, py::arg("x"),
        py::arg("lengths"), py::arg("ranks"), py::arg("out"));
  m.def("order_statistics_bitwise_f64", &order_statistics<double, true>, py::arg("x"),
        py::arg("lengths"), py::arg("ranks"), py::arg("out"));
  synthperf::register_all_bindings(m);  // csrc/cpu/*.cpp groups (SPPI, flows, ...)
}
