/*
 * python.i — what the Python module needs beyond the C API as it is:
 * option structs given as dicts, out-parameters returned as [rc, ptr],
 * callbacks into Python callables, the GIL released while the loop waits,
 * callback exceptions carried out of the call that fired them, and the
 * core's log routed to Python. %included by sipreferral.i for Python only.
 *
 * Callback handlers. A handler (sr_py_handler) ties one C object (a UA,
 * a session, a referrer) to its Python wrapper, or a UA's message hook to
 * its callable. An event calls the wrapper's callback attribute
 * (wrapper.on_state(state); wrapper._on_invite(invitation) with the new
 * object's wrapper made in C): see sr_py_event. While installed a
 * handler holds a reference on the C object, a weak one on the wrapper (a
 * strong one too while the wrapper must live for its callbacks: see
 * sr_py_handler_keep), or the hook's callable; its hold on the wrapper is
 * no Python reference cycle. It is uninstalled after
 * the object's closed event (session Terminated, referrer on_closed) or by
 * sr_py_ua_release() (after sr_ua_close, which fires no callback). Handlers
 * are reference counted apart from that: installed + one per Python holder,
 * so a Python wrapper may keep its pointer after the handler was dropped.
 *
 * Exceptions. A callable that raises has its exception queued (per thread:
 * callbacks run on the thread whose C call fired them) and
 * sr_ua_callback_error() stops the loop after the current event. The
 * Python layer re-raises it from run_once() or from the API call that
 * fired the callback (sr_py_raise_pending); when one event made several
 * callbacks raise, the next calls raise the others in turn.
 */

