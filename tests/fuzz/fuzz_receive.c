/*
 * fuzz_receive.c — libFuzzer target: raw bytes into a user agent's receive
 * path (sr__ua_on_bytes, where a transport hands over a whole message),
 * with a live call set up first so that in-dialog REFER, NOTIFY, BYE and
 * INVITE-with-Replaces are reachable.
 *
 * Per input: Alice, Bob and Carol on 127.0.0.1 (UDP, port 0); Alice calls
 * Bob; then the input's messages are delivered to one of the two as if the
 * other had sent them, and every loop is driven a bounded number of turns.
 * Nothing leaves for an address other than these user agents: the message
 * hook drops it.
 *
 * Input: one flag byte, then up to 8 messages separated by "@@@@".
 *   bits 0-1  REFER handling: 0 no on_refer (the core accepts and follows),
 *             1 accept + follow, 2 left pending (decided after the last
 *             message), 3 accept only, then a manual final NOTIFY
 *   bit 2     the receiver is Alice (the Inviter) instead of Bob
 *   bit 3     out-of-dialog REFER allowed (and followed)
 *   bit 4     the call is left ringing (a REFER in the early dialog: 403)
 *   bit 5     the peer hangs up after the last message
 *   bit 6     the messages arrive over one TCP connection (framing)
 *   bit 7     NOTIFYs for the final status only
 * Placeholders in each message, expanded before delivery:
 *   $CALLID $LTAG $RTAG   the call (the receiver's own tag is $LTAG)
 *   $SELF $PEER $CAROL    host:port of the receiver, the sender, Carol
 *   $CSEQ                 a CSeq number above any used so far
 *   $BRANCH               a fresh Via branch
 *   $CL                   the length of the body (after the blank line)
 *   $TXVIA $TXFROM $TXTO $TXCALLID $TXCSEQ $TXN
 *                         from the last request the receiver sent (TXN:
 *                         its CSeq number), so a response can match its
 *                         client transaction, a NOTIFY its REFER
 * A message that starts with "!" is a command to the receiver instead:
 *   !refer URI   sends a REFER to URI in the call (the referrer side)
 *   !bye         ends the call
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define FR_TURNS 24
#define FR_MAX_MSGS 8
#define FR_KEEP 16

typedef struct fr_party {
  sr_ua *ua;
  int udp_port, tcp_port;
  /* the last request this party sent: header values */
  char tx_via[512], tx_from[512], tx_to[512], tx_callid[256], tx_cseq[64],
      tx_n[16];
} fr_party;

typedef struct fr_state {
  fr_party p[3]; /* alice, bob, carol */
  int flags;
  int client_fd, client_port; /* stream mode */
  sr_session *calls[FR_KEEP];
  int ncalls;
  sr_referral *refs[FR_KEEP];
  int nrefs;
  unsigned cseq, branch;
  volatile size_t sink;
} fr_state;

static fr_state fr;

/* ---------------- reading every view (ASan checks each byte) ---------------- */

static size_t fr_len(const char *s) { return s ? strlen(s) : 0; }

static void fr_walk_uri(const sr_uri *u) {
  size_t n = fr_len(sr_uri_scheme(u)) + fr_len(sr_uri_user(u)) +
             fr_len(sr_uri_host(u)) + fr_len(sr_uri_string(u)) +
             (size_t)sr_uri_port(u);
  for (int i = 0; i <= sr_uri_param_count(u); i++)
    n += fr_len(sr_uri_param_name(u, i)) + fr_len(sr_uri_param_value(u, i));
  for (int i = 0; i <= sr_uri_header_count(u); i++)
    n += fr_len(sr_uri_header_name(u, i)) + fr_len(sr_uri_header_value(u, i));
  fr.sink += n;
}

static void fr_walk_request(const sr_request *q) {
  static const char *names[] = {"refer-to", "r", "referred-by", "b",
                                "replaces", "from", "to", "via",
                                "event", "subscription-state", "contact",
                                "refer-sub", "content-length"};
  if (!q) return;
  size_t n = fr_len(sr_request_method(q)) + fr_len(sr_request_ruri(q)) +
             fr_len(sr_request_text(q));
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    int c = sr_request_header_count(q, names[k]);
    for (int i = 0; i <= c; i++) n += fr_len(sr_request_header(q, names[k], i));
  }
  const char *b = sr_request_body(q);
  for (size_t i = 0; b && i < sr_request_body_length(q); i++) n += (unsigned char)b[i];
  fr.sink += n;
}

