#!/usr/bin/env bash
# benches/bench-migrate.sh [RECORDS] [RUNS]
#
# The migration figures of issue 12 on this machine, against Cyrus's own
# tools on the same file:
#  1. A Berkeley DB hash sasldb of RECORDS (1 000 000) records made with
#     db5.3_load (user\0realm\0userPassword keys, every 1000th value 5-8 KB:
#     overflow pages), the shape tests/migrate.rs checks.
#  2. Listing it: our sasldblistusers against sasldblistusers2 (outputs
#     compared first, then RUNS timed runs each, interleaved; medians).
#     Target: ours at most half of Cyrus's time.
#  3. Importing it into a fresh LMDB store with saslpasswd --import (RUNS
#     runs, each on a new target; median) and its peak RSS (GNU time's
#     maximum resident set size). Target: under 3 s; memory bounded (the
#     source is read page by page; the one write transaction holds LMDB's
#     dirty pages).
# Env: RECORDS RUNS, RES[target/bench-migrate/<stamp>] (files and results)
# Needs: cargo, python3, db5.3-util, sasl2-bin, GNU time (/usr/bin/time).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=benches/common.sh
. "$HERE/common.sh"
RECORDS=${1:-${RECORDS:-1000000}}
RUNS=${2:-${RUNS:-5}}

need() { command -v "$1" >/dev/null || { echo "$1 missing (apt-get install $2)" >&2; exit 1; }; }
need python3 python3
need db5.3_load db5.3-util
need sasldblistusers2 sasl2-bin
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time missing (apt-get install time)" >&2; exit 1; }

echo "# building: cargo build --release" >&2
(cd "$ROOT" && cargo build --release --locked --quiet --bins)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OURS_PW=$TARGET/release/saslpasswd
OURS_LU=$TARGET/release/sasldblistusers
CY_LU=$(command -v sasldblistusers2)
RES=${RES:-$TARGET/bench-migrate/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RES"
export SASL_CONF_PATH=$RES/conf
mkdir -p "$SASL_CONF_PATH"

BDB=$RES/sasldb2.bdb
echo "# making $BDB ($RECORDS records) with db5.3_load" >&2
python3 - "$RECORDS" <<'EOF' | db5.3_load -T -t hash "$BDB"
import sys
w = sys.stdout.write
for i in range(int(sys.argv[1])):
    w("user%d\\00example.org\\00userPassword\n" % i)
    w(("%s\n" % (chr(97 + i % 26) * (5000 + i % 3000))) if i % 1000 == 7 else "secret%d\n" % i)
EOF

"$OURS_LU" -f "$BDB" > "$RES/ours.txt"
"$CY_LU" -f "$BDB" > "$RES/cyrus.txt"
cmp -s "$RES/ours.txt" "$RES/cyrus.txt" || { echo "listings differ: $RES/ours.txt $RES/cyrus.txt" >&2; exit 1; }
[[ $(wc -l < "$RES/ours.txt") -eq $RECORDS ]] || { echo "listing is not $RECORDS lines" >&2; exit 1; }

# seconds CMD...: wall time of one run, output discarded.
seconds() {
  local t0 t1
  t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.4f}')"
}
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.4f}")' "$@"; }

ours=() cyrus=() imports=()
for ((r = 0; r < RUNS; r++)); do
  cyrus+=("$(seconds "$CY_LU" -f "$BDB")")
  ours+=("$(seconds "$OURS_LU" -f "$BDB")")
  rm -f "$RES/new" "$RES/new-lock"
  imports+=("$(seconds "$OURS_PW" --import "$BDB" -f "$RES/new")")
done
rm -f "$RES/new" "$RES/new-lock"
/usr/bin/time -f '%M' -o "$RES/import.rss" "$OURS_PW" --import "$BDB" -f "$RES/new" > "$RES/import.out"
/usr/bin/time -f '%M' -o "$RES/list.rss" "$OURS_LU" -f "$BDB" > /dev/null

m_ours=$(median "${ours[@]}")
m_cyrus=$(median "${cyrus[@]}")
m_import=$(median "${imports[@]}")
python3 - "$m_ours" "$m_cyrus" "$m_import" "$(cat "$RES/import.rss")" "$(cat "$RES/list.rss")" \
  "$(stat -c %s "$BDB")" "$RECORDS" "$(git_rev "$ROOT")" <<'EOF' | tee "$RES/summary.txt"
import sys
ours, cyrus, imp = map(float, sys.argv[1:4])
rss_imp, rss_list, size, n, rev = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
ok = lambda c: "ok" if c else "MISSED"
print(f"revision {rev}; Berkeley DB hash file: {n} records, {size / 2**20:.1f} MiB")
print(f"list    ours {ours:.3f} s  sasldblistusers2 {cyrus:.3f} s  ratio {ours / cyrus:.2f} (target <= 0.50: {ok(ours <= cyrus / 2)})")
print(f"import  {imp:.3f} s into a fresh store (target < 3 s: {ok(imp < 3)})")
print(f"peak RSS  import {rss_imp / 1024:.1f} MiB, listing {rss_list / 1024:.1f} MiB")
EOF
echo "# results in $RES" >&2
