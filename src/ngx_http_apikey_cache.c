
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_apikey_cache.h"
#include "ngx_http_apikey_siphash.h"


/*
 * No news from a subscribing worker for this long (it PINGs every
 * second): it is stuck or gone, and vouches for nothing.
 */
#define NGX_HTTP_APIKEY_CACHE_SILENCE  2500

/* entries looked at to make room: given a second chance or evicted */
#define NGX_HTTP_APIKEY_CACHE_EVICT    256

/* expired unknown keys dropped at most per new one */
#define NGX_HTTP_APIKEY_CACHE_EXPIRE   8


typedef struct ngx_http_apikey_cache_node_s  ngx_http_apikey_cache_node_t;


/* a worker's subscriptions: unix msec of the last PONG, 0 when down */

typedef struct {
    ngx_pid_t                          pid;
    uint64_t                           heard[NGX_HTTP_APIKEY_CACHE_SOURCES];
} ngx_http_apikey_cache_slot_t;


/*
 * A hash table rather than limit_req's rbtree: with a hundred thousand
 * keys an rbtree walk is some seventeen cache and TLB misses per request,
 * a bucket one or two.  The digest is uniform, but a client chooses its
 * tokens: ground for the same low bits they would share one bucket, so
 * the index is SipHash of the digest under a key of the zone's own.
 */

typedef struct {
    ngx_http_apikey_cache_node_t     **buckets;
    ngx_uint_t                         mask;
    u_char                             key[NGX_HTTP_APIKEY_SIPHASH_KEY_LEN];
    ngx_queue_t                        queue;

    /*
     * Unknown keys, oldest last: any client can make them, so they may
     * take a share of the zone only, not push known keys out
     */
    ngx_queue_t                        negative;
    ngx_uint_t                         nnegative;
    ngx_uint_t                         max_negative;

    /* changes with every invalidation: a reply older than it is not kept */
    ngx_uint_t                         seq;

    /* for apikey_metrics: kept under the lock, as the entries are */
    ngx_http_apikey_cache_stats_t      stats;

    /* the configuration whose workers vouch for the entries */
    uint32_t                           config;

    /* unix msec until which some live subscription vouches for a source */
    uint64_t                           until[NGX_HTTP_APIKEY_CACHE_SOURCES];

    /*
     * Entries kept past the last subscription (apikey_cache_stale) are
     * confirmed until this unix msec: the last moment a subscription
     * heard all; 0 while none are kept.
     */
    uint64_t                           lost[NGX_HTTP_APIKEY_CACHE_SOURCES];

    ngx_http_apikey_cache_slot_t       slots[NGX_HTTP_APIKEY_CACHE_WORKERS];
} ngx_http_apikey_cache_sh_t;


typedef struct {
    ngx_http_apikey_cache_sh_t        *sh;
    ngx_slab_pool_t                   *shpool;
    uint32_t                           config;

    /* some location serves entries stale: they outlive a subscription */
    ngx_uint_t                         keep;

    /* entries the last find looked at, for the debug log: floods show */
    ngx_uint_t                         walked;
} ngx_http_apikey_cache_t;


struct ngx_http_apikey_cache_node_s {
    ngx_http_apikey_cache_node_t      *next;       /* in its bucket */
    ngx_queue_t                        queue;
    uint64_t                           expire;     /* unix msec */
    uint64_t                           read;       /* unix msec, asked */
    time_t                             expires_at;
    u_char                             digest[NGX_HTTP_APIKEY_HASH_LEN];
    u_char                             source;
    u_char                             negative;
    u_char                             revoked;
    u_char                             referenced;
    u_short                            len[5];     /* id name org scopes
                                                      nets */
    u_short                            nfields;    /* apikey_record_fields */

    ngx_http_apikey_rate_t             rate;
    uint32_t                           burst;
    u_char                             has_burst;
    u_char                             rate_invalid;
    u_char                             cidrs_invalid;

    /*
     * a record's fields (the lengths of its apikey_record_fields first,
     * then every string), or an unknown key's place among the others
     */
    union {
        ngx_queue_t                    negative;
        u_char                         data[1];
    } u;
};


static void ngx_http_apikey_cache_fingerprint(uint32_t *crc, ngx_str_t *s);
static ngx_int_t ngx_http_apikey_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_apikey_cache_node_t *ngx_http_apikey_cache_find(
    ngx_http_apikey_cache_t *cache, ngx_uint_t source, u_char *digest);
