/*
 * internal.h — private structures shared by the layers of the core.
 * Layers, bottom up: loop, transport, txn, dialog/session, referral.
 * A layer calls the layer below; it reports upward through the small
 * callback tables declared here, never by reaching into a higher struct.
 */
#ifndef SR_INTERNAL_H
#define SR_INTERNAL_H

#include <stdint.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <osip2/osip.h>
#include <osip2/osip_dialog.h>
#include <osipparser2/osip_parser.h>

#include "sipreferral.h"
#include "message.h"

/* ---------------- loop: timers and the epoll set ---------------- */

typedef struct sr__timer {
  size_t slot;        /* index in the heap + 1; 0 when not armed */
  void (*fn)(void *arg);
  void *arg;
} sr__timer;

typedef struct sr__heap_entry {
  uint64_t when;      /* monotonic ms */
  sr__timer *t;
} sr__heap_entry;

/* Delays from SR__COARSE_MS on expire on a multiple of SR__TICK_MS. */
enum { SR__COARSE_MS = 1000, SR__TICK_MS = 64 };

/* What an epoll event points at. */
typedef struct sr__io {
  int fd;
  void (*on_ready)(struct sr__io *io, uint32_t events);
} sr__io;

uint64_t sr__now_ms(void);
void sr__timer_init(sr__timer *t, void (*fn)(void *), void *arg);
void sr__timer_start(sr_ua *ua, sr__timer *t, int64_t delay_ms);
void sr__timer_stop(sr_ua *ua, sr__timer *t);
/* The monotonic ms at which a timer armed at `now` for delay_ms expires. */
uint64_t sr__timer_deadline(uint64_t now, int64_t delay_ms);
int sr__io_add(sr_ua *ua, sr__io *io, uint32_t events);
int sr__io_mod(sr_ua *ua, sr__io *io, uint32_t events);
void sr__io_del(sr_ua *ua, sr__io *io);
/* sr_ua_close: drops the application's fd watches. */
void sr__watch_close_all(sr_ua *ua);

/* parser.c: a received message into an osip_message_t identical to
 * osip_message_parse's (which it falls back to for anything unusual).
 * 0 or SR_EPARSE / SR_ENOMEM. */
int sr__message_parse(const char *data, size_t len, osip_message_t **out);
/* The fast path alone: -1 where sr__message_parse would fall back. */
int sr__message_parse_fast(const char *data, size_t len, osip_message_t **out);

/* pool.c: libosip2's allocator (free lists by size class), installed
 * at load time; idempotent. */
void sr__pool_install(void);

/* ---------------- transport ---------------- */

/* Where a message came from or goes to. conn is a TCP connection id
 * (0 for UDP, or when a new connection may be opened). */
typedef struct sr__peer {
  sr_transport tp;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  /* TCP responses: the request's Via sent-by port, where a new connection
   * goes once the request's own has closed (RFC 3261 §18.2.2); 0: none.
   * (In addrlen's padding: the struct keeps its size.) */
  uint16_t sent_by_port;
  uint64_t conn;
} sr__peer;

typedef struct sr__listener {
  sr__io io;
  sr_ua *ua;
  sr_transport tp;
  int family;
  char host[64]; /* numeric, no brackets */
  int port;
  /* Made once at listen time (snprintf costs ~2,000 instructions a
   * call, and every request and response needs one of these). */
  char via_prefix[112]; /* "SIP/2.0/UDP host:port;branch=z9hG4bK" */
  char contact[256];    /* "<sip:user@host:port[;transport=tcp]>" */
  /* UDP overload (udp_check_queue): new requests get 503 while set;
   * `shed` counts them. */
  int overloaded;
  unsigned shed;
  /* TCP out of descriptors: accepting is paused until `resume` fires;
   * `starved` until an accept succeeds again (said once). */
  sr__timer resume;
  int starved;
} sr__listener;

typedef struct sr__conn sr__conn;
typedef struct sr__txn sr__txn;

int sr__transport_listen(sr_ua *ua, const char *spec);
void sr__transport_close_all(sr_ua *ua);
/* Frees the connections closed (and a closed UA's listeners) once no loop
 * turn is under way; the requests waiting on those connections fail. */
void sr__transport_reap(sr_ua *ua);
/* Sends bytes; for TCP uses peer->conn when alive, else a connection to
 * peer->addr (reused or opened). */
