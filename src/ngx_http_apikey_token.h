
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The token of a request, from where apikey_key_from allows it: the
 * Authorization header as RFC 6750 section 2.1 defines it, a header of its
 * own, or a query argument; the syntax itself is the policy's
 * (ngx_http_apikey_policy_bearer(), ngx_http_apikey_policy_token()).
 */


#ifndef _NGX_HTTP_APIKEY_TOKEN_H_INCLUDED_
#define _NGX_HTTP_APIKEY_TOKEN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


/*
 * NGX_HTTP_APIKEY_OK with the token and the source it came in, or
 * MISSING, MALFORMED (also: sent more than once), or INVALID (a token
 * longer than NGX_HTTP_APIKEY_TOKEN_MAX).  A token that an earlier
 * location hid from the upstream (hidden_from, hidden; NULL: none) counts
 * as sent in that source.  *in_uri tells that the request line holds a
 * token, so that it stays out of the error log.
 */
ngx_http_apikey_status_e ngx_http_apikey_token(ngx_http_request_t *r,
    ngx_array_t *key_from, ngx_http_apikey_key_from_t *hidden_from,
    ngx_str_t *hidden, ngx_str_t *token, ngx_http_apikey_key_from_t **from,
    ngx_uint_t *in_uri);

/* the query argument of a source taken out of the request, others kept */
ngx_int_t ngx_http_apikey_token_hide_arg(ngx_http_request_t *r,
    ngx_http_apikey_key_from_t *from);


#endif /* _NGX_HTTP_APIKEY_TOKEN_H_INCLUDED_ */
