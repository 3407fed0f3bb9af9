#!/usr/bin/env bash
# tests/sipp/run.sh — the interop suite: sipreferral-agent against SIPp
# (Debian's sip-tester), over UDP and TCP on 127.0.0.1.
#
#   bash tests/sipp/run.sh [NAME-FILTER]
#
# The agent comes from $SR_BUILD_DIR (default build/); point it at an
# ASan build to run the suite under the sanitizers. Every process is
# bounded by `timeout`, SIPp also by -timeout; all files go to a mktemp
# directory (kept and named on failure). The agent binds port 0 and
# reports its ports through --port-file on a FIFO, so nothing is guessed;
# SIPp's own listening ports come from the kernel (bind to 0, release).
# Ends with "N passed, N failed"; exits non-zero if a test failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="${SR_BUILD_DIR:-$ROOT/build}"
AGENT="$BUILD/sipreferral-agent"
FILTER="${1:-}"
PY=/usr/bin/python3
T1=20             # agent's T1 (ms): fast retransmissions, short lingering
LIMIT=60          # upper bound on any one process (s); never reached when well
SIPP_LIMIT=30     # SIPp's own -timeout (s)

for tool in sipp timeout; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "run.sh: $tool not found (bash scripts/setup.sh installs it)" >&2
    exit 2
  fi
done
if [[ ! -x "$AGENT" ]]; then
  echo "run.sh: $AGENT not built (SR_BUILD_DIR=$BUILD)" >&2
  exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sr-sipp.XXXXXX")"
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

passed=0
failed=0
failures=()
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if ((failed == 0)); then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- helpers

# why MESSAGE: records why the current test failed (it goes on checking).
why() {
  echo "    - $*" >>"$D/why"
}

# A port that is free for both UDP and TCP on 127.0.0.1, for SIPp to bind.
free_port() {
  "$PY" - <<'EOF'
import socket
for _ in range(50):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        u.close(); t.close(); continue
    u.close(); t.close()
    print(port)
    break
EOF
}

# wait_listen udp|tcp PORT: until a socket is bound there (a TCP one
# listening), from /proc/net (bounded).
wait_listen() {
  local hex i files=(/proc/net/udp /proc/net/udp6) state=""
  hex=$(printf '%04X' "$2")
  if [[ $1 == tcp ]]; then files=(/proc/net/tcp /proc/net/tcp6) state=0A; fi
  for ((i = 0; i < 200; i++)); do
    awk -v port=":$hex" -v st="$state" \
      'substr($2, length($2) - 4) == port && (st == "" || $4 == st) {f = 1}
       END {exit !f}' "${files[@]}" 2>/dev/null && return 0
    sleep 0.02
  done
  return 1
}

# start_agent NAME ARGS...: the agent on udp+tcp 127.0.0.1 port 0 (or the
# specs in $AGENT_LISTEN), in the background. Sets APID, UPORT, TPORT.
# Output in $D/NAME.out / .err.
start_agent() {
  local name=$1 fd line tok spec listen=()
  shift
  for spec in ${AGENT_LISTEN:-udp:127.0.0.1:0 tcp:127.0.0.1:0}; do
    listen+=(--listen "$spec")
  done
  mkfifo "$D/$name.ports"
  exec {fd}<>"$D/$name.ports" # opened first: the agent never blocks
  # --foreground: the agent gets our signals once, not again via the group
  timeout --foreground -k 5 "$LIMIT" "$AGENT" "${listen[@]}" \
    --port-file "$D/$name.ports" --t1 "$T1" -v "$@" \
    >"$D/$name.out" 2>"$D/$name.err" &
  APID=$!
  PIDS+=("$APID")
  UPORT="" TPORT=""
  if read -r -t 10 -u "$fd" line; then
    for tok in $line; do
      case $tok in
      udp:*) UPORT=${tok##*:} ;;
      tcp:*) TPORT=${tok##*:} ;;
      esac
    done
  fi
  exec {fd}>&-
  if [[ -z $UPORT || -z $TPORT ]]; then
    why "agent $name did not start: $(head -c 300 "$D/$name.err")"
    return 1
  fi
}