int sr__transport_send(sr_ua *ua, sr__peer *peer, const char *data,
                       size_t len);
/* Puts client transaction t, just sent over TCP, in the list of the
 * connection it went on (t->peer.conn). */
void sr__transport_track(sr_ua *ua, sr__txn *t);
/* Resolves numeric host + port into peer (no DNS: literals or "localhost"). */
int sr__peer_set(sr__peer *peer, sr_transport tp, const char *host, int port);
void sr__peer_format(const sr__peer *peer, char *out, size_t n);
/* The peer's address without brackets, and its port. */
void sr__peer_host(const sr__peer *peer, char *host, size_t n, int *port);
/* The listener a message to peer leaves from (same family and transport). */
sr__listener *sr__transport_listener_for(sr_ua *ua, sr_transport tp,
                                         int family);
/* The same, else the transport's listener of another family (a Via or
 * Contact for a peer of a family we do not listen on). */
sr__listener *sr__transport_listener_near(sr_ua *ua, sr_transport tp,
                                          int family);

/* Upcall from transport: one whole message arrived. */
void sr__ua_on_bytes(sr_ua *ua, const sr__peer *from, const char *data,
                     size_t len);
/* A message that cannot be parsed, or (from transport) one that cannot be
 * framed or is over max_message_size: a request gets "code reason" (400,
 * 513) when its raw Via, From, To, Call-ID and CSeq lines allow one;
 * anything else is dropped. data is the header block, or all of it. */
void sr__ua_refuse(sr_ua *ua, const sr__peer *from, const char *data,
                   size_t len, int code, const char *reason);

/* ------ txn: transactions (index: txn.c; INVITE: itxn.c; others: ntxn.c) ------ */

/* What a client transaction reports to its owner. */
typedef struct sr__txn_owner {
  void (*on_response)(void *owner, sr__txn *t, osip_message_t *resp);
  /* no final response: 408 (Timer B/F) or 503 (transport error) */
  void (*on_failure)(void *owner, sr__txn *t, int status_code);
  void (*ref)(void *owner);
  void (*unref)(void *owner);
} sr__txn_owner;

struct sr__txn {
  sr_ua *ua;
  osip_fsm_type_t kind;   /* ICT, IST, NICT or NIST */
  int refs;
  int server;
  sr__peer peer;          /* next hop (client) or where the request came from */
  char *key;
  sr__txn *hnext;
  sr__timer timer;
  void (*timer_fn)(void *); /* the state machine's; see txn_timer */
  const sr__txn_owner *owner_ops;
  void *owner;
  int in_exec;            /* inside an upcall: keep req */
  int indexed;            /* 0 once ended */
  void *app;              /* server side: the session handling the request */
  int state;              /* SR__N_* */
  osip_message_t *req;    /* the request, until the final response */
  char *wire;             /* client: the request's bytes (an ICT's ACK once
                           * Completed); server: the last response's bytes
                           * (answer to retransmissions) */
  size_t wire_len;
  /* The retransmission timer (E, A or G): its interval and next due time;
   * the give-up timer (F, B or H). */
  int e_ms;
  uint64_t e_due, f_due;
  /* A client transaction sent over TCP: in its connection's list, which
   * fails it at once if the connection is lost. */
  sr__txn *cnext, **cpprev;
};

/* TRYING is an ICT's Calling; CONFIRMED is the IST's only. Ordered: a
 * state >= COMPLETED has its final response. */
enum {
  SR__N_TRYING, SR__N_PROCEEDING, SR__N_COMPLETED, SR__N_CONFIRMED,
  SR__N_TERMINATED
};

/* ntxn.c: the non-INVITE state machines (txn.c dispatches to them). */
void sr__ntxn_send(sr__txn *t, osip_message_t *req);
void sr__ntxn_send_wire(sr__txn *t, const char *method, char *buf,
                        size_t len);
void sr__ntxn_receive(sr__txn *t, osip_message_t *m, int created);
int sr__ntxn_respond(sr__txn *t, osip_message_t *resp);
int sr__ntxn_respond_wire(sr__txn *t, int code, char *buf, size_t len);
/* itxn.c: the INVITE state machines (RFC 3261 §17.1.1, §17.2.1). */
void sr__itxn_send(sr__txn *t, osip_message_t *req);
void sr__itxn_receive(sr__txn *t, osip_message_t *m, int created);
int sr__itxn_respond(sr__txn *t, osip_message_t *resp);
/* Adds from's Route headers (parsed and generic) to to: the ACK of a
 * non-2xx and the CANCEL repeat the INVITE's (§17.1.1.3, §9.1). */
