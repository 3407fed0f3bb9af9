/*
 * lua.i — what the Lua module needs beyond the plain C API (included by
 * sipreferral.i under SWIGLUA, before the header is wrapped).
 *
 * - Integers stay integers: int, size_t and enums go to Lua as integers
 *   (SWIG's defaults push floats) and must be integers coming in.
 * - Handles (sr_ua *, sr_session *, ... and the read-only views) travel as
 *   light userdata: one value per C object, usable as a table key, which
 *   lua/sipreferral.lua turns into one Lua object per C object. SWIG accepts
 *   light userdata for any pointer argument; the typed API is the Lua layer.
 * - Natives ("sr_lua_*") for what SWIG cannot express: option structs from
 *   tables, out-parameters, callbacks, polling several UAs, stats.
 *
 * Callbacks. Each UA created here has a context (sr_lua_ua): the main
 * thread, captured at creation, on which every callback runs (so a loop
 * driven from a coroutine still works); a registry table mapping each
 * object with Lua handlers (light userdata) to its dispatcher function; and
 * the first error raised by a callback. Trampolines call the dispatcher
 * through lua_pcall (from inside a second protected call, so even a memory
 * error while pushing arguments never unwinds through the C library). An
 * error is kept, sr_ua_callback_error() stops the loop, and ua:run()
 * raises it again. A dispatcher is dropped after its object's closed event
 * (session Terminated, referrer closed) and all of them when the UA closes.
 */

%{
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct sr_lua_ua {
  lua_State *L;  /* the main thread: callbacks run on it */
  sr_ua *ua;
  int handlers;  /* registry ref: { [light userdata object] = dispatcher } */
  int error;     /* registry ref of the first callback error, or LUA_NOREF */
  int has_error; /* an error is pending (error may be LUA_NOREF: lost) */
  int closed;    /* the UA was closed: no callback fires any more */
  int depth;     /* callbacks running; a dead context is freed at 0 */
  int dead;      /* its UA object was freed */
  int log_level; /* the UA's (options), kept for sr_ua_set_log_handler */
  /* The core's log lines for on_log, kept until the loop hands them over
   * (sr_lua_take_logs): a line may be logged anywhere in the core, where
   * no Lua code may run. */
  struct sr_lua_line { int level; char *msg; } *lines;
  int nlines, caplines;
  unsigned dropped; /* lines over SR_LUA_MAX_LINES, or out of memory */
  char pending;  /* its address keys the dispatcher of a REFER being sent */
} sr_lua_ua;

#define SR_LUA_MAX_LINES 1024 /* kept per turn of the loop */

/* Registry key of the table { [light userdata sr_ua] = light userdata ctx }. */
static const char sr_lua_uas_key = 0;

enum { SR_LUA_UA = 0, SR_LUA_SESSION = 1, SR_LUA_REFERRER = 2 };

/* Bits of the UA and session handler masks (which on_* the object has). */
enum {
  SR_LUA_ON_INVITE = 1, SR_LUA_ON_UA_REFER = 2, SR_LUA_ON_POLICY = 4,
  SR_LUA_ON_MESSAGE = 8, SR_LUA_ON_LOG = 16
};
enum {
  SR_LUA_ON_STATE = 1, SR_LUA_ON_RESPONSE = 2, SR_LUA_ON_REFER = 4,
  SR_LUA_ON_BYE = 8
};

static sr_lua_ua *sr_lua_ctx(lua_State *L, const sr_ua *ua) {
  sr_lua_ua *ctx = NULL;
  if (!ua) return NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &sr_lua_uas_key) == LUA_TTABLE) {
    lua_rawgetp(L, -1, ua);
    ctx = (sr_lua_ua *)lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ctx;
}

/* ---------------------------------------------------------------- options */
/* Option tables hold C-level values (the Lua layer validates and converts).
 * String values are left on the stack so they live through the C call;
 * callers reserve the stack space. */

/* The string at idx; raises when it holds a NUL (C would see it cut
 * short there), naming fn's argument what. */
static const char *sr_lua_checkstr(lua_State *L, int idx, const char *fn,
                                   const char *what) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (strlen(s) != n)
    luaL_error(L, "%s: %s contains a NUL character", fn, what);
  return s;
}

static const char *sr_lua_opt_str(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  return lua_type(L, -1) == LUA_TSTRING ? sr_lua_checkstr(L, -1, "option", k)
                                        : NULL;
}

static int sr_lua_opt_int(lua_State *L, int t, const char *k, int def) {
  int isnum = 0;
  lua_Integer v;
  if (lua_getfield(L, t, k) == LUA_TBOOLEAN) {
    v = lua_toboolean(L, -1);
    isnum = 1;
  } else {
    v = lua_tointegerx(L, -1, &isnum);
  }
  lua_pop(L, 1);
  return isnum && v >= INT_MIN && v <= INT_MAX ? (int)v : def;
}

