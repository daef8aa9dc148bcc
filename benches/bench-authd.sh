#!/usr/bin/env bash
# benches/bench-authd.sh [SESSIONS] [REPEATS]
#
# AUTH throughput through a real Postfix smtpd, two ways, same run:
#   cyrus: Postfix with Cyrus libsasl, auxprop sasldb: a Berkeley DB file
#          made with Debian's saslpasswd2 (the reference lab's setup,
#          anchors/setup.sh, but a scratch instance);
#   ours:  the same Postfix with smtpd_sasl_type = dovecot on smtpd-auth's
#          Dovecot socket (release build), our LMDB store made with our
#          saslpasswd.
# Both are scratch instances (own config, queue and data directories under a
# temp dir; smtpd unchrooted on 127.0.0.1, free ports; every transport is
# discard:, mynetworks excludes 127.0.0.1). /etc/postfix, /var/spool/postfix
# and /etc/sasldb2 are not touched.
#
# Load: "nomail" sessions (connect, EHLO, AUTH, QUIT) at concurrency C, for
# each mechanism in MECHS; cyrus and ours interleaved repeat by repeat
# (order alternating) so machine drift hits both alike; medians over the
# repeats. The load generator is benches/smtp_load.rs (LOADGEN=rust, the
# default: ~0.15 ms of CPU per session, so the two servers, not the client,
# decide the figure on this 2-core machine) or the lab's
# anchors/bench-auth.py (LOADGEN=python: ~0.7 ms per session, the
# client then takes half the machine).
#
# Reports sessions/s for both, the ratio ours/cyrus (goal: >= 1), server
# CPU per session and our daemon's CPU per authentication. Server CPU is
# exact: each instance's master process with its children, live (utime +
# stime) and exited (cutime + cstime, which the master collects as it reaps
# them), plus smtpd-auth for ours, between the start and the end of a run.
# A run where the rest of the machine (busy CPU from /proc/stat minus
# client and servers) used more than 0.5 cores is flagged noisy.
#
# Env: SESSIONS[4000] per run, REPEATS[5], C[8],
#      MECHS["plain login cram-md5 digest-md5"] (python load generator
#      also: scram-sha-1 scram-sha-256), LOADGEN[rust],
#      MAX_SECONDS[30] per run, QUIET_WAIT[10] (s to wait for a quiet
#      machine before each run), SASLDB_SHARED[unset],
#      RES[target/bench-authd/<stamp>] (json of every run, logs, summary),
#      HOLD[0] (s to keep both instances up after the warm-up, to look at
#      them by hand: the ports are printed).
# Needs: root, cargo, python3, postfix, sasl2-bin, libsasl2-modules,
#        libsasl2-modules-db (Debian packages).
#
# SASLDB_SHARED: a directory holding the project's lab anchors
# (anchors/bench-auth.py, anchors/wait-quiet.sh), which are not part of this
# repository. Without it everything above runs with the default LOADGEN=rust;
# only LOADGEN=python needs it, and each run starts without first waiting
# for a quiet machine (QUIET_WAIT is then unused).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=benches/common.sh
source "$HERE/common.sh"
SHARED=${SASLDB_SHARED:-}
if [[ -n $SHARED ]]; then
  SHARED=$(cd "$SHARED" 2>/dev/null && pwd) || {
    echo "SASLDB_SHARED=$SASLDB_SHARED: no such directory" >&2; exit 1; }
fi
PY_LOADGEN=${SHARED:+$SHARED/anchors/bench-auth.py}
SESSIONS=${1:-${SESSIONS:-4000}}
REPEATS=${2:-${REPEATS:-5}}
C=${C:-8}
MECHS=${MECHS:-plain login cram-md5 digest-md5}
LOADGEN_KIND=${LOADGEN:-rust}
[[ $LOADGEN_KIND == rust || $LOADGEN_KIND == python ]] || { echo "LOADGEN: rust or python" >&2; exit 1; }
if [[ $LOADGEN_KIND == python && ! -f $PY_LOADGEN ]]; then
  echo "LOADGEN=python runs anchors/bench-auth.py: set SASLDB_SHARED to the directory holding anchors/ (or use LOADGEN=rust)" >&2
  exit 1