int sr__copy_routes(osip_message_t *from, osip_message_t *to);
/* The same with the response's bytes (buf osip_malloc'd, taken). */
int sr__itxn_respond_wire(sr__txn *t, int code, char *buf, size_t len);
/* txn.c, for the state machines: ends a transaction (out of the index,
 * owner released) — takes the index's reference. */
void sr__txn_finish(sr__txn *t);
int sr__txn_reliable(const sr__txn *t);
/* Arms the transaction's timer at monotonic time `due` (ms). */
void sr__txn_arm_at(sr__txn *t, uint64_t due);
/* Keeps an exact copy of buf (len bytes) as t->wire; frees buf (NULL
 * clears t->wire). */
void sr__txn_set_wire(sr__txn *t, char *buf, size_t len);
/* Frees the request unless an upcall is still looking at it. */
void sr__txn_drop_request(sr__txn *t);
int sr__txn_serialise(osip_message_t *m, char **buf, size_t *len);
/* Tells the owner of a response (resp) or of a failure (code); the caller
 * holds a reference. */
void sr__txn_to_owner(sr__txn *t, osip_message_t *resp, int code);
/* A client transaction that failed (408 at Timer B/F, 503 when it could
 * not be sent): its owner is told, and it ends. */
void sr__txn_fail(sr__txn *t, int code);
/* Arms the timer at the earlier of e_due (the next retransmission: Timer
 * A, E or G) and f_due (giving up: Timer B, F or H). */
void sr__txn_arm_next(sr__txn *t);
/* A new client transaction: keeps req, serialises and sends it, and arms
 * Timer A/E (UDP) and B/F. */
void sr__txn_client_start(sr__txn *t, osip_message_t *req,
                          void (*timer_fn)(void *));
/* The same with the request's bytes only (buf osip_malloc'd, taken). */
void sr__txn_client_start_wire(sr__txn *t, const char *method, char *buf,
                               size_t len, void (*timer_fn)(void *));
/* A new server transaction: keeps req, enters `state`, and hands the
 * request to the UA (which may respond from inside). */
void sr__txn_deliver_request(sr__txn *t, osip_message_t *req, int state,
                             void (*timer_fn)(void *));

int sr__txn_system_init(sr_ua *ua);
void sr__txn_system_free(sr_ua *ua);
/* Sends a request in a new client transaction (takes ownership of req). */
int sr__txn_send_request(sr_ua *ua, osip_message_t *req, const sr__peer *to,
                         const sr__txn_owner *ops, void *owner,
                         sr__txn **out);
/* Sends a non-INVITE request given as its bytes (buf osip_malloc'd,
 * taken) in a new client transaction; branch is its top Via's branch
 * (with z9hG4bK), method its CSeq method. No request is kept: for
 * requests never answered with a challenge (NOTIFY, BYE). */
int sr__txn_send_wire(sr_ua *ua, const char *method, const char *branch,
                      char *buf, size_t len, const sr__peer *to,
                      const sr__txn_owner *ops, void *owner, sr__txn **out);
/* Sends a response in a server transaction (takes ownership of resp). */
int sr__txn_respond(sr__txn *t, osip_message_t *resp);
/* The same with the response's bytes (buf osip_malloc'd, taken). */
int sr__txn_respond_wire(sr__txn *t, int code, char *buf, size_t len);
/* Builds and sends a response to the transaction's request. */
int sr__txn_reply(sr__txn *t, int code, const char *reason,
                  const char *extra_headers, const char *body,
                  const char *content_type, const char *to_tag);
sr__txn *sr__txn_ref(sr__txn *t);
void sr__txn_unref(sr__txn *t);
/* Detaches a client transaction from its owner (no more upcalls). */
void sr__txn_detach(sr__txn *t);
osip_message_t *sr__txn_request(sr__txn *t);
/* A server transaction that can still send a final response. */
int sr__txn_pending(sr__txn *t);
/* The INVITE server transaction a CANCEL names (same branch, §9.2). */
sr__txn *sr__txn_find_invite(sr_ua *ua, osip_message_t *cancel);
/* A lost connection's client transactions (the list at *head) leave the
 * list; with fail, those still waiting fail with 503. */
