
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A key's own rate limit (apikey_rate_limit_zone, apikey_rate_limit):
 * limit_req's leaky bucket, per node, in shared memory keyed by key id,
 * and the RateLimit fields of draft-ietf-httpapi-ratelimit-headers.
 */


#ifndef _NGX_HTTP_APIKEY_RATELIMIT_H_INCLUDED_
#define _NGX_HTTP_APIKEY_RATELIMIT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"
#include "ngx_http_apikey_ctx.h"


struct ngx_http_apikey_rate_conf_s {
    ngx_shm_zone_t                  *zone;
    ngx_http_apikey_rate_t           rate;         /* default=; 0: none */
    uint32_t                         burst;
    ngx_flag_t                       nodelay;
};


char *ngx_http_apikey_ratelimit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_apikey_ratelimit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_apikey_ratelimit_merge(ngx_conf_t *cf,
    ngx_http_apikey_loc_conf_t *conf);
ngx_int_t ngx_http_apikey_ratelimit_init(ngx_conf_t *cf);

/*
 * The last check of a found key, once per request: ok (ctx->rate_delay
 * may ask for a wait), rate_limited, invalid (a malformed rate or burst)
 * or error.
 */
ngx_http_apikey_status_e ngx_http_apikey_ratelimit_check(
    ngx_http_request_t *r, ngx_http_apikey_loc_conf_t *alcf,
    ngx_http_apikey_ctx_t *ctx);

/* the wait that ctx->rate_delay asks for, on a timer: NGX_AGAIN */
ngx_int_t ngx_http_apikey_ratelimit_delay(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);


#endif /* _NGX_HTTP_APIKEY_RATELIMIT_H_INCLUDED_ */
