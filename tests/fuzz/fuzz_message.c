/*
 * fuzz_message.c — libFuzzer target: csrc/parser.c against libosip2. The
 * input is one received datagram; sr__message_parse and
 * osip_message_parse must both refuse it or both accept it, and then
 * build structures that serialise to the same bytes with the same start
 * line and the same number of elements in every header list. Any
 * difference aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static char *fm_serialise(osip_message_t *m, int *rc) {
  char *s = NULL;
  size_t n = 0;
  osip_message_force_update(m);
  *rc = osip_message_to_str(m, &s, &n);
  return s;
}

static int fm_same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int fm_same_lists(osip_message_t *a, osip_message_t *b) {
  const osip_list_t *la[] = {&a->vias, &a->contacts, &a->routes,
                             &a->record_routes, &a->headers, &a->bodies,
                             &a->allows, &a->accepts, &a->authorizations,
                             &a->www_authenticates};
  const osip_list_t *lb[] = {&b->vias, &b->contacts, &b->routes,
                             &b->record_routes, &b->headers, &b->bodies,
                             &b->allows, &b->accepts, &b->authorizations,
                             &b->www_authenticates};
  for (size_t i = 0; i < sizeof la / sizeof la[0]; i++)
    if (osip_list_size(la[i]) != osip_list_size(lb[i])) return 0;
  for (int i = 0; i < osip_list_size(&a->headers); i++) {
    osip_header_t *x = osip_list_get(&a->headers, i);
    osip_header_t *y = osip_list_get(&b->headers, i);
    if (!fm_same(x->hname, y->hname) || !fm_same(x->hvalue, y->hvalue)) return 0;
  }
  return 1;
}

/* libosip2 prints its parse errors unless given a trace function. */
static void fm_quiet(const char *file, int line, osip_trace_level_t level,
                  const char *fmt, va_list ap) {
  (void)file; (void)line; (void)level; (void)fmt; (void)ap;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    osip_trace_initialize_func(OSIP_FATAL, fm_quiet);
    parser_init();
    ready = 1;
  }
  const char *s = (const char *)data;
  osip_message_t *ours = NULL, *theirs = NULL;
  int ro = sr__message_parse(s, size, &ours);
  if (osip_message_init(&theirs) != 0) abort();
  int rt = osip_message_parse(theirs, s, size);
  if ((ro == 0) != (rt == 0)) abort();
  if (ro == 0) {
    if (ours->message_property != theirs->message_property ||
        ours->status_code != theirs->status_code ||
        !fm_same(ours->sip_method, theirs->sip_method) ||
        !fm_same(ours->reason_phrase, theirs->reason_phrase) ||
        !fm_same(ours->sip_version, theirs->sip_version) ||
        !fm_same_lists(ours, theirs))
      abort();
    int ra, rb;
    char *a = fm_serialise(ours, &ra), *b = fm_serialise(theirs, &rb);
    if (ra != rb || !fm_same(a, b)) abort();
    osip_free(a);
    osip_free(b);
    osip_message_free(ours);
  }
  osip_message_free(theirs);
  return 0;
}
