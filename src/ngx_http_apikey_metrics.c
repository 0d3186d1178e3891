
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_metrics.h"
#include "ngx_http_apikey_answer.h"
#include "ngx_http_apikey_cache.h"


/* workers with a slot of their own; any further ones are not counted */
#define NGX_HTTP_APIKEY_METRICS_WORKERS  NGX_HTTP_APIKEY_CACHE_WORKERS

#define NGX_HTTP_APIKEY_METRICS_BUCKETS  13


/* a worker's counts of one Redis server */

typedef struct {
    ngx_uint_t                         commands[3];
    ngx_uint_t                         conns[2];    /* busy, idle */

    /* lookups answered within each bound, and not within the one before */
    ngx_uint_t                         buckets[NGX_HTTP_APIKEY_METRICS_BUCKETS];
    ngx_uint_t                         count;
    uint64_t                           usec;
} ngx_http_apikey_metrics_server_t;


/*
 * A worker's slot: these counts, then one of the above for every server,
 * then the re-subscriptions of every source.
 */

typedef struct {
    ngx_uint_t                         requests[NGX_HTTP_APIKEY_NSTATUS];
    ngx_uint_t                         cache[4];
} ngx_http_apikey_metrics_worker_t;


typedef struct {
    ngx_uint_t                         nservers;
    ngx_uint_t                         nsources;
    size_t                             slot_size;
    u_char                            *slots;
} ngx_http_apikey_metrics_zone_t;


/* where this worker counts */

typedef struct {
    ngx_http_apikey_metrics_worker_t  *worker;
    ngx_http_apikey_metrics_server_t  *servers;
    ngx_uint_t                        *resubscribed;
} ngx_http_apikey_metrics_slot_t;


/* the sums over all workers */

typedef struct {
    ngx_http_apikey_metrics_worker_t   worker;
    ngx_http_apikey_metrics_server_t  *servers;
    ngx_uint_t                        *resubscribed;
    ngx_http_apikey_cache_stats_t      cache;

    /* label values, escaped for the format at hand */
    ngx_str_t                         *urls;
    ngx_str_t                         *prefixes;
} ngx_http_apikey_metrics_sums_t;


static ngx_int_t ngx_http_apikey_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_apikey_metrics_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_metrics_sum(ngx_http_request_t *r,
    ngx_http_apikey_main_conf_t *amcf, ngx_http_apikey_metrics_sums_t *sums,
    ngx_uint_t json);
static ngx_int_t ngx_http_apikey_metrics_escape(ngx_pool_t *pool,
    ngx_str_t *dst, ngx_str_t *src, ngx_uint_t json);
static u_char *ngx_http_apikey_metrics_text(u_char *p, u_char *last,
    ngx_http_apikey_main_conf_t *amcf, ngx_http_apikey_metrics_sums_t *sums);
static u_char *ngx_http_apikey_metrics_json(u_char *p, u_char *last,
    ngx_http_apikey_main_conf_t *amcf, ngx_http_apikey_metrics_sums_t *sums);


static ngx_str_t  ngx_http_apikey_metrics_zone_name =
    ngx_string("apikey:metrics");

/* no other directive can name this zone and use it for something else */
static ngx_uint_t  ngx_http_apikey_metrics_tag;

/* what the cache made of a lookup; "-" for none */
static ngx_str_t  ngx_http_apikey_metrics_cache_names[] = {
    ngx_string("-"),
    ngx_string("hit"),
    ngx_string("miss"),
    ngx_string("bypass")
};

static char  *ngx_http_apikey_metrics_results[] = { "ok", "error", "timeout" };

static ngx_uint_t  ngx_http_apikey_metrics_bounds[] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    500000, 1000000
};

static char  *ngx_http_apikey_metrics_les[] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025", "0.05", "0.1", "0.25", "0.5", "1"
};

static ngx_http_apikey_metrics_slot_t  ngx_http_apikey_metrics_slot;


/*
 * One zone per http block, made once the configuration is known: its
 * size depends on the servers and sources.  Counters start from zero on a
 * reload (a new zone; the old workers count on in the old one), as
 * Prometheus expects of a restart.
 */

