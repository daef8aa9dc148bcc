#!/usr/bin/env bash
# Edge-case probe of a saslpasswd / sasldblistusers pair. The compat tests run it once with
# Cyrus's tools and once with ours and compare the two outputs block by block.
#
#   bash tests/data/probe-cli.sh cyrus|ours
#
# Environment: SASLPASSWD, SASLDBLISTUSERS (the programs; default: the toolset's names on
# PATH), DUMP (a command printing a store's records in `db_dump -p` form; empty: no records).
# Output: one block per case, opened by `=== label`, then the command line, `rc=N`, stdout
# lines (`out: `, sorted: the store's order is not part of the contract), stderr lines
# (`err: `) and, after some cases, the store's records (`rec: `). The scratch directory, the
# host name and the program names are replaced by TMP, HOSTNAME, SASLPASSWD and LISTUSERS so
# the two toolsets' outputs can be compared line by line.
set -uo pipefail

toolset=${1:?usage: probe-cli.sh cyrus|ours}
if [[ $toolset == cyrus ]]; then
  pw_prog=${SASLPASSWD:-saslpasswd2}
  lu_prog=${SASLDBLISTUSERS:-sasldblistusers2}
  dump_cmd=${DUMP-db5.3_dump -p}
else
  pw_prog=${SASLPASSWD:-saslpasswd}
  lu_prog=${SASLDBLISTUSERS:-sasldblistusers}
  dump_cmd=${DUMP-}
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/sasldb-probe.XXXXXX")
trap 'rm -rf -- "$scratch"' EXIT
store=$scratch/sasldb2
host=$(hostname)
pw_name=$(basename -- "$pw_prog")
lu_name=$(basename -- "$lu_prog")

# Replace what differs between runs and toolsets by fixed words.
normalise() {
  sed -e "s|$scratch|TMP|g" -e "s|$pw_name|SASLPASSWD|g" -e "s|$lu_name|LISTUSERS|g" "$@"
}

# case LABEL INPUT PROGRAM ARGS... : INPUT is a printf %b string fed on stdin, or `-` for
# /dev/null.
case_() {
  local label=$1 input=$2 rc shown
  shift 2
  if [[ $input == - ]]; then
    "$@" </dev/null >"$scratch/stdout" 2>"$scratch/stderr"
  else
    printf '%b' "$input" | "$@" >"$scratch/stdout" 2>"$scratch/stderr"
  fi
  rc=$?
  printf '=== %s\n' "$label"
  shown=$input
  if ((${#input} > 60)); then shown="<${#input} chars: ${input:0:8}...>"; fi
  {
    printf '$ %q' "$(basename -- "$1")"
    shift
    (($#)) && printf ' %q' "$@"
    [[ $shown != - ]] && printf '   <<< %q' "$shown"
    printf '\n'
  } | normalise
  printf 'rc=%d\n' "$rc"
  normalise -e "s|@$host:|@HOSTNAME:|g" "$scratch/stdout" | sed 's/^/out: /' | sort
  normalise "$scratch/stderr" | sed 's/^/err: /'
}

# The store's records, one `rec: KEY<TAB>VALUE` line each, sorted; long values (secrets)
# shortened to their length and first bytes.
records() {
  [[ -n $dump_cmd && -e $store ]] || return 0
  printf -- '--- records\n'
  $dump_cmd "$store" 2>/dev/null |
    awk '/^HEADER=END$/ { on = 1; next } /^DATA=END$/ { on = 0 } on' |
    paste - - |
    sed "s/\\\\00$host\\\\00/\\\\00HOSTNAME\\\\00/" |
    sort |
    awk -F'\t' '{
      v = $2
      if (length(v) > 70) v = sprintf(" <%d chars: %s...>", length(v) - 1, substr(v, 2, 8))
      printf "rec: %s\t%s\n", $1, v
    }'
}

long_pw=$(printf '%01000d' 0 | tr 0 x)
realm=(-u lab.example -f "$store")

printf '# probe-cli toolset=%s  (hostname normalized to HOSTNAME, temp dir to TMP)\n' "$toolset"
case_ list-missing-file         -         "$lu_prog" -f "$store"
case_ create                    secret    "$pw_prog" -p -c "${realm[@]}" alice
case_ list                      -         "$lu_prog" -f "$store"
records
case_ create-again-overwrites   other     "$pw_prog" -p -c "${realm[@]}" alice
records
case_ set-without-c-new-user    pw        "$pw_prog" -p "${realm[@]}" bob
case_ trailing-newline-stripped 'nl\n'    "$pw_prog" -p -c "${realm[@]}" nl1
case_ two-newlines              'nl\n\n'  "$pw_prog" -p -c "${realm[@]}" nl2
case_ crlf                      'cr\r\n'  "$pw_prog" -p -c "${realm[@]}" cr1
case_ empty-password            ''        "$pw_prog" -p -c "${realm[@]}" empty
case_ newline-only-password     '\n'      "$pw_prog" -p -c "${realm[@]}" nlonly
case_ utf8-password             'pässwörd' "$pw_prog" -p -c "${realm[@]}" utf
case_ space-in-password         'a b c'   "$pw_prog" -p -c "${realm[@]}" spc
case_ long-password-1000        "$long_pw" "$pw_prog" -p -c "${realm[@]}" long
case_ no-realm-uses-hostname    pw        "$pw_prog" -p -c -f "$store" norealm
case_ at-in-user-no-realm       pw        "$pw_prog" -p -c -f "$store" carol@x.example
case_ at-in-user-with-realm     pw        "$pw_prog" -p -c "${realm[@]}" dave@y.example
case_ uppercase-realm           pw        "$pw_prog" -p -c -u LAB.Example -f "$store" upper
case_ uppercase-user            pw        "$pw_prog" -p -c "${realm[@]}" Alice
case_ no-userpassword-flag-n    pw        "$pw_prog" -p -c -n "${realm[@]}" nflag
case_ list-all                  -         "$lu_prog" -f "$store"
records
case_ delete-existing           -         "$pw_prog" -d "${realm[@]}" bob
case_ delete-missing            -         "$pw_prog" -d "${realm[@]}" nosuchuser
case_ delete-missing-realm      -         "$pw_prog" -d -u nosuch.example -f "$store" alice
case_ list-after-delete         -         "$lu_prog" -f "$store"
case_ db-in-missing-dir         pw        "$pw_prog" -p -c "${realm[@]::2}" -f "$scratch/nodir/sasldb2" x
case_ bad-option                -         "$pw_prog" -Z
case_ no-user-arg               pw        "$pw_prog" -p -c "${realm[@]}"
case_ listusers-bad-option      -         "$lu_prog" -Z
case_ version                   -         "$pw_prog" -v
