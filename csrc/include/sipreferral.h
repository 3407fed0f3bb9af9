/*
 * sipreferral.h — the one public header of libsipreferral.
 *
 * A SIP user agent core (UDP/TCP transports, its own transactions,
 * libosip2's parser and dialogs, INVITE sessions) whose purpose is call
 * transfer: an incoming REFER becomes an sr_referral the application can
 * inspect, accept, reject or follow with an Inviter, while the core keeps
 * the implicit subscription (RFC 3515, 4488, 6665), Replaces (RFC 3891)
 * and Referred-By (RFC 3892).
 *
 * Conventions
 * - Every function that can fail returns 0 (or a count) on success and a
 *   negative SR_E... code on failure; sr_strerror() names it. On failure
 *   out-parameters are left untouched and no callback fires.
 * - Objects (sr_ua, sr_session, sr_referral, sr_referrer) are reference
 *   counted. sr_x_new / sr_ua_make_inviter give the caller one reference;
 *   sr_x_get_* return a *borrowed* pointer, valid while the object it came
 *   from is alive (take sr_x_ref to keep it longer). A handle whose protocol
 *   object has ended stays valid memory until its last reference is dropped;
 *   calls on it return SR_ECLOSED.
 * - Callbacks fire on the caller's thread, from inside sr_ua_run_once(),
 *   or from inside the API call whose effect they report (on_state from
 *   sr_inviter_invite, sr_invitation_accept/reject, sr_session_bye; a
 *   referral's default handling from sr_referral_accept). Never from
 *   another thread. The library holds a reference on the object around each
 *   callback, so the callback may drop the application's reference or end
 *   the call. After an object's "closed" event no callback for it fires.
 * - Strings returned as const char * are owned by the object they came from.
 * - No function asserts on misuse: passing NULL where an object is required
 *   returns SR_EINVAL.
 * - Text that goes into a message is checked at the call, which then sends
 *   nothing, logs why and returns SR_EINVAL: a header value, display name
 *   or reason phrase (user_agent, display_name, username, reason_phrase,
 *   content_type, from_display_name) may hold no control character but
 *   HTAB, so a CR or LF cannot add header lines; a URI (uri,
 *   outbound_proxy, a target) no control character, space, '<', '>' or
 *   '"'. extra_headers are "Name: value" lines (no other control
 *   character than HTAB) and may not name a header the core writes in
 *   that message, in full or compact form: Via, From, To, Call-ID, CSeq,
 *   Content-Length, Content-Type always; Contact, Max-Forwards and
 *   User-Agent in requests; Contact in progress/accept answers too (a
 *   reject, a 3xx, may carry one); plus Refer-To, Referred-By and
 *   Refer-Sub in a REFER, Contact and Refer-Sub in a referral's accept,
 *   Replaces and Referred-By in sr_referral_make_inviter's.
 */
#ifndef SIPREFERRAL_H
#define SIPREFERRAL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SR_BUILDING_LIBRARY) && defined(__GNUC__)
#define SR_API __attribute__((visibility("default")))
#else
#define SR_API
#endif

#define SR_VERSION "0.1.0"

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/** Error codes live in their own range, apart from errno and libosip2. */
typedef enum sr_error {
  SR_OK = 0,
  SR_EINVAL = -901,     /**< invalid argument */
  SR_ENOMEM = -902,     /**< out of memory */
  SR_ECLOSED = -903,    /**< the object has ended (or its UA was closed) */
  SR_ESTATE = -904,     /**< not allowed in the object's current state */
  SR_EPARSE = -905,     /**< text that should be SIP did not parse */
  SR_EIO = -906,        /**< socket or system call failed */
  SR_EADDR = -907,      /**< address could not be resolved or bound */
  SR_ETOOBIG = -908,    /**< over the configured message size */
  SR_ETRANSPORT = -909, /**< no transport can reach the destination */
  SR_ECALLBACK = -910,  /**< a binding's callback raised an error */
  SR_ELIMIT = -911,     /**< a configured limit was reached */
  SR_EROLE = -912,      /**< wrong kind of session (Inviter vs Invitation) */
  SR_EALREADY = -913    /**< the decision was already made */
} sr_error;

/** A static English description of an error code (never NULL). */
SR_API const char *sr_strerror(int code);

/** The library version string, SR_VERSION at build time. */
SR_API const char *sr_version(void);

/* ------------------------------------------------------------------ */
/* Handles                                                             */
/* ------------------------------------------------------------------ */

