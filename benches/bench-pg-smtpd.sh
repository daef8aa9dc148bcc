#!/usr/bin/env bash
# benches/bench-pg-smtpd.sh — smtpd-auth backed by PostgreSQL against
# smtpd-auth backed by LMDB, same load generator, same run (issue 13,
# "Performance": AUTH PLAIN sessions/s on PostgreSQL at least 0.8x LMDB's;
# the cold-cache p99 latency of one authentication on loopback).
#
# One invocation:
#  a. builds release: smtpd-auth, saslpasswd and the load generator
#     (benches/smtp_load.rs);
#  b. starts a throwaway PostgreSQL 15 (Debian's postgresql package) in a
#     scratch directory, as the tests do (initdb as postgres, 127.0.0.1 and
#     $PG_PORT, fsync=off), a role and database `sasl`, our schema;
#  c. creates the same users with our saslpasswd in the database and in a
#     scratch LMDB store;
#  d. starts three smtpd-auth (no TLS, relay closed, nothing sent on):
#     LMDB on $LMDB_PORT, PostgreSQL with the default cache on $PG_SMTP_PORT,
#     PostgreSQL with the cache off (smtpd_auth_cache_ttl = 0,
#     smtpd_auth_cache_negative_ttl = 0: every AUTH queries the database) on
#     $COLD_PORT;
#  e. nomail sessions (connect, EHLO, AUTH PLAIN, QUIT) for each c in $CONCS,
#     LMDB and PostgreSQL interleaved (order alternating), $REPEATS repeats,
#     each after a warm-up; ratio of the medians;
#  f. cold: c=1 sessions against the cache-off daemon and against LMDB:
#     session p50/p99, and the difference, which is what the database look-up
#     adds to one authentication.
# Env: REPEATS[3] N[10000] CONCS["8 64"] N_COLD[3000] PG_PORT[55432]
#      LMDB_PORT[2641] PG_SMTP_PORT[2642] COLD_PORT[2643] RES[target/bench-pg-smtpd/<stamp>]
# Needs: root, cargo, python3, postgresql (server 15). Loopback only; touches
#        nothing outside its scratch directory.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=benches/common.sh
source "$HERE/common.sh"
REPEATS=${REPEATS:-3}
N=${N:-10000}
CONCS=${CONCS:-8 64}
N_COLD=${N_COLD:-3000}
PG_PORT=${PG_PORT:-55432}
LMDB_PORT=${LMDB_PORT:-2641}
PG_SMTP_PORT=${PG_SMTP_PORT:-2642}
COLD_PORT=${COLD_PORT:-2643}
PG_BIN=/usr/lib/postgresql/15/bin
REALM=bench.example
RES=${RES:-$ROOT/target/bench-pg-smtpd/$(date +%Y%m%d-%H%M%S)}

[[ $(id -u) -eq 0 ]] || { echo "bench-pg-smtpd.sh: run as root (initdb runs as postgres)" >&2; exit 1; }
[[ -x $PG_BIN/initdb ]] || { echo "$PG_BIN/initdb missing (apt-get install postgresql)" >&2; exit 1; }
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

mkdir -p "$RES/runs"
log "building (release)"
(cd "$ROOT" && cargo build --release --locked --quiet --bin smtpd-auth --bin saslpasswd)
SMTPD=$ROOT/target/release/smtpd-auth
SASLPW=$ROOT/target/release/saslpasswd
LOADGEN=$(build_smtp_load "$ROOT")

WORK=$(mktemp -d /tmp/bench-pg-smtpd.XXXXXX)
chmod 755 "$WORK"
PIDS=()
PG_PID=
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # SIGINT: a fast shutdown (a smart one waits on the LISTEN connections).
  [[ -n $PG_PID ]] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

log "PostgreSQL in $WORK (port $PG_PORT)"
chown postgres:postgres "$WORK"
echo superuser-not-used > "$WORK/pw"; chown postgres "$WORK/pw"
runuser -u postgres -- "$PG_BIN/initdb" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust \
  --auth-host=scram-sha-256 -D "$WORK/data" --pwfile "$WORK/pw" > "$RES/initdb.log" 2>&1
setpriv --reuid=postgres --regid=postgres --clear-groups "$PG_BIN/postgres" -D "$WORK/data" \
  -k "$WORK" -p "$PG_PORT" -c listen_addresses=127.0.0.1 -c fsync=off \
  < /dev/null > "$RES/postgres.log" 2>&1 &
PG_PID=$!
psql_su() { runuser -u postgres -- psql -h "$WORK" -p "$PG_PORT" -X -q -v ON_ERROR_STOP=1 "$@"; }
for ((i = 0; i < 300; i++)); do psql_su -d postgres -c 'SELECT 1' > /dev/null 2>&1 && break; sleep 0.1; done
psql_su -d postgres -c "CREATE ROLE sasl LOGIN PASSWORD 'bench-secret'" -c "CREATE DATABASE sasl OWNER sasl"
export PGPASSWORD=bench-secret
URL="postgresql://sasl@127.0.0.1:$PG_PORT/sasl"
"$SASLPW" --init-schema -f "$URL" > /dev/null

