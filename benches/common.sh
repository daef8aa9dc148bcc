# benches/common.sh: sourced by the bench scripts (not run on its own).

# build_smtp_load ROOT: build benches/smtp_load.rs (release) and print the
# path of its executable.
build_smtp_load() {
  local exe
  exe=$(cd "$1" && cargo bench --quiet --bench smtp_load --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "smtp_load" and m.get("executable"):
        print(m["executable"])')
  [[ -x $exe ]] || { echo "load generator benches/smtp_load.rs not built" >&2; return 1; }
  echo "$exe"
}

# git_rev ROOT: the revision measured, "+dirty" with uncommitted changes.
git_rev() {
  echo "$(cd "$1" && git rev-parse --short HEAD 2>/dev/null)$(cd "$1" && git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
}

# Wait until something listens on 127.0.0.1:PORT (ss, from iproute2), 30 s at most.
wait_port() {  # port
  local i
  for ((i = 0; i < 300; i++)); do
    ss -Hltn "sport = :$1" | grep -q . && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}