static void fr_walk_referral(sr_referral *r) {
  const sr_name_addr *na = sr_referral_refer_to(r);
  size_t n = fr_len(sr_name_addr_display_name(na)) + fr_len(sr_name_addr_string(na)) +
             fr_len(sr_referral_referred_by(r)) + fr_len(sr_referral_replaces(r));
  for (int i = 0; i <= sr_name_addr_param_count(na); i++)
    n += fr_len(sr_name_addr_param_name(na, i)) + fr_len(sr_name_addr_param_value(na, i));
  fr.sink += n + (size_t)sr_referral_get_id(r) + (size_t)sr_referral_get_refer_sub(r);
  fr_walk_uri(sr_name_addr_uri(na));
  fr_walk_request(sr_referral_request(r));
}

/* ---------------- the parties' delegates ---------------- */

static void fr_keep_call(sr_session *s) {
  if (fr.ncalls < FR_KEEP) fr.calls[fr.ncalls++] = sr_session_ref(s);
}

static void fr_keep_ref(sr_referral *r) {
  if (fr.nrefs < FR_KEEP) fr.refs[fr.nrefs++] = sr_referral_ref(r);
}

static void fr_follow(sr_referral *r) {
  sr_session *inv = NULL;
  if (sr_referral_make_inviter(r, NULL, &inv) == 0) sr_inviter_invite(inv);
}

static void fr_on_refer(sr_session *s, sr_referral *r, void *ud) {
  (void)s;
  (void)ud;
  fr_walk_referral(r);
  switch (fr.flags & 3) {
  case 1:
    if (sr_referral_accept(r, NULL) == 0) fr_follow(r);
    break;
  case 2:
    fr_keep_ref(r);
    break;
  case 3:
    if (sr_referral_accept(r, NULL) == 0) fr_keep_ref(r);
    break;
  }
}

static const sr_session_delegate fr_session_delegate = {NULL, NULL, fr_on_refer,
                                                        NULL};

static void fr_on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  fr_party *p = ud;
  fr_walk_request(sr_invitation_get_request(inv));
  fr_keep_call(inv);
  if (p == &fr.p[1] || p == &fr.p[0]) {
    if (fr.flags & 3) sr_session_set_delegate(inv, &fr_session_delegate, NULL);
  }
  /* Bob's first call rings only when the input asks for an early dialog. */
  if ((fr.flags & 0x10) && p == &fr.p[1] && fr.ncalls == 2) {
    sr_invitation_progress(inv, NULL);
    return;
  }
  (void)ua;
  sr_invitation_accept(inv, NULL);
}

static void fr_on_ood_refer(sr_ua *ua, sr_referral *r, void *ud) {
  (void)ua;
  (void)ud;
  fr_walk_referral(r);
  if (sr_referral_accept(r, NULL) == 0) fr_follow(r);
}

static int fr_on_policy(sr_ua *ua, sr_referral *r, void *ud) {
  (void)ua;
  (void)ud;
  fr_walk_referral(r);
  return 0;
}

/* Copies the value of header `name` (full form, as the core writes it)
 * from a message into out. */
static void fr_grab(const char *msg, const char *name, char *out, size_t n) {
  size_t nl = strlen(name);
  out[0] = 0;
  for (const char *p = strstr(msg, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
    if (p[2] == '\r') return; /* end of the header block */
    if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
      const char *v = p + 3 + nl, *e = strstr(v, "\r\n");
      while (*v == ' ') v++;
      size_t l = e ? (size_t)(e - v) : strlen(v);
      if (l >= n) l = n - 1;
      memcpy(out, v, l);
      out[l] = 0;
      return;
    }
  }
}

/* What no input may make a user agent send. These UAs have no outbound
 * proxy, so a Route in a new INVITE can only have been smuggled in (from
 * a Refer-To); and an INVITE to one's own address is a referral loop. */
