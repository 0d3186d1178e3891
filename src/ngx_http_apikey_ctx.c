
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_ctx.h"
#include "ngx_http_apikey_lookup.h"


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


ngx_http_apikey_ctx_t *
ngx_http_apikey_ctx_create(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_apikey_ctx_t  *ctx;

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

    ctx->request = r;

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
