/*
 * test_pool.c — the allocator libosip2 uses (csrc/pool.c): installed at
 * load time; a freed block is reused for the next allocation of its
 * size class, message buffers (1-16 KiB) included;
 * realloc keeps the bytes; large blocks, blocks freed on another thread
 * (whose kept blocks go back at its end), and a plain malloc'd block
 * handed to osip_free all work; the core's own blocks (sr__malloc and
 * the rest) come from the same pool. Run under ASan and valgrind as well
 * (nothing is kept under ASan; the reuse checks are skipped there).
 */
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"
#undef REQUIRE /* libosip2's headers have one of their own */
#include "harness.h"

#include <valgrind/valgrind.h>

#if defined(__SANITIZE_ADDRESS__)
#define KEEPS 0
#else
#define KEEPS 1
#endif

static void test_installed(void) {
  /* Linked statically, as here, pool.c comes in with sr_ua_new, which
   * installs it too; the shared library installs it at load time. */
  sr__pool_install();
  CHECK(osip_malloc_func != NULL);
  CHECK(osip_free_func != NULL);
  CHECK(osip_realloc_func != NULL);
}

static void test_reuse_by_class(void) {
  char *p = osip_malloc(40);
  REQUIRE(p);
  memset(p, 'x', 40);
  osip_free(p);
  char *q = osip_malloc(33); /* the same 40-byte class (25..40) */
  REQUIRE(q);
  if (KEEPS) CHECK(q == p);
  char *r = osip_malloc(100); /* another class */
  REQUIRE(r);
  CHECK(r != q);
  osip_free(q);
  osip_free(r);
}

static void test_realloc(void) {
  char *p = osip_malloc(20); /* the 24-byte class */
  REQUIRE(p);
  strcpy(p, "nineteen characters");
  char *q = osip_realloc(p, 24); /* still fits */
  REQUIRE(q);
  if (KEEPS) CHECK(q == p);
  char *r = osip_realloc(q, 5000); /* a large block now */
  REQUIRE(r);
  CHECK_STR(r, "nineteen characters");
  memset(r + 20, 'y', 4980);
  char *s = osip_realloc(r, 9000);
  REQUIRE(s);
  CHECK(s[4999] == 'y' && memcmp(s, "nineteen characters", 19) == 0);
  osip_free(s);
  char *t = osip_realloc(NULL, 10);
  CHECK(t != NULL);
  osip_free(t);
}

static void test_buffer_classes(void) {
  /* Message buffers (1-16 KiB) are kept too: osip_message_to_str starts
   * with 8000 bytes, a large SDP body or a multipart grows past it. */
  char *p = osip_malloc(8000);
  REQUIRE(p);
  memset(p, 'b', 8000);
  osip_free(p);
  char *q = osip_malloc(7200); /* the same 8 KiB class */
  REQUIRE(q);
  if (KEEPS) CHECK(q == p);
  memset(q, 'c', 7200);
  char *r = osip_malloc(1500); /* the 2 KiB class */
  REQUIRE(r);
  CHECK(r != q);
  memset(r, 'd', 1500);
  char *s = osip_realloc(r, 2048); /* fits its class */
  if (KEEPS) CHECK(s == r);
  char *t = osip_realloc(s, 2049); /* the next class: moved, bytes kept */
  REQUIRE(t);
  CHECK(t[0] == 'd' && t[1499] == 'd');
  osip_free(q);
  osip_free(t);
  char *tr = osip_malloc(15184);
  REQUIRE(tr);
  memset(tr, 0, 15184);
  osip_free(tr);
  char *tr2 = osip_malloc(15360); /* the same 15 KiB class */
  if (KEEPS) CHECK(tr2 == tr);
  osip_free(tr2);
  char *big = osip_malloc(16385); /* past the classes: malloc's */
  REQUIRE(big);
  memset(big, 1, 16385);
  osip_free(big);
}

static void test_zero_and_large(void) {
  void *z = osip_malloc(0);
  CHECK(z != NULL);
  osip_free(z);
  char *big = osip_malloc(1 << 20);
  REQUIRE(big);
  memset(big, 1, 1 << 20);
  osip_free(big);
}

