/*
 * python_natives.i — functions of the Python module written against
 * CPython's API directly (METH_FASTCALL / METH_O, no SWIG argument
 * conversion), for the paths every SIP event or API call takes: each
 * replaces a Python function of the package (named on the right) and its
 * frame. %included by python.i.
 *
 * sr_py_call(ua_ref, fn, *args)              _base.call: fn(*args), then
 *     what its callbacks raised, then Error for a negative result
 * sr_py_call_new(ua_ref, wrap, fn, *args)    _base.call_new: the same for
 *     fn -> [rc, ptr], returning wrap(ptr)
 * sr_py_call_session(ua_ref, owned, fn, *args)   _base.call_session: the
 *     same, returning wrap_session(ptr, owned, ua_ref)
 * sr_py_remember(table, key, obj, release=None, *args)   _base.remember
 * sr_py_wrap_session(ptr, owned=False, ua_ref=None)   session.wrap_session
 * sr_py_wrap_referral(ptr, ua_ref=None)      referral.wrap_referral
 * sr_py_own_callbacks(session, on_state, state_mask, on_response, min_code,
 *     on_refer, ended=None)                  Session._own_callbacks (a
 *     method through sr_py_own_callbacks_method)
 *
 * What they need of the package, given at its import:
 * sr_py_set_hooks(Error, SERVED, touch, ua_ref_of)              _base
 * sr_py_set_session_classes(SESSIONS, Inviter, Invitation, release)
 * sr_py_set_referral_class(REFERRALS, Referral, release)
 */

%{
static PyObject *sr_py_error_cls; /* _base.Error */
static PyObject *sr_py_served;    /* _base.SERVED: UAs under serve() */
static PyObject *sr_py_touch;     /* _base._touch(ua_ref) */
static PyObject *sr_py_ua_ref_of; /* _base._ua_ref_of(ua_ptr) */
/* The registry tables, wrapper classes and what releases a wrapper's C
 * references (sr_py_set_session_classes, sr_py_set_referral_class). */
static PyObject *sr_py_wrappers[7];
enum {
  SR_PY_W_SESSIONS, SR_PY_W_INVITER, SR_PY_W_INVITATION, SR_PY_W_S_RELEASE,
  SR_PY_W_REFERRALS, SR_PY_W_REFERRAL, SR_PY_W_R_RELEASE
};
static PyObject *sr_py_attr_ptr, *sr_py_attr_ua_ref, *sr_py_attr_handler,
    *sr_py_attr_inviter, *sr_py_empty;

/* What follows a core call that may have fired callbacks: a UA under
 * serve() is told that its timers may have changed, an exception a
 * callback raised (queued after mark) is raised, then Error for rc < 0.
 * 0, or -1 with the exception set. */
static int sr_py_after(PyObject *ua_ref, int mark, PyObject *rc_obj) {
  if (sr_py_served && PySet_GET_SIZE(sr_py_served) > 0 && ua_ref != Py_None) {
    PyObject *t = PyObject_CallOneArg(sr_py_touch, ua_ref);
    if (!t) return -1;
    Py_DECREF(t);
  }
  PyObject *p = sr_py_raise_pending(mark);
  if (!p) return -1;
  Py_DECREF(p);
  long rc = PyLong_AsLong(rc_obj);
  if (rc == -1 && PyErr_Occurred()) return -1;
  if (rc < 0 && !sr_py_error_cls) {
    PyErr_Format(PyExc_RuntimeError, "error %ld (sipreferral not imported)",
                 rc);
    return -1;
  }
  if (rc < 0) {
    PyObject *e = PyObject_CallOneArg(sr_py_error_cls, rc_obj);
    if (e) {
      PyErr_SetObject((PyObject *)Py_TYPE(e), e);
      Py_DECREF(e);
    }
    return -1;
  }
  return 0;
}

static PyObject *sr_py_call(PyObject *self, PyObject *const *args,
                            Py_ssize_t n) {
  (void)self;
  if (n < 2) {
    PyErr_SetString(PyExc_TypeError, "sr_py_call(ua_ref, fn, *args)");
    return NULL;
  }
  int mark = sr_py_pending_mark();
  PyObject *r = PyObject_Vectorcall(args[1], args + 2, (size_t)(n - 2), NULL);
  if (r && sr_py_after(args[0], mark, r) < 0) Py_CLEAR(r);
  return r;
}

/* sr_py_call_new and sr_py_call_session: fn(*fargs) -> [rc, ptr]; ptr
 * goes to wrap(ptr), or with wrap NULL to wrap_session(ptr, owned,
 * ua_ref), before anything is raised (so it is never leaked). */
static PyObject *sr_py_call_wrap(PyObject *ua_ref, PyObject *wrap,
                                 PyObject *owned, PyObject *fn,
                                 PyObject *const *fargs, Py_ssize_t n) {
  int mark = sr_py_pending_mark();
  PyObject *r = PyObject_Vectorcall(fn, fargs, (size_t)n, NULL);
  if (!r) return NULL;
  PyObject *rc = NULL, *ptr = NULL, *obj = NULL;
  if (!PySequence_Check(r) || PySequence_Size(r) != 2) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_TypeError, "expected [rc, ptr]");
    goto done;
  }
  rc = PySequence_GetItem(r, 0);
  ptr = rc ? PySequence_GetItem(r, 1) : NULL;
  if (!ptr) goto done;
  long v = PyLong_AsLong(rc);
  if (v == -1 && PyErr_Occurred()) goto done;
  if (v < 0) {
    obj = Py_None;
    Py_INCREF(obj);
  } else if (wrap) {
    obj = PyObject_CallOneArg(wrap, ptr);
  } else {
    PyObject *a[3] = {ptr, owned, ua_ref};
    obj = sr_py_wrap_session(NULL, a, 3, NULL);
  }
  if (obj && sr_py_after(ua_ref, mark, rc) < 0) Py_CLEAR(obj);
