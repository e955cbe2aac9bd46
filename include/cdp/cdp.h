// Copyright 2026 The libcdp Authors.
//
// libcdp: an embeddable Customer Data Platform. Include this one header for the whole public API.
//
// Start with cdp/engine.h (Engine::Open and its modules), then cdp/json.h (documents) and cdp/query.h (filters,
// pages, timestamps). Everything under include/cdp/ is public; nothing else is.

#ifndef CDP_CDP_H_
#define CDP_CDP_H_

#include "cdp/analytics.h"
#include "cdp/engine.h"
#include "cdp/json.h"
#include "cdp/options.h"
#include "cdp/query.h"
#include "cdp/rfm.h"
#include "cdp/segment.h"
#include "cdp/segment_rule.h"
#include "cdp/status.h"
#include "cdp/version.h"

#endif  // CDP_CDP_H_