typedef struct sr_ua sr_ua;             /**< a user agent: sockets, loop */
typedef struct sr_session sr_session;   /**< an Inviter or an Invitation */
typedef struct sr_referral sr_referral; /**< an incoming REFER */
typedef struct sr_referrer sr_referrer; /**< an outgoing REFER */
typedef struct sr_name_addr sr_name_addr; /**< read-only name-addr view */
typedef struct sr_uri sr_uri;           /**< read-only URI view */
typedef struct sr_request sr_request;   /**< read-only incoming request */

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

typedef enum sr_log_level {
  SR_LOG_ERROR = 0,
  SR_LOG_WARNING = 1,
  SR_LOG_INFO = 2,
  SR_LOG_DEBUG = 3
} sr_log_level;

/** Receives the core's log lines (no trailing newline). */
typedef void (*sr_log_fn)(int level, const char *message, void *user_data);

/* ------------------------------------------------------------------ */
/* Read-only views: URI, name-addr, incoming request                    */
/* They belong to the object they came from (a referral or invitation). */
/* ------------------------------------------------------------------ */

/** Scheme ("sip", "sips", "tel", ...), never NULL. */
SR_API const char *sr_uri_scheme(const sr_uri *uri);
/** User part, or NULL. */
SR_API const char *sr_uri_user(const sr_uri *uri);
/** Host part (without IPv6 brackets), or NULL (e.g. for tel:). */
SR_API const char *sr_uri_host(const sr_uri *uri);
/** Port, or 0 when the URI names none. */
SR_API int sr_uri_port(const sr_uri *uri);
/** Number of URI parameters (;name=value). */
SR_API int sr_uri_param_count(const sr_uri *uri);
/** Name of parameter i, or NULL when i is out of range. */
SR_API const char *sr_uri_param_name(const sr_uri *uri, int i);
/** Value of parameter i, or NULL (out of range, or a flag parameter). */
SR_API const char *sr_uri_param_value(const sr_uri *uri, int i);
/** Number of URI headers (?name=value&...). */
SR_API int sr_uri_header_count(const sr_uri *uri);
/** Name of URI header i, or NULL. */
SR_API const char *sr_uri_header_name(const sr_uri *uri, int i);
/** Value of URI header i, %-unescaped, or NULL. */
SR_API const char *sr_uri_header_value(const sr_uri *uri, int i);
/** The URI as text, as received. */
SR_API const char *sr_uri_string(const sr_uri *uri);

/** Display name, unquoted, or NULL when there is none. */
SR_API const char *sr_name_addr_display_name(const sr_name_addr *na);
/** The URI inside the name-addr (never NULL for a valid view). */
SR_API const sr_uri *sr_name_addr_uri(const sr_name_addr *na);
/** Number of header parameters (after the closing '>'). */
SR_API int sr_name_addr_param_count(const sr_name_addr *na);
/** Name of header parameter i, or NULL. */
SR_API const char *sr_name_addr_param_name(const sr_name_addr *na, int i);
/** Value of header parameter i, or NULL. */
SR_API const char *sr_name_addr_param_value(const sr_name_addr *na, int i);
/** The whole header value as text, as received. */
SR_API const char *sr_name_addr_string(const sr_name_addr *na);

/** Method ("REFER", "INVITE", ...). */
SR_API const char *sr_request_method(const sr_request *req);
/** Request-URI as text. */
SR_API const char *sr_request_ruri(const sr_request *req);
/**
 * Number of values of header @p name (case-insensitive; compact forms such
 * as "r" for Refer-To count too). A comma-separated list in one header line
 * counts as several values for headers that allow lists.
 */
SR_API int sr_request_header_count(const sr_request *req, const char *name);
/** Value @p index (0-based) of header @p name, trimmed, or NULL. */
SR_API const char *sr_request_header(const sr_request *req, const char *name,
                                     int index);
/** Body (may contain NUL bytes; see sr_request_body_length), or "". */
SR_API const char *sr_request_body(const sr_request *req);
/** Length of the body in bytes. */
SR_API size_t sr_request_body_length(const sr_request *req);
/** The whole request as received. */
SR_API const char *sr_request_text(const sr_request *req);

/* ------------------------------------------------------------------ */
/* User agent                                                          */
/* ------------------------------------------------------------------ */

typedef enum sr_transport {
  SR_TRANSPORT_AUTO = 0, /**< from the URI's transport parameter, else UDP */
  SR_TRANSPORT_UDP = 1,
  SR_TRANSPORT_TCP = 2
} sr_transport;

