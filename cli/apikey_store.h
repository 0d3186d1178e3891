
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The apikey tool's store: every Redis key name of docs/redis-schema.md
 * (the record P<hash>, the indexes Pid:<id>, Pids and Porg:<org>, and the
 * module's Plast_used), and what the tool reads and writes there.
 */


#ifndef _APIKEY_STORE_H_INCLUDED_
#define _APIKEY_STORE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "apikey_redis.h"
#include "apikey_record.h"
#include "apikey_tx.h"


#define APIKEY_STORE_PREFIX      NGX_HTTP_APIKEY_KEY_REDIS_PREFIX
#define APIKEY_STORE_NAME_LEN    1024


typedef struct {
    apikey_redis_t        *ctx;
    const char            *prefix;
    char                   err[APIKEY_ERR_LEN];
} apikey_store_t;


/* what "apikey list" found: the records, and index entries gone stale */
typedef struct {
    apikey_record_t       *recs;
    size_t                 nrecs;
    char                 **stale;
    size_t                 nstale;
} apikey_store_list_t;


/* the Redis key names; buf holds APIKEY_STORE_NAME_LEN bytes */
const char *apikey_store_record_name(apikey_store_t *store, char *buf,
    const char *hash);
const char *apikey_store_id_name(apikey_store_t *store, char *buf,
    const char *id);
const char *apikey_store_ids_name(apikey_store_t *store, char *buf);
const char *apikey_store_org_name(apikey_store_t *store, char *buf,
    const char *org);
const char *apikey_store_last_used_name(apikey_store_t *store, char *buf);

/*
 * Finds a record through the id index; with watch, the record is watched
 * so that a following transaction fails if anyone changed it.  Returns
 * 0, or -1 with a message in store->err ("no key with id ...").
 */
int apikey_store_load(apikey_store_t *store, const char *id,
    apikey_record_t *rec, int watch);

/* the last use, which the module writes apart from the record */
int apikey_store_last_used(apikey_store_t *store, apikey_record_t *rec);

/* the records of the id index, or of one organisation's */
int apikey_store_list(apikey_store_t *store, const char *org,
    apikey_store_list_t *list);

/* drops the index entries whose record is gone */
int apikey_store_prune(apikey_store_t *store, const char *org,
    apikey_store_list_t *list);

void apikey_store_list_free(apikey_store_list_t *list);

/* what apikey_store_write_record() returns */
#define APIKEY_STORE_DONE      0
#define APIKEY_STORE_FAILED   -1     /* the record is not written */
#define APIKEY_STORE_PARTIAL  -2     /* it is, its housekeeping TTL not */


/*
 * The writes of docs/redis-schema.md, "Write order", each key on its own
 * (on a cluster each lives in a slot of its own), in an order in which a
 * write that stops half-way leaves no usable key that should not be:
 *
 *   create   apikey_store_index(), then apikey_store_write_record();
 *   revoke   the record (a transaction of its fields and TTL), then
 *            apikey_store_keep_id();
 *   update   the same, apikey_store_keep_id() before the record when the
 *            key lives longer, after it when it lives shorter;
 *   rotate   the new key as a create, then the old key as an update.
 */

/*
 * Writes the index entries of a new record: Pid:<id> (and its TTL), Pids
 * and Porg:<org>.  They go first, since without the record they are of no
 * use (list drops them).  Returns 0, or -1 with a message in store->err
 * after taking back what was written.
 */
int apikey_store_index(apikey_store_t *store, apikey_record_t *rec);

/*
 * Writes a new record and its TTL, the last write of a create: the key
 * is usable from then on.  Returns APIKEY_STORE_*.
 */
int apikey_store_write_record(apikey_store_t *store, apikey_record_t *rec);

/*
 * Takes a new key back, as far as Redis lets it: the record first, then
 * its index entries.
 */
void apikey_store_remove(apikey_store_t *store, apikey_record_t *rec);

/* queues HSET of one field of a record */
size_t apikey_store_queue_field(apikey_store_t *store, apikey_tx_t *tx,
    apikey_record_t *rec, const char *field, const char *value);

/* HDEL of one field of the record, in the transaction */
size_t apikey_store_queue_hdel(apikey_store_t *store, apikey_tx_t *tx,
    apikey_record_t *rec, const char *field);

/*
 * Queues the record's housekeeping TTL: it vanishes a week after "until"
 * (0: never).
 */
void apikey_store_queue_keep(apikey_store_t *store, apikey_tx_t *tx,
    apikey_record_t *rec, int64_t until);

/* the same TTL on the id index, a command of its own */
int apikey_store_keep_id(apikey_store_t *store, apikey_record_t *rec,
    int64_t until);


#endif /* _APIKEY_STORE_H_INCLUDED_ */
