
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey_store.h"


/* HSET, the record's name, and its fields */
#define APIKEY_STORE_HSET_ARGS   (2 + 2 * NGX_HTTP_APIKEY_OBJECT_FIELDS_MAX)

/* an id drawn is taken once in 62^12: three in a row mean a broken RNG */
#define APIKEY_STORE_ID_TRIES    3


static const char *apikey_store_name(apikey_store_t *store, char *buf,
    const char *kind, const char *value);
static int apikey_store_claim_id(apikey_store_t *store,
    apikey_record_t *rec);
static int apikey_store_list_stale(apikey_store_list_t *list, const char *id);
static int apikey_store_append_keep(apikey_store_t *store, const char *id,
    int64_t until);
static const char *apikey_store_keep_at(int64_t until, char *buf);


/* docs/redis-schema.md: P<hash>, Pid:<id>, Pids, Porg:<org>, Plast_used */

const char *
apikey_store_record_name(apikey_store_t *store, char *buf, const char *hash)
{
    return apikey_store_name(store, buf, "", hash);
}


const char *
apikey_store_id_name(apikey_store_t *store, char *buf, const char *id)
{
    return apikey_store_name(store, buf, "id:", id);
}


const char *
apikey_store_ids_name(apikey_store_t *store, char *buf)
{
    return apikey_store_name(store, buf, "ids", "");
}


const char *
apikey_store_org_name(apikey_store_t *store, char *buf, const char *org)
{
    return apikey_store_name(store, buf, "org:", org);
}


const char *
apikey_store_last_used_name(apikey_store_t *store, char *buf)
{
    return apikey_store_name(store, buf, "last_used", "");
}


int
apikey_store_load(apikey_store_t *store, const char *id,
    apikey_record_t *rec, int watch)
{
    char         iname[APIKEY_STORE_NAME_LEN];
    char         rname[APIKEY_STORE_NAME_LEN];
    char         hash[NGX_HTTP_APIKEY_HASH_HEX_LEN + 1];
    redisReply  *reply;

    memset(rec, 0, sizeof(apikey_record_t));

    apikey_store_id_name(store, iname, id);

    /*
     * Only the record is watched: an id names one hash for as long as the
     * id index lives (it is claimed with NX), and on a cluster the two
     * keys live in different slots, while WATCH and the transaction that
     * follows it must stay on one node.
     */

    reply = apikey_redis_command(store->ctx, store->err, "GET", iname, NULL);
    if (reply == NULL) {
        return -1;
    }

    if (reply->type != REDIS_REPLY_STRING
        || reply->len != NGX_HTTP_APIKEY_HASH_HEX_LEN)
    {
        freeReplyObject(reply);
        goto none;
    }

    memcpy(hash, reply->str, NGX_HTTP_APIKEY_HASH_HEX_LEN);
    hash[NGX_HTTP_APIKEY_HASH_HEX_LEN] = '\0';
    freeReplyObject(reply);

    apikey_store_record_name(store, rname, hash);

    if (watch) {
        reply = apikey_redis_command(store->ctx, store->err, "WATCH", rname,
                                     NULL);
        if (reply == NULL) {
            return -1;
        }

        freeReplyObject(reply);
    }

    reply = apikey_redis_command(store->ctx, store->err, "HGETALL", rname,
                                 NULL);
    if (reply == NULL) {
        return -1;
    }

    if (ngx_http_apikey_object_parse(rec, reply) != 0
        || strcmp(rec->id, id) != 0)
    {
        freeReplyObject(reply);
        ngx_http_apikey_object_free(rec);
        goto none;
    }

    freeReplyObject(reply);

    memcpy(rec->hash, hash, sizeof(hash));

    if (apikey_store_last_used(store, rec) != 0) {
        ngx_http_apikey_object_free(rec);
        return -1;
    }

    return 0;

none:

    snprintf(store->err, APIKEY_ERR_LEN, "no key with id %s", id);

    return -1;
}