/** How a referral's NOTIFYs are sent automatically. */
typedef enum sr_notify_mode {
  SR_NOTIFY_ALL = 0,        /**< 100 Trying, each provisional, the final */
  SR_NOTIFY_FINAL_ONLY = 1, /**< 100 Trying and the final status only */
  SR_NOTIFY_NONE = 2        /**< none: the application calls sr_referral_notify */
} sr_notify_mode;

/** Options of a user agent; call sr_ua_options_init() first. */
typedef struct sr_ua_options {
  const char *uri;          /**< identity, e.g. "sip:alice@127.0.0.1" (required) */
  const char *display_name; /**< display name in From, or NULL */
  const char *user_agent;   /**< User-Agent header; default "sipreferral/VERSION" */
  /** Digest (MD5) credentials for a 401/407 to an INVITE or REFER, used
   * for every realm: each challenge in the response is answered (one in
   * another algorithm is skipped, and logged), the answers for realms not
   * challenged again are kept; two retries at most. */
  const char *username;     /**< digest username, or NULL */
  const char *password;     /**< digest password, or NULL */
  /** First hop of the requests this UA starts outside a dialog (the
   * INVITEs of sr_ua_make_inviter and sr_referral_make_inviter), e.g.
   * "sip:10.0.0.1:5060;transport=tcp"; NULL: straight to the target's
   * host, which must then be an address. The request keeps its target as
   * Request-URI and carries the proxy as its first Route, with ;lr
   * (RFC 3261 §8.1.2), over the proxy's transport (UDP unless its URI
   * says tcp; sr_inviter_options.transport does not apply); its CANCEL and
   * ACK take the same hop. A target may then name a host (the proxy
   * resolves it). A host name here is resolved once, by sr_ua_new (a
   * blocking lookup); the first IPv4 and IPv6 addresses are kept, IPv4
   * used when the UA listens on it, with no failover. In-dialog requests
   * follow the dialog's route set (Record-Route) and remote target, over
   * the transport their URI names (§12.2); a remote target that names a
   * host is reached through the proxy. sr_ua_new fails with SR_EINVAL (not
   * a sip: URI of a host: no user part, URI headers or maddr, a port of
   * 1-65535, transport udp or tcp) or SR_EADDR (the name did not resolve). */
  const char *outbound_proxy;
  int t1_ms;                /**< RFC 3261 T1 (default 500) */
  int t2_ms;                /**< T2 (default 4000) */
  int t4_ms;                /**< T4 (default 5000) */
  size_t max_message_size;  /**< bytes (default 65536, at most 16 MiB) */
  sr_log_fn log_fn;         /**< default: lines to stderr */
  void *log_user_data;
  int log_level;            /**< lines above this level are not formatted */

  /* Referral policy (safe defaults). */
  int allow_out_of_dialog_refer;  /**< default 0: 405 */
  const char *allowed_schemes;    /**< comma list, default "sip" (sips needs
                                   *   TLS, which this library has not) */
  int refer_decision_timeout_ms;  /**< undecided REFER rejected; default 10000 */
  int refer_expires_s;            /**< subscription expiry, default 60; also
                                       the most a SUBSCRIBE refresh gets */
  sr_notify_mode notify_mode;     /**< default SR_NOTIFY_ALL */

  /* Limits: going over answers 503 with Retry-After. */
  int max_sessions;               /**< default 100000 */
  int max_referrals;              /**< pending per UA, default 10000 */
  int max_referrals_per_session;  /**< pending per dialog, default 8 */
  int max_tcp_connections;        /**< default 1024 */
  /** default 120000. A message begun on a connection must be whole within
   *  64*T1 however slowly it comes, or the connection is closed. */
  int tcp_idle_timeout_ms;
  /** SO_RCVBUF of UDP sockets, in bytes (default 4 MiB; the kernel caps it
   *  at net.core.rmem_max). Overload: while a socket's receive queue is
   *  past half of it (until under a quarter), a request that would start
   *  new work (out of dialog; not a CANCEL, a retransmission or an INVITE
   *  of a known call) is answered 503 with Retry-After, without keeping
   *  any state, so the calls in progress go on. */
  int udp_receive_buffer;
} sr_ua_options;

/** Fills @p opts with the defaults above. */
SR_API void sr_ua_options_init(sr_ua_options *opts);

