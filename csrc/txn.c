/*
 * txn.c — the transaction index and dispatch, and what the state machines
 * share. INVITE transactions run in itxn.c, the others in ntxn.c (RFC 3261
 * §17).
 *
 * Transactions are indexed by branch (§17.1.3/§17.2.3) in a hash, and each
 * arms one loop timer at its earliest deadline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
  char *k = n <= cap ? buf : sr__malloc(n);
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
  if (k != buf) sr__free(k);
}

/* Takes t out of its TCP connection's list, if it is in one. */
static void conn_unlink(sr__txn *t) {
  if (!t->cpprev) return;
  if ((*t->cpprev = t->cnext)) t->cnext->cpprev = t->cpprev;
  t->cnext = NULL;
  t->cpprev = NULL;
}

sr__txn *sr__txn_ref(sr__txn *t) {
  if (t) t->refs++;
  return t;
}

void sr__txn_unref(sr__txn *t) {
  if (!t || --t->refs > 0) return;
  conn_unlink(t);
  if (t->req) osip_message_free(t->req);
  osip_free(t->wire);
  sr__free(t->key);
  sr__free(t);
}

void sr__txn_detach(sr__txn *t) {
  if (!t || !t->owner) return;
  void *o = t->owner;
  const sr__txn_owner *ops = t->owner_ops;
  t->owner = NULL;
  t->owner_ops = NULL;
  if (ops && ops->unref) ops->unref(o);
}

osip_message_t *sr__txn_request(sr__txn *t) { return t ? t->req : NULL; }

int sr__txn_pending(sr__txn *t) {
  return t && t->indexed && t->server && t->state < SR__N_COMPLETED;
}

/* A client transaction still waiting for its final response. */
static int client_live(const sr__txn *t) {
  return !t->server && t->indexed && t->state < SR__N_COMPLETED;
}

int sr__txn_reliable(const sr__txn *t) { return t->peer.tp != SR_TRANSPORT_UDP; }

void sr__txn_arm_at(sr__txn *t, uint64_t due) {
  uint64_t now = sr__now_ms();
  sr__timer_start(t->ua, &t->timer, due > now ? (int64_t)(due - now) : 0);
}

/* The writer's buffer has room to spare, and a completed transaction may
 * keep its bytes for 32 s: keep an exact copy instead. Takes buf. */
void sr__txn_set_wire(sr__txn *t, char *buf, size_t len) {
  osip_free(t->wire);
  t->wire = NULL;
  t->wire_len = 0;
  if (!buf) return;
  char *copy = osip_malloc(len + 1);
  if (copy) {
    memcpy(copy, buf, len);
    copy[len] = 0;
    t->wire = copy;
    t->wire_len = len;
  }
  osip_free(buf);
}

void sr__txn_drop_request(sr__txn *t) {
  if (t->req && !t->in_exec) {
    osip_message_free(t->req);
    t->req = NULL;
  }
}

int sr__txn_serialise(osip_message_t *m, char **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  int rc = sr__message_to_str(m, buf, len);
  return rc < 0 ? rc : 0;
}

/* The owner is held through the upcall: closing the UA from inside it
 * detaches t, which drops the owner's last reference. */
void sr__txn_to_owner(sr__txn *t, osip_message_t *resp, int code) {
  const sr__txn_owner *ops = t->owner_ops;
  void *o = t->owner;
  if (!o) return;
  t->in_exec++;
  if (ops->ref) ops->ref(o);
  if (resp && ops->on_response) ops->on_response(o, t, resp);
  if (!resp && ops->on_failure) ops->on_failure(o, t, code);
  if (ops->unref) ops->unref(o);
  t->in_exec--;
}

void sr__txn_fail(sr__txn *t, int code) {
  t->state = SR__N_TERMINATED;
  sr__timer_stop(t->ua, &t->timer);
  sr__txn_ref(t);
  sr__txn_to_owner(t, NULL, code);
  sr__txn_finish(t);
  sr__txn_unref(t);
}

void sr__txn_arm_next(sr__txn *t) {
  uint64_t due = t->f_due;
  if (t->e_due && t->e_due < due) due = t->e_due;
  sr__txn_arm_at(t, due);
}

/* Every transaction timer: the machine's own function, run with a
 * reference held (a resent message runs the hook, which may close the UA
 * and so end t). */
static void txn_timer(void *arg) {
  sr__txn *t = sr__txn_ref(arg);
  t->timer_fn(t);
  sr__txn_unref(t);
}

static void timer_init(sr__txn *t, void (*timer_fn)(void *)) {
  t->timer_fn = timer_fn;
  sr__timer_init(&t->timer, txn_timer, t);
}