static void sr_lua_response_opts(lua_State *L, int t, sr_response_options *o) {
  sr_response_options_init(o);
  if (lua_type(L, t) != LUA_TTABLE) return;
  o->status_code = sr_lua_opt_int(L, t, "status_code", 0);
  o->reason_phrase = sr_lua_opt_str(L, t, "reason_phrase");
  o->extra_headers = sr_lua_opt_str(L, t, "extra_headers");
  o->body = sr_lua_opt_str(L, t, "body");
  o->content_type = sr_lua_opt_str(L, t, "content_type");
}

static void sr_lua_inviter_opts(lua_State *L, int t, sr_inviter_options *o) {
  sr_inviter_options_init(o);
  if (lua_type(L, t) != LUA_TTABLE) return;
  o->extra_headers = sr_lua_opt_str(L, t, "extra_headers");
  o->body = sr_lua_opt_str(L, t, "body");
  o->content_type = sr_lua_opt_str(L, t, "content_type");
  o->from_display_name = sr_lua_opt_str(L, t, "from_display_name");
  o->transport = (sr_transport)sr_lua_opt_int(L, t, "transport", 0);
}

/* ---------------------------------------------------------------- calls */

enum { SR_LUA_INT, SR_LUA_STR, SR_LUA_LSTR, SR_LUA_PTR, SR_LUA_BOOL };

typedef struct sr_lua_arg {
  int type;
  lua_Integer i;
  const void *p;
  size_t len;
} sr_lua_arg;

/* One callback: the dispatcher of `obj` is called as fn(event, args...). */
typedef struct sr_lua_call {
  sr_lua_ua *ctx;
  const void *obj;
  const char *event;
  int nargs;
  sr_lua_arg args[6];
  int release;       /* obj's closed event: forget its dispatcher after */
  int adopt_pending; /* a referrer: may take the dispatcher of a REFER
                        still being sent (events fired inside the call) */
  lua_Integer result;
  int failed;
} sr_lua_call;

static void sr_lua_push_arg(lua_State *L, const sr_lua_arg *a) {
  switch (a->type) {
  case SR_LUA_INT: lua_pushinteger(L, a->i); break;
  case SR_LUA_STR: lua_pushstring(L, (const char *)a->p); break;
  case SR_LUA_LSTR: lua_pushlstring(L, (const char *)a->p, a->len); break;
  case SR_LUA_BOOL: lua_pushboolean(L, (int)a->i); break;
  default:
    if (a->p) lua_pushlightuserdata(L, (void *)a->p);
    else lua_pushnil(L);
  }
}

/* Protected part of a callback (runs under lua_pcall). */
static int sr_lua_call_p(lua_State *L) {
  sr_lua_call *c = (sr_lua_call *)lua_touserdata(L, 1);
  sr_lua_ua *ctx = c->ctx;
  int t, i;
  if (ctx->handlers == LUA_NOREF) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->handlers);
  t = lua_gettop(L);
  if (lua_rawgetp(L, t, c->obj) == LUA_TNIL && c->adopt_pending) {
    lua_pop(L, 1);
    if (lua_rawgetp(L, t, &ctx->pending) == LUA_TFUNCTION) {
      lua_pushvalue(L, -1);
      lua_rawsetp(L, t, c->obj);
    }
  }
  if (lua_type(L, -1) == LUA_TFUNCTION) {
    lua_pushstring(L, c->event);
    for (i = 0; i < c->nargs; i++) sr_lua_push_arg(L, &c->args[i]);
    if (lua_pcall(L, 1 + c->nargs, 1, 0) != LUA_OK) {
      c->failed = 1;
      if (!ctx->has_error && !ctx->dead) {
        ctx->error = luaL_ref(L, LUA_REGISTRYINDEX);
        ctx->has_error = 1;
      }
    } else {
      int isnum = 0;
      lua_Integer r = lua_tointegerx(L, -1, &isnum);
      if (isnum) c->result = r;
    }
  }
  lua_settop(L, t);
  if (c->release) {
    lua_pushnil(L);
    lua_rawsetp(L, t, c->obj);
  }
  return 0;
}

static void sr_lua_dispatch(sr_lua_call *c) {
  sr_lua_ua *ctx = c->ctx;
  lua_State *L;
  int top;
  if (!ctx || ctx->dead || ctx->closed) return;
  L = ctx->L;
  top = lua_gettop(L);
  ctx->depth++;
  if (!lua_checkstack(L, 8 + c->nargs)) {
    c->failed = 2;
  } else {
    lua_pushcfunction(L, sr_lua_call_p);
    lua_pushlightuserdata(L, c);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) c->failed = 2; /* out of memory */
  }
  lua_settop(L, top);
  if (c->failed == 2) ctx->has_error = 1; /* the value is lost; see take_error */
  ctx->depth--;
  if (c->failed && !ctx->dead) sr_ua_callback_error(ctx->ua);
  if (ctx->dead && ctx->depth == 0) free(ctx);
}

