#!/usr/bin/env bash
# run-analytics.sh: issue 6's analyses side by side with DuckDB. Runs analytics_bench --dump=DIR (libcdp's timings,
# then the events and libcdp's answers written to DIR), then analytics_duckdb.mjs on DIR (loads events.csv into
# DuckDB, runs the funnel, cohort matrix and last-touch attribution in SQL, checks every answer against libcdp's,
# prints the table: measure, libcdp ms, DuckDB ms, DuckDB / libcdp).
#
#   benchmarks/duckdb/run-analytics.sh [--build=DIR] [--data=DIR] [--threads=N] [--events=N] [--runs=N]
#
#   --build     the build directory holding benchmarks/analytics_bench (default: build)
#   --data      where the data set goes (default: a temporary directory, removed afterwards; ~600 MB at 10M events)
#   --threads   DuckDB's threads (default 1; libcdp's analyses run on one thread)
#   --events    passed to analytics_bench (default 10,000,000)
#   --runs      timed runs of each measure, after one warm-up, for both (default 5)
#
# Needs node (20 or later) and npm; installs @duckdb/node-api into benchmarks/duckdb/node_modules on first use.
# Exit status: 0 when every answer matched, 1 when DuckDB and libcdp disagree, 2 on any other failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build
data=""
threads=1
runs=5
bench_args=()
for arg in "$@"; do
  case "$arg" in
    --build=*) build=${arg#*=} ;;
    --data=*) data=${arg#*=} ;;
    --threads=*) threads=${arg#*=} ;;
    --runs=*) runs=${arg#*=} ;;
    --events=*) bench_args+=("$arg") ;;
    *)
      sed -n '2,16p' "$0"
      exit 2
      ;;
  esac
done

bench=$build/benchmarks/analytics_bench
if [[ ! -x $bench ]]; then
  echo "run-analytics.sh: $bench not found; build it: cmake --build $build --target analytics_bench" >&2
  exit 2
fi
if [[ ! -d $here/node_modules/@duckdb/node-api ]]; then
  (cd "$here" && npm ci --no-audit --no-fund) || exit 2
fi
if [[ -z $data ]]; then
  data=$(mktemp -d "${TMPDIR:-/tmp}/analytics-duckdb.XXXXXX")
  trap 'rm -rf "$data"' EXIT
fi
mkdir -p "$data"

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
echo "== libcdp: $bench ${bench_args[*]} --runs=$runs --dump=$data"
"$bench" "${bench_args[@]}" --runs="$runs" --dump="$data" || { echo "run-analytics.sh: analytics_bench failed" >&2; exit 2; }
echo
echo "== DuckDB: node analytics_duckdb.mjs --data=$data --threads=$threads --runs=$runs"
rc=0
node "$here/analytics_duckdb.mjs" --data="$data" --threads="$threads" --runs="$runs" || rc=$?
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
