
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_lookup.h"
#include "ngx_http_apikey_token.h"
#include "ngx_http_apikey_record.h"
#include "ngx_http_apikey_cache.h"
#include "ngx_http_apikey_wait.h"
#include "ngx_http_apikey_metrics.h"


#define NGX_HTTP_APIKEY_NONCE_LEN  16

/* a record's parse: four short strings, or a large one on its own */
#define NGX_HTTP_APIKEY_LOOKUP_POOL_SIZE  1024


struct ngx_http_apikey_lookup_s {
    ngx_rbtree_node_t                  node;
    ngx_http_apikey_source_t          *source;
    u_char                             digest[NGX_HTTP_APIKEY_HASH_LEN];

    ngx_http_apikey_wait_t             wait;
    ngx_http_apikey_redis_query_t      query;

    /* where and for how long the answer may be cached */
    ngx_shm_zone_t                    *cache;
    ngx_uint_t                         seq;
    ngx_msec_t                         ttl;
    ngx_msec_t                         negative_ttl;

    /* the zone of a cached source, whatever this lookup's location says */
    ngx_shm_zone_t                    *zone;

    /* unix msec, when it was sent: Redis read the record after that */
    uint64_t                           sent;

    /* microseconds, when it was sent */
    uint64_t                           start;

    /* out of the tree: a newer lookup of the key took its place */
    unsigned                           superseded:1;
};


static ngx_http_apikey_status_e ngx_http_apikey_lookup_format(
    ngx_http_apikey_loc_conf_t *alcf, ngx_str_t *token);
static ngx_http_apikey_lookup_t *ngx_http_apikey_lookup_find(
    ngx_http_apikey_source_t *source, u_char *digest, uint32_t key);
static ngx_int_t ngx_http_apikey_lookup_send(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx,
    uint32_t key, ngx_shm_zone_t *cache, ngx_uint_t seq);
static void ngx_http_apikey_lookup_done(ngx_http_apikey_redis_query_t *q,
    redisReply *reply);
static void ngx_http_apikey_lookup_wake(ngx_queue_t *waiter);
static void ngx_http_apikey_lookup_stale(ngx_http_apikey_ctx_t *ctx);
static void ngx_http_apikey_lookup_rbtree_insert_value(
    ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel);


/* one per secret, made once per worker */
static ngx_http_apikey_hasher_t  **ngx_http_apikey_hashers;

/* numbers the lookups of this worker */
static uint64_t            ngx_http_apikey_nonce;

/* the lookups this worker is waiting for */
static ngx_rbtree_t        ngx_http_apikey_lookups;
static ngx_rbtree_node_t   ngx_http_apikey_lookups_sentinel;


ngx_int_t
ngx_http_apikey_lookup_init_process(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *amcf)
{
    ngx_str_t   *secret;
    ngx_uint_t   i;

    ngx_http_apikey_hashers = ngx_pcalloc(cycle->pool, amcf->secrets.nelts
                                          * sizeof(ngx_http_apikey_hasher_t *));
    if (ngx_http_apikey_hashers == NULL) {
        return NGX_ERROR;
    }

    secret = amcf->secrets.elts;

    for (i = 0; i < amcf->secrets.nelts; i++) {
        ngx_http_apikey_hashers[i] = ngx_http_apikey_hasher_create(
                                                 secret[i].data, secret[i].len);

        if (ngx_http_apikey_hashers[i] == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "apikey: creating the SHA-256 hasher failed");
            return NGX_ERROR;
        }
    }

    ngx_rbtree_init(&ngx_http_apikey_lookups,
                    &ngx_http_apikey_lookups_sentinel,
                    ngx_http_apikey_lookup_rbtree_insert_value);

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_lookup_digest(ngx_http_apikey_loc_conf_t *alcf,
    u_char *token, size_t len, u_char *digest)
{
    if (ngx_http_apikey_hasher_digest(ngx_http_apikey_hashers[alcf->hasher],
                                      token, len, digest)
        != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the HMAC secrets must not outlive the worker in OpenSSL's memory */

void
ngx_http_apikey_lookup_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i;
    ngx_http_apikey_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_apikey_module);

    if (amcf == NULL || ngx_http_apikey_hashers == NULL) {
        return;
    }

    for (i = 0; i < amcf->secrets.nelts; i++) {
        if (ngx_http_apikey_hashers[i]) {
            ngx_http_apikey_hasher_free(ngx_http_apikey_hashers[i]);
            ngx_http_apikey_hashers[i] = NULL;
        }
    }
}