static void ngx_http_apikey_cache_delete(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *node);
static void ngx_http_apikey_cache_free(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *node);
static ngx_int_t ngx_http_apikey_cache_hit(ngx_http_apikey_cache_node_t *node,
    ngx_pool_t *pool, ngx_http_apikey_record_t *record);
static ngx_int_t ngx_http_apikey_cache_copy(ngx_http_apikey_cache_node_t *node,
    ngx_pool_t *pool, ngx_http_apikey_record_t *record);
static ngx_http_apikey_cache_node_t *ngx_http_apikey_cache_alloc(
    ngx_http_apikey_cache_t *cache, size_t size, ngx_uint_t negative);
static void ngx_http_apikey_cache_flush_locked(
    ngx_http_apikey_cache_t *cache, ngx_int_t source);
static void ngx_http_apikey_cache_until(ngx_http_apikey_cache_t *cache,
    ngx_uint_t source);
static ngx_http_apikey_cache_node_t **ngx_http_apikey_cache_bucket(
    ngx_http_apikey_cache_t *cache, u_char *digest);



ngx_shm_zone_t *
ngx_http_apikey_cache_add(ngx_conf_t *cf, ngx_str_t *name, size_t size)
{
    ngx_shm_zone_t           *shm_zone;
    ngx_http_apikey_cache_t  *cache;

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_cache_t));
    if (cache == NULL) {
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, name, size, &ngx_http_apikey_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", name);
        return NULL;
    }

    shm_zone->init = ngx_http_apikey_cache_init_zone;
    shm_zone->data = cache;

    return shm_zone;
}


/*
 * Entries are keyed by source index: workers of another configuration
 * (during a reload) may number sources otherwise, or read another
 * database, user or address under the same URL, and must not share them.
 * The fingerprint holds whatever decides where a record comes from, and
 * which apikey_record_fields an entry holds; not the password, which a CRC
 * in shared memory would all but give away.
 */

void
ngx_http_apikey_cache_sources(ngx_shm_zone_t *shm_zone, ngx_array_t *sources,
    ngx_array_t *fields)
{
    u_char                           db[NGX_INT_T_LEN];
    uint32_t                         crc;
    ngx_str_t                        s, *name;
    ngx_uint_t                       i, j;
    ngx_http_apikey_cache_t         *cache;
    ngx_http_apikey_source_t       **source;
    ngx_http_apikey_redis_server_t  *server;

    cache = shm_zone->data;
    source = sources->elts;

    ngx_crc32_init(crc);

    for (i = 0; i < sources->nelts; i++) {
        server = source[i]->server;

        ngx_http_apikey_cache_fingerprint(&crc, &server->url);

        for (j = 0; j < server->naddrs; j++) {
            ngx_http_apikey_cache_fingerprint(&crc, &server->addrs[j].name);
        }

        s.data = db;
        s.len = ngx_sprintf(db, "%ui", server->db) - db;

        ngx_http_apikey_cache_fingerprint(&crc, &s);
        ngx_http_apikey_cache_fingerprint(&crc, &server->user);
        ngx_http_apikey_cache_fingerprint(&crc, &source[i]->prefix);
    }

    /* entries hold the values of these fields, in this order */

    name = fields->elts;

    for (i = 0; i < fields->nelts; i++) {
        ngx_http_apikey_cache_fingerprint(&crc, &name[i]);
    }

    ngx_crc32_final(crc);

    cache->config = crc;
}


/* at configuration time, for a location with apikey_cache_stale */

void
ngx_http_apikey_cache_keep(ngx_shm_zone_t *shm_zone)
{
    ngx_http_apikey_cache_t  *cache;

    cache = shm_zone->data;
    cache->keep = 1;
}


/* each string with its length first: no two lists read the same */

static void
ngx_http_apikey_cache_fingerprint(uint32_t *crc, ngx_str_t *s)
{
    u_char  len[NGX_SIZE_T_LEN + 1];

    ngx_crc32_update(crc, len, ngx_sprintf(len, "%uz:", s->len) - len);
    ngx_crc32_update(crc, s->data, s->len);
}


