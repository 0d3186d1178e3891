
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_token.h"


static ngx_uint_t ngx_http_apikey_tchar(u_char c);


/*
 * b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
 */

static uint32_t  ngx_http_apikey_b64token[] = {
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */

                /* ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!  */
    0x03ffe800, /* 0000 0011 1111 1111  1110 1000 0000 0000 */

                /* _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@ */
    0x87fffffe, /* 1000 0111 1111 1111  1111 1111 1111 1110 */

                /*  ~}| {zyx wvut srqp  onml kjih gfed cba` */
    0x47fffffe, /* 0100 0111 1111 1111  1111 1111 1111 1110 */

    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */
};


ngx_http_apikey_status_e
ngx_http_apikey_token(ngx_http_request_t *r, ngx_str_t *token)
{
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

    return ngx_http_apikey_token_parse(&r->headers_in.authorization->value,
                                       token);
}


ngx_uint_t
ngx_http_apikey_token_in_args(ngx_http_request_t *r)
{
    ngx_str_t  arg;

    return r->args.len
           && ngx_http_arg(r, (u_char *) "access_token", 12, &arg) == NGX_OK;
}


ngx_http_apikey_status_e
ngx_http_apikey_token_parse(ngx_str_t *value, ngx_str_t *token)
{
    u_char  *p, *last;

    p = value->data;
    last = p + value->len;

    if (value->len < sizeof("Bearer") - 1
        || ngx_strncasecmp(p, (u_char *) "Bearer", sizeof("Bearer") - 1)
           != 0)
    {
        return NGX_HTTP_APIKEY_MISSING;
    }

    p += sizeof("Bearer") - 1;

    if (p == last) {
        return NGX_HTTP_APIKEY_MALFORMED;
    }

    if (*p != ' ') {
        /*
         * "Bearerxyz" is another scheme (RFC 7230 token characters);
         * "Bearer\tx" or "Bearer\x01x" is a broken Bearer
         */
        return ngx_http_apikey_tchar(*p) ? NGX_HTTP_APIKEY_MISSING
                                         : NGX_HTTP_APIKEY_MALFORMED;
    }

    while (p < last && *p == ' ') {
        p++;
    }

    token->data = p;

    while (p < last
           && (ngx_http_apikey_b64token[*p >> 5] & (1U << (*p & 0x1f))))
    {
        p++;
    }

    while (p < last && *p == '=') {
        p++;
    }

    token->len = p - token->data;

    if (token->len == 0 || p != last || *token->data == '=') {
        return NGX_HTTP_APIKEY_MALFORMED;
    }

    return NGX_HTTP_APIKEY_OK;
}


static ngx_uint_t
ngx_http_apikey_tchar(u_char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }

    return ngx_strchr("!#$%&'*+-.^_`|~", c) != NULL && c != '\0';
}