STORE=$WORK/sasldb2
mkdir -p "$WORK/conf"
add_user() {
  printf '%s' "$2" | "$SASLPW" -p -c -u "$REALM" -f "$STORE" "$1"
  printf '%s' "$2" | "$SASLPW" -p -c -u "$REALM" -f "$URL" "$1"
}
add_user alice alice-secret
add_user bob 'b0b s3cret!'
# A realistic table: 10,000 other accounts in the database.
seq 1 10000 | sed 's/.*/user&:password-&/' | "$SASLPW" --batch - -u "$REALM" -f "$URL" > /dev/null

COMMON=(-o "myhostname=mx.$REALM" -o "smtpd_sasl_local_domain=$REALM" -o mydestination=
  -o relay_domains= -o mynetworks=127.0.0.2/32 -o smtpd_tls_security_level=none
  -o smtpd_tls_auth_only=no -o mail_owner=postfix -o smtpd_client_auth_rate_limit=0
  -o smtpd_client_connection_count_limit=0 -o default_process_limit=0)
start() {  # name port options...
  local name=$1 port=$2; shift 2
  mkdir -p "$WORK/$name"; chmod 755 "$WORK/$name"
  SASL_CONF_PATH=$WORK/conf "$SMTPD" "${COMMON[@]}" -o "smtpd_auth_state_dir=$WORK/$name" "$@" \
    --listen "127.0.0.1:$port" < /dev/null > /dev/null 2> "$RES/smtpd-auth-$name.log" &
  PIDS+=($!)
  wait_port "$port"
}
start lmdb "$LMDB_PORT" -o "sasldb_path=$STORE"
start pg "$PG_SMTP_PORT" -o "sasldb_path=$URL"
start cold "$COLD_PORT" -o "sasldb_path=$URL" -o smtpd_auth_cache_ttl=0 -o smtpd_auth_cache_negative_ttl=0

load() {  # tag port concurrency sessions
  local tag=$1 port=$2 c=$3 n=$4
  "$LOADGEN" --target "127.0.0.1:$port" --mode nomail --concurrency "$c" --sessions "$n" \
    --duration 60 --user alice --password alice-secret --label "$tag" \
    --json "$RES/runs/$tag.json" > "$RES/runs/$tag.txt" 2>&1
  [[ $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["failures"])' "$RES/runs/$tag.json") == 0 ]] ||
    { echo "$tag: failures (see $RES/runs/$tag.txt)" >&2; exit 1; }
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

for c in $CONCS; do
  for ((r = 1; r <= REPEATS; r++)); do
    order=(lmdb pg); ((r % 2 == 0)) && order=(pg lmdb)
    for which in "${order[@]}"; do
      port=$LMDB_PORT; [[ $which == pg ]] && port=$PG_SMTP_PORT
      load "$which-c$c-r$r.warmup" "$port" "$c" 1000
      load "$which-c$c-r$r" "$port" "$c" "$N"
      log "$which c=$c run $r: $(field "$RES/runs/$which-c$c-r$r.json" sessions_per_s) sessions/s"
    done
  done
done
load cold-warmup "$COLD_PORT" 1 200
load cold "$COLD_PORT" 1 "$N_COLD"
load lmdb-c1 "$LMDB_PORT" 1 "$N_COLD"

python3 - "$RES" "$CONCS" "$REPEATS" <<'EOF' | tee "$RES/summary.txt"
import json, statistics, sys
res, concs, repeats = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
get = lambda tag: json.load(open(f"{res}/runs/{tag}.json"))
print("# smtpd-auth AUTH PLAIN nomail sessions/s, PostgreSQL (cache on) vs LMDB, median of", repeats)
for c in concs:
    med = {w: statistics.median(get(f"{w}-c{c}-r{r}")["sessions_per_s"] for r in range(1, repeats + 1)) for w in ("lmdb", "pg")}
    ratio = med["pg"] / med["lmdb"]
    print(f"c={c}: lmdb {med['lmdb']:.0f}/s  pg {med['pg']:.0f}/s  ratio {ratio:.2f} (target >= 0.80: {'ok' if ratio >= 0.8 else 'MISSED'})")
cold, base = get("cold"), get("lmdb-c1")
print(f"cold cache (every AUTH queries PostgreSQL), c=1: session p50 {cold['lat_p50_ms']} ms p99 {cold['lat_p99_ms']} ms;"
      f" LMDB c=1: p50 {base['lat_p50_ms']} ms p99 {base['lat_p99_ms']} ms;"
      f" the look-up adds p50 {cold['lat_p50_ms'] - base['lat_p50_ms']:.3f} ms, p99 {cold['lat_p99_ms'] - base['lat_p99_ms']:.3f} ms")
EOF
log "results in $RES"
