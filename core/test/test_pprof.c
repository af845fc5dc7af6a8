/*
 * The pprof writer: the gzipped bytes inflate to a protobuf whose fields
 * decode to what was added (strings once, functions and locations
 * deduplicated, samples with values and labels), and `go tool pprof`
 * opens the file and reports the flat/cum figures the samples carry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "errors.h"
#include "pprof.h"

typedef struct field {
  unsigned num, wire;
  uint64_t v;
  const unsigned char *data;
  size_t len;
} field_t;

static int varint(const unsigned char **p, const unsigned char *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; *p < end && shift < 64; shift += 7) {
    unsigned char c = *(*p)++;
    *v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) return 0;
  }
  return -1;
}

/* Next field of a message; 1 when one was read, 0 at the end, -1 when malformed. */
static int next(const unsigned char **p, const unsigned char *end, field_t *f) {
  if (*p == end) return 0;
  uint64_t key;
  if (varint(p, end, &key) != 0) return -1;
  f->num = (unsigned)(key >> 3);
  f->wire = (unsigned)(key & 7);
  if (f->wire == 0) return varint(p, end, &f->v) == 0 ? 1 : -1;
  if (f->wire != 2 || varint(p, end, &f->v) != 0 || f->v > (uint64_t)(end - *p)) return -1;
  f->data = *p;
  f->len = (size_t)f->v;
  *p += f->len;
  return 1;
}

static unsigned char *gunzip(const unsigned char *in, size_t n, size_t *out_len) {
  size_t cap = 1 << 20;
  unsigned char *out = malloc(cap);
  z_stream z;
  memset(&z, 0, sizeof z);
  CHECK_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = (unsigned char *)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  CHECK_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  *out_len = z.total_out;
  inflateEnd(&z);
  return out;
}

static void decode_checks(const unsigned char *msg, size_t len) {
  const unsigned char *p = msg, *end = msg + len;
  field_t f;
  int rc, samples = 0, locations = 0, functions = 0, mappings = 0, types = 0;
  int strings = 0, first_empty = 0, saw_main = 0, nlabels = 0;
  uint64_t period = 0, duration = 0;
  while ((rc = next(&p, end, &f)) == 1) {
    switch (f.num) {
    case 1: types++; break;
    case 2: {
      samples++;
      const unsigned char *q = f.data, *qe = f.data + f.len;
      field_t g;
      while (next(&q, qe, &g) == 1)
        if (g.num == 3) nlabels++; /* labels: 2 + 1 + 1 */
      break;
    }
    case 3: mappings++; break;
    case 4: locations++; break;
    case 5: functions++; break;
    case 6:
      if (strings == 0 && f.len == 0) first_empty = 1;
      if (f.len == 4 && memcmp(f.data, "main", 4) == 0) saw_main++;
      strings++;
      break;
    case 10: duration = f.v; break;
    case 12: period = f.v; break;
    default: break;
    }
  }
  CHECK_EQ(rc, 0);
  CHECK_EQ(types, 2);
  CHECK_EQ(samples, 3);
  CHECK_EQ(mappings, 1);
  CHECK_EQ(functions, 3);  /* main, work, leaf: work twice at two lines is one function */
  CHECK_EQ(locations, 4);  /* main:1, work:10, work:11, leaf:20 */
  CHECK(first_empty);
  CHECK_EQ(saw_main, 1);   /* every string once */
  CHECK_EQ(nlabels, 4);
  CHECK_EQ(period, 10000000);
  CHECK_EQ(duration, 1000000000);
}

/* Runs go tool pprof -top on the file; returns its output (malloc'd) or NULL. */
static char *go_top(const char *path) {
  char dir[] = "/tmp/halo_pprof_goXXXXXX";
  if (!mkdtemp(dir)) return NULL;
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "HOME=%s GOCACHE=%s/cache GOFLAGS= GOTOOLCHAIN=local go tool pprof -top -nodecount=20 %s 2>&1; rm -rf %s",
           dir, dir, path, dir);
  FILE *f = popen(cmd, "r");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *out = calloc(1, cap);
  size_t r;
  while ((r = fread(out + n, 1, cap - 1 - n, f)) > 0) n += r;
  pclose(f);
  return out;
}

