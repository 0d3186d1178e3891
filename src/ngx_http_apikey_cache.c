
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_cache.h"


/*
 * No news from a subscribing worker for this long (it PINGs every
 * second): it is stuck or gone, and vouches for nothing.
 */
#define NGX_HTTP_APIKEY_CACHE_SILENCE  2500

/* entries looked at to make room: given a second chance or evicted */
#define NGX_HTTP_APIKEY_CACHE_EVICT    256


typedef struct ngx_http_apikey_cache_node_s  ngx_http_apikey_cache_node_t;


/* a worker's subscriptions: unix msec of the last PONG, 0 when down */

typedef struct {
    ngx_pid_t                          pid;
    uint64_t                           heard[NGX_HTTP_APIKEY_CACHE_SOURCES];
} ngx_http_apikey_cache_slot_t;


/*
 * A hash table rather than limit_req's rbtree: with a hundred thousand
 * keys an rbtree walk is some seventeen cache and TLB misses per request,
 * a bucket one or two.  The digest is already uniformly distributed.
 */

typedef struct {
    ngx_http_apikey_cache_node_t     **buckets;
    ngx_uint_t                         mask;
    ngx_queue_t                        queue;

    /* changes with every invalidation: a reply older than it is not kept */
    ngx_uint_t                         seq;

    /* the configuration whose workers vouch for the entries */
    uint32_t                           config;

    /* unix msec until which some live subscription vouches for a source */
    uint64_t                           until[NGX_HTTP_APIKEY_CACHE_SOURCES];

    ngx_http_apikey_cache_slot_t       slots[NGX_HTTP_APIKEY_CACHE_WORKERS];
} ngx_http_apikey_cache_sh_t;


typedef struct {
    ngx_http_apikey_cache_sh_t        *sh;
    ngx_slab_pool_t                   *shpool;
    uint32_t                           config;
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
    u_char                             data[1];
};




static ngx_int_t ngx_http_apikey_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_apikey_cache_node_t *ngx_http_apikey_cache_find(
    ngx_http_apikey_cache_t *cache, ngx_uint_t source, u_char *digest);
static void ngx_http_apikey_cache_delete(ngx_http_apikey_cache_t *cache,
    ngx_http_apikey_cache_node_t *node);
static void ngx_http_apikey_cache_flush_locked(
    ngx_http_apikey_cache_t *cache, ngx_int_t source);
static void ngx_http_apikey_cache_until(ngx_http_apikey_cache_t *cache,
    ngx_uint_t source);
static uint64_t ngx_http_apikey_cache_now(void);
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
 * (during a reload) may number sources otherwise, and must not share them.
 */

void
ngx_http_apikey_cache_sources(ngx_shm_zone_t *shm_zone, ngx_array_t *sources)
{
    uint32_t                   crc;
    ngx_uint_t                 i;
    ngx_http_apikey_cache_t   *cache;
    ngx_http_apikey_source_t **source;

    cache = shm_zone->data;
    source = sources->elts;

    ngx_crc32_init(crc);

    for (i = 0; i < sources->nelts; i++) {
        ngx_crc32_update(&crc, source[i]->server->url.data,
                         source[i]->server->url.len);
        ngx_crc32_update(&crc, (u_char *) "\n", 1);
        ngx_crc32_update(&crc, source[i]->prefix.data,
                         source[i]->prefix.len);
        ngx_crc32_update(&crc, (u_char *) "\n", 1);
    }

    ngx_crc32_final(crc);

    cache->config = crc;
}