#define SR_LUA_CALL(c, ud, o, ev) \
  sr_lua_call c; memset(&c, 0, sizeof c); \
  c.ctx = (sr_lua_ua *)(ud); c.obj = (o); c.event = (ev)
#define SR_LUA_ARG_INT(c, v) \
  (c.args[c.nargs].type = SR_LUA_INT, c.args[c.nargs++].i = (v))
#define SR_LUA_ARG_STR(c, v) \
  (c.args[c.nargs].type = SR_LUA_STR, c.args[c.nargs++].p = (v))
#define SR_LUA_ARG_PTR(c, v) \
  (c.args[c.nargs].type = SR_LUA_PTR, c.args[c.nargs++].p = (v))

/* ---- UA delegate ---- */

static void sr_lua_tr_invite(sr_ua *ua, sr_session *inv, void *ud) {
  SR_LUA_CALL(c, ud, ua, "invite");
  SR_LUA_ARG_PTR(c, inv);
  sr_lua_dispatch(&c);
  /* A failed handler must not leave the caller ringing. */
  if (c.failed && sr_session_get_state(inv) == SR_SESSION_INITIAL) {
    sr_response_options o;
    sr_response_options_init(&o);
    o.status_code = 500;
    sr_invitation_reject(inv, &o);
  }
}

static void sr_lua_reject_failed(sr_referral *r) {
  if (sr_referral_get_state(r) == SR_REFERRAL_PENDING) {
    sr_response_options o;
    sr_response_options_init(&o);
    o.status_code = 500;
    sr_referral_reject(r, &o);
  }
}

static void sr_lua_tr_ua_refer(sr_ua *ua, sr_referral *r, void *ud) {
  SR_LUA_CALL(c, ud, ua, "refer");
  SR_LUA_ARG_PTR(c, r);
  sr_lua_dispatch(&c);
  if (c.failed) sr_lua_reject_failed(r);
}

static int sr_lua_tr_policy(sr_ua *ua, sr_referral *r, void *ud) {
  SR_LUA_CALL(c, ud, ua, "policy");
  SR_LUA_ARG_PTR(c, r);
  sr_lua_dispatch(&c);
  if (c.failed) return 500;
  return c.result >= 300 && c.result <= 699 ? (int)c.result : 0;
}

static int sr_lua_tr_message(int outgoing, sr_transport tp, const char *local,
                             const char *remote, const char *data, size_t len,
                             void *ud) {
  sr_lua_ua *ctx = (sr_lua_ua *)ud;
  SR_LUA_CALL(c, ud, ctx ? (const void *)ctx->ua : NULL, "message");
  c.args[c.nargs].type = SR_LUA_BOOL;
  c.args[c.nargs++].i = outgoing;
  SR_LUA_ARG_INT(c, tp);
  SR_LUA_ARG_STR(c, local);
  SR_LUA_ARG_STR(c, remote);
  c.args[c.nargs].type = SR_LUA_LSTR;
  c.args[c.nargs].p = data;
  c.args[c.nargs++].len = len;
  sr_lua_dispatch(&c);
  return !c.failed && c.result != 0;
}

/* The core's log lines, while the UA has an on_log (installed by
 * sr_lua_set_handler, removed before its context can go): kept for the
 * loop, which calls on_log between turns. */
static void sr_lua_tr_log(int level, const char *message, void *ud) {
  sr_lua_ua *ctx = (sr_lua_ua *)ud;
  if (ctx->nlines == ctx->caplines) {
    int cap = ctx->caplines ? ctx->caplines * 2 : 16;
    struct sr_lua_line *n =
        cap <= SR_LUA_MAX_LINES
            ? (struct sr_lua_line *)realloc(ctx->lines, (size_t)cap * sizeof *n)
            : NULL;
    if (!n) {
      ctx->dropped++;
      return;
    }
    ctx->lines = n;
    ctx->caplines = cap;
  }
  char *m = strdup(message);
  if (!m) {
    ctx->dropped++;
    return;
  }
  ctx->lines[ctx->nlines].level = level;
  ctx->lines[ctx->nlines++].msg = m;
}

/* Forgets the kept lines; to stderr, as the core writes them, if `print`. */
static void sr_lua_drop_lines(sr_lua_ua *ctx, int print) {
  static const char *const names[] = {"error", "warning", "info", "debug"};
  for (int i = 0; i < ctx->nlines; i++) {
    int lv = ctx->lines[i].level;
    if (print)
      fprintf(stderr, "sipreferral %s: %s\n", names[lv < 0 ? 0 : lv > 3 ? 3 : lv],
              ctx->lines[i].msg);
    free(ctx->lines[i].msg);
  }
  free(ctx->lines);
  ctx->lines = NULL;
  ctx->nlines = ctx->caplines = 0;
}

/* ---- session delegate ---- */