# wait_pid PID [SECONDS]: its exit status. A process still running after
# SECONDS (default 20; only when something already went wrong) is told to
# stop, and the test fails.
wait_pid() {
  local i limit=$((${2:-20} * 20))
  for ((i = 0; i < limit; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$1" 2>/dev/null; then
    why "process $1 still running after ${2:-20}s: stopped"
    kill -TERM "$1" 2>/dev/null
  fi
  wait "$1"
}

# sipp_args NAME ARGS...: the common SIPp options (bounded, traced, and a
# free local port unless ARGS name one with -p; SIPp's default 5060/5061
# could be anyone's).
sipp_args() {
  local name=$1 a
  shift
  SIPP_ARGS=("$@" -nostdin -timeout "${SIPP_LIMIT}s" -timeout_error
    -trace_err -trace_msg -message_file "$name.msg" -error_file "$name.errors")
  for a in "$@"; do [[ $a == -p ]] && return; done
  SIPP_ARGS+=(-p "$(free_port)")
}

# run_sipp NAME ARGS...: runs SIPp in the foreground in $D.
run_sipp() {
  local name=$1
  shift
  sipp_args "$name" "$@"
  (cd "$D" && timeout -k 5 "$LIMIT" sipp "${SIPP_ARGS[@]}" \
    >"$name.sipp.out" 2>&1)
}

# sipp_bg NAME ARGS...: SIPp in the background; sets SPID.
sipp_bg() {
  local name=$1
  shift
  sipp_args "$name" "$@"
  (cd "$D" && exec timeout -k 5 "$LIMIT" sipp "${SIPP_ARGS[@]}" \
    >"$name.sipp.out" 2>&1) &
  SPID=$!
  PIDS+=("$SPID")
}

# expect_rc WHAT GOT WANT
expect_rc() {
  if [[ $2 -ne $3 ]]; then why "$1 exited $2, expected $3"; fi
}

# test NAME FUNCTION ARGS...: runs one test in its own directory.
t() {
  local name=$1
  shift
  if [[ -n $FILTER && $name != *$FILTER* ]]; then return 0; fi
  D="$WORK/$name"
  mkdir -p "$D"
  : >"$D/why"
  "$@"
  if [[ ! -s "$D/why" ]]; then
    passed=$((passed + 1))
    echo "ok    $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL  $name   (files: $D)"
    cat "$D/why"
    local f
    for f in "$D"/*.err "$D"/*.errors; do
      [[ -s $f ]] || continue
      echo "    --- $(basename "$f") (last lines)"
      tail -n 15 "$f" | sed 's/^/    /'
    done
  fi
}

# ---------------------------------------------------------------- command line

# one_line_error EXPECTED-STATUS ARGS...: the agent fails at once with a
# single line on stderr.
one_line_error() {
  local want=$1 rc
  shift
  timeout -k 5 20 "$AGENT" "$@" >"$D/cli.out" 2>"$D/cli.err"
  rc=$?
  expect_rc "agent $*" "$rc" "$want"
  [[ $(wc -l <"$D/cli.err") -eq 1 ]] ||
    why "agent $*: expected one line on stderr, got: $(cat "$D/cli.err")"
}

cli() {
  local flag out rc
  out=$(timeout 10 "$AGENT" --help)
  expect_rc "--help" $? 0
  for flag in --listen --uri --on-invite --on-refer \
    --allow-out-of-dialog-refer --allow-scheme --script --max-calls \
    --duration --pcap --ladder --verbose --log-level --help --version \
    --call --bye-after --username --password --t1 --stats --port-file \
    --max-connections --outbound-proxy; do
    grep -q -- "$flag" <<<"$out" || why "--help does not document $flag"
  done
  out=$(timeout 10 "$AGENT" --version)
  [[ $out == "sipreferral-agent "[0-9]* ]] || why "--version printed '$out'"
  one_line_error 2 --no-such-flag
  one_line_error 2 --on-refer reject:200
  one_line_error 2 --on-invite maybe
  one_line_error 2 --max-calls -1
  one_line_error 2 --max-connections 0
  one_line_error 2 --listen sctp:127.0.0.1:0
  one_line_error 2 --listen udp:127.0.0.1:0 stray-argument
  one_line_error 2 --username alice
  one_line_error 2 --listen udp:127.0.0.1:0 --call not-a-uri
  one_line_error 2 --listen udp:127.0.0.1:0 --outbound-proxy sips:127.0.0.1
  one_line_error 2 --listen udp:127.0.0.1:0 --call sip:carol@pbx.example.com
  one_line_error 2 --listen udp:127.0.0.1:0 --call sips:carol@127.0.0.1
  grep -q "sips needs TLS" "$D/cli.err" || why "--call sips: $(cat "$D/cli.err")"
  one_line_error 1 --listen udp:127.0.0.1:0 --outbound-proxy sip:no-such-host.invalid
  one_line_error 2 --listen udp:127.0.0.1:0 --script "$D/no-such.lua"
  printf 'function on_refer(r)\n' >"$D/syntax.lua"
  one_line_error 2 --listen udp:127.0.0.1:0 --script "$D/syntax.lua"
  printf 'x = 1\n' >"$D/empty.lua"
  one_line_error 2 --listen udp:127.0.0.1:0 --script "$D/empty.lua"
  # 192.0.2.0/24 is TEST-NET-1: never a local address
  one_line_error 1 --listen udp:192.0.2.1:5060
  # a port already taken (the first agent holds it)
  start_agent holder || return
  one_line_error 1 --listen "udp:127.0.0.1:$UPORT"
  one_line_error 1 --listen "tcp:127.0.0.1:$TPORT"
  kill -INT "$APID"
  wait_pid "$APID"
  expect_rc "agent after SIGINT" $? 0
  # --duration ends it cleanly by itself; -v shows info lines
  timeout -k 5 20 "$AGENT" --listen udp:127.0.0.1:0 --duration 0.2 -v \
    --stats >"$D/dur.out" 2>"$D/dur.err"
  expect_rc "agent --duration 0.2" $? 0
  grep -q " info: " "$D/dur.err" || why "-v printed no info lines"
  grep -q "stats ua:" "$D/dur.out" || why "--stats printed nothing"
  timeout -k 5 20 "$AGENT" --listen udp:127.0.0.1:0 --duration 0.2 \
    --log-level error >"$D/quiet.out" 2>"$D/quiet.err"
  expect_rc "agent --log-level error" $? 0
  [[ ! -s "$D/quiet.err" ]] || why "--log-level error still logged"
}

t cli cli

# ---------------------------------------------------------------- issue #2

# sipp -sn uac: 20 calls into the agent, which answers (180, 200).
# --max-connections 2: a third TCP connection is closed at once (and
# logged); the first two are served.
max_connections() {
  start_agent maxconn --max-connections 2 || return
  local c1 c2 c3 line rc
  exec {c1}<>"/dev/tcp/127.0.0.1/$TPORT" {c2}<>"/dev/tcp/127.0.0.1/$TPORT" \
    {c3}<>"/dev/tcp/127.0.0.1/$TPORT"
  read -r -t 10 -u "$c3" line
  rc=$?
  [[ $rc -eq 1 ]] || why "the third connection was not closed (read: $rc)"
  printf 'OPTIONS sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKmaxconn1\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\nCall-ID: maxconn1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' >&"$c1"
  read -r -t 10 -u "$c1" line
  [[ $line == "SIP/2.0 200 "* ]] || why "OPTIONS on the first connection: '$line'"
  grep -q "connection limit (2) reached" "$D/maxconn.err" ||
    why "the refused connection was not logged"
  exec {c1}>&- {c2}>&- {c3}>&-
  kill -TERM "$APID"
  wait_pid "$APID"
  expect_rc "agent after SIGTERM" $? 0
}

uac_calls() {
  local tp=$1 port
  start_agent agent --max-calls 20 --stats || return
  [[ $tp == t1 ]] && port=$TPORT || port=$UPORT
  run_sipp uac -sn uac "127.0.0.1:$port" -t "$tp" -m 20 -r 50 -l 10 -d 10
  expect_rc "sipp -sn uac" $? 0
  # SIPp's final screen: "Successful call | <periodic> | <cumulative>"
  grep -Eq "Successful call +\| +[0-9]+ +\| +20 " "$D/uac.sipp.out" ||
    why "sipp did not report 20 successful calls"
  wait_pid "$APID"
  expect_rc "agent (exits after --max-calls 20)" $? 0
  grep -q "stats process: sessions=0 referrals=0 referrers=0" "$D/agent.out" ||
    why "agent left objects alive: $(grep stats "$D/agent.out")"
}

# --bye-after with several calls up at once, established one after the
# other: the agent hangs up each of them (its queue of calls to hang up).
bye_after_calls() {
  local tp=$1 port
  start_agent agent --max-calls 6 --bye-after 0.3 --stats || return
  [[ $tp == t1 ]] && port=$TPORT || port=$UPORT
  run_sipp uac -sf "$HERE/uac_hung_up.xml" "127.0.0.1:$port" -t "$tp" -m 6 \
    -r 20 -l 6
  expect_rc "sipp uac_hung_up (6 calls the agent hangs up)" $? 0
  wait_pid "$APID"
  expect_rc "agent (exits after --max-calls 6)" $? 0
  [[ $(grep -c "hanging up" "$D/agent.err") -eq 6 ]] ||
    why "agent did not hang up 6 calls: $(grep -c "hanging up" "$D/agent.err")"
  grep -q "stats process: sessions=0 referrals=0 referrers=0" "$D/agent.out" ||
    why "agent left objects alive: $(grep stats "$D/agent.out")"
}

# An Inviter (the agent's --call) against sipp -sn uas.
call_uas() {
  local tp=$1 sport target
  sport=$(free_port)
  sipp_bg uas -sn uas -p "$sport" -t "$tp" -m 1 -i 127.0.0.1
  wait_listen "$([[ $tp == t1 ]] && echo tcp || echo udp)" "$sport" ||
    why "sipp uas did not listen"
  target="sip:service@127.0.0.1:$sport"
  [[ $tp == t1 ]] && target="$target;transport=tcp"
  # No --max-calls: over TCP, SIPp counts a call as failed when the
  # connection closes during the scenario's final timewait, so the agent
  # stays until SIPp is done, then gets SIGTERM (exit 3 if its call failed).
  start_agent agent --call "$target" --bye-after 0 || return
  wait_pid "$SPID"
  expect_rc "sipp -sn uas" $? 0
  kill -TERM "$APID"
  wait_pid "$APID"
  expect_rc "agent --call, then SIGTERM" $? 0
}

# An Inviter challenged with 401 retries with credentials (checked by
# SIPp's verifyauth); with a wrong password the call fails.
call_auth() {
  local tp=$1 password=$2 want_agent=$3 want_sipp=$4 sport target
  sport=$(free_port)
  sipp_bg uas_auth -sf "$HERE/uas_auth.xml" -p "$sport" -t "$tp" -m 1 \
    -i 127.0.0.1
  wait_listen "$([[ $tp == t1 ]] && echo tcp || echo udp)" "$sport" ||
    why "sipp uas_auth did not listen"
  target="sip:service@127.0.0.1:$sport"
  [[ $tp == t1 ]] && target="$target;transport=tcp"
  start_agent agent --call "$target" --bye-after 0 --max-calls 1 \
    --username alice --password "$password" || return
  wait_pid "$APID"
  expect_rc "agent --call with --password $password" $? "$want_agent"
  wait_pid "$SPID"
  expect_rc "sipp uas_auth" $? "$want_sipp"
}

# tshark on a capture, SIP's heuristics tried before port numbers: an
# ephemeral port the kernel gave SIPp may be another protocol's (34962 is
# PROFINET's), and the SIP in it would not be decoded.
tshark_sip() {
  tshark -o udp.try_heuristic_first:TRUE -o tcp.try_heuristic_first:TRUE "$@"
}

# IPv6: sipp -sn uac over [::1], and the --pcap of it (IPv6 records).
uac_ipv6() {
  local tp=$1 port
  AGENT_LISTEN="udp:[::1]:0 tcp:[::1]:0" start_agent agent --max-calls 3 \
    --pcap "$D/agent.pcap" || return
  [[ $tp == t1 ]] && port=$TPORT || port=$UPORT
  run_sipp uac -sn uac "[::1]:$port" -t "$tp" -m 3 -i ::1
  expect_rc "sipp -sn uac over ::1" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
  tshark_sip -r "$D/agent.pcap" -Y "ipv6 && sip.Method == INVITE" 2>/dev/null |
    grep -q INVITE || why "tshark found no INVITE over IPv6 in the pcap"
}

t max-connections max_connections
t uac-udp uac_calls u1
t uac-tcp uac_calls t1
t uac-ipv6-udp uac_ipv6 u1
t uac-ipv6-tcp uac_ipv6 t1
t bye-after-udp bye_after_calls u1
t bye-after-tcp bye_after_calls t1
t call-uas-udp call_uas u1
t call-uas-tcp call_uas t1
t auth-401-udp call_auth u1 wonderland 0 0
t auth-401-tcp call_auth t1 wonderland 0 0
t auth-401-wrong-password call_auth u1 guess 3 1

# ---------------------------------------------------------------- issue #6

# render TEMPLATE OUT NAME=VALUE...: a scenario for this test (render.py).
render() {
  local tpl=$1 out=$2
  shift 2
  "$PY" "$HERE/render.py" "$HERE/$tpl" "$D/$out" "$@" || why "render $tpl"
}

# target_uri PORT TP [URI-HEADERS]: a Refer-To value for the SIPp target.
target_uri() {
  local uri="sip:target@127.0.0.1:$1"
  [[ $2 == t1 ]] && uri="$uri;transport=tcp"
  echo "<$uri${3:+?$3}>"
}

listen_kind() { [[ $1 == t1 ]] && echo tcp || echo udp; }
agent_port() { [[ $1 == t1 ]] && echo "$TPORT" || echo "$UPORT"; }

# wait_grep FILE REGEX: until a line matches (bounded).
wait_grep() {
  local i
  for ((i = 0; i < 500; i++)); do
    grep -Eq "$2" "$1" 2>/dev/null && return 0
    sleep 0.02
  done
  return 1
}

# What every transfer target checks in the referee's INVITE: Referred-By
# names the referrer, no header smuggled in the Refer-To URI leaked (as a
# header or in the Request-URI), and From is the agent's --uri.
CHK_REFERRED_BY='<ereg regexp="sip:referrer@127\.0\.0\.1" search_in="hdr" header="Referred-By:" check_it="true" assign_to="chk"/>'
CHK_NO_LEAK='<ereg regexp="X-Leak|Subject|leaked" search_in="msg" check_it_inverse="true" assign_to="chk"/>'
CHK_RURI='<ereg regexp="^INVITE sip:target@127\.0\.0\.1:[0-9]+(;transport=tcp)? SIP/2\.0" search_in="msg" check_it="true" assign_to="chk"/>'
CHK_RURI_NAME='<ereg regexp="^INVITE sip:target@pbx\.example\.com SIP/2\.0" search_in="msg" check_it="true" assign_to="chk"/>'
CHK_FROM='<ereg regexp="sip:bob@127\.0\.0\.1" search_in="hdr" header="From:" check_it="true" assign_to="chk"/>'
# No "^" here: SIPp's regexps have no REG_NEWLINE, so on search_in="msg"
# "^" is the start line only. Case matters: "Supported: replaces" is not it.
CHK_NO_REPLACES='<ereg regexp="Replaces:" search_in="msg" check_it_inverse="true" assign_to="chk"/>'
CHK_REPLACES='<ereg regexp="^ *call-1@127\.0\.0\.1;to-tag=111;from-tag=222 *$" search_in="hdr" header="Replaces:" check_it="true" assign_to="chk"/>'
REFERRED_BY='Referred-By: <sip:referrer@[local_ip]:[local_port]>'
LEAKY='X-Leak=1&Subject=leaked'
REPLACES='Replaces=call-1%40127.0.0.1%3Bto-tag%3D111%3Bfrom-tag%3D222'

# check_pcap FILE: tshark decodes the REFER/NOTIFY flow from --pcap.
check_pcap() {
  local out
  if ! command -v tshark >/dev/null 2>&1; then
    why "tshark not installed"
    return
  fi
  out=$(tshark_sip -r "$1" -Y sip -T fields -e sip.Method -e sip.Status-Code \
    2>"$D/tshark.err")
  echo "$out" >"$D/tshark.out"
  grep -q "^REFER" <<<"$out" || why "tshark: no REFER in $1"
  grep -q "^NOTIFY" <<<"$out" || why "tshark: no NOTIFY in $1"
  grep -q "202" <<<"$out" || why "tshark: no 202 in $1"
}

# A transfer with SIPp as referrer and as target: blind or attended, over
# UDP (optionally with 10% loss at both SIPps, three transfers) or TCP.
transfer() {
  local tp=$1 kind=$2 lost=${3:-0} tport n=1 refer_to checks
  local lossy=() slow=()
  # Under loss the agent runs with T1 = 100 ms: libosip2 spaces non-INVITE
  # retransmissions after the first in its own 500 ms steps while Timer F
  # is 64*T1, so a smaller T1 leaves a NOTIFY only three tries.
  if ((lost)); then lossy=(-lost 10) n=3 slow=(--t1 100); fi
  tport=$(free_port)
  checks="$CHK_REFERRED_BY $CHK_NO_LEAK $CHK_RURI $CHK_FROM"
  if [[ $kind == attended ]]; then
    refer_to=$(target_uri "$tport" "$tp" "$REPLACES&$LEAKY")
    checks="$checks $CHK_REPLACES"
  else
    refer_to=$(target_uri "$tport" "$tp" "$LEAKY")
    checks="$checks $CHK_NO_REPLACES"
  fi
  render target_answer.xml target.xml TARGET_CHECKS="$checks"
  render referrer_blind.xml referrer.xml \
    REFER_HEADERS="Refer-To: $refer_to"$'\n'"$REFERRED_BY"
  sipp_bg target -sf "$D/target.xml" -p "$tport" -t "$tp" -m "$n" -l 1 \
    -i 127.0.0.1 "${lossy[@]}"
  wait_listen "$(listen_kind "$tp")" "$tport" || why "target did not listen"
  start_agent agent --uri sip:bob@127.0.0.1 --max-calls "$n" --ladder \
    --pcap "$D/agent.pcap" --stats "${slow[@]}" || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m "$n" -l 1 -s agent -i 127.0.0.1 "${lossy[@]}"
  expect_rc "sipp referrer" $? 0
  wait_pid "$SPID"
  expect_rc "sipp target" $? 0
  wait_pid "$APID"
  expect_rc "agent (exits after --max-calls $n)" $? 0
  grep -q " REFER sip:" "$D/agent.out" || why "no REFER in the --ladder output"
  grep -q " NOTIFY sip:.*\[SIP/2.0 200" "$D/agent.out" ||
    why "no final NOTIFY in the --ladder output"
  grep -q "stats process: sessions=0 referrals=0 referrers=0" "$D/agent.out" ||
    why "agent left objects alive: $(grep stats "$D/agent.out")"
  check_pcap "$D/agent.pcap"
}

# one_transfer TP TPORT WHAT AGENT_ARGS...: SIPp as the target on TPORT
# (target.xml), the agent with AGENT_ARGS, SIPp as the referrer
# (referrer.xml), one call; each must exit 0 (WHAT names the target's).
one_transfer() {
  local tp=$1 tport=$2 what=$3
  shift 3
  sipp_bg target -sf "$D/target.xml" -p "$tport" -t "$tp" -m 1 -i 127.0.0.1
  wait_listen "$(listen_kind "$tp")" "$tport" || why "target did not listen"
  start_agent agent "$@" || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp referrer" $? 0
  wait_pid "$SPID"
  expect_rc "$what" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
}

# The target answers 486: the final NOTIFY says so.
transfer_busy() {
  local tp=$1 tport
  tport=$(free_port)
  render target_busy.xml target.xml TARGET_CHECKS="$CHK_REFERRED_BY"
  render referrer_final.xml referrer.xml FINAL=486 \
    REFER_HEADERS="Refer-To: $(target_uri "$tport" "$tp")"$'\n'"$REFERRED_BY"
  one_transfer "$tp" "$tport" "sipp target" --max-calls 1
}

# REFERs the agent refuses: CODE, agent flags, REFER header lines.
refused() {
  local tp=$1 code=$2 flags=$3 headers=$4
  render referrer_refused.xml referrer.xml CODE="$code" \
    REFER_HEADERS="$headers"
  # shellcheck disable=SC2086 # flags are words
  start_agent agent --max-calls 1 --ladder $flags || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp referrer (expects $code)" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
  if grep -q " NOTIFY sip:" "$D/agent.out"; then
    why "a refused REFER was followed by a NOTIFY"
  fi
}

# --allow-scheme tel: the tel: REFER is accepted, but a tel: target cannot
# be called, so the final NOTIFY says 416.
allow_scheme() {
  local tp=$1
  render referrer_final.xml referrer.xml FINAL=416 \
    REFER_HEADERS="Refer-To: <tel:+15551234567>"$'\n'"$REFERRED_BY"
  start_agent agent --allow-scheme tel --max-calls 1 || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp referrer (202, NOTIFY 100, NOTIFY 416)" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
}

# --outbound-proxy: SIPp plays the proxy (and the target). The Refer-To
# names a host; the INVITE comes to the proxy with it as Request-URI and
# the proxy as its Route.
outbound_proxy() {
  local tp=$1 tport proxy route
  tport=$(free_port)
  proxy="sip:127.0.0.1:$tport"
  [[ $tp == t1 ]] && proxy="$proxy;transport=tcp"
  route="<ereg regexp=\"^ *&lt;${proxy//./\\.};lr> *\$\" search_in=\"hdr\" header=\"Route:\" check_it=\"true\" assign_to=\"chk\"/>"
  render target_answer.xml target.xml \
    TARGET_CHECKS="$CHK_REFERRED_BY $CHK_RURI_NAME $route"
  render referrer_blind.xml referrer.xml \
    REFER_HEADERS="Refer-To: <sip:target@pbx.example.com>"$'\n'"$REFERRED_BY"
  one_transfer "$tp" "$tport" "sipp proxy and target (Request-URI, Route)" \
    --outbound-proxy "$proxy" --max-calls 1 --ladder
}

# Without --outbound-proxy a Refer-To naming a host cannot be called:
# 202, NOTIFY 100, then a final NOTIFY 503 (RFC 3263 §4.3).
host_name_no_proxy() {
  local tp=$1
  render referrer_final.xml referrer.xml FINAL=503 \
    REFER_HEADERS="Refer-To: <sip:target@pbx.example.com>"$'\n'"$REFERRED_BY"
  start_agent agent --max-calls 1 || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp referrer (202, NOTIFY 100, NOTIFY 503)" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
}

# REFER outside a dialog, or in an unknown one: TO_TAG, CODE.
refer_ood() {
  local tp=$1 to_tag=$2 code=$3
  render refer_ood.xml referrer.xml TO_TAG="$to_tag" CODE="$code" \
    REFER_HEADERS="Refer-To: <sip:carol@127.0.0.1:9>"$'\n'"$REFERRED_BY"
  start_agent agent || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp (expects $code)" $? 0
  kill -TERM "$APID"
  wait_pid "$APID"
  expect_rc "agent after SIGTERM" $? 0
}

# --allow-out-of-dialog-refer: the REFER is followed, NOTIFYs in its own
# dialog.
refer_ood_follow() {
  local tp=$1 tport
  tport=$(free_port)
  render target_answer.xml target.xml \
    TARGET_CHECKS="$CHK_REFERRED_BY $CHK_NO_LEAK $CHK_RURI"
  render refer_ood_follow.xml referrer.xml \
    REFER_HEADERS="Refer-To: $(target_uri "$tport" "$tp" "$LEAKY")"$'\n'"$REFERRED_BY"
  sipp_bg target -sf "$D/target.xml" -p "$tport" -t "$tp" -m 1 -i 127.0.0.1
  wait_listen "$(listen_kind "$tp")" "$tport" || why "target did not listen"
  start_agent agent --allow-out-of-dialog-refer || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp referrer" $? 0
  wait_pid "$SPID"
  expect_rc "sipp target" $? 0
  kill -TERM "$APID"
  wait_pid "$APID"
  expect_rc "agent after SIGTERM" $? 0
}

# Refer-Sub: false: 202 with Refer-Sub: false, the transfer happens, and
# the agent sends no NOTIFY at all.
refer_sub_false() {
  local tp=$1 tport
  tport=$(free_port)
  render target_answer.xml target.xml TARGET_CHECKS="$CHK_REFERRED_BY"
  render referrer_refersub.xml referrer.xml \
    REFER_HEADERS="Refer-To: $(target_uri "$tport" "$tp")"$'\n'"$REFERRED_BY"$'\n'"Refer-Sub: false"
  one_transfer "$tp" "$tport" "sipp target (the transfer happened)" \
    --max-calls 1 --ladder
  if grep -q " NOTIFY sip:" "$D/agent.out"; then
    why "NOTIFY sent despite Refer-Sub: false"
  fi
}

# accept_only TP SCENARIO: SIPp plays SCENARIO as the referrer against an
# agent that accepts REFERs and never follows them (--on-refer accept).
accept_only() {
  local tp=$1
  render "$2" referrer.xml \
    REFER_HEADERS="Refer-To: <sip:carol@127.0.0.1:9>"$'\n'"$REFERRED_BY"
  start_agent agent --on-refer accept --max-calls 1 --ladder || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp referrer" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
  if grep -q " INVITE sip:carol" "$D/agent.out"; then
    why "--on-refer accept placed a call"
  fi
}

# Two REFERs in one call: ids 2 and 3.
two_refers() { accept_only "$1" referrer_two.xml; }

# The referrer refreshes and then ends its subscription with SUBSCRIBE
# (the subscription stays active until then).
refer_subscribe() { accept_only "$1" referrer_subscribe.xml; }

# The referrer hangs up while the target rings: no NOTIFY after its BYE;
# the agent's SIGTERM then cancels the ringing call.
referrer_hangup() {
  local tp=$1 tport
  tport=$(free_port)
  render target_ring.xml target.xml TARGET_CHECKS="$CHK_REFERRED_BY"
  render referrer_hangup.xml referrer.xml \
    REFER_HEADERS="Refer-To: $(target_uri "$tport" "$tp")"$'\n'"$REFERRED_BY"
  sipp_bg target -sf "$D/target.xml" -p "$tport" -t "$tp" -m 1 -i 127.0.0.1
  wait_listen "$(listen_kind "$tp")" "$tport" || why "target did not listen"
  start_agent agent --ladder || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp referrer" $? 0
  kill -TERM "$APID"
  wait_pid "$APID"
  expect_rc "agent after SIGTERM" $? 0
  wait_pid "$SPID"
  expect_rc "sipp target (cancelled)" $? 0
  if sed -n '/  BYE sip:/,$p' "$D/agent.out" | grep -q " NOTIFY sip:"; then
    why "NOTIFY after the referrer's BYE"
  fi
  grep -q " CANCEL sip:" "$D/agent.out" || why "no CANCEL to the target"
}

# SIGTERM with an active subscription: final NOTIFY, BYE, exit 0.
shutdown_notify() {
  local tp=$1
  render referrer_shutdown.xml referrer.xml \
    REFER_HEADERS="Refer-To: <sip:carol@127.0.0.1:9>"$'\n'"$REFERRED_BY"
  start_agent agent --on-refer accept --ladder || return
  sipp_bg referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  wait_grep "$D/agent.out" " NOTIFY sip:.*\[SIP/2.0 100" ||
    why "no NOTIFY 100 before the signal"
  kill -TERM "$APID"
  wait_pid "$APID"
  expect_rc "agent after SIGTERM" $? 0
  wait_pid "$SPID"
  expect_rc "sipp referrer (final NOTIFY, then BYE)" $? 0
}

# The same without --ladder (the message hook is set only at shutdown),
# the final NOTIFY answered late: the BYE waits for that answer.
shutdown_notify_quiet() {
  local tp=$1
  render referrer_shutdown_slow.xml referrer.xml \
    REFER_HEADERS="Refer-To: <sip:carol@127.0.0.1:9>"$'\n'"$REFERRED_BY"
  start_agent agent --on-refer accept || return
  sipp_bg referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  wait_grep "$D/referrer.msg" "Subscription-State: *active" ||
    why "no active NOTIFY before the signal"
  kill -TERM "$APID"
  wait_pid "$APID"
  expect_rc "agent after SIGTERM" $? 0
  wait_pid "$SPID"
  expect_rc "sipp referrer (late answer to the final NOTIFY, then BYE)" $? 0
}

# --on-invite reject:CODE and ignore.
invite_reject() {
  local tp=$1
  render uac_rejected.xml uac.xml CODE=486
  start_agent agent --on-invite reject:486 --max-calls 1 || return
  run_sipp uac -sf "$D/uac.xml" "127.0.0.1:$(agent_port "$tp")" -t "$tp" \
    -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp (expects 486)" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
}

invite_ignore() {
  local tp=$1
  start_agent agent --on-invite ignore --max-calls 1 || return
  run_sipp uac -sf "$HERE/uac_cancel.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp (only 100, then CANCEL: 200 and 487)" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
}

# --script: a Lua policy (tests/sipp/policy.lua) follows a REFER itself
# and hears the follow-up call's progress (on_notify); it refuses REFERs
# to "blocked" with 403.
script_follow() {
  local tp=$1 tport
  tport=$(free_port)
  render target_answer.xml target.xml \
    TARGET_CHECKS="$CHK_REFERRED_BY $CHK_NO_LEAK $CHK_RURI"
  render referrer_blind.xml referrer.xml \
    REFER_HEADERS="Refer-To: $(target_uri "$tport" "$tp" "$LEAKY")"$'\n'"$REFERRED_BY"
  sipp_bg target -sf "$D/target.xml" -p "$tport" -t "$tp" -m 1 -i 127.0.0.1
  wait_listen "$(listen_kind "$tp")" "$tport" || why "target did not listen"
  start_agent agent --script "$HERE/policy.lua" --max-calls 1 --stats || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp referrer" $? 0
  wait_pid "$SPID"
  expect_rc "sipp target" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
  grep -q "^script on_invite sip:referrer@" "$D/agent.out" ||
    why "the script's on_invite was not called"
  grep -q "^script on_refer 2 target" "$D/agent.out" ||
    why "the script's on_refer was not called"
  grep -q "^script on_notify 2 180 Ringing" "$D/agent.out" ||
    why "no on_notify 180"
  grep -q "^script on_notify 2 200 OK" "$D/agent.out" || why "no on_notify 200"
  grep -q "stats process: sessions=0 referrals=0 referrers=0" "$D/agent.out" ||
    why "agent left objects alive: $(grep stats "$D/agent.out")"
}

script_reject() {
  local tp=$1
  render referrer_refused.xml referrer.xml CODE=403 \
    REFER_HEADERS="Refer-To: <sip:blocked@127.0.0.1:9>"$'\n'"$REFERRED_BY"
  start_agent agent --script "$HERE/policy.lua" --max-calls 1 || return
  run_sipp referrer -sf "$D/referrer.xml" "127.0.0.1:$(agent_port "$tp")" \
    -t "$tp" -m 1 -s agent -i 127.0.0.1
  expect_rc "sipp referrer (expects 403)" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
}

# A script that fails: its error is logged, the flags decide.
script_error() {
  local tp=$1
  printf 'function on_invite(inv) error("policy bug") end\n' >"$D/bad.lua"
  start_agent agent --script "$D/bad.lua" --max-calls 1 || return
  run_sipp uac -sn uac "127.0.0.1:$(agent_port "$tp")" -t "$tp" -m 1 \
    -i 127.0.0.1
  expect_rc "sipp -sn uac (answered by the flags)" $? 0
  wait_pid "$APID"
  expect_rc "agent" $? 0
  grep -q "policy bug" "$D/agent.err" || why "the script error was not logged"
}

for tp in u1 t1; do
  x=$([[ $tp == t1 ]] && echo tcp || echo udp)
  t "blind-$x" transfer "$tp" blind
  t "attended-$x" transfer "$tp" attended
  t "target-busy-$x" transfer_busy "$tp"
  t "reject-603-$x" refused "$tp" 603 "--on-refer reject:603" \
    "Refer-To: <sip:carol@127.0.0.1:9>"$'\n'"$REFERRED_BY"
  t "no-refer-to-$x" refused "$tp" 400 "" "$REFERRED_BY"
  t "two-refer-to-$x" refused "$tp" 400 "" \
    "Refer-To: <sip:carol@127.0.0.1:9>"$'\n'"Refer-To: <sip:dave@127.0.0.1:9>"
  t "tel-target-$x" refused "$tp" 416 "" "Refer-To: <tel:+15551234567>"
  t "allow-scheme-tel-$x" allow_scheme "$tp"
  t "outbound-proxy-$x" outbound_proxy "$tp"
  t "host-name-no-proxy-$x" host_name_no_proxy "$tp"
  t "out-of-dialog-$x" refer_ood "$tp" "" 405
  t "unknown-dialog-$x" refer_ood "$tp" ";tag=nosuchdialog" 481
  t "out-of-dialog-allowed-$x" refer_ood_follow "$tp"
  t "refer-sub-false-$x" refer_sub_false "$tp"
  t "two-refers-$x" two_refers "$tp"
  t "subscribe-refresh-$x" refer_subscribe "$tp"
  t "referrer-hangs-up-$x" referrer_hangup "$tp"
  t "sigterm-final-notify-$x" shutdown_notify "$tp"
  [[ $tp == t1 ]] && t "sigterm-final-notify-quiet-$x" shutdown_notify_quiet "$tp"
  t "on-invite-reject-$x" invite_reject "$tp"
  t "on-invite-ignore-$x" invite_ignore "$tp"
  t "script-follow-$x" script_follow "$tp"
  t "script-reject-$x" script_reject "$tp"
done
t "script-error" script_error u1
# The demo: the real agent as Bob, with the library's Alice and Carol.
demo() {
  if [[ ! -x "$BUILD/sipreferral-demo" ]]; then
    why "$BUILD/sipreferral-demo not built"
    return
  fi
  timeout -k 5 "$LIMIT" "$BUILD/sipreferral-demo" >"$D/demo.out" 2>"$D/demo.err"
  expect_rc "sipreferral-demo" $? 0
  grep -q "^blind transfer: PASS" "$D/demo.out" || why "blind transfer failed"
  grep -q "^attended transfer: PASS" "$D/demo.out" ||
    why "attended transfer failed"
  grep -q "Bob   -> Carol  UDP  INVITE .*Replaces: " "$D/demo.out" ||
    why "no ladder line for the INVITE with Replaces"
}

t demo demo
t "blind-udp-lost-10" transfer u1 blind 1
t "attended-udp-lost-10" transfer u1 attended 1

echo
if ((failed)); then echo "failed: ${failures[*]} (files under $WORK)"; fi
echo "$passed passed, $failed failed"
((failed == 0))
