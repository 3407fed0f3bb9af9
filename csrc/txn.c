/*
 * txn.c — the transaction index, and libosip2's INVITE state machines
 * (ICT, IST); the non-INVITE ones are ours (ntxn.c).
 *
 * libosip2 keeps transactions in lists it searches linearly and scans every
 * transaction for due timers. Under load that is per-message work for no
 * reason, so we index transactions ourselves (hash by branch, RFC 3261
 * §17.1.3/§17.2.3) and arm one loop timer per transaction at its earliest
 * due libosip2 timer. Events are executed directly on their transaction;
 * upcalls are delivered after libosip2 returns, so a handler may respond on
 * the same transaction without re-entering the state machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Exported by libosip2 but declared only in its private xixt.h: they
 * answer "is this timer of this transaction due?" without a list scan. */
#define NEED(name, ctx)                                                   \
  osip_event_t *__osip_##name##_event(ctx *c, state_t st, int id)
NEED(ict_need_timer_a, osip_ict_t); NEED(ict_need_timer_b, osip_ict_t);
NEED(ict_need_timer_d, osip_ict_t); NEED(ist_need_timer_g, osip_ist_t);
NEED(ist_need_timer_h, osip_ist_t); NEED(ist_need_timer_i, osip_ist_t);
#undef NEED

enum { UP_NONE, UP_RESPONSE, UP_FAILURE, UP_REQUEST };

typedef struct pending_up {
  int kind, code;
  osip_message_t *msg;
} pending_up;

static const char *txn_key(void *o) { return ((sr__txn *)o)->key; }
#define TXN_NEXT offsetof(sr__txn, hnext)

static char *put(char *p, const char *s) {
  size_t n = strlen(s);
  memcpy(p, s, n);
  return p + n;
}

/* The index key of m's transaction, in buf (cap bytes) or, when longer,
 * malloc'd; NULL when m has no Via or CSeq. `method` overrides CSeq's (a
 * CANCEL looking for its INVITE). Free with free_key. */
static char *make_key(int server, osip_message_t *m, const char *method,
                      char *buf, size_t cap) {
  osip_via_t *via = osip_list_get(&m->vias, 0);
  if (!via || !m->cseq || !m->cseq->method) return NULL;
  osip_generic_param_t *br = NULL;
  osip_via_param_get_byname(via, "branch", &br);
  const char *branch = br && br->gvalue ? br->gvalue : "";
  if (!method) method = m->cseq->method;
  if (server && strcmp(method, "ACK") == 0) method = "INVITE";
  const char *host = via->host ? via->host : "", *port = via->port ? via->port : "";
  size_t n = strlen(branch) + strlen(method) + 4 +
             (server ? strlen(host) + strlen(port) + 2 : 0);
  char *k = n <= cap ? buf : malloc(n);
  if (!k) return NULL;
  char *p = k;
  *p++ = server ? 'S' : 'C';
  p = put(p, branch);
  *p++ = '|';
  p = put(p, method);
  if (server) {
    *p++ = '|';
    p = put(p, host);
    *p++ = ':';
    p = put(p, port);
  }
  *p = 0;
  return k;
}

enum { KEY_BUF = 256 };

static void free_key(char *k, const char *buf) {
  if (k != buf) free(k);
}

sr__txn *sr__txn_ref(sr__txn *t) {
  if (t) t->refs++;
  return t;
}

void sr__txn_unref(sr__txn *t) {
  if (!t || --t->refs > 0) return;
  if (t->req) osip_message_free(t->req);
  osip_free(t->wire);
  free(t->key);
  free(t);
}

void sr__txn_detach(sr__txn *t) {
  if (!t || !t->owner) return;
  void *o = t->owner;
  const sr__txn_owner *ops = t->owner_ops;
  t->owner = NULL;
  t->owner_ops = NULL;
  if (ops && ops->unref) ops->unref(o);
}

static int invite_kind(const sr__txn *t) { return t->kind == ICT || t->kind == IST; }

osip_message_t *sr__txn_request(sr__txn *t) {
  if (!t) return NULL;
  if (invite_kind(t)) return t->tr ? t->tr->orig_request : NULL;
  return t->req;
}

