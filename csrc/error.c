/*
 * error.c — sr_strerror() and sr_version().
 */
#include "sipreferral.h"

SR_API const char *sr_strerror(int code) {
  switch (code) {
  case SR_OK: return "success";
  case SR_EINVAL: return "invalid argument";
  case SR_ENOMEM: return "out of memory";
  case SR_ECLOSED: return "object closed";
  case SR_ESTATE: return "not allowed in the current state";
  case SR_EPARSE: return "parse error";
  case SR_EIO: return "I/O error";
  case SR_EADDR: return "address could not be resolved or bound";
  case SR_ETOOBIG: return "message too big";
  case SR_ETRANSPORT: return "no transport to the destination";
  case SR_ECALLBACK: return "a callback raised an error";
  case SR_ELIMIT: return "limit reached";
  case SR_EROLE: return "wrong kind of session";
  case SR_EALREADY: return "decision already made";
  default: return "unknown error";
  }
}

SR_API const char *sr_version(void) { return SR_VERSION; }
