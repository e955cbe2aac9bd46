// Copyright 2026 The libcdp Authors.
//
// cdp::Status -> Python exceptions. The exception classes live in Python (cdp/_errors.py) so they can subclass
// builtin exceptions and carry attributes; the translator asks cdp._errors._from_status for an instance.

#include <exception>
#include <string>

#include "common.h"

namespace cdp_python {

void SetPythonError(const cdp::Status& status) {
  const std::string code(cdp::StatusCodeName(status.code()));
  try {
    py::object errors = py::module_::import("cdp._errors");
    py::object field = status.field().empty() ? py::object(py::none()) : py::object(py::str(status.field()));
    py::object exc = errors.attr("_from_status")(code, status.message(), field);
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  } catch (py::error_already_set& e) {
    // cdp._errors is unavailable (the extension used on its own): fall back to RuntimeError, chaining nothing.
    e.discard_as_unraisable("cdp._core: building the cdp.Error exception");
    PyErr_SetString(PyExc_RuntimeError, status.ToString().c_str());
  }
}

namespace {

cdp::StatusCode CodeFromName(const std::string& name) {
  for (int c = 0; c <= static_cast<int>(cdp::StatusCode::kUnauthenticated); ++c) {
    auto code = static_cast<cdp::StatusCode>(c);
    if (cdp::StatusCodeName(code) == name) return code;
  }
  throw py::value_error("unknown status code name: " + name);
}

}  // namespace

void BindErrors(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      SetPythonError(e.status());
    }
  });

  m.def(
      "status_code_name", [](int code) { return std::string(cdp::StatusCodeName(static_cast<cdp::StatusCode>(code))); },
      py::arg("code"), "The snake_case name of a cdp::StatusCode value (0 -> 'ok', 1 -> 'invalid_argument', ...).");

  // Raises the exception the binding raises for a Status with this code, message and field. Used by the tests to
  // check the mapping of every code, including those that are hard to provoke (data_loss, internal, ...).
  m.def(
      "_raise_status",
      [](const std::string& code_name, const std::string& message, const std::string& field) {
        cdp::StatusCode code = CodeFromName(code_name);
        if (code == cdp::StatusCode::kOk) return;
        throw StatusError(cdp::Status(code, message, field));
      },
      py::arg("code"), py::arg("message"), py::arg("field") = "");
}

}  // namespace cdp_python