static void fr_check_sent(fr_party *p, sr_transport tp, int port,
                          const char *m) {
  if (strncmp(m, "INVITE ", 7) != 0) return;
  char to[512];
  fr_grab(m, "To", to, sizeof to);
  if (strstr(to, ";tag=")) return; /* a re-INVITE */
  const char *hdr_end = strstr(m, "\r\n\r\n");
  const char *route = strcasestr(m, "\r\nRoute:");
  if (route && (!hdr_end || route < hdr_end)) {
    fprintf(stderr, "fuzz_receive: a new INVITE with a Route header:\n%s\n", m);
    abort();
  }
  if (port == (tp == SR_TRANSPORT_UDP ? p->udp_port : p->tcp_port)) {
    fprintf(stderr, "fuzz_receive: %s sent an INVITE to itself\n", sr_ua_uri(p->ua));
    abort();
  }
}

/* Only our own user agents may be reached; the last request is noted. */
static int fr_hook(int outgoing, sr_transport tp, const char *local,
                   const char *remote, const char *data, size_t len,
                   void *ud) {
  fr_party *p = ud;
  (void)local;
  if (getenv("FR_TRACE"))
    fprintf(stderr, "  %s %s %s %.*s\n", sr_ua_uri(p->ua), outgoing ? "->" : "<-",
            remote, atoi(getenv("FR_TRACE")) > 1 ? (int)len : (int)strcspn(data, "\r\n"), data);
  if (!outgoing) return 0;
  const char *colon = strrchr(remote, ':');
  int port = colon ? atoi(colon + 1) : 0;
  int ok = strncmp(remote, "127.0.0.1:", 10) == 0 && port > 0;
  if (ok) {
    ok = 0;
    for (int i = 0; i < 3; i++)
      if (port == (tp == SR_TRANSPORT_UDP ? fr.p[i].udp_port : fr.p[i].tcp_port))
        ok = 1;
    if (tp == SR_TRANSPORT_TCP && port == fr.client_port) ok = 1;
  }
  int drop = !ok;
  if (len < 8 || memcmp(data, "SIP/2.0 ", 8) == 0) return drop;
  char *m = malloc(len + 1);
  if (!m) return drop;
  memcpy(m, data, len);
  m[len] = 0;
  fr_grab(m, "Via", p->tx_via, sizeof p->tx_via);
  fr_grab(m, "From", p->tx_from, sizeof p->tx_from);
  fr_grab(m, "To", p->tx_to, sizeof p->tx_to);
  fr_grab(m, "Call-ID", p->tx_callid, sizeof p->tx_callid);
  fr_grab(m, "CSeq", p->tx_cseq, sizeof p->tx_cseq);
  fr_check_sent(p, tp, port, m);
  snprintf(p->tx_n, sizeof p->tx_n, "%.*s", (int)strcspn(p->tx_cseq, " "),
           p->tx_cseq);
  free(m);
  return drop;
}

/* The referrer side: what its delegate is told is read in full. */
static void fr_r_answer(sr_referrer *r, int code, const char *reason, void *ud) {
  (void)ud;
  fr.sink += (size_t)code + fr_len(reason) + (size_t)sr_referrer_get_id(r);
}
static void fr_r_notify(sr_referrer *r, int code, const char *reason,
                        const char *state, void *ud) {
  (void)r;
  (void)ud;
  fr.sink += (size_t)code + fr_len(reason) + fr_len(state);
}
static void fr_r_closed(sr_referrer *r, void *ud) {
  (void)ud;
  fr.sink += (size_t)sr_referrer_is_closed(r);
}
static const sr_referrer_delegate fr_referrer_delegate = {
    fr_r_answer, fr_r_answer, fr_r_notify, fr_r_closed};

/* FR_TRACE=1 in the environment shows the traffic and the logs. */
static void fr_log(int level, const char *msg, void *ud) {
  (void)ud;
  if (getenv("FR_TRACE")) fprintf(stderr, "  [log %d] %s\n", level, msg);
}

/* ---------------- set-up and driving ---------------- */