void sr__txn_client_start(sr__txn *t, osip_message_t *req,
                          void (*timer_fn)(void *)) {
  char *buf;
  size_t len;
  t->req = req;
  if (sr__txn_serialise(req, &buf, &len) < 0) {
    t->state = SR__N_TRYING;
    timer_init(t, timer_fn);
    sr__txn_fail(t, 503);
    return;
  }
  sr__txn_client_start_wire(t, req->sip_method, buf, len, timer_fn);
}

void sr__txn_client_start_wire(sr__txn *t, const char *method, char *buf,
                               size_t len, void (*timer_fn)(void *)) {
  int t1 = t->ua->opt.t1_ms;
  t->state = SR__N_TRYING;
  timer_init(t, timer_fn);
  uint64_t now = sr__now_ms();
  t->f_due = now + 64 * (uint64_t)t1; /* Timer B / F */
  if (!sr__txn_reliable(t)) {         /* Timer A / E */
    t->e_ms = t1;
    t->e_due = now + (uint64_t)t1;
  }
  sr__txn_arm_next(t);
  sr__txn_ref(t); /* the message hook may close the UA, which ends t */
  int rc = sr__transport_send(t->ua, &t->peer, buf, len);
  if (sr__txn_reliable(t)) {
    if (rc == 0) sr__transport_track(t->ua, t);
    osip_free(buf); /* never retransmitted */
  } else {
    sr__txn_set_wire(t, buf, len);
  }
  if (rc < 0 && !t->ua->closed) { /* closed: method went with the request */
    sr__log(t->ua, SR_LOG_WARNING, "cannot send %s: %s", method,
            sr_strerror(rc));
    sr__txn_fail(t, 503);
  }
  sr__txn_unref(t);
}

void sr__txn_deliver_request(sr__txn *t, osip_message_t *req, int state,
                             void (*timer_fn)(void *)) {
  t->req = req;
  t->state = state;
  timer_init(t, timer_fn);
  sr__txn_ref(t);
  t->in_exec++;
  sr__ua_on_request(t->ua, t, req);
  t->in_exec--;
  if (t->state >= SR__N_COMPLETED) sr__txn_drop_request(t);
  sr__txn_unref(t);
}

/* Ends a transaction: out of the index, owner released. */
void sr__txn_finish(sr__txn *t) {
  sr_ua *ua = t->ua;
  if (!t->indexed) return;
  t->indexed = 0;
  conn_unlink(t);
  sr__timer_stop(ua, &t->timer);
  sr__hash_remove(&ua->txns, TXN_NEXT, txn_key, t);
  sr__txn_drop_request(t);
  osip_free(t->wire);
  t->wire = NULL;
  ua->ntxns--;
  sr__txn_detach(t);
  sr__txn_unref(t); /* the reference the index held */
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
  static int parser_ready;
  (void)ua;
  osip_trace_initialize_func(OSIP_FATAL, osip_quiet);
  /* The header table libosip2's parser needs (osip_init used to fill it). */
  if (!parser_ready && parser_init() != 0) return SR_ENOMEM;
  parser_ready = 1;
  return 0;
}

void sr__txn_system_free(sr_ua *ua) {
  /* Kill every transaction: owners are released, nothing is sent. */
  for (size_t i = 0; i < ua->txns.nbuckets; i++)
    while (ua->txns.buckets[i]) sr__txn_finish(ua->txns.buckets[i]);
  sr__hash_free(&ua->txns);
}

/* `key` is the index key the caller computed (copied). */
static sr__txn *txn_new(sr_ua *ua, osip_fsm_type_t type, int server,
                        const sr__peer *peer, const char *key) {
  sr__txn *t = sr__calloc(1, sizeof *t);
  if (!t) return NULL;
  t->kind = type;
  t->key = sr__strdup(key);
  if (!t->key) {
    sr__free(t);
    return NULL;
  }
  t->ua = ua;
  t->refs = 1;
  t->server = server;
  t->peer = *peer;
  t->indexed = 1;
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
  sr__txn *t = key ? txn_new(ua, type, 0, to, key) : NULL;
  free_key(key, kb);
  if (!t) {
    osip_message_free(req);
    return SR_ENOMEM;
  }
  t->owner = owner;
  t->owner_ops = ops;
  if (ops && ops->ref) ops->ref(owner);
  if (out) *out = sr__txn_ref(t);
  if (type == ICT) sr__itxn_send(t, req);
  else sr__ntxn_send(t, req);
  return 0;
}

