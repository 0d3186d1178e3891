
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The bucket of a key holds milli-requests, as limit_req's does: each
 * request adds 1000, the key's rate drains it, and a request that would
 * leave more than burst * 1000 in it is refused and adds nothing.  Rates
 * are kept in milli-requests a minute, so that "1r/m" and "6000r/m" are
 * exact where limit_req's milli-requests a second round them down.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_ratelimit.h"


/*
 * After this long a bucket is taken for empty rather than drained: the
 * arithmetic stays inside 64 bits at the highest rate, and even the
 * slowest rate drains a large burst in less.
 */
#define NGX_HTTP_APIKEY_RATELIMIT_IDLE  86400000


typedef struct {
    ngx_rbtree_node_t                node;         /* key: crc32 of the id */
    ngx_queue_t                      queue;        /* least recent last */
    ngx_msec_t                       last;
    uint64_t                         excess;       /* milli-requests */
    uint64_t                         rate;         /* milli-requests/min */
    u_short                          len;
    u_char                           id[1];
} ngx_http_apikey_ratelimit_node_t;


typedef struct {
    ngx_rbtree_t                     rbtree;
    ngx_rbtree_node_t                sentinel;
    ngx_queue_t                      queue;
} ngx_http_apikey_ratelimit_sh_t;


typedef struct {
    ngx_http_apikey_ratelimit_sh_t  *sh;
    ngx_slab_pool_t                 *shpool;
} ngx_http_apikey_ratelimit_zone_t;


static ngx_int_t ngx_http_apikey_ratelimit_take(
    ngx_http_apikey_ratelimit_zone_t *zone, ngx_str_t *id, uint64_t rate,
    uint64_t burst, uint64_t *excess);
static ngx_http_apikey_ratelimit_node_t *ngx_http_apikey_ratelimit_find(
    ngx_http_apikey_ratelimit_zone_t *zone, uint32_t hash, ngx_str_t *id);
static uint64_t ngx_http_apikey_ratelimit_drain(
    ngx_http_apikey_ratelimit_node_t *lr, ngx_msec_t now);
static void ngx_http_apikey_ratelimit_expire(
    ngx_http_apikey_ratelimit_zone_t *zone, ngx_uint_t force);
static uint32_t ngx_http_apikey_ratelimit_seconds(uint64_t milli,
    uint64_t rate);
static void ngx_http_apikey_ratelimit_delayed(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_ratelimit_header_filter(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_ratelimit_header(ngx_http_request_t *r,
    char *name, ngx_str_t *value);
static u_char *ngx_http_apikey_ratelimit_item(u_char *p, u_char k1,
    uint32_t v1, u_char k2, uint32_t v2);
static u_char *ngx_http_apikey_ratelimit_number(u_char *p, uint32_t n);
static void ngx_http_apikey_ratelimit_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_apikey_ratelimit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

/*
 * The tag of the zones: not the module's, which apikey_cache_zone's carry,
 * so that nginx tells the two apart, at startup and across a reload that
 * gives one's name to the other.  The module stays loaded over a reload:
 * the address, and the zone, stay the same.
 */
static u_char  ngx_http_apikey_ratelimit_tag;


ngx_http_apikey_status_e
ngx_http_apikey_ratelimit_check(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx)
{
    uint64_t                           rate, burst, excess, wait;
    ngx_int_t                          rc;
    ngx_http_apikey_rate_t            *own;
    ngx_http_apikey_record_t          *record;
    ngx_http_apikey_rate_conf_t  *rlcf;

    rlcf = alcf->rate_limit;
    record = &ctx->record;

    /* as limit_req: one check per request, whatever locations follow */

    ctx->rate_checked = 1;

    if (record->rate_invalid) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "apikey: key \"%V\" has an invalid rate or burst",
                      &record->id);
        return NGX_HTTP_APIKEY_INVALID;
    }

    own = record->rate.requests ? &record->rate : &rlcf->rate;

    if (own->requests == 0) {
        return NGX_HTTP_APIKEY_OK;
    }

    if (record->id.len > 65535) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "apikey: key id of %uz bytes too long for "
                      "apikey_rate_limit", record->id.len);
        return NGX_HTTP_APIKEY_ERROR;
    }

    rate = (uint64_t) own->requests * 60000 / own->period;
    burst = (uint64_t) (record->has_burst ? record->burst : rlcf->burst)
            * 1000;

    rc = ngx_http_apikey_ratelimit_take(rlcf->zone->data, &record->id, rate,
                                        burst, &excess);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_APIKEY_ERROR;
    }

    ctx->rate_quota = own->requests;
    ctx->rate_window = own->period;

    if (rc == NGX_BUSY) {
        wait = excess - burst;

        ctx->rate_remaining = 0;
        ctx->rate_reset = ngx_http_apikey_ratelimit_seconds(wait, rate);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "apikey: rate limit of key \"%V\": retry after %uDs",
                       &record->id, ctx->rate_reset);

        return NGX_HTTP_APIKEY_RATE_LIMITED;
    }

    ctx->rate_remaining = (uint32_t) ((burst - excess) / 1000);
    ctx->rate_reset = ngx_http_apikey_ratelimit_seconds(excess, rate);

    /* as limit_req without nodelay: the excess waits its turn */

    if (excess && !rlcf->nodelay) {
        ctx->rate_delay = (ngx_msec_t) ((excess * 60000 + rate - 1) / rate);
    }

    return NGX_HTTP_APIKEY_OK;
}