static int fr_party_new(fr_party *p, const char *user, int tcp) {
  sr_ua_options o;
  char uri[64];
  sr_ua_options_init(&o);
  snprintf(uri, sizeof uri, "sip:%s@127.0.0.1", user);
  o.uri = uri;
  o.log_fn = fr_log;
  o.log_level = getenv("FR_TRACE") ? SR_LOG_DEBUG : SR_LOG_ERROR;
  o.allow_out_of_dialog_refer = (fr.flags & 0x08) != 0;
  o.notify_mode = (fr.flags & 0x80) ? SR_NOTIFY_FINAL_ONLY : SR_NOTIFY_ALL;
  memset(p, 0, sizeof *p);
  if (sr_ua_new(&p->ua, &o) != 0) return -1;
  if (sr_ua_listen(p->ua, "udp:127.0.0.1:0") != 0) return -1;
  p->udp_port = sr_ua_local_port(p->ua, SR_TRANSPORT_UDP);
  if (tcp) {
    if (sr_ua_listen(p->ua, "tcp:127.0.0.1:0") != 0) return -1;
    p->tcp_port = sr_ua_local_port(p->ua, SR_TRANSPORT_TCP);
  }
  sr_ua_delegate d = {0};
  d.on_invite = fr_on_invite;
  d.on_refer = fr_on_ood_refer;
  d.on_refer_policy = fr_on_policy;
  sr_ua_set_delegate(p->ua, &d, p);
  sr_ua_set_message_hook(p->ua, fr_hook, p);
  return 0;
}