/*
 * NGX_DECLINED: ctx->lookup holds the outcome already (no or a malformed
 * token, a cached record, an error); NGX_AGAIN: the request is resumed
 * when Redis answers.
 */

ngx_int_t
ngx_http_apikey_lookup(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx)
{
    uint32_t                      key;
    ngx_int_t                     rc;
    ngx_str_t                     token;
    ngx_uint_t                    seq, in_uri;
    ngx_shm_zone_t               *cache;
    ngx_http_apikey_lookup_t     *lookup;
    ngx_http_apikey_main_conf_t  *amcf;

    ctx->lookup = ngx_http_apikey_token(r, alcf->key_from, ctx->hidden_from,
                                        &ctx->hidden, &token, &ctx->from,
                                        &in_uri);

    if (in_uri) {
        ctx->quiet = 1;
    }

    if (ctx->lookup != NGX_HTTP_APIKEY_OK) {
        return NGX_DECLINED;
    }

    ctx->token = token;
    ctx->lookup = ngx_http_apikey_lookup_format(alcf, &token);

    if (ctx->lookup != NGX_HTTP_APIKEY_OK) {
        return NGX_DECLINED;
    }

    if (ngx_http_apikey_hasher_digest(ngx_http_apikey_hashers[alcf->hasher],
                                      token.data, token.len, ctx->digest)
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "apikey: hashing the token failed");
        ctx->lookup = NGX_HTTP_APIKEY_ERROR;
        return NGX_DECLINED;
    }

    cache = NULL;
    seq = 0;

    /* $apikey_cache_status of a lookup the cache has no part in */
    ctx->cache = NGX_HTTP_APIKEY_METRICS_BYPASS;

    if (alcf->cache) {
        amcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

        rc = ngx_http_apikey_cache_get(amcf->cache, alcf->source,
                                       ctx->digest, r->pool, &ctx->record,
                                       &seq);

        ctx->cache = (rc == NGX_AGAIN) ? NGX_HTTP_APIKEY_METRICS_MISS
                     : (rc == NGX_BUSY) ? NGX_HTTP_APIKEY_METRICS_BYPASS
                     : NGX_HTTP_APIKEY_METRICS_HIT;

        ngx_http_apikey_metrics_cache(ctx->cache);

        if (rc == NGX_OK || rc == NGX_DECLINED) {
            ctx->lookup = (rc == NGX_OK) ? NGX_HTTP_APIKEY_OK
                                         : NGX_HTTP_APIKEY_INVALID;
            ctx->found = (rc == NGX_OK);
            return NGX_DECLINED;
        }

        if (rc == NGX_ERROR) {
            ctx->lookup = NGX_HTTP_APIKEY_ERROR;
            return NGX_DECLINED;
        }

        /* NGX_AGAIN is a miss, NGX_BUSY a cache that cannot be trusted */

        if (rc == NGX_AGAIN) {
            cache = amcf->cache;
        }
    }

    /* a digest is as good a hash as any */
    ngx_memcpy(&key, ctx->digest, sizeof(uint32_t));

    lookup = ngx_http_apikey_lookup_find(alcf->source, ctx->digest, key);

    /*
     * A round trip sent before an invalidation that this request has seen
     * may bring the record as it was: the request sends its own, and the
     * requests after it join that one.
     */

    if (lookup && cache && (lookup->cache == NULL || lookup->seq != seq)) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "apikey: a lookup in flight is older than an "
                       "invalidation");

        ngx_rbtree_delete(&ngx_http_apikey_lookups, &lookup->node);
        lookup->superseded = 1;
        lookup = NULL;
    }

    if (lookup) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "apikey: joining a lookup in flight");

        ngx_http_apikey_wait_add(&lookup->wait, &ctx->waiting);
        ctx->lookup_in_flight = lookup;

        return NGX_AGAIN;
    }

    if (ngx_http_apikey_lookup_send(r, alcf, ctx, key, cache, seq)
        != NGX_OK)
    {
        ctx->lookup = NGX_HTTP_APIKEY_ERROR;
        ngx_http_apikey_lookup_stale(ctx);
        return NGX_DECLINED;
    }

    return NGX_AGAIN;
}


