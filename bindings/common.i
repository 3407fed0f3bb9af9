/* common.i — declarations both bindings share (kept small on purpose). */
#define SR_API

/* C only: the callback is a C function pointer; Python and Lua hosts watch
 * sr_ua_fd() in their own loop instead. */
%ignore sr_ua_watch_fd;
%ignore sr_ua_unwatch_fd;