ngx_int_t
ngx_http_apikey_metrics_add(ngx_conf_t *cf, ngx_http_apikey_main_conf_t *amcf)
{
    size_t                           size;
    ngx_shm_zone_t                  *shm_zone;
    ngx_http_apikey_metrics_zone_t  *zone;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_metrics_zone_t));
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->nservers = amcf->servers.nelts;
    zone->nsources = amcf->sources.nelts;

    size = sizeof(ngx_http_apikey_metrics_worker_t)
           + zone->nservers * sizeof(ngx_http_apikey_metrics_server_t)
           + zone->nsources * sizeof(ngx_uint_t);

    /* no two workers write into one cache line */
    zone->slot_size = ngx_align(size, NGX_CPU_CACHE_LINE);

    size = NGX_HTTP_APIKEY_METRICS_WORKERS * zone->slot_size;
    size = ngx_align(size, ngx_pagesize) + 8 * ngx_pagesize;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_apikey_metrics_zone_name,
                                     size, &ngx_http_apikey_metrics_tag);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_apikey_metrics_init_zone;
    shm_zone->data = zone;
    shm_zone->noreuse = 1;

    amcf->metrics = shm_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                           size;
    ngx_slab_pool_t                 *shpool;
    ngx_http_apikey_metrics_zone_t  *zone;

    zone = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    size = NGX_HTTP_APIKEY_METRICS_WORKERS * zone->slot_size;

    zone->slots = ngx_slab_calloc(shpool, size);
    if (zone->slots == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* apikey_metrics; */

char *
ngx_http_apikey_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_apikey_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_apikey_metrics_handler) {
        return "is duplicate";
    }

    clcf->handler = ngx_http_apikey_metrics_handler;
    amcf->metrics_used = 1;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_apikey_metrics_init_process(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *amcf)
{
    u_char                           *p;
    ngx_uint_t                        i;
    ngx_http_apikey_metrics_zone_t   *zone;
    ngx_http_apikey_redis_server_t  **server;

    if (amcf->metrics == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    if (ngx_worker >= NGX_HTTP_APIKEY_METRICS_WORKERS) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "apikey metrics: worker %ui is not counted: only the "
                      "first %d are", ngx_worker,
                      NGX_HTTP_APIKEY_METRICS_WORKERS);
        return NGX_OK;
    }

    zone = amcf->metrics->data;

    p = zone->slots + ngx_worker * zone->slot_size;

    ngx_http_apikey_metrics_slot.worker =
                                      (ngx_http_apikey_metrics_worker_t *) p;
    p += sizeof(ngx_http_apikey_metrics_worker_t);

    ngx_http_apikey_metrics_slot.servers =
                                      (ngx_http_apikey_metrics_server_t *) p;
    p += zone->nservers * sizeof(ngx_http_apikey_metrics_server_t);

    ngx_http_apikey_metrics_slot.resubscribed = (ngx_uint_t *) p;

    server = amcf->servers.elts;

    for (i = 0; i < amcf->servers.nelts; i++) {
        server[i]->shown = ngx_http_apikey_metrics_slot.servers[i].conns;
    }

    return NGX_OK;
}


void
ngx_http_apikey_metrics_request(ngx_http_apikey_status_e status)
{
    if (ngx_http_apikey_metrics_slot.worker) {
        ngx_http_apikey_metrics_slot.worker->requests[status]++;
    }
}


void
ngx_http_apikey_metrics_cache(ngx_uint_t result)
{
    if (ngx_http_apikey_metrics_slot.worker) {
        ngx_http_apikey_metrics_slot.worker->cache[result]++;
    }
}


/* microseconds: ngx_current_msec is too coarse for a round trip */

