#!/usr/bin/env bash
# benches/bench-cli.sh [N] [REPEATS]
#
# One invocation compares our saslpasswd / sasldblistusers with Cyrus SASL's
# saslpasswd2 / sasldblistusers2 on this machine:
#  1. anchors/bench-cli.sh for both toolsets (one process per user:
#     create, set password, delete, list of N users), the two toolsets
#     interleaved repeat by repeat (cyrus, ours, cyrus, ours, ...) so drift on
#     the machine hits both alike; medians over the repeats.
#  2. Listing BIG (100 000) users: ours from one `saslpasswd --batch`, Cyrus's
#     Berkeley DB file built with db5.3_load from the same keys
#     (user\0realm\0userPassword); both listings checked, then timed with
#     hyperfine.
#     Also: setting a changed password in an N-user store (hyperfine, both).
#  3. One `saslpasswd --batch` of BIG lines on a fresh store (hyperfine),
#     against the Cyrus loop extrapolated from its create time per call
#     measured in step 1.
# Prints a table of ratios (ours/cyrus) against the targets: a create call at
# most half of saslpasswd2's, the BIG listing at most half of
# sasldblistusers2's, the BIG batch under 1 s.
#
# Env: N[1000] REPEATS[3] BIG[100000] BIG_LIST_RUNS[10] BATCH_RUNS[5]
#      REALM[bench.example] SASLDB_SHARED (required, see below)
#      RES[target/bench-cli/<stamp>] (raw results, logs, summary.json files)
#      WAIT_QUIET, LIST_RUNS, SETPW_RUNS: passed to anchors/bench-cli.sh
# Needs: cargo, python3, hyperfine, sasl2-bin, db5.3-util (Debian packages).
#
# SASLDB_SHARED: a directory holding the project's lab anchors
# (anchors/bench-cli.sh, the per-call benchmark both toolsets are measured
# with), which are not part of this repository. This comparison cannot run
# without it. Without it, measure ours alone: `cargo bench --bench store`
# (criterion: lookups, listing, batch writes), or time the release binaries
# (`saslpasswd --batch`, `sasldblistusers`) on a scratch store by hand.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
[[ -n ${SASLDB_SHARED:-} ]] || {
  echo "set SASLDB_SHARED to the directory holding anchors/bench-cli.sh (see the comment at the top; without it: cargo bench --bench store)" >&2
  exit 1
}
SHARED=$(cd "$SASLDB_SHARED" 2>/dev/null && pwd) || {
  echo "SASLDB_SHARED=$SASLDB_SHARED: no such directory" >&2; exit 1; }
ANCHOR=$SHARED/anchors/bench-cli.sh
[[ -f "$ANCHOR" ]] || { echo "missing $ANCHOR" >&2; exit 1; }
N=${1:-${N:-1000}}
REPEATS=${2:-${REPEATS:-3}}
BIG=${BIG:-100000}
BIG_LIST_RUNS=${BIG_LIST_RUNS:-10}
BATCH_RUNS=${BATCH_RUNS:-5}
REALM=${REALM:-bench.example}
export REALM

need() { command -v "$1" >/dev/null || { echo "$1 missing (apt-get install $2)" >&2; exit 1; }; }
need hyperfine hyperfine
need python3 python3
need db5.3_load db5.3-util
need saslpasswd2 sasl2-bin
need sasldblistusers2 sasl2-bin
need cargo cargo

echo "# building: cargo build --release" >&2
(cd "$ROOT" && cargo build --release --quiet)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OURS_PW=$TARGET/release/saslpasswd
OURS_LU=$TARGET/release/sasldblistusers
CY_PW=$(command -v saslpasswd2)
CY_LU=$(command -v sasldblistusers2)