done:
  Py_XDECREF(rc);
  Py_XDECREF(ptr);
  Py_DECREF(r);
  return obj;
}

static PyObject *sr_py_call_new(PyObject *self, PyObject *const *args,
                                Py_ssize_t n) {
  (void)self;
  if (n < 3) {
    PyErr_SetString(PyExc_TypeError, "sr_py_call_new(ua_ref, wrap, fn, *args)");
    return NULL;
  }
  return sr_py_call_wrap(args[0], args[1], NULL, args[2], args + 3, n - 3);
}

static PyObject *sr_py_call_session(PyObject *self, PyObject *const *args,
                                    Py_ssize_t n) {
  (void)self;
  if (n < 3) {
    PyErr_SetString(PyExc_TypeError,
                    "sr_py_call_session(ua_ref, owned, fn, *args)");
    return NULL;
  }
  return sr_py_call_wrap(args[0], NULL, args[1], args[2], args + 3, n - 3);
}

/* A registry entry's callback, bound to (table, key, release, args): the
 * wrapper went. The entry leaves the table (unless a newer wrapper's
 * took its place), then release(*args) drops the C references. */
static PyObject *sr_py_gone(PyObject *info, PyObject *entry) {
  if (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) != 4 ||
      !PyDict_Check(PyTuple_GET_ITEM(info, 0)) ||
      !PyTuple_Check(PyTuple_GET_ITEM(info, 3))) {
    PyErr_SetString(PyExc_TypeError, "sr_py_gone: not a registry entry");
    return NULL;
  }
  PyObject *table = PyTuple_GET_ITEM(info, 0), *key = PyTuple_GET_ITEM(info, 1),
           *release = PyTuple_GET_ITEM(info, 2);
  PyObject *cur = PyDict_GetItemWithError(table, key); /* borrowed */
  if (cur == entry) {
    if (PyDict_DelItem(table, key) < 0) return NULL;
  } else if (!cur && PyErr_Occurred()) {
    return NULL;
  }
  if (release != Py_None) {
    PyObject *r = PyObject_Call(release, PyTuple_GET_ITEM(info, 3), NULL);
    if (!r) return NULL;
    Py_DECREF(r);
  }
  Py_RETURN_NONE;
}

