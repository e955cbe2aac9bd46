#!/usr/bin/env bash
# run.sh: segment memberships side by side with DuckDB (issue 4). Runs segment_bench --dump=DIR (libcdp's measures,
# then the data set, the rules' member counts and libcdp's timings of this run written to DIR), then
# segment_duckdb.mjs on DIR (loads the CSV files into DuckDB, runs the same memberships in SQL, checks DuckDB's
# counts against libcdp's, prints the table: measure, libcdp ms, DuckDB ms, DuckDB / libcdp).
#
#   benchmarks/duckdb/run.sh [--build=DIR] [--data=DIR] [--threads=N] [--profiles=N] [--events=N] [--runs=N]
#
#   --build     the build directory holding benchmarks/segment_bench (default: build); build it with
#               cmake --build build --target segment_bench
#   --data      where the data set goes (default: a temporary directory, removed afterwards; at the full scale it
#               takes about 500 MB)
#   --threads   threads for both: DuckDB's, and libcdp's evaluation (segment_bench --threads; 1 or 2; default 1)
#   --profiles, --events: passed to segment_bench (default 1,000,000 and 10,000,000)
#   --runs      timed runs per DuckDB query (default 7)
#
# Needs node (20 or later) and npm; installs @duckdb/node-api into benchmarks/duckdb/node_modules on first use.
# Exit status: 0 when every count matched, 1 when DuckDB and libcdp disagree, 2 on any other failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build
data=""
threads=1
runs=7
bench_args=()
for arg in "$@"; do
  case "$arg" in
    --build=*) build=${arg#*=} ;;
    --data=*) data=${arg#*=} ;;
    --threads=*) threads=${arg#*=} ;;
    --runs=*) runs=${arg#*=} ;;
    --profiles=* | --events=*) bench_args+=("$arg") ;;
    *)
      sed -n '2,17p' "$0"
      exit 2
      ;;
  esac
done

bench=$build/benchmarks/segment_bench
if [[ ! -x $bench ]]; then
  echo "run.sh: $bench not found; build it: cmake --build $build --target segment_bench" >&2
  exit 2
fi
if [[ ! -d $here/node_modules/@duckdb/node-api ]]; then
  (cd "$here" && npm ci --no-audit --no-fund) || exit 2
fi
if [[ -z $data ]]; then
  data=$(mktemp -d "${TMPDIR:-/tmp}/segment-duckdb.XXXXXX")
  trap 'rm -rf "$data"' EXIT
fi
mkdir -p "$data"

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
echo "== libcdp: $bench ${bench_args[*]} --threads=$threads --dump=$data"
rc=0
"$bench" "${bench_args[@]}" --threads="$threads" --dump="$data" || rc=$?
# 1 is a missed target of issue 4, still a run to compare; anything else is a failure.
if ((rc > 1)) || [[ ! -f $data/expected.json || ! -f $data/libcdp.json ]]; then
  echo "run.sh: segment_bench failed (exit $rc)" >&2
  exit 2
fi

echo
echo "== DuckDB: node segment_duckdb.mjs --data=$data --threads=$threads"
rc=0
node "$here/segment_duckdb.mjs" --data="$data" --threads="$threads" --runs="$runs" --out="$data/duckdb.json" || rc=$?
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