%{
#include <errno.h>
#include <string.h>
#include <unistd.h>

typedef enum sr_py_kind {
  SR_PY_UA, SR_PY_SESSION, SR_PY_REFERRER, SR_PY_HOOK
} sr_py_kind;

typedef struct sr_py_handler {
  int refs;
  int installed;
  sr_py_kind kind;
  unsigned flags;     /* which optional delegate members are set */
  sr_ua *ua;          /* for sr_ua_callback_error and release */
  void *obj;          /* the C object, referenced while installed */
  PyObject *fn;       /* a message hook's callable */
  PyObject *ref;      /* others: a weak reference to the Python wrapper */
  PyObject *keep;     /* the wrapper itself while it must stay alive */
  /* A session's events nobody needs (sr_py_session_filter): while its
   * on_state is state_fn, states outside state_mask are not delivered;
   * while its on_response is response_fn, codes below min_code are not.
   * Weak references: the wrapper holds its callbacks. */
  PyObject *state_fn, *response_fn;
  unsigned state_mask;
  int min_code;
  /* The agent's ended calls (sr_py_own_callbacks): when the session ends,
   * ended_item joins ended_list, and the quiet loop stops for a sweep
   * every ended_batch of them: no Python frame per call for it. */
  PyObject *ended_list, *ended_item;
  Py_ssize_t ended_batch;
  struct sr_py_handler *prev, *next;
} sr_py_handler;

/* Flags: optional members whose absence means a C default. */
#define SR_PY_UA_INVITE 1u   /* none: 480 */
#define SR_PY_UA_REFER 2u    /* out-of-dialog REFER */
#define SR_PY_UA_POLICY 4u
#define SR_PY_SESSION_REFER 1u /* none: accepted and followed */

static sr_py_handler *sr_py_handlers; /* every installed handler */
static int sr_py_nhandlers;           /* allocated, installed or not */
static PyObject *sr_py_log_fn;
/* Exceptions of callbacks, oldest first, per thread: [(type, value, tb)] */
static _Thread_local PyObject *sr_py_pending;

/* ---------------- pending exceptions ---------------- */

/* Takes the current Python error into the pending queue. */
static void sr_py_store_error(void) {
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  if (!t) return;
  PyErr_NormalizeException(&t, &v, &tb);
  if (tb && v) PyException_SetTraceback(v, tb);
  if (!sr_py_pending) sr_py_pending = PyList_New(0);
  PyObject *item = sr_py_pending ? PyTuple_Pack(3, t, v ? v : Py_None,
                                                tb ? tb : Py_None)
                                 : NULL;
  if (!item || PyList_Append(sr_py_pending, item) < 0)
    PyErr_Clear(); /* out of memory: nothing better to do */
  Py_XDECREF(item);
  Py_XDECREF(t);
  Py_XDECREF(v);
  Py_XDECREF(tb);
}

/* Moves the oldest pending exception into the error indicator. 1 if there
 * was one. */
static int sr_py_restore_pending(void) {
  if (!sr_py_pending || PyList_GET_SIZE(sr_py_pending) == 0) return 0;
  PyObject *item = PyList_GET_ITEM(sr_py_pending, 0);
  Py_INCREF(item);
  if (PySequence_DelItem(sr_py_pending, 0) < 0) PyErr_Clear();
  PyObject *t = PyTuple_GET_ITEM(item, 0), *v = PyTuple_GET_ITEM(item, 1),
           *tb = PyTuple_GET_ITEM(item, 2);
  Py_INCREF(t);
  Py_INCREF(v);
  if (tb == Py_None) tb = NULL;
  else Py_INCREF(tb);
  Py_DECREF(item);
  PyErr_Restore(t, v, tb);
  return 1;
}

static PyObject *sr_py_text(const char *s) {
  if (!s) Py_RETURN_NONE;
  return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
}

static PyObject *sr_py_ptr(void *p, swig_type_info *ty) {
  return SWIG_NewPointerObj(p, ty, 0);
}

/* ---------------- handlers ---------------- */

static void sr_py_handler_unref(sr_py_handler *h);

/* A handler for obj's events; keep: hold obj strongly too. */
static sr_py_handler *sr_py_handler_new(sr_py_kind kind, sr_ua *ua,
                                        PyObject *obj, int keep, int refs) {
  PyObject *ref = kind == SR_PY_HOOK ? NULL : PyWeakref_NewRef(obj, NULL);
  if (kind != SR_PY_HOOK && !ref) return NULL;
  sr_py_handler *h = calloc(1, sizeof *h);
  if (!h) {
    Py_XDECREF(ref);
    PyErr_NoMemory();
    return NULL;
  }
  sr_py_nhandlers++;
  h->refs = refs;
  h->installed = 1;
  h->kind = kind;
  h->ua = ua;
  if (kind == SR_PY_HOOK) {
    h->fn = obj;
    Py_INCREF(obj);
  } else {
    h->ref = ref;
    if (keep) {
      h->keep = obj;
      Py_INCREF(obj);
    }
  }
  h->next = sr_py_handlers;
  if (sr_py_handlers) sr_py_handlers->prev = h;
  sr_py_handlers = h;
  return h;
}

static void sr_py_handler_unref(sr_py_handler *h) {
  if (h && --h->refs == 0) {
    sr_py_nhandlers--;
    free(h);
  }
}

/* Drops one Python reference of an uninstalled handler: parked in the
 * graveyard when there is one, so no Python code (a wrapper's finalizer)
 * runs while the caller walks the handler list. */
static void sr_py_bury(PyObject *o, PyObject *grave) {
  if (!o) return;
  if (grave && PyList_Append(grave, o) < 0) PyErr_Clear();
  Py_DECREF(o);
}

/* Uninstalls h: clears the C delegate, drops the C reference and the
 * Python objects. */
static void sr_py_uninstall(sr_py_handler *h, PyObject *grave) {
  if (!h->installed) return;
  h->installed = 0;
  if (h->prev) h->prev->next = h->next;
  else sr_py_handlers = h->next;
  if (h->next) h->next->prev = h->prev;
  h->prev = h->next = NULL;
  switch (h->kind) {
  case SR_PY_UA:
    sr_ua_set_delegate(h->obj, NULL, NULL);
    sr_ua_unref(h->obj);
    break;
  case SR_PY_HOOK:
    sr_ua_set_message_hook(h->obj, NULL, NULL);
    sr_ua_unref(h->obj);
    break;
  case SR_PY_SESSION:
    sr_session_set_delegate(h->obj, NULL, NULL);
    sr_session_unref(h->obj);
    break;
  case SR_PY_REFERRER:
    sr_referrer_unref(h->obj); /* NULL-safe */
    break;
  }
  h->obj = NULL;
  PyObject *fn = h->fn, *ref = h->ref, *keep = h->keep;
  PyObject *state_fn = h->state_fn, *response_fn = h->response_fn;
  PyObject *ended_list = h->ended_list, *ended_item = h->ended_item;
  h->fn = h->ref = h->keep = h->state_fn = h->response_fn = NULL;
  h->ended_list = h->ended_item = NULL;
  sr_py_bury(ended_list, grave);
  sr_py_bury(ended_item, grave);
  sr_py_bury(fn, grave);
  sr_py_bury(ref, grave);
  sr_py_bury(keep, grave);
  sr_py_bury(state_fn, grave);
  sr_py_bury(response_fn, grave);
  sr_py_handler_unref(h);
}

/* A callback failed: its exception is queued, the loop stops. */
static void sr_py_fail(sr_py_handler *h) {
  sr_py_store_error();
  sr_ua_callback_error(h->ua);
}

/* The wrapper a handler calls (new reference), or NULL when it is gone or
 * the handler was uninstalled. */
static PyObject *sr_py_target(sr_py_handler *h) {
  if (h->keep) {
    Py_INCREF(h->keep);
    return h->keep;
  }
  if (!h->ref) return NULL;
#if PY_VERSION_HEX >= 0x030D0000
  PyObject *o = NULL;
  if (PyWeakref_GetRef(h->ref, &o) < 0) PyErr_Clear();
  return o;
#else
  PyObject *o = PyWeakref_GetObject(h->ref); /* borrowed */
  if (!o || o == Py_None) return NULL;
  Py_INCREF(o);
  return o;
#endif
}

/* How an event reaches Python: it calls the user's callback attribute
 * itself, obj.on_state(state), or nothing when it is None: no Python frame
 * of ours in between. One that brings a new C object passes its wrapper,
 * made in C with the UA reference obj has: obj._on_invite(invitation).
 * A result that may be awaitable goes to obj._settle(result) (a coroutine
 * becomes an asyncio task). A REFER policy calls a method,
 * obj._ev_policy(ptr), which checks the answer. */
typedef enum sr_py_ev {
  SR_PY_EV_POLICY,                                 /* a method */
  SR_PY_EV_INVITE, SR_PY_EV_REFER,                 /* given a new wrapper */
  SR_PY_EV_STATE, SR_PY_EV_RESPONSE, SR_PY_EV_BYE, /* callbacks */
  SR_PY_EV_ACCEPT, SR_PY_EV_REJECT, SR_PY_EV_NOTIFY, SR_PY_EV_CLOSED,
  SR_PY_EV_SETTLE,
  SR_PY_ATTR_SELF_REF, SR_PY_ATTR_UA_REF, /* not events: attribute names */
  SR_PY_NEV
} sr_py_ev;

static const char *const sr_py_ev_names[SR_PY_NEV] = {
    "_ev_policy", "_on_invite", "_on_refer", "on_state",  "on_response",
    "on_bye",     "on_accept",  "on_reject", "on_notify", "on_closed",
    "_settle",    "_self_ref",  "_ua_ref"};
static PyObject *sr_py_ev_str[SR_PY_NEV]; /* interned on first use */
static PyObject *sr_py_states;            /* SessionState members by value */

static PyObject *sr_py_name(sr_py_ev ev) {
  if (!sr_py_ev_str[ev])
    sr_py_ev_str[ev] = PyUnicode_InternFromString(sr_py_ev_names[ev]);
  return sr_py_ev_str[ev];
}

/* A session state as the SessionState member (a plain int before the
 * package registered them). */
static PyObject *sr_py_state(int st) {
  if (sr_py_states && st >= 0 && st < PyTuple_GET_SIZE(sr_py_states)) {
    PyObject *o = PyTuple_GET_ITEM(sr_py_states, st);
    Py_INCREF(o);
    return o;
  }
  return PyLong_FromLong(st);
}

/* Results that are surely not awaitable: no need to ask Python. */
static int sr_py_plain(PyObject *r) {
  return r == Py_None || PyBool_Check(r) || PyLong_CheckExact(r) ||
         PyUnicode_CheckExact(r);
}

/* A callback's result r (stolen): one that may be awaitable goes to
 * obj._settle(r). */
static PyObject *sr_py_settle(PyObject *obj, PyObject *r) {
  if (!r || sr_py_plain(r)) return r;
  PyObject *name = sr_py_name(SR_PY_EV_SETTLE), *argv[2] = {obj, r};
  PyObject *s = name ? PyObject_VectorcallMethod(name, argv, 2, NULL) : NULL;
  Py_DECREF(r);
  return s;
}

/* Calls obj.<callback>(*args) for ev, if set, and settles its result. */
static PyObject *sr_py_callback(PyObject *obj, sr_py_ev ev, PyObject **args,
                                size_t n) {
  PyObject *cb = PyObject_GetAttr(obj, sr_py_ev_str[ev]);
  if (!cb || cb == Py_None) return cb;
  PyObject *r = PyObject_Vectorcall(cb, args, n, NULL);
  Py_DECREF(cb);
  return sr_py_settle(obj, r);
}

/* python_natives.i */
static PyObject *sr_py_wrap_session(PyObject *, PyObject *const *, size_t,
                                    PyObject *);
static PyObject *sr_py_wrap_referral(PyObject *, PyObject *const *, size_t,
                                     PyObject *);

/* Calls obj.<callback>(wrapper of ptr) for an event that brings a new C
 * object (an INVITE's session, a REFER's referral), if set, and settles
 * its result. The wrapper gets the UA reference obj has: a UA's
 * _self_ref, a session's _ua_ref. */
static PyObject *sr_py_new_object(sr_py_handler *h, PyObject *obj,
                                  sr_py_ev ev, PyObject *ptr) {
  PyObject *cb = PyObject_GetAttr(obj, sr_py_ev_str[ev]);
  if (!cb || cb == Py_None) return cb;
  PyObject *name = sr_py_name(h->kind == SR_PY_UA ? SR_PY_ATTR_SELF_REF
                                                  : SR_PY_ATTR_UA_REF);
  PyObject *ua_ref = name ? PyObject_GetAttr(obj, name) : NULL, *w = NULL;
  if (ua_ref && ev == SR_PY_EV_INVITE) {
    PyObject *a[3] = {ptr, Py_False, ua_ref};
    w = sr_py_wrap_session(NULL, a, 3, NULL);
  } else if (ua_ref) {
    PyObject *a[2] = {ptr, ua_ref};
    w = sr_py_wrap_referral(NULL, a, 2, NULL);
  }
  Py_XDECREF(ua_ref);
  PyObject *r = w ? PyObject_Vectorcall(cb, &w, 1, NULL) : NULL;
  Py_XDECREF(w);
  Py_DECREF(cb);
  return sr_py_settle(obj, r);
}

/* Delivers ev to h's wrapper with argv[1..n] (references stolen; a NULL
 * one means building it failed; argv[0] is the slot for the wrapper).
 * Returns the result (new reference), None when the wrapper is gone, or
 * NULL after queueing the error and stopping the loop. Any error already
 * set by the caller is kept aside. */
static PyObject *sr_py_event(sr_py_handler *h, sr_py_ev ev, PyObject **argv,
                             size_t n) {
  PyObject *st, *sv, *stb, *r = NULL;
  for (size_t i = 1; i <= n; i++)
    if (!argv[i]) { /* its error is the current one */
      for (size_t j = 1; j <= n; j++) Py_XDECREF(argv[j]);
      sr_py_fail(h);
      return NULL;
    }
  PyErr_Fetch(&st, &sv, &stb);
  if (sr_py_name(ev)) {
    PyObject *obj = sr_py_target(h); /* it may uninstall its own handler */
    if (!obj) {
      r = Py_None;
      Py_INCREF(r);
    } else if (ev == SR_PY_EV_POLICY) {
      argv[0] = obj;
      r = PyObject_VectorcallMethod(sr_py_ev_str[ev], argv, n + 1, NULL);
    } else if (ev == SR_PY_EV_INVITE || ev == SR_PY_EV_REFER) {
      r = sr_py_new_object(h, obj, ev, argv[1]);
    } else {
      r = sr_py_callback(obj, ev, argv + 1, n);
    }
    Py_XDECREF(obj);
  }
  for (size_t i = 1; i <= n; i++) Py_XDECREF(argv[i]);
  if (!r) sr_py_fail(h);
  PyErr_Restore(st, sv, stb);
  return r;
}

/* An event whose result does not matter, with up to three arguments. */
static void sr_py_notify(sr_py_handler *h, sr_py_ev ev, size_t n, PyObject *a,
                         PyObject *b, PyObject *c) {
  PyObject *argv[4] = {NULL, a, b, c};
  Py_XDECREF(sr_py_event(h, ev, argv, n));
}

/* ---------------- trampolines: UA ---------------- */

static void sr_py_ua_on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  PyGILState_STATE g = PyGILState_Ensure();
  sr_py_handler *h = ud;
  h->refs++;
  sr_py_notify(h, SR_PY_EV_INVITE, 1, sr_py_ptr(inv, SWIGTYPE_p_sr_session),
               NULL, NULL);
  sr_py_handler_unref(h);
  PyGILState_Release(g);
}