static void sr_lua_tr_state(sr_session *s, sr_session_state st, void *ud) {
  SR_LUA_CALL(c, ud, s, "state");
  SR_LUA_ARG_INT(c, st);
  c.release = st == SR_SESSION_TERMINATED;
  sr_lua_dispatch(&c);
  if (st == SR_SESSION_TERMINATED) sr_session_set_delegate(s, NULL, NULL);
}

static void sr_lua_tr_response(sr_session *s, int code, const char *reason,
                               void *ud) {
  SR_LUA_CALL(c, ud, s, "response");
  SR_LUA_ARG_INT(c, code);
  SR_LUA_ARG_STR(c, reason);
  sr_lua_dispatch(&c);
}

static void sr_lua_tr_refer(sr_session *s, sr_referral *r, void *ud) {
  SR_LUA_CALL(c, ud, s, "refer");
  SR_LUA_ARG_PTR(c, r);
  sr_lua_dispatch(&c);
  if (c.failed) sr_lua_reject_failed(r);
}

static void sr_lua_tr_bye(sr_session *s, void *ud) {
  SR_LUA_CALL(c, ud, s, "bye");
  sr_lua_dispatch(&c);
}

/* ---- referrer delegate (fixed when the REFER is sent) ---- */

static void sr_lua_tr_referrer(sr_referrer *r, const char *ev, int code,
                               const char *reason, const char *state,
                               int release, void *ud) {
  SR_LUA_CALL(c, ud, r, ev);
  c.adopt_pending = 1;
  c.release = release;
  SR_LUA_ARG_PTR(c, r);
  if (!release) {
    SR_LUA_ARG_INT(c, code);
    SR_LUA_ARG_STR(c, reason);
    if (state) SR_LUA_ARG_STR(c, state);
  }
  sr_lua_dispatch(&c);
}

static void sr_lua_tr_rf_accept(sr_referrer *r, int code, const char *reason,
                                void *ud) {
  sr_lua_tr_referrer(r, "accept", code, reason, NULL, 0, ud);
}
static void sr_lua_tr_rf_reject(sr_referrer *r, int code, const char *reason,
                                void *ud) {
  sr_lua_tr_referrer(r, "reject", code, reason, NULL, 0, ud);
}
static void sr_lua_tr_rf_notify(sr_referrer *r, int code, const char *reason,
                                const char *state, void *ud) {
  sr_lua_tr_referrer(r, "notify", code, reason, state ? state : "", 0, ud);
}
static void sr_lua_tr_rf_closed(sr_referrer *r, void *ud) {
  sr_lua_tr_referrer(r, "closed", 0, NULL, NULL, 1, ud);
}

static const sr_referrer_delegate sr_lua_referrer_delegate = {
  sr_lua_tr_rf_accept, sr_lua_tr_rf_reject, sr_lua_tr_rf_notify,
  sr_lua_tr_rf_closed
};

/* ---------------------------------------------------------------- natives */

/* Stores t[key] = value (top of stack) without raising; for the one store
 * that follows an allocation in C. */
static int sr_lua_rawsetp_p(lua_State *L) {
  lua_rawsetp(L, 1, lua_touserdata(L, 2));
  return 0;
}

/* ua_new(opts) -> ua | nil, code. opts holds C-level sr_ua_options fields. */
static int sr_lua_ua_new(lua_State *L) {
  sr_ua_options o;
  sr_lua_ua *ctx;
  sr_ua *ua = NULL;
  int rc, handlers, map;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkstack(L, 24, NULL);
  /* Everything that may raise comes before the UA exists. */
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &sr_lua_uas_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &sr_lua_uas_key);
  }
  map = lua_gettop(L);
  sr_ua_options_init(&o);
  o.uri = sr_lua_opt_str(L, 1, "uri");
  o.display_name = sr_lua_opt_str(L, 1, "display_name");
  o.user_agent = sr_lua_opt_str(L, 1, "user_agent");
  o.username = sr_lua_opt_str(L, 1, "username");
  o.password = sr_lua_opt_str(L, 1, "password");
  o.outbound_proxy = sr_lua_opt_str(L, 1, "outbound_proxy");
  const char *schemes = sr_lua_opt_str(L, 1, "allowed_schemes");
  if (schemes) o.allowed_schemes = schemes; /* else the core's default */
#define SR_LUA_INT_OPT(f) o.f = sr_lua_opt_int(L, 1, #f, o.f)
  SR_LUA_INT_OPT(t1_ms);
  SR_LUA_INT_OPT(t2_ms);
  SR_LUA_INT_OPT(t4_ms);
  SR_LUA_INT_OPT(log_level);
  SR_LUA_INT_OPT(allow_out_of_dialog_refer);
  SR_LUA_INT_OPT(refer_decision_timeout_ms);
  SR_LUA_INT_OPT(refer_expires_s);
  SR_LUA_INT_OPT(max_sessions);
  SR_LUA_INT_OPT(max_referrals);
  SR_LUA_INT_OPT(max_referrals_per_session);
  SR_LUA_INT_OPT(max_tcp_connections);
  SR_LUA_INT_OPT(tcp_idle_timeout_ms);
  SR_LUA_INT_OPT(udp_receive_buffer);
