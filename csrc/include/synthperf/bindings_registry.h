// Registration of binding groups into synthperf._native.
//
// Each csrc/cpu/<topic>.cpp that exposes functions defines
//     static void register_<topic>(pybind11::module_& m) { m.def(...); }
//     SYNTHPERF_REGISTER_BINDINGS(<topic>, register_<topic>)
// and module.cpp calls every registered group (sorted by name) when the module is
// imported. Adding a kernel therefore never edits module.cpp. The registry is filled by
// static initialisers at library load and only read afterwards.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace synthperf {

using RegisterBindingsFn = void (*)(pybind11::module_&);

inline std::vector<std::pair<std::string, RegisterBindingsFn>>& bindings_registry() {
  static std::vector<std::pair<std::string, RegisterBindingsFn>> groups;
  return groups;
}

struct BindingsRegistrar {
  BindingsRegistrar(const char* name, RegisterBindingsFn fn) { bindings_registry().emplace_back(name, fn); }
};

inline void register_all_bindings(pybind11::module_& m) {
  auto groups = bindings_registry();
  std::sort(groups.begin(), groups.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& g : groups) g.second(m);
}

}  // namespace synthperf

#define SYNTHPERF_REGISTER_BINDINGS(topic, fn) \
  static ::synthperf::BindingsRegistrar synthperf_bindings_registrar_##topic(#topic, fn);