static void sr_py_ua_on_refer(sr_ua *ua, sr_referral *r, void *ud) {
  (void)ua;
  PyGILState_STATE g = PyGILState_Ensure();
  sr_py_handler *h = ud;
  h->refs++;
  sr_py_notify(h, SR_PY_EV_REFER, 1, sr_py_ptr(r, SWIGTYPE_p_sr_referral),
               NULL, NULL);
  sr_py_handler_unref(h);
  PyGILState_Release(g);
}

/* A policy that raised answers 500: a failed check must not allow. */
static int sr_py_ua_on_policy(sr_ua *ua, sr_referral *r, void *ud) {
  (void)ua;
  int code = 500;
  PyGILState_STATE g = PyGILState_Ensure();
  sr_py_handler *h = ud;
  h->refs++;
  PyObject *argv[2] = {NULL, sr_py_ptr(r, SWIGTYPE_p_sr_referral)};
  PyObject *res = sr_py_event(h, SR_PY_EV_POLICY, argv, 1);
  if (res) {
    PyObject *st, *sv, *stb;
    PyErr_Fetch(&st, &sv, &stb);
    if (res == Py_None) {
      code = 0;
    } else {
      long v = PyLong_AsLong(res);
      if (v == -1 && PyErr_Occurred()) {
        sr_py_fail(h);
      } else if (v == 0 || (v >= 300 && v <= 699)) {
        code = (int)v;
      } else {
        PyErr_Format(PyExc_ValueError,
                     "on_refer_policy returned %ld: not 0/None or 300-699", v);
        sr_py_fail(h);
      }
    }
    PyErr_Restore(st, sv, stb);
    Py_DECREF(res);
  }
  sr_py_handler_unref(h);
  PyGILState_Release(g);
  return code;
}

static void sr_py_ua_delegate(unsigned flags, sr_ua_delegate *d) {
  memset(d, 0, sizeof *d);
  if (flags & SR_PY_UA_INVITE) d->on_invite = sr_py_ua_on_invite;
  if (flags & SR_PY_UA_REFER) d->on_refer = sr_py_ua_on_refer;
  if (flags & SR_PY_UA_POLICY) d->on_refer_policy = sr_py_ua_on_policy;
}

/* ---------------- trampolines: session ---------------- */

/* 1 when h's wrapper's callback for ev is still the one fn (a weak
 * reference) refers to (sr_py_session_filter): an event it does not want
 * may be skipped. Anything else (another callable, a failed lookup)
 * delivers as usual. */
static int sr_py_filtered(sr_py_handler *h, sr_py_ev ev, PyObject *fn) {
  if (!fn) return 0;
  PyObject *obj = sr_py_target(h);
  if (!obj) return 0;
  PyObject *st, *sv, *stb;
  PyErr_Fetch(&st, &sv, &stb);
  PyObject *cb = sr_py_name(ev) ? PyObject_GetAttr(obj, sr_py_ev_str[ev]) : NULL;
#if PY_VERSION_HEX >= 0x030D0000
  PyObject *want = NULL;
  if (PyWeakref_GetRef(fn, &want) < 0) PyErr_Clear();
  int same = cb && cb == want;
  Py_XDECREF(want);
#else
  int same = cb && cb == PyWeakref_GetObject(fn); /* borrowed */
#endif
  Py_XDECREF(cb);
  Py_DECREF(obj);
  PyErr_Clear();
  PyErr_Restore(st, sv, stb);
  return same;
}

static _Thread_local int sr_py_break; /* sr_py_loop_break() was called */

/* A call of the agent ended: on its list, marked ended (its on_state does
 * not see TERMINATED, see agent.Call), unless the agent already did. */
static void sr_py_ended(sr_py_handler *h) {
  static PyObject *ended;
  if (!ended && !(ended = PyUnicode_InternFromString("ended"))) {
    sr_py_fail(h);
    return;
  }
  PyObject *was = PyObject_GetAttr(h->ended_item, ended);
  if (was) Py_DECREF(was); /* (only compared: it is Py_True or not) */
  if (!was || (was != Py_True &&
               (PyList_Append(h->ended_list, h->ended_item) < 0 ||
                PyObject_SetAttr(h->ended_item, ended, Py_True) < 0))) {
    sr_py_fail(h);
    return;
  }
  if (PyList_GET_SIZE(h->ended_list) >= h->ended_batch) sr_py_break = 1;
}