#undef SR_LUA_INT_OPT
  o.notify_mode = (sr_notify_mode)sr_lua_opt_int(L, 1, "notify_mode",
                                                 (int)o.notify_mode);
  rc = sr_lua_opt_int(L, 1, "max_message_size", -1);
  if (rc > 0) o.max_message_size = (size_t)rc;
  lua_newtable(L);
  handlers = luaL_ref(L, LUA_REGISTRYINDEX);

  ctx = (sr_lua_ua *)calloc(1, sizeof *ctx);
  rc = ctx ? sr_ua_new(&ua, &o) : SR_ENOMEM;
  if (rc == 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    ctx->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    ctx->ua = ua;
    ctx->log_level = o.log_level;
    ctx->handlers = handlers;
    ctx->error = LUA_NOREF;
    lua_pushcfunction(L, sr_lua_rawsetp_p);
    lua_pushvalue(L, map);
    lua_pushlightuserdata(L, ua);
    lua_pushlightuserdata(L, ctx);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
      sr_ua_unref(ua);
      rc = SR_ENOMEM;
    }
  }
  if (rc != 0) {
    free(ctx);
    luaL_unref(L, LUA_REGISTRYINDEX, handlers);
    lua_pushnil(L);
    lua_pushinteger(L, rc);
    return 2;
  }
  sr_ua_set_delegate(ua, NULL, ctx);
  lua_pushlightuserdata(L, ua);
  return 1;
}

static void sr_lua_ctx_close(lua_State *L, sr_lua_ua *ctx) {
  /* Its lines go to stderr from now on (those kept first): the context
   * may be freed while the UA lives on (a session holds it). */
  sr_ua_set_log_handler(ctx->ua, NULL, NULL, ctx->log_level);
  sr_lua_drop_lines(ctx, 1);
  sr_ua_close(ctx->ua); /* fires no callback */
  sr_ua_set_delegate(ctx->ua, NULL, NULL);
  sr_ua_set_message_hook(ctx->ua, NULL, NULL);
  ctx->closed = 1;
  luaL_unref(L, LUA_REGISTRYINDEX, ctx->handlers);
  ctx->handlers = LUA_NOREF;
}

/* ua_close(ua): closes it and drops every dispatcher of its objects. The
 * pending error, if any, stays for run() to raise. */
static int sr_lua_ua_close(lua_State *L) {
  sr_ua *ua = (sr_ua *)lua_touserdata(L, 1);
  sr_lua_ua *ctx = sr_lua_ctx(L, ua);
  if (ctx) sr_lua_ctx_close(L, ctx);
  else if (ua) sr_ua_close(ua);
  return 0;
}

/* ua_free(ua): ua_close, forget the context, drop the UA reference. */
static int sr_lua_ua_free(lua_State *L) {
  sr_ua *ua = (sr_ua *)lua_touserdata(L, 1);
  sr_lua_ua *ctx = sr_lua_ctx(L, ua);
  if (!ua) return 0;
  if (ctx) {
    sr_lua_ctx_close(L, ctx);
    luaL_unref(L, LUA_REGISTRYINDEX, ctx->error);
    ctx->error = LUA_NOREF;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &sr_lua_uas_key) == LUA_TTABLE) {
      lua_pushnil(L);
      lua_rawsetp(L, -2, ua);
    }
    lua_pop(L, 1);
    ctx->dead = 1;
    if (ctx->depth == 0) free(ctx);
  }
  sr_ua_unref(ua);
  return 0;
}

/* set_handler(kind, obj, fn|false|nil, mask) -> registered. Registers fn as
 * obj's dispatcher and installs the C delegate for the bits of mask (a
 * session always gets on_state: Terminated is its closed event). mask 0
 * forgets the dispatcher; false leaves a placeholder (a referrer whose Lua
 * object was released). Nothing is registered for an ended object. */
