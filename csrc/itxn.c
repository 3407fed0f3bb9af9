/*
 * itxn.c — INVITE transactions (RFC 3261 §17.1.1 client, §17.2.1 server).
 *
 * libosip2's version of each is a 15 KiB object, memset at creation, with
 * timers we had to translate and re-space. These keep the request, the
 * bytes last sent (the INVITE, then the ACK; the last response) and one
 * loop timer, and use the UA's T1/T2/T4.
 *
 * As in ntxn.c, upcalls run after the state has moved, with a reference
 * held, so a handler may respond or send from inside them.
 *
 * A 2xx ends either side at once (no RFC 6026 Accepted state): the ACK
 * for a 2xx, a retransmitted 2xx and an INVITE retransmitted after it
 * reach the session layer as strays or new transactions, which answer them.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void send_wire(sr__txn *t, int *rc) {
  *rc = t->wire ? sr__transport_send(t->ua, &t->peer, t->wire, t->wire_len) : 0;
}

/* ---------------- client ---------------- */

/* Timer D: long enough to see every retransmission of the final response
 * (32 s); a T1 shortened below its default (tests) shortens it too. */
static int timer_d_ms(const sr__txn *t) {
  int t1 = t->ua->opt.t1_ms;
  if (sr__txn_reliable(t)) return 0;
  if (t1 < 500) return 64 * t1;
  return 64 * t1 > 32000 ? 64 * t1 : 32000;
}

static void client_timer(void *arg) {
  sr__txn *t = arg;
  if (t->state >= SR__N_COMPLETED) { /* Timer D */
    sr__txn_finish(t);
    return;
  }
  uint64_t now = sr__now_ms();
  if (now >= t->f_due) { /* Timer B */
    sr__txn_fail(t, 408);
    return;
  }
  if (t->e_due && now >= t->e_due) { /* Timer A: doubling, no cap */
    int rc;
    t->e_ms *= 2;
    t->e_due = now + (uint64_t)t->e_ms;
    send_wire(t, &rc);
    if (rc < 0) {
      sr__txn_fail(t, 503);
      return;
    }
  }
  sr__txn_arm_next(t);
}

void sr__itxn_send(sr__txn *t, osip_message_t *req) {
  sr__txn_client_start(t, req, client_timer);
}

/* The Route set of a request, for its ACK or CANCEL: the parsed Route
 * headers and the Route lines an application added as extra headers
 * (they stay generic, unparsed). */
int sr__copy_routes(osip_message_t *from, osip_message_t *to) {
  if (osip_list_clone(&from->routes, &to->routes,
                      (int (*)(void *, void **))osip_route_clone) != 0)
    return -1;
  osip_header_t *h, *c;
  for (int i = 0; (h = osip_list_get(&from->headers, i)); i++) {
    if (!h->hname || osip_strcasecmp(h->hname, "route") != 0) continue;
    if (osip_header_clone(h, &c) != 0) return -1;
    if (osip_list_add(&to->headers, c, -1) < 0) {
      osip_header_free(c);
      return -1;
    }
  }
  return 0;
}

/* The ACK for a non-2xx final response (§17.1.1.3): the INVITE's
 * Request-URI, Call-ID, From, top Via, Route set and CSeq number, the
 * response's To. Serialised into t->wire. */
static int build_ack(sr__txn *t, osip_message_t *resp) {
  osip_message_t *req = t->req, *ack;
  if (!req || osip_message_init(&ack) != 0) return SR_ENOMEM;
  osip_via_t *via = osip_list_get(&req->vias, 0), *v = NULL;
  int ok = via && req->cseq && req->cseq->number &&
           osip_uri_clone(req->req_uri, &ack->req_uri) == 0 &&
           osip_call_id_clone(req->call_id, &ack->call_id) == 0 &&
           osip_from_clone(req->from, &ack->from) == 0 &&
           osip_to_clone(resp->to, &ack->to) == 0 &&
           osip_via_clone(via, &v) == 0 &&
           osip_list_add(&ack->vias, v, -1) >= 0 &&
           sr__copy_routes(req, ack) == 0 && osip_cseq_init(&ack->cseq) == 0;
  if (ok) {
    ack->sip_method = osip_strdup("ACK");
    ack->sip_version = osip_strdup("SIP/2.0");
    ack->cseq->number = osip_strdup(req->cseq->number);
    ack->cseq->method = osip_strdup("ACK");
    ok = ack->sip_method && ack->sip_version && ack->cseq->number &&
         ack->cseq->method && osip_message_set_max_forwards(ack, "70") == 0;
  }
  char *buf = NULL;
  size_t len = 0;
  int rc = ok ? sr__txn_serialise(ack, &buf, &len) : SR_ENOMEM;
  osip_message_free(ack);
  if (rc == 0) sr__txn_set_wire(t, buf, len);
  return rc == 0 && t->wire ? 0 : SR_ENOMEM;
}