static void sr_py_s_on_state(sr_session *s, sr_session_state st, void *ud) {
  (void)s;
  PyGILState_STATE g = PyGILState_Ensure();
  sr_py_handler *h = ud;
  h->refs++;
  if (st == SR_SESSION_TERMINATED && h->ended_list) sr_py_ended(h);
  if (!(h->state_fn && (unsigned)st < 32 && (h->state_mask >> st & 1u) == 0 &&
        sr_py_filtered(h, SR_PY_EV_STATE, h->state_fn)))
    sr_py_notify(h, SR_PY_EV_STATE, 1, sr_py_state((int)st), NULL, NULL);
  if (st == SR_SESSION_TERMINATED) sr_py_uninstall(h, NULL); /* closed */
  sr_py_handler_unref(h);
  PyGILState_Release(g);
}

static void sr_py_s_on_response(sr_session *s, int code, const char *reason,
                                void *ud) {
  (void)s;
  PyGILState_STATE g = PyGILState_Ensure();
  sr_py_handler *h = ud;
  h->refs++;
  if (!(h->response_fn && code < h->min_code &&
        sr_py_filtered(h, SR_PY_EV_RESPONSE, h->response_fn)))
    sr_py_notify(h, SR_PY_EV_RESPONSE, 2, PyLong_FromLong(code),
                 sr_py_text(reason), NULL);
  sr_py_handler_unref(h);
  PyGILState_Release(g);
}

static void sr_py_s_on_refer(sr_session *s, sr_referral *r, void *ud) {
  (void)s;
  PyGILState_STATE g = PyGILState_Ensure();
  sr_py_handler *h = ud;
  h->refs++;
  sr_py_notify(h, SR_PY_EV_REFER, 1, sr_py_ptr(r, SWIGTYPE_p_sr_referral),
               NULL, NULL);
  sr_py_handler_unref(h);
  PyGILState_Release(g);
}

static void sr_py_s_on_bye(sr_session *s, void *ud) {
  (void)s;
  PyGILState_STATE g = PyGILState_Ensure();
  sr_py_handler *h = ud;
  h->refs++;
  sr_py_notify(h, SR_PY_EV_BYE, 0, NULL, NULL, NULL);
  sr_py_handler_unref(h);
  PyGILState_Release(g);
}

static void sr_py_session_delegate(unsigned flags, sr_session_delegate *d) {
  memset(d, 0, sizeof *d);
  d->on_state = sr_py_s_on_state;
  d->on_response = sr_py_s_on_response;
  d->on_bye = sr_py_s_on_bye;
  if (flags & SR_PY_SESSION_REFER) d->on_refer = sr_py_s_on_refer;
}

/* ---------------- trampolines: referrer ---------------- */

/* The first callback may come before sr_session_refer returns. */
static void sr_py_r_adopt(sr_py_handler *h, sr_referrer *r) {
  if (h->installed && !h->obj) h->obj = sr_referrer_ref(r);
}

static void sr_py_r_event(sr_referrer *r, sr_py_ev ev, size_t n, int code,
                          const char *reason, const char *sub_state,
                          void *ud) {
  PyGILState_STATE g = PyGILState_Ensure();
  sr_py_handler *h = ud;
  h->refs++;
  sr_py_r_adopt(h, r);
  if (n == 0)
    sr_py_notify(h, ev, 0, NULL, NULL, NULL);
  else
    sr_py_notify(h, ev, n, PyLong_FromLong(code), sr_py_text(reason),
                 n > 2 ? sr_py_text(sub_state) : NULL);
  if (ev == SR_PY_EV_CLOSED) sr_py_uninstall(h, NULL); /* nothing follows */
  sr_py_handler_unref(h);
  PyGILState_Release(g);
}

static void sr_py_r_on_accept(sr_referrer *r, int code, const char *reason,
                              void *ud) {
  sr_py_r_event(r, SR_PY_EV_ACCEPT, 2, code, reason, NULL, ud);
}

static void sr_py_r_on_reject(sr_referrer *r, int code, const char *reason,
                              void *ud) {
  sr_py_r_event(r, SR_PY_EV_REJECT, 2, code, reason, NULL, ud);
}

static void sr_py_r_on_notify(sr_referrer *r, int code, const char *reason,
                              const char *sub_state, void *ud) {
  sr_py_r_event(r, SR_PY_EV_NOTIFY, 3, code, reason, sub_state, ud);
}

static void sr_py_r_on_closed(sr_referrer *r, void *ud) {
  sr_py_r_event(r, SR_PY_EV_CLOSED, 0, 0, NULL, NULL, ud);
}

static const sr_referrer_delegate sr_py_referrer_delegate = {
    sr_py_r_on_accept, sr_py_r_on_reject, sr_py_r_on_notify,
    sr_py_r_on_closed};

/* ---------------- trampolines: message hook, log ---------------- */

static int sr_py_on_message(int outgoing, sr_transport tp, const char *local,
                            const char *remote, const char *data, size_t len,
                            void *ud) {
  int drop = 0;
  PyGILState_STATE g = PyGILState_Ensure();
  sr_py_handler *h = ud;
  h->refs++;
  PyObject *st, *sv, *stb, *res = NULL;
  PyErr_Fetch(&st, &sv, &stb);
  PyObject *args = Py_BuildValue("(NiNNy#)", PyBool_FromLong(outgoing),
                                 (int)tp, sr_py_text(local),
                                 sr_py_text(remote), data, (Py_ssize_t)len);
  if (args && h->fn) {
    PyObject *fn = h->fn;
    Py_INCREF(fn); /* the hook may remove itself */
    res = PyObject_CallObject(fn, args);
    Py_DECREF(fn);
  } else if (args) {
    res = Py_None;
    Py_INCREF(res);
  }
  Py_XDECREF(args);
  if (res) {
    drop = PyObject_IsTrue(res);
    Py_DECREF(res);
  }
  if (!res || drop < 0) {
    drop = 0;
    sr_py_fail(h);
  }
  PyErr_Restore(st, sv, stb);
  sr_py_handler_unref(h);
  PyGILState_Release(g);
  return drop;
}

/* The core logs from any call, possibly while Python is shutting down. */
static void sr_py_on_log(int level, const char *msg, void *ud) {
  (void)ud;
  if (!Py_IsInitialized()) return;
  PyGILState_STATE g = PyGILState_Ensure();
  if (sr_py_log_fn) {
    PyObject *st, *sv, *stb;
    PyErr_Fetch(&st, &sv, &stb);
    PyObject *res = PyObject_CallFunction(sr_py_log_fn, "iN", level,
                                          sr_py_text(msg));
    if (res) Py_DECREF(res);
    else PyErr_WriteUnraisable(sr_py_log_fn); /* a bug in our log shim */
    PyErr_Restore(st, sv, stb);
  }
  PyGILState_Release(g);
}

/* ---------------- the loop's wait ---------------- */

/* The GIL is released around the one blocking system call of
 * sr_ua_run_once (sr_ua_set_wait_hooks): the wait and the turn are one
 * call. Any thread may drive a UA, hence a thread state per thread; the
 * pair never nests (no callback runs between the two). */
static _Thread_local PyThreadState *sr_py_wait_ts;