/*
 * Keys of the apikey tool's format are checked before any lookup: a
 * mistyped or made-up key costs no round trip.
 */

static ngx_http_apikey_status_e
ngx_http_apikey_lookup_format(ngx_http_apikey_loc_conf_t *alcf,
    ngx_str_t *token)
{
    size_t      len;
    ngx_str_t  *prefix;
    ngx_uint_t  i;

    if (alcf->key_prefixes) {
        prefix = alcf->key_prefixes->elts;

        for (i = 0; i < alcf->key_prefixes->nelts; i++) {
            len = prefix[i].len;

            if (token->len == len + NGX_HTTP_APIKEY_KEY_BODY_LEN
                && ngx_strncmp(token->data, prefix[i].data, len) == 0)
            {
                break;
            }
        }

        if (i == alcf->key_prefixes->nelts) {
            return NGX_HTTP_APIKEY_INVALID;
        }
    }

    if (alcf->key_checksum
        && !ngx_http_apikey_key_check(token->data, token->len))
    {
        return NGX_HTTP_APIKEY_INVALID;
    }

    return NGX_HTTP_APIKEY_OK;
}


static ngx_http_apikey_lookup_t *
ngx_http_apikey_lookup_find(ngx_http_apikey_source_t *source,
    u_char *digest, uint32_t key)
{
    ngx_int_t                  rc;
    ngx_rbtree_node_t         *node, *sentinel;
    ngx_http_apikey_lookup_t  *lookup;

    node = ngx_http_apikey_lookups.root;
    sentinel = ngx_http_apikey_lookups.sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        lookup = (ngx_http_apikey_lookup_t *) node;

        rc = ngx_memcmp(digest, lookup->digest, NGX_HTTP_APIKEY_HASH_LEN);

        if (rc == 0 && source == lookup->source) {
            return lookup;
        }

        node = (rc < 0 || (rc == 0 && source < lookup->source))
               ? node->left : node->right;
    }

    return NULL;
}


