
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A cache of key records in shared memory, kept right by Redis client-side
 * caching: a subscription in BCAST mode on each cached source drops an
 * entry on every worker as soon as its record is written.
 */


#ifndef _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_
#define _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


/* sources one cache zone can track */
#define NGX_HTTP_APIKEY_CACHE_SOURCES  16


ngx_shm_zone_t *ngx_http_apikey_cache_add(ngx_conf_t *cf, ngx_str_t *name,
    size_t size);
void ngx_http_apikey_cache_sources(ngx_shm_zone_t *shm_zone,
    ngx_array_t *sources);
ngx_int_t ngx_http_apikey_cache_init_process(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *amcf);

ngx_int_t ngx_http_apikey_cache_get(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest, ngx_pool_t *pool,
    ngx_http_apikey_record_t *record, ngx_uint_t *seq);
void ngx_http_apikey_cache_put(ngx_shm_zone_t *shm_zone,
    ngx_http_apikey_source_t *source, u_char *digest,
    ngx_http_apikey_record_t *record, ngx_uint_t seq, ngx_msec_t ttl);


#endif /* _NGX_HTTP_APIKEY_CACHE_H_INCLUDED_ */
