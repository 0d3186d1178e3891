
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Counters for operators: every worker counts in its own slot of a small
 * shared zone, without a lock; apikey_metrics sums the slots and answers
 * in Prometheus text format or JSON.
 */


#ifndef _NGX_HTTP_APIKEY_METRICS_H_INCLUDED_
#define _NGX_HTTP_APIKEY_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


/* what the cache made of a lookup (metrics, $apikey_cache_status) */
#define NGX_HTTP_APIKEY_METRICS_NONE     0
#define NGX_HTTP_APIKEY_METRICS_HIT      1
#define NGX_HTTP_APIKEY_METRICS_MISS     2
#define NGX_HTTP_APIKEY_METRICS_BYPASS   3
#define NGX_HTTP_APIKEY_METRICS_STALE    4   /* $apikey_cache_status only */

/* how a Redis lookup ended */
#define NGX_HTTP_APIKEY_METRICS_OK       0
#define NGX_HTTP_APIKEY_METRICS_ERROR    1
#define NGX_HTTP_APIKEY_METRICS_TIMEOUT  2


ngx_int_t ngx_http_apikey_metrics_add(ngx_conf_t *cf,
    ngx_http_apikey_main_conf_t *amcf);
ngx_int_t ngx_http_apikey_metrics_init_process(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *amcf);
char *ngx_http_apikey_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


void ngx_http_apikey_metrics_request(ngx_http_apikey_status_e status);
void ngx_http_apikey_metrics_cache(ngx_uint_t result);
uint64_t ngx_http_apikey_metrics_clock(void);
void ngx_http_apikey_metrics_redis(ngx_http_apikey_redis_server_t *server,
    ngx_uint_t result, uint64_t start);
void ngx_http_apikey_metrics_resubscribed(ngx_http_apikey_source_t *source);


#endif /* _NGX_HTTP_APIKEY_METRICS_H_INCLUDED_ */