static ngx_int_t
ngx_http_apikey_lookup_send(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx,
    uint32_t key, ngx_shm_zone_t *cache, ngx_uint_t seq)
{
    u_char                         *p;
    ngx_http_apikey_source_t       *source;
    ngx_http_apikey_lookup_t       *lookup;
    ngx_http_apikey_main_conf_t    *amcf;
    ngx_http_apikey_redis_query_t  *q;

    source = alcf->source;

    lookup = ngx_alloc(sizeof(ngx_http_apikey_lookup_t) + source->command.len,
                       r->connection->log);
    if (lookup == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(lookup, sizeof(ngx_http_apikey_lookup_t));

    lookup->node.key = key;
    lookup->source = source;
    ngx_memcpy(lookup->digest, ctx->digest, NGX_HTTP_APIKEY_HASH_LEN);
    ngx_http_apikey_wait_init(&lookup->wait);

    lookup->cache = cache;
    lookup->seq = seq;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    if (cache) {
        lookup->ttl = amcf->cache_ttl;
        lookup->negative_ttl = amcf->cache_negative_ttl;
    }

    if (source->cached) {
        lookup->zone = amcf->cache;
        lookup->sent = ngx_http_apikey_cache_now();
    }

    p = (u_char *) lookup + sizeof(ngx_http_apikey_lookup_t);
    ngx_memcpy(p, source->command.data, source->command.len);
    ngx_http_apikey_key_hex(ctx->digest, p + source->command_hash);
    ngx_sprintf(p + source->command_nonce, "%016xL", ++ngx_http_apikey_nonce);

    q = &lookup->query;

    q->command.data = p;
    q->command.len = source->command.len;
    q->nonce.data = p + source->command_nonce;
    q->nonce.len = NGX_HTTP_APIKEY_NONCE_LEN;
    q->server = source->server;
    q->timeout = alcf->timeout;
    q->keepalive = alcf->keepalive;
    q->pipeline = alcf->pipeline;
    q->handler = ngx_http_apikey_lookup_done;
    q->data = lookup;
    q->log = r->connection->log;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "apikey: looking up key %*s...", (size_t) 8,
                   p + source->command_hash);

    lookup->start = ngx_http_apikey_metrics_clock();

    if (ngx_http_apikey_redis_query(q) != NGX_OK) {
        ngx_http_apikey_metrics_redis(source->server,
                                      NGX_HTTP_APIKEY_METRICS_ERROR, 0);
        ngx_free(lookup);
        return NGX_ERROR;
    }

    ngx_rbtree_insert(&ngx_http_apikey_lookups, &lookup->node);

    ngx_http_apikey_wait_add(&lookup->wait, &ctx->waiting);
    ctx->lookup_in_flight = lookup;

    return NGX_OK;
}


static void
ngx_http_apikey_lookup_done(ngx_http_apikey_redis_query_t *q,
    redisReply *reply)
{
    ngx_int_t                  rc;
    ngx_pool_t                *pool;
    ngx_queue_t               *x;
    ngx_http_request_t        *r;
    ngx_http_apikey_ctx_t     *ctx;
    ngx_http_apikey_record_t   record;
    ngx_http_apikey_status_e   status;
    ngx_http_apikey_lookup_t  *lookup;

    lookup = q->data;

    if (!lookup->superseded) {
        ngx_rbtree_delete(&ngx_http_apikey_lookups, &lookup->node);
    }

    /*
     * One parse, one record, one status: the cache and every waiter get
     * the same, and a parse cut short by an allocation failure is an error
     * for all of them.
     */

    status = NGX_HTTP_APIKEY_ERROR;
    pool = NULL;

    if (reply) {
        pool = ngx_create_pool(NGX_HTTP_APIKEY_LOOKUP_POOL_SIZE, q->log);

        if (pool) {
            rc = ngx_http_apikey_record(pool, reply, lookup->source->nfields,
                                        &record, q->log);

            status = (rc == NGX_OK) ? NGX_HTTP_APIKEY_OK
                     : (rc == NGX_DECLINED) ? NGX_HTTP_APIKEY_INVALID
                     : NGX_HTTP_APIKEY_ERROR;
        }
    }

    ngx_http_apikey_metrics_redis(q->server,
                                  status != NGX_HTTP_APIKEY_ERROR
                                  ? NGX_HTTP_APIKEY_METRICS_OK
                                  : q->timedout
                                    ? NGX_HTTP_APIKEY_METRICS_TIMEOUT
                                    : NGX_HTTP_APIKEY_METRICS_ERROR,
                                  lookup->start);

    if (lookup->cache) {
        if (status == NGX_HTTP_APIKEY_OK) {
            ngx_http_apikey_cache_put(lookup->cache, lookup->source,
                                      lookup->digest, &record,
                                      lookup->seq, lookup->ttl,
                                      lookup->sent);

        } else if (status == NGX_HTTP_APIKEY_INVALID && lookup->negative_ttl) {
            ngx_http_apikey_cache_put(lookup->cache, lookup->source,
                                      lookup->digest, NULL, lookup->seq,
                                      lookup->negative_ttl, lookup->sent);
        }
    }

    if (lookup->zone && status != NGX_HTTP_APIKEY_ERROR) {
        ngx_http_apikey_cache_answered(lookup->zone, lookup->source,
                                       lookup->digest);
    }

    /*
     * Every waiting request gets its own copy of the record before any of
     * them is resumed: resuming one may free another.
     */

    for (x = ngx_queue_head(&lookup->wait.waiters);
         x != ngx_queue_sentinel(&lookup->wait.waiters);
         x = ngx_queue_next(x))
    {
        ctx = ngx_queue_data(x, ngx_http_apikey_ctx_t, waiting);
        r = ctx->request;

        ctx->lookup = status;

        if (status == NGX_HTTP_APIKEY_OK
            && ngx_http_apikey_record_copy(r->pool, &ctx->record, &record)
               != NGX_OK)
        {
            ctx->lookup = NGX_HTTP_APIKEY_ERROR;
        }

        ctx->found = (ctx->lookup == NGX_HTTP_APIKEY_OK);
        ctx->done = 1;

        if (status == NGX_HTTP_APIKEY_ERROR) {
            ngx_http_apikey_lookup_stale(ctx);
        }
    }

    if (pool) {
        ngx_destroy_pool(pool);
    }

    ngx_http_apikey_wait_complete(&lookup->wait, ngx_http_apikey_lookup_wake);

    ngx_free(lookup);
}


