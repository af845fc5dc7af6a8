/*
 * Which run of its node each remote identifier belongs to. Every start of a
 * node draws a random 64-bit creation; PIDs and aliases carry it on the wire
 * but not in their string form, so a node remembers the creation of the
 * identifiers it is handed (decoded payloads, senders of messages) and sends
 * it along with whatever it addresses to them: the other side then refuses
 * an identifier of one of its earlier runs instead of reaching a new process
 * that happens to have the same number. Two generations of at most `max`
 * entries each: an identifier neither seen nor used for two generations is
 * forgotten and means the current run again, as a PID typed in does.
 */
#ifndef HALO_CREATION_H
#define HALO_CREATION_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"

enum halo_id_kind { HALO_ID_PID, HALO_ID_ALIAS };

typedef struct halo_creations {
  halo_imap_t gen[2]; /* key -> creation (as the pointer value); gen[0] the newer */
  size_t max;         /* entries per generation */
} halo_creations_t;

/** Starts an empty table of at most 2 * max entries. */
void halo_creations_init(halo_creations_t *c, size_t max);
void halo_creations_destroy(halo_creations_t *c);
/** Remembers that identifier (kind, node, id) belongs to run creation (0 or
 *  an id past 2^31 is not remembered). 0 or HALO_ENOMEM. */
int halo_creations_learn(halo_creations_t *c, int kind, uint32_t node, uint64_t id, uint64_t creation);
/** The run identifier (kind, node, id) was last seen from, or 0 (unknown). */
uint64_t halo_creations_get(halo_creations_t *c, int kind, uint32_t node, uint64_t id);

#endif