int sr__txn_pending(sr__txn *t) {
  if (!t || !t->indexed || !t->server) return 0;
  return invite_kind(t) ? t->tr != NULL : t->state < SR__N_COMPLETED;
}

/* A client transaction still waiting for its final response. */
static int client_live(const sr__txn *t) {
  if (t->server || !t->indexed) return 0;
  return invite_kind(t) ? t->tr != NULL : t->state < SR__N_COMPLETED;
}

/* Ends our side of a transaction (libosip2's has terminated, or ours). */
void sr__txn_finish(sr__txn *t) {
  sr_ua *ua = t->ua;
  if (!t->indexed) return;
  t->indexed = 0;
  sr__timer_stop(ua, &t->timer);
  sr__hash_remove(&ua->txns, TXN_NEXT, txn_key, t);
  if (t->tr) osip_transaction_free(t->tr);
  t->tr = NULL;
  if (t->req && !t->in_exec) {
    osip_message_free(t->req);
    t->req = NULL;
  }
  osip_free(t->wire);
  t->wire = NULL;
  ua->ntxns--;
  sr__txn_detach(t);
  sr__txn_unref(t); /* the reference the index held */
}

static void timeval_min(const struct timeval *tv, long *best) {
  if (tv->tv_sec == -1) return;
  long ms = (long)tv->tv_sec * 1000 + tv->tv_usec / 1000;
  if (*best < 0 || ms < *best) *best = ms;
}

/* Arms the loop timer at the earliest libosip2 timer that can fire in the
 * transaction's current state (mirrors __osip_*_need_timer_*_event). */
static void txn_arm(sr__txn *t) {
  osip_transaction_t *tr = t->tr;
  long best = -1;
  switch (tr->ctx_type) {
  case ICT:
    if (tr->state == ICT_CALLING) {
      timeval_min(&tr->ict_context->timer_a_start, &best);
      timeval_min(&tr->ict_context->timer_b_start, &best);
    } else if (tr->state == ICT_COMPLETED) {
      timeval_min(&tr->ict_context->timer_d_start, &best);
    }
    break;
  case IST:
    if (tr->state == IST_COMPLETED) {
      timeval_min(&tr->ist_context->timer_g_start, &best);
      timeval_min(&tr->ist_context->timer_h_start, &best);
    } else if (tr->state == IST_CONFIRMED) {
      timeval_min(&tr->ist_context->timer_i_start, &best);
    }
    break;
  default:
    break;
  }
  if (best < 0) {
    sr__timer_stop(t->ua, &t->timer);
    return;
  }
  struct timeval now;
  osip_gettimeofday(&now, NULL);
  long nowms = (long)now.tv_sec * 1000 + now.tv_usec / 1000;
  /* libosip2 fires only when now > deadline: one ms past it. */
  sr__timer_start(t->ua, &t->timer, best - nowms + 1);
}

static void deliver(sr__txn *t, pending_up *up) {
  sr_ua *ua = t->ua;
  switch (up->kind) {
  case UP_RESPONSE:
    if (t->owner && t->owner_ops->on_response)
      t->owner_ops->on_response(t->owner, t, up->msg);
    break;
  case UP_FAILURE:
    if (t->owner && t->owner_ops->on_failure)
      t->owner_ops->on_failure(t->owner, t, up->code);
    break;
  case UP_REQUEST:
    sr__ua_on_request(ua, t, up->msg);
    break;
  }
}

/* The one place events reach libosip2. */
static void txn_exec(sr__txn *t, osip_event_t *evt) {
  if (!t->tr) {
    if (evt->sip) osip_message_free(evt->sip);
    osip_free(evt);
    return;
  }
  sr__txn_ref(t);
  pending_up up = {UP_NONE, 0, NULL};
  void *saved = t->up;
  t->up = &up; /* the osip callbacks below write into it */
  t->in_exec++;
  evt->transactionid = t->tr->transactionid;
  osip_transaction_execute(t->tr, evt);
  t->in_exec--;
  t->up = saved;
  if (up.kind != UP_NONE) deliver(t, &up);
  if (t->killed) sr__txn_finish(t);
  else if (t->tr) txn_arm(t);
  sr__txn_unref(t);
}