/*
 * Redis failed the lookup: with apikey_cache_stale, an entry Redis
 * confirmed lately answers instead, a remembered unknown key included.
 */

static void
ngx_http_apikey_lookup_stale(ngx_http_apikey_ctx_t *ctx)
{
    ngx_int_t                     rc;
    ngx_http_request_t           *r;
    ngx_http_apikey_loc_conf_t   *alcf;
    ngx_http_apikey_main_conf_t  *amcf;

    r = ctx->request;
    alcf = ctx->conf;

    if (alcf->cache == NULL || alcf->cache_stale == 0) {
        return;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    rc = ngx_http_apikey_cache_get_stale(amcf->cache, alcf->source,
                                         ctx->digest, r->pool, &ctx->record,
                                         alcf->cache_stale);

    if (rc != NGX_OK && rc != NGX_DECLINED) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "apikey: redis failed, answered from the cache");

    ctx->lookup = (rc == NGX_OK) ? NGX_HTTP_APIKEY_OK
                                 : NGX_HTTP_APIKEY_INVALID;
    ctx->found = (rc == NGX_OK);
    ctx->cache = NGX_HTTP_APIKEY_METRICS_STALE;
}


static void
ngx_http_apikey_lookup_wake(ngx_queue_t *waiter)
{
    ngx_http_apikey_ctx_t  *ctx;

    ctx = ngx_queue_data(waiter, ngx_http_apikey_ctx_t, waiting);
    ctx->lookup_in_flight = NULL;

    ngx_http_apikey_ctx_wake(ctx);
}


/*
 * A request that is gone stops waiting; the last one to go takes the
 * lookup with it, unless the lookup is completing: then its completer
 * does.  The Redis connection logs on behalf of the request that is first
 * in line.
 */

void
ngx_http_apikey_lookup_cancel(ngx_http_apikey_ctx_t *ctx)
{
    ngx_int_t                  rc;
    ngx_http_apikey_ctx_t     *next;
    ngx_http_apikey_lookup_t  *lookup;

    lookup = ctx->lookup_in_flight;

    if (lookup == NULL) {
        return;
    }

    ctx->lookup_in_flight = NULL;

    rc = ngx_http_apikey_wait_leave(&lookup->wait, &ctx->waiting);

    if (rc == NGX_BUSY) {
        return;
    }

    if (rc == NGX_OK) {
        next = ngx_queue_data(ngx_queue_head(&lookup->wait.waiters),
                              ngx_http_apikey_ctx_t, waiting);

        ngx_http_apikey_redis_log(&lookup->query,
                                  next->request->connection->log);
        return;
    }

    ngx_http_apikey_redis_cancel(&lookup->query);

    if (!lookup->superseded) {
        ngx_rbtree_delete(&ngx_http_apikey_lookups, &lookup->node);
    }

    ngx_free(lookup);
}