/** Options of a response (accept/reject/progress); call _init() first. */
typedef struct sr_response_options {
  int status_code;           /**< 0 means the call's default */
  const char *reason_phrase; /**< NULL means the code's standard phrase */
  const char *extra_headers; /**< "Name: value" lines separated by CRLF or LF */
  const char *body;          /**< NULL for none (accept: the default SDP
                                  answer, see sr_invitation_accept) */
  const char *content_type;  /**< type of body, e.g. "application/sdp" */
} sr_response_options;
SR_API void sr_response_options_init(sr_response_options *opts);

/** Options of an Inviter; call _init() first. */
typedef struct sr_inviter_options {
  const char *extra_headers;     /**< "Name: value" lines */
  const char *body;              /**< SDP offer; NULL: a minimal offer (one
                                      PCMU stream on the discard port 9) */
  const char *content_type;      /**< default "application/sdp" */
  const char *from_display_name; /**< overrides the UA's display name */
  sr_transport transport;        /**< default SR_TRANSPORT_AUTO */
} sr_inviter_options;
SR_API void sr_inviter_options_init(sr_inviter_options *opts);

/** Events of a user agent. Any member may be NULL. */
typedef struct sr_ua_delegate {
  /** A new INVITE (not a retransmission) arrived. With no on_invite the
   *  Invitation is rejected with 480. A 100 Trying is sent when on_invite
   *  returns without having responded (RFC 3261 §17.2.1). */
  void (*on_invite)(sr_ua *ua, sr_session *invitation, void *user_data);
  /** An out-of-dialog REFER (only when allow_out_of_dialog_refer is set). */
  void (*on_refer)(sr_ua *ua, sr_referral *referral, void *user_data);
  /**
   * Policy, asked for every REFER that passed validation, before any
   * on_refer. Return 0 to allow, or a SIP status code 300-699 to answer it.
   */
  int (*on_refer_policy)(sr_ua *ua, sr_referral *referral, void *user_data);
} sr_ua_delegate;

/**
 * Creates a user agent. It has no sockets until sr_ua_listen().
 * Errors: SR_EINVAL (no or bad uri; text refused, see Conventions),
 * SR_ENOMEM, SR_EIO.
 */
SR_API int sr_ua_new(sr_ua **out, const sr_ua_options *opts);
SR_API sr_ua *sr_ua_ref(sr_ua *ua);
/** Drops a reference; the last one closes the UA (see sr_ua_close). */
SR_API void sr_ua_unref(sr_ua *ua);
/**
 * Closes the UA now: sockets and timers go, every live session, referral
 * and referrer ends (their handles return SR_ECLOSED). Nothing is sent and
 * no callback fires. Safe to call twice and from inside a callback.
 */
SR_API void sr_ua_close(sr_ua *ua);
/**
 * Replaces the log handler and level given in the options (fn NULL: lines
 * go to stderr). Bindings set it after creation and clear it on close.
 */
SR_API void sr_ua_set_log_handler(sr_ua *ua, sr_log_fn fn, void *user_data,
                                  int level);
/** Sets the delegate (copied) and its user_data. NULL clears it. */
SR_API void sr_ua_set_delegate(sr_ua *ua, const sr_ua_delegate *d,
                               void *user_data);

/**
 * Listens on "udp:HOST:PORT" or "tcp:HOST:PORT" (IPv6 as "[::1]"), port 0
 * for any. Errors: SR_EINVAL (bad spec), SR_EADDR (cannot bind), SR_ECLOSED.
 */
SR_API int sr_ua_listen(sr_ua *ua, const char *spec);
/** Port actually bound by the first listener of @p tp, or SR_EINVAL when
 *  there is none. */
SR_API int sr_ua_local_port(sr_ua *ua, sr_transport tp);
/** Host of the first listener of @p tp (numeric), or NULL. */
SR_API const char *sr_ua_local_host(sr_ua *ua, sr_transport tp);
/** Port bound by the @p index-th listener (0-based, in the order the
 *  sr_ua_listen calls made them), or SR_EINVAL: the one way to learn the
 *  port of a second listener of a transport (IPv6 next to IPv4). */
SR_API int sr_ua_listener_port(sr_ua *ua, int index);
/** The UA's identity URI as configured. */
SR_API const char *sr_ua_uri(const sr_ua *ua);

/** The descriptor to watch for readability (an epoll fd), or -1. */
SR_API int sr_ua_fd(sr_ua *ua);
/** Milliseconds until the next timer, 0 if work is due now, -1 if none. */
SR_API int sr_ua_next_timeout_ms(sr_ua *ua);
/**
 * Waits up to @p timeout_ms (-1: until something happens, 0: not at all)
 * for I/O, handles what arrived and the timers that expired, firing
 * callbacks. Returns the number of events handled, or SR_ECLOSED,
 * SR_ECALLBACK (a binding callback failed; see the binding), SR_EIO.
 */