RES=${RES:-$TARGET/bench-cli/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RES"
WORK=$(mktemp -d /tmp/sasldb-bench-cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "# bench-cli: N=$N repeats=$REPEATS (interleaved) big=$BIG realm=$REALM" >&2
echo "# host: $(nproc) cpu, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)" >&2
echo "# raw results: $RES" >&2

# ---- 1. anchors/bench-cli.sh, cyrus and ours interleaved
for ((r = 1; r <= REPEATS; r++)); do
  for ts in cyrus ours; do
    echo "# repeat $r/$REPEATS: $ts" >&2
    log=$RES/$ts-rep$r.log
    if [[ $ts == ours ]]; then
      env SASLPASSWD="$OURS_PW" SASLDBLISTUSERS="$OURS_LU" OUT="$RES/$ts-rep$r" \
        bash "$ANCHOR" ours "$N" 1 > "$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
    else
      env -u SASLPASSWD -u SASLDBLISTUSERS OUT="$RES/$ts-rep$r" \
        bash "$ANCHOR" cyrus "$N" 1 > "$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
    fi
  done
done

# ---- 2. listing BIG users
echo "# building $BIG-user stores" >&2
awk -v n="$BIG" 'BEGIN { for (i = 1; i <= n; i++) printf "user%d:pw-%d-secret\n", i, i }' \
  > "$WORK/batch.txt"
"$OURS_PW" --batch "$WORK/batch.txt" -u "$REALM" -f "$WORK/ours.db" > "$RES/big-batch.out"
# db5.3_load print format: data lines start with a space, bytes outside
# printable ASCII as \xx (none here but the two NULs).
awk -v n="$BIG" -v realm="$REALM" 'BEGIN {
  print "VERSION=3"; print "format=print"; print "type=hash"; print "db_pagesize=4096"
  print "HEADER=END"
  for (i = 1; i <= n; i++) printf " user%d\\00%s\\00userPassword\n pw-%d-secret\n", i, realm, i
  print "DATA=END" }' > "$WORK/cyrus.dump"
db5.3_load -t hash -f "$WORK/cyrus.dump" "$WORK/cyrus.db"
count() { grep -c "^user[0-9]*@$REALM: userPassword\$" || true; }
got_ours=$("$OURS_LU" -f "$WORK/ours.db" | count)
got_cyrus=$("$CY_LU" -f "$WORK/cyrus.db" | count)
[[ $got_ours -eq $BIG ]] || { echo "ours lists $got_ours of $BIG users" >&2; exit 1; }
[[ $got_cyrus -eq $BIG ]] || { echo "sasldblistusers2 lists $got_cyrus of $BIG users" >&2; exit 1; }
# Same set of lines (order differs: BDB hash vs LMDB key order).
cmp -s <("$OURS_LU" -f "$WORK/ours.db" | sort) <("$CY_LU" -f "$WORK/cyrus.db" | sort) \
  || { echo "the two $BIG-user listings differ" >&2; exit 1; }
echo "# timing the $BIG-user listings" >&2
hyperfine -N --warmup 2 --runs "$BIG_LIST_RUNS" --style none --export-json "$RES/list-big.json" \
  -n cyrus "$CY_LU -f $WORK/cyrus.db" -n ours "$OURS_LU -f $WORK/ours.db" \
  > "$RES/list-big.log" 2>&1 || { cat "$RES/list-big.log" >&2; exit 1; }

# ---- 2b. set a CHANGED password in an N-user store. anchors/bench-cli.sh sets
# the same password in every run, which ours recognises as unchanged (no write,
# no sync) while saslpasswd2 rewrites it; here every run sets a new one.
echo "# timing a changed password in an $N-user store" >&2
head -n "$N" "$WORK/batch.txt" > "$WORK/batch-n.txt"
"$OURS_PW" --batch "$WORK/batch-n.txt" -u "$REALM" -f "$WORK/ours-n.db" > /dev/null
head -n $((5 + 2 * N)) "$WORK/cyrus.dump" > "$WORK/cyrus-n.dump"
echo "DATA=END" >> "$WORK/cyrus-n.dump"
db5.3_load -t hash -f "$WORK/cyrus-n.dump" "$WORK/cyrus-n.db"
hyperfine -S bash --warmup 3 --runs "${SETPW_RUNS:-50}" --style none \
  --export-json "$RES/setpw-changed.json" \
  -n cyrus "printf 'new-%s-%s' \$SRANDOM \$RANDOM | $CY_PW -p -u $REALM -f $WORK/cyrus-n.db user1" \
  -n ours "printf 'new-%s-%s' \$SRANDOM \$RANDOM | $OURS_PW -p -u $REALM -f $WORK/ours-n.db user1" \
  > "$RES/setpw-changed.log" 2>&1 || { cat "$RES/setpw-changed.log" >&2; exit 1; }

# ---- 3. one --batch of BIG lines on a fresh store
echo "# timing saslpasswd --batch of $BIG lines" >&2
hyperfine -N --runs "$BATCH_RUNS" --style none --export-json "$RES/batch-big.json" \
  --prepare "rm -f $WORK/b.db $WORK/b.db-lock" \
  -n ours "$OURS_PW --batch $WORK/batch.txt -u $REALM -f $WORK/b.db" \
  > "$RES/batch-big.log" 2>&1 || { cat "$RES/batch-big.log" >&2; exit 1; }
got=$("$OURS_LU" -f "$WORK/b.db" | count)
[[ $got -eq $BIG ]] || { echo "after --batch, $got of $BIG users" >&2; exit 1; }
du -b "$WORK/ours.db" "$WORK/cyrus.db" > "$RES/big-sizes.txt"

# ---- report
python3 - "$RES" "$N" "$REPEATS" "$BIG" <<'EOF'
import json, statistics as st, sys, os
res, n, reps, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def runs(ts):
    return [json.load(open(os.path.join(res, f"{ts}-rep{r}", "summary.json")))["metrics"]
            for r in range(1, reps + 1)]
cy, ou = runs("cyrus"), runs("ours")
def vals(rs, k): return [r[k]["median"] for r in rs]
def agg(rs, k):
    v = vals(rs, k); return st.median(v), min(v), max(v)
def fmt(t, unit_fmt="{:.2f}"):
    m, lo, hi = t
    return (unit_fmt.format(m) + f" [{unit_fmt.format(lo)}..{unit_fmt.format(hi)}]")
rows = []
def row(name, c, o, target=None):
    ratio = o[0] / c[0] if c[0] else float("nan")
    verdict = "" if target is None else ("ok" if ratio <= target else "MISSED")
    tgt = "" if target is None else f"<= {target:.2f}"
    rows.append((name, fmt(c), fmt(o), f"{ratio:.2f}", tgt, verdict))
row("create, ms/call", agg(cy, "create_med_ms"), agg(ou, "create_med_ms"), 0.5)
row("create p90, ms/call", agg(cy, "create_p90_ms"), agg(ou, "create_p90_ms"))
row("setpw same pw (anchor), ms/call", agg(cy, "setpw_med_ms"), agg(ou, "setpw_med_ms"))
sc = {r["command"]: r for r in json.load(open(os.path.join(res, "setpw-changed.json")))["results"]}
t = lambda r: (r["median"] * 1000, r["min"] * 1000, r["max"] * 1000)
row("setpw changed pw, ms/call", t(sc["cyrus"]), t(sc["ours"]))
row("delete, ms/call", agg(cy, "delete_med_ms"), agg(ou, "delete_med_ms"))
row(f"list {n} users, ms", agg(cy, "list_med_ms"), agg(ou, "list_med_ms"))
hc, ho = agg(cy, "harness_med_ms"), agg(ou, "harness_med_ms")
row("harness floor (printf|cat), ms", hc, ho)
above = lambda rs: [r["create_med_ms"]["median"] - r["harness_med_ms"]["median"] for r in rs]
ac, ao = above(cy), above(ou)
row("create above floor, ms/call", (st.median(ac), min(ac), max(ac)),
    (st.median(ao), min(ao), max(ao)))
# BIG listing
lb = {r["command"]: r for r in json.load(open(os.path.join(res, "list-big.json")))["results"]}
row(f"list {big} users, ms", t(lb["cyrus"]), t(lb["ours"]), 0.5)
# BIG batch vs the extrapolated Cyrus loop (mean create time per call x BIG)
bb = json.load(open(os.path.join(res, "batch-big.json")))["results"][0]
loop = [r["create_total_s"]["median"] / n * big for r in cy]
ours_b = (bb["median"], bb["min"], bb["max"])
ratio = ours_b[0] / st.median(loop)
rows.append((f"{big} users: --batch vs loop, s",
             fmt((st.median(loop), min(loop), max(loop)), "{:.1f}") + " (loop est.)",
             fmt(ours_b, "{:.3f}"), f"{ratio:.4f}", "< 1 s",
             "ok" if ours_b[0] < 1 else "MISSED"))
w = [max(len(r[i]) for r in rows + [("metric", "cyrus", "ours", "ours/cyrus", "target", "")])
     for i in range(6)]
hdr = ("metric", "cyrus", "ours", "ours/cyrus", "target", "")
print(f"\n== ours vs Cyrus 2.1.28: N={n}, {reps} interleaved repeats; median [min..max] over repeats ==")
for r in [hdr] + rows:
    print("  ".join(x.ljust(w[i]) if i == 0 else x.rjust(w[i]) for i, x in enumerate(r)).rstrip())
noise = max(max(r["create_other_cores"]["max"], r["delete_other_cores"]["max"]) for r in cy + ou)
sizes = dict(l.split()[::-1] for l in open(os.path.join(res, "big-sizes.txt")))
sz = {k.rsplit("/", 1)[-1]: int(v) for k, v in sizes.items()}
print(f"\nnoise: max CPU of other processes during create/delete phases = {noise:.2f} cores"
      f"{'  (>0.2: figures are noisy)' if noise > 0.2 else ''}")
print(f"{big}-user files: ours.db {sz['ours.db']:,} B, cyrus.db (BDB hash) {sz['cyrus.db']:,} B")
print("setpw same pw: the anchor sets one password again and again; ours sees it unchanged and\n"
      "  writes nothing, saslpasswd2 rewrites it. setpw changed pw sets a new one each run.")
print(f"raw: {res}")
EOF