static void fr_drain_client(void) {
  char buf[4096];
  while (fr.client_fd >= 0 && recv(fr.client_fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
}

/* Loopback delivery is nearly always immediate, so a few turns carry a
 * whole chain (REFER, 202, NOTIFY, INVITE, 200, ACK, NOTIFY...) with no
 * waiting; two quiet turns end it. */
static void fr_drive(int turns) {
  int idle = 0;
  for (int t = 0; t < turns && idle < 2; t++) {
    int any = 0;
    for (int i = 0; i < 3; i++)
      if (fr.p[i].ua && sr_ua_run_once(fr.p[i].ua, 0) > 0) any = 1;
    fr_drain_client();
    idle = any ? 0 : idle + 1;
  }
}

/* Drives until cond holds, waiting for the sockets when nothing is due
 * (a busy machine can defer loopback delivery); at most limit_ms. */
static int fr_drive_until(int (*cond)(void), int limit_ms) {
  for (int waited = 0; waited <= limit_ms; waited++) {
    fr_drive(FR_TURNS);
    if (cond()) return 1;
    struct pollfd pf[3];
    int n = 0;
    for (int i = 0; i < 3; i++)
      if (fr.p[i].ua && sr_ua_fd(fr.p[i].ua) >= 0)
        pf[n++] = (struct pollfd){.fd = sr_ua_fd(fr.p[i].ua), .events = POLLIN};
    poll(pf, (nfds_t)n, 1);
  }
  return 0;
}

/* ---------------- placeholders ---------------- */

typedef struct fr_buf {
  char *d;
  size_t n, cap;
} fr_buf;

static void fr_put(fr_buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = (b->n + n + 1) * 2;
    char *d = realloc(b->d, cap);
    if (!d) abort();
    b->d = d;
    b->cap = cap;
  }
  memcpy(b->d + b->n, s, n);
  b->n += n;
  b->d[b->n] = 0;
}

static void fr_puts(fr_buf *b, const char *s) { fr_put(b, s, s ? strlen(s) : 0); }

static void fr_expand(fr_buf *b, const char *in, size_t n, fr_party *self,
                      fr_party *peer, sr_session *call) {
  char tok[64];
  size_t clpos = (size_t)-1;
  b->n = 0;
  fr_put(b, "", 0);
  for (size_t i = 0; i < n;) {
    const char *p = in + i;
    size_t left = n - i;
#define FR_IS(lit) (left >= sizeof(lit) - 1 && memcmp(p, lit, sizeof(lit) - 1) == 0)
    if (in[i] != '$') {
      const char *d = memchr(p, '$', left);
      size_t k = d ? (size_t)(d - p) : left;
      fr_put(b, p, k);
      i += k;
      continue;
    }
    if (FR_IS("$CALLID")) {
      fr_puts(b, sr_session_call_id(call));
      i += 7;
    } else if (FR_IS("$LTAG")) {
      fr_puts(b, sr_session_local_tag(call));
      i += 5;
    } else if (FR_IS("$RTAG")) {
      fr_puts(b, sr_session_remote_tag(call));
      i += 5;
    } else if (FR_IS("$SELF")) {
      snprintf(tok, sizeof tok, "127.0.0.1:%d", self->udp_port);
      fr_puts(b, tok);
      i += 5;
    } else if (FR_IS("$PEER")) {
      snprintf(tok, sizeof tok, "127.0.0.1:%d", peer->udp_port);
      fr_puts(b, tok);
      i += 5;
    } else if (FR_IS("$CAROL")) {
      snprintf(tok, sizeof tok, "127.0.0.1:%d", fr.p[2].udp_port);
      fr_puts(b, tok);
      i += 6;
    } else if (FR_IS("$CSEQ")) {
      snprintf(tok, sizeof tok, "%u", ++fr.cseq);
      fr_puts(b, tok);
      i += 5;
    } else if (FR_IS("$BRANCH")) {
      snprintf(tok, sizeof tok, "z9hG4bKfuzz%u", ++fr.branch);
      fr_puts(b, tok);
      i += 7;
    } else if (FR_IS("$CL")) {
      if (clpos == (size_t)-1) {
        clpos = b->n;
        fr_puts(b, "          "); /* room, filled in below */
      } else {
        fr_puts(b, "0");
      }
      i += 3;
    } else if (FR_IS("$TXVIA")) {
      fr_puts(b, self->tx_via);
      i += 6;
    } else if (FR_IS("$TXFROM")) {
      fr_puts(b, self->tx_from);
      i += 7;
    } else if (FR_IS("$TXTO")) {
      fr_puts(b, self->tx_to);
      i += 5;
    } else if (FR_IS("$TXCALLID")) {
      fr_puts(b, self->tx_callid);
      i += 9;
    } else if (FR_IS("$TXCSEQ")) {
      fr_puts(b, self->tx_cseq);
      i += 7;
    } else if (FR_IS("$TXN")) {
      fr_puts(b, self->tx_n);
      i += 4;
    } else {
      fr_put(b, "$", 1);
      i++;
    }
#undef FR_IS
  }
  if (clpos != (size_t)-1) {
    const char *h = memmem(b->d, b->n, "\r\n\r\n", 4);
    size_t body = h ? b->n - (size_t)(h + 4 - b->d) : 0;
    int l = snprintf(tok, sizeof tok, "%zu", body);
    memcpy(b->d + clpos, tok, (size_t)l);
    memmove(b->d + clpos + l, b->d + clpos + 10, b->n - clpos - 10 + 1);
    b->n -= 10 - (size_t)l;
  }
}

/* "!refer URI" or "!bye": the receiver acts instead of receiving. */
static void fr_command(fr_buf *b, sr_session *call) {
  if (b->n >= 7 && memcmp(b->d, "!refer ", 7) == 0) {
    char *uri = b->d + 7;
    uri[strcspn(uri, "\r\n")] = 0;
    sr_session_refer(call, uri, NULL, &fr_referrer_delegate, NULL, NULL);
  } else if (b->n >= 4 && memcmp(b->d, "!bye", 4) == 0) {
    sr_session_bye(call);
  }
}

/* ---------------- one input ---------------- */

/* Alice's call to Bob is up (or, for an early dialog, ringing). */
static int fr_call_up(void) {
  sr_session *alice = fr.calls[0], *bob = fr.ncalls > 1 ? fr.calls[1] : NULL;
  if (!bob) return 0;
  if (fr.flags & 0x10) return sr_session_remote_tag(alice) != NULL;
  return sr_session_get_state(alice) == SR_SESSION_ESTABLISHED &&
         sr_session_get_state(bob) == SR_SESSION_ESTABLISHED;
}

static void fr_stream_send(const char *d, size_t n) {
  for (int tries = 0; n && tries < 64; tries++) {
    ssize_t k = send(fr.client_fd, d, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
    if (k > 0) {
      d += k;
      n -= (size_t)k;
    } else {
      fr_drive(2);
    }
  }
}

static int fr_stream_open(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &al);
  fr.client_port = ntohs(a.sin_port);
  return fd;
}

static void fr_cleanup(void) {
  for (int i = 0; i < fr.nrefs; i++) sr_referral_unref(fr.refs[i]);
  for (int i = 0; i < fr.ncalls; i++) sr_session_unref(fr.calls[i]);
  for (int i = 0; i < 3; i++) sr_ua_unref(fr.p[i].ua);
  if (fr.client_fd >= 0) close(fr.client_fd);
  memset(&fr, 0, sizeof fr);
  fr.client_fd = -1;
  /* Every object must be gone once its UA is: a reference leak is a bug. */
  sr_stats st;
  sr_global_stats(&st);
  if (st.sessions || st.referrals || st.referrers) {
    fprintf(stderr, "fuzz_receive: objects left: %d sessions, %d referrals, "
                    "%d referrers\n", st.sessions, st.referrals, st.referrers);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  memset(&fr, 0, sizeof fr);
  fr.client_fd = -1;
  fr.flags = data[0];
  fr.cseq = 1000;
  int rx = (fr.flags & 0x04) ? 0 : 1, stream = (fr.flags & 0x40) != 0;
  static const char *names[3] = {"alice", "bob", "carol"};
  for (int i = 0; i < 3; i++)
    if (fr_party_new(&fr.p[i], names[i], stream && i == rx) < 0) {
      fr_cleanup();
      return 0;
    }
  fr_party *self = &fr.p[rx], *peer = &fr.p[1 - rx];

  /* Alice calls Bob. */
  char target[64];
  sr_session *alice = NULL;
  snprintf(target, sizeof target, "sip:bob@127.0.0.1:%d", fr.p[1].udp_port);
  if (sr_ua_make_inviter(fr.p[0].ua, target, NULL, &alice) != 0) {
    fr_cleanup();
    return 0;
  }
  fr_keep_call(alice);
  sr_session_unref(alice);
  if (fr.flags & 3) sr_session_set_delegate(alice, &fr_session_delegate, NULL);
  sr_inviter_invite(alice);
  if (!fr_drive_until(fr_call_up, 2000)) {
    /* Only an overloaded machine gets here; the input is not to blame. */
    fprintf(stderr, "fuzz_receive: the call did not come up; input skipped\n");
    fr_cleanup();
    return 0;
  }
  sr_session *bob = fr.calls[1];
  sr_session *call = rx == 0 ? alice : bob;

  if (stream) fr.client_fd = fr_stream_open(self->tcp_port);
  sr__peer from;
  sr__peer_set(&from, SR_TRANSPORT_UDP, "127.0.0.1", peer->udp_port);

  fr_buf b = {0};
  const uint8_t *p = data + 1, *end = data + size;
  for (int k = 0; k < FR_MAX_MSGS && p <= end; k++) {
    const uint8_t *sep = memmem(p, (size_t)(end - p), "@@@@", 4);
    const uint8_t *e = sep ? sep : end;
    fr_expand(&b, (const char *)p, (size_t)(e - p), self, peer, call);
    if (b.n > 0 && b.d[0] == '!') {
      fr_command(&b, call);
    } else if (b.n > 0 && b.n <= 65536) {
      if (stream && fr.client_fd >= 0)
        fr_stream_send(b.d, b.n);
      else if (!stream && sr_ua_fd(self->ua) >= 0)
        sr__ua_on_bytes(self->ua, &from, b.d, b.n);
    }
    fr_drive(FR_TURNS);
    if (!sep) break;
    p = sep + 4;
  }
  free(b.d);

  /* Decide what is still open, then maybe end the call from the peer. */
  for (int i = 0; i < fr.nrefs; i++) {
    sr_referral *r = fr.refs[i];
    if ((fr.flags & 3) == 2) {
      if (i == 0 && sr_referral_accept(r, NULL) == 0) fr_follow(r);
      else sr_referral_reject(r, NULL);
    } else {
      sr_referral_notify(r, 200, "OK");
    }
  }
  fr_drive(FR_TURNS);
  if (fr.flags & 0x20) {
    sr_session_bye(rx == 0 ? bob : alice);
    fr_drive(FR_TURNS);
  }
  fr_cleanup();
  return 0;
}
