/*
 * ntxn.c — non-INVITE transactions (RFC 3261 §17.1.2 client, §17.2.2
 * server).
 *
 * A transfer runs six of them (REFER, NOTIFYs, BYEs) against two INVITE
 * transactions. libosip2's version of each is a 15 KiB object that keeps
 * both messages for Timer J/K (up to 32 s) and serialises the request
 * again on every retransmission. These need only the request until the
 * final response, the bytes last sent, and one loop timer, so they are
 * ours, as are the INVITE ones (itxn.c).
 *
 * Upcalls run after the state has moved, with a reference held, so a
 * handler may respond, or send, from inside them. The request stays
 * valid until the upcall that saw it returns.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Completed absorbs retransmissions for Timer J/K, or not at all on a
 * reliable transport (§17.1.2.2, §17.2.2). */
static void complete(sr__txn *t, int linger_ms) {
  t->state = SR__N_COMPLETED;
  sr__txn_drop_request(t);
  sr__txn_detach(t); /* the owner has its final answer */
  if (sr__txn_reliable(t) || linger_ms <= 0) {
    sr__txn_finish(t);
    return;
  }
  sr__txn_arm_at(t, sr__now_ms() + (uint64_t)linger_ms);
}

/* ---------------- client ---------------- */

static void client_timer(void *arg) {
  sr__txn *t = arg;
  if (t->state >= SR__N_COMPLETED) { /* Timer K */
    sr__txn_finish(t);
    return;
  }
  uint64_t now = sr__now_ms();
  if (now >= t->f_due) { /* Timer F */
    sr__txn_fail(t, 408);
    return;
  }
  if (t->e_due && now >= t->e_due) { /* Timer E: T2 once a 1xx came */
    int t2 = t->ua->opt.t2_ms;
    t->e_ms = t->state == SR__N_PROCEEDING || 2 * t->e_ms > t2 ? t2 : 2 * t->e_ms;
    t->e_due = now + (uint64_t)t->e_ms;
    if (sr__transport_send(t->ua, &t->peer, t->wire, t->wire_len) < 0) {
      sr__txn_fail(t, 503);
      return;
    }
  }
  sr__txn_arm_next(t);
}

void sr__ntxn_send_wire(sr__txn *t, const char *method, char *buf,
                        size_t len) {
  sr__txn_client_start_wire(t, method, buf, len, client_timer);
}

void sr__ntxn_send(sr__txn *t, osip_message_t *req) {
  sr__txn_client_start(t, req, client_timer);
}

static void client_receive(sr__txn *t, osip_message_t *resp) {
  if (t->state >= SR__N_COMPLETED) { /* a retransmitted final: absorbed */
    osip_message_free(resp);
    return;
  }
  int final = resp->status_code >= 200;
  if (final) {
    t->state = SR__N_COMPLETED;
    sr__timer_stop(t->ua, &t->timer);
    sr__txn_set_wire(t, NULL, 0);
  } else {
    t->state = SR__N_PROCEEDING;
  }
  sr__txn_ref(t);
  sr__txn_to_owner(t, resp, 0);
  osip_message_free(resp);
  if (final && t->indexed) complete(t, t->ua->opt.t4_ms);
  sr__txn_unref(t);
}

/* ---------------- server ---------------- */

static void server_timer(void *arg) { sr__txn_finish(arg); } /* Timer J */

int sr__ntxn_respond(sr__txn *t, osip_message_t *resp) {
  if (t->state >= SR__N_COMPLETED || !t->indexed) {
    osip_message_free(resp);
    return SR_ECLOSED;
  }
  char *buf;
  size_t len;
  int code = resp->status_code;
  int rc = sr__txn_serialise(resp, &buf, &len);
  osip_message_free(resp);
  if (rc < 0) return rc;
  return sr__ntxn_respond_wire(t, code, buf, len);
}

int sr__ntxn_respond_wire(sr__txn *t, int code, char *buf, size_t len) {
  if (t->state >= SR__N_COMPLETED || !t->indexed) {
    osip_free(buf);
    return SR_ECLOSED;
  }
  int final = code >= 200;
  int rc = sr__transport_send(t->ua, &t->peer, buf, len);
  if (sr__txn_reliable(t)) {
    osip_free(buf);
  } else {
    sr__txn_set_wire(t, buf, len); /* answers a retransmitted request */
  }
  if (rc < 0) {
    sr__log(t->ua, SR_LOG_WARNING, "cannot send a response: %s",
            sr_strerror(rc));
    t->state = SR__N_TERMINATED;
    sr__txn_drop_request(t);
    sr__txn_finish(t);
    return 0;
  }
  if (final) complete(t, 64 * t->ua->opt.t1_ms);
  else t->state = SR__N_PROCEEDING;
  return 0;
}

static void server_receive(sr__txn *t, osip_message_t *req, int created) {
  if (!created) {
    /* A retransmission: answered with the last response, if any. */
    if (t->wire && t->state != SR__N_TRYING)
      sr__transport_send(t->ua, &t->peer, t->wire, t->wire_len);
    osip_message_free(req);
    return;
  }
  sr__txn_deliver_request(t, req, SR__N_TRYING, server_timer);
}

void sr__ntxn_receive(sr__txn *t, osip_message_t *m, int created) {
  if (t->server) server_receive(t, m, created);
  else client_receive(t, m);
}
