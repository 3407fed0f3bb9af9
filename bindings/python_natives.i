/*
 * python_natives.i — functions of the Python module written against
 * CPython's API directly (METH_FASTCALL / METH_O, no SWIG argument
 * conversion), for the paths every SIP event or API call takes: what they
 * replace were Python frames of _base.py. %included by python.i.
 *
 * sr_py_call(ua_ref, fn, *args)    _base.call: fn(*args), then what its
 *                                  callbacks raised, then Error for rc < 0
 * sr_py_gone(entry)                _base._gone: a registry entry's weak
 *                                  reference callback
 * sr_py_set_call_hooks(Error, SERVED, touch)   what sr_py_call needs
 */

%{
static PyObject *sr_py_error_cls; /* _base.Error */
static PyObject *sr_py_served;    /* _base.SERVED: UAs under serve() */
static PyObject *sr_py_touch;     /* _base._touch(ua_ref) */
static PyObject *sr_py_attr_table, *sr_py_attr_key, *sr_py_attr_release,
    *sr_py_attr_args; /* an entry's slots, interned */

static PyObject *sr_py_call(PyObject *self, PyObject *const *args,
                            Py_ssize_t n) {
  (void)self;
  if (n < 2) {
    PyErr_SetString(PyExc_TypeError, "sr_py_call(ua_ref, fn, *args)");
    return NULL;
  }
  int mark = sr_py_pending_mark();
  PyObject *r = PyObject_Vectorcall(args[1], args + 2, (size_t)(n - 2), NULL);
  if (!r) return NULL;
  /* A UA under serve() is told that its timers may have changed. */
  if (sr_py_served && PySet_GET_SIZE(sr_py_served) > 0 && args[0] != Py_None) {
    PyObject *t = PyObject_CallOneArg(sr_py_touch, args[0]);
    if (!t) goto fail;
    Py_DECREF(t);
  }
  PyObject *p = sr_py_raise_pending(mark);
  if (!p) goto fail;
  Py_DECREF(p);
  long rc = PyLong_AsLong(r);
  if (rc == -1 && PyErr_Occurred()) goto fail;
  if (rc < 0) {
    PyObject *e = PyObject_CallOneArg(sr_py_error_cls, r);
    if (e) {
      PyErr_SetObject((PyObject *)Py_TYPE(e), e);
      Py_DECREF(e);
    }
    goto fail;
  }
  return r;
fail:
  Py_DECREF(r);
  return NULL;
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

static PyObject *sr_py_set_call_hooks(PyObject *self, PyObject *const *args,
                                      Py_ssize_t n) {
  (void)self;
  if (n != 3 || !PyAnySet_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError,
                    "sr_py_set_call_hooks(Error, SERVED: set, touch)");
    return NULL;
  }
  PyObject **slots[3] = {&sr_py_error_cls, &sr_py_served, &sr_py_touch};
  for (int i = 0; i < 3; i++) {
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
    {"sr_py_gone", sr_py_gone, METH_O,
     "sr_py_gone(entry): a registry entry's wrapper went"},
    {"sr_py_set_call_hooks", (PyCFunction)(void (*)(void))sr_py_set_call_hooks,
     METH_FASTCALL, "sr_py_set_call_hooks(Error, SERVED, touch)"},
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
%}
