// Copyright 2026 The libcdp Authors.
//
// cdp._core: the compiled half of the `cdp` Python package. Use the package (`import cdp`), not this module: the
// pure-Python layer in cdp/ turns dicts into JSON text, adds pages, pandas and the exception classes.

#include "common.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "libcdp engine binding (internal; use the `cdp` package)";
  m.attr("__version__") = cdp::kVersion;
  m.attr("FORMAT_VERSION") = cdp::kFormatVersion;
  cdp_python::BindErrors(m);
  cdp_python::BindUtil(m);
  cdp_python::BindEngine(m);
  cdp_python::BindSegment(m);  // bind_segment.cc: db.segment
}
