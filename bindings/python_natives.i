/*
 * python_natives.i — functions of the Python module written against
 * CPython's API directly (METH_FASTCALL / METH_O, no SWIG argument
 * conversion), for the paths every SIP event or API call takes: what they
 * replace were Python frames of _base.py. %included by python.i.
 *
 * sr_py_call(ua_ref, fn, *args)    _base.call: fn(*args), then what its
 *                                  callbacks raised, then Error for rc < 0
 * sr_py_call_new(ua_ref, wrap, fn, *args)   _base.call_new: the same for
 *                                  fn -> [rc, ptr], returning wrap(ptr)
 * sr_py_remember(table, key, obj, release=None, *args)   _base.remember
 * sr_py_gone(entry)                _base._gone: a registry entry's weak
 *                                  reference callback
 * sr_py_set_hooks(Error, SERVED, touch, Entry)   what they need of _base
 */

%{
static PyObject *sr_py_error_cls; /* _base.Error */
static PyObject *sr_py_served;    /* _base.SERVED: UAs under serve() */
static PyObject *sr_py_touch;     /* _base._touch(ua_ref) */
static PyObject *sr_py_entry_cls; /* _base._Entry: a weakref subclass */
static PyObject *sr_py_gone_fn;   /* sr_py_gone, the entries' callback */
static PyObject *sr_py_attr_table, *sr_py_attr_key, *sr_py_attr_release,
    *sr_py_attr_args; /* an entry's slots, interned */

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

static PyObject *sr_py_call_new(PyObject *self, PyObject *const *args,
                                Py_ssize_t n) {
  (void)self;
  if (n < 3) {
    PyErr_SetString(PyExc_TypeError, "sr_py_call_new(ua_ref, wrap, fn, *args)");
    return NULL;
  }
  int mark = sr_py_pending_mark();
  PyObject *r = PyObject_Vectorcall(args[2], args + 3, (size_t)(n - 3), NULL);
  if (!r) return NULL;
  PyObject *rc = NULL, *ptr = NULL, *obj = NULL;
  if (!PySequence_Check(r) || PySequence_Size(r) != 2) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_TypeError, "sr_py_call_new: expected [rc, ptr]");
    goto done;
  }
  rc = PySequence_GetItem(r, 0);
  ptr = rc ? PySequence_GetItem(r, 1) : NULL;
  if (!ptr) goto done;
  long v = PyLong_AsLong(rc);
  if (v == -1 && PyErr_Occurred()) goto done;
  /* The pointer is wrapped (so never leaked) before anything is raised. */
  if (v >= 0) {
    obj = PyObject_CallOneArg(args[1], ptr);
  } else {
    obj = Py_None;
    Py_INCREF(obj);
  }
  if (obj && sr_py_after(args[0], mark, rc) < 0) Py_CLEAR(obj);
done:
  Py_XDECREF(rc);
  Py_XDECREF(ptr);
  Py_DECREF(r);
  return obj;
}

