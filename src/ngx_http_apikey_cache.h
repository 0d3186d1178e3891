
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A cache of key records in shared memory: the zone, its entries, and
 * what the invalidation subscriptions (ngx_http_apikey_tracking.c) tell
 * it: an entry is dropped as soon as its record is written, and a source
 * is bypassed while no live subscription vouches for it.  With
 * apikey_cache_stale, entries are kept past the subscription, to answer
 * for a Redis that cannot.
 */


#ifndef _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_
#define _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


/* sources one cache zone can track */
#define NGX_HTTP_APIKEY_CACHE_SOURCES  16

/* workers that subscribe; any further ones rely on these */
#define NGX_HTTP_APIKEY_CACHE_WORKERS  32

/* what a subscription tells the zone */
#define NGX_HTTP_APIKEY_CACHE_LIVE     1
#define NGX_HTTP_APIKEY_CACHE_HEARD    2
#define NGX_HTTP_APIKEY_CACHE_DOWN     3


typedef struct {
    ngx_uint_t                       entries;
    ngx_uint_t                       evictions;      /* to make room */
    ngx_uint_t                       invalidations;  /* records written */
} ngx_http_apikey_cache_stats_t;


ngx_shm_zone_t *ngx_http_apikey_cache_add(ngx_conf_t *cf, ngx_str_t *name,
    size_t size);
void ngx_http_apikey_cache_sources(ngx_shm_zone_t *shm_zone,
    ngx_array_t *sources, ngx_array_t *fields);
void ngx_http_apikey_cache_keep(ngx_shm_zone_t *shm_zone);
ngx_int_t ngx_http_apikey_cache_init_process(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *amcf);

ngx_int_t ngx_http_apikey_cache_get(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest, ngx_pool_t *pool,
    ngx_http_apikey_record_t *record, ngx_uint_t *seq);
ngx_int_t ngx_http_apikey_cache_get_stale(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest, ngx_pool_t *pool,
    ngx_http_apikey_record_t *record, ngx_msec_t stale);
void ngx_http_apikey_cache_answered(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest);
void ngx_http_apikey_cache_invalidate(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *key, size_t len);
void ngx_http_apikey_cache_flush(ngx_shm_zone_t *shm_zone, ngx_int_t source);
void ngx_http_apikey_cache_vouch(ngx_shm_zone_t *shm_zone, ngx_uint_t source,
    ngx_uint_t state);

void ngx_http_apikey_cache_stats(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_cache_stats_t *stats);
ngx_uint_t ngx_http_apikey_cache_live(ngx_shm_zone_t *shm_zone,
    ngx_uint_t source);

void ngx_http_apikey_cache_put(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest,
    ngx_http_apikey_record_t *record, ngx_uint_t seq, ngx_msec_t ttl,
    uint64_t read);
uint64_t ngx_http_apikey_cache_now(void);


#endif /* _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_ */