SR_API int sr_ua_run_once(sr_ua *ua, int timeout_ms);

/** A wait hook (sr_ua_set_wait_hooks). */
typedef void (*sr_wait_hook)(void *user_data);
/**
 * For language bindings: @p before runs just before sr_ua_run_once blocks
 * in its system call and @p after just after it returns (errno is kept),
 * on the thread calling sr_ua_run_once, never when the wait is 0 ms, and
 * nothing else runs between them: so a binding can release its
 * interpreter lock around the wait and keep one system call per turn.
 * Neither may call the library. Both NULL removes them. Replaces the
 * previous pair. Errors: SR_EINVAL (no ua, or only one of the two),
 * SR_ECLOSED. C only: not in the Python and Lua modules.
 */
SR_API int sr_ua_set_wait_hooks(sr_ua *ua, sr_wait_hook before,
                                sr_wait_hook after, void *user_data);

/** Called when a watched descriptor is readable (or at end/error). */
typedef void (*sr_fd_cb)(sr_ua *ua, int fd, void *user_data);
/**
 * The other way round from sr_ua_fd(): the UA's own loop also watches
 * @p fd (a socket, pipe, signalfd, eventfd...; not a regular file), so a
 * program needs one wait, sr_ua_run_once(ua, timeout), instead of its own
 * poll plus the UA's. @p cb runs inside sr_ua_run_once like the library's
 * callbacks, each time the descriptor is readable (level-triggered: read
 * what is there, or it fires again on the next run). It may call any API
 * function, including sr_ua_unwatch_fd on this or another descriptor and
 * sr_ua_close. The descriptor stays the caller's: unwatch it before
 * closing it (its number stays watched until then). C only: not in the
 * Python and Lua modules.
 * Errors: SR_EINVAL (no ua, no cb, fd < 0; an fd already watched, as a
 * second watch does not replace the first; or one epoll cannot watch,
 * such as the UA's own descriptors or a regular file), SR_ECLOSED,
 * SR_ENOMEM, SR_EIO.
 */
SR_API int sr_ua_watch_fd(sr_ua *ua, int fd, sr_fd_cb cb, void *user_data);
/**
 * Stops watching @p fd; its callback never fires again, even for an event
 * already waiting in the current loop turn. sr_ua_close (and the last
 * sr_ua_unref) drop every watch. Errors: SR_EINVAL (no ua, fd not
 * watched), SR_ECLOSED (the UA is closed: its watches are gone already).
 */
SR_API int sr_ua_unwatch_fd(sr_ua *ua, int fd);

/**
 * Observes (and, for tests, may drop) every SIP message sent or received.
 * @p outgoing is 1 for sent, 0 for received; addresses are "host:port".
 * Return 1 to drop the message (a lossy network), 0 to let it pass.
 */
typedef int (*sr_message_hook)(int outgoing, sr_transport tp,
                               const char *local, const char *remote,
                               const char *data, size_t len, void *user_data);
SR_API void sr_ua_set_message_hook(sr_ua *ua, sr_message_hook hook,
                                   void *user_data);

/**
 * For bindings: a callback raised an error in the host language. The loop
 * stops after the current event and sr_ua_run_once returns SR_ECALLBACK.
 */
SR_API void sr_ua_callback_error(sr_ua *ua);

/** Live object counts, for leak checks and the agent's reports. */
typedef struct sr_stats {
  int sessions;     /**< sr_session objects alive (ended or not) */
  int referrals;    /**< sr_referral objects alive */
  int referrers;    /**< sr_referrer objects alive */
  int transactions; /**< transactions alive */
  int dialogs;      /**< confirmed or early dialogs */
  int connections;  /**< TCP connections */
} sr_stats;
/** Counts for one UA (its live objects). */
SR_API void sr_ua_get_stats(sr_ua *ua, sr_stats *out);
/** Counts over the whole process (every object not yet freed). */
SR_API void sr_global_stats(sr_stats *out);

/* ------------------------------------------------------------------ */
/* Sessions (Inviter = UAC, Invitation = UAS)                          */
/* ------------------------------------------------------------------ */

typedef enum sr_session_state {
  SR_SESSION_INITIAL = 0,
  SR_SESSION_ESTABLISHING = 1,
  SR_SESSION_ESTABLISHED = 2,
  SR_SESSION_TERMINATING = 3,
  SR_SESSION_TERMINATED = 4
} sr_session_state;

