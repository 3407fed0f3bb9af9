/*
 * harness.h — the C tests' tiny framework. CHECK records a failure and goes
 * on; REQUIRE stops the test function. DONE() prints "N passed, N failed"
 * and gives the exit code ctest reads.
 */
#ifndef SR_TEST_HARNESS_H
#define SR_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

static int h_passed, h_failed;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (cond) {                                                            \
      h_passed++;                                                          \
    } else {                                                               \
      h_failed++;                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,    \
              #cond);                                                      \
    }                                                                      \
  } while (0)

#define REQUIRE(cond)                                                      \
  do {                                                                     \
    if (cond) {                                                            \
      h_passed++;                                                          \
    } else {                                                               \
      h_failed++;                                                          \
      fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__,  \
              #cond);                                                      \
      return;                                                              \
    }                                                                      \
  } while (0)

#define CHECK_STR(a, b)                                                    \
  do {                                                                     \
    const char *h_a = (a), *h_b = (b);                                     \
    if (h_a && h_b && strcmp(h_a, h_b) == 0) {                             \
      h_passed++;                                                          \
    } else {                                                               \
      h_failed++;                                                          \
      fprintf(stderr, "%s:%d: CHECK_STR failed: %s == \"%s\" (got \"%s\")\n", \
              __FILE__, __LINE__, #a, h_b ? h_b : "(null)",                \
              h_a ? h_a : "(null)");                                       \
    }                                                                      \
  } while (0)

#define CHECK_INT(a, b)                                                    \
  do {                                                                     \
    long h_a = (long)(a), h_b = (long)(b);                                 \
    if (h_a == h_b) {                                                      \
      h_passed++;                                                          \
    } else {                                                               \
      h_failed++;                                                          \
      fprintf(stderr, "%s:%d: CHECK_INT failed: %s == %ld (got %ld)\n",   \
              __FILE__, __LINE__, #a, h_b, h_a);                           \
    }                                                                      \
  } while (0)

#define RUN(fn)                                                            \
  do {                                                                     \
    int h_before = h_failed;                                               \
    fn();                                                                  \
    fprintf(stderr, "%s %s\n", h_failed == h_before ? "ok  " : "FAIL", #fn); \
  } while (0)

#define DONE()                                                             \
  (printf("%d passed, %d failed\n", h_passed, h_failed), h_failed ? 1 : 0)

#endif