/* libosip2 spaces retransmissions with its compiled-in T1/T2 (steps of
 * 500 ms under T1, capped at 4 s): re-space them with the UA's own,
 * doubling up to T2 (RFC 3261 §17.1.2.2, §17.2.1). */
static void respace(sr__txn *t, int prev) {
  int t2 = t->ua->opt.t2_ms, next = 2 * prev < t2 ? 2 * prev : t2;
  struct timeval *start = &t->tr->ist_context->timer_g_start;
  int *len = &t->tr->ist_context->timer_g_length;
  if (*len <= 0 || start->tv_sec == -1) return; /* stopped (reliable) */
  *len = next;
  osip_gettimeofday(start, NULL);
  add_gettimeofday(start, next);
  txn_arm(t);
}

static void txn_timer(void *arg) {
  sr__txn *t = arg;
  osip_event_t *(*need[3])(void *, int, int) = {0};
  osip_transaction_t *tr = t->tr;
  if (!tr) return;
  switch (tr->ctx_type) {
  case ICT:
    need[0] = (void *)__osip_ict_need_timer_a_event;
    need[1] = (void *)__osip_ict_need_timer_b_event;
    need[2] = (void *)__osip_ict_need_timer_d_event;
    break;
  case IST:
    need[0] = (void *)__osip_ist_need_timer_g_event;
    need[1] = (void *)__osip_ist_need_timer_h_event;
    need[2] = (void *)__osip_ist_need_timer_i_event;
    break;
  default:
    break;
  }
  sr__txn_ref(t);
  int fired = 0;
  for (int i = 0; i < 3 && need[i] && t->tr; i++) {
    void *ctx = tr->ctx_type == ICT ? (void *)t->tr->ict_context
                                    : (void *)t->tr->ist_context;
    osip_event_t *e = need[i](ctx, t->tr->state, t->tr->transactionid);
    if (!e) continue;
    fired = 1;
    int prev = i == 0 && tr->ctx_type == IST ? t->tr->ist_context->timer_g_length : 0;
    txn_exec(t, e);
    if (prev > 0 && t->tr) respace(t, prev);
  }
  if (!fired && t->tr) txn_arm(t);
  sr__txn_unref(t);
}

/* ---------------- libosip2 callbacks ---------------- */

static sr__txn *of(osip_transaction_t *tr) {
  return osip_transaction_get_your_instance(tr);
}

static void cb_message(int type, osip_transaction_t *tr, osip_message_t *m) {
  sr__txn *t = of(tr);
  if (!t || !t->in_exec) return;
  pending_up *up = t->up;
  switch (type) {
  case OSIP_ICT_STATUS_1XX_RECEIVED: case OSIP_ICT_STATUS_2XX_RECEIVED:
  case OSIP_ICT_STATUS_3XX_RECEIVED: case OSIP_ICT_STATUS_4XX_RECEIVED:
  case OSIP_ICT_STATUS_5XX_RECEIVED: case OSIP_ICT_STATUS_6XX_RECEIVED:
  case OSIP_NICT_STATUS_1XX_RECEIVED: case OSIP_NICT_STATUS_2XX_RECEIVED:
  case OSIP_NICT_STATUS_3XX_RECEIVED: case OSIP_NICT_STATUS_4XX_RECEIVED:
  case OSIP_NICT_STATUS_5XX_RECEIVED: case OSIP_NICT_STATUS_6XX_RECEIVED:
    up->kind = UP_RESPONSE;
    up->msg = m;
    break;
  case OSIP_ICT_STATUS_TIMEOUT: case OSIP_NICT_STATUS_TIMEOUT:
    up->kind = UP_FAILURE;
    up->code = 408;
    break;
  case OSIP_IST_INVITE_RECEIVED: case OSIP_NIST_REGISTER_RECEIVED:
  case OSIP_NIST_BYE_RECEIVED: case OSIP_NIST_OPTIONS_RECEIVED:
  case OSIP_NIST_INFO_RECEIVED: case OSIP_NIST_CANCEL_RECEIVED:
  case OSIP_NIST_NOTIFY_RECEIVED: case OSIP_NIST_SUBSCRIBE_RECEIVED:
  case OSIP_NIST_UNKNOWN_REQUEST_RECEIVED:
    up->kind = UP_REQUEST;
    up->msg = m;
    break;
  default:
    break;
  }
}