static void client_receive(sr__txn *t, osip_message_t *resp) {
  int code = resp->status_code, rc = 0;
  if (t->state >= SR__N_COMPLETED) {
    /* A retransmitted non-2xx final gets the same ACK; the rest is
     * absorbed. */
    if (code >= 300) send_wire(t, &rc);
    osip_message_free(resp);
    return;
  }
  sr__timer_stop(t->ua, &t->timer); /* Timers A and B end with any answer */
  if (code < 200) {
    t->state = SR__N_PROCEEDING;
    sr__txn_set_wire(t, NULL, 0);
  } else if (code < 300) {
    t->state = SR__N_TERMINATED;
  } else {
    rc = build_ack(t, resp);
    if (rc == 0) send_wire(t, &rc);
    if (rc < 0) sr__log(t->ua, SR_LOG_WARNING, "cannot send ACK: %s", sr_strerror(rc));
    sr__txn_drop_request(t);
    t->state = rc < 0 ? SR__N_TERMINATED : SR__N_COMPLETED;
  }
  sr__txn_ref(t);
  sr__txn_to_owner(t, resp, 0);
  osip_message_free(resp);
  if (t->indexed && t->state == SR__N_TERMINATED) {
    sr__txn_finish(t);
  } else if (t->indexed && t->state == SR__N_COMPLETED) {
    sr__txn_detach(t); /* the owner has its final answer */
    int d = timer_d_ms(t);
    if (d > 0) sr__txn_arm_at(t, sr__now_ms() + (uint64_t)d);
    else sr__txn_finish(t);
  }
  sr__txn_unref(t);
}

/* ---------------- server ---------------- */

static void server_end(sr__txn *t) {
  t->state = SR__N_TERMINATED;
  sr__txn_drop_request(t);
  sr__txn_finish(t);
}

static void server_timer(void *arg) {
  sr__txn *t = arg;
  if (t->state == SR__N_CONFIRMED) { /* Timer I */
    server_end(t);
    return;
  }
  uint64_t now = sr__now_ms();
  if (now >= t->f_due) { /* Timer H */
    sr__log(t->ua, SR_LOG_WARNING, "no ACK for a final response to INVITE");
    server_end(t);
    return;
  }
  if (t->e_due && now >= t->e_due) { /* Timer G: doubling up to T2 */
    int rc, t2 = t->ua->opt.t2_ms;
    t->e_ms = 2 * t->e_ms < t2 ? 2 * t->e_ms : t2;
    t->e_due = now + (uint64_t)t->e_ms;
    send_wire(t, &rc);
    if (rc < 0) {
      sr__log(t->ua, SR_LOG_WARNING, "cannot resend a response: %s",
              sr_strerror(rc));
      server_end(t);
      return;
    }
  }
  sr__txn_arm_next(t);
}

int sr__itxn_respond(sr__txn *t, osip_message_t *resp) {
  if (t->state != SR__N_PROCEEDING || !t->indexed) {
    osip_message_free(resp);
    return SR_ECLOSED;
  }
  char *buf;
  size_t len;
  int code = resp->status_code;
  int rc = sr__txn_serialise(resp, &buf, &len);
  osip_message_free(resp);
  if (rc < 0) return rc;
  return sr__itxn_respond_wire(t, code, buf, len);
}

int sr__itxn_respond_wire(sr__txn *t, int code, char *buf, size_t len) {
  if (t->state != SR__N_PROCEEDING || !t->indexed) {
    osip_free(buf);
    return SR_ECLOSED;
  }
  int rc = sr__transport_send(t->ua, &t->peer, buf, len);
  /* Kept on any transport: a retransmitted INVITE is answered with it. */
  sr__txn_set_wire(t, buf, len);
  if (rc < 0) {
    sr__log(t->ua, SR_LOG_WARNING, "cannot send a response: %s",
            sr_strerror(rc));
    server_end(t);
    return 0;
  }
  if (code < 200) return 0;
  if (code < 300) {
    server_end(t);
    return 0;
  }
  t->state = SR__N_COMPLETED;
  sr__txn_drop_request(t);
  uint64_t now = sr__now_ms();
  int t1 = t->ua->opt.t1_ms;
  t->f_due = now + 64 * (uint64_t)t1;
  if (!sr__txn_reliable(t)) {
    t->e_ms = t1;
    t->e_due = now + (uint64_t)t1;
  }
  sr__txn_arm_at(t, t->e_due ? t->e_due : t->f_due);
  return 0;
}

static void server_receive(sr__txn *t, osip_message_t *req, int created) {
  if (!created) {
    int rc;
    if (MSG_IS_ACK(req)) {
      if (t->state == SR__N_COMPLETED) {
        /* Confirmed absorbs ACK retransmissions for Timer I (T4). */
        t->state = SR__N_CONFIRMED;
        sr__txn_set_wire(t, NULL, 0);
        if (sr__txn_reliable(t)) server_end(t);
        else sr__txn_arm_at(t, sr__now_ms() + (uint64_t)t->ua->opt.t4_ms);
      }
    } else if (t->state <= SR__N_COMPLETED) {
      send_wire(t, &rc); /* the last provisional, or the final */
    }
    osip_message_free(req);
    return;
  }
  sr__txn_deliver_request(t, req, SR__N_PROCEEDING, server_timer);
}

void sr__itxn_receive(sr__txn *t, osip_message_t *m, int created) {
  if (t->server) server_receive(t, m, created);
  else client_receive(t, m);
}