static void sr_py_wait_before(void *ud) {
  (void)ud;
  sr_py_wait_ts = PyEval_SaveThread();
}

static void sr_py_wait_after(void *ud) {
  (void)ud;
  PyThreadState *ts = sr_py_wait_ts;
  sr_py_wait_ts = NULL;
  PyEval_RestoreThread(ts);
}

/* A signal wake-up descriptor (signal.set_wakeup_fd) only ends the wait:
 * its bytes are read here, the signal's Python handler runs once
 * run_once returns. One read per turn: it stays readable while more
 * bytes wait. A closed or broken one is dropped rather than spun on. */
static _Thread_local int sr_py_woken; /* a wake-up descriptor was read */

static void sr_py_drain(sr_ua *ua, int fd, void *ud) {
  (void)ud;
  sr_py_woken = 1;
  char buf[64];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                 errno != EINTR))
    sr_ua_unwatch_fd(ua, fd);
}

/* ---------------- option dicts ---------------- */

/* Checks that every key of d is one of names (NULL-terminated). */
static int sr_py_opt_keys(PyObject *d, const char *what,
                          const char *const *names) {
  PyObject *k, *v;
  Py_ssize_t pos = 0;
  while (PyDict_Next(d, &pos, &k, &v)) {
    const char *ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8(k) : NULL;
    int ok = 0;
    for (const char *const *n = names; ks && *n; n++)
      if (strcmp(ks, *n) == 0) ok = 1;
    if (!ok) {
      if (!PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "unknown %s option %R", what, k);
      return -1;
    }
  }
  return 0;
}

/* String option: absent or None leaves *out; the text lives as long as d. */
static int sr_py_opt_str(PyObject *d, const char *key, const char **out) {
  PyObject *v = PyDict_GetItemString(d, key);
  if (!v || v == Py_None) return 0;
  if (!PyUnicode_Check(v)) {
    PyErr_Format(PyExc_TypeError, "option %s must be a str", key);
    return -1;
  }
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(v, &n);
  if (!s) return -1;
  if ((size_t)n != strlen(s)) {
    PyErr_Format(PyExc_ValueError, "option %s contains a NUL character", key);
    return -1;
  }
  *out = s;
  return 0;
}

static int sr_py_opt_long(PyObject *d, const char *key, long lo, long hi,
                          long *out) {
  PyObject *v = PyDict_GetItemString(d, key);
  if (!v || v == Py_None) return 0;
  long x = PyLong_AsLong(v);
  if (x == -1 && PyErr_Occurred()) return -1;
  if (x < lo || x > hi) {
    PyErr_Format(PyExc_ValueError, "option %s out of range: %ld", key, x);
    return -1;
  }
  *out = x;
  return 0;
}

static int sr_py_opt_int(PyObject *d, const char *key, int *out) {
  long x = *out;
  if (sr_py_opt_long(d, key, -0x7fffffffL, 0x7fffffffL, &x) < 0) return -1;
  *out = (int)x;
  return 0;
}

static int sr_py_fill_ua(PyObject *d, sr_ua_options *o) {
  static const char *const names[] = {
      "uri", "display_name", "user_agent", "username", "password",
      "outbound_proxy", "t1_ms",
      "t2_ms", "t4_ms", "max_message_size", "log_level",
      "allow_out_of_dialog_refer", "allowed_schemes",
      "refer_decision_timeout_ms", "refer_expires_s",
      "notify_mode", "max_sessions", "max_referrals",
      "max_referrals_per_session", "max_tcp_connections",
      "tcp_idle_timeout_ms", "udp_receive_buffer", NULL};
  long size = (long)o->max_message_size, mode = o->notify_mode;
  if (sr_py_opt_keys(d, "user agent", names) < 0 ||
      sr_py_opt_str(d, "uri", &o->uri) < 0 ||
      sr_py_opt_str(d, "display_name", &o->display_name) < 0 ||
      sr_py_opt_str(d, "user_agent", &o->user_agent) < 0 ||
      sr_py_opt_str(d, "username", &o->username) < 0 ||
      sr_py_opt_str(d, "password", &o->password) < 0 ||
      sr_py_opt_str(d, "outbound_proxy", &o->outbound_proxy) < 0 ||
      sr_py_opt_int(d, "t1_ms", &o->t1_ms) < 0 ||
      sr_py_opt_int(d, "t2_ms", &o->t2_ms) < 0 ||
      sr_py_opt_int(d, "t4_ms", &o->t4_ms) < 0 ||
      sr_py_opt_long(d, "max_message_size", 0, 0x7fffffffL, &size) < 0 ||
      sr_py_opt_int(d, "log_level", &o->log_level) < 0 ||
      sr_py_opt_int(d, "allow_out_of_dialog_refer",
                    &o->allow_out_of_dialog_refer) < 0 ||
      sr_py_opt_str(d, "allowed_schemes", &o->allowed_schemes) < 0 ||
      sr_py_opt_int(d, "refer_decision_timeout_ms",
                    &o->refer_decision_timeout_ms) < 0 ||
      sr_py_opt_int(d, "refer_expires_s", &o->refer_expires_s) < 0 ||
      sr_py_opt_long(d, "notify_mode", SR_NOTIFY_ALL, SR_NOTIFY_NONE,
                     &mode) < 0 ||
      sr_py_opt_int(d, "max_sessions", &o->max_sessions) < 0 ||
      sr_py_opt_int(d, "max_referrals", &o->max_referrals) < 0 ||
      sr_py_opt_int(d, "max_referrals_per_session",
                    &o->max_referrals_per_session) < 0 ||
      sr_py_opt_int(d, "max_tcp_connections", &o->max_tcp_connections) < 0 ||
      sr_py_opt_int(d, "tcp_idle_timeout_ms", &o->tcp_idle_timeout_ms) < 0 ||
      sr_py_opt_int(d, "udp_receive_buffer", &o->udp_receive_buffer) < 0)
    return -1;
  o->max_message_size = (size_t)size;
  o->notify_mode = (sr_notify_mode)mode;
  return 0;
}

static int sr_py_fill_response(PyObject *d, sr_response_options *o) {
  static const char *const names[] = {"status_code", "reason_phrase",
                                      "extra_headers", "body",
                                      "content_type", NULL};
  if (sr_py_opt_keys(d, "response", names) < 0 ||
      sr_py_opt_int(d, "status_code", &o->status_code) < 0 ||
      sr_py_opt_str(d, "reason_phrase", &o->reason_phrase) < 0 ||
      sr_py_opt_str(d, "extra_headers", &o->extra_headers) < 0 ||
      sr_py_opt_str(d, "body", &o->body) < 0 ||
      sr_py_opt_str(d, "content_type", &o->content_type) < 0)
    return -1;
  return 0;
}

static int sr_py_fill_inviter(PyObject *d, sr_inviter_options *o) {
  static const char *const names[] = {"extra_headers", "body", "content_type",
                                      "from_display_name", "transport", NULL};
  long tp = o->transport;
  if (sr_py_opt_keys(d, "inviter", names) < 0 ||
      sr_py_opt_str(d, "extra_headers", &o->extra_headers) < 0 ||
      sr_py_opt_str(d, "body", &o->body) < 0 ||
      sr_py_opt_str(d, "content_type", &o->content_type) < 0 ||
      sr_py_opt_str(d, "from_display_name", &o->from_display_name) < 0 ||
      sr_py_opt_long(d, "transport", SR_TRANSPORT_AUTO, SR_TRANSPORT_TCP,
                     &tp) < 0)
    return -1;
  o->transport = (sr_transport)tp;
  return 0;
}

