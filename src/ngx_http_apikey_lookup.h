
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * From a request's token to the key's record: format check, hash, cache,
 * and one Redis round trip shared by all requests of a worker that ask
 * for the same key at the same time; the cache once more, within
 * apikey_cache_stale, when Redis fails it.
 */


#ifndef _NGX_HTTP_APIKEY_LOOKUP_H_INCLUDED_
#define _NGX_HTTP_APIKEY_LOOKUP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"
#include "ngx_http_apikey_ctx.h"


ngx_int_t ngx_http_apikey_lookup(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx);
void ngx_http_apikey_lookup_cancel(ngx_http_apikey_ctx_t *ctx);
ngx_int_t ngx_http_apikey_lookup_init_process(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *amcf);
void ngx_http_apikey_lookup_exit_process(ngx_cycle_t *cycle);
/* the record name's hash of a new key, as a lookup of it will hash it */
ngx_int_t ngx_http_apikey_lookup_digest(ngx_http_apikey_loc_conf_t *alcf,
    u_char *token, size_t len, u_char *digest);
ngx_int_t ngx_http_apikey_lookup_command(ngx_conf_t *cf,
    ngx_http_apikey_source_t *source, ngx_array_t *extra);


#endif /* _NGX_HTTP_APIKEY_LOOKUP_H_INCLUDED_ */
