
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_headers.h"
#include "ngx_http_apikey_token.h"


typedef struct {
    ngx_str_t   name;
    ngx_str_t   lowcase;
    ngx_uint_t  hash;
    size_t      offset;
} ngx_http_apikey_header_t;


static ngx_int_t ngx_http_apikey_headers_hide(ngx_http_request_t *r,
    ngx_http_apikey_key_from_t *from);
static ngx_int_t ngx_http_apikey_headers_remove(ngx_http_request_t *r,
    ngx_uint_t what, ngx_http_apikey_key_from_t *from);
static ngx_uint_t ngx_http_apikey_headers_hidden(ngx_http_request_t *r,
    ngx_table_elt_t *h, ngx_uint_t what, ngx_http_apikey_key_from_t *from);
static ngx_int_t ngx_http_apikey_headers_add(ngx_http_request_t *r,
    ngx_http_apikey_header_t *header, ngx_str_t *value);


#define NGX_HTTP_APIKEY_HIDE_IDENTITY     1
#define NGX_HTTP_APIKEY_HIDE_CREDENTIALS  2
#define NGX_HTTP_APIKEY_HIDE_KEY_HEADER   4


#define ngx_http_apikey_header(name, lowcase, field)                         \
    { ngx_string(name), ngx_string(lowcase), 0,                              \
      offsetof(ngx_http_apikey_record_t, field) }

static ngx_http_apikey_header_t  ngx_http_apikey_identity[] = {
    ngx_http_apikey_header("X-ApiKey-Id", "x-apikey-id", id),
    ngx_http_apikey_header("X-ApiKey-Name", "x-apikey-name", name),
    ngx_http_apikey_header("X-ApiKey-Org", "x-apikey-org", org),
    ngx_http_apikey_header("X-ApiKey-Scopes", "x-apikey-scopes", scopes),
    { ngx_null_string, ngx_null_string, 0, 0 }
};


/*
 * Runs first on every protected request, whatever comes of it: under
 * "satisfy any" another module may let the request through.
 */

ngx_int_t
ngx_http_apikey_headers_clean(ngx_http_request_t *r)
{
    return ngx_http_apikey_headers_remove(r, NGX_HTTP_APIKEY_HIDE_IDENTITY,
                                          NULL);
}


ngx_int_t
ngx_http_apikey_headers_identity(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_key_from_t *from,
    ngx_http_apikey_record_t *record)
{
    ngx_str_t                 *value;
    ngx_http_apikey_header_t  *h;

    if (alcf->hide_credentials && from
        && ngx_http_apikey_headers_hide(r, from) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!alcf->upstream_headers) {
        return NGX_OK;
    }

    for (h = ngx_http_apikey_identity; h->name.len; h++) {
        value = (ngx_str_t *) ((u_char *) record + h->offset);

        if (value->len == 0) {
            continue;
        }

        if (ngx_http_apikey_headers_add(r, h, value) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* apikey_hide_credentials: the token goes wherever it came from */

static ngx_int_t
ngx_http_apikey_headers_hide(ngx_http_request_t *r,
    ngx_http_apikey_key_from_t *from)
{
    switch (from->type) {

    case NGX_HTTP_APIKEY_FROM_BEARER:

        if (r->headers_in.authorization == NULL) {
            return NGX_OK;
        }

        return ngx_http_apikey_headers_remove(r,
                                              NGX_HTTP_APIKEY_HIDE_CREDENTIALS,
                                              NULL);

    case NGX_HTTP_APIKEY_FROM_HEADER:
        return ngx_http_apikey_headers_remove(r,
                                              NGX_HTTP_APIKEY_HIDE_KEY_HEADER,
                                              from);

    default: /* NGX_HTTP_APIKEY_FROM_QUERY */
        return ngx_http_apikey_token_hide_arg(r, from);
    }
}


/*
 * Upstream modules copy the whole header list, so a header is hidden by
 * taking it out of the list: the X-ApiKey-* headers a client sent,
 * Authorization, or the header apikey_key_from names.  The list is copied
 * rather than cut, because r->headers_in keeps pointers to its elements:
 * they stay valid.
 */

static ngx_int_t
ngx_http_apikey_headers_remove(ngx_http_request_t *r, ngx_uint_t what,
    ngx_http_apikey_key_from_t *from)
{
    ngx_uint_t        i, n;
    ngx_list_t        headers;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *copy;

    n = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_apikey_headers_hidden(r, &h[i], what, from)) {
            n++;
        }
    }

    if (n == 0) {
        return NGX_OK;
    }

    /* the list head holds its first part: a copy must not move */

    headers = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool, 20,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_apikey_headers_hidden(r, &h[i], what, from)) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "apikey: hiding request header \"%V\"",
                           &h[i].key);
            continue;
        }

        copy = ngx_list_push(&r->headers_in.headers);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        *copy = h[i];

        if (&h[i] == r->headers_in.authorization) {
            r->headers_in.authorization = copy;
        }
    }

    if (what & NGX_HTTP_APIKEY_HIDE_CREDENTIALS) {
        r->headers_in.authorization = NULL;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_apikey_headers_hidden(ngx_http_request_t *r, ngx_table_elt_t *h,
    ngx_uint_t what, ngx_http_apikey_key_from_t *from)
{
    if ((what & NGX_HTTP_APIKEY_HIDE_KEY_HEADER)
        && h->key.len == from->lowcase.len
        && ngx_strncasecmp(h->key.data, from->lowcase.data, from->lowcase.len)
           == 0)
    {
        return 1;
    }

    if ((what & NGX_HTTP_APIKEY_HIDE_IDENTITY)
        && ngx_http_apikey_headers_identity_name(&h->key))
    {
        return 1;
    }

    return (what & NGX_HTTP_APIKEY_HIDE_CREDENTIALS)
           && h == r->headers_in.authorization;
}


/*
 * X-ApiKey-*, with "_" taken for "-": under underscores_in_headers or
 * ignore_invalid_headers off nginx keeps X_ApiKey_Org, and FastCGI, uwsgi,
 * SCGI and most WSGI and Rack servers read it as X-ApiKey-Org.
 */

ngx_uint_t
ngx_http_apikey_headers_identity_name(ngx_str_t *name)
{
    u_char       c;
    ngx_uint_t   i;
    static char  prefix[] = "x-apikey-";

    if (name->len <= sizeof(prefix) - 1) {
        return 0;
    }

    for (i = 0; i < sizeof(prefix) - 1; i++) {
        c = ngx_tolower(name->data[i]);

        if (c == '_') {
            c = '-';
        }

        if (c != (u_char) prefix[i]) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_apikey_headers_add(ngx_http_request_t *r,
    ngx_http_apikey_header_t *header, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    if (header->hash == 0) {
        header->hash = ngx_hash_key(header->lowcase.data,
                                    header->lowcase.len);
    }

    h->hash = header->hash;
    h->key = header->name;
    h->value = *value;
    h->lowcase_key = header->lowcase.data;

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}