void sr__txn_conn_lost(sr__txn **head, int fail);
/* Routes a parsed message to its transaction or creates one. Takes evt. */
void sr__txn_incoming(sr_ua *ua, osip_event_t *evt, const sr__peer *from);
/* Sends a message outside any transaction (ACK for 2xx, stateless 400). */
int sr__send_stateless(sr_ua *ua, osip_message_t *msg, sr__peer *to);
/* writer.c: m's bytes, as osip_message_to_str writes them (*dest is
 * osip_malloc'd). 0, SR_ENOMEM, or SR_EINVAL (a header libosip2 could not
 * write either). */
int sr__message_to_str(osip_message_t *m, char **dest, size_t *len);
/* A URI's text, as osip_uri_to_str writes it (*dest osip_malloc'd). */
int sr__uri_to_str(osip_uri_t *u, char **dest);
/* Builds a response to req (copies Via, From, To, Call-ID, CSeq). */
int sr__build_response(sr_ua *ua, osip_message_t *req, int code,
                       const char *reason, const char *to_tag,
                       osip_message_t **out);
int sr__add_headers(osip_message_t *msg, const char *lines);
/* Checks of application text at the API call, before anything is built:
 * each logs why and returns SR_EINVAL, or 0 (NULL passes). A header value
 * or reason phrase may hold no control character but HTAB (a CR or LF
 * would start a header of the caller's); a URI no control character,
 * space, '<', '>' or '"' (it is written inside <...>). */
int sr__check_value(sr_ua *ua, const char *what, const char *s);
int sr__check_uri(sr_ua *ua, const char *what, const char *s);
/* A target URI (sr_ua_make_inviter, sr_session_refer): sr__check_uri, and
 * SR_ETOOBIG when it alone is longer than max_message_size. */
int sr__check_target(sr_ua *ua, const char *target);
/* extra_headers: good lines, and none named in @p reserved (SR__H_ bits). */
int sr__check_headers(sr_ua *ua, const char *lines, unsigned reserved);
/* A response's reason_phrase, content_type and extra_headers. */
int sr__check_response(sr_ua *ua, const sr_response_options *o,
                       unsigned reserved);
int sr__set_body(osip_message_t *msg, const char *body, const char *ctype);

/* Upcall from txn: a new request in a new server transaction. */
void sr__ua_on_request(sr_ua *ua, sr__txn *t, osip_message_t *req);
/* Upcall from txn: a message no transaction matches (ACK for 2xx,
 * retransmitted 2xx, CANCEL). Takes nothing; msg stays the caller's. */
void sr__ua_on_stray(sr_ua *ua, osip_message_t *msg, const sr__peer *from);
/* Upcall from txn, for a request no transaction matches while its UDP
 * listener is overloaded (ua->overloaded): 1 if it would start new work
 * and was answered 503 statelessly (msg stays the caller's), else 0. */
int sr__ua_shed(sr_ua *ua, osip_message_t *msg, const sr__peer *from);

/* ---------------- the user agent ---------------- */

typedef struct sr__hash {
  void **buckets; /* chains through an object's own next pointer */
  size_t nbuckets, count;
} sr__hash;

struct sr_ua {
  int refs;     /* references held by the application */
  int children; /* sessions, referrals, referrers not yet freed */
  int closed;
  int epfd;
  int depth;    /* nesting of run_once, for safe close */
  sr_ua_options opt;
  char *uri, *display_name, *user_agent, *username, *password, *schemes;
  osip_uri_t *identity;
  sr_ua_delegate delegate;
  void *user_data;
  sr_message_hook hook;
  void *hook_data;

  /* loop */
  sr__heap_entry *heap;
  size_t nheap, capheap;
  struct sr__watch *watches; /* the application's fds (sr_ua_watch_fd) */
  struct { sr_wait_hook before, after; void *ud; } wait_hooks;

  /* transport */
  sr__listener *listeners[8];
  int nlisteners;
  sr__conn *conns;      /* live TCP connections */
  sr__conn *dead_conns; /* closed this loop turn, freed by reap */
  sr__hash conns_by_id, conns_by_addr;
  int nconns;
  uint64_t next_conn_id;
  char *rxbuf;

  /* txn */
  sr__hash txns;
  int ntxns;

  struct sr__proxy *proxy; /* outbound proxy (proxy.c), or NULL */

