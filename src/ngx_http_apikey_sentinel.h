
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Redis Sentinel: which node is the primary of an apikey_redis_upstream
 * block with "sentinel" addresses.  Each worker asks the sentinels in turn
 * (SENTINEL get-master-addr-by-name), confirms with ROLE on the node they
 * name, and follows it: a subscription to +switch-master on one sentinel
 * moves the lookups at once; connection errors and READONLY or LOADING
 * replies make it ask again.  Nothing here blocks: lookups wait for a
 * confirmed primary under their own timers.
 */


#ifndef _NGX_HTTP_APIKEY_SENTINEL_H_INCLUDED_
#define _NGX_HTTP_APIKEY_SENTINEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_redis.h"


#define NGX_HTTP_APIKEY_SENTINEL_DEFAULT_PORT  26379


ngx_int_t ngx_http_apikey_sentinel_conf(ngx_conf_t *cf,
    ngx_http_apikey_redis_server_t *server, ngx_str_t *master,
    ngx_str_t *user, ngx_str_t *password);
ngx_int_t ngx_http_apikey_sentinel_start(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_server_t *server);
void ngx_http_apikey_sentinel_lost(ngx_http_apikey_redis_server_t *server,
    char *err);


#endif /* _NGX_HTTP_APIKEY_SENTINEL_H_INCLUDED_ */
