#!/usr/bin/env bash
# Soak: SIPp call transfers with packet loss against sipreferral-agent, for
# a bounded time. Alice (SIPp) calls the agent and REFERs it to Carol (SIPp,
# answering); the agent follows, NOTIFYs Alice, and hangs up on Carol a few
# seconds later. Both SIPp instances lose 5% of what they send and receive.
#
#   bash scripts/soak.sh [--minutes N] [--rate CPS] [--loss PCT] [--build-dir DIR]
#
# Defaults: 10 minutes, 10 transfers a second, 5% loss, build/. Prints the
# transfers (completed with a final NOTIFY 200 and BYE, failed), the
# agent's RSS at start, each minute and at the end, and its live-object
# counts once everything has ended. Exits 1 when an object is left behind,
# RSS grew more than 20% after the first minute, or more than 5% of the
# transfers failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

MINUTES=10
RATE=10
LOSS=5
BUILD=build
while (($#)); do
  case "$1" in
  --minutes) MINUTES="${2:?}"; shift 2 ;;
  --rate) RATE="${2:?}"; shift 2 ;;
  --loss) LOSS="${2:?}"; shift 2 ;;
  --build-dir) BUILD="${2:?}"; shift 2 ;;
  -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for v in MINUTES RATE LOSS; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then
    echo "soak.sh: --${v,,} wants a whole number" >&2
    exit 2
  fi
done
((MINUTES >= 1 && RATE >= 1)) || { echo "soak.sh: minutes and rate must be >= 1" >&2; exit 2; }

AGENT_BIN="$BUILD/sipreferral-agent"
if [[ ! -x "$AGENT_BIN" ]]; then
  cmake -S . -B "$BUILD" -DPython3_EXECUTABLE=/usr/bin/python3 \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build "$BUILD" -j2 >/dev/null
fi
[[ -x "$AGENT_BIN" ]] || { echo "soak.sh: no $AGENT_BIN" >&2; exit 1; }
command -v sipp >/dev/null || { echo "soak.sh: sipp not found" >&2; exit 1; }
AGENT_BIN="$(cd "$(dirname "$AGENT_BIN")" && pwd)/$(basename "$AGENT_BIN")"

SECS=$((MINUTES * 60))
CALLS=$((SECS * RATE))
T1=100       # agent's T1: loss is recovered quickly on loopback
# The agent hangs up each call this long after it is up: longer than
# Timer B (64*T1), so a transfer whose target never answers still ends
# with a final NOTIFY (408) before that.
BYE_AFTER=8

WORK="$(mktemp -d /tmp/sr-soak.XXXXXX)"
AGENT_PID="" CAROL_PID="" SAMPLER_PID=""
cleanup() {
  for p in $SAMPLER_PID $CAROL_PID $AGENT_PID; do
    kill "$p" 2>/dev/null
  done
  wait 2>/dev/null
}
trap cleanup EXIT
cd "$WORK" || exit 1