static PyMethodDef sr_py_gone_def = {
    "_gone", sr_py_gone, METH_O,
    "a registry entry's callback: its wrapper went"};

/* table[key] = a weak reference to obj whose callback (sr_py_gone, bound
 * to what it needs) runs release(*rargs). 0, or -1 with an exception. */
static int sr_py_entry(PyObject *table, PyObject *key, PyObject *obj,
                       PyObject *release, PyObject *rargs) {
  PyObject *info = PyTuple_Pack(4, table, key, release, rargs);
  PyObject *cb = info ? PyCFunction_New(&sr_py_gone_def, info) : NULL;
  PyObject *e = cb ? PyWeakref_NewRef(obj, cb) : NULL;
  int rc = e && PyDict_SetItem(table, key, e) == 0 ? 0 : -1;
  Py_XDECREF(e);
  Py_XDECREF(cb);
  Py_XDECREF(info);
  return rc;
}

static PyObject *sr_py_remember(PyObject *self, PyObject *const *args,
                                Py_ssize_t n) {
  (void)self;
  if (n < 3 || !PyDict_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError,
                    "sr_py_remember(table: dict, key, obj, release=None, *args)");
    return NULL;
  }
  PyObject *rargs = PyTuple_New(n > 4 ? n - 4 : 0);
  if (!rargs) return NULL;
  for (Py_ssize_t i = 4; i < n; i++) {
    Py_INCREF(args[i]);
    PyTuple_SET_ITEM(rargs, i - 4, args[i]);
  }
  int rc = sr_py_entry(args[0], args[1], args[2], n > 3 ? args[3] : Py_None,
                       rargs);
  Py_DECREF(rargs);
  if (rc < 0) return NULL;
  Py_RETURN_NONE;
}

/* The wrapper table[key] refers to (new reference), or NULL: none (no
 * error set) or an error. */
static PyObject *sr_py_known(PyObject *table, PyObject *key) {
  PyObject *ref = PyDict_GetItemWithError(table, key); /* borrowed */
  if (!ref) return NULL;
#if PY_VERSION_HEX >= 0x030D0000
  PyObject *o = NULL;
  if (PyWeakref_GetRef(ref, &o) < 0) return NULL;
  return o;
#else
  PyObject *o = PyWeakref_GetObject(ref); /* borrowed */
  if (!o || o == Py_None) return NULL;
  Py_INCREF(o);
  return o;
#endif
}

/* Positional and keyword arguments of a METH_FASTCALL|METH_KEYWORDS
 * function into out[0..max-1] (NULL when not given). */
static int sr_py_args(const char *fn, PyObject *const *args, Py_ssize_t n,
                      PyObject *kwnames, const char *const *names, int max,
                      PyObject **out) {
  if (n > max) {
    PyErr_Format(PyExc_TypeError, "%s: too many arguments", fn);
    return -1;
  }
  for (int i = 0; i < max; i++) out[i] = i < n ? args[i] : NULL;
  Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t j = 0; j < nk; j++) {
    PyObject *name = PyTuple_GET_ITEM(kwnames, j);
    int i = 0;
    while (i < max && PyUnicode_CompareWithASCIIString(name, names[i]) != 0) i++;
    if (i == max || out[i]) {
      PyErr_Format(PyExc_TypeError, "%s: unexpected argument %R", fn, name);
      return -1;
    }
    out[i] = args[n + j];
  }
  if (!out[0]) {
    PyErr_Format(PyExc_TypeError, "%s: missing %s", fn, names[0]);
    return -1;
  }
  return 0;
}

/* A weak reference to the UserAgent wrapper of ua (new reference; None
 * when it has none). */
static PyObject *sr_py_ua_ref(sr_ua *ua) {
  if (!sr_py_ua_ref_of) Py_RETURN_NONE; /* sipreferral not imported */
  PyObject *p = ua ? sr_py_ptr(ua, SWIGTYPE_p_sr_ua) : Py_None;
  if (!ua) Py_INCREF(p);
  if (!p) return NULL;
  PyObject *r = PyObject_CallOneArg(sr_py_ua_ref_of, p);
  Py_DECREF(p);
  return r;
}