/*
 * NGX_OK: counted, *excess is the bucket after this request; NGX_BUSY:
 * refused, *excess is what the bucket would have held; NGX_ERROR: no room
 * in the zone even after evicting.
 */

static ngx_int_t
ngx_http_apikey_ratelimit_take(ngx_http_apikey_ratelimit_zone_t *zone,
    ngx_str_t *id, uint64_t rate, uint64_t burst, uint64_t *excess)
{
    size_t                             size;
    uint32_t                           hash;
    uint64_t                           e;
    ngx_msec_t                         now;
    ngx_http_apikey_ratelimit_node_t  *lr;

    hash = ngx_crc32_short(id->data, id->len);
    now = ngx_current_msec;

    ngx_shmtx_lock(&zone->shpool->mutex);

    lr = ngx_http_apikey_ratelimit_find(zone, hash, id);

    if (lr) {
        ngx_queue_remove(&lr->queue);
        ngx_queue_insert_head(&zone->sh->queue, &lr->queue);

        /* a key's rate may have changed since: the new one drains it */

        lr->rate = rate;
        e = ngx_http_apikey_ratelimit_drain(lr, now) + 1000;
        *excess = e;

        if (e > burst) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_BUSY;
        }

        lr->excess = e;
        lr->last = now;

        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_OK;
    }

    size = offsetof(ngx_http_apikey_ratelimit_node_t, id) + id->len;

    ngx_http_apikey_ratelimit_expire(zone, 0);

    lr = ngx_slab_alloc_locked(zone->shpool, size);

    if (lr == NULL) {
        ngx_http_apikey_ratelimit_expire(zone, 1);

        lr = ngx_slab_alloc_locked(zone->shpool, size);

        if (lr == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);

            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "apikey: could not allocate a bucket%s",
                          zone->shpool->log_ctx);
            return NGX_ERROR;
        }
    }

    lr->node.key = hash;
    lr->last = now;
    lr->excess = 0;
    lr->rate = rate;
    lr->len = (u_short) id->len;
    ngx_memcpy(lr->id, id->data, id->len);

    ngx_rbtree_insert(&zone->sh->rbtree, &lr->node);
    ngx_queue_insert_head(&zone->sh->queue, &lr->queue);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    *excess = 0;

    return NGX_OK;
}