static int sr_py_fill_refer(PyObject *d, sr_refer_options *o) {
  static const char *const names[] = {"extra_headers", "refer_sub",
                                      "bye_on_success", NULL};
  if (sr_py_opt_keys(d, "refer", names) < 0 ||
      sr_py_opt_str(d, "extra_headers", &o->extra_headers) < 0 ||
      sr_py_opt_int(d, "refer_sub", &o->refer_sub) < 0 ||
      sr_py_opt_int(d, "bye_on_success", &o->bye_on_success) < 0)
    return -1;
  return 0;
}
%}

/* Every const char * argument: a str (None for NULL), refused when it holds
 * a NUL (SWIG's own conversion would pass the text cut short there). */
%typemap(in) const char * {
  if ($input == Py_None) {
    $1 = NULL;
  } else {
    Py_ssize_t n_;
    if (!PyUnicode_Check($input)) {
      PyErr_Format(PyExc_TypeError, "%s() argument '%s' must be a str, not %s",
                   "$symname", "$1_name", Py_TYPE($input)->tp_name);
      SWIG_fail;
    }
    $1 = ($1_ltype)PyUnicode_AsUTF8AndSize($input, &n_);
    if (!$1) SWIG_fail;
    if ((size_t)n_ != strlen($1)) {
      PyErr_Format(PyExc_ValueError, "%s() argument '%s' contains a NUL "
                   "character", "$symname", "$1_name");
      SWIG_fail;
    }
  }
}
%typemap(freearg) const char * ""  /* borrowed from the str */
%typemap(typecheck, precedence=SWIG_TYPECHECK_STRING) const char *
  "$1 = $input == Py_None || PyUnicode_Check($input);";

/* Options: None (NULL), a dict (copied for the call, so a callback that
 * mutates the caller's dict cannot free strings the C call still uses), or
 * the SWIG proxy of the struct. */