/* A new wrapper of cls (object.__new__(cls)) with _ptr and _ua_ref set. */
static PyObject *sr_py_new_wrapper(PyObject *cls, PyObject *ptr,
                                   PyObject *ua_ref, sr_ua *ua) {
  PyObject *obj =
      PyBaseObject_Type.tp_new((PyTypeObject *)cls, sr_py_empty, NULL);
  if (!obj) return NULL;
  PyObject *ref = ua_ref != Py_None ? ua_ref : sr_py_ua_ref(ua);
  if (ref == ua_ref) Py_INCREF(ref);
  if (!ref || PyObject_SetAttr(obj, sr_py_attr_ptr, ptr) < 0 ||
      PyObject_SetAttr(obj, sr_py_attr_ua_ref, ref) < 0)
    Py_CLEAR(obj);
  Py_XDECREF(ref);
  return obj;
}

static PyObject *sr_py_wrap_session(PyObject *self, PyObject *const *args,
                                    size_t nargsf, PyObject *kwnames) {
  (void)self;
  static const char *const names[] = {"ptr", "owned", "ua_ref"};
  PyObject *a[3];
  if (sr_py_args("wrap_session", args, PyVectorcall_NARGS(nargsf), kwnames,
                 names, 3, a) < 0)
    return NULL;
  PyObject *ptr = a[0], *ua_ref = a[2] ? a[2] : Py_None;
  if (ptr == Py_None) Py_RETURN_NONE;
  int owned = a[1] ? PyObject_IsTrue(a[1]) : 0;
  void *p = NULL;
  if (owned < 0) return NULL;
  if (!SWIG_IsOK(SWIG_ConvertPtr(ptr, &p, SWIGTYPE_p_sr_session, 0)) || !p ||
      !sr_py_wrappers[SR_PY_W_SESSIONS]) {
    PyErr_SetString(PyExc_TypeError, "wrap_session: not a session pointer");
    return NULL;
  }
  sr_session *s = p;
  PyObject *key = PyLong_FromVoidPtr(p);
  if (!key) return NULL;
  PyObject *obj = sr_py_known(sr_py_wrappers[SR_PY_W_SESSIONS], key);
  if (obj || PyErr_Occurred()) {
    if (obj && owned) sr_session_unref(s);
    Py_DECREF(key);
    return obj;
  }
  /* From here the reference is the new wrapper's: dropped if it fails. */
  if (!owned) sr_session_ref(s);
  int role = sr_session_get_role(s);
  sr_py_handler *h = NULL;
  PyObject *hobj = NULL, *rargs = NULL;
  obj = sr_py_new_wrapper(sr_py_wrappers[role == SR_ROLE_INVITER
                                             ? SR_PY_W_INVITER
                                             : SR_PY_W_INVITATION],
                          ptr, ua_ref, sr_session_get_ua(s));
  if (!obj) goto fail;
  /* The handler keeps the wrapper until the session terminates or its UA
   * closes; an Inviter not yet invited only from invite() on. */
  h = sr_py_session_set_handler(
      s, obj,
      role != SR_ROLE_INVITER || sr_session_get_state(s) != SR_SESSION_INITIAL,
      0);
  hobj = h ? SWIG_NewPointerObj(h, SWIGTYPE_p_sr_py_handler, 0) : Py_None;
  if (!h) Py_INCREF(hobj);
  if (!hobj || PyObject_SetAttr(obj, sr_py_attr_handler, hobj) < 0) goto fail;
  rargs = PyTuple_Pack(2, ptr, hobj);
  if (!rargs || sr_py_entry(sr_py_wrappers[SR_PY_W_SESSIONS], key, obj,
                            sr_py_wrappers[SR_PY_W_S_RELEASE], rargs) < 0)
    goto fail;
  Py_DECREF(rargs);
  Py_DECREF(hobj);
  Py_DECREF(key);
  return obj;
fail:
  Py_XDECREF(rargs);
  Py_XDECREF(hobj);
  Py_XDECREF(obj);
  Py_DECREF(key);
  sr_py_handler_drop(h);
  sr_session_unref(s);
  return NULL;
}