int
apikey_store_last_used(apikey_store_t *store, apikey_record_t *rec)
{
    char         name[APIKEY_STORE_NAME_LEN];
    redisReply  *reply;

    reply = apikey_redis_command(store->ctx, store->err, "HGET",
                                 apikey_store_last_used_name(store, name),
                                 rec->id, NULL);
    if (reply == NULL) {
        return -1;
    }

    ngx_http_apikey_object_last_used(rec, reply);
    freeReplyObject(reply);

    return 0;
}


/*
 * Three pipelined round trips however many keys there are: the index, the
 * id index of each id, then each record with its last use.
 */

int
apikey_store_list(apikey_store_t *store, const char *org,
    apikey_store_list_t *list)
{
    int               rc;
    size_t            i, n;
    char              set[APIKEY_STORE_NAME_LEN];
    char              name[APIKEY_STORE_NAME_LEN];
    redisReply       *ids, *reply, *used, **hashes;
    apikey_record_t  *rec;

    memset(list, 0, sizeof(apikey_store_list_t));

    if (org) {
        apikey_store_org_name(store, set, org);

    } else {
        apikey_store_ids_name(store, set);
    }

    ids = apikey_redis_command(store->ctx, store->err, "SMEMBERS", set, NULL);
    if (ids == NULL) {
        return -1;
    }

    n = (ids->type == REDIS_REPLY_ARRAY) ? ids->elements : 0;

    rc = -1;

    hashes = calloc(n + 1, sizeof(redisReply *));
    list->recs = calloc(n + 1, sizeof(apikey_record_t));
    list->stale = calloc(n + 1, sizeof(char *));

    if (hashes == NULL || list->recs == NULL || list->stale == NULL) {
        snprintf(store->err, APIKEY_ERR_LEN, "out of memory");
        goto done;
    }

    for (i = 0; i < n; i++) {
        apikey_redis_append(store->ctx, "GET",
                            apikey_store_id_name(store, name,
                                                 ids->element[i]->str),
                            NULL);
    }

    for (i = 0; i < n; i++) {
        hashes[i] = apikey_redis_read(store->ctx, store->err);

        if (hashes[i] == NULL) {
            goto done;
        }

        if (hashes[i]->type != REDIS_REPLY_STRING
            || hashes[i]->len != NGX_HTTP_APIKEY_HASH_HEX_LEN)
        {
            freeReplyObject(hashes[i]);
            hashes[i] = NULL;
        }
    }

    for (i = 0; i < n; i++) {
        if (hashes[i] != NULL) {
            apikey_redis_append(store->ctx, "HGETALL",
                                apikey_store_record_name(store, name,
                                                         hashes[i]->str),
                                NULL);
            apikey_redis_append(store->ctx, "HGET",
                                apikey_store_last_used_name(store, name),
                                ids->element[i]->str, NULL);
        }
    }

    for (i = 0; i < n; i++) {
        if (hashes[i] == NULL) {
            /* the record expired or was deleted */

            if (apikey_store_list_stale(list, ids->element[i]->str) != 0) {
                snprintf(store->err, APIKEY_ERR_LEN, "out of memory");
                goto done;
            }

            continue;
        }

        reply = apikey_redis_read(store->ctx, store->err);
        if (reply == NULL) {
            goto done;
        }

        used = apikey_redis_read(store->ctx, store->err);
        if (used == NULL) {
            freeReplyObject(reply);
            goto done;
        }

        rec = &list->recs[list->nrecs];

        if (ngx_http_apikey_object_parse(rec, reply) != 0) {
            freeReplyObject(reply);
            freeReplyObject(used);

            if (apikey_store_list_stale(list, ids->element[i]->str) != 0) {
                snprintf(store->err, APIKEY_ERR_LEN, "out of memory");
                goto done;
            }

            continue;
        }

        freeReplyObject(reply);

        ngx_http_apikey_object_last_used(rec, used);
        freeReplyObject(used);

        if (strcmp(rec->id, ids->element[i]->str) != 0
            || (org && (rec->org == NULL || strcmp(rec->org, org) != 0)))
        {
            /* not this index's key: leave it to whoever wrote it */
            ngx_http_apikey_object_free(rec);
            continue;
        }

        memcpy(rec->hash, hashes[i]->str, NGX_HTTP_APIKEY_HASH_HEX_LEN);
        list->nrecs++;
    }

    rc = 0;

done:

    for (i = 0; i < n; i++) {
        if (hashes && hashes[i]) {
            freeReplyObject(hashes[i]);
        }
    }

    free(hashes);
    freeReplyObject(ids);

    return rc;
}


