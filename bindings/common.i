/* common.i — declarations both bindings share (kept small on purpose). */
#define SR_API
