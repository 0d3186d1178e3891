
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_apikey_cache.h"
#include "ngx_http_apikey_siphash.h"


/* how often the subscription is checked, and how soon it is tried again */
#define NGX_HTTP_APIKEY_CACHE_PING     1000
#define NGX_HTTP_APIKEY_CACHE_RETRY    500
#define NGX_HTTP_APIKEY_CACHE_REFUSED  5000

/* no news from the subscribing worker for this long: it is stuck or gone */
#define NGX_HTTP_APIKEY_CACHE_SILENCE  2500

#define NGX_HTTP_APIKEY_CACHE_BUFFER   1024
/* entries looked at to make room: given a second chance or evicted */
#define NGX_HTTP_APIKEY_CACHE_EVICT    256

/* expired unknown keys dropped at most per new one */
#define NGX_HTTP_APIKEY_CACHE_EXPIRE   8

/* keys one invalidation message may carry */
#define NGX_HTTP_APIKEY_CACHE_ELEMENTS 4096

#define NGX_HTTP_APIKEY_SUB_HELLO      0
#define NGX_HTTP_APIKEY_SUB_TRACKING   1
#define NGX_HTTP_APIKEY_SUB_SUBSCRIBE  2
#define NGX_HTTP_APIKEY_SUB_LIVE       3


typedef struct ngx_http_apikey_cache_node_s  ngx_http_apikey_cache_node_t;


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

    /* the worker whose subscriptions vouch for the entries, and when */
    ngx_pid_t                          owner;
    uint32_t                           config;
    ngx_uint_t                         valid[NGX_HTTP_APIKEY_CACHE_SOURCES];

    /* unix msec of the owner's last PONG (or subscription) per source */
    uint64_t                           heard[NGX_HTTP_APIKEY_CACHE_SOURCES];
} ngx_http_apikey_cache_sh_t;


typedef struct {
    ngx_http_apikey_cache_sh_t        *sh;
    ngx_slab_pool_t                   *shpool;
    uint32_t                           config;

    /* entries the last find looked at, for the debug log: floods show */
    ngx_uint_t                         walked;
} ngx_http_apikey_cache_t;


struct ngx_http_apikey_cache_node_s {
    ngx_http_apikey_cache_node_t      *next;       /* in its bucket */
    ngx_queue_t                        queue;
    uint64_t                           expire;     /* unix msec */
    time_t                             expires_at;
    u_char                             digest[NGX_HTTP_APIKEY_HASH_LEN];
    u_char                             source;
    u_char                             negative;
    u_char                             revoked;
    u_char                             referenced;
    u_short                            len[4];     /* id name org scopes */

    /* a record's fields, or an unknown key's place among the others */
    union {
        ngx_queue_t                    negative;
        u_char                         data[1];
    } u;
};


typedef struct {
    ngx_http_apikey_cache_t           *cache;
    ngx_http_apikey_source_t          *source;
    ngx_http_apikey_main_conf_t       *amcf;

    ngx_peer_connection_t              peer;
    redisReader                       *reader;
    ngx_event_t                        timer;
    ngx_log_t                          log;

    ngx_uint_t                         state;
    ngx_uint_t                         init;
    ngx_uint_t                         pings;
    ngx_msec_t                         retry;

    u_char                            *pos;
    u_char                            *last;
    u_char                             out[NGX_HTTP_APIKEY_CACHE_BUFFER];
} ngx_http_apikey_sub_t;


static void ngx_http_apikey_cache_fingerprint(uint32_t *crc, ngx_str_t *s);
static ngx_int_t ngx_http_apikey_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_apikey_cache_node_t *ngx_http_apikey_cache_find(
    ngx_http_apikey_cache_t *cache, ngx_uint_t source, u_char *digest);
static void ngx_http_apikey_cache_delete(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *node);
static void ngx_http_apikey_cache_free(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *node);
static ngx_int_t ngx_http_apikey_cache_copy(ngx_http_apikey_cache_node_t *node,
    ngx_pool_t *pool, ngx_http_apikey_record_t *record);
static ngx_http_apikey_cache_node_t *ngx_http_apikey_cache_alloc(
    ngx_http_apikey_cache_t *cache, size_t size, ngx_uint_t negative);
static void ngx_http_apikey_cache_flush(ngx_http_apikey_cache_t *cache,
    ngx_int_t source);