static PyObject *sr_py_remember(PyObject *self, PyObject *const *args,
                                Py_ssize_t n) {
  (void)self;
  if (n < 3 || !PyDict_Check(args[0]) || !sr_py_entry_cls) {
    PyErr_SetString(PyExc_TypeError,
                    "sr_py_remember(table: dict, key, obj, release=None, *args)");
    return NULL;
  }
  PyObject *release = n > 3 ? args[3] : Py_None;
  PyObject *rargs = PyTuple_New(n > 4 ? n - 4 : 0);
  if (!rargs) return NULL;
  for (Py_ssize_t i = 4; i < n; i++) {
    Py_INCREF(args[i]);
    PyTuple_SET_ITEM(rargs, i - 4, args[i]);
  }
  PyObject *cargs[2] = {args[2], sr_py_gone_fn};
  PyObject *e = PyObject_Vectorcall(sr_py_entry_cls, cargs, 2, NULL);
  int rc = !e || PyObject_SetAttr(e, sr_py_attr_table, args[0]) < 0 ||
                   PyObject_SetAttr(e, sr_py_attr_key, args[1]) < 0 ||
                   PyObject_SetAttr(e, sr_py_attr_release, release) < 0 ||
                   PyObject_SetAttr(e, sr_py_attr_args, rargs) < 0 ||
                   PyDict_SetItem(args[0], args[1], e) < 0
               ? -1
               : 0;
  Py_DECREF(rargs);
  Py_XDECREF(e);
  if (rc < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *sr_py_gone(PyObject *self, PyObject *entry) {
  (void)self;
  PyObject *res = NULL;
  PyObject *table = PyObject_GetAttr(entry, sr_py_attr_table);
  PyObject *key = table ? PyObject_GetAttr(entry, sr_py_attr_key) : NULL;
  PyObject *release = key ? PyObject_GetAttr(entry, sr_py_attr_release) : NULL;
  PyObject *args = release ? PyObject_GetAttr(entry, sr_py_attr_args) : NULL;
  if (!args) goto done;
  if (!PyDict_Check(table) || !PyTuple_Check(args)) {
    PyErr_SetString(PyExc_TypeError, "sr_py_gone: not a registry entry");
    goto done;
  }
  /* Only its own entry: a newer wrapper's may be there already. */
  PyObject *cur = PyDict_GetItemWithError(table, key); /* borrowed */
  if (cur == entry) {
    if (PyDict_DelItem(table, key) < 0) goto done;
  } else if (!cur && PyErr_Occurred()) {
    goto done;
  }
  if (release != Py_None) {
    PyObject *r = PyObject_Call(release, args, NULL);
    if (!r) goto done;
    Py_DECREF(r);
  }
  res = Py_None;
  Py_INCREF(res);
done:
  Py_XDECREF(table);
  Py_XDECREF(key);
  Py_XDECREF(release);
  Py_XDECREF(args);
  return res;
}

static PyObject *sr_py_set_hooks(PyObject *self, PyObject *const *args,
                                 Py_ssize_t n) {
  (void)self;
  if (n != 4 || !PyAnySet_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError,
                    "sr_py_set_hooks(Error, SERVED: set, touch, Entry)");
    return NULL;
  }
  PyObject **slots[4] = {&sr_py_error_cls, &sr_py_served, &sr_py_touch,
                         &sr_py_entry_cls};
  for (int i = 0; i < 4; i++) {
    PyObject *old = *slots[i];
    Py_INCREF(args[i]);
    *slots[i] = args[i];
    Py_XDECREF(old);
  }
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
    {"sr_py_remember", (PyCFunction)(void (*)(void))sr_py_remember,
     METH_FASTCALL,
     "sr_py_remember(table, key, obj, release=None, *args): table[key] is a "
     "weak reference to obj; when obj goes, the entry goes and "
     "release(*args) runs"},
    {"sr_py_gone", sr_py_gone, METH_O,
     "sr_py_gone(entry): a registry entry's wrapper went"},
    {"sr_py_set_hooks", (PyCFunction)(void (*)(void))sr_py_set_hooks,
     METH_FASTCALL, "sr_py_set_hooks(Error, SERVED, touch, Entry)"},
    {NULL, NULL, 0, NULL}};
%}

%init %{
  sr_py_attr_table = PyUnicode_InternFromString("table");
  sr_py_attr_key = PyUnicode_InternFromString("key");
  sr_py_attr_release = PyUnicode_InternFromString("release");
  sr_py_attr_args = PyUnicode_InternFromString("args");
  if (!sr_py_attr_table || !sr_py_attr_key || !sr_py_attr_release ||
      !sr_py_attr_args || PyModule_AddFunctions(m, sr_py_natives) < 0)
    return NULL;
  sr_py_gone_fn = PyObject_GetAttrString(m, "sr_py_gone");
  if (!sr_py_gone_fn) return NULL;
%}
