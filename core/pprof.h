/*
 * A writer of pprof profiles: the message `Profile` of profile.proto
 * (github.com/google/pprof, proto/profile.proto), gzipped, as
 * `go tool pprof` and every pprof-reading tool open it.
 *
 * The protobuf encoding is written by hand (varints and length-delimited
 * fields): the profile is one fixed message of a dozen fields, written and
 * never read. Debian's protobuf-c would need a protoc code-generation step
 * at build time and a generated .pb-c.c for this one message, and nanopb is
 * not packaged; the hand-written encoder is shorter than either's glue.
 * Compression is zlib's (gzip framing, as pprof expects).
 *
 * Use: halo_pprof_new, the sample types (one value per type in every
 * sample, in order), optionally halo_pprof_period / halo_pprof_times, then
 * locations by (function, file, line) and samples over them, then
 * halo_pprof_write. Functions and locations are deduplicated; every string
 * goes once into the string table. Samples are encoded as they are added,
 * so memory grows with the bytes of the profile, not with C structures.
 * Every location belongs to one mapping (the program, "halo") marked as
 * carrying functions, file names and line numbers, so pprof never tries to
 * symbolize addresses.
 */
#ifndef HALO_PPROF_H
#define HALO_PPROF_H

#include <stddef.h>
#include <stdint.h>

typedef struct halo_pprof halo_pprof_t;

/** A sample's label: a string label when str is set, else a numeric one
 *  (num, with num_unit or NULL). */
typedef struct halo_pprof_label {
  const char *key;
  const char *str;
  int64_t num;
  const char *num_unit;
} halo_pprof_label_t;

/** A new empty profile, or NULL when out of memory. */
halo_pprof_t *halo_pprof_new(void);
void halo_pprof_free(halo_pprof_t *p);

/** Adds a sample type (e.g. "samples"/"count", "cpu"/"nanoseconds"); every
 *  sample carries one value per type, in the order they were added. Returns
 *  the type's index or HALO_ENOMEM. */
int halo_pprof_sample_type(halo_pprof_t *p, const char *type, const char *unit);

/** The sampling period and what it measures (e.g. "cpu"/"nanoseconds",
 *  10000000). Returns 0 or HALO_ENOMEM. */
int halo_pprof_period(halo_pprof_t *p, const char *type, const char *unit, int64_t period);

/** When the profile started (unix nanoseconds) and how long it covers. */
void halo_pprof_times(halo_pprof_t *p, int64_t time_nanos, int64_t duration_nanos);

/** The id of the location of function (name) in file at line (file may be
 *  NULL or "", line 0 when unknown), created the first time. Returns the id
 *  (>= 1) or 0 when out of memory. */
uint64_t halo_pprof_location(halo_pprof_t *p, const char *function, const char *file, int64_t line);

/** Adds a sample: its stack as location ids, innermost first (pprof's
 *  order), one value per sample type, and its labels. Returns 0,
 *  HALO_EINCORRECT when nvalues is not the number of sample types, or
 *  HALO_ENOMEM. */
int halo_pprof_sample(halo_pprof_t *p, const uint64_t *locations, size_t nlocations,
                      const int64_t *values, size_t nvalues,
                      const halo_pprof_label_t *labels, size_t nlabels);

/** Samples added so far. */
size_t halo_pprof_samples(const halo_pprof_t *p);

/** Writes the gzipped profile into a malloc'd buffer (*out, *len; the caller
 *  frees it). Returns 0 or HALO_ENOMEM. The profile stays usable. */
int halo_pprof_write(halo_pprof_t *p, unsigned char **out, size_t *len);

#endif
