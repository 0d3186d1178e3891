
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The Bearer token of a request, as RFC 6750 section 2.1 defines it; the
 * syntax itself is the policy's (ngx_http_apikey_policy_bearer()).
 */


#ifndef _NGX_HTTP_APIKEY_TOKEN_H_INCLUDED_
#define _NGX_HTTP_APIKEY_TOKEN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


/*
 * NGX_HTTP_APIKEY_OK with the token, or MISSING, MALFORMED, or INVALID
 * (a token longer than NGX_HTTP_APIKEY_TOKEN_MAX).
 */
ngx_http_apikey_status_e ngx_http_apikey_token(ngx_http_request_t *r,
    ngx_str_t *token);
ngx_uint_t ngx_http_apikey_token_in_args(ngx_http_request_t *r);


#endif /* _NGX_HTTP_APIKEY_TOKEN_H_INCLUDED_ */