int main(void) {
  halo_pprof_t *p = halo_pprof_new();
  CHECK(p != NULL);
  CHECK_EQ(halo_pprof_sample_type(p, "samples", "count"), 0);
  CHECK_EQ(halo_pprof_sample_type(p, "cpu", "nanoseconds"), 1);
  CHECK_EQ(halo_pprof_period(p, "cpu", "nanoseconds", 10000000), 0);
  halo_pprof_times(p, 1700000000000000000LL, 1000000000);

  uint64_t main1 = halo_pprof_location(p, "main", "main.lua", 1);
  uint64_t work10 = halo_pprof_location(p, "work", "work.lua", 10);
  uint64_t work11 = halo_pprof_location(p, "work", "work.lua", 11);
  uint64_t leaf = halo_pprof_location(p, "leaf", NULL, 20);
  CHECK(main1 && work10 && work11 && leaf);
  CHECK_EQ(halo_pprof_location(p, "work", "work.lua", 10), work10);
  CHECK(work10 != work11);

  halo_pprof_label_t labels[2] = {{.key = "pid", .str = "<35DBD1C6.0.1001>"},
                                  {.key = "bytes", .num = 512, .num_unit = "bytes"}};
  uint64_t s1[] = {leaf, work10, main1};
  uint64_t s2[] = {work11, main1};
  uint64_t s3[] = {main1};
  int64_t v1[] = {7, 70000000}, v2[] = {2, 20000000}, v3[] = {1, 10000000};
  CHECK_EQ(halo_pprof_sample(p, s1, 3, v1, 2, labels, 2), 0);
  CHECK_EQ(halo_pprof_sample(p, s2, 2, v2, 2, labels, 1), 0);
  CHECK_EQ(halo_pprof_sample(p, s3, 1, v3, 2, labels, 1), 0);
  CHECK_EQ(halo_pprof_sample(p, s3, 1, v3, 1, NULL, 0), HALO_EINCORRECT);
  CHECK_EQ(halo_pprof_samples(p), 3);

  unsigned char *gz;
  size_t gz_len;
  CHECK_EQ(halo_pprof_write(p, &gz, &gz_len), 0);
  CHECK(gz_len > 20 && gz[0] == 0x1f && gz[1] == 0x8b);
  size_t raw_len;
  unsigned char *raw = gunzip(gz, gz_len, &raw_len);
  decode_checks(raw, raw_len);
  free(raw);

  /* a second write of the same profile gives the same bytes */
  unsigned char *gz2;
  size_t gz2_len;
  CHECK_EQ(halo_pprof_write(p, &gz2, &gz2_len), 0);
  CHECK_EQ(gz2_len, gz_len);
  CHECK(memcmp(gz, gz2, gz_len) == 0);
  free(gz2);

  char path[] = "/tmp/halo_pprof_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  CHECK_EQ(write(fd, gz, gz_len), (long long)gz_len);
  close(fd);
  free(gz);
  char *top = go_top(path);
  unlink(path);
  CHECK(top != NULL);
  if (top) {
    /* leaf: flat 70 ms of 100 (70%); work: flat 20, cum 90; main: flat 10, cum 100 */
    CHECK(strstr(top, "Type: cpu") != NULL);
    CHECK(strstr(top, "70.00%") != NULL && strstr(top, "leaf") != NULL);
    CHECK(strstr(top, "90.00%  work") != NULL);
    CHECK(strstr(top, "100%  main") != NULL);
    if (check_failures) fprintf(stderr, "go tool pprof -top said:\n%s\n", top);
    free(top);
  }

  /* an empty profile is still a valid one */
  halo_pprof_t *e = halo_pprof_new();
  CHECK_EQ(halo_pprof_write(e, &gz, &gz_len), 0);
  raw = gunzip(gz, gz_len, &raw_len);
  CHECK(raw_len > 0);
  free(raw);
  free(gz);
  halo_pprof_free(e);
  halo_pprof_free(p);
  return check_exit_code();
}