int sr__txn_send_wire(sr_ua *ua, const char *method, const char *branch,
                      char *buf, size_t len, const sr__peer *to,
                      const sr__txn_owner *ops, void *owner, sr__txn **out) {
  /* The key make_key gives the same request parsed: C<branch>|<method>. */
  char kb[KEY_BUF];
  size_t bl = strlen(branch), ml = strlen(method);
  sr__txn *t = NULL;
  if (!ua->closed && bl + ml + 3 <= sizeof kb) {
    kb[0] = 'C';
    memcpy(kb + 1, branch, bl);
    kb[1 + bl] = '|';
    memcpy(kb + 2 + bl, method, ml + 1);
    t = txn_new(ua, NICT, 0, to, kb);
  }
  if (!t) {
    osip_free(buf);
    return ua->closed ? SR_ECLOSED : SR_ENOMEM;
  }
  t->owner = owner;
  t->owner_ops = ops;
  if (ops && ops->ref) ops->ref(owner);
  if (out) *out = sr__txn_ref(t);
  sr__ntxn_send_wire(t, method, buf, len);
  return 0;
}

/* Responding runs the message hook, which may close the UA and so end
 * t: a reference is held until the state machine is done with it. */
int sr__txn_respond(sr__txn *t, osip_message_t *resp) {
  if (!t || !t->server) {
    osip_message_free(resp);
    return SR_ECLOSED;
  }
  sr__txn_ref(t);
  int rc = t->kind == IST ? sr__itxn_respond(t, resp) : sr__ntxn_respond(t, resp);
  sr__txn_unref(t);
  return rc;
}

int sr__txn_respond_wire(sr__txn *t, int code, char *buf, size_t len) {
  if (!t || !t->server) {
    osip_free(buf);
    return SR_ECLOSED;
  }
  sr__txn_ref(t);
  int rc = t->kind == IST ? sr__itxn_respond_wire(t, code, buf, len)
                          : sr__ntxn_respond_wire(t, code, buf, len);
  sr__txn_unref(t);
  return rc;
}

int sr__txn_reply(sr__txn *t, int code, const char *reason,
                  const char *extra_headers, const char *body,
                  const char *content_type, const char *to_tag) {
  osip_message_t *req = sr__txn_request(t), *resp;
  if (!req) return SR_ECLOSED;
  if (!extra_headers && !body) { /* written straight from the request */
    char *buf;
    size_t len;
    int rc = sr__write_response(req, code, reason, to_tag, &buf, &len);
    return rc < 0 ? rc : sr__txn_respond_wire(t, code, buf, len);
  }
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
  osip_via_t *via = osip_list_get(&req->vias, 0);
  osip_generic_param_t *rport = NULL;
  if (!via) return;
  if (from->tp == SR_TRANSPORT_TCP) {
    /* The request's connection first; once it is gone, the source address
     * (its "received") and the sent-by port, 5060 by default. */
    int port = via->port ? atoi(via->port) : 5060;
    if (port > 0 && port <= 65535) out->sent_by_port = (uint16_t)port;
    return;
  }
  osip_via_param_get_byname(via, "rport", &rport);
  if (rport || !via->port) return;
  int port = atoi(via->port);
  if (port <= 0 || port > 65535) return;
  sr__addr_set_port(&out->addr, (uint16_t)port);
}

void sr__txn_conn_lost(sr__txn **head, int fail) {
  sr__txn *t;
  /* From the head each time: failing one runs upcalls, which may end
   * others (they leave the list as they end). */
  while ((t = *head)) {
    conn_unlink(t);
    if (fail && client_live(t) && !t->in_exec) sr__txn_fail(t, 503);
  }
}

sr__txn *sr__txn_find_invite(sr_ua *ua, osip_message_t *cancel) {
  char kb[KEY_BUF];
  char *key = make_key(1, cancel, "INVITE", kb, sizeof kb);
  sr__txn *t = key ? sr__hash_find(&ua->txns, TXN_NEXT, txn_key, key) : NULL;
  free_key(key, kb);
  return t && t->kind == IST ? t : NULL;
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
    osip_free(evt);
    sr__txn_ref(t); /* an ACK sent, or an upcall, may close the UA */
    if (t->kind == ICT || t->kind == IST) sr__itxn_receive(t, m, 0);
    else sr__ntxn_receive(t, m, 0);
    sr__txn_unref(t);
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
  if (ua->overloaded && sr__ua_shed(ua, m, from)) {
    free_key(key, kb);
    osip_message_free(m);
    osip_free(evt);
    return;
  }
  sr__peer rp;
  response_peer(m, from, &rp);
  int invite = MSG_IS_INVITE(m);
  t = txn_new(ua, invite ? IST : NIST, 1, &rp, key);
  free_key(key, kb);
  if (!t) {
    sr__log(ua, SR_LOG_ERROR, "cannot create a server transaction");
    osip_message_free(m);
    osip_free(evt);
    return;
  }
  osip_free(evt);
  if (invite) sr__itxn_receive(t, m, 1);
  else sr__ntxn_receive(t, m, 1);
}
