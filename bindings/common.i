/* common.i — declarations both bindings share (kept small on purpose). */
#define SR_API

/* C only: the callback is a C function pointer; Python and Lua hosts watch
 * sr_ua_fd() in their own loop instead. */
%ignore sr_ua_watch_fd;
%ignore sr_ua_unwatch_fd;
/* C only too: the wait hooks are how a binding releases its lock (Python
 * installs its own in python.i); a script must not replace them. */
%ignore sr_ua_set_wait_hooks;
