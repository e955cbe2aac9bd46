// Copyright 2026 The libcdp Authors.
//
// Compiled into the programs linked with jemalloc (CMakeLists.txt, cdp_use_allocator): jemalloc reads this string
// at start-up, before MALLOC_CONF (which still overrides it).
//
// thp:always: jemalloc asks for transparent huge pages (madvise) on the memory it maps. The segment index holds
// hundreds of MiB of columns and event tables read at random (a profile's cells, per-profile counters); with 4 KiB
// pages those reads miss the TLB. Measured with segment_bench (1,000,000 profiles, 10,000,000 events, same
// machine, same hour): a full evaluation 42-52 ms without, 28-29 ms with; AddEvent + 100 EvaluateOne 10.2 us
// without, 5.6 us with. Ingest (cdp_bench) is unchanged. The kernel's "madvise" THP mode honours it; "never"
// ignores it.

extern "C" {
// NOLINTNEXTLINE: the name is jemalloc's.
const char* malloc_conf = "thp:always,metadata_thp:auto";
}