static PyObject *sr_py_wrap_referral(PyObject *self, PyObject *const *args,
                                     size_t nargsf, PyObject *kwnames) {
  (void)self;
  static const char *const names[] = {"ptr", "ua_ref"};
  PyObject *a[2];
  if (sr_py_args("wrap_referral", args, PyVectorcall_NARGS(nargsf), kwnames,
                 names, 2, a) < 0)
    return NULL;
  PyObject *ptr = a[0], *ua_ref = a[1] ? a[1] : Py_None;
  if (ptr == Py_None) Py_RETURN_NONE;
  void *p = NULL;
  if (!SWIG_IsOK(SWIG_ConvertPtr(ptr, &p, SWIGTYPE_p_sr_referral, 0)) || !p ||
      !sr_py_wrappers[SR_PY_W_REFERRALS]) {
    PyErr_SetString(PyExc_TypeError, "wrap_referral: not a referral pointer");
    return NULL;
  }
  sr_referral *r = p;
  PyObject *key = PyLong_FromVoidPtr(p);
  if (!key) return NULL;
  PyObject *obj = sr_py_known(sr_py_wrappers[SR_PY_W_REFERRALS], key);
  if (obj || PyErr_Occurred()) {
    Py_DECREF(key);
    return obj;
  }
  sr_referral_ref(r); /* the new wrapper's */
  PyObject *rargs = NULL;
  obj = sr_py_new_wrapper(sr_py_wrappers[SR_PY_W_REFERRAL], ptr, ua_ref,
                          sr_referral_get_ua(r));
  if (!obj || PyObject_SetAttr(obj, sr_py_attr_inviter, Py_None) < 0)
    goto fail;
  rargs = PyTuple_Pack(1, ptr);
  if (!rargs || sr_py_entry(sr_py_wrappers[SR_PY_W_REFERRALS], key, obj,
                            sr_py_wrappers[SR_PY_W_R_RELEASE], rargs) < 0)
    goto fail;
  Py_DECREF(rargs);
  Py_DECREF(key);
  return obj;
fail:
  Py_XDECREF(rargs);
  Py_XDECREF(obj);
  Py_DECREF(key);
  sr_referral_unref(r);
  return NULL;
}