int
apikey_store_prune(apikey_store_t *store, const char *org,
    apikey_store_list_t *list)
{
    size_t       i;
    char         err[APIKEY_ERR_LEN];
    char         name[APIKEY_STORE_NAME_LEN];
    redisReply  *reply;

    for (i = 0; i < list->nstale; i++) {
        if (org) {
            apikey_redis_append(store->ctx, "SREM",
                                apikey_store_org_name(store, name, org),
                                list->stale[i], NULL);
        }

        apikey_redis_append(store->ctx, "SREM",
                            apikey_store_ids_name(store, name),
                            list->stale[i], NULL);
        apikey_redis_append(store->ctx, "DEL",
                            apikey_store_id_name(store, name, list->stale[i]),
                            NULL);
        apikey_redis_append(store->ctx, "HDEL",
                            apikey_store_last_used_name(store, name),
                            list->stale[i], NULL);
    }

    /*
     * Housekeeping only: a refused command (an ACL, a read-only replica)
     * leaves the entry to the next list, which still leaves it out.
     */

    for (i = 0; i < list->nstale * (org ? 4 : 3); i++) {
        reply = apikey_redis_read(store->ctx, err);

        if (reply != NULL) {
            freeReplyObject(reply);
            continue;
        }

        if (store->ctx->err) {
            memcpy(store->err, err, APIKEY_ERR_LEN);
            return -1;
        }
    }

    return 0;
}


void
apikey_store_list_free(apikey_store_list_t *list)
{
    size_t  i;

    if (list->recs) {
        for (i = 0; i < list->nrecs; i++) {
            ngx_http_apikey_object_free(&list->recs[i]);
        }

        free(list->recs);
    }

    if (list->stale) {
        for (i = 0; i < list->nstale; i++) {
            free(list->stale[i]);
        }

        free(list->stale);
    }

    memset(list, 0, sizeof(apikey_store_list_t));
}


int
apikey_store_index(apikey_store_t *store, apikey_record_t *rec)
{
    int          rc, failed;
    size_t       i, n;
    char         err[APIKEY_ERR_LEN];
    char         name[APIKEY_STORE_NAME_LEN];
    redisReply  *reply;

    if (apikey_store_claim_id(store, rec) != 0) {
        return -1;
    }

    /*
     * Plain pipelined commands, not a transaction: an EXEC would end the
     * WATCH that rotate keeps on the old key meanwhile, and on a cluster
     * each key lives in a slot of its own.
     */

    rc = 0;
    n = 0;

    if (rec->expires_at) {
        rc |= apikey_store_append_keep(store, rec->id, rec->expires_at);
        n++;
    }

    rc |= apikey_redis_append(store->ctx, "SADD",
                              apikey_store_ids_name(store, name), rec->id,
                              NULL);
    n++;

    if (rec->org) {
        rc |= apikey_redis_append(store->ctx, "SADD",
                                  apikey_store_org_name(store, name,
                                                        rec->org),
                                  rec->id, NULL);
        n++;
    }

    if (rc != 0) {
        snprintf(store->err, APIKEY_ERR_LEN, "cannot send a command to Redis");
        return -1;
    }

    failed = 0;

    for (i = 0; i < n; i++) {
        reply = apikey_redis_read(store->ctx, err);

        if (reply != NULL) {
            freeReplyObject(reply);
            continue;
        }

        if (!failed) {
            memcpy(store->err, err, APIKEY_ERR_LEN);
            failed = 1;
        }

        if (store->ctx->err) {
            return -1;
        }
    }

    if (failed) {
        apikey_store_remove(store, rec);
        return -1;
    }

    return 0;
}


