// Copyright 2026 The libcdp Authors.
//
// Shared pieces of the cdp._core extension module.
//
// Conventions of the binding:
//  * Documents cross the boundary as JSON text: Python json.dumps -> std::string -> cdp::Json::Parse, and results
//    cdp::Json::Dump -> str -> json.loads. This keeps the binding small and the data model identical to the C++ one.
//  * All C++ work runs with the GIL released (py::gil_scoped_release). Errors are carried out of the released
//    section as a cdp::Status and turned into a Python exception only once the GIL is held again.
//  * A non-OK cdp::Status becomes a StatusError, which the translator registered in bind_errors.cc raises as the
//    matching subclass of cdp.Error (defined in Python, cdp/_errors.py).

#ifndef CDP_BINDINGS_PYTHON_COMMON_H_
#define CDP_BINDINGS_PYTHON_COMMON_H_

#include <pybind11/pybind11.h>

#include <exception>
#include <string>
#include <utility>

#include "cdp/cdp.h"

namespace cdp_python {

namespace py = pybind11;

// A non-OK cdp::Status travelling as a C++ exception to the exception translator. Throw it only with the GIL held.
class StatusError : public std::exception {
 public:
  explicit StatusError(cdp::Status status) : status_(std::move(status)), what_(status_.ToString()) {}
  const char* what() const noexcept override { return what_.c_str(); }
  const cdp::Status& status() const { return status_; }

 private:
  cdp::Status status_;
  std::string what_;
};

// Throws StatusError when `status` is not OK. Requires the GIL.
inline void ThrowIfError(const cdp::Status& status) {
  if (!status.ok()) throw StatusError(status);
}

// The value of `result`, or throws its status. Requires the GIL.
template <typename T>
T ValueOrThrow(cdp::Result<T>&& result) {
  if (!result.ok()) throw StatusError(result.status());
  return std::move(result).value();
}

// Runs `fn` (returning cdp::Result<cdp::Json>) with the GIL released; returns the compact JSON text of its
// result, or throws (with the GIL held again) the Status it failed with. Call with the GIL held.
// The principal of the calling Python context: cdp.principal(...)'s context variable ("local" outside any).
// The GIL must be held.
std::string CurrentPrincipal();

template <typename Fn>
std::string JsonWithoutGil(Fn&& fn) {
  cdp::Status status;
  std::string text;
  const std::string principal = CurrentPrincipal();  // read with the GIL held
  {
    py::gil_scoped_release release;
    cdp::ScopedPrincipal scope(principal);  // the call runs (and is audited) for the caller's principal
    cdp::Result<cdp::Json> result = fn();
    if (result.ok()) {
      result->DumpTo(&text);
    } else {
      status = result.status();
    }
  }
  ThrowIfError(status);
  return text;
}

// Sets the Python error indicator to the cdp.Error subclass for `status` (GIL held).
void SetPythonError(const cdp::Status& status);

// cdp::Options <-> JSON object keyed by the C++ field names ("sync_writes", ...).
cdp::Result<cdp::Options> OptionsFromJson(const cdp::Json& json);
cdp::Json OptionsToJson(const cdp::Options& options);

void BindErrors(py::module_& m);
void BindEngine(py::module_& m);
void BindUtil(py::module_& m);
void BindSegment(py::module_& m);  // bind_segment.cc

}  // namespace cdp_python

#endif  // CDP_BINDINGS_PYTHON_COMMON_H_