static ngx_int_t
ngx_http_apikey_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_apikey_cache_t  *ocache = data;

    size_t                    len;
    ngx_uint_t                n;
    ngx_http_apikey_cache_t  *cache;

    cache = shm_zone->data;

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

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_apikey_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(cache->sh, sizeof(ngx_http_apikey_cache_sh_t));

    cache->shpool->data = cache->sh;

    /* a bucket for every 512 bytes of the zone, a power of two */

    for (n = 64; n * 512 < shm_zone->shm.size; n *= 2) { /* void */ }

    cache->sh->buckets = ngx_slab_calloc(cache->shpool,
                                   n * sizeof(ngx_http_apikey_cache_node_t *));
    if (cache->sh->buckets == NULL) {
        return NGX_ERROR;
    }

    cache->sh->mask = n - 1;

    ngx_queue_init(&cache->sh->queue);

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
    u_char                        *p;
    ngx_int_t                      rc;
    ngx_str_t                     *s[4];
    ngx_uint_t                     i;
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

    if (node == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_AGAIN;
    }

    if (node->expire <= ngx_http_apikey_cache_now()) {
        ngx_http_apikey_cache_delete(cache, node);
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_AGAIN;
    }

    /*
     * Second chance rather than a strict LRU: moving the entry to the head
     * would touch two other random entries on every hit.
     */

    node->referenced = 1;

    if (node->negative) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    rc = NGX_OK;

    p = ngx_pnalloc(pool, node->len[0] + node->len[1] + node->len[2]
                          + node->len[3]);

    if (p == NULL) {
        rc = NGX_ERROR;

    } else {
        s[0] = &record->id;
        s[1] = &record->name;
        s[2] = &record->org;
        s[3] = &record->scopes;

        ngx_memcpy(p, node->data, node->len[0] + node->len[1]
                                  + node->len[2] + node->len[3]);

        for (i = 0; i < 4; i++) {
            s[i]->data = p;
            s[i]->len = node->len[i];
            p += node->len[i];
        }

        record->expires_at = node->expires_at;
        record->revoked = node->revoked;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


void
ngx_http_apikey_cache_put(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest,
    ngx_http_apikey_record_t *record, ngx_uint_t seq, ngx_msec_t ttl)
{
    u_char                        *p;
    size_t                         size;
    ngx_str_t                     *s[4];
    ngx_uint_t                     i, n;
    ngx_queue_t                   *q;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_node_t  *node, **bucket;

    cache = shm_zone->data;
    sh = cache->sh;

    size = offsetof(ngx_http_apikey_cache_node_t, data);

    if (record) {
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

    /*
     * When the zone is full, the entry at the tail goes unless it was used
     * since it got there: then it goes back to the head, once.
     */

    for (n = 0; /* void */ ; n++) {

        node = ngx_slab_alloc_locked(cache->shpool, size);

        if (node || n == NGX_HTTP_APIKEY_CACHE_EVICT
            || ngx_queue_empty(&sh->queue))
        {
            break;
        }

        q = ngx_queue_last(&sh->queue);
        node = ngx_queue_data(q, ngx_http_apikey_cache_node_t, queue);

        if (node->referenced) {
            node->referenced = 0;
            ngx_queue_remove(q);
            ngx_queue_insert_head(&sh->queue, q);
            node = NULL;
            continue;
        }

        ngx_http_apikey_cache_delete(cache, node);
        node = NULL;
    }

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

        p = node->data;

        for (i = 0; i < 4; i++) {
            node->len[i] = (u_short) s[i]->len;
            p = ngx_cpymem(p, s[i]->data, s[i]->len);
        }
    }

    bucket = ngx_http_apikey_cache_bucket(cache, digest);

    node->next = *bucket;
    *bucket = node;

    ngx_queue_insert_head(&sh->queue, &node->queue);

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


static ngx_http_apikey_cache_node_t **
ngx_http_apikey_cache_bucket(ngx_http_apikey_cache_t *cache, u_char *digest)
{
    uint32_t  key;

    ngx_memcpy(&key, digest, sizeof(uint32_t));

    return &cache->sh->buckets[key & cache->sh->mask];
}


static ngx_http_apikey_cache_node_t *
ngx_http_apikey_cache_find(ngx_http_apikey_cache_t *cache, ngx_uint_t source,
    u_char *digest)
{
    ngx_http_apikey_cache_node_t  *node;

    for (node = *ngx_http_apikey_cache_bucket(cache, digest);
         node;
         node = node->next)
    {
        if (node->source == source
            && ngx_memcmp(digest, node->digest, NGX_HTTP_APIKEY_HASH_LEN)
               == 0)
        {
            return node;
        }
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

    ngx_queue_remove(&node->queue);
    ngx_slab_free_locked(cache->shpool, node);
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
    }

    cache->sh->seq++;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "apikey cache: invalidated %*s...", (size_t) 8, hex);
}


/*
 * A worker's subscription on a source is live (it hears every write from
 * now on) or down.  While no worker's is live, the source is bypassed.  A
 * subscription that comes back may have missed writes that no other one
 * heard either (another worker stopped meanwhile): the source's entries
 * go; when the last one goes down, they go too.  A worker of another
 * configuration (draining after a reload) vouches for nothing.
 */

void
ngx_http_apikey_cache_vouch(ngx_shm_zone_t *shm_zone, ngx_uint_t source,
    ngx_uint_t live)
{
    uint64_t                       now;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_slot_t  *slot;

    cache = shm_zone->data;
    sh = cache->sh;
    slot = &sh->slots[ngx_worker];
    now = ngx_http_apikey_cache_now();

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (sh->config != cache->config || slot->pid != ngx_pid) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    if (live) {
        ngx_http_apikey_cache_flush_locked(cache, source);
    }

    slot->heard[source] = live ? now : 0;

    ngx_http_apikey_cache_until(cache, source);

    if (!live && sh->until[source] < now) {
        ngx_http_apikey_cache_flush_locked(cache, source);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* a PONG: the subscription still hears */

void
ngx_http_apikey_cache_heard(ngx_shm_zone_t *shm_zone, ngx_uint_t source)
{
    uint64_t                       now;
    ngx_http_apikey_cache_t       *cache;
    ngx_http_apikey_cache_sh_t    *sh;
    ngx_http_apikey_cache_slot_t  *slot;

    cache = shm_zone->data;
    sh = cache->sh;
    slot = &sh->slots[ngx_worker];
    now = ngx_http_apikey_cache_now();

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (sh->config == cache->config && slot->pid == ngx_pid
        && slot->heard[source])
    {
        slot->heard[source] = now;

        if (sh->until[source] < now + NGX_HTTP_APIKEY_CACHE_SILENCE) {
            sh->until[source] = now + NGX_HTTP_APIKEY_CACHE_SILENCE;
        }
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


/* every worker must agree on this clock: ngx_current_msec is per process */

static uint64_t
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