static ngx_http_apikey_ratelimit_node_t *
ngx_http_apikey_ratelimit_find(ngx_http_apikey_ratelimit_zone_t *zone,
    uint32_t hash, ngx_str_t *id)
{
    ngx_int_t                          rc;
    ngx_rbtree_node_t                 *node, *sentinel;
    ngx_http_apikey_ratelimit_node_t  *lr;

    node = zone->sh->rbtree.root;
    sentinel = zone->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        lr = (ngx_http_apikey_ratelimit_node_t *) node;

        rc = ngx_memn2cmp(id->data, lr->id, id->len, lr->len);

        if (rc == 0) {
            return lr;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* what is left in a bucket now */

static uint64_t
ngx_http_apikey_ratelimit_drain(ngx_http_apikey_ratelimit_node_t *lr,
    ngx_msec_t now)
{
    uint64_t        drained;
    ngx_msec_int_t  ms;

    ms = (ngx_msec_int_t) (now - lr->last);

    /*
     * Workers read the clock at different moments: a few milliseconds
     * "before" the last request are none at all.
     */

    if (ms <= 0) {
        return lr->excess;
    }

    if (ms >= NGX_HTTP_APIKEY_RATELIMIT_IDLE) {
        return 0;
    }

    drained = lr->rate * (uint64_t) ms / 60000;

    return (lr->excess > drained) ? lr->excess - drained : 0;
}


/*
 * Buckets are kept until they are empty, least recently used first: two
 * at most each time one is made, and with force the oldest full one too
 * when the zone has no room left.
 */

static void
ngx_http_apikey_ratelimit_expire(ngx_http_apikey_ratelimit_zone_t *zone,
    ngx_uint_t force)
{
    ngx_uint_t                         n;
    ngx_msec_t                         now;
    ngx_queue_t                       *q;
    ngx_http_apikey_ratelimit_node_t  *lr;

    now = ngx_current_msec;

    for (n = 0; n < 3; n++) {

        if (ngx_queue_empty(&zone->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&zone->sh->queue);
        lr = ngx_queue_data(q, ngx_http_apikey_ratelimit_node_t, queue);

        if (!(force && n == 0)
            && ngx_http_apikey_ratelimit_drain(lr, now) != 0)
        {
            return;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&zone->sh->rbtree, &lr->node);
        ngx_slab_free_locked(zone->shpool, lr);
    }
}


/* whole seconds, rounded up, until a bucket loses milli */

static uint32_t
ngx_http_apikey_ratelimit_seconds(uint64_t milli, uint64_t rate)
{
    uint64_t  ms;

    ms = (milli * 60000 + rate - 1) / rate;

    return (uint32_t) ((ms + 999) / 1000);
}


ngx_int_t
ngx_http_apikey_ratelimit_delay(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx)
{
    ngx_msec_t  delay;

    delay = ctx->rate_delay;
    ctx->rate_delay = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "apikey: rate limit delays the request %Mms", delay);

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->rate_delayed = 1;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_apikey_ratelimit_delayed;
    ngx_add_timer(r->connection->write, delay);

    return NGX_AGAIN;
}


static void
ngx_http_apikey_ratelimit_delayed(ngx_http_request_t *r)
{
    ngx_event_t  *wev;

    wev = r->connection->write;

    /* the socket may turn writable before the time is up */

    if (!wev->timedout) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    wev->timedout = 0;

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
}


/*
 * The RateLimit fields go on the answers a limited key got: its 2xx ones
 * with what is left, its 429 with none and Retry-After.  An upstream's
 * 404 or 500 is no news about the quota.
 */

static ngx_int_t
ngx_http_apikey_ratelimit_header_filter(ngx_http_request_t *r)
{
    u_char                 *p;
    ngx_str_t               value;
    ngx_uint_t              status;
    ngx_http_apikey_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_apikey_ctx_get(r);

    if (ctx == NULL || ctx->rate_quota == 0) {
        return ngx_http_next_header_filter(r);
    }

    status = r->headers_out.status;

    if (!(status == NGX_HTTP_TOO_MANY_REQUESTS
          && ctx->status == NGX_HTTP_APIKEY_RATE_LIMITED)
        && (status < NGX_HTTP_OK
            || status >= NGX_HTTP_SPECIAL_RESPONSE
            || ctx->status != NGX_HTTP_APIKEY_OK))
    {
        return ngx_http_next_header_filter(r);
    }

    /* one allocation for the three values; ngx_sprintf() costs more */

    p = ngx_pnalloc(r->pool, sizeof("\"default\";q=;w=\"default\";r=;t=") - 1
                             + 5 * NGX_INT32_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (status == NGX_HTTP_TOO_MANY_REQUESTS) {
        value.data = p;
        p = ngx_http_apikey_ratelimit_number(p, ctx->rate_reset);
        value.len = p - value.data;

        if (ngx_http_apikey_ratelimit_header(r, "Retry-After", &value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    value.data = p;
    p = ngx_http_apikey_ratelimit_item(p, 'q', ctx->rate_quota,
                                       'w', ctx->rate_window);
    value.len = p - value.data;

    if (ngx_http_apikey_ratelimit_header(r, "RateLimit-Policy", &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    value.data = p;
    p = ngx_http_apikey_ratelimit_item(p, 'r', ctx->rate_remaining,
                                       't', ctx->rate_reset);
    value.len = p - value.data;

    if (ngx_http_apikey_ratelimit_header(r, "RateLimit", &value) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_apikey_ratelimit_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* a structured field item: the policy's name and two parameters */

static u_char *
ngx_http_apikey_ratelimit_item(u_char *p, u_char k1, uint32_t v1, u_char k2,
    uint32_t v2)
{
    p = ngx_cpymem(p, "\"default\";", sizeof("\"default\";") - 1);

    *p++ = k1;
    *p++ = '=';
    p = ngx_http_apikey_ratelimit_number(p, v1);

    *p++ = ';';
    *p++ = k2;
    *p++ = '=';

    return ngx_http_apikey_ratelimit_number(p, v2);
}


static u_char *
ngx_http_apikey_ratelimit_number(u_char *p, uint32_t n)
{
    u_char   digits[NGX_INT32_LEN];
    u_char  *d;

    d = digits + NGX_INT32_LEN;

    do {
        *--d = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, d, digits + NGX_INT32_LEN - d);
}


/* apikey_rate_limit_zone NAME:SIZE; */

char *
ngx_http_apikey_ratelimit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    u_char                            *p;
    ssize_t                            size;
    ngx_str_t                         *value, name, s;
    ngx_shm_zone_t                    *shm_zone;
    ngx_http_apikey_ratelimit_zone_t  *zone;

    value = cf->args->elts;

    p = (u_char *) ngx_strlchr(value[1].data, value[1].data + value[1].len,
                               ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected NAME:SIZE",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - name.data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_ratelimit_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_apikey_ratelimit_tag);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_apikey_ratelimit_init_zone;
    shm_zone->data = zone;

    return NGX_CONF_OK;
}


/* apikey_rate_limit zone=NAME [default=RATE] [burst=N] [nodelay]; */

char *
ngx_http_apikey_ratelimit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    ngx_str_t                         *value, s;
    ngx_uint_t                         i;
    ngx_http_apikey_rate_conf_t  *rlcf;

    if (alcf->rate_limit != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    rlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_rate_conf_t));
    if (rlcf == NULL) {
        return NGX_CONF_ERROR;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rlcf->zone = NULL;
     *     rlcf->rate = { 0, 0 };
     *     rlcf->burst = 0;
     *     rlcf->nodelay = 0;
     */

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (s.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            rlcf->zone = ngx_shared_memory_add(cf, &s, 0,
                                               &ngx_http_apikey_ratelimit_tag);
            if (rlcf->zone == NULL) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "default=", 8) == 0) {

            if (ngx_http_apikey_rate_parse(value[i].data + 8,
                                           value[i].len - 8, &rlcf->rate)
                != 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid rate \"%V\": Nr/s or Nr/m, N "
                                   "from 1 to %d", &value[i],
                                   NGX_HTTP_APIKEY_RATE_MAX);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {

            if (ngx_http_apikey_rate_burst(value[i].data + 6,
                                           value[i].len - 6, &rlcf->burst)
                != 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid burst \"%V\": 0 to %d requests",
                                   &value[i], NGX_HTTP_APIKEY_BURST_MAX);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "nodelay") == 0) {
            rlcf->nodelay = 1;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected zone=, "
                           "default=, burst= or nodelay", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (rlcf->zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs zone=NAME", &cmd->name);
        return NGX_CONF_ERROR;
    }

    alcf->rate_limit = rlcf;

    return NGX_CONF_OK;
}


/* zones are checked once the http block is read: one may come later */

ngx_int_t
ngx_http_apikey_ratelimit_merge(ngx_conf_t *cf,
    ngx_http_apikey_loc_conf_t *conf)
{
    ngx_shm_zone_t  *zone;

    if (conf->rate_limit == NULL) {
        return NGX_OK;
    }

    zone = conf->rate_limit->zone;

    if (zone->init != ngx_http_apikey_ratelimit_init_zone) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown apikey_rate_limit_zone \"%V\"",
                           &zone->shm.name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_ratelimit_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_apikey_ratelimit_header_filter;

    return NGX_OK;
}


static void
ngx_http_apikey_ratelimit_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t                 **p;
    ngx_http_apikey_ratelimit_node_t   *lr, *lrt;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            lr = (ngx_http_apikey_ratelimit_node_t *) node;
            lrt = (ngx_http_apikey_ratelimit_node_t *) temp;

            p = (ngx_memn2cmp(lr->id, lrt->id, lr->len, lrt->len) < 0)
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


/* a reload keeps the buckets: the zone of the old cycle goes on */

static ngx_int_t
ngx_http_apikey_ratelimit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_apikey_ratelimit_zone_t  *ozone = data;

    size_t                             len;
    ngx_http_apikey_ratelimit_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_alloc(zone->shpool,
                              sizeof(ngx_http_apikey_ratelimit_sh_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_http_apikey_ratelimit_insert_value);

    ngx_queue_init(&zone->sh->queue);

    len = sizeof(" in apikey_rate_limit_zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in apikey_rate_limit_zone \"%V\"%Z",
                &shm_zone->shm.name);

    zone->shpool->log_nomem = 0;

    return NGX_OK;
}
