
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_token.h"


typedef struct {
    ngx_uint_t                   found;     /* tokens seen so far */
    ngx_http_apikey_status_e     status;    /* of the last one */
    ngx_str_t                    token;
    ngx_http_apikey_key_from_t  *from;
} ngx_http_apikey_token_seen_t;


static void ngx_http_apikey_token_bearer(ngx_http_request_t *r,
    ngx_http_apikey_key_from_t *from, ngx_http_apikey_token_seen_t *seen);
static void ngx_http_apikey_token_header(ngx_http_request_t *r,
    ngx_http_apikey_key_from_t *from, ngx_http_apikey_token_seen_t *seen);
static ngx_int_t ngx_http_apikey_token_query(ngx_http_request_t *r,
    ngx_http_apikey_key_from_t *from, ngx_http_apikey_token_seen_t *seen);
static u_char *ngx_http_apikey_token_next_arg(u_char *p, u_char *last,
    ngx_str_t *arg);
static ngx_uint_t ngx_http_apikey_token_named(ngx_str_t *arg,
    ngx_str_t *name, ngx_str_t *value);
static ngx_uint_t ngx_http_apikey_token_same_source(
    ngx_http_apikey_key_from_t *a, ngx_http_apikey_key_from_t *b);
static void ngx_http_apikey_token_seen(ngx_http_apikey_token_seen_t *seen,
    ngx_http_apikey_key_from_t *from, ngx_http_apikey_status_e status,
    u_char *data, size_t len);


/* apikey_key_from's default */
static ngx_http_apikey_key_from_t  ngx_http_apikey_token_bearer_only = {
    NGX_HTTP_APIKEY_FROM_BEARER, ngx_null_string, ngx_null_string, 0
};

static ngx_str_t  ngx_http_apikey_token_access_token =
    ngx_string("access_token");


ngx_http_apikey_status_e
ngx_http_apikey_token(ngx_http_request_t *r, ngx_array_t *key_from,
    ngx_http_apikey_key_from_t *hidden_from, ngx_str_t *hidden,
    ngx_str_t *token, ngx_http_apikey_key_from_t **from, ngx_uint_t *in_uri)
{
    ngx_str_t                      value;
    ngx_uint_t                     i, n, found, access_token;
    ngx_http_apikey_key_from_t    *source;
    ngx_http_apikey_token_seen_t   seen;

    if (key_from) {
        source = key_from->elts;
        n = key_from->nelts;

    } else {
        source = &ngx_http_apikey_token_bearer_only;
        n = 1;
    }

    ngx_memzero(&seen, sizeof(ngx_http_apikey_token_seen_t));
    seen.status = NGX_HTTP_APIKEY_MISSING;

    *in_uri = 0;
    access_token = 0;

    for (i = 0; i < n; i++) {

        if (hidden_from
            && ngx_http_apikey_token_same_source(hidden_from, &source[i]))
        {
            ngx_http_apikey_token_seen(&seen, &source[i],
                                       NGX_HTTP_APIKEY_OK, hidden->data,
                                       hidden->len);
        }

        switch (source[i].type) {

        case NGX_HTTP_APIKEY_FROM_BEARER:
            ngx_http_apikey_token_bearer(r, &source[i], &seen);
            break;

        case NGX_HTTP_APIKEY_FROM_HEADER:
            ngx_http_apikey_token_header(r, &source[i], &seen);
            break;

        default: /* NGX_HTTP_APIKEY_FROM_QUERY */

            if (source[i].name.len == ngx_http_apikey_token_access_token.len
                && ngx_strncasecmp(source[i].name.data,
                                   ngx_http_apikey_token_access_token.data,
                                   source[i].name.len)
                   == 0)
            {
                access_token = 1;
            }

            found = seen.found;

            if (ngx_http_apikey_token_query(r, &source[i], &seen) != NGX_OK) {
                return NGX_HTTP_APIKEY_ERROR;
            }

            if (seen.found != found) {
                *in_uri = 1;
            }

            break;
        }
    }

    /*
     * RFC 6750 section 2.3 tokens in the query string end up in access
     * logs and Referer headers; unless a query source asks for them they
     * are refused rather than ignored, so that a client learns at once.
     */

    if (!access_token && r->args.len
        && ngx_http_arg(r, ngx_http_apikey_token_access_token.data,
                        ngx_http_apikey_token_access_token.len, &value)
           == NGX_OK)
    {
        *in_uri = 1;
        return NGX_HTTP_APIKEY_MALFORMED;
    }

    /* two tokens, even one and the same: which one would be the key? */

    if (seen.found > 1) {
        return NGX_HTTP_APIKEY_MALFORMED;
    }

    if (seen.status == NGX_HTTP_APIKEY_OK) {
        *token = seen.token;
        *from = seen.from;
    }

    return seen.status;
}


static void
ngx_http_apikey_token_bearer(ngx_http_request_t *r,
    ngx_http_apikey_key_from_t *from, ngx_http_apikey_token_seen_t *seen)
{
    size_t                     start;
    ngx_str_t                 *value;
    ngx_http_apikey_status_e   rc;

    if (r->headers_in.authorization == NULL) {
        return;
    }

    value = &r->headers_in.authorization->value;

    rc = ngx_http_apikey_policy_bearer(value->data, value->len, &start);

    /* another scheme (Basic for the upstream) is no token of ours */

    if (rc == NGX_HTTP_APIKEY_MISSING) {
        return;
    }

    ngx_http_apikey_token_seen(seen, from, rc, value->data + start,
                               value->len - start);
}


/* the whole value is the token: each header of that name counts */