fi
MAX_SECONDS=${MAX_SECONDS:-30}
QUIET_WAIT=${QUIET_WAIT:-10}
REALM=lab.example
MYHOST=mx.lab.example

[[ $(id -u) -eq 0 ]] || { echo "bench-authd.sh: run as root (Postfix's master)" >&2; exit 1; }
need() { command -v "$1" >/dev/null || { echo "$1 missing (apt-get install $2)" >&2; exit 1; }; }
need python3 python3
need postfix postfix
need postconf postfix
need saslpasswd2 sasl2-bin
need cargo cargo
[[ -e /usr/lib/x86_64-linux-gnu/sasl2/libsasldb.so || -n $(find /usr/lib -name 'libsasldb.so*' -print -quit 2>/dev/null) ]] ||
  { echo "Cyrus sasldb auxprop plugin missing (apt-get install libsasl2-modules-db)" >&2; exit 1; }

echo "# building: cargo build --release (smtpd-auth, saslpasswd, benches/smtp_load.rs)" >&2
(cd "$ROOT" && cargo build --release --quiet --bin smtpd-auth --bin saslpasswd)
SMTP_LOAD=$(build_smtp_load "$ROOT") || exit 1
GIT_REV=$(git_rev "$ROOT")
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SMTPD_AUTH=$TARGET/release/smtpd-auth
OUR_PW=$TARGET/release/saslpasswd