static void cb_kill(int type, osip_transaction_t *tr) {
  (void)type;
  sr__txn *t = of(tr);
  if (t) t->killed = 1;
}

static void cb_transport_error(int type, osip_transaction_t *tr, int err) {
  (void)type;
  (void)err;
  sr__txn *t = of(tr);
  if (!t || !t->in_exec) return;
  pending_up *up = t->up;
  if (!t->server && up->kind == UP_NONE) {
    up->kind = UP_FAILURE;
    up->code = 503;
  }
  sr__log(t->ua, SR_LOG_WARNING, "transport error on a transaction");
}

static int cb_send(osip_transaction_t *tr, osip_message_t *m, char *host,
                   int port, int sock) {
  (void)host;
  (void)port;
  (void)sock;
  sr__txn *t = of(tr);
  char *buf = NULL;
  size_t len = 0;
  if (!t || sr__message_to_str(m, &buf, &len) != 0) return -1;
  int rc = sr__transport_send(t->ua, &t->peer, buf, len);
  osip_free(buf);
  return rc == 0 ? 0 : -1;
}

int sr__send_stateless(sr_ua *ua, osip_message_t *msg, sr__peer *to) {
  char *buf = NULL;
  size_t len = 0;
  int rc = sr__message_to_str(msg, &buf, &len);
  if (rc < 0) return rc;
  rc = sr__transport_send(ua, to, buf, len);
  osip_free(buf);
  return rc;
}

/* libosip2 prints its parse errors to stdout unless given a trace
 * function; stdout belongs to the application, and the UA logs the same
 * events (an unparsable or bad message) through its own log_fn. */
static void osip_quiet(const char *file, int line, osip_trace_level_t level,
                       const char *fmt, va_list ap) {
  (void)file; (void)line; (void)level; (void)fmt; (void)ap;
}

int sr__txn_system_init(sr_ua *ua) {
  osip_trace_initialize_func(OSIP_FATAL, osip_quiet);
  if (osip_init(&ua->osip) != 0) return SR_ENOMEM;
  osip_set_application_context(ua->osip, ua);
  osip_set_cb_send_message(ua->osip, cb_send);
  for (int i = 0; i < OSIP_MESSAGE_CALLBACK_COUNT; i++)
    osip_set_message_callback(ua->osip, i, cb_message);
  osip_set_kill_transaction_callback(ua->osip, OSIP_ICT_KILL_TRANSACTION, cb_kill);
  osip_set_kill_transaction_callback(ua->osip, OSIP_IST_KILL_TRANSACTION, cb_kill);
  osip_set_kill_transaction_callback(ua->osip, OSIP_NICT_KILL_TRANSACTION, cb_kill);
  osip_set_kill_transaction_callback(ua->osip, OSIP_NIST_KILL_TRANSACTION, cb_kill);
  for (int i = 0; i < OSIP_TRANSPORT_ERROR_CALLBACK_COUNT; i++)
    osip_set_transport_error_callback(ua->osip, i, cb_transport_error);
  return 0;
}

void sr__txn_system_free(sr_ua *ua) {
  /* Kill every transaction: owners are released, nothing is sent. */
  for (size_t i = 0; i < ua->txns.nbuckets; i++)
    while (ua->txns.buckets[i]) sr__txn_finish(ua->txns.buckets[i]);
  sr__hash_free(&ua->txns);
  if (ua->osip) osip_release(ua->osip);
  ua->osip = NULL;
}