%define SR_PY_OPTIONS(TYPE, INIT, FILL)
%typemap(in) const TYPE * (TYPE tmp, PyObject *copy = NULL) {
  if ($input == Py_None) {
    $1 = NULL;
  } else if (PyDict_Check($input)) {
    copy = PyDict_Copy($input);
    if (!copy) SWIG_fail;
    INIT(&tmp);
    if (FILL(copy, &tmp) < 0) SWIG_fail;
    $1 = &tmp;
  } else {
    void *p = NULL;
    if (!SWIG_IsOK(SWIG_ConvertPtr($input, &p, $1_descriptor, 0)))
      SWIG_exception_fail(SWIG_TypeError, "expected None, a dict or " #TYPE);
    $1 = ($1_ltype)p;
  }
}
%typemap(freearg) const TYPE * { Py_XDECREF(copy$argnum); }
%enddef

SR_PY_OPTIONS(sr_ua_options, sr_ua_options_init, sr_py_fill_ua)
SR_PY_OPTIONS(sr_response_options, sr_response_options_init, sr_py_fill_response)
SR_PY_OPTIONS(sr_inviter_options, sr_inviter_options_init, sr_py_fill_inviter)
SR_PY_OPTIONS(sr_refer_options, sr_refer_options_init, sr_py_fill_refer)

/* Out-parameters: the function returns [rc, pointer or None]. */
%define SR_PY_OUT(TYPE)
%typemap(in, numinputs=0) TYPE **out (TYPE *tmp = NULL) { $1 = &tmp; }
%typemap(argout) TYPE **out {
  $result = SWIG_Python_AppendOutput($result,
                                     SWIG_NewPointerObj(*$1, $*1_descriptor, 0));
}
%enddef
SR_PY_OUT(sr_ua)
SR_PY_OUT(sr_session)
SR_PY_OUT(sr_referrer)

/* sr_global_stats / sr_ua_get_stats: a new sr_stats instead of an out arg. */
%typemap(in, numinputs=0) sr_stats *out (sr_stats tmp) {
  memset(&tmp, 0, sizeof tmp);
  $1 = &tmp;
}
%typemap(argout) sr_stats *out {
  sr_stats *copy = (sr_stats *)malloc(sizeof *copy);
  if (!copy) SWIG_exception_fail(SWIG_MemoryError, "out of memory");
  *copy = *$1;
  $result = SWIG_Python_AppendOutput($result,
                                     SWIG_NewPointerObj(copy, $1_descriptor, SWIG_POINTER_OWN));
}

/* The C callback members are set by the helpers below, not from Python;
 * string members are read-only on the struct proxies (a setter would have
 * to copy and leak the text): pass a dict instead. */
%immutable sr_ua_options::log_fn;
%immutable sr_ua_options::log_user_data;
%immutable sr_ua_options::uri;
%immutable sr_ua_options::display_name;
%immutable sr_ua_options::user_agent;
%immutable sr_ua_options::username;
%immutable sr_ua_options::password;
%immutable sr_ua_options::outbound_proxy;
%immutable sr_ua_options::allowed_schemes;
%immutable sr_response_options::reason_phrase;
%immutable sr_response_options::extra_headers;
%immutable sr_response_options::body;
%immutable sr_response_options::content_type;
%immutable sr_inviter_options::extra_headers;
%immutable sr_inviter_options::body;
%immutable sr_inviter_options::content_type;
%immutable sr_inviter_options::from_display_name;
%immutable sr_refer_options::extra_headers;

typedef struct sr_py_handler sr_py_handler;

%constant int SR_PY_UA_INVITE = SR_PY_UA_INVITE;
%constant int SR_PY_UA_REFER = SR_PY_UA_REFER;
%constant int SR_PY_UA_POLICY = SR_PY_UA_POLICY;
%constant int SR_PY_SESSION_REFER = SR_PY_SESSION_REFER;

%inline %{
/** sr_ua_new with the core's log routed to sr_py_set_log_handler's callable. */
int sr_py_ua_new(sr_ua **out, const sr_ua_options *opts) {
  sr_ua_options o;
  if (!opts) sr_ua_options_init(&o);
  else o = *opts;
  o.log_fn = sr_py_on_log;
  o.log_user_data = NULL;
  int rc = sr_ua_new(out, &o);
  if (rc == 0) sr_ua_set_wait_hooks(*out, sr_py_wait_before, sr_py_wait_after,
                                    NULL);
  return rc;
}

/** The callable fn(level, message) that receives every UA's log lines. */
void sr_py_set_log_handler(PyObject *fn) {
  PyObject *old = sr_py_log_fn;
  sr_py_log_fn = NULL;
  if (fn && fn != Py_None) {
    Py_INCREF(fn);
    sr_py_log_fn = fn;
  }
  Py_XDECREF(old);
}

/**
 * Installs the UA's handler, which calls the wrapper obj (held weakly):
 * obj._on_invite(invitation), obj._on_refer(referral),
 * obj._ev_policy(referral_ptr) -> None/0/300-699. flags (SR_PY_UA_*)
 * select the members set; the others keep the C defaults. Returns the
 * handler (one reference for the caller), or None.
 */
sr_py_handler *sr_py_ua_set_handler(sr_ua *ua, PyObject *obj, int flags) {
  if (!ua || sr_ua_fd(ua) < 0) return NULL;
  for (sr_py_handler *h = sr_py_handlers; h; h = h->next)
    if (h->kind == SR_PY_UA && h->obj == ua) {
      sr_py_uninstall(h, NULL);
      break;
    }
  sr_py_handler *h = sr_py_handler_new(SR_PY_UA, ua, obj, 0, 2);
  if (!h) {
    PyErr_Clear();
    return NULL;
  }
  h->obj = sr_ua_ref(ua);
  h->flags = (unsigned)flags;
  sr_ua_delegate d;
  sr_py_ua_delegate(h->flags, &d);
  sr_ua_set_delegate(ua, &d, h);
  return h;
}

/**
 * Installs the session's handler, which calls the wrapper obj's callbacks
 * (held strongly while keep, see sr_py_handler_keep): obj.on_state(st),
 * obj.on_response(code, reason), obj._on_refer(referral), obj.on_bye().
 * Dropped after Terminated. None when the session ended or its UA closed.
 */
sr_py_handler *sr_py_session_set_handler(sr_session *s, PyObject *obj,
                                         int keep, int flags) {
  sr_ua *ua = sr_session_get_ua(s);
  if (!s || !ua || sr_session_get_state(s) == SR_SESSION_TERMINATED)
    return NULL;
  sr_py_handler *h = sr_py_handler_new(SR_PY_SESSION, ua, obj, keep, 2);
  if (!h) {
    PyErr_Clear();
    return NULL;
  }
  h->obj = sr_session_ref(s);
  h->flags = (unsigned)flags;
  sr_session_delegate d;
  sr_py_session_delegate(h->flags, &d);
  sr_session_set_delegate(s, &d, h);
  return h;
}

/** Changes which optional members are set. 0, or SR_ECLOSED once dropped. */
int sr_py_handler_set_flags(sr_py_handler *h, int flags) {
  if (!h) return SR_EINVAL;
  if (!h->installed) return SR_ECLOSED;
  h->flags = (unsigned)flags;
  if (h->kind == SR_PY_UA) {
    sr_ua_delegate d;
    sr_py_ua_delegate(h->flags, &d);
    sr_ua_set_delegate(h->obj, &d, h);
  } else if (h->kind == SR_PY_SESSION) {
    sr_session_delegate d;
    sr_py_session_delegate(h->flags, &d);
    sr_session_set_delegate(h->obj, &d, h);
  }
  return 0;
}

/**
 * Whether the handler holds its wrapper strongly: obj (the wrapper) while
 * its callbacks are still to fire (a live call), None when nothing else
 * should keep it (an Inviter never invited). 0, or SR_ECLOSED once
 * dropped (the handler holds nothing then).
 */
int sr_py_handler_keep(sr_py_handler *h, PyObject *obj) {
  if (!h) return SR_EINVAL;
  if (!h->installed) return SR_ECLOSED;
  PyObject *old = h->keep;
  h->keep = NULL;
  if (obj != Py_None) {
    Py_INCREF(obj);
    h->keep = obj;
  }
  Py_XDECREF(old);
  return 0;
}

/**
 * Events of a session nobody needs, for a wrapper whose callbacks are the
 * package's own (the agent's): while the session's on_state is state_fn,
 * states outside state_mask (bits 1 << state) are not delivered; while its
 * on_response is response_fn, codes below min_code are not. None for
 * either delivers all. 0, or SR_ECLOSED once dropped.
 */
int sr_py_session_filter(sr_py_handler *h, PyObject *state_fn, int state_mask,
                         PyObject *response_fn, int min_code) {
  if (!h || h->kind != SR_PY_SESSION) return SR_EINVAL;
  if (!h->installed) return SR_ECLOSED;
  PyObject *ws = state_fn != Py_None ? PyWeakref_NewRef(state_fn, NULL) : NULL;
  PyObject *wr = response_fn != Py_None && (ws || state_fn == Py_None)
                     ? PyWeakref_NewRef(response_fn, NULL)
                     : NULL;
  if ((state_fn != Py_None && !ws) || (response_fn != Py_None && !wr)) {
    PyErr_Clear(); /* not weakly referenceable */
    Py_XDECREF(ws);
    Py_XDECREF(wr);
    return SR_EINVAL;
  }
  PyObject *old_s = h->state_fn, *old_r = h->response_fn;
  h->state_fn = ws;
  h->response_fn = wr;
  h->state_mask = (unsigned)state_mask;
  h->min_code = min_code;
  Py_XDECREF(old_s);
  Py_XDECREF(old_r);
  return 0;
}

/**
 * sr_inviter_invite for the wrapper obj of s, whose handler is h: the
 * handler holds obj strongly from now on (its callbacks will fire), or
 * again not once the INVITE was not sent. Errors as sr_inviter_invite.
 */
int sr_py_inviter_invite(sr_py_handler *h, PyObject *obj, sr_session *s) {
  if (h) sr_py_handler_keep(h, obj);
  int rc = sr_inviter_invite(s);
  if (h && sr_session_get_state(s) == SR_SESSION_INITIAL)
    sr_py_handler_keep(h, Py_None);
  return rc;
}

/** The SessionState members, by value, that state events pass. */
void sr_py_set_session_states(PyObject *states) {
  if (!PyTuple_Check(states)) return;
  PyObject *old = sr_py_states;
  Py_INCREF(states);
  sr_py_states = states;
  Py_XDECREF(old);
}

/** 1 while the handler is installed. */
int sr_py_handler_installed(sr_py_handler *h) { return h && h->installed; }

/** Drops the caller's reference on a handler (NULL does nothing). */
void sr_py_handler_release(sr_py_handler *h) { sr_py_handler_unref(h); }

/** Uninstalls the handler (its object gets no more callbacks), then drops
 *  the caller's reference: for a holder that goes away while the handler
 *  may still be installed. */
void sr_py_handler_drop(sr_py_handler *h) {
  if (!h) return;
  if (h->installed) sr_py_uninstall(h, NULL);
  sr_py_handler_unref(h);
}

/** What a session's wrapper leaves behind: its handler (uninstalled if
 *  still installed, then the wrapper's reference dropped) and its
 *  reference on the session. One call from the wrapper's finalizer. */
void sr_py_session_release(sr_session *s, sr_py_handler *h) {
  sr_py_handler_drop(h);
  sr_session_unref(s);
}

/**
 * sr_session_refer / sr_session_refer_session with a handler that calls
 * methods of the wrapper obj, held until the referrer closes:
 * obj._ev_accept(code, reason), obj._ev_reject(code, reason),
 * obj._ev_notify(code, reason, subscription_state), obj._ev_closed().
 */
int sr_py_session_refer(sr_session *s, const char *target,
                        const sr_refer_options *opts, PyObject *obj,
                        sr_referrer **out) {
  sr_ua *ua = sr_session_get_ua(s);
  if (!s || !target) return SR_EINVAL;
  if (!ua) return SR_ECLOSED;
  sr_py_handler *h = sr_py_handler_new(SR_PY_REFERRER, ua, obj, 1, 1);
  if (!h) {
    PyErr_Clear();
    return SR_ENOMEM;
  }
  h->refs++; /* ours for the call */
  sr_referrer *r = NULL;
  int rc = sr_session_refer(s, target, opts, &sr_py_referrer_delegate, h, &r);
  if (rc < 0) sr_py_uninstall(h, NULL);
  else sr_py_r_adopt(h, r);
  sr_py_handler_unref(h);
  if (rc >= 0) *out = r;
  return rc;
}

int sr_py_session_refer_session(sr_session *s, sr_session *other,
                                const sr_refer_options *opts, PyObject *obj,
                                sr_referrer **out) {
  sr_ua *ua = sr_session_get_ua(s);
  if (!s || !other) return SR_EINVAL;
  if (!ua) return SR_ECLOSED;
  sr_py_handler *h = sr_py_handler_new(SR_PY_REFERRER, ua, obj, 1, 1);
  if (!h) {
    PyErr_Clear();
    return SR_ENOMEM;
  }
  h->refs++;
  sr_referrer *r = NULL;
  int rc = sr_session_refer_session(s, other, opts, &sr_py_referrer_delegate,
                                    h, &r);
  if (rc < 0) sr_py_uninstall(h, NULL);
  else sr_py_r_adopt(h, r);
  sr_py_handler_unref(h);
  if (rc >= 0) *out = r;
  return rc;
}

/**
 * fn(outgoing, transport, local, remote, data: bytes) -> truthy drops the
 * message; None removes the hook.
 */
int sr_py_ua_set_message_hook(sr_ua *ua, PyObject *fn) {
  if (!ua) return SR_EINVAL;
  for (sr_py_handler *h = sr_py_handlers; h; h = h->next)
    if (h->kind == SR_PY_HOOK && h->obj == ua) {
      sr_py_uninstall(h, NULL);
      break;
    }
  if (fn == Py_None) return 0;
  if (sr_ua_fd(ua) < 0) return SR_ECLOSED;
  sr_py_handler *h = sr_py_handler_new(SR_PY_HOOK, ua, fn, 0, 1);
  if (!h) {
    PyErr_Clear();
    return SR_ENOMEM;
  }
  h->obj = sr_ua_ref(ua);
  sr_ua_set_message_hook(ua, sr_py_on_message, h);
  return 0;
}

/**
 * Closes the UA (no callback fires) and drops every handler of it and of
 * its sessions and referrers, with their callables. Safe to call twice.
 */
void sr_py_ua_release(sr_ua *ua) {
  if (!ua) return;
  sr_ua_close(ua);
  PyObject *grave = PyList_New(0);
  if (!grave) PyErr_Clear();
  sr_py_handler *h = sr_py_handlers;
  while (h) {
    sr_py_handler *next = h->next;
    if (h->ua == ua) sr_py_uninstall(h, grave);
    h = next;
  }
  Py_XDECREF(grave); /* the callables go now, after the walk */
}

/**
 * One turn of the loop: waits up to timeout_ms (-1: until something
 * happens) with the GIL released, then handles what arrived and the due
 * timers. Returns the number of events, a negative code, or raises the
 * exception a callback (or, after a wait, a signal handler) raised.
 */
PyObject *sr_py_ua_run_once(sr_ua *ua, int timeout_ms) {
  if (sr_py_restore_pending()) return NULL;
  int rc = sr_ua_run_once(ua, timeout_ms);
  if (sr_py_restore_pending()) return NULL;
  /* An interrupted wait returns 0 events: its handler's exception (e.g.
   * KeyboardInterrupt) belongs to this call. */
  if (timeout_ms != 0 && PyErr_CheckSignals() < 0) return NULL;
  /* SR_ECALLBACK with nothing pending: the flag of a callback that failed
   * inside an API call, whose exception that call raised already. */
  return PyLong_FromLong(rc == SR_ECALLBACK ? 0 : rc);
}

/**
 * Turns of sr_py_ua_run_once(ua, -1) in C, for a loop that has nothing to
 * do between turns unless told: until a callback called
 * sr_py_loop_break(), a wake-up descriptor (sr_py_ua_watch_wakeup) was
 * read (the signal's handler has run), or a callback or signal handler
 * raised (raised here). Returns the events handled, or a negative code.
 */
PyObject *sr_py_ua_run_until_break(sr_ua *ua) {
  long total = 0;
  sr_py_break = sr_py_woken = 0;
  for (;;) {
    if (sr_py_restore_pending()) return NULL;
    int rc = sr_ua_run_once(ua, -1);
    if (sr_py_restore_pending() || PyErr_CheckSignals() < 0) return NULL;
    if (rc < 0 && rc != SR_ECALLBACK) return PyLong_FromLong(rc);
    if (rc > 0) total += rc;
    if (sr_py_break || sr_py_woken) break;
  }
  return PyLong_FromLong(total);
}

/** Ends sr_py_ua_run_until_break after the current turn. */
void sr_py_loop_break(void) { sr_py_break = 1; }

/**
 * Watches a signal wake-up descriptor (signal.set_wakeup_fd's) in the
 * UA's wait, reading what arrives: a signal that lands just before the
 * wait still ends it. Errors as sr_ua_watch_fd.
 */
int sr_py_ua_watch_wakeup(sr_ua *ua, int fd) {
  return sr_ua_watch_fd(ua, fd, sr_py_drain, NULL);
}

/** Stops watching a descriptor of sr_py_ua_watch_wakeup. */
int sr_py_ua_unwatch_wakeup(sr_ua *ua, int fd) {
  return sr_ua_unwatch_fd(ua, fd);
}

/** How many callback exceptions wait in this thread's queue: a mark taken
 *  before a call, for sr_py_raise_pending(mark) after it. */
int sr_py_pending_mark(void) {
  return sr_py_pending ? (int)PyList_GET_SIZE(sr_py_pending) : 0;
}

/** Raises (and returns NULL) the oldest exception queued after the mark
 *  (0: any), else returns None. */
PyObject *sr_py_raise_pending(int mark) {
  if (mark < 0) mark = 0;
  if (mark > 0 && sr_py_pending_mark() > mark) {
    /* move the one to raise to the front */
    PyObject *item = PyList_GET_ITEM(sr_py_pending, mark);
    Py_INCREF(item);
    if (PySequence_DelItem(sr_py_pending, mark) < 0 ||
        PyList_Insert(sr_py_pending, 0, item) < 0) {
      Py_DECREF(item);
      return NULL;
    }
    Py_DECREF(item);
    mark = 0;
  }
  if (mark == 0 && sr_py_restore_pending()) return NULL;
  Py_RETURN_NONE;
}

/** For leak checks: [installed handlers, allocated handlers]. */
PyObject *sr_py_handler_counts(void) {
  int installed = 0;
  for (sr_py_handler *h = sr_py_handlers; h; h = h->next) installed++;
  return Py_BuildValue("[ii]", installed, sr_py_nhandlers);
}

/** The body of a request as bytes (it may contain NUL bytes). */
PyObject *sr_py_request_body(const sr_request *req) {
  const char *b = req ? sr_request_body(req) : NULL;
  if (!b) return PyBytes_FromStringAndSize("", 0);
  return PyBytes_FromStringAndSize(b, (Py_ssize_t)sr_request_body_length(req));
}
%}

/* The natives of the hot paths (sr_py_call, sr_py_gone). */
%include "python_natives.i"