/*
 * HMGET <prefix><hash> id name ... and PING <nonce>, formatted once by
 * hiredis with placeholders; a lookup copies them and fills them in.
 */

ngx_int_t
ngx_http_apikey_lookup_command(ngx_conf_t *cf,
    ngx_http_apikey_source_t *source, ngx_array_t *extra)
{
    u_char      *p, nonce[NGX_HTTP_APIKEY_NONCE_LEN];
    size_t       argvlen[2 + NGX_HTTP_APIKEY_RECORD_NFIELDS
                         + NGX_HTTP_APIKEY_RECORD_EXTRA_MAX];
    ngx_str_t    key, hmget, ping, *name;
    ngx_uint_t   i, n;
    const char  *argv[2 + NGX_HTTP_APIKEY_RECORD_NFIELDS
                      + NGX_HTTP_APIKEY_RECORD_EXTRA_MAX];

    static const char  *fields[] = { NGX_HTTP_APIKEY_RECORD_FIELDS };

    key.len = source->prefix.len + NGX_HTTP_APIKEY_HASH_HEX_LEN;
    key.data = ngx_pnalloc(cf->temp_pool, key.len);
    if (key.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key.data, source->prefix.data, source->prefix.len);
    ngx_memset(p, '0', NGX_HTTP_APIKEY_HASH_HEX_LEN);

    argv[0] = "HMGET";
    argvlen[0] = 5;
    argv[1] = (const char *) key.data;
    argvlen[1] = key.len;

    n = 2;

    for (i = 0; i < NGX_HTTP_APIKEY_RECORD_NFIELDS; i++) {
        argv[n] = fields[i];
        argvlen[n++] = ngx_strlen(fields[i]);
    }

    /* apikey_record_fields: the same for every source, so one cache entry */

    name = extra->elts;

    for (i = 0; i < extra->nelts; i++) {
        argv[n] = (const char *) name[i].data;
        argvlen[n++] = name[i].len;
    }

    source->nfields = extra->nelts;

    if (ngx_http_apikey_redis_format(cf->temp_pool, &hmget, n, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_memset(nonce, '0', NGX_HTTP_APIKEY_NONCE_LEN);

    argv[0] = "PING";
    argvlen[0] = 4;
    argv[1] = (const char *) nonce;
    argvlen[1] = NGX_HTTP_APIKEY_NONCE_LEN;

    if (ngx_http_apikey_redis_format(cf->temp_pool, &ping, 2, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    source->command.len = hmget.len + ping.len;
    source->command.data = ngx_pnalloc(cf->pool, source->command.len);
    if (source->command.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(source->command.data, hmget.data, hmget.len);
    ngx_memcpy(p, ping.data, ping.len);

    /* "*2\r\n$4\r\nPING\r\n$16\r\n<nonce>\r\n" */
    source->command_nonce = source->command.len - 2
                            - NGX_HTTP_APIKEY_NONCE_LEN;

    /* "*8\r\n$5\r\nHMGET\r\n$<len>\r\n<key>\r\n...": find the key */

    for (p = hmget.data; p + key.len <= hmget.data + hmget.len; p++) {
        if (ngx_memcmp(p, key.data, key.len) == 0) {
            source->command_hash = (p - hmget.data) + source->prefix.len;
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}


static void
ngx_http_apikey_lookup_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_int_t                  rc;
    ngx_rbtree_node_t        **p;
    ngx_http_apikey_lookup_t  *ln, *lnt;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            ln = (ngx_http_apikey_lookup_t *) node;
            lnt = (ngx_http_apikey_lookup_t *) temp;

            rc = ngx_memcmp(ln->digest, lnt->digest,
                            NGX_HTTP_APIKEY_HASH_LEN);

            p = (rc < 0 || (rc == 0 && ln->source < lnt->source))
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