  /* sessions by Call-ID */
  sr__hash sessions;
  int nsessions, ndialogs, nreferrals_pending, nreferrals, nreferrers;
  struct sr_referral *ood_referrals; /* live out-of-dialog referrals */
  uint32_t rand_state;
  int callback_error; /* set by sr_ua_callback_error() */
  const char *cur_data; /* raw bytes of the message being dispatched */
  size_t cur_len;
  /* The listener whose datagram is being dispatched, while that
   * listener is overloaded (transport.c, udp_check_queue); else NULL. */
  sr__listener *overloaded;
};

void sr__log(sr_ua *ua, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The outbound proxy (proxy.c). init parses and resolves the option (0
 * when NULL); peer gives its address and transport; route gives its Route
 * value ("<...;lr>"), or NULL when there is no proxy. */
typedef struct sr__proxy sr__proxy;
int sr__proxy_init(sr_ua *ua, const char *spec);
void sr__proxy_free(sr_ua *ua);
int sr__proxy_peer(sr_ua *ua, sr__peer *out);
const char *sr__proxy_route(const sr_ua *ua);
void sr__ua_child_add(sr_ua *ua);
void sr__ua_child_del(sr_ua *ua);
/* Random token for tags, branches, Call-IDs. */
void sr__random_token(sr_ua *ua, char *out, size_t n);
/* A random number from the same generator (never 0). */
uint32_t sr__random_u32(sr_ua *ua);
/* Writers for short header values built per message (snprintf costs ~1 k
 * instructions a call): each copies to out, terminates it, and returns
 * the end, for the next piece. The caller sizes out. */
char *sr__put_str(char *out, const char *s);
char *sr__put_int(char *out, long long v);
/* The Contact URI for a transport/family: sip:user@host:port;transport=tcp */
int sr__contact_for(sr_ua *ua, sr_transport tp, int family, char *out,
                    size_t n);
/* Sends a response outside of any session (OPTIONS, 405, 481, 400). */
void sr__ua_reply(sr_ua *ua, sr__txn *t, int code, const char *reason,
                  const char *extra);
/* The answer to OPTIONS, in or out of a dialog: 200 with Allow,
 * Supported, Accept. */
void sr__ua_options_reply(sr_ua *ua, sr__txn *t);

/* Chained hash tables over objects that carry their own next pointer at
 * byte offset `off` and a string key. Several objects may share a key. */
typedef const char *(*sr__key_fn)(void *obj);
void *sr__hash_find(sr__hash *h, size_t off, sr__key_fn key, const char *k);
void *sr__hash_next(void *obj, size_t off, sr__key_fn key, const char *k);
int sr__hash_insert(sr__hash *h, size_t off, sr__key_fn key, void *obj);
void sr__hash_remove(sr__hash *h, size_t off, sr__key_fn key, void *obj);
void sr__hash_free(sr__hash *h);

/* ---------------- sessions ---------------- */

/* Adds "Via: SIP/2.0/<tp> host:port;branch=z9hG4bK...;rport". */
int sr__add_via(sr_ua *ua, osip_message_t *m, sr_transport tp, int family);
/* Adds Contact, Max-Forwards, User-Agent, Allow, Supported as needed. */
int sr__add_common(sr_ua *ua, osip_message_t *m, sr_transport tp, int family,
                   int contact);
/* A copy of req answering the 401/407 in resp (challenge.c). */
int sr__answer_challenge(sr_ua *ua, osip_message_t *req,
                         osip_message_t *resp, int cseq, sr_transport tp,
                         int family, osip_message_t **out);
/* Sets the port of an IPv4 or IPv6 address. */
void sr__addr_set_port(struct sockaddr_storage *a, uint16_t port);
/* Sets peer from a URI (host, port, transport parameter). */
int sr__peer_from_uri(sr__peer *peer, osip_uri_t *uri, sr_transport tp);
const char *sr__tag_of(osip_from_t *f);
/* The whole Call-ID, "number@host" or "number": dialogs and Replaces
 * match on all of it (RFC 3261 §12, RFC 3891 §3), while libosip2 keeps
 * the two halves apart. c->number itself when there is no host; else
 * written to buf (cap bytes) or, longer, to a block left in *tmp for
 * sr__free. NULL when out of memory. */
const char *sr__call_id_text(const osip_call_id_t *c, char *buf, size_t cap,
                             char **tmp);
enum { SR__CID_BUF = 256 };

typedef struct sr__session_watch {
  /* Told of each INVITE response of an Inviter made by a referral, and of
   * its local failures (408/503/487). */
  void (*on_progress)(void *ctx, sr_session *inviter, int code,
                      const char *reason);
  void *ctx;
} sr__session_watch;

struct sr_session {
  int refs;
  sr_ua *ua;
  sr_session_role role;
  sr_session_state state;
  sr_session_delegate delegate;
  void *user_data;
  sr_session *hnext; /* in ua->sessions, by Call-ID */
  int indexed;

  char *call_id, *local_tag, *remote_tag, *remote_target, *remote_identity;
  char *remote_body;
  char *forked_tags;        /* Inviter: To tags of other branches' 2xx, each
                             * followed by a space (ACKed, then BYE'd) */
  sr__sdp_origin sdp;       /* the default SDP sent (sdp.c) */
  osip_dialog_t *dialog;
  sr__peer peer;    /* where in-dialog requests go */
  sr_transport tp;

  /* Inviter */
  char *target;
  sr_inviter_options iopt;
  char *iopt_headers, *iopt_body, *iopt_ctype, *iopt_display;
  osip_message_t *invite;   /* the INVITE last sent (copy) */
  sr__txn *ict;
  int cancel_pending, canceled, auth_tries;
  int via_proxy;            /* the INVITE went to the outbound proxy */
  char *ack;                /* the ACK's bytes, sent again for each 2xx */
  size_t ack_len;

  /* Invitation */
  sr__txn *ist;
  struct sr_request request;
  char *request_raw;      /* the INVITE's bytes until the view is asked for */
  size_t request_raw_len;
  /* The latest 2xx to an INVITE (the first or a re-INVITE, either role):
   * its bytes, sent again until the ACK, and what matches that ACK. */
  char *answer;
  size_t answer_len;
  int answer_code;
  int awaiting_ack;
  int bye_after_ack; /* bye() came while awaiting it (RFC 3261 §15) */
  unsigned long answer_cseq; /* the INVITE's CSeq number */
  sr__txn *answer_txn;       /* its transaction: where the 2xx went */
  sr__timer rexmit;
  int rexmit_interval;
  sr__timer ack_wait;
  sr_session *replaces;     /* the session this Invitation replaces */

  /* referral links */
  sr_session *referred_session; /* Inviter made by a referral: origin */
  sr_session *referral_inviter; /* origin: its latest Inviter */
  sr__session_watch watch;
  struct sr_referral *watch_referral; /* holds a ref while watching */
  int referrals_pending;
  struct sr_referral *referrals; /* this dialog's live referrals */
  struct sr_referrer *referrers; /* this dialog's live referrers */
};

void sr__session_set_state(sr_session *s, sr_session_state st);
/* The session's default SDP (sdp.c): the answer to req's SDP offer, or
 * with no req (or no SDP body in it) our offer. As sr__sdp_default; the
 * failure is logged. */
int sr__session_sdp(sr_session *s, osip_message_t *req, const char **body,
                    const char **warning);
/* Builds a request in a libosip2 dialog (Route set, CSeq++, Contact, Via). */
int sr__dialog_build_request(sr_ua *ua, osip_dialog_t *d, sr_transport tp,
                             int family, const char *method,
                             osip_message_t **out);
/* The bytes of an in-dialog request written straight from the dialog:
 * the same bytes as sr__dialog_build_request's message (with CSeq number
 * cseq, which the caller chose) carrying `extra` (header lines, each
 * ending in CRLF, or NULL) and a body, without building that message.
 * content_type is written as given. branch receives the new Via branch
 * (z9hG4bK...), the transaction's key. */
#define SR__BRANCH_LEN 31
/* A response's bytes written from its request: the same bytes as
 * sr__build_response's message written, for a response that carries
 * nothing more (no header of its own, no body). */
int sr__write_response(osip_message_t *req, int code, const char *reason,
                       const char *to_tag, char **dest, size_t *len);
int sr__dialog_write_request(sr_ua *ua, osip_dialog_t *d, sr_transport tp,
                             int family, const char *method,
                             unsigned long cseq, const char *extra,
                             const char *content_type, const char *body,
                             char branch[SR__BRANCH_LEN], char **dest,
                             size_t *len);
/* The dialog's next hop (first Route, else the remote target) over tp
 * (AUTO: the one its URI names); SR_EADDR when it names a host. */
int sr__dialog_hop(osip_dialog_t *d, sr_transport tp, sr__peer *out);
/* Sets peer to the dialog's next hop, keeping peer->conn. */
void sr__dialog_peer(osip_dialog_t *d, sr_transport tp, sr__peer *peer);
void sr__session_update_peer(sr_session *s);
int sr__session_send_bye(sr_session *s);
/* Builds an in-dialog request (Route set, CSeq++, Contact, Via). */
int sr__session_build_request(sr_session *s, const char *method,
                              osip_message_t **out);
/* Sends an in-dialog request in a client transaction. */
int sr__session_send(sr_session *s, osip_message_t *req,
                     const sr__txn_owner *ops, void *owner, sr__txn **out);
/* Finds the session a request/response belongs to (Call-ID + tags). */
sr_session *sr__session_find(sr_ua *ua, const char *call_id,
                             const char *local_tag, const char *remote_tag);
/* Handles an in-dialog request for s (BYE, REFER, NOTIFY, INFO...). */
void sr__session_on_request(sr_session *s, sr__txn *t, osip_message_t *req);
/* New incoming INVITE (no To-tag). */
void sr__invitation_new(sr_ua *ua, sr__txn *t, osip_message_t *req);
void sr__session_on_ack(sr_session *s, osip_message_t *ack);
/* Sends a 2xx (buf, taken) to the INVITE of t, kept and retransmitted
 * until its ACK (RFC 3261 §13.3.1.4); no ACK in 64*T1: BYE. */
int sr__session_send_2xx(sr_session *s, sr__txn *t, int code, char *buf,
                         size_t len);
/* An INVITE retransmitted after our 2xx ended its transaction: answered
 * with that 2xx again (RFC 6026 §7.1). 1 if it was. */
int sr__session_resend_2xx(sr_session *s, sr__txn *t, osip_message_t *req);
/* The ACK-wait timers' callbacks, set once per session. */
void sr__session_timers_init(sr_session *s);
/* Frees the kept 2xx and stops waiting for its ACK. */
void sr__session_forget_2xx(sr_session *s);
void sr__session_on_cancel(sr_session *s);
int sr__invitation_early_bye(sr_session *s, sr__txn *t, osip_message_t *req);
void sr__session_on_2xx_retransmit(sr_session *s);
/* A 2xx to s's INVITE from another branch (a forking proxy). */
void sr__inviter_on_forked_2xx(sr_session *s, osip_message_t *r);
int sr__session_new(sr_ua *ua, sr_session_role role, sr_session **out);
void sr__session_close_for_ua(sr_session *s);
void sr__session_unindex(sr_session *s);
void sr__session_index(sr_session *s);
const char *sr__session_key(void *obj);

/* ---------------- referral layer (upcalls from session) ---------------- */

/* An in-dialog or out-of-dialog REFER (server transaction t). */
void sr__referral_incoming(sr_ua *ua, sr_session *s, sr__txn *t,
                           osip_message_t *req);
/* session.c: an accepted target refresh request (re-INVITE, SUBSCRIBE):
 * its Contact becomes the dialog's remote target (RFC 3261 §12.2.2). */
void sr__session_refresh_target(sr_session *s, osip_message_t *req);
/* notify.c: a SUBSCRIBE in the session's dialog (a refresh of a REFER's
 * subscription), answered. */
void sr__referral_subscribe(sr_session *s, sr__txn *t);
/* An in-dialog NOTIFY for one of our referrers. Returns 1 if handled. */
int sr__referrer_incoming_notify(sr_session *s, sr__txn *t,
                                 osip_message_t *req);
/* The session ended: referrals and referrers in it stop notifying. */
void sr__referral_session_ended(sr_session *s);
/* Replaces header on an incoming INVITE: 0 ok (*replaced set or NULL), or
 * a SIP status code to reject with. */
int sr__replaces_match(sr_ua *ua, osip_message_t *invite,
                       sr_session **replaced);
/* Is v a Replaces value as RFC 3891 §3 has it (the one sr__replaces_match
 * takes)? 1 or 0 (also when out of memory). */
int sr__replaces_valid(const char *v);
void sr__referral_close_for_ua(sr_ua *ua);

#define SR_ALLOW_METHODS "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY"
/* The most max_message_size may be: the UA's receive buffer is that big. */
#define SR__MAX_MESSAGE_CAP (16u << 20)
#define SR_SUPPORTED "replaces, norefersub"

#endif
