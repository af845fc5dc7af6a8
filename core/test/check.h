/*
 * A tiny check harness for the core's C tests. A failed check prints
 * file:line, the expression and the values, and makes check_exit_code()
 * non-zero; the test goes on so one run shows every failure.
 */
#ifndef HALO_TEST_CHECK_H
#define HALO_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);         \
      check_failures++;                                                                 \
    }                                                                                   \
  } while (0)

/* Compares as 64-bit integers; prints both values in decimal and hex. */
#define CHECK_EQ(a, b)                                                                  \
  do {                                                                                  \
    long long check_a_ = (long long)(a), check_b_ = (long long)(b);                     \
    if (check_a_ != check_b_) {                                                         \
      fprintf(stderr, "%s:%d: CHECK_EQ(%s, %s) failed: %lld (0x%llx) != %lld (0x%llx)\n", \
              __FILE__, __LINE__, #a, #b, check_a_, (unsigned long long)check_a_,       \
              check_b_, (unsigned long long)check_b_);                                  \
      check_failures++;                                                                 \
    }                                                                                   \
  } while (0)

#define CHECK_STR_EQ(a, b)                                                              \
  do {                                                                                  \
    const char *check_a_ = (a), *check_b_ = (b);                                        \
    if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                    \
      fprintf(stderr, "%s:%d: CHECK_STR_EQ(%s, %s) failed: \"%s\" != \"%s\"\n",          \
              __FILE__, __LINE__, #a, #b, check_a_ ? check_a_ : "(null)",               \
              check_b_ ? check_b_ : "(null)");                                          \
      check_failures++;                                                                 \
    }                                                                                   \
  } while (0)

/* Runs one test function and reports it. */
#define RUN_TEST(fn)                                                                    \
  do {                                                                                  \
    int check_before_ = check_failures;                                                 \
    fn();                                                                               \
    fprintf(stderr, "%s %s\n", check_failures == check_before_ ? "ok  " : "FAIL", #fn); \
  } while (0)

/* What main returns. */
static inline int check_exit_code(void) { return check_failures ? 1 : 0; }

#endif