void
apikey_store_remove(apikey_store_t *store, apikey_record_t *rec)
{
    size_t       i, n;
    char         err[APIKEY_ERR_LEN];
    char         name[APIKEY_STORE_NAME_LEN];
    redisReply  *reply;

    n = 0;

    /* the record first, as revoke does: then nothing is usable */

    n += apikey_redis_append(store->ctx, "DEL",
                             apikey_store_record_name(store, name,
                                                      rec->hash),
                             NULL) == 0;
    n += apikey_redis_append(store->ctx, "DEL",
                             apikey_store_id_name(store, name, rec->id),
                             NULL) == 0;
    n += apikey_redis_append(store->ctx, "SREM",
                             apikey_store_ids_name(store, name), rec->id,
                             NULL) == 0;

    if (rec->org) {
        n += apikey_redis_append(store->ctx, "SREM",
                                 apikey_store_org_name(store, name, rec->org),
                                 rec->id, NULL) == 0;
    }

    /* an index of the wrong type refuses SREM, as it refused SADD */

    for (i = 0; i < n; i++) {
        reply = apikey_redis_read(store->ctx, err);

        if (reply != NULL) {
            freeReplyObject(reply);

        } else if (store->ctx->err) {
            break;
        }
    }
}


int
apikey_store_write_record(apikey_store_t *store, apikey_record_t *rec)
{
    int                              rc;
    size_t                           i;
    char                             at[32];
    char                             name[APIKEY_STORE_NAME_LEN];
    size_t                           argvlen[APIKEY_STORE_HSET_ARGS];
    const char                      *argv[APIKEY_STORE_HSET_ARGS];
    redisReply                      *reply;
    ngx_http_apikey_object_fields_t  fields;

    /* the fields the admin API writes too: one list, in the key object */

    ngx_http_apikey_object_fields(rec, &fields);

    argv[0] = "HSET";
    argv[1] = apikey_store_record_name(store, name, rec->hash);

    memcpy(&argv[2], fields.argv, fields.n * sizeof(char *));

    for (i = 0; i < 2 + fields.n; i++) {
        argvlen[i] = i < 2 ? strlen(argv[i]) : fields.argvlen[i - 2];
    }

    /*
     * One HSET makes the record whole at once; its TTL, housekeeping
     * only, follows in the same round trip, outside a transaction (see
     * apikey_store_index()).
     */

    rc = apikey_redis_append_argv(store->ctx, (int) (2 + fields.n), argv,
                                  argvlen);

    if (rc == 0 && rec->expires_at) {
        rc = apikey_redis_append(store->ctx, "EXPIREAT", argv[1],
                                 apikey_store_keep_at(rec->expires_at, at),
                                 NULL);
    }

    if (rc != 0) {
        snprintf(store->err, APIKEY_ERR_LEN, "cannot send a command to Redis");
        return APIKEY_STORE_FAILED;
    }

    reply = apikey_redis_read(store->ctx, store->err);

    if (reply == NULL) {
        return APIKEY_STORE_FAILED;
    }

    freeReplyObject(reply);

    if (rec->expires_at) {
        reply = apikey_redis_read(store->ctx, store->err);

        if (reply == NULL) {
            return APIKEY_STORE_PARTIAL;
        }

        freeReplyObject(reply);
    }

    return APIKEY_STORE_DONE;
}


size_t
apikey_store_queue_field(apikey_store_t *store, apikey_tx_t *tx,
    apikey_record_t *rec, const char *field, const char *value)
{
    char  name[APIKEY_STORE_NAME_LEN];

    return apikey_tx_queue(tx, "HSET",
                           apikey_store_record_name(store, name, rec->hash),
                           field, value, NULL);
}