RES=${RES:-$TARGET/bench-authd/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RES"
RES=$(cd "$RES" && pwd)
W=$(mktemp -d /tmp/bench-authd.XXXXXX)
chmod 0755 "$W"   # Postfix's unprivileged processes reach sockets and files below

DAEMON_PID=
cleanup() {
  for inst in cyrus ours; do
    [[ -f $W/$inst/postfix/main.cf ]] && postfix -c "$W/$inst/postfix" stop >/dev/null 2>&1 || true
  done
  if [[ -n $DAEMON_PID ]]; then kill "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null || true; fi
  for inst in cyrus ours; do
    [[ -f $W/$inst/maillog ]] && cp "$W/$inst/maillog" "$RES/maillog-$inst.txt" 2>/dev/null || true
  done
  [[ -f $W/smtpd-auth.log ]] && cp "$W/smtpd-auth.log" "$RES/" || true
  rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A scratch Postfix instance: $1 name, $2 port, $3 SASL main.cf lines.
make_instance() {
  local name=$1 port=$2 sasl=$3 d=$W/$1
  mkdir -p "$d/postfix"
  cat > "$d/postfix/main.cf" <<EOF
# bench-authd.sh scratch instance "$name"
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = $MYHOST
mydomain = $REALM
myorigin = \$myhostname
smtpd_banner = \$myhostname ESMTP Postfix ($name)
biff = no
append_dot_mydomain = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 192.0.2.0/24
mydestination =
relay_domains =
relayhost =
local_recipient_maps =
alias_maps =
alias_database =
default_transport = discard:no-egress
relay_transport = discard:no-egress
local_transport = discard:no-local
virtual_transport = discard:no-virtual
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file_prefixes = $W
maillog_file = $d/maillog
smtpd_sasl_auth_enable = yes
smtpd_sasl_local_domain = $REALM
smtpd_sasl_security_options = noanonymous
smtpd_sasl_authenticated_header = no
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
$sasl
EOF
  cat > "$d/postfix/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
discard unix - - n - - discard
error unix - - n - - error
retry unix - - n - - error
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
EOF
  # postfix check runs post-install create-missing: the queue's
  # subdirectories and the data directory, with the right owners.
  install -d -m 0755 "$d/queue"
  postfix -c "$d/postfix" check >/dev/null 2>&1 || postfix -c "$d/postfix" check
}

PORT_CYRUS=$(free_port)
PORT_OURS=$(free_port)
while [[ $PORT_OURS == "$PORT_CYRUS" ]]; do PORT_OURS=$(free_port); done
MECH_LIST="PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256"

# ---- cyrus: Debian's libsasl, auxprop sasldb (Berkeley DB) ----
make_instance cyrus "$PORT_CYRUS" "smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $W/cyrus/postfix/sasl"
# Debian's Postfix reads Cyrus's smtpd.conf from \$config_directory/sasl.
mkdir -p "$W/cyrus/postfix/sasl" "$W/cyrus/db"
cat > "$W/cyrus/postfix/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $W/cyrus/db/sasldb2
mech_list: $MECH_LIST
EOF
printf '%s' alice-secret | saslpasswd2 -f "$W/cyrus/db/sasldb2" -p -c -u "$REALM" alice
chown root:postfix "$W/cyrus/db/sasldb2"; chmod 0640 "$W/cyrus/db/sasldb2"

# ---- ours: Postfix -> Dovecot protocol -> smtpd-auth -> LMDB store ----
make_instance ours "$PORT_OURS" "smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth"
mkdir -p "$W/conf"
printf 'sasldb_path: %s\nmech_list: %s\n' "$W/sasldb2" "$MECH_LIST" > "$W/conf/smtpd.conf"
printf '%s' alice-secret | SASL_CONF_PATH=$W/conf "$OUR_PW" -p -c -u "$REALM" -f "$W/sasldb2" alice
cat > "$W/smtpd-auth.cf" <<EOF
myhostname = $MYHOST
smtpd_sasl_local_domain = $REALM
cyrus_sasl_config_path = $W/conf
smtpd_sasl_path = smtpd
dovecot_auth_socket = $W/ours/queue/private/auth
dovecot_auth_socket_group = postfix
smtpd_auth_state_dir = $W/state
EOF
"$SMTPD_AUTH" -c "$W/smtpd-auth.cf" </dev/null 2>"$W/smtpd-auth.log" &
DAEMON_PID=$!
for _ in $(seq 100); do grep -q ' ready; ' "$W/smtpd-auth.log" && break; sleep 0.05; done
grep -q ' ready; ' "$W/smtpd-auth.log" || { cat "$W/smtpd-auth.log" >&2; echo "smtpd-auth did not start" >&2; exit 1; }

postfix -c "$W/cyrus/postfix" start >/dev/null 2>&1 || { cat "$W/cyrus/maillog" >&2; exit 1; }
postfix -c "$W/ours/postfix" start >/dev/null 2>&1 || { cat "$W/ours/maillog" >&2; exit 1; }

# CPU snapshot: machine busy seconds, each instance's Postfix (master and
# its children, live and reaped) and our daemon, as JSON.
cat > "$W/snap.py" <<'PY'
import json, os, sys
CLK = os.sysconf("SC_CLK_TCK")
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    return int(st[1]), [int(x) for x in st[11:15]]   # ppid; utime stime cutime cstime
def tree(master):
    _, t = stat(master)
    total = sum(t)
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid, t = stat(int(p))
            except (OSError, ValueError, IndexError):
                continue
            if ppid == master:
                total += sum(t)
    return total / CLK
with open("/proc/stat") as f:
    a = [int(x) for x in f.readline().split()[1:]]
busy = (a[0] + a[1] + a[2] + a[5] + a[6] + a[7]) / CLK
cyrus, ours, daemon = (int(x) for x in sys.argv[1:4])
print(json.dumps(dict(busy=busy, cyrus=tree(cyrus), ours=tree(ours),
                      daemon=sum(stat(daemon)[1][:2]) / CLK)))
PY
master_pid() { head -1 "$W/$1/queue/pid/master.pid" | tr -d ' '; }
MASTER_CYRUS=$(master_pid cyrus)
MASTER_OURS=$(master_pid ours)
snap() { python3 "$W/snap.py" "$MASTER_CYRUS" "$MASTER_OURS" "$DAEMON_PID"; }

# run LABEL PORT MECH N JSON: one load run; writes JSON (the load
# generator's result plus the CPU accounting) and the generator's output.
run() {
  local label=$1 port=$2 mech=$3 n=$4 json=$5
  if [[ $QUIET_WAIT != 0 ]]; then
    [[ -z $SHARED ]] || QUIET_CORES=0.3 bash "$SHARED/anchors/wait-quiet.sh" "$QUIET_WAIT" > /dev/null 2>&1 || true
  fi
  local s0 s1
  s0=$(snap)
  if [[ $LOADGEN_KIND == rust ]]; then
    "$SMTP_LOAD" --target "127.0.0.1:$port" --mode nomail --mech "$mech" --realm "$REALM" \
      --user alice --password alice-secret --concurrency "$C" --sessions "$n" \
      --duration "$MAX_SECONDS" --label "$label" --json "$json.load" > "$json.out" 2>&1 ||
      { cat "$json.out" >&2; echo "smtp_load failed ($label $mech)" >&2; exit 1; }
  else
    python3 "$PY_LOADGEN" 127.0.0.1 "$port" --mech "$mech" -c "$C" --no-mail -n "$n" -t "$MAX_SECONDS" \
      --user alice:alice-secret --realm "$REALM" --quiet-wait 0 --label "$label" \
      --json "$json.load" > "$json.out" 2>&1 ||
      { cat "$json.out" >&2; echo "bench-auth.py failed ($label $mech)" >&2; exit 1; }
  fi
  s1=$(snap)
  python3 - "$label" "$json" "$s0" "$s1" <<'PY'
import json, sys
label, path, s0, s1 = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
r = json.load(open(path + ".load"))
r = r["runs"][0] if "runs" in r else r
d = {k: s1[k] - s0[k] for k in s0}
done = r["completed"] or 1
server = d[label] + (d["daemon"] if label == "ours" else 0.0)
client = (r.get("client_cpu_ms_per_session") or 0) * done / 1000
other = d["busy"] - server - client - (d["ours"] if label == "cyrus" else d["cyrus"])
out = dict(label=label, completed=r["completed"], failures=r["failures"],
           failure_kinds=r.get("failure_kinds"), sessions_per_s=r["sessions_per_s"],
           lat_p50_ms=r.get("lat_p50_ms"), client_cpu_ms_per_session=r.get("client_cpu_ms_per_session"),
           server_cpu_ms_per_session=round(server * 1000 / done, 4),
           postfix_cpu_ms_per_session=round(d[label] * 1000 / done, 4),
           daemon_cpu_us_per_session=round(d["daemon"] * 1e6 / done, 1) if label == "ours" else None,
           elapsed_s=r["elapsed_s"], other_cores=round(other / r["elapsed_s"], 2) if r["elapsed_s"] else None)
out["noisy"] = bool(out["other_cores"] and out["other_cores"] > 0.5)
json.dump(out, open(path, "w"))
print("run", json.dumps(out))
PY
}

# Smoke and warm-up: every mechanism authenticates through both, no failure.
for mech in $MECHS; do
  for inst in cyrus ours; do
    port=$PORT_CYRUS; [[ $inst == ours ]] && port=$PORT_OURS
    QUIET_WAIT=0 run "$inst" "$port" "$mech" 200 "$RES/warmup-$inst-$mech.json" > /dev/null
    python3 - "$RES/warmup-$inst-$mech.json" <<'PY' || exit 1
import json, sys
r = json.load(open(sys.argv[1]))
if r["failures"] or not r["completed"]:
    sys.exit(f"warm-up {sys.argv[1]}: {r['failures']} failures {r['failure_kinds']}")
PY
  done
done

echo "# cyrus: 127.0.0.1:$PORT_CYRUS  ours: 127.0.0.1:$PORT_OURS (smtpd-auth pid $DAEMON_PID)" >&2
if [[ ${HOLD:-0} != 0 ]]; then
  echo "# HOLD: both instances up for $HOLD s (cyrus port $PORT_CYRUS, ours port $PORT_OURS)" >&2
  sleep "$HOLD"
fi
echo "# $REPEATS repeats x $SESSIONS nomail sessions, c=$C, mechs: $MECHS; load generator: $LOADGEN_KIND; revision $GIT_REV; results in $RES" >&2
for mech in $MECHS; do
  for r in $(seq "$REPEATS"); do
    order="cyrus ours"; (( r % 2 == 0 )) && order="ours cyrus"
    for inst in $order; do
      port=$PORT_CYRUS; [[ $inst == ours ]] && port=$PORT_OURS
      run "$inst" "$port" "$mech" "$SESSIONS" "$RES/$inst-$mech-$r.json" | sed "s/^/  [$mech $r] /" >&2
    done
  done
done

python3 - "$RES" "$MECHS" "$REPEATS" "$LOADGEN_KIND" "$C" "$GIT_REV" <<'PY'
import json, statistics, sys
res, mechs, repeats, loadgen, c, rev = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
load = lambda inst, mech, r: json.load(open(f"{res}/{inst}-{mech}-{r}.json"))
med = lambda xs: statistics.median(xs) if xs else float("nan")
summary = {}
for mech in mechs:
    cy = [load("cyrus", mech, r) for r in range(1, repeats + 1)]
    ou = [load("ours", mech, r) for r in range(1, repeats + 1)]
    s = dict(
        cyrus_sessions_per_s=med([x["sessions_per_s"] for x in cy]),
        ours_sessions_per_s=med([x["sessions_per_s"] for x in ou]),
        # per repeat, the two runs side by side: drift cancels out
        pair_ratios=[round(o["sessions_per_s"] / y["sessions_per_s"], 3) for o, y in zip(ou, cy)],
        cyrus_server_cpu_ms=med([x["server_cpu_ms_per_session"] for x in cy]),
        ours_server_cpu_ms=med([x["server_cpu_ms_per_session"] for x in ou]),
        ours_postfix_cpu_ms=med([x["postfix_cpu_ms_per_session"] for x in ou]),
        ours_daemon_cpu_us_per_auth=med([x["daemon_cpu_us_per_session"] for x in ou]),
        cyrus_lat_p50_ms=med([x["lat_p50_ms"] for x in cy]),
        ours_lat_p50_ms=med([x["lat_p50_ms"] for x in ou]),
        # The load generator's own share of the machine: near one core it
        # is the bottleneck and the figures measure the client.
        client_cores=med([(x["client_cpu_ms_per_session"] or 0) * x["sessions_per_s"] / 1000 for x in cy + ou]),
        failures=sum(x["failures"] for x in cy + ou),
        noisy_runs=sum(bool(x.get("noisy")) for x in cy + ou),
        sessions_per_s_all=dict(cyrus=[x["sessions_per_s"] for x in cy], ours=[x["sessions_per_s"] for x in ou]),
    )
    s["ratio"] = s["ours_sessions_per_s"] / s["cyrus_sessions_per_s"]
    s["pair_ratio_median"] = med(s["pair_ratios"])
    summary[mech] = s
json.dump(dict(revision=rev, loadgen=loadgen, concurrency=int(c), mechs=summary),
          open(f"{res}/summary.json", "w"), indent=1)
print()
print(f"revision {rev}; load generator {loadgen}; c={c}; {repeats} repeats; medians")
print("server CPU = the Postfix instance (master + children, incl. reaped) + smtpd-auth for ours")
print(f"{'mech':10} {'cyrus sess/s':>12} {'ours sess/s':>12} {'ours/cyrus':>10} {'pairwise':>9} "
      f"{'p50 ms c/o':>13} {'server ms/sess c/o':>19} {'smtpd-auth/auth':>16} {'client cores':>12}  noisy")
ok = True
for mech, s in summary.items():
    ok &= s["ratio"] >= 1.0 and s["failures"] == 0
    print(f"{mech:10} {s['cyrus_sessions_per_s']:>12.1f} {s['ours_sessions_per_s']:>12.1f} {s['ratio']:>10.3f} "
          f"{s['pair_ratio_median']:>9.3f} "
          f"{s['cyrus_lat_p50_ms']:>5.2f} / {s['ours_lat_p50_ms']:<5.2f} "
          f"{s['cyrus_server_cpu_ms']:>8.3f} / {s['ours_server_cpu_ms']:<8.3f} "
          f"{s['ours_daemon_cpu_us_per_auth']:>13.1f} µs {s['client_cores']:>12.2f}  {s['noisy_runs']}")
    print(f"{'':10} runs: cyrus {s['sessions_per_s_all']['cyrus']}  ours {s['sessions_per_s_all']['ours']}")
print()
if max(s["client_cores"] for s in summary.values()) > 0.75:
    print("note: the load generator used most of a core (single-threaded): it, not the servers,")
    print("      set the pace; compare the server CPU columns, or use LOADGEN=rust.")
print("goal (ours >= cyrus sessions/s, no failures):", "MET" if ok else "NOT MET")
PY