static PyObject *sr_py_own_callbacks(PyObject *self, PyObject *const *args,
                                     Py_ssize_t n) {
  (void)self;
  PyObject *ended = n == 7 ? args[6] : Py_None;
  if ((n != 6 && n != 7) ||
      (ended != Py_None &&
       !(PyTuple_Check(ended) && PyTuple_GET_SIZE(ended) == 3 &&
         PyList_Check(PyTuple_GET_ITEM(ended, 0)) &&
         PyLong_Check(PyTuple_GET_ITEM(ended, 2))))) {
    PyErr_SetString(PyExc_TypeError,
                    "_own_callbacks(on_state, state_mask, on_response, "
                    "min_code, on_refer, ended=None | (list, item, batch))");
    return NULL;
  }
  Py_ssize_t batch = 0;
  if (ended != Py_None) {
    batch = PyLong_AsSsize_t(PyTuple_GET_ITEM(ended, 2));
    if (batch < 1) {
      if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "_own_callbacks: ended batch < 1");
      return NULL;
    }
  }
  PyObject *s = args[0], *h_obj = NULL;
  long mask = PyLong_AsLong(args[2]), min_code = PyLong_AsLong(args[4]);
  if (PyErr_Occurred() || !sr_py_name(SR_PY_EV_STATE) ||
      !sr_py_name(SR_PY_EV_RESPONSE) || !sr_py_name(SR_PY_EV_REFER) ||
      PyObject_SetAttr(s, sr_py_ev_str[SR_PY_EV_STATE], args[1]) < 0 ||
      PyObject_SetAttr(s, sr_py_ev_str[SR_PY_EV_RESPONSE], args[3]) < 0 ||
      PyObject_SetAttr(s, sr_py_ev_str[SR_PY_EV_REFER], args[5]) < 0 ||
      !(h_obj = PyObject_GetAttr(s, sr_py_attr_handler)))
    return NULL;
  void *h = NULL;
  if (h_obj != Py_None &&
      !SWIG_IsOK(SWIG_ConvertPtr(h_obj, &h, SWIGTYPE_p_sr_py_handler, 0))) {
    Py_DECREF(h_obj);
    PyErr_SetString(PyExc_TypeError, "_own_callbacks: not a session wrapper");
    return NULL;
  }
  Py_DECREF(h_obj);
  if (h) { /* (a session that ended has none) */
    sr_py_handler_set_flags(h, args[5] != Py_None ? SR_PY_SESSION_REFER : 0);
    sr_py_session_filter(h, args[1], (int)mask, args[3], (int)min_code);
    sr_py_handler *hh = h;
    if (hh->installed) { /* None drops a list set before */
      PyObject *old_l = hh->ended_list, *old_i = hh->ended_item;
      hh->ended_list = hh->ended_item = NULL;
      if (ended != Py_None) {
        hh->ended_list = PyTuple_GET_ITEM(ended, 0);
        hh->ended_item = PyTuple_GET_ITEM(ended, 1);
        Py_INCREF(hh->ended_list);
        Py_INCREF(hh->ended_item);
        hh->ended_batch = batch;
      }
      Py_XDECREF(old_l);
      Py_XDECREF(old_i);
    }
  }
  Py_RETURN_NONE;
}

/* Replaces the n references in slots by args (new references). */
static void sr_py_keep_all(PyObject **const *slots, PyObject *const *args,
                           int n) {
  for (int i = 0; i < n; i++) {
    PyObject *old = *slots[i];
    Py_INCREF(args[i]);
    *slots[i] = args[i];
    Py_XDECREF(old);
  }
}

static PyObject *sr_py_set_hooks(PyObject *self, PyObject *const *args,
                                 Py_ssize_t n) {
  (void)self;
  if (n != 4 || !PyAnySet_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError,
                    "sr_py_set_hooks(Error, SERVED: set, touch, ua_ref_of)");
    return NULL;
  }
  PyObject **slots[4] = {&sr_py_error_cls, &sr_py_served, &sr_py_touch,
                         &sr_py_ua_ref_of};
  sr_py_keep_all(slots, args, 4);
  Py_RETURN_NONE;
}

static PyObject *sr_py_set_session_classes(PyObject *self,
                                           PyObject *const *args,
                                           Py_ssize_t n) {
  (void)self;
  if (n != 4 || !PyDict_Check(args[0]) || !PyType_Check(args[1]) ||
      !PyType_Check(args[2])) {
    PyErr_SetString(PyExc_TypeError, "sr_py_set_session_classes(SESSIONS, "
                                     "Inviter, Invitation, release)");
    return NULL;
  }
  PyObject **slots[4] = {&sr_py_wrappers[SR_PY_W_SESSIONS],
                         &sr_py_wrappers[SR_PY_W_INVITER],
                         &sr_py_wrappers[SR_PY_W_INVITATION],
                         &sr_py_wrappers[SR_PY_W_S_RELEASE]};
  sr_py_keep_all(slots, args, 4);
  Py_RETURN_NONE;
}

static PyObject *sr_py_set_referral_class(PyObject *self,
                                          PyObject *const *args,
                                          Py_ssize_t n) {
  (void)self;
  if (n != 3 || !PyDict_Check(args[0]) || !PyType_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError,
                    "sr_py_set_referral_class(REFERRALS, Referral, release)");
    return NULL;
  }
  PyObject **slots[3] = {&sr_py_wrappers[SR_PY_W_REFERRALS],
                         &sr_py_wrappers[SR_PY_W_REFERRAL],
                         &sr_py_wrappers[SR_PY_W_R_RELEASE]};
  sr_py_keep_all(slots, args, 3);
  Py_RETURN_NONE;
}