size_t
apikey_store_queue_hdel(apikey_store_t *store, apikey_tx_t *tx,
    apikey_record_t *rec, const char *field)
{
    char  name[APIKEY_STORE_NAME_LEN];

    return apikey_tx_queue(tx, "HDEL",
                           apikey_store_record_name(store, name, rec->hash),
                           field, NULL);
}


/* the module decides by expires_at and revoked, never by these TTLs */

void
apikey_store_queue_keep(apikey_store_t *store, apikey_tx_t *tx,
    apikey_record_t *rec, int64_t until)
{
    char  name[APIKEY_STORE_NAME_LEN];
    char  at[32];

    apikey_store_record_name(store, name, rec->hash);

    if (until == 0) {
        apikey_tx_queue(tx, "PERSIST", name, NULL);
        return;
    }

    apikey_tx_queue(tx, "EXPIREAT", name, apikey_store_keep_at(until, at),
                    NULL);
}


int
apikey_store_keep_id(apikey_store_t *store, apikey_record_t *rec,
    int64_t until)
{
    redisReply  *reply;

    if (apikey_store_append_keep(store, rec->id, until) != 0) {
        snprintf(store->err, APIKEY_ERR_LEN, "cannot send a command to Redis");
        return -1;
    }

    reply = apikey_redis_read(store->ctx, store->err);
    if (reply == NULL) {
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}


static int
apikey_store_append_keep(apikey_store_t *store, const char *id,
    int64_t until)
{
    char  name[APIKEY_STORE_NAME_LEN];
    char  at[32];

    apikey_store_id_name(store, name, id);

    if (until == 0) {
        return apikey_redis_append(store->ctx, "PERSIST", name, NULL);
    }

    return apikey_redis_append(store->ctx, "EXPIREAT", name,
                               apikey_store_keep_at(until, at), NULL);
}


/* buf holds 32 bytes */

static const char *
apikey_store_keep_at(int64_t until, char *buf)
{
    snprintf(buf, 32, "%lld", (long long) (until + APIKEY_KEEP));

    return buf;
}


/*
 * Ids are random; SET NX makes sure that one already taken is never
 * overwritten, and another is drawn.
 */

static int
apikey_store_claim_id(apikey_store_t *store, apikey_record_t *rec)
{
    int          n, taken;
    char        *id;
    char         name[APIKEY_STORE_NAME_LEN];
    redisReply  *reply;

    for (n = 0; n < APIKEY_STORE_ID_TRIES; n++) {

        id = apikey_record_id();
        if (id == NULL) {
            snprintf(store->err, APIKEY_ERR_LEN, "cannot make an id");
            return -1;
        }

        reply = apikey_redis_command(store->ctx, store->err, "SET",
                                     apikey_store_id_name(store, name, id),
                                     rec->hash, "NX", NULL);
        if (reply == NULL) {
            free(id);
            return -1;
        }

        taken = (reply->type == REDIS_REPLY_NIL);
        freeReplyObject(reply);

        if (!taken) {
            free(rec->id);
            rec->id = id;
            return 0;
        }

        free(id);
    }

    snprintf(store->err, APIKEY_ERR_LEN,
             "cannot find a free id in %d tries", APIKEY_STORE_ID_TRIES);

    return -1;
}


static const char *
apikey_store_name(apikey_store_t *store, char *buf, const char *kind,
    const char *value)
{
    snprintf(buf, APIKEY_STORE_NAME_LEN, "%s%s%s", store->prefix, kind, value);

    return buf;
}


static int
apikey_store_list_stale(apikey_store_list_t *list, const char *id)
{
    list->stale[list->nstale] = strdup(id);

    if (list->stale[list->nstale] == NULL) {
        return -1;
    }

    list->nstale++;

    return 0;
}