freeport() {
  /usr/bin/python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# ---------------------------------------------------------------- Alice
# Calls the agent, refers it to Carol ([carol_port]), answers the NOTIFYs
# until the subscription ends; a final 200 then BYE is a completed
# transfer, anything else a failed call.
notify_step() {
  cat <<'EOF'
  <recv request="NOTIFY">
    <action>
      <ereg regexp="terminated" search_in="hdr" header="Subscription-State:" assign_to="term"/>
      <ereg regexp="SIP/2\.0 200 " search_in="msg" assign_to="ok"/>
    </action>
  </recv>
  <!-- the jump sits on the send: the next NOTIFY may follow at once -->
  <send test="term" next="2">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
EOF
}
{
  cat <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="soak transferor">
  <send retrans="500">
    <![CDATA[
      INVITE sip:agent@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@[local_ip]:[local_port]>;tag=[pid]T[call_number]
      To: <sip:agent@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:alice@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio 4000 RTP/AVP 0
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@[local_ip]:[local_port]>;tag=[pid]T[call_number]
      To: <sip:agent@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      REFER [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@[local_ip]:[local_port]>;tag=[pid]T[call_number]
      To: <sip:agent@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 REFER
      Contact: <sip:alice@[local_ip]:[local_port]>
      Refer-To: <sip:carol@[local_ip]:[carol_port]>
      Referred-By: <sip:alice@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <label id="1"/>
  <!-- exempt from the loss: SIPp cannot take a 202 that comes again after
       a NOTIFY (the REFER retransmitted), its transactions being serial -->
  <recv response="202" optional="true" next="1" lost="0"/>
EOF
  for _ in 1 2 3 4 5 6; do notify_step; done
  cat <<'EOF'
  <!-- more NOTIFYs than a transfer sends -->
  <recv request="TOO_MANY_NOTIFYS" timeout="10"/>
  <label id="2"/>
  <nop test="ok" next="3"/>
  <!-- the final NOTIFY was not a 200 -->
  <recv request="TRANSFER_FAILED" timeout="10"/>
  <label id="3"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@[local_ip]:[local_port]>;tag=[pid]T[call_number]
      To: <sip:agent@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
EOF
} >alice.xml

# ---------------------------------------------------------------- run
"$AGENT_BIN" --listen udp:127.0.0.1:0 --port-file agent.ports --t1 "$T1" \
  --on-refer follow --bye-after "$BYE_AFTER" --stats >agent.out 2>agent.err &
AGENT_PID=$!
for _ in $(seq 100); do
  [[ -s agent.ports ]] && break
  kill -0 "$AGENT_PID" 2>/dev/null || break
  sleep 0.1
done
AGENT_PORT="$(sed -n 's/.*udp:127\.0\.0\.1:\([0-9]*\).*/\1/p' agent.ports 2>/dev/null)"
if [[ -z "$AGENT_PORT" ]]; then
  echo "soak.sh: the agent did not start:" >&2
  cat agent.err >&2
  exit 1
fi
CAROL_PORT="$(freeport)" ALICE_PORT="$(freeport)"
MP1="$(freeport)" MP2="$(freeport)"
RSS_START="$(rss_kb "$AGENT_PID")"

echo "soak: $MINUTES min, $RATE transfers/s ($CALLS), ${LOSS}% loss; agent pid $AGENT_PID port $AGENT_PORT; work dir $WORK"

timeout $((SECS + 120)) sipp -sn uas -i 127.0.0.1 -p "$CAROL_PORT" -mp "$MP1" \
  -lost "$LOSS" -nostdin -timeout "$((SECS + 90))s" \
  -trace_stat -stf carol.csv >carol.out 2>&1 &
CAROL_PID=$!

# RSS each minute while it runs.
(
  m=0
  while sleep 60; do
    m=$((m + 1))
    r="$(rss_kb "$AGENT_PID")"
    [[ -n "$r" ]] || exit 0
    echo "$m $r" >>rss.txt
    echo "  minute $m: agent RSS ${r} kB"
  done
) &
SAMPLER_PID=$!

timeout $((SECS + 120)) sipp "127.0.0.1:$AGENT_PORT" -sf alice.xml -i 127.0.0.1 \
  -p "$ALICE_PORT" -mp "$MP2" -key carol_port "$CAROL_PORT" \
  -r "$RATE" -m "$CALLS" -lost "$LOSS" -aa -nostdin -timeout "$((SECS + 90))s" \
  -trace_stat -stf alice.csv -fd 10 -trace_err -error_file alice.err >alice.out 2>&1
ALICE_RC=$?
RSS_END="$(rss_kb "$AGENT_PID")"
kill "$SAMPLER_PID" 2>/dev/null
wait "$SAMPLER_PID" 2>/dev/null
SAMPLER_PID=""

# The last calls end (--bye-after) and their transactions run out (64*T1
# for the server side, T4 = 5 s for the client side); then the agent is
# stopped, with nothing left to do: its live objects must all be zero.
sleep $((BYE_AFTER + 64 * T1 / 1000 + 5 + 3))
RSS_DRAINED="$(rss_kb "$AGENT_PID")"
kill -TERM "$AGENT_PID"
for _ in $(seq 30); do
  kill -0 "$AGENT_PID" 2>/dev/null || break
  sleep 1
done
kill -KILL "$AGENT_PID" 2>/dev/null && echo "soak.sh: the agent did not stop"
wait "$AGENT_PID"
AGENT_RC=$?
AGENT_PID=""
kill -INT "$CAROL_PID" 2>/dev/null
wait "$CAROL_PID" 2>/dev/null
CAROL_PID=""

# ---------------------------------------------------------------- report
# SIPp's statistics file: the last line, by column name.
csv_field() {
  awk -F';' -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i }
       END { if (c) print $c; else print "?" }' "$1"
}
created="$(csv_field alice.csv 'OutgoingCall(C)')"
ok="$(csv_field alice.csv 'SuccessfulCall(C)')"
failed="$(csv_field alice.csv 'FailedCall(C)')"
reasons=""
for f in FailedMaxUDPRetrans FailedUnexpectedMessage FailedCallRejected \
  FailedCmdNotSent FailedRegexpDoesntMatch FailedRegexpHdrNotFound \
  FailedTimeoutOnRecv FailedTimeoutOnSend FailedOutboundCongestion; do
  v="$(csv_field alice.csv "$f(C)")"
  [[ "$v" != "0" && "$v" != "?" ]] && reasons+=" $f=$v"
done
carol_ok="$(csv_field carol.csv 'SuccessfulCall(C)')"
stats_ua="$(grep '^stats ua:' agent.out | tail -1)"
stats_proc="$(grep '^stats process:' agent.out | tail -1)"
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$2"; }

echo
echo "transfers: $created started, $ok completed (final NOTIFY 200, BYE), $failed failed${reasons:+ (}${reasons# }${reasons:+)}"
echo "carol: $carol_ok calls answered and ended"
echo "agent RSS: start ${RSS_START} kB, after minute 1 $(awk 'NR==1 {print $2}' rss.txt 2>/dev/null) kB, end ${RSS_END} kB, drained ${RSS_DRAINED} kB"
echo "agent live objects after the drain (exit $AGENT_RC): ${stats_ua#stats }"
echo "  and once its UA closed: ${stats_proc#stats }"
grep -iE 'warning|error' agent.err | sort | uniq -c | sort -rn | head -5

status=0
# Process-wide, after the UA closed: anything here is a leaked reference.
for k in sessions referrals referrers transactions dialogs; do
  v="$(field "$k" "$stats_proc")"
  if [[ "$v" != "0" ]]; then
    echo "FAIL: $k never freed: ${v:-?}"
    status=1
  fi
done
# In the UA after the drain: no call, transfer or transaction is left.
for k in sessions referrals referrers transactions dialogs; do
  v="$(field "$k" "$stats_ua")"
  if [[ "$v" != "0" ]]; then
    echo "FAIL: $k left behind: ${v:-?}"
    status=1
  fi
done
warm="$(awk 'NR==1 {print $2}' rss.txt 2>/dev/null)"
if [[ -n "$warm" && -n "$RSS_END" ]] && ((RSS_END * 100 > warm * 120)); then
  echo "FAIL: RSS grew from $warm kB (minute 1) to $RSS_END kB"
  status=1
fi
if ! [[ "$created" =~ ^[0-9]+$ && "$failed" =~ ^[0-9]+$ ]] || ((created == 0)); then
  echo "FAIL: no SIPp statistics (alice exit $ALICE_RC; see $WORK/alice.out)"
  status=1
elif ((failed * 100 > created * 5)); then
  echo "FAIL: $failed of $created transfers failed (see $WORK/alice.err)"
  status=1
fi
((status == 0)) && echo "soak: ok (details in $WORK)"
exit "$status"