typedef enum sr_session_role {
  SR_ROLE_INVITER = 0,
  SR_ROLE_INVITATION = 1
} sr_session_role;

/** Name of a state: "initial", "establishing", ... */
SR_API const char *sr_session_state_name(sr_session_state st);

/** Events of a session. Any member may be NULL. */
typedef struct sr_session_delegate {
  /** The state changed. Terminated is the session's closed event. */
  void (*on_state)(sr_session *s, sr_session_state st, void *user_data);
  /** Inviter: a response to the INVITE arrived (1xx to 6xx). */
  void (*on_response)(sr_session *s, int status_code, const char *reason,
                      void *user_data);
  /** A REFER arrived in this session and passed validation and policy.
   *  With no on_refer the referral is accepted and followed. */
  void (*on_refer)(sr_session *s, sr_referral *referral, void *user_data);
  /** The peer sent BYE (the state then goes to Terminated). */
  void (*on_bye)(sr_session *s, void *user_data);
} sr_session_delegate;

/**
 * Creates an Inviter to @p target (a SIP URI). Nothing is sent until
 * sr_inviter_invite(). Errors: SR_EINVAL (bad target, or option text
 * refused: see Conventions), SR_ETOOBIG (the target alone is longer than
 * max_message_size), SR_EADDR (its host is a name and there is no
 * outbound_proxy), SR_ETRANSPORT (a sips target: it needs TLS on every
 * hop, which this library has not), SR_ECLOSED, SR_ELIMIT.
 */
SR_API int sr_ua_make_inviter(sr_ua *ua, const char *target,
                              const sr_inviter_options *opts,
                              sr_session **out);

SR_API sr_session *sr_session_ref(sr_session *s);
SR_API void sr_session_unref(sr_session *s);
SR_API void sr_session_set_delegate(sr_session *s,
                                    const sr_session_delegate *d,
                                    void *user_data);
SR_API sr_session_state sr_session_get_state(const sr_session *s);
SR_API sr_session_role sr_session_get_role(const sr_session *s);
/** The UA (borrowed), or NULL once the UA is closed. */
SR_API sr_ua *sr_session_get_ua(const sr_session *s);
/** Call-ID, local tag, remote tag, remote target (Contact URI): NULL until
 *  known. The remote target follows the Contact of each re-INVITE this UA
 *  accepts (RFC 3261 §12.2.2): later in-dialog requests go there. */
SR_API const char *sr_session_call_id(const sr_session *s);
SR_API const char *sr_session_local_tag(const sr_session *s);
SR_API const char *sr_session_remote_tag(const sr_session *s);
SR_API const char *sr_session_remote_target(const sr_session *s);
/** The peer's identity (From of an Invitation, To of an Inviter). */
SR_API const char *sr_session_remote_identity(const sr_session *s);
/** The remote SDP (from the 200 or the INVITE), or NULL. */
SR_API const char *sr_session_remote_body(const sr_session *s);
/**
 * For an Inviter made by sr_referral_make_inviter: the session the REFER
 * arrived in (borrowed, may be NULL). For a referred session: NULL.
 */
SR_API sr_session *sr_session_get_referred_session(const sr_session *s);
/** For a session that received a REFER and followed it: the latest
 *  Inviter made from it (borrowed), or NULL. */
SR_API sr_session *sr_session_get_referral_inviter(const sr_session *s);

/**
 * Ends the session: BYE when established (or, for an Inviter in
 * Establishing, CANCEL). While a 2xx of ours to an INVITE or re-INVITE
 * still awaits its ACK, the session is Terminating at once and its BYE
 * leaves when the ACK comes, or after 64*T1 without one (RFC 3261 §15).
 * Errors: SR_ESTATE (Initial), SR_ECLOSED (already Terminating/Terminated).
 */
SR_API int sr_session_bye(sr_session *s);

/** Inviter: sends the INVITE. Errors: SR_EROLE, SR_ESTATE (sent already),
 *  SR_ECLOSED, SR_ETRANSPORT. */
SR_API int sr_inviter_invite(sr_session *s);
/** Inviter: cancels an INVITE not yet answered with a final response.
 *  Errors: SR_EROLE, SR_ESTATE, SR_ECLOSED. */
SR_API int sr_inviter_cancel(sr_session *s);

/** Invitation: sends 180 (default) or 183. Errors: SR_EROLE, SR_ESTATE. */
SR_API int sr_invitation_progress(sr_session *s,
                                  const sr_response_options *opts);