static void
ngx_http_apikey_token_header(ngx_http_request_t *r,
    ngx_http_apikey_key_from_t *from, ngx_http_apikey_token_seen_t *seen)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

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

        if (h[i].key.len != from->lowcase.len
            || ngx_strncasecmp(h[i].key.data, from->lowcase.data,
                               from->lowcase.len)
               != 0)
        {
            continue;
        }

        ngx_http_apikey_token_seen(seen, from,
                                   ngx_http_apikey_policy_token(
                                       h[i].value.data, h[i].value.len),
                                   h[i].value.data, h[i].value.len);
    }
}


/*
 * Each argument of that name counts, even empty; its value is
 * percent-decoded ("+" stays "+": a b64token character, never a space in
 * a token).
 */

static ngx_int_t
ngx_http_apikey_token_query(ngx_http_request_t *r,
    ngx_http_apikey_key_from_t *from, ngx_http_apikey_token_seen_t *seen)
{
    u_char     *p, *last, *dst, *src;
    ngx_str_t   arg, value;

    p = r->args.data;
    last = r->args.data + r->args.len;

    while ((p = ngx_http_apikey_token_next_arg(p, last, &arg)) != NULL) {

        if (!ngx_http_apikey_token_named(&arg, &from->name, &value)) {
            continue;
        }

        if (ngx_strlchr(value.data, value.data + value.len, '%') != NULL) {

            dst = ngx_pnalloc(r->pool, value.len);
            if (dst == NULL) {
                return NGX_ERROR;
            }

            src = value.data;
            value.data = dst;

            ngx_unescape_uri(&dst, &src, value.len, 0);

            value.len = dst - value.data;
        }

        ngx_http_apikey_token_seen(seen, from,
                                   ngx_http_apikey_policy_token(value.data,
                                                                value.len),
                                   value.data, value.len);
    }

    return NGX_OK;
}


/* the next "&"-separated argument from p on; NULL after the last one */

static u_char *
ngx_http_apikey_token_next_arg(u_char *p, u_char *last, ngx_str_t *arg)
{
    u_char  *end;

    if (p == NULL || p >= last) {
        return NULL;
    }

    end = ngx_strlchr(p, last, '&');
    if (end == NULL) {
        end = last;
    }

    arg->data = p;
    arg->len = end - p;

    return (end < last) ? end + 1 : last;
}


/* an argument named name, as ngx_http_arg() matches them: any case */

static ngx_uint_t
ngx_http_apikey_token_named(ngx_str_t *arg, ngx_str_t *name,
    ngx_str_t *value)
{
    if (arg->len < name->len
        || ngx_strncasecmp(arg->data, name->data, name->len) != 0
        || (arg->len > name->len && arg->data[name->len] != '='))
    {
        return 0;
    }

    value->data = arg->data + name->len;
    value->len = arg->len - name->len;

    if (value->len) {
        value->data++;
        value->len--;
    }

    return 1;
}


static ngx_uint_t
ngx_http_apikey_token_same_source(ngx_http_apikey_key_from_t *a,
    ngx_http_apikey_key_from_t *b)
{
    return a->type == b->type
           && a->name.len == b->name.len
           && ngx_strncasecmp(a->name.data, b->name.data, a->name.len) == 0;
}


static void
ngx_http_apikey_token_seen(ngx_http_apikey_token_seen_t *seen,
    ngx_http_apikey_key_from_t *from, ngx_http_apikey_status_e status,
    u_char *data, size_t len)
{
    seen->found++;
    seen->status = status;
    seen->from = from;
    seen->token.data = data;
    seen->token.len = len;
}


/*
 * The argument goes from r->args and from the request URI an upstream is
 * sent when proxy_pass has no URI ($request_uri, which is FastCGI's
 * REQUEST_URI too); the other arguments keep their order and bytes.  The
 * request line ($request) is left as it came.
 */

ngx_int_t
ngx_http_apikey_token_hide_arg(ngx_http_request_t *r,
    ngx_http_apikey_key_from_t *from)
{
    u_char     *p, *q, *start, *last, *end, *args;
    size_t      path;
    ngx_str_t   arg, value;

    if (r->args.len == 0) {
        return NGX_OK;
    }

    args = ngx_pnalloc(r->pool, r->args.len);
    if (args == NULL) {
        return NGX_ERROR;
    }

    q = args;
    p = r->args.data;
    last = r->args.data + r->args.len;

    while ((p = ngx_http_apikey_token_next_arg(p, last, &arg)) != NULL) {

        if (ngx_http_apikey_token_named(&arg, &from->name, &value)) {
            continue;
        }

        if (q != args) {
            *q++ = '&';
        }

        q = ngx_cpymem(q, arg.data, arg.len);
    }

    if ((size_t) (q - args) == r->args.len) {
        return NGX_OK;
    }

    /* the URI as sent, up to its "?", with the arguments that are left */

    if (r->unparsed_uri.len
        && r->args.data > r->unparsed_uri.data
        && r->args.data <= r->unparsed_uri.data + r->unparsed_uri.len)
    {
        path = r->args.data - r->unparsed_uri.data - 1;

        start = ngx_pnalloc(r->pool, path + 1 + (q - args));
        if (start == NULL) {
            return NGX_ERROR;
        }

        end = ngx_cpymem(start, r->unparsed_uri.data, path);

        if (q != args) {
            *end++ = '?';
            end = ngx_cpymem(end, args, q - args);
        }

        r->unparsed_uri.data = start;
        r->unparsed_uri.len = end - start;
    }

    r->args.data = args;
    r->args.len = q - args;

    return NGX_OK;
}