static int sr_lua_set_handler(lua_State *L) {
  int kind = (int)luaL_checkinteger(L, 1);
  void *obj = lua_touserdata(L, 2);
  int mask = (int)luaL_optinteger(L, 4, 0);
  sr_lua_ua *ctx = NULL;
  int live = 0;
  if (!obj) return luaL_argerror(L, 2, "handle expected");
  if (kind == SR_LUA_UA) {
    ctx = sr_lua_ctx(L, (sr_ua *)obj);
    live = 1;
  } else if (kind == SR_LUA_SESSION) {
    sr_session *s = (sr_session *)obj;
    ctx = sr_lua_ctx(L, sr_session_get_ua(s));
    live = sr_session_get_state(s) != SR_SESSION_TERMINATED;
  } else if (kind == SR_LUA_REFERRER) {
    sr_referrer *r = (sr_referrer *)obj;
    sr_session *s = sr_referrer_get_session(r);
    ctx = sr_lua_ctx(L, s ? sr_session_get_ua(s) : NULL);
    live = !sr_referrer_is_closed(r);
  } else {
    return luaL_argerror(L, 1, "unknown kind");
  }
  if (!ctx || ctx->closed || ctx->handlers == LUA_NOREF) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (!live) mask = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->handlers);
  if (mask && lua_type(L, 3) == LUA_TFUNCTION) lua_pushvalue(L, 3);
  else if (live && lua_type(L, 3) == LUA_TBOOLEAN) lua_pushboolean(L, 0);
  else lua_pushnil(L);
  lua_rawsetp(L, -2, obj);
  lua_pop(L, 1);
  if (kind == SR_LUA_UA) {
    sr_ua_delegate d;
    memset(&d, 0, sizeof d);
    if (mask & SR_LUA_ON_INVITE) d.on_invite = sr_lua_tr_invite;
    if (mask & SR_LUA_ON_UA_REFER) d.on_refer = sr_lua_tr_ua_refer;
    if (mask & SR_LUA_ON_POLICY) d.on_refer_policy = sr_lua_tr_policy;
    sr_ua_set_delegate((sr_ua *)obj, &d, ctx);
    sr_ua_set_message_hook((sr_ua *)obj,
                           (mask & SR_LUA_ON_MESSAGE) ? sr_lua_tr_message : NULL,
                           ctx);
    sr_ua_set_log_handler((sr_ua *)obj,
                          (mask & SR_LUA_ON_LOG) ? sr_lua_tr_log : NULL,
                          (mask & SR_LUA_ON_LOG) ? ctx : NULL, ctx->log_level);
    if (!(mask & SR_LUA_ON_LOG)) { /* on_log unset: what it kept, to stderr */
      sr_lua_drop_lines(ctx, 1);
      ctx->dropped = 0;
    }
  } else if (kind == SR_LUA_SESSION) {
    sr_session_delegate d;
    memset(&d, 0, sizeof d);
    d.on_state = sr_lua_tr_state;
    if (mask & SR_LUA_ON_RESPONSE) d.on_response = sr_lua_tr_response;
    if (mask & SR_LUA_ON_REFER) d.on_refer = sr_lua_tr_refer;
    if (mask & SR_LUA_ON_BYE) d.on_bye = sr_lua_tr_bye;
    sr_session_set_delegate((sr_session *)obj, mask ? &d : NULL,
                            mask ? ctx : NULL);
  }
  lua_pushboolean(L, mask != 0);
  return 1;
}

/* take_error(ua) -> false | true, value: the pending callback error. */
static int sr_lua_take_error(lua_State *L) {
  sr_lua_ua *ctx = sr_lua_ctx(L, (sr_ua *)lua_touserdata(L, 1));
  if (!ctx || !ctx->has_error) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, 1);
  if (ctx->error != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->error);
    luaL_unref(L, LUA_REGISTRYINDEX, ctx->error);
  } else {
    lua_pushliteral(L, "sipreferral: a callback failed and its error was "
                       "lost (out of memory)");
  }
  ctx->error = LUA_NOREF;
  ctx->has_error = 0;
  return 2;
}

/* take_logs(ua) -> {level, message, level, message, ...}, dropped: the
 * core's lines kept for on_log since the last call (nothing if none). */
static int sr_lua_take_logs(lua_State *L) {
  sr_lua_ua *ctx = sr_lua_ctx(L, (sr_ua *)lua_touserdata(L, 1));
  if (!ctx || (ctx->nlines == 0 && ctx->dropped == 0)) return 0;
  lua_createtable(L, 2 * ctx->nlines, 0);
  for (int i = 0; i < ctx->nlines; i++) { /* (may raise: nothing freed yet) */
    lua_pushinteger(L, ctx->lines[i].level);
    lua_rawseti(L, -2, 2 * i + 1);
    lua_pushstring(L, ctx->lines[i].msg);
    lua_rawseti(L, -2, 2 * i + 2);
  }
  lua_pushinteger(L, (lua_Integer)ctx->dropped);
  sr_lua_drop_lines(ctx, 0);
  ctx->dropped = 0;
  return 2;
}

/* respond(what, obj, opts) -> code: 0 progress, 1 accept, 2 reject an
 * Invitation; 3 accept, 4 reject a Referral. */
static int sr_lua_respond(lua_State *L) {
  int what = (int)luaL_checkinteger(L, 1);
  void *obj = lua_touserdata(L, 2);
  sr_response_options o;
  int rc;
  luaL_checkstack(L, 8, NULL);
  sr_lua_response_opts(L, 3, &o);
  switch (what) {
  case 0: rc = sr_invitation_progress((sr_session *)obj, &o); break;
  case 1: rc = sr_invitation_accept((sr_session *)obj, &o); break;
  case 2: rc = sr_invitation_reject((sr_session *)obj, &o); break;
  case 3: rc = sr_referral_accept((sr_referral *)obj, &o); break;
  case 4: rc = sr_referral_reject((sr_referral *)obj, &o); break;
  default: return luaL_argerror(L, 1, "unknown response");
  }
  lua_pushinteger(L, rc);
  return 1;
}