static PyMethodDef sr_py_natives[] = {
    {"sr_py_call", (PyCFunction)(void (*)(void))sr_py_call, METH_FASTCALL,
     "sr_py_call(ua_ref, fn, *args) -> fn(*args), raising what its callbacks "
     "raised, then Error for a negative result"},
    {"sr_py_call_new", (PyCFunction)(void (*)(void))sr_py_call_new,
     METH_FASTCALL,
     "sr_py_call_new(ua_ref, wrap, fn, *args) -> wrap(ptr) of fn's [rc, ptr] "
     "(None when rc < 0), raising as sr_py_call"},
    {"sr_py_own_callbacks", (PyCFunction)(void (*)(void))sr_py_own_callbacks,
     METH_FASTCALL,
     "sr_py_own_callbacks(session, on_state, state_mask, on_response, "
     "min_code, on_refer, ended=None): Session._own_callbacks"},
    {"sr_py_call_session", (PyCFunction)(void (*)(void))sr_py_call_session,
     METH_FASTCALL,
     "sr_py_call_session(ua_ref, owned, fn, *args) -> the session wrapper "
     "(wrap_session(ptr, owned, ua_ref)) of fn's [rc, ptr], raising as "
     "sr_py_call_new"},
    {"sr_py_remember", (PyCFunction)(void (*)(void))sr_py_remember,
     METH_FASTCALL,
     "sr_py_remember(table, key, obj, release=None, *args): table[key] is a "
     "weak reference to obj; when obj goes, the entry goes and "
     "release(*args) runs"},
    {"sr_py_wrap_session", (PyCFunction)(void (*)(void))sr_py_wrap_session,
     METH_FASTCALL | METH_KEYWORDS,
     "sr_py_wrap_session(ptr, owned=False, ua_ref=None) -> the one wrapper "
     "of a C session (None for None)"},
    {"sr_py_wrap_referral", (PyCFunction)(void (*)(void))sr_py_wrap_referral,
     METH_FASTCALL | METH_KEYWORDS,
     "sr_py_wrap_referral(ptr, ua_ref=None) -> the one wrapper of a C "
     "referral (None for None)"},
    {"sr_py_set_hooks", (PyCFunction)(void (*)(void))sr_py_set_hooks,
     METH_FASTCALL, "sr_py_set_hooks(Error, SERVED, touch, ua_ref_of)"},
    {"sr_py_set_session_classes",
     (PyCFunction)(void (*)(void))sr_py_set_session_classes, METH_FASTCALL,
     "sr_py_set_session_classes(SESSIONS, Inviter, Invitation, release)"},
    {"sr_py_set_referral_class",
     (PyCFunction)(void (*)(void))sr_py_set_referral_class, METH_FASTCALL,
     "sr_py_set_referral_class(REFERRALS, Referral, release)"},
    {NULL, NULL, 0, NULL}};
%}

%init %{
  if (PyModule_AddFunctions(m, sr_py_natives) < 0) return NULL;
  {
    /* sr_py_own_callbacks as a method: no Python frame in between. */
    PyObject *fn = PyObject_GetAttrString(m, "sr_py_own_callbacks");
    PyObject *meth = fn ? PyInstanceMethod_New(fn) : NULL;
    Py_XDECREF(fn);
    if (!meth || PyModule_AddObject(m, "sr_py_own_callbacks_method", meth) < 0) {
      Py_XDECREF(meth);
      return NULL;
    }
  }
  sr_py_attr_ptr = PyUnicode_InternFromString("_ptr");
  sr_py_attr_ua_ref = PyUnicode_InternFromString("_ua_ref");
  sr_py_attr_handler = PyUnicode_InternFromString("_handler");
  sr_py_attr_inviter = PyUnicode_InternFromString("_inviter");
  sr_py_empty = PyTuple_New(0);
  if (!sr_py_attr_ptr || !sr_py_attr_ua_ref ||
      !sr_py_attr_handler || !sr_py_attr_inviter || !sr_py_empty)
    return NULL;
%}
