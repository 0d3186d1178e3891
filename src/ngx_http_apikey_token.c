
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_token.h"


ngx_http_apikey_status_e
ngx_http_apikey_token(ngx_http_request_t *r, ngx_str_t *token)
{
    size_t                     start;
    ngx_str_t                 *value;
    ngx_http_apikey_status_e   rc;

    /*
     * RFC 6750 section 2.3 tokens in the query string end up in access
     * logs and Referer headers; they are refused rather than ignored, so
     * that a client learns at once.
     */

    if (ngx_http_apikey_token_in_args(r)) {
        return NGX_HTTP_APIKEY_MALFORMED;
    }

    if (r->headers_in.authorization == NULL) {
        return NGX_HTTP_APIKEY_MISSING;
    }

    value = &r->headers_in.authorization->value;

    rc = ngx_http_apikey_policy_bearer(value->data, value->len, &start);

    if (rc == NGX_HTTP_APIKEY_OK) {
        token->data = value->data + start;
        token->len = value->len - start;
    }

    return rc;
}


ngx_uint_t
ngx_http_apikey_token_in_args(ngx_http_request_t *r)
{
    ngx_str_t  arg;

    return r->args.len
           && ngx_http_arg(r, (u_char *) "access_token", 12, &arg) == NGX_OK;
}
