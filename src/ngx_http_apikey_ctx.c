
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_ctx.h"
#include "ngx_http_apikey_lookup.h"


static ngx_uint_t ngx_http_apikey_ctx_same_strings(ngx_array_t *a,
    ngx_array_t *b);
static void ngx_http_apikey_ctx_cleanup(void *data);


/*
 * The context survives internal redirects (error_page, try_files) through
 * its pool cleanup, as the realip module does: the key is looked up once
 * per request, and $apikey_* stay set for the access log.
 */

ngx_http_apikey_ctx_t *
ngx_http_apikey_ctx_get(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_apikey_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_module);

    if (ctx == NULL && (r->internal || r->filter_finalize)) {

        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_apikey_ctx_cleanup) {
                ctx = cln->data;
                break;
            }
        }
    }

    return ctx;
}


/*
 * After an internal redirect, the record found for the first location
 * answers for the new one only if both read it the same way: from the same
 * Redis server and prefix, through the same hasher and key format rules,
 * taking the token from the same places (apikey_key_from).
 */

ngx_uint_t
ngx_http_apikey_ctx_reusable(ngx_http_apikey_ctx_t *ctx,
    ngx_http_apikey_loc_conf_t *alcf)
{
    ngx_http_apikey_loc_conf_t  *prev;

    prev = ctx->conf;

    if (prev == alcf) {
        return 1;
    }

    return prev->source == alcf->source
           && prev->hasher == alcf->hasher
           && prev->key_from == alcf->key_from
           && prev->key_checksum == alcf->key_checksum
           && ngx_http_apikey_ctx_same_strings(prev->key_prefixes,
                                               alcf->key_prefixes);
}


static ngx_uint_t
ngx_http_apikey_ctx_same_strings(ngx_array_t *a, ngx_array_t *b)
{
    ngx_str_t   *sa, *sb;
    ngx_uint_t   i;

    if (a == b) {
        return 1;
    }

    if (a == NULL || b == NULL || a->nelts != b->nelts) {
        return 0;
    }

    sa = a->elts;
    sb = b->elts;

    for (i = 0; i < a->nelts; i++) {
        if (sa[i].len != sb[i].len
            || ngx_strncmp(sa[i].data, sb[i].data, sa[i].len) != 0)
        {
            return 0;
        }
    }

    return 1;
}


/*
 * A context for a new lookup: a fresh one, or after an internal redirect
 * the request's old one, emptied (its pool cleanup is registered already).
 */

ngx_http_apikey_ctx_t *
ngx_http_apikey_ctx_create(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *prev)
{
    ngx_str_t                    hidden;
    ngx_uint_t                   quiet, counted;
    ngx_pool_cleanup_t          *cln;
    ngx_http_apikey_ctx_t       *ctx, rate;
    ngx_http_apikey_key_from_t  *hidden_from;

    if (prev) {
        ngx_http_apikey_lookup_cancel(prev);

        if (r->headers_in.authorization == NULL) {
            r->headers_in.authorization = prev->authorization;
        }

        quiet = prev->quiet;
        counted = prev->counted;
        rate = *prev;
        hidden_from = prev->hidden_from;
        hidden = prev->hidden;

        ctx = prev;
        ngx_memzero(ctx, sizeof(ngx_http_apikey_ctx_t));

        ctx->quiet = quiet;
        ctx->counted = counted;
        ctx->hidden_from = hidden_from;
        ctx->hidden = hidden;

        /* the request was counted against a rate: once, as limit_req */

        ctx->rate_checked = rate.rate_checked;
        ctx->rate_quota = rate.rate_quota;
        ctx->rate_window = rate.rate_window;
        ctx->rate_remaining = rate.rate_remaining;
        ctx->rate_reset = rate.rate_reset;

        goto done;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_apikey_ctx_cleanup;
    cln->data = ctx;

done:

    ctx->request = r;
    ctx->conf = alcf;
    ctx->authorization = r->headers_in.authorization;

    ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);

    return ctx;
}


/* the lookup is complete: the phase engine takes the request on */

void
ngx_http_apikey_ctx_wake(ngx_http_apikey_ctx_t *ctx)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->write_event_handler(r);

    ngx_http_run_posted_requests(c);
}


/* the request is gone: its lookup, if any, must not call back */

static void
ngx_http_apikey_ctx_cleanup(void *data)
{
    ngx_http_apikey_ctx_t  *ctx = data;

    ngx_http_apikey_lookup_cancel(ctx);
}