/**
 * Invitation: 200 with the application's body, or with none given the
 * default SDP. The library carries no media, so the default names the
 * discard port 9 and the address the UA listens on. To an INVITE without
 * SDP it is an offer of one PCMU stream. To an SDP offer it is the RFC 3264
 * answer: one m= line per offered one, in order; a stream with proto
 * RTP/AVP or RTP/AVPF is accepted with the offer's first codec (not CN or telephone-event; plus
 * telephone-event at its clock rate when offered), their rtpmap/fmtp lines
 * and the mirrored direction (sendonly -> recvonly...); any other stream is
 * rejected (port 0), SRTP included: answering it needs keys we do not have.
 * The library answers re-INVITEs the same way, with the o= line's sess-id
 * kept for the session and its version +1 each time the body changes
 * (an offerless re-INVITE gets the last body again). An offer that does
 * not read as SDP, or with no stream that can be accepted (T.38 only, SRTP
 * only), is refused: the INVITE gets 488 with a Warning, the session ends
 * and this returns SR_EPARSE (a re-INVITE gets 488 and the call stays).
 * Errors: SR_EINVAL (code outside 200-299), SR_EROLE, SR_ESTATE,
 * SR_EPARSE.
 */
SR_API int sr_invitation_accept(sr_session *s,
                                const sr_response_options *opts);
/** Invitation: a final 3xx-6xx (default 480). Errors: SR_EINVAL for a
 *  code outside 300-699, SR_EROLE, SR_ESTATE. */
SR_API int sr_invitation_reject(sr_session *s,
                                const sr_response_options *opts);
/** Invitation: its INVITE (borrowed view). */
SR_API const sr_request *sr_invitation_get_request(const sr_session *s);
/** Invitation with Replaces: the session it replaces (borrowed), or NULL. */
SR_API sr_session *sr_invitation_get_replaced(const sr_session *s);

/* ------------------------------------------------------------------ */
/* Referral (incoming REFER) — SIP.js's Referral                       */
/* ------------------------------------------------------------------ */

typedef enum sr_referral_state {
  SR_REFERRAL_PENDING = 0,  /**< not yet accepted or rejected */
  SR_REFERRAL_ACCEPTED = 1, /**< 2xx sent; the subscription is active (with
                                 Refer-Sub: false there is none, and the
                                 referral stays here: its end state) */
  SR_REFERRAL_REJECTED = 2, /**< final non-2xx sent */
  SR_REFERRAL_TERMINATED = 3 /**< final NOTIFY sent, or notifying stopped
                                  (a NOTIFY failed: any non-2xx final
                                  answer or a timeout; expiry, session
                                  gone) */
} sr_referral_state;

SR_API sr_referral *sr_referral_ref(sr_referral *r);
SR_API void sr_referral_unref(sr_referral *r);
SR_API sr_referral_state sr_referral_get_state(const sr_referral *r);
/** The parsed Refer-To (borrowed view; never NULL). */
SR_API const sr_name_addr *sr_referral_refer_to(const sr_referral *r);
/** The Referred-By header value, or NULL. An untrusted claim. */
SR_API const char *sr_referral_referred_by(const sr_referral *r);
/** Replaces from the Refer-To URI headers, unescaped, or NULL. */
SR_API const char *sr_referral_replaces(const sr_referral *r);
/** The incoming REFER (borrowed view). */
SR_API const sr_request *sr_referral_request(const sr_referral *r);
/** The session the REFER arrived in (borrowed), or NULL (out of dialog). */
SR_API sr_session *sr_referral_get_session(const sr_referral *r);
/** The UA the REFER arrived at (borrowed), or NULL once it is closed. */
SR_API sr_ua *sr_referral_get_ua(const sr_referral *r);
/** The event id: the REFER's CSeq number. */
SR_API int sr_referral_get_id(const sr_referral *r);
/** 0 when the REFER carried Refer-Sub: false (no NOTIFYs). */
SR_API int sr_referral_get_refer_sub(const sr_referral *r);
/** The Inviter sr_referral_make_inviter made for this referral (borrowed),
 *  or NULL when it has not been called. */
SR_API sr_session *sr_referral_get_inviter(const sr_referral *r);

/** Accepts: 202 by default (any 2xx). Then NOTIFY 100 (unless Refer-Sub:
 *  false). Errors: SR_EINVAL (non-2xx), SR_EALREADY, SR_ECLOSED. */
SR_API int sr_referral_accept(sr_referral *r, const sr_response_options *o);
/** Rejects: 603 by default (any 300-699). Errors: SR_EINVAL (code < 300),
 *  SR_EALREADY, SR_ECLOSED. */