/* Applies the UA's T1/T4 (libosip2 compiles its defaults in). */
static void apply_timers(sr_ua *ua, osip_transaction_t *tr) {
  int t1 = ua->opt.t1_ms, t4 = ua->opt.t4_ms;
  struct timeval now;
  osip_gettimeofday(&now, NULL);
#define RESTART(len, start, v)                                          \
  do {                                                                  \
    if ((len) > 0) {                                                    \
      (len) = (v);                                                      \
      if ((start).tv_sec != -1) {                                       \
        (start) = now;                                                  \
        add_gettimeofday(&(start), (len));                              \
      }                                                                 \
    }                                                                   \
  } while (0)
  switch (tr->ctx_type) {
  case ICT:
    RESTART(tr->ict_context->timer_a_length, tr->ict_context->timer_a_start, t1);
    RESTART(tr->ict_context->timer_b_length, tr->ict_context->timer_b_start, 64 * t1);
    RESTART(tr->ict_context->timer_d_length, tr->ict_context->timer_d_start,
            64 * t1 > 32000 ? 64 * t1 : (t1 < 500 ? 64 * t1 : 32000));
    break;
  case IST:
    RESTART(tr->ist_context->timer_g_length, tr->ist_context->timer_g_start, t1);
    RESTART(tr->ist_context->timer_h_length, tr->ist_context->timer_h_start, 64 * t1);
    RESTART(tr->ist_context->timer_i_length, tr->ist_context->timer_i_start, t4);
    break;
  default:
    break;
  }
#undef RESTART
}

/* `key` is the index key the caller computed (copied). INVITE
 * transactions get libosip2's state machine; m is then libosip2's. */
static sr__txn *txn_new(sr_ua *ua, osip_fsm_type_t type, osip_message_t *m,
                        int server, const sr__peer *peer, const char *key) {
  sr__txn *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->kind = type;
  t->key = strdup(key);
  if (!t->key || ((type == ICT || type == IST) &&
                  osip_transaction_init(&t->tr, type, ua->osip, m) != 0)) {
    free(t->key);
    free(t);
    return NULL;
  }
  t->ua = ua;
  t->refs = 1;
  t->server = server;
  t->peer = *peer;
  t->indexed = 1;
  if (t->tr) {
    /* osip_transaction_init appended it to a libosip2 list that is walked
     * end to end on every add and remove; we never use those lists (our
     * own index finds transactions), so keeping them empty keeps both
     * O(1). */
    osip_remove_transaction(ua->osip, t->tr);
    sr__timer_init(&t->timer, txn_timer, t);
    osip_transaction_set_your_instance(t->tr, t);
    apply_timers(ua, t->tr);
  }
  sr__hash_insert(&ua->txns, TXN_NEXT, txn_key, t);
  ua->ntxns++;
  return t;
}

int sr__txn_send_request(sr_ua *ua, osip_message_t *req, const sr__peer *to,
                         const sr__txn_owner *ops, void *owner,
                         sr__txn **out) {
  if (ua->closed) {
    osip_message_free(req);
    return SR_ECLOSED;
  }
  osip_fsm_type_t type = MSG_IS_INVITE(req) ? ICT : NICT;
  char kb[KEY_BUF];
  char *key = make_key(0, req, NULL, kb, sizeof kb);
  sr__txn *t = key ? txn_new(ua, type, req, 0, to, key) : NULL;
  free_key(key, kb);
  if (!t) {
    osip_message_free(req);
    return SR_ENOMEM;
  }
  t->owner = owner;
  t->owner_ops = ops;
  if (ops && ops->ref) ops->ref(owner);
  if (out) *out = sr__txn_ref(t);
  if (type == NICT) {
    sr__ntxn_send(t, req);
    return 0;
  }
  osip_event_t *evt = osip_new_outgoing_sipmessage(req);
  if (!evt) {
    osip_message_free(req);
    t->killed = 1;
    sr__txn_finish(t);
    return SR_ENOMEM;
  }
  txn_exec(t, evt);
  return 0;
}

int sr__txn_respond(sr__txn *t, osip_message_t *resp) {
  if (t && t->kind == NIST) return sr__ntxn_respond(t, resp);
  if (!t || !t->tr) {
    osip_message_free(resp);
    return SR_ECLOSED;
  }
  osip_event_t *evt = osip_new_outgoing_sipmessage(resp);
  if (!evt) {
    osip_message_free(resp);
    return SR_ENOMEM;
  }
  txn_exec(t, evt);
  return 0;
}

int sr__txn_reply(sr__txn *t, int code, const char *reason,
                  const char *extra_headers, const char *body,
                  const char *content_type, const char *to_tag) {
  osip_message_t *req = sr__txn_request(t), *resp;
  if (!req) return SR_ECLOSED;
  int rc = sr__build_response(t->ua, req, code, reason, to_tag, &resp);
  if (rc < 0) return rc;
  if ((rc = sr__add_headers(resp, extra_headers)) < 0 ||
      (rc = sr__set_body(resp, body, content_type)) < 0) {
    osip_message_free(resp);
    return rc;
  }
  return sr__txn_respond(t, resp);
}