static int sr_lua_push_session(lua_State *L, int rc, sr_session *s) {
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushinteger(L, rc);
    return 2;
  }
  lua_pushlightuserdata(L, s);
  return 1;
}

/* make_inviter(ua, target, opts) -> session (a new reference) | nil, code */
static int sr_lua_make_inviter(lua_State *L) {
  sr_ua *ua = (sr_ua *)lua_touserdata(L, 1);
  const char *target = sr_lua_checkstr(L, 2, "make_inviter", "target");
  sr_inviter_options o;
  sr_session *s = NULL;
  int rc;
  luaL_checkstack(L, 8, NULL);
  sr_lua_inviter_opts(L, 3, &o);
  rc = sr_ua_make_inviter(ua, target, &o, &s);
  return sr_lua_push_session(L, rc, s);
}

/* referral_make_inviter(r, opts) -> session | nil, code (as the C call) */
static int sr_lua_referral_make_inviter(lua_State *L) {
  sr_referral *r = (sr_referral *)lua_touserdata(L, 1);
  sr_inviter_options o;
  sr_session *s = NULL;
  int rc;
  luaL_checkstack(L, 8, NULL);
  sr_lua_inviter_opts(L, 2, &o);
  rc = sr_referral_make_inviter(r, &o, &s);
  return sr_lua_push_session(L, rc, s);
}

/* refer(s, target | other_session, opts, dispatcher) -> referrer (a new
 * reference) | nil, code. Events fired before the call returns reach the
 * dispatcher too. The caller registers it for the referrer afterwards. */
static int sr_lua_refer(lua_State *L) {
  sr_session *s = (sr_session *)lua_touserdata(L, 1);
  sr_lua_ua *ctx = sr_lua_ctx(L, sr_session_get_ua(s));
  sr_refer_options o;
  sr_referrer *r = NULL;
  int rc;
  luaL_checktype(L, 4, LUA_TFUNCTION);
  luaL_checkstack(L, 8, NULL);
  sr_refer_options_init(&o);
  if (lua_type(L, 3) == LUA_TTABLE) {
    o.extra_headers = sr_lua_opt_str(L, 3, "extra_headers");
    o.refer_sub = sr_lua_opt_int(L, 3, "refer_sub", o.refer_sub);
    o.bye_on_success = sr_lua_opt_int(L, 3, "bye_on_success", o.bye_on_success);
  }
  /* Raises before anything is registered. */
  const char *target = lua_type(L, 2) == LUA_TSTRING
                           ? sr_lua_checkstr(L, 2, "refer", "target") : NULL;
  if (!s || !ctx || ctx->closed || ctx->handlers == LUA_NOREF) {
    lua_pushnil(L);
    lua_pushinteger(L, s ? SR_ECLOSED : SR_EINVAL);
    return 2;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->handlers);
  lua_pushvalue(L, 4);
  lua_rawsetp(L, -2, &ctx->pending);
  lua_pop(L, 1);
  ctx->depth++; /* a callback in the call may free the UA's Lua object */
  if (target)
    rc = sr_session_refer(s, target, &o, &sr_lua_referrer_delegate, ctx, &r);
  else
    rc = sr_session_refer_session(s, (sr_session *)lua_touserdata(L, 2), &o,
                                  &sr_lua_referrer_delegate, ctx, &r);
  ctx->depth--;
  if (ctx->dead) {
    if (ctx->depth == 0) free(ctx);
  } else if (ctx->handlers != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->handlers);
    lua_pushnil(L);
    lua_rawsetp(L, -2, &ctx->pending);
    lua_pop(L, 1);
  }
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushinteger(L, rc);
    return 2;
  }
  lua_pushlightuserdata(L, r);
  return 1;
}

static void sr_lua_push_stats(lua_State *L, const sr_stats *st) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, st->sessions);
  lua_setfield(L, -2, "sessions");
  lua_pushinteger(L, st->referrals);
  lua_setfield(L, -2, "referrals");
  lua_pushinteger(L, st->referrers);
  lua_setfield(L, -2, "referrers");
  lua_pushinteger(L, st->transactions);
  lua_setfield(L, -2, "transactions");
  lua_pushinteger(L, st->dialogs);
  lua_setfield(L, -2, "dialogs");
  lua_pushinteger(L, st->connections);
  lua_setfield(L, -2, "connections");
}

/* ua_stats(ua) / global_stats() -> table of live counts */
static int sr_lua_ua_stats(lua_State *L) {
  sr_stats st;
  sr_ua_get_stats((sr_ua *)lua_touserdata(L, 1), &st);
  sr_lua_push_stats(L, &st);
  return 1;
}
static int sr_lua_global_stats(lua_State *L) {
  sr_stats st;
  sr_global_stats(&st);
  sr_lua_push_stats(L, &st);
  return 1;
}