SR_API int sr_referral_reject(sr_referral *r, const sr_response_options *o);
/**
 * The Inviter that follows the referral: to the Refer-To URI with its URI
 * headers removed, with Replaces (if any) and Referred-By added after the
 * caller's extra headers. *out is borrowed (the referral holds it; take
 * sr_session_ref to keep it longer); a second call gives the same Inviter.
 * Allowed after the referrer's session ended (a blind transferor often
 * hangs up at once): the call goes out, no NOTIFY is sent.
 * Its responses drive the subscription's NOTIFYs. Errors: SR_ECLOSED,
 * SR_ESTATE (rejected), SR_EINVAL, SR_EADDR, SR_ETRANSPORT (as
 * sr_ua_make_inviter).
 * Without an on_refer the core accepts and follows; a target it cannot
 * reach then gets a final NOTIFY 503 (RFC 3263 §4.3).
 */
SR_API int sr_referral_make_inviter(sr_referral *r,
                                    const sr_inviter_options *opts,
                                    sr_session **out);
/** Changes how NOTIFYs are sent automatically for this referral. */
SR_API int sr_referral_set_notify_mode(sr_referral *r, sr_notify_mode mode);
/**
 * Sends a NOTIFY with body "SIP/2.0 code reason"; a code >= 200 ends the
 * subscription (terminated;reason=noresource). Errors: SR_ESTATE (not
 * accepted, or no subscription), SR_ECLOSED, SR_EINVAL (code, a
 * control character but HTAB in the reason, or a reason over 95 bytes).
 */
SR_API int sr_referral_notify(sr_referral *r, int status_code,
                              const char *reason_phrase);

/* ------------------------------------------------------------------ */
/* Referrer (outgoing REFER)                                           */
/* ------------------------------------------------------------------ */

typedef struct sr_refer_options {
  const char *extra_headers; /**< "Name: value" lines */
  int refer_sub;             /**< default 1; 0 sends Refer-Sub: false */
  int bye_on_success;        /**< end the session when a 2xx sipfrag comes */
} sr_refer_options;
SR_API void sr_refer_options_init(sr_refer_options *opts);

typedef struct sr_referrer_delegate {
  /** The REFER got a 2xx. */
  void (*on_accept)(sr_referrer *r, int status_code, const char *reason,
                    void *user_data);
  /** The REFER got a final non-2xx (or timed out: 408). */
  void (*on_reject)(sr_referrer *r, int status_code, const char *reason,
                    void *user_data);
  /** A NOTIFY arrived (answered 200): the sipfrag's status, the
   *  Subscription-State value ("active", "terminated;reason=noresource").
   *  status_code is 0 if the body did not parse. */
  void (*on_notify)(sr_referrer *r, int status_code, const char *reason,
                    const char *subscription_state, void *user_data);
  /** The referrer ended: final NOTIFY, rejection, or its session ended. */
  void (*on_closed)(sr_referrer *r, void *user_data);
} sr_referrer_delegate;

/**
 * Blind transfer: REFER to @p target in @p s (Established). Referred-By is
 * the UA identity. *out (may be NULL) gets a new reference.
 * Errors: SR_ESTATE, SR_ECLOSED, SR_EINVAL (bad target, extra_headers
 * refused: see Conventions), SR_ETOOBIG (target over max_message_size).
 */
SR_API int sr_session_refer(sr_session *s, const char *target,
                            const sr_refer_options *opts,
                            const sr_referrer_delegate *d, void *user_data,
                            sr_referrer **out);
/**
 * Attended transfer: REFER in @p s whose Refer-To is @p other's remote
 * target with ?Replaces=<other's dialog>.
 */
SR_API int sr_session_refer_session(sr_session *s, sr_session *other,
                                    const sr_refer_options *opts,
                                    const sr_referrer_delegate *d,
                                    void *user_data, sr_referrer **out);
SR_API sr_referrer *sr_referrer_ref(sr_referrer *r);
SR_API void sr_referrer_unref(sr_referrer *r);
/** The session the REFER went out in (borrowed), or NULL. */
SR_API sr_session *sr_referrer_get_session(const sr_referrer *r);
/** Event id of the subscription (the REFER's CSeq number), or 0 before
 *  the REFER is sent. */
SR_API int sr_referrer_get_id(const sr_referrer *r);
/** 1 once the referrer ended. */
SR_API int sr_referrer_is_closed(const sr_referrer *r);

#ifdef __cplusplus
}
#endif
#endif /* SIPREFERRAL_H */
