
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A request's apikey context from its creation to its cleanup: found
 * again after an internal redirect, woken when its lookup completes.
 */


#ifndef _NGX_HTTP_APIKEY_CTX_H_INCLUDED_
#define _NGX_HTTP_APIKEY_CTX_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


typedef struct ngx_http_apikey_lookup_s  ngx_http_apikey_lookup_t;


typedef struct {
    ngx_http_request_t              *request;

    /* the location whose rules (source, hasher, key format) made the lookup */
    ngx_http_apikey_loc_conf_t      *conf;

    /*
     * the client's Authorization, for a lookup after a redirect when the
     * first location hid it from the upstream
     */
    ngx_table_elt_t                 *authorization;

    /* an in-flight lookup the request waits for, shared by all its askers */
    ngx_http_apikey_lookup_t        *lookup_in_flight;
    ngx_queue_t                      waiting;

    /* what the lookup found, then what the location makes of it */
    ngx_http_apikey_status_e         lookup;
    ngx_http_apikey_status_e         status;
    ngx_http_apikey_record_t         record;

    u_char                           digest[NGX_HTTP_APIKEY_HASH_LEN];

    /*
     * the rate limit's verdict, for the RateLimit fields and Retry-After
     * (rate_quota 0: no limit), and the wait it asks for
     */
    uint32_t                         rate_quota;
    uint32_t                         rate_window;
    uint32_t                         rate_remaining;
    uint32_t                         rate_reset;    /* seconds */
    ngx_msec_t                       rate_delay;

    /* where the token came from: what apikey_hide_credentials hides */
    ngx_http_apikey_key_from_t      *from;
    ngx_str_t                        token;

    /*
     * a token hidden from the upstream from a header of its own or the
     * query, for a lookup after a redirect, as authorization is for the
     * Authorization header
     */
    ngx_http_apikey_key_from_t      *hidden_from;
    ngx_str_t                        hidden;

    unsigned                         done:1;
    unsigned                         found:1;
    unsigned                         decided:1;

    /* in apikey_requests_total already, whatever locations decide after */
    unsigned                         counted:1;

    /* what the cache made of the lookup: $apikey_cache_status */
    unsigned                         cache:3;

    /*
     * the request line, in every log line's context, holds a token: once
     * known, for the rest of the request, whatever its URI becomes
     */
    unsigned                         quiet:1;

    /* counted against the rate once per request, as limit_req does */
    unsigned                         rate_checked:1;

    /* back from the rate limit's wait: the decision stands */
    unsigned                         rate_delayed:1;
} ngx_http_apikey_ctx_t;


ngx_http_apikey_ctx_t *ngx_http_apikey_ctx_get(ngx_http_request_t *r);
ngx_uint_t ngx_http_apikey_ctx_reusable(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_loc_conf_t *alcf);
ngx_http_apikey_ctx_t *ngx_http_apikey_ctx_create(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *prev);
void ngx_http_apikey_ctx_wake(ngx_http_apikey_ctx_t *ctx);


#endif /* _NGX_HTTP_APIKEY_CTX_H_INCLUDED_ */