static void ngx_http_apikey_cache_invalidate(ngx_http_apikey_sub_t *sub,
    redisReply *key);
static uint64_t ngx_http_apikey_cache_now(void);
static ngx_http_apikey_cache_node_t **ngx_http_apikey_cache_bucket(
    ngx_http_apikey_cache_t *cache, u_char *digest);

static void ngx_http_apikey_sub_connect(ngx_http_apikey_sub_t *sub);
static void ngx_http_apikey_sub_timer_handler(ngx_event_t *ev);
static void ngx_http_apikey_sub_write_handler(ngx_event_t *wev);
static void ngx_http_apikey_sub_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_apikey_sub_reply(ngx_http_apikey_sub_t *sub,
    redisReply *reply);
static ngx_int_t ngx_http_apikey_sub_command(ngx_http_apikey_sub_t *sub,
    int argc, const char **argv, const size_t *argvlen);
static ngx_int_t ngx_http_apikey_sub_send(ngx_http_apikey_sub_t *sub);
static void ngx_http_apikey_sub_down(ngx_http_apikey_sub_t *sub,
    char *reason);


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
 * The fingerprint holds whatever decides where a record comes from; not
 * the password, which a CRC in shared memory would all but give away.
 */

void
ngx_http_apikey_cache_sources(ngx_shm_zone_t *shm_zone, ngx_array_t *sources)
{
    u_char                           db[NGX_INT_T_LEN];
    uint32_t                         crc;
    ngx_str_t                        s;
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

    ngx_crc32_final(crc);

    cache->config = crc;
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

    if (!sh->valid[source->index] || sh->config != cache->config
        || sh->heard[source->index] + NGX_HTTP_APIKEY_CACHE_SILENCE
           < ngx_http_apikey_cache_now())
    {
        return NGX_BUSY;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    *seq = sh->seq;

    node = ngx_http_apikey_cache_find(cache, source->index, digest);

    if (node == NULL) {
        rc = NGX_AGAIN;

    } else {

        /*
         * Second chance rather than a strict LRU: moving the entry to the
         * head would touch two other random entries on every hit.
         */

        node->referenced = 1;

        rc = node->negative ? NGX_DECLINED
                            : ngx_http_apikey_cache_copy(node, pool, record);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "apikey cache: lookup walked %ui entries: %i",
                   cache->walked, rc);

    return rc;
}


static ngx_int_t
ngx_http_apikey_cache_copy(ngx_http_apikey_cache_node_t *node,
    ngx_pool_t *pool, ngx_http_apikey_record_t *record)
{
    u_char      *p;
    ngx_str_t   *s[4];
    ngx_uint_t   i;

    p = ngx_pnalloc(pool, node->len[0] + node->len[1] + node->len[2]
                          + node->len[3]);
    if (p == NULL) {
        return NGX_ERROR;
    }

    s[0] = &record->id;
    s[1] = &record->name;
    s[2] = &record->org;
    s[3] = &record->scopes;

    ngx_memcpy(p, node->u.data, node->len[0] + node->len[1] + node->len[2]
                              + node->len[3]);

    for (i = 0; i < 4; i++) {
        s[i]->data = p;
        s[i]->len = node->len[i];
        p += node->len[i];
    }

    record->expires_at = node->expires_at;
    record->revoked = node->revoked;

    return NGX_OK;
}


void
ngx_http_apikey_cache_put(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest,
    ngx_http_apikey_record_t *record, ngx_uint_t seq, ngx_msec_t ttl)
{
    u_char                        *p;
    size_t                         size;
    ngx_str_t                     *s[4];
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

        for (i = 0; i < 4; i++) {
            if (s[i]->len > 65535) {
                return;
            }

            size += s[i]->len;
        }

    } else {
        size = offsetof(ngx_http_apikey_cache_node_t, u)
               + sizeof(ngx_queue_t);
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* an invalidation came after the lookup was sent: its reply is stale */

    if (!sh->valid[source->index] || sh->config != cache->config
        || sh->seq != seq)
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
    ngx_memcpy(node->digest, digest, NGX_HTTP_APIKEY_HASH_LEN);
    node->source = (u_char) source->index;
    node->negative = (record == NULL);
    node->referenced = 0;
    node->revoked = 0;
    node->expires_at = 0;
    ngx_memzero(node->len, sizeof(node->len));

    if (record) {
        node->revoked = record->revoked;
        node->expires_at = record->expires_at;

        p = node->u.data;

        for (i = 0; i < 4; i++) {
            node->len[i] = (u_short) s[i]->len;
            p = ngx_cpymem(p, s[i]->data, s[i]->len);
        }

    } else {
        ngx_queue_insert_head(&sh->negative, &node->u.negative);
        sh->nnegative++;
    }

    bucket = ngx_http_apikey_cache_bucket(cache, digest);

    node->next = *bucket;
    *bucket = node;

    ngx_queue_insert_head(&sh->queue, &node->queue);

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

            if (node->expire > now && sh->nnegative < sh->max_negative) {
                break;
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
}


/* source -1 flushes every source; the caller holds no lock */

static void
ngx_http_apikey_cache_flush(ngx_http_apikey_cache_t *cache, ngx_int_t source)
{
    ngx_queue_t                   *q, *next;
    ngx_http_apikey_cache_node_t  *node;

    ngx_shmtx_lock(&cache->shpool->mutex);

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

    cache->sh->seq++;

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


static void
ngx_http_apikey_cache_invalidate(ngx_http_apikey_sub_t *sub,
    redisReply *key)
{
    u_char                        *hex, digest[NGX_HTTP_APIKEY_HASH_LEN];
    ngx_int_t                      n;
    ngx_str_t                     *prefix;
    ngx_uint_t                     i;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_node_t  *node;

    prefix = &sub->source->prefix;

    /* only record names matter: the indexes and last_used are not cached */

    if (key->type != REDIS_REPLY_STRING
        || key->len != prefix->len + NGX_HTTP_APIKEY_HASH_HEX_LEN
        || ngx_strncmp(key->str, prefix->data, prefix->len) != 0)
    {
        return;
    }

    hex = (u_char *) key->str + prefix->len;

    for (i = 0; i < NGX_HTTP_APIKEY_HASH_LEN; i++) {
        n = ngx_hextoi(hex + 2 * i, 2);

        if (n == NGX_ERROR) {
            return;
        }

        digest[i] = (u_char) n;
    }

    cache = sub->cache;

    ngx_shmtx_lock(&cache->shpool->mutex);

    node = ngx_http_apikey_cache_find(cache, sub->source->index, digest);

    if (node) {
        ngx_http_apikey_cache_delete(cache, node);
    }

    cache->sh->seq++;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &sub->log, 0,
                   "apikey cache: invalidated %*s...", (size_t) 8, hex);
}


/* every worker must agree on this clock: ngx_current_msec is per process */

static uint64_t
ngx_http_apikey_cache_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


/*
 * One worker holds a subscription per cached source and vouches for the
 * zone: until a subscription is live (again), its source is flushed and
 * bypassed, so that no invalidation can have been missed.
 */

ngx_int_t
ngx_http_apikey_cache_init_process(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *amcf)
{
    ngx_uint_t                   i;
    ngx_http_apikey_sub_t       *sub;
    ngx_http_apikey_cache_t     *cache;
    ngx_http_apikey_source_t   **source;
    ngx_http_apikey_cache_sh_t  *sh;

    if (amcf->cache == NULL) {
        return NGX_OK;
    }

    cache = amcf->cache->data;
    sh = cache->sh;

    if ((ngx_process != NGX_PROCESS_WORKER
         && ngx_process != NGX_PROCESS_SINGLE)
        || ngx_worker != 0)
    {
        return NGX_OK;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    sh->owner = ngx_pid;
    sh->config = cache->config;
    ngx_memzero(sh->valid, sizeof(sh->valid));

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_http_apikey_cache_flush(cache, -1);

    source = amcf->sources.elts;

    for (i = 0; i < amcf->sources.nelts; i++) {

        if (!source[i]->cached) {
            continue;
        }

        sub = ngx_pcalloc(cycle->pool, sizeof(ngx_http_apikey_sub_t));
        if (sub == NULL) {
            return NGX_ERROR;
        }

        sub->cache = cache;
        sub->source = source[i];
        sub->amcf = amcf;

        sub->log = *cycle->log;

        sub->timer.handler = ngx_http_apikey_sub_timer_handler;
        sub->timer.data = sub;
        sub->timer.log = &sub->log;
        sub->timer.cancelable = 1;

        sub->retry = NGX_HTTP_APIKEY_CACHE_RETRY;

        ngx_http_apikey_sub_connect(sub);
    }

    return NGX_OK;
}


static void
ngx_http_apikey_sub_connect(ngx_http_apikey_sub_t *sub)
{
    size_t                           len;
    ngx_int_t                        rc;
    ngx_addr_t                      *addr;
    ngx_connection_t                *c;
    ngx_http_apikey_redis_server_t  *server;

    static const char   *argv[] = { "CLIENT", "ID" };
    static const size_t  argvlen[] = { 6, 2 };

    server = sub->source->server;

    sub->reader = ngx_http_apikey_redis_reader(NGX_HTTP_APIKEY_CACHE_ELEMENTS);
    if (sub->reader == NULL) {
        goto retry;
    }

    addr = &server->addrs[0];

    ngx_memzero(&sub->peer, sizeof(ngx_peer_connection_t));

    sub->peer.sockaddr = addr->sockaddr;
    sub->peer.socklen = addr->socklen;
    sub->peer.name = &server->url;
    sub->peer.get = ngx_event_get_peer;
    sub->peer.log = &sub->log;
    sub->peer.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&sub->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (sub->peer.connection) {
            ngx_close_connection(sub->peer.connection);
            sub->peer.connection = NULL;
        }

        redisReaderFree(sub->reader);
        sub->reader = NULL;

        goto retry;
    }

    c = sub->peer.connection;
    c->data = sub;
    c->read->handler = ngx_http_apikey_sub_read_handler;
    c->write->handler = ngx_http_apikey_sub_write_handler;

    /* closed at once on graceful shutdown, as idle connections are */
    c->idle = 1;

    sub->state = NGX_HTTP_APIKEY_SUB_HELLO;
    sub->init = server->ninit;
    sub->pings = 0;

    len = server->init.len;

    if (len > NGX_HTTP_APIKEY_CACHE_BUFFER / 2) {
        ngx_log_error(NGX_LOG_ERR, &sub->log, 0,
                      "apikey cache: redis credentials too long");
        ngx_http_apikey_sub_down(sub, NULL);
        return;
    }

    sub->pos = sub->out;
    sub->last = ngx_cpymem(sub->out, server->init.data, len);

    if (ngx_http_apikey_sub_command(sub, 2, argv, argvlen) != NGX_OK) {
        ngx_http_apikey_sub_down(sub, "command too long");
        return;
    }

    /* the handshake must be over by the first check */
    ngx_add_timer(&sub->timer, NGX_HTTP_APIKEY_CACHE_PING);

    if (rc == NGX_OK) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return;

retry:

    ngx_add_timer(&sub->timer, NGX_HTTP_APIKEY_CACHE_RETRY);
}


static void
ngx_http_apikey_sub_timer_handler(ngx_event_t *ev)
{
    ngx_http_apikey_sub_t  *sub;

    static const char   *argv[] = { "PING" };
    static const size_t  argvlen[] = { 4 };

    sub = ev->data;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (sub->peer.connection == NULL) {
        ngx_http_apikey_sub_connect(sub);
        return;
    }

    if (sub->state != NGX_HTTP_APIKEY_SUB_LIVE) {
        ngx_http_apikey_sub_down(sub, "did not complete the subscription "
                                      "in time");
        return;
    }

    if (sub->pings) {
        ngx_http_apikey_sub_down(sub, "did not answer PING in time");
        return;
    }

    if (ngx_http_apikey_sub_command(sub, 1, argv, argvlen) != NGX_OK
        || ngx_http_apikey_sub_send(sub) == NGX_ERROR)
    {
        ngx_http_apikey_sub_down(sub, "failed to send PING");
        return;
    }

    sub->pings++;

    ngx_add_timer(&sub->timer, NGX_HTTP_APIKEY_CACHE_PING);
}


static void
ngx_http_apikey_sub_write_handler(ngx_event_t *wev)
{
    ngx_connection_t       *c;
    ngx_http_apikey_sub_t  *sub;

    c = wev->data;
    sub = c->data;

    if (ngx_http_apikey_sub_send(sub) == NGX_ERROR) {
        ngx_http_apikey_sub_down(sub, "failed to send");
    }
}


static void
ngx_http_apikey_sub_read_handler(ngx_event_t *rev)
{
    u_char                  buf[4096];
    void                   *r;
    ssize_t                 n;
    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_http_apikey_sub_t  *sub;

    c = rev->data;
    sub = c->data;

    if (c->close) {
        ngx_http_apikey_sub_down(sub, NULL);
        return;
    }

    for ( ;; ) {

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_apikey_sub_down(sub, "closed the connection");
            return;
        }

        if (redisReaderFeed(sub->reader, (const char *) buf, n) != REDIS_OK) {
            ngx_http_apikey_sub_down(sub, "sent too much");
            return;
        }

        for ( ;; ) {
            if (redisReaderGetReply(sub->reader, &r) != REDIS_OK) {
                ngx_http_apikey_sub_down(sub, "sent an invalid reply");
                return;
            }

            if (r == NULL) {
                break;
            }

            rc = ngx_http_apikey_sub_reply(sub, r);

            freeReplyObject(r);

            if (rc != NGX_OK) {
                /* a refusal (ACL, CLIENT TRACKING off) does not pass soon */
                sub->retry = NGX_HTTP_APIKEY_CACHE_REFUSED;
                ngx_http_apikey_sub_down(sub, "refused the subscription");
                return;
            }
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_apikey_sub_down(sub, "failed to wait for reading");
    }
}


static ngx_int_t
ngx_http_apikey_sub_reply(ngx_http_apikey_sub_t *sub, redisReply *reply)
{
    u_char                     id[NGX_INT64_LEN];
    size_t                     i, argvlen[8];
    redisReply                *keys;
    const char                *argv[8];
    ngx_http_apikey_cache_t   *cache;

    if (sub->init) {
        sub->init--;

        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, &sub->log, 0,
                          "apikey cache: redis \"%V\" refused AUTH or "
                          "SELECT: %*s", &sub->source->server->url,
                          (size_t) ngx_min(reply->len, 128), reply->str);
        }

        return reply->type == REDIS_REPLY_STATUS ? NGX_OK : NGX_ERROR;
    }

    switch (sub->state) {

    case NGX_HTTP_APIKEY_SUB_HELLO:

        if (reply->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }

        argv[0] = "CLIENT";
        argv[1] = "TRACKING";
        argv[2] = "on";
        argv[3] = "REDIRECT";
        argv[4] = (const char *) id;
        argv[5] = "BCAST";
        argv[6] = "PREFIX";
        argv[7] = (const char *) sub->source->prefix.data;

        argvlen[4] = ngx_sprintf(id, "%L", (int64_t) reply->integer) - id;
        argvlen[7] = sub->source->prefix.len;

        for (i = 0; i < 8; i++) {
            if (i != 4 && i != 7) {
                argvlen[i] = ngx_strlen(argv[i]);
            }
        }

        if (ngx_http_apikey_sub_command(sub, 8, argv, argvlen) != NGX_OK) {
            return NGX_ERROR;
        }

        argv[0] = "SUBSCRIBE";
        argvlen[0] = 9;
        argv[1] = "__redis__:invalidate";
        argvlen[1] = 20;

        if (ngx_http_apikey_sub_command(sub, 2, argv, argvlen) != NGX_OK
            || ngx_http_apikey_sub_send(sub) == NGX_ERROR)
        {
            return NGX_ERROR;
        }

        sub->state = NGX_HTTP_APIKEY_SUB_TRACKING;

        return NGX_OK;

    case NGX_HTTP_APIKEY_SUB_TRACKING:

        if (reply->type != REDIS_REPLY_STATUS) {
            if (reply->type == REDIS_REPLY_ERROR) {
                ngx_log_error(NGX_LOG_ERR, &sub->log, 0,
                              "apikey cache: redis \"%V\" refused CLIENT "
                              "TRACKING: %*s", &sub->source->server->url,
                              (size_t) ngx_min(reply->len, 128), reply->str);
            }

            return NGX_ERROR;
        }

        sub->state = NGX_HTTP_APIKEY_SUB_SUBSCRIBE;

        return NGX_OK;

    case NGX_HTTP_APIKEY_SUB_SUBSCRIBE:

        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, &sub->log, 0,
                          "apikey cache: redis \"%V\" refused SUBSCRIBE: %*s",
                          &sub->source->server->url,
                          (size_t) ngx_min(reply->len, 128), reply->str);
            return NGX_ERROR;
        }

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
            || reply->element[0]->type != REDIS_REPLY_STRING
            || ngx_strcmp(reply->element[0]->str, "subscribe") != 0)
        {
            return NGX_ERROR;
        }

        /*
         * From now on every write is heard of: what was cached before
         * may have missed one.
         */

        cache = sub->cache;

        ngx_http_apikey_cache_flush(cache, sub->source->index);

        ngx_shmtx_lock(&cache->shpool->mutex);

        if (cache->sh->owner == ngx_pid) {
            cache->sh->heard[sub->source->index] =
                                                ngx_http_apikey_cache_now();
            cache->sh->valid[sub->source->index] = 1;
        }

        sub->retry = NGX_HTTP_APIKEY_CACHE_RETRY;

        ngx_shmtx_unlock(&cache->shpool->mutex);

        sub->state = NGX_HTTP_APIKEY_SUB_LIVE;

        ngx_log_error(NGX_LOG_INFO, &sub->log, 0,
                      "apikey cache: invalidations from redis \"%V\" on "
                      "\"%V\" are live", &sub->source->server->url,
                      &sub->source->prefix);

        if (sub->timer.timer_set) {
            ngx_del_timer(&sub->timer);
        }

        ngx_add_timer(&sub->timer, NGX_HTTP_APIKEY_CACHE_PING);

        return NGX_OK;

    default: /* NGX_HTTP_APIKEY_SUB_LIVE */
        break;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return NGX_ERROR;
    }

    if (ngx_strcmp(reply->element[0]->str, "pong") == 0) {
        sub->pings = 0;
        sub->cache->sh->heard[sub->source->index] =
                                                ngx_http_apikey_cache_now();
        return NGX_OK;
    }

    if (ngx_strcmp(reply->element[0]->str, "message") != 0
        || reply->elements != 3)
    {
        return NGX_OK;
    }

    keys = reply->element[2];

    /* FLUSHALL and FLUSHDB invalidate everything with a null */

    if (keys->type == REDIS_REPLY_NIL) {
        ngx_http_apikey_cache_flush(sub->cache, sub->source->index);
        return NGX_OK;
    }

    if (keys->type != REDIS_REPLY_ARRAY) {
        return NGX_OK;
    }

    for (i = 0; i < keys->elements; i++) {
        ngx_http_apikey_cache_invalidate(sub, keys->element[i]);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_sub_command(ngx_http_apikey_sub_t *sub, int argc,
    const char **argv, const size_t *argvlen)
{
    int    len;
    char  *cmd;

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    if (sub->pos == sub->last) {
        sub->pos = sub->out;
        sub->last = sub->out;
    }

    if ((size_t) len > (size_t) (sub->out + NGX_HTTP_APIKEY_CACHE_BUFFER
                                 - sub->last))
    {
        free(cmd);
        return NGX_ERROR;
    }

    sub->last = ngx_cpymem(sub->last, cmd, len);

    free(cmd);

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_sub_send(ngx_http_apikey_sub_t *sub)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = sub->peer.connection;

    while (sub->pos < sub->last) {

        n = c->send(c, sub->pos, sub->last - sub->pos);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN || n == 0) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                return NGX_ERROR;
            }

            return NGX_AGAIN;
        }

        sub->pos += n;
    }

    return NGX_OK;
}


static void
ngx_http_apikey_sub_down(ngx_http_apikey_sub_t *sub, char *reason)
{
    ngx_uint_t                owner;
    ngx_http_apikey_cache_t  *cache;

    cache = sub->cache;

    ngx_shmtx_lock(&cache->shpool->mutex);

    owner = (cache->sh->owner == ngx_pid);

    if (owner) {
        cache->sh->valid[sub->source->index] = 0;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    /* a worker of an older configuration vouches for nothing any more */

    if (owner) {
        ngx_http_apikey_cache_flush(cache, sub->source->index);
    }

    if (reason) {
        ngx_log_error(NGX_LOG_ERR, &sub->log, 0,
                      "apikey cache: redis \"%V\" %s; the cache is bypassed "
                      "until the subscription is back",
                      &sub->source->server->url, reason);
    }

    if (sub->peer.connection) {
        ngx_close_connection(sub->peer.connection);
        sub->peer.connection = NULL;
    }

    if (sub->reader) {
        redisReaderFree(sub->reader);
        sub->reader = NULL;
    }

    if (sub->timer.timer_set) {
        ngx_del_timer(&sub->timer);
    }

    if (!ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&sub->timer, sub->retry);
    }
}