/* Blocks made here are freed on a thread that then ends. */
static void *free_all(void *arg) {
  char **v = arg;
  for (int i = 0; i < 1000; i++) osip_free(v[i]);
  char *mine = osip_malloc(64);
  osip_free(mine); /* kept by this thread until it ends */
  return NULL;
}

static void test_other_thread(void) {
  static char *v[1000];
  for (int i = 0; i < 1000; i++) {
    v[i] = osip_malloc((size_t)(i % 300) + 1);
    REQUIRE(v[i]);
    v[i][0] = (char)i;
  }
  pthread_t th;
  REQUIRE(pthread_create(&th, NULL, free_all, v) == 0);
  CHECK(pthread_join(th, NULL) == 0);
  /* the thread's kept blocks went back at its end: valgrind's and
   * LSan's leak checks (scripts/valgrind.sh, the ASan build) say so */
}

static void test_foreign_block(void) {
  /* ASan and valgrind report the header read, as they should */
  if (!KEEPS || RUNNING_ON_VALGRIND) return;
  char *p = strdup("not from libosip2's allocator");
  REQUIRE(p);
  osip_free(p); /* handed to free(): valgrind and the leak check see it */
  CHECK(osip_free_func != NULL);
}

static void test_many_messages(void) {
  /* A message parsed and freed many times reuses its blocks. */
  const char *msg =
      "REFER sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKp1\r\n"
      "From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>;tag=2\r\n"
      "Call-ID: pool@127.0.0.1\r\nCSeq: 2 REFER\r\nRefer-To: <sip:c@127.0.0.1>\r\n"
      "Contact: <sip:b@127.0.0.1>\r\nContent-Length: 0\r\n\r\n";
  parser_init();
  for (int i = 0; i < 2000; i++) {
    osip_message_t *m;
    REQUIRE(osip_message_init(&m) == 0);
    CHECK(osip_message_parse(m, msg, strlen(msg)) == 0);
    char *out = NULL;
    size_t len = 0;
    CHECK(osip_message_to_str(m, &out, &len) == 0 && len > 100);
    osip_free(out);
    osip_message_free(m);
  }
}

static void test_core_blocks(void) {
  /* calloc zeroes a reused block, whatever its last use left in it */
  char *p = sr__malloc(60);
  REQUIRE(p);
  memset(p, 'x', 60);
  sr__free(p);
  unsigned char *z = sr__calloc(6, 10);
  REQUIRE(z);
  if (KEEPS) CHECK((char *)z == p);
  size_t nonzero = 0;
  for (int i = 0; i < 60; i++) nonzero += z[i] != 0;
  CHECK_INT(nonzero, 0);
  /* shared with libosip2: either side frees the other's blocks */
  osip_free(z);
  char *o = osip_malloc(8);
  REQUIRE(o);
  sr__free(o);
  CHECK(sr__calloc(SIZE_MAX / 2, 3) == NULL); /* n * size overflows */
  char *d = sr__strndup("abcdef", 3), *e = sr__strndup("ab", 10);
  char *f = sr__strdup("");
  REQUIRE(d && e && f);
  CHECK_STR(d, "abc");
  CHECK_STR(e, "ab");
  CHECK_STR(f, "");
  char *g = sr__realloc(d, 2000);
  REQUIRE(g);
  CHECK_STR(g, "abc");
  sr__free(g);
  sr__free(e);
  sr__free(f);
  sr__free(NULL);
  /* sr__free takes a glibc block too (see test_foreign_block for why
   * not under the sanitizers or valgrind) */
  if (!KEEPS || RUNNING_ON_VALGRIND) return;
  char *plain = strdup("a glibc block");
  REQUIRE(plain);
  sr__free(plain);
}

int main(void) {
  RUN(test_installed);
  RUN(test_reuse_by_class);
  RUN(test_realloc);
  RUN(test_buffer_classes);
  RUN(test_zero_and_large);
  RUN(test_other_thread);
  RUN(test_foreign_block);
  RUN(test_many_messages);
  RUN(test_core_blocks);
  return DONE();
}