static ngx_int_t
ngx_http_apikey_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_apikey_cache_t  *ocache = data;

    size_t                       len;
    ngx_uint_t                   n;
    ngx_http_apikey_cache_t     *cache;
    ngx_http_apikey_cache_sh_t  *sh;

    cache = shm_zone->data;

    /* the index key goes with the zone: entries are where it put them */

    if (ocache) {
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(cache->shpool, sizeof(ngx_http_apikey_cache_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(sh, sizeof(ngx_http_apikey_cache_sh_t));

    cache->sh = sh;
    cache->shpool->data = sh;

    if (RAND_bytes(sh->key, NGX_HTTP_APIKEY_SIPHASH_KEY_LEN) != 1) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "apikey cache: RAND_bytes() failed for zone \"%V\"",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    /* a bucket for every 512 bytes of the zone, a power of two */

    for (n = 64; n * 512 < shm_zone->shm.size; n *= 2) { /* void */ }

    sh->buckets = ngx_slab_calloc(cache->shpool,
                                  n * sizeof(ngx_http_apikey_cache_node_t *));
    if (sh->buckets == NULL) {
        return NGX_ERROR;
    }

    sh->mask = n - 1;

    ngx_queue_init(&sh->queue);
    ngx_queue_init(&sh->negative);

    /*
     * As many unknown keys as buckets: at 128 bytes of slab each, a
     * quarter of the zone
     */

    sh->max_negative = n;

    len = sizeof(" in apikey_cache zone \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in apikey_cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone evicts entries; running out of memory is not news */
    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * NGX_OK: a key's record, copied into pool; NGX_DECLINED: a known unknown
 * key; NGX_AGAIN: not cached, *seq tells how fresh a reply must be to be
 * kept; NGX_BUSY: the cache cannot be trusted right now, ask Redis.
 */

ngx_int_t
ngx_http_apikey_cache_get(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest, ngx_pool_t *pool,
    ngx_http_apikey_record_t *record, ngx_uint_t *seq)
{
    ngx_int_t                      rc;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *node;

    cache = shm_zone->data;
    sh = cache->sh;

    /* one word, read without the lock: a torn read is impossible */

    if (sh->config != cache->config
        || sh->until[source->index] < ngx_http_apikey_cache_now())
    {
        return NGX_BUSY;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    *seq = sh->seq;

    node = ngx_http_apikey_cache_find(cache, source->index, digest);

    rc = (node == NULL) ? NGX_AGAIN
                        : ngx_http_apikey_cache_hit(node, pool, record);

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "apikey cache: lookup walked %ui entries: %i",
                   cache->walked, rc);

    return rc;
}


/*
 * For a Redis that cannot answer: the key's entry, if Redis confirmed it
 * less than stale ago.  While a subscription is live, an entry is
 * confirmed now; once the last one is lost, it was confirmed when it was
 * read or when a subscription last heard all, whichever is later.
 * NGX_OK and NGX_DECLINED as ngx_http_apikey_cache_get() returns them;
 * NGX_BUSY: nothing to serve.
 */

ngx_int_t
ngx_http_apikey_cache_get_stale(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest, ngx_pool_t *pool,
    ngx_http_apikey_record_t *record, ngx_msec_t stale)
{
    uint64_t                       now, confirmed;
    ngx_int_t                      rc;
    ngx_uint_t                     i;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *node;

    cache = shm_zone->data;
    sh = cache->sh;
    i = source->index;
    now = ngx_http_apikey_cache_now();

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (sh->until[i] >= now) {
        confirmed = now;

    } else if (sh->lost[i]) {
        confirmed = sh->lost[i];

    } else {
        /* every subscriber stuck, none down yet: the last PONG vouched */
        confirmed = sh->until[i] ? sh->until[i] - NGX_HTTP_APIKEY_CACHE_SILENCE
                                 : 0;
    }

    node = NULL;

    if (sh->config == cache->config && confirmed) {
        node = ngx_http_apikey_cache_find(cache, i, digest);
    }

    if (node && node->read > confirmed) {
        confirmed = node->read;
    }

    if (node == NULL || confirmed + stale <= now) {
        rc = NGX_BUSY;

    } else {
        rc = ngx_http_apikey_cache_hit(node, pool, record);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * Redis answered a lookup of the key while no subscription vouches for
 * the source: an entry kept from before is no longer its word.
 */

void
ngx_http_apikey_cache_answered(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest)
{
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *node;

    cache = shm_zone->data;
    sh = cache->sh;

    if (!cache->keep
        || sh->until[source->index] >= ngx_http_apikey_cache_now())
    {
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (sh->config == cache->config) {
        node = ngx_http_apikey_cache_find(cache, source->index, digest);

        if (node) {
            ngx_http_apikey_cache_delete(cache, node);
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * Second chance rather than a strict LRU: moving the entry to the head
 * would touch two other random entries on every hit.
 */

static ngx_int_t
ngx_http_apikey_cache_hit(ngx_http_apikey_cache_node_t *node,
    ngx_pool_t *pool, ngx_http_apikey_record_t *record)
{
    node->referenced = 1;

    return node->negative ? NGX_DECLINED
                          : ngx_http_apikey_cache_copy(node, pool, record);
}


static ngx_int_t
ngx_http_apikey_cache_copy(ngx_http_apikey_cache_node_t *node,
    ngx_pool_t *pool, ngx_http_apikey_record_t *record)
{
    u_char      *p, *data;
    size_t       size;
    u_short     *flen;
    ngx_str_t   *s[5];
    ngx_uint_t   i;

    flen = (u_short *) node->u.data;
    data = node->u.data + node->nfields * sizeof(u_short);

    size = 0;

    for (i = 0; i < 5; i++) {
        size += node->len[i];
    }

    for (i = 0; i < node->nfields; i++) {
        size += flen[i];
    }

    p = ngx_palloc(pool, node->nfields * sizeof(ngx_str_t) + size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    record->fields = (ngx_str_t *) p;
    record->nfields = node->nfields;
    p += node->nfields * sizeof(ngx_str_t);

    s[0] = &record->id;
    s[1] = &record->name;
    s[2] = &record->org;
    s[3] = &record->scopes;
    s[4] = &record->nets;

    ngx_memcpy(p, data, size);

    for (i = 0; i < 5; i++) {
        s[i]->data = p;
        s[i]->len = node->len[i];
        p += node->len[i];
    }

    for (i = 0; i < node->nfields; i++) {
        record->fields[i].data = p;
        record->fields[i].len = flen[i];
        p += flen[i];
    }

    record->expires_at = node->expires_at;
    record->revoked = node->revoked;

    record->rate = node->rate;
    record->burst = node->burst;
    record->has_burst = node->has_burst;
    record->rate_invalid = node->rate_invalid;
    record->cidrs_invalid = node->cidrs_invalid;

    return NGX_OK;
}


void
ngx_http_apikey_cache_put(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest,
    ngx_http_apikey_record_t *record, ngx_uint_t seq, ngx_msec_t ttl,
    uint64_t read)
{
    u_char                        *p;
    size_t                         size;
    u_short                       *flen;
    ngx_str_t                     *s[5];
    ngx_uint_t                     i;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *node, **bucket;

    cache = shm_zone->data;
    sh = cache->sh;

    if (record) {
        size = offsetof(ngx_http_apikey_cache_node_t, u.data);

        s[0] = &record->id;
        s[1] = &record->name;
        s[2] = &record->org;
        s[3] = &record->scopes;
        s[4] = &record->nets;

        for (i = 0; i < 5; i++) {
            if (s[i]->len > 65535) {
                return;
            }

            size += s[i]->len;
        }

        size += record->nfields * sizeof(u_short);

        for (i = 0; i < record->nfields; i++) {
            if (record->fields[i].len > 65535) {
                return;
            }

            size += record->fields[i].len;
        }

    } else {
        size = offsetof(ngx_http_apikey_cache_node_t, u)
               + sizeof(ngx_queue_t);
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* an invalidation came after the lookup was sent: its reply is stale */

    if (sh->config != cache->config || sh->seq != seq
        || sh->until[source->index] < ngx_http_apikey_cache_now())
    {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    node = ngx_http_apikey_cache_find(cache, source->index, digest);

    if (node) {
        ngx_http_apikey_cache_delete(cache, node);
    }

    node = ngx_http_apikey_cache_alloc(cache, size, record == NULL);

    if (node == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    node->expire = ngx_http_apikey_cache_now() + ttl;
    node->read = read;
    ngx_memcpy(node->digest, digest, NGX_HTTP_APIKEY_HASH_LEN);
    node->source = (u_char) source->index;
    node->negative = (record == NULL);
    node->referenced = 0;
    node->revoked = 0;
    node->expires_at = 0;
    node->nfields = 0;
    ngx_memzero(node->len, sizeof(node->len));
    ngx_memzero(&node->rate, sizeof(ngx_http_apikey_rate_t));
    node->burst = 0;
    node->has_burst = 0;
    node->rate_invalid = 0;
    node->cidrs_invalid = 0;

    if (record) {
        node->revoked = record->revoked;
        node->expires_at = record->expires_at;

        node->rate = record->rate;
        node->burst = record->burst;
        node->has_burst = record->has_burst;
        node->rate_invalid = record->rate_invalid;
        node->cidrs_invalid = record->cidrs_invalid;

        node->nfields = (u_short) record->nfields;

        flen = (u_short *) node->u.data;
        p = node->u.data + record->nfields * sizeof(u_short);

        for (i = 0; i < 5; i++) {
            node->len[i] = (u_short) s[i]->len;
            p = ngx_cpymem(p, s[i]->data, s[i]->len);
        }

        for (i = 0; i < record->nfields; i++) {
            flen[i] = (u_short) record->fields[i].len;
            p = ngx_cpymem(p, record->fields[i].data, record->fields[i].len);
        }

    } else {
        ngx_queue_insert_head(&sh->negative, &node->u.negative);
        sh->nnegative++;
    }

    bucket = ngx_http_apikey_cache_bucket(cache, digest);

    node->next = *bucket;
    *bucket = node;

    ngx_queue_insert_head(&sh->queue, &node->queue);

    sh->stats.entries++;

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * Room for a new entry.  An unknown key takes the place of the oldest
 * one when they have their share, or the zone is full, so that a flood of
 * them evicts nothing else; otherwise the entry at the tail goes unless
 * it was used since it got there: then it goes back to the head, once.
 */

static ngx_http_apikey_cache_node_t *
ngx_http_apikey_cache_alloc(ngx_http_apikey_cache_t *cache, size_t size,
    ngx_uint_t negative)
{
    uint64_t                       now;
    ngx_uint_t                     n;
    ngx_queue_t                   *q;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *node;

    sh = cache->sh;

    if (negative) {
        now = ngx_http_apikey_cache_now();

        for (n = 0; n < NGX_HTTP_APIKEY_CACHE_EXPIRE; n++) {

            if (ngx_queue_empty(&sh->negative)) {
                break;
            }

            q = ngx_queue_last(&sh->negative);
            node = ngx_queue_data(q, ngx_http_apikey_cache_node_t,
                                  u.negative);

            if (node->expire > now) {
                if (sh->nnegative < sh->max_negative) {
                    break;
                }

                sh->stats.evictions++;
            }

            ngx_http_apikey_cache_delete(cache, node);
        }
    }

    for (n = 0; /* void */ ; n++) {

        node = ngx_slab_alloc_locked(cache->shpool, size);

        if (node || n == NGX_HTTP_APIKEY_CACHE_EVICT
            || ngx_queue_empty(&sh->queue))
        {
            return node;
        }

        if (negative && !ngx_queue_empty(&sh->negative)) {
            q = ngx_queue_last(&sh->negative);
            node = ngx_queue_data(q, ngx_http_apikey_cache_node_t,
                                  u.negative);
            ngx_http_apikey_cache_delete(cache, node);
            sh->stats.evictions++;
            continue;
        }

        q = ngx_queue_last(&sh->queue);
        node = ngx_queue_data(q, ngx_http_apikey_cache_node_t, queue);

        if (node->referenced) {
            node->referenced = 0;
            ngx_queue_remove(q);
            ngx_queue_insert_head(&sh->queue, q);
            continue;
        }

        ngx_http_apikey_cache_delete(cache, node);
        sh->stats.evictions++;
    }
}


static ngx_http_apikey_cache_node_t **
ngx_http_apikey_cache_bucket(ngx_http_apikey_cache_t *cache, u_char *digest)
{
    uint64_t  hash;

    hash = ngx_http_apikey_siphash(cache->sh->key, digest,
                                   NGX_HTTP_APIKEY_HASH_LEN);

    return &cache->sh->buckets[hash & cache->sh->mask];
}


/* expired entries met on the way are dropped: chains hold live ones */

static ngx_http_apikey_cache_node_t *
ngx_http_apikey_cache_find(ngx_http_apikey_cache_t *cache, ngx_uint_t source,
    u_char *digest)
{
    uint64_t                        now;
    ngx_http_apikey_cache_node_t   *node, **p;

    now = ngx_http_apikey_cache_now();

    cache->walked = 0;

    p = ngx_http_apikey_cache_bucket(cache, digest);

    while (*p) {
        node = *p;

        cache->walked++;

        if (node->expire <= now) {
            *p = node->next;
            ngx_http_apikey_cache_free(cache, node);
            continue;
        }

        if (node->source == source
            && ngx_memcmp(digest, node->digest, NGX_HTTP_APIKEY_HASH_LEN)
               == 0)
        {
            return node;
        }

        p = &node->next;
    }

    return NULL;
}


static void
ngx_http_apikey_cache_delete(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *node)
{
    ngx_http_apikey_cache_node_t  **p;

    for (p = ngx_http_apikey_cache_bucket(cache, node->digest);
         *p != node;
         p = &(*p)->next)
    {
        /* void */
    }

    *p = node->next;

    ngx_http_apikey_cache_free(cache, node);
}


/* the node is out of its bucket already */

static void
ngx_http_apikey_cache_free(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *node)
{
    if (node->negative) {
        ngx_queue_remove(&node->u.negative);
        cache->sh->nnegative--;
    }

    ngx_queue_remove(&node->queue);
    ngx_slab_free_locked(cache->shpool, node);

    cache->sh->stats.entries--;
}


/* source -1 flushes every source */

void
ngx_http_apikey_cache_flush(ngx_shm_zone_t *shm_zone, ngx_int_t source)
{
    ngx_http_apikey_cache_t  *cache;

    cache = shm_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    ngx_http_apikey_cache_flush_locked(cache, source);

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


static void
ngx_http_apikey_cache_flush_locked(ngx_http_apikey_cache_t *cache,
    ngx_int_t source)
{
    ngx_queue_t                   *q, *next;
    ngx_http_apikey_cache_node_t  *node;

    for (q = ngx_queue_head(&cache->sh->queue);
         q != ngx_queue_sentinel(&cache->sh->queue);
         q = next)
    {
        next = ngx_queue_next(q);
        node = ngx_queue_data(q, ngx_http_apikey_cache_node_t, queue);

        if (source == -1 || node->source == source) {
            ngx_http_apikey_cache_delete(cache, node);
        }
    }

    if (source == -1) {
        ngx_memzero(cache->sh->lost, sizeof(cache->sh->lost));

    } else {
        cache->sh->lost[source] = 0;
    }

    cache->sh->seq++;
}


/* key is a Redis key name from an invalidation message */

void
ngx_http_apikey_cache_invalidate(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *key, size_t len)
{
    u_char                        *hex, digest[NGX_HTTP_APIKEY_HASH_LEN];
    ngx_int_t                      n;
    ngx_uint_t                     i;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_node_t  *node;

    /* only record names matter: the indexes and last_used are not cached */

    if (len != source->prefix.len + NGX_HTTP_APIKEY_HASH_HEX_LEN
        || ngx_strncmp(key, source->prefix.data, source->prefix.len) != 0)
    {
        return;
    }

    hex = key + source->prefix.len;

    for (i = 0; i < NGX_HTTP_APIKEY_HASH_LEN; i++) {
        n = ngx_hextoi(hex + 2 * i, 2);

        if (n == NGX_ERROR) {
            return;
        }

        digest[i] = (u_char) n;
    }

    cache = shm_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    node = ngx_http_apikey_cache_find(cache, source->index, digest);

    if (node) {
        ngx_http_apikey_cache_delete(cache, node);
        cache->sh->stats.invalidations++;
    }

    cache->sh->seq++;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "apikey cache: invalidated %*s...", (size_t) 8, hex);
}


/*
 * What a worker's subscription on a source tells: it is live (it hears
 * every write from now on), it still hears (a PONG), or it is down.  While
 * no worker's has been heard lately, the source is bypassed.  A
 * subscription that comes back may have missed writes that no other one
 * heard either (another worker stopped meanwhile): the source's entries
 * go; when the last one goes down, they go too, unless entries are served
 * stale: then they are kept, confirmed until the last PONG of any, since
 * every invalidation Redis queued before it came before it; the moment a
 * connection closes is not: Redis may have dropped what it had queued (a
 * kill, a CLIENT KILL, an output buffer over its limit).  A worker of
 * another configuration (draining after a reload) vouches for nothing.
 */

void
ngx_http_apikey_cache_vouch(ngx_shm_zone_t *shm_zone, ngx_uint_t source,
    ngx_uint_t state)
{
    uint64_t                       now, heard;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_slot_t  *slot;

    cache = shm_zone->data;
    sh = cache->sh;
    slot = &sh->slots[ngx_worker];
    now = ngx_http_apikey_cache_now();

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (sh->config != cache->config || slot->pid != ngx_pid
        || (state == NGX_HTTP_APIKEY_CACHE_HEARD && slot->heard[source] == 0))
    {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    switch (state) {

    case NGX_HTTP_APIKEY_CACHE_LIVE:
        ngx_http_apikey_cache_flush_locked(cache, source);
        slot->heard[source] = now;
        ngx_http_apikey_cache_until(cache, source);
        break;

    case NGX_HTTP_APIKEY_CACHE_HEARD:
        slot->heard[source] = now;

        if (sh->until[source] < now + NGX_HTTP_APIKEY_CACHE_SILENCE) {
            sh->until[source] = now + NGX_HTTP_APIKEY_CACHE_SILENCE;
        }

        break;

    default: /* NGX_HTTP_APIKEY_CACHE_DOWN */

        /* what some subscription heard last, this one's included */

        heard = slot->heard[source];

        if (sh->until[source] > heard + NGX_HTTP_APIKEY_CACHE_SILENCE) {
            heard = sh->until[source] - NGX_HTTP_APIKEY_CACHE_SILENCE;
        }

        slot->heard[source] = 0;
        ngx_http_apikey_cache_until(cache, source);

        if (sh->until[source] >= now) {
            break;
        }

        if (!cache->keep) {
            ngx_http_apikey_cache_flush_locked(cache, source);
            break;
        }

        if (sh->lost[source] < heard) {
            sh->lost[source] = heard;
        }

        sh->seq++;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* the lock is held */

static void
ngx_http_apikey_cache_until(ngx_http_apikey_cache_t *cache, ngx_uint_t source)
{
    uint64_t     until;
    ngx_uint_t   i;

    until = 0;

    for (i = 0; i < NGX_HTTP_APIKEY_CACHE_WORKERS; i++) {
        if (cache->sh->slots[i].heard[source]
            && cache->sh->slots[i].heard[source]
               + NGX_HTTP_APIKEY_CACHE_SILENCE > until)
        {
            until = cache->sh->slots[i].heard[source]
                    + NGX_HTTP_APIKEY_CACHE_SILENCE;
        }
    }

    cache->sh->until[source] = until;
}


void
ngx_http_apikey_cache_stats(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_cache_stats_t *stats)
{
    ngx_http_apikey_cache_t  *cache;

    cache = shm_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    *stats = cache->sh->stats;

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* some worker's subscription vouches for the source now */

ngx_uint_t
ngx_http_apikey_cache_live(ngx_shm_zone_t *shm_zone, ngx_uint_t source)
{
    ngx_http_apikey_cache_t  *cache;

    cache = shm_zone->data;

    return cache->sh->config == cache->config
           && cache->sh->until[source] >= ngx_http_apikey_cache_now();
}


/* every worker must agree on this clock: ngx_current_msec is per process */

uint64_t
ngx_http_apikey_cache_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}




/*
 * A worker takes its slot; the first worker of a new configuration (a
 * reload) takes the zone over: entries of the old one are not trusted.
 */

ngx_int_t
ngx_http_apikey_cache_init_process(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *amcf)
{
    ngx_uint_t                     i;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_slot_t  *slot;

    if (amcf->cache == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    cache = amcf->cache->data;
    sh = cache->sh;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (sh->config != cache->config) {
        sh->config = cache->config;
        ngx_memzero(sh->slots, sizeof(sh->slots));
        ngx_http_apikey_cache_flush_locked(cache, -1);
    }

    if (ngx_worker < NGX_HTTP_APIKEY_CACHE_WORKERS) {
        slot = &sh->slots[ngx_worker];
        ngx_memzero(slot, sizeof(ngx_http_apikey_cache_slot_t));
        slot->pid = ngx_pid;
    }

    for (i = 0; i < NGX_HTTP_APIKEY_CACHE_SOURCES; i++) {
        ngx_http_apikey_cache_until(cache, i);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return NGX_OK;
}