/* request_body(req) -> string (may contain NUL bytes) */
static int sr_lua_request_body(lua_State *L) {
  const sr_request *req = (const sr_request *)lua_touserdata(L, 1);
  const char *b = req ? sr_request_body(req) : NULL;
  if (b) lua_pushlstring(L, b, sr_request_body_length(req));
  else lua_pushliteral(L, "");
  return 1;
}

/* wait(fds, timeout_ms) -> number of ready descriptors. Waits until one of
 * fds (a list) is readable or timeout_ms (-1: no limit) passes. */
static int sr_lua_wait(lua_State *L) {
  int timeout = (int)luaL_checkinteger(L, 2);
  lua_Integer n, i;
  struct pollfd *p;
  int rc;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = luaL_len(L, 1);
  if (n < 0 || n > 4096) return luaL_argerror(L, 1, "too many descriptors");
  p = (struct pollfd *)lua_newuserdatauv(L, sizeof *p * (size_t)(n ? n : 1), 0);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    p[i].fd = (int)luaL_checkinteger(L, -1);
    p[i].events = POLLIN;
    p[i].revents = 0;
    lua_pop(L, 1);
  }
  rc = poll(p, (nfds_t)n, timeout);
  if (rc < 0 && errno != EINTR) return luaL_error(L, "poll: %s", strerror(errno));
  lua_pushinteger(L, rc < 0 ? 0 : rc);
  return 1;
}

/* count_c_memory(kib): counts kib of C memory that a new object keeps
 * alive as if Lua had allocated it, so that the collector keeps pace (a
 * no-op while the script has stopped the collector). */
static int sr_lua_count_c_memory(lua_State *L) {
  int kib = (int)luaL_checkinteger(L, 1);
  if (kib > 0 && lua_gc(L, LUA_GCISRUNNING) == 1) lua_gc(L, LUA_GCSTEP, kib);
  return 0;
}

/* now_ms() -> monotonic milliseconds */
static int sr_lua_now_ms(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  return 1;
}
%}

%native(sr_lua_ua_new) int sr_lua_ua_new(lua_State *L);
%native(sr_lua_ua_close) int sr_lua_ua_close(lua_State *L);
%native(sr_lua_ua_free) int sr_lua_ua_free(lua_State *L);
%native(sr_lua_set_handler) int sr_lua_set_handler(lua_State *L);
%native(sr_lua_take_error) int sr_lua_take_error(lua_State *L);
%native(sr_lua_take_logs) int sr_lua_take_logs(lua_State *L);
%native(sr_lua_respond) int sr_lua_respond(lua_State *L);
%native(sr_lua_make_inviter) int sr_lua_make_inviter(lua_State *L);
%native(sr_lua_referral_make_inviter) int sr_lua_referral_make_inviter(lua_State *L);
%native(sr_lua_refer) int sr_lua_refer(lua_State *L);
%native(sr_lua_ua_stats) int sr_lua_ua_stats(lua_State *L);
%native(sr_lua_global_stats) int sr_lua_global_stats(lua_State *L);
%native(sr_lua_request_body) int sr_lua_request_body(lua_State *L);
%native(sr_lua_wait) int sr_lua_wait(lua_State *L);
%native(sr_lua_now_ms) int sr_lua_now_ms(lua_State *L);
%native(sr_lua_count_c_memory) int sr_lua_count_c_memory(lua_State *L);

/* ---------------------------------------------------------------- typemaps */

/* Integers in, as integers (a float with an exact integer value is fine). */
%typemap(in, checkfn="lua_isnumber") int, long, enum SWIGTYPE
%{ {
  int isnum_ = 0;
  lua_Integer v_ = lua_tointegerx(L, $input, &isnum_);
  if (!isnum_ || v_ < INT_MIN || v_ > INT_MAX) {
    SWIG_Lua_pushferrstring(L, "Error in %s (arg %d), expected an integer",
                            "$symname", $argnum);
    SWIG_fail;
  }
  $1 = ($1_ltype)v_;
} %}

%typemap(out) int, long, size_t, enum SWIGTYPE
%{ lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++; %}

/* Every const char * argument: a string or nil (NULL),
 * refused when it holds a NUL (the C side would see it cut short). */
%typemap(in, checkfn="SWIG_lua_isnilstring") const char *
%{ $1 = lua_isnil(L, $input) ? NULL
       : ($1_ltype)sr_lua_checkstr(L, $input, "$symname", "$1_name"); %}

/* Handles and views out as light userdata, NULL as nil. */
%typemap(out) sr_ua *, sr_session *, sr_referral *, sr_referrer *,
              const sr_name_addr *, const sr_uri *, const sr_request *
%{ if ($1) lua_pushlightuserdata(L, (void *)$1); else lua_pushnil(L);
   SWIG_arg++; %}