uint64_t
ngx_http_apikey_metrics_clock(void)
{
    struct timespec  ts;

    if (ngx_http_apikey_metrics_slot.worker == NULL
        || clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
    {
        return 0;
    }

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* a lookup ended; start is 0 when it never reached Redis */

void
ngx_http_apikey_metrics_redis(ngx_http_apikey_redis_server_t *server,
    ngx_uint_t result, uint64_t start)
{
    uint64_t                           usec;
    ngx_uint_t                         i;
    ngx_http_apikey_metrics_server_t  *s;

    if (ngx_http_apikey_metrics_slot.worker == NULL) {
        return;
    }

    s = &ngx_http_apikey_metrics_slot.servers[server->index];

    s->commands[result]++;

    if (result != NGX_HTTP_APIKEY_METRICS_OK || start == 0) {
        return;
    }

    usec = ngx_http_apikey_metrics_clock() - start;

    for (i = 0; i < NGX_HTTP_APIKEY_METRICS_BUCKETS; i++) {
        if (usec <= ngx_http_apikey_metrics_bounds[i]) {
            s->buckets[i]++;
            break;
        }
    }

    s->count++;
    s->usec += usec;
}


void
ngx_http_apikey_metrics_resubscribed(ngx_http_apikey_source_t *source)
{
    if (ngx_http_apikey_metrics_slot.worker) {
        ngx_http_apikey_metrics_slot.resubscribed[source->index]++;
    }
}


/*
 * Like stub_status: GET or HEAD, no body; "?format=json" for the same
 * numbers as one JSON object.
 */

static ngx_int_t
ngx_http_apikey_metrics_handler(ngx_http_request_t *r)
{
    size_t                           size;
    ngx_int_t                        rc;
    ngx_str_t                        format;
    ngx_buf_t                       *b;
    ngx_uint_t                       i, json;
    ngx_chain_t                      out;
    ngx_http_apikey_source_t       **source;
    ngx_http_apikey_main_conf_t     *amcf;
    ngx_http_apikey_metrics_sums_t   sums;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    json = 0;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {

        if (format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0) {
            json = 1;

        } else if (format.len != 10
                   || ngx_strncmp(format.data, "prometheus", 10) != 0)
        {
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    if (ngx_http_apikey_metrics_sum(r, amcf, &sums, json) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json) {
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    /* the longest line with its labels, for every line */

    size = 16384;
    source = amcf->sources.elts;

    for (i = 0; i < amcf->servers.nelts; i++) {
        size += 24 * (160 + sums.urls[i].len);
    }

    for (i = 0; i < amcf->sources.nelts; i++) {
        size += 4 * (160 + sums.urls[source[i]->server->index].len
                     + sums.prefixes[i].len);
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = json ? ngx_http_apikey_metrics_json(b->pos, b->end, amcf, &sums)
                   : ngx_http_apikey_metrics_text(b->pos, b->end, amcf, &sums);

    if (b->last == b->end) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "apikey metrics: %uz bytes were too few", size);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* plain words, read without a lock: a count may be a moment old */

static ngx_int_t
ngx_http_apikey_metrics_sum(ngx_http_request_t *r,
    ngx_http_apikey_main_conf_t *amcf, ngx_http_apikey_metrics_sums_t *sums,
    ngx_uint_t json)
{
    u_char                             *p;
    ngx_uint_t                          w, i, j;
    ngx_http_apikey_source_t          **source;
    ngx_http_apikey_metrics_zone_t     *zone;
    ngx_http_apikey_metrics_server_t   *s, *sum;
    ngx_http_apikey_metrics_worker_t   *worker;
    ngx_http_apikey_redis_server_t    **server;

    ngx_memzero(sums, sizeof(ngx_http_apikey_metrics_sums_t));

    zone = amcf->metrics->data;
    server = amcf->servers.elts;
    source = amcf->sources.elts;

    sums->servers = ngx_pcalloc(r->pool, zone->nservers
                                * sizeof(ngx_http_apikey_metrics_server_t));
    sums->resubscribed = ngx_pcalloc(r->pool,
                                     zone->nsources * sizeof(ngx_uint_t));
    sums->urls = ngx_pcalloc(r->pool, zone->nservers * sizeof(ngx_str_t));
    sums->prefixes = ngx_pcalloc(r->pool, zone->nsources * sizeof(ngx_str_t));

    if ((zone->nservers && (sums->servers == NULL || sums->urls == NULL))
        || (zone->nsources
            && (sums->resubscribed == NULL || sums->prefixes == NULL)))
    {
        return NGX_ERROR;
    }

    for (w = 0; w < NGX_HTTP_APIKEY_METRICS_WORKERS; w++) {
        p = zone->slots + w * zone->slot_size;

        worker = (ngx_http_apikey_metrics_worker_t *) p;
        p += sizeof(ngx_http_apikey_metrics_worker_t);

        for (i = 0; i < NGX_HTTP_APIKEY_NSTATUS; i++) {
            sums->worker.requests[i] += worker->requests[i];
        }

        for (i = 0; i < 4; i++) {
            sums->worker.cache[i] += worker->cache[i];
        }

        s = (ngx_http_apikey_metrics_server_t *) p;
        p += zone->nservers * sizeof(ngx_http_apikey_metrics_server_t);

        for (i = 0; i < zone->nservers; i++) {
            sum = &sums->servers[i];

            for (j = 0; j < 3; j++) {
                sum->commands[j] += s[i].commands[j];
            }

            sum->conns[0] += s[i].conns[0];
            sum->conns[1] += s[i].conns[1];

            for (j = 0; j < NGX_HTTP_APIKEY_METRICS_BUCKETS; j++) {
                sum->buckets[j] += s[i].buckets[j];
            }

            sum->count += s[i].count;
            sum->usec += s[i].usec;
        }

        for (i = 0; i < zone->nsources; i++) {
            sums->resubscribed[i] += ((ngx_uint_t *) p)[i];
        }
    }

    if (amcf->cache) {
        ngx_http_apikey_cache_stats(amcf->cache, &sums->cache);
    }

    for (i = 0; i < zone->nservers; i++) {
        if (ngx_http_apikey_metrics_escape(r->pool, &sums->urls[i],
                                           &server[i]->url, json)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < zone->nsources; i++) {
        if (ngx_http_apikey_metrics_escape(r->pool, &sums->prefixes[i],
                                           &source[i]->prefix, json)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a label value of the text format escapes \, " and newlines only */

static ngx_int_t
ngx_http_apikey_metrics_escape(ngx_pool_t *pool, ngx_str_t *dst,
    ngx_str_t *src, ngx_uint_t json)
{
    u_char  *p, *s;

    if (json) {
        dst->len = src->len + ngx_escape_json(NULL, src->data, src->len);

        dst->data = ngx_pnalloc(pool, dst->len);
        if (dst->data == NULL) {
            return NGX_ERROR;
        }

        ngx_escape_json(dst->data, src->data, src->len);

        return NGX_OK;
    }

    dst->data = ngx_pnalloc(pool, 2 * src->len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    p = dst->data;

    for (s = src->data; s < src->data + src->len; s++) {
        switch (*s) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = *s;
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = *s;
        }
    }

    dst->len = p - dst->data;

    return NGX_OK;
}


static u_char *
ngx_http_apikey_metrics_text(u_char *p, u_char *last,
    ngx_http_apikey_main_conf_t *amcf, ngx_http_apikey_metrics_sums_t *sums)
{
    ngx_str_t                          *url;
    ngx_uint_t                          i, j, n;
    ngx_http_apikey_source_t          **source;
    ngx_http_apikey_metrics_server_t   *s;

    source = amcf->sources.elts;

    p = ngx_slprintf(p, last,
            "# HELP apikey_requests_total Requests the module decided, "
            "by $apikey_status.\n"
            "# TYPE apikey_requests_total counter\n");

    for (i = 0; i < NGX_HTTP_APIKEY_NSTATUS; i++) {
        p = ngx_slprintf(p, last, "apikey_requests_total{status=\"%V\"} %ui\n",
                         ngx_http_apikey_answer_name(i),
                         sums->worker.requests[i]);
    }

    if (amcf->cache) {
        p = ngx_slprintf(p, last,
                "# HELP apikey_cache_lookups_total Lookups of keys in the "
                "cache zone, by what the cache made of them.\n"
                "# TYPE apikey_cache_lookups_total counter\n");

        for (i = NGX_HTTP_APIKEY_METRICS_HIT;
             i <= NGX_HTTP_APIKEY_METRICS_BYPASS;
             i++)
        {
            p = ngx_slprintf(p, last,
                             "apikey_cache_lookups_total{result=\"%V\"} %ui\n",
                             &ngx_http_apikey_metrics_cache_names[i],
                             sums->worker.cache[i]);
        }

        p = ngx_slprintf(p, last,
                "# HELP apikey_cache_entries Keys and unknown keys in the "
                "cache zone.\n"
                "# TYPE apikey_cache_entries gauge\n"
                "apikey_cache_entries %ui\n"
                "# HELP apikey_cache_evictions_total Entries dropped to make "
                "room for others.\n"
                "# TYPE apikey_cache_evictions_total counter\n"
                "apikey_cache_evictions_total %ui\n"
                "# HELP apikey_cache_invalidations_total Entries dropped "
                "because their record was written in Redis.\n"
                "# TYPE apikey_cache_invalidations_total counter\n"
                "apikey_cache_invalidations_total %ui\n",
                sums->cache.entries, sums->cache.evictions,
                sums->cache.invalidations);
    }

    n = amcf->servers.nelts;

    if (n == 0) {
        return p;
    }

    p = ngx_slprintf(p, last,
            "# HELP apikey_redis_commands_total Key lookups sent to Redis, "
            "by how they ended.\n"
            "# TYPE apikey_redis_commands_total counter\n");

    for (i = 0; i < n; i++) {
        for (j = 0; j < 3; j++) {
            p = ngx_slprintf(p, last,
                             "apikey_redis_commands_total{server=\"%V\","
                             "result=\"%s\"} %ui\n",
                             &sums->urls[i],
                             ngx_http_apikey_metrics_results[j],
                             sums->servers[i].commands[j]);
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP apikey_redis_connections Connections of key lookups "
            "open to Redis, with commands in flight or idle.\n"
            "# TYPE apikey_redis_connections gauge\n");

    for (i = 0; i < n; i++) {
        p = ngx_slprintf(p, last,
                         "apikey_redis_connections{server=\"%V\","
                         "state=\"active\"} %ui\n"
                         "apikey_redis_connections{server=\"%V\","
                         "state=\"idle\"} %ui\n",
                         &sums->urls[i], sums->servers[i].conns[0],
                         &sums->urls[i], sums->servers[i].conns[1]);
    }

    p = ngx_slprintf(p, last,
            "# HELP apikey_redis_lookup_seconds Round trips of key lookups "
            "that Redis answered.\n"
            "# TYPE apikey_redis_lookup_seconds histogram\n");

    for (i = 0; i < n; i++) {
        s = &sums->servers[i];
        url = &sums->urls[i];

        for (j = 0; j < NGX_HTTP_APIKEY_METRICS_BUCKETS; j++) {
            if (j) {
                s->buckets[j] += s->buckets[j - 1];
            }

            p = ngx_slprintf(p, last,
                             "apikey_redis_lookup_seconds_bucket{server=\"%V\","
                             "le=\"%s\"} %ui\n",
                             url, ngx_http_apikey_metrics_les[j],
                             s->buckets[j]);
        }

        p = ngx_slprintf(p, last,
                         "apikey_redis_lookup_seconds_bucket{server=\"%V\","
                         "le=\"+Inf\"} %ui\n"
                         "apikey_redis_lookup_seconds_sum{server=\"%V\"} "
                         "%uL.%06uL\n"
                         "apikey_redis_lookup_seconds_count{server=\"%V\"} "
                         "%ui\n",
                         url, s->count, url, s->usec / 1000000,
                         s->usec % 1000000, url, s->count);
    }

    if (amcf->cache == NULL) {
        return p;
    }

    p = ngx_slprintf(p, last,
            "# HELP apikey_subscription_up Whether some worker's "
            "invalidation subscription is live.\n"
            "# TYPE apikey_subscription_up gauge\n");

    for (i = 0; i < amcf->sources.nelts; i++) {
        if (source[i]->cached) {
            p = ngx_slprintf(p, last,
                             "apikey_subscription_up{server=\"%V\","
                             "prefix=\"%V\"} %ui\n",
                             &sums->urls[source[i]->server->index],
                             &sums->prefixes[i],
                             ngx_http_apikey_cache_live(amcf->cache, i));
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP apikey_subscription_reconnects_total Times a worker's "
            "invalidation subscription was live again after it was lost.\n"
            "# TYPE apikey_subscription_reconnects_total counter\n");

    for (i = 0; i < amcf->sources.nelts; i++) {
        if (source[i]->cached) {
            p = ngx_slprintf(p, last,
                             "apikey_subscription_reconnects_total{"
                             "server=\"%V\",prefix=\"%V\"} %ui\n",
                             &sums->urls[source[i]->server->index],
                             &sums->prefixes[i], sums->resubscribed[i]);
        }
    }

    return p;
}


static u_char *
ngx_http_apikey_metrics_json(u_char *p, u_char *last,
    ngx_http_apikey_main_conf_t *amcf, ngx_http_apikey_metrics_sums_t *sums)
{
    ngx_uint_t                          i, j, live, first;
    ngx_http_apikey_source_t          **source;
    ngx_http_apikey_metrics_server_t   *s;

    source = amcf->sources.elts;

    p = ngx_slprintf(p, last, "{\"requests\":{");

    for (i = 0; i < NGX_HTTP_APIKEY_NSTATUS; i++) {
        p = ngx_slprintf(p, last, "%s\"%V\":%ui", i ? "," : "",
                         ngx_http_apikey_answer_name(i),
                         sums->worker.requests[i]);
    }

    p = ngx_slprintf(p, last, "},\"cache\":");

    if (amcf->cache) {
        p = ngx_slprintf(p, last,
                         "{\"lookups\":{\"hit\":%ui,\"miss\":%ui,"
                         "\"bypass\":%ui},\"entries\":%ui,\"evictions\":%ui,"
                         "\"invalidations\":%ui}",
                         sums->worker.cache[NGX_HTTP_APIKEY_METRICS_HIT],
                         sums->worker.cache[NGX_HTTP_APIKEY_METRICS_MISS],
                         sums->worker.cache[NGX_HTTP_APIKEY_METRICS_BYPASS],
                         sums->cache.entries, sums->cache.evictions,
                         sums->cache.invalidations);

    } else {
        p = ngx_slprintf(p, last, "null");
    }

    p = ngx_slprintf(p, last, ",\"redis\":[");

    for (i = 0; i < amcf->servers.nelts; i++) {
        s = &sums->servers[i];

        p = ngx_slprintf(p, last,
                         "%s{\"server\":\"%V\",\"commands\":{\"ok\":%ui,"
                         "\"error\":%ui,\"timeout\":%ui},\"connections\":"
                         "{\"active\":%ui,\"idle\":%ui},\"lookup_seconds\":"
                         "{\"buckets\":{",
                         i ? "," : "", &sums->urls[i],
                         s->commands[NGX_HTTP_APIKEY_METRICS_OK],
                         s->commands[NGX_HTTP_APIKEY_METRICS_ERROR],
                         s->commands[NGX_HTTP_APIKEY_METRICS_TIMEOUT],
                         s->conns[0], s->conns[1]);

        for (j = 0; j < NGX_HTTP_APIKEY_METRICS_BUCKETS; j++) {
            if (j) {
                s->buckets[j] += s->buckets[j - 1];
            }

            p = ngx_slprintf(p, last, "\"%s\":%ui,",
                             ngx_http_apikey_metrics_les[j], s->buckets[j]);
        }

        p = ngx_slprintf(p, last,
                         "\"+Inf\":%ui},\"sum\":%uL.%06uL,\"count\":%ui}}",
                         s->count, s->usec / 1000000, s->usec % 1000000,
                         s->count);
    }

    p = ngx_slprintf(p, last, "],\"subscriptions\":[");

    first = 1;

    for (i = 0; amcf->cache && i < amcf->sources.nelts; i++) {
        if (!source[i]->cached) {
            continue;
        }

        live = ngx_http_apikey_cache_live(amcf->cache, i);

        p = ngx_slprintf(p, last,
                         "%s{\"server\":\"%V\",\"prefix\":\"%V\","
                         "\"subscription\":\"%s\",\"up\":%ui,"
                         "\"reconnects\":%ui}",
                         first ? "" : ",",
                         &sums->urls[source[i]->server->index],
                         &sums->prefixes[i], live ? "up" : "down", live,
                         sums->resubscribed[i]);

        first = 0;
    }

    p = ngx_slprintf(p, last, "]}\n");

    return p;
}