/* Where responses to a request go (RFC 3261 §18.2.2, RFC 3581). */
static void response_peer(osip_message_t *req, const sr__peer *from,
                          sr__peer *out) {
  *out = *from;
  if (from->tp != SR_TRANSPORT_UDP) return;
  osip_via_t *via = osip_list_get(&req->vias, 0);
  osip_generic_param_t *rport = NULL;
  if (!via) return;
  osip_via_param_get_byname(via, "rport", &rport);
  if (rport || !via->port) return;
  int port = atoi(via->port);
  if (port <= 0 || port > 65535) return;
  if (out->addr.ss_family == AF_INET)
    ((struct sockaddr_in *)&out->addr)->sin_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in6 *)&out->addr)->sin6_port = htons((uint16_t)port);
}

void sr__txn_conn_lost(sr_ua *ua, uint64_t conn) {
  for (;;) {
    sr__txn *hit = NULL;
    for (size_t i = 0; i < ua->txns.nbuckets && !hit; i++)
      for (sr__txn *t = ua->txns.buckets[i]; t; t = t->hnext)
        if (client_live(t) && t->peer.tp == SR_TRANSPORT_TCP &&
            t->peer.conn == conn && !t->in_exec) {
          hit = t;
          break;
        }
    if (!hit) return;
    sr__txn_ref(hit);
    pending_up up = {UP_FAILURE, 503, NULL};
    deliver(hit, &up);
    hit->killed = 1;
    sr__txn_finish(hit);
    sr__txn_unref(hit);
  }
}

sr__txn *sr__txn_find_invite(sr_ua *ua, osip_message_t *cancel) {
  char kb[KEY_BUF];
  char *key = make_key(1, cancel, "INVITE", kb, sizeof kb);
  sr__txn *t = key ? sr__hash_find(&ua->txns, TXN_NEXT, txn_key, key) : NULL;
  free_key(key, kb);
  return t && t->kind == IST && t->tr ? t : NULL;
}

void sr__txn_incoming(sr_ua *ua, osip_event_t *evt, const sr__peer *from) {
  osip_message_t *m = evt->sip;
  int server = MSG_IS_REQUEST(m);
  char kb[KEY_BUF];
  char *key = make_key(server, m, NULL, kb, sizeof kb);
  sr__txn *t = key ? sr__hash_find(&ua->txns, TXN_NEXT, txn_key, key) : NULL;
  if (t) {
    free_key(key, kb);
    /* Keep TCP responses on the connection the latest request used. */
    if (server && from->tp == SR_TRANSPORT_TCP) t->peer.conn = from->conn;
    if (invite_kind(t)) {
      txn_exec(t, evt);
      return;
    }
    osip_free(evt);
    sr__ntxn_receive(t, m, 0);
    return;
  }
  if (!server || MSG_IS_ACK(m) || !key) {
    free_key(key, kb);
    if (server && !MSG_IS_ACK(m)) { /* no Via or CSeq to key it by */
      sr__log(ua, SR_LOG_ERROR, "cannot create a server transaction");
      osip_message_free(m);
      osip_free(evt);
      return;
    }
    /* ACK for a 2xx, a 2xx retransmitted after its ICT ended, or a stray
     * response: the session layer decides. */
    sr__ua_on_stray(ua, m, from);
    osip_message_free(m);
    osip_free(evt);
    return;
  }
  sr__peer rp;
  response_peer(m, from, &rp);
  int invite = MSG_IS_INVITE(m);
  t = txn_new(ua, invite ? IST : NIST, m, 1, &rp, key);
  free_key(key, kb);
  if (!t) {
    sr__log(ua, SR_LOG_ERROR, "cannot create a server transaction");
    osip_message_free(m);
    osip_free(evt);
    return;
  }
  if (invite) {
    txn_exec(t, evt);
    return;
  }
  osip_free(evt);
  sr__ntxn_receive(t, m, 1);
}
