
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A content handler, as the DAV module is one: the route and the method
 * first, then who asks and what they may touch, then the body, then the
 * action's Redis round trips (ngx_http_apikey_admin_store.c).  Every
 * answer is JSON and none is cached; a key is shown in the 201 that made
 * it only, and never logged.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"
#include "ngx_http_apikey_ctx.h"
#include "ngx_http_apikey_admin.h"


typedef struct {
    ngx_uint_t                         status;
    ngx_str_t                          code;
} ngx_http_apikey_admin_error_t;


typedef struct {
    ngx_str_t                          path;
    ngx_uint_t                         methods;
    ngx_str_t                          allow;
} ngx_http_apikey_admin_route_t;


static ngx_int_t ngx_http_apikey_admin_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_admin_route(ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_who(ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_cap(ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_media(ngx_http_request_t *r);
static void ngx_http_apikey_admin_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_admin_edit(ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_scopes_answer(
    ngx_http_apikey_admin_ctx_t *ctx);
static void ngx_http_apikey_admin_cleanup(void *data);

static void *ngx_http_apikey_admin_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_admin_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_apikey_admin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_admin_scopes(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_admin_check_prefix(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_apikey_admin_check_scope(ngx_conf_t *cf, void *post,
    void *data);


static ngx_conf_post_handler_pt  ngx_http_apikey_admin_prefix_p =
    ngx_http_apikey_admin_check_prefix;

static ngx_conf_post_handler_pt  ngx_http_apikey_admin_scope_p =
    ngx_http_apikey_admin_check_scope;


static ngx_command_t  ngx_http_apikey_admin_commands[] = {

    { ngx_string("apikey_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_apikey_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, enable),
      NULL },

    { ngx_string("apikey_admin_org"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, org),
      NULL },

    { ngx_string("apikey_admin_scopes"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_admin_scopes,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_admin_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, prefix),
      &ngx_http_apikey_admin_prefix_p },

    { ngx_string("apikey_admin_keys_with"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, keys_with),
      &ngx_http_apikey_admin_scope_p },

    { ngx_string("apikey_admin_actor"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_admin_loc_conf_t, actor),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_apikey_admin_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_apikey_admin_create_loc_conf, /* create location configuration */
    ngx_http_apikey_admin_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_apikey_admin_module = {
    NGX_MODULE_V1,
    &ngx_http_apikey_admin_module_ctx,     /* module context */
    ngx_http_apikey_admin_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* the answers' codes, by status (docs/directives.md, apikey_admin) */

static ngx_http_apikey_admin_error_t  ngx_http_apikey_admin_errors[] = {
    { NGX_HTTP_BAD_REQUEST, ngx_string("invalid_request") },
    { NGX_HTTP_FORBIDDEN, ngx_string("forbidden") },
    { NGX_HTTP_NOT_FOUND, ngx_string("not_found") },
    { NGX_HTTP_NOT_ALLOWED, ngx_string("method_not_allowed") },
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, ngx_string("request_too_large") },
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, ngx_string("unsupported_media_type") },
    { NGX_HTTP_SERVICE_UNAVAILABLE, ngx_string("temporarily_unavailable") },
    { 0, ngx_null_string }
};


/* the routes, relative to the location's URI; "*" is an id */

static ngx_http_apikey_admin_route_t  ngx_http_apikey_admin_routes[] = {
    { ngx_string(""), NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST,
      ngx_string("GET, HEAD, POST") },
    { ngx_string("scopes"), NGX_HTTP_GET|NGX_HTTP_HEAD,
      ngx_string("GET, HEAD") },
    { ngx_string("*"), NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_PATCH
                       |NGX_HTTP_DELETE,
      ngx_string("GET, HEAD, PATCH, DELETE") },
    { ngx_string("*/rotate"), NGX_HTTP_POST,
      ngx_string("POST") }
};


static ngx_int_t
ngx_http_apikey_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_pool_cleanup_t           *cln;
    ngx_http_apikey_admin_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_admin_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_apikey_admin_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);
    ctx->conf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_admin_module);
    ctx->cmd.pool = r->pool;
    ctx->out.pool = r->pool;

    ngx_http_set_ctx(r, ctx, ngx_http_apikey_admin_module);

    rc = ngx_http_apikey_admin_route(ctx);

    if (rc == NGX_OK) {
        rc = ngx_http_apikey_admin_who(ctx);
    }

    if (rc != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return ngx_http_apikey_admin_answer(ctx, rc);
    }

    if (r->method & (NGX_HTTP_POST|NGX_HTTP_PATCH)) {

        rc = ngx_http_apikey_admin_media(r);

        if (rc != NGX_OK) {
            if (ngx_http_discard_request_body(r) != NGX_OK) {
                r->keepalive = 0;
            }

            ngx_http_apikey_admin_fail(ctx, rc,
                                       rc == NGX_HTTP_UNSUPPORTED_MEDIA_TYPE
                                       ? "the body must be application/json"
                                       : "the body is larger than 64 KB",
                                       NULL);

            return ngx_http_apikey_admin_answer(ctx, rc);
        }

        rc = ngx_http_read_client_request_body(r, ngx_http_apikey_admin_body);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    rc = (ctx->action == NGX_HTTP_APIKEY_ADMIN_SCOPES)
         ? ngx_http_apikey_admin_scopes_answer(ctx)
         : ngx_http_apikey_admin_start(ctx);

    if (rc == NGX_AGAIN) {
        r->main->count++;
        return NGX_DONE;
    }

    return ngx_http_apikey_admin_answer(ctx, rc);
}


/*
 * The route and its method; an id is whatever an id may be, and anything
 * else is not found.
 */

static ngx_int_t
ngx_http_apikey_admin_route(ngx_http_apikey_admin_ctx_t *ctx)
{
    u_char                         *slash;
    ngx_str_t                       rest, id, tail;
    ngx_http_request_t             *r;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_apikey_admin_route_t  *route;

    r = ctx->request;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    rest = r->uri;

    if (rest.len >= clcf->name.len
        && ngx_strncmp(rest.data, clcf->name.data, clcf->name.len) == 0)
    {
        rest.data += clcf->name.len;
        rest.len -= clcf->name.len;
    }

    id = rest;
    ngx_str_null(&tail);

    slash = ngx_strlchr(rest.data, rest.data + rest.len, '/');

    if (slash) {
        id.len = slash - rest.data;
        tail.data = slash;
        tail.len = rest.data + rest.len - slash;
    }

    if (rest.len == 0) {
        route = &ngx_http_apikey_admin_routes[0];
        ctx->action = (r->method == NGX_HTTP_POST)
                      ? NGX_HTTP_APIKEY_ADMIN_NEW : NGX_HTTP_APIKEY_ADMIN_LIST;

    } else if (rest.len == 6 && ngx_strncmp(rest.data, "scopes", 6) == 0) {
        route = &ngx_http_apikey_admin_routes[1];
        ctx->action = NGX_HTTP_APIKEY_ADMIN_SCOPES;

    } else if (ngx_http_apikey_object_word_valid((char *) id.data, id.len)
               && (tail.len == 0
                   || (tail.len == 7
                       && ngx_strncmp(tail.data, "/rotate", 7) == 0)))
    {
        ctx->id = id;

        if (tail.len) {
            route = &ngx_http_apikey_admin_routes[3];
            ctx->action = NGX_HTTP_APIKEY_ADMIN_RENEW;

        } else {
            route = &ngx_http_apikey_admin_routes[2];
            ctx->action = (r->method == NGX_HTTP_PATCH)
                          ? NGX_HTTP_APIKEY_ADMIN_CHANGE
                          : (r->method == NGX_HTTP_DELETE)
                            ? NGX_HTTP_APIKEY_ADMIN_REVOKE
                            : NGX_HTTP_APIKEY_ADMIN_SHOW;
        }

    } else {
        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_NOT_FOUND,
                                          "no such resource", NULL);
    }

    if (!(r->method & route->methods)) {
        ctx->allow = &route->allow;

        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_NOT_ALLOWED,
                                          "the method is not allowed here",
                                          NULL);
    }

    return NGX_OK;
}


/*
 * Who asks: a request that an apikey location let through is a key,
 * refused unless apikey_admin_keys_with names a scope it holds; then its
 * own organisation confines it and its own scopes cap what it grants.
 */

static ngx_int_t
ngx_http_apikey_admin_who(ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_str_t                          org, scope;
    ngx_http_request_t                *r;
    ngx_http_apikey_ctx_t             *kctx;
    ngx_http_apikey_admin_loc_conf_t  *conf;

    r = ctx->request;
    conf = ctx->conf;

    kctx = ngx_http_apikey_ctx_get(r);

    if (kctx && kctx->decided && kctx->status == NGX_HTTP_APIKEY_OK) {

        if (conf->keys_with.len == 0) {
            return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_FORBIDDEN,
                                              "API key operations cannot be "
                                              "performed using an API key",
                                              NULL);
        }

        scope = conf->keys_with;

        if (!ngx_http_apikey_policy_scope_granted(kctx->record.scopes.data,
                                                  kctx->record.scopes.len,
                                                  scope.data, scope.len))
        {
            return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_FORBIDDEN,
                                              "the key does not hold the "
                                              "scope", &scope);
        }

        if (kctx->record.org.len == 0) {
            return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_FORBIDDEN,
                                              "a key without an organisation "
                                              "cannot manage keys", NULL);
        }

        ctx->by_key = 1;
        ctx->actor = kctx->record.id;
        ctx->org = kctx->record.org;
        ctx->confined = 1;
        ctx->key_cap = kctx->record.scopes;
    }

    if (conf->org) {
        if (ngx_http_complex_value(r, conf->org, &org) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* an empty value is a misconfigured session: never "all orgs" */

        if (org.len == 0
            || (ctx->confined
                && (org.len != ctx->org.len
                    || ngx_strncmp(org.data, ctx->org.data, org.len) != 0)))
        {
            return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_FORBIDDEN,
                                              "no organisation to manage",
                                              NULL);
        }

        ctx->org = org;
        ctx->confined = 1;
    }

    if (conf->actor) {
        if (ngx_http_complex_value(r, conf->actor, &ctx->actor) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (!ctx->by_key) {
        if (r->headers_in.user.len == 0) {
            (void) ngx_http_auth_basic_user(r);
        }

        ctx->actor = r->headers_in.user;
    }

    if (ctx->actor.len == 0) {
        ngx_str_set(&ctx->actor, "-");
    }

    return ngx_http_apikey_admin_cap(ctx);
}


static ngx_int_t
ngx_http_apikey_admin_cap(ngx_http_apikey_admin_ctx_t *ctx)
{
    u_char                    *p;
    size_t                     len;
    ngx_str_t                 *values;
    ngx_uint_t                 i;
    ngx_http_complex_value_t  *cv;

    if (ctx->conf->scopes == NULL) {
        return NGX_OK;
    }

    cv = ctx->conf->scopes->elts;

    values = ngx_palloc(ctx->request->pool,
                        ctx->conf->scopes->nelts * sizeof(ngx_str_t));
    if (values == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = 0;

    for (i = 0; i < ctx->conf->scopes->nelts; i++) {
        if (ngx_http_complex_value(ctx->request, &cv[i], &values[i])
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        len += values[i].len + 1;
    }

    p = ngx_pnalloc(ctx->request->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->cap.data = p;

    for (i = 0; i < ctx->conf->scopes->nelts; i++) {
        p = ngx_cpymem(p, values[i].data, values[i].len);
        *p++ = ' ';
    }

    ctx->cap.len = p - ctx->cap.data;
    ctx->capped = 1;

    return NGX_OK;
}


/* application/json, parameters such as charset allowed; 64 KB at most */

static ngx_int_t
ngx_http_apikey_admin_media(ngx_http_request_t *r)
{
    ngx_str_t  *type;

    if (r->headers_in.content_length_n > NGX_HTTP_APIKEY_ADMIN_BODY_MAX) {
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    if (r->headers_in.content_length_n <= 0 && !r->headers_in.chunked) {
        return NGX_OK;
    }

    if (r->headers_in.content_type == NULL) {
        return NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
    }

    type = &r->headers_in.content_type->value;

    if (type->len < sizeof("application/json") - 1
        || ngx_strncasecmp(type->data, (u_char *) "application/json",
                           sizeof("application/json") - 1)
           != 0
        || (type->len > sizeof("application/json") - 1
            && type->data[sizeof("application/json") - 1] != ';'
            && type->data[sizeof("application/json") - 1] != ' '))
    {
        return NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
    }

    return NGX_OK;
}


static void
ngx_http_apikey_admin_body(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_apikey_admin_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_admin_module);

    rc = ngx_http_apikey_admin_edit(ctx);

    if (rc == NGX_OK) {
        rc = ngx_http_apikey_admin_start(ctx);
    }

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_finalize_request(r, ngx_http_apikey_admin_answer(ctx, rc));
}


/* the body, read whole, to the change it asks for; then the caps */

static ngx_int_t
ngx_http_apikey_admin_edit(ngx_http_apikey_admin_ctx_t *ctx)
{
    u_char              *p;
    size_t               len, n;
    ssize_t              got;
    ngx_buf_t           *b;
    ngx_str_t            scope;
    ngx_chain_t         *cl;
    const char          *beyond;
    ngx_http_request_t  *r;

    r = ctx->request;

    len = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len > NGX_HTTP_APIKEY_ADMIN_BODY_MAX) {
        return ngx_http_apikey_admin_fail(ctx,
                                          NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          "the body is larger than 64 KB",
                                          NULL);
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 0;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        b = cl->buf;

        if (b->in_file) {
            got = ngx_read_file(b->file, p + n, b->file_last - b->file_pos,
                                b->file_pos);

            if (got != b->file_last - b->file_pos) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            n += got;
            continue;
        }

        n = ngx_cpymem(p + n, b->pos, b->last - b->pos) - p;
    }

    if (ngx_http_apikey_admin_body_parse((char *) p, n,
            ctx->action == NGX_HTTP_APIKEY_ADMIN_NEW
            ? NGX_HTTP_APIKEY_ADMIN_CREATE
            : ctx->action == NGX_HTTP_APIKEY_ADMIN_CHANGE
              ? NGX_HTTP_APIKEY_ADMIN_UPDATE
              : NGX_HTTP_APIKEY_ADMIN_ROTATE,
            ngx_time(), &ctx->edit)
        != 0)
    {
        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_BAD_REQUEST,
                                          ctx->edit.err, NULL);
    }

    if (!ctx->edit.has_scopes) {
        return NGX_OK;
    }

    beyond = NULL;

    if (ctx->capped) {
        beyond = ngx_http_apikey_admin_body_beyond(ctx->edit.scopes,
                                                   (char *) ctx->cap.data,
                                                   ctx->cap.len, &len);
    }

    if (beyond == NULL && ctx->by_key) {
        beyond = ngx_http_apikey_admin_body_beyond(ctx->edit.scopes,
                                                   (char *) ctx->key_cap.data,
                                                   ctx->key_cap.len, &len);
    }

    if (beyond) {
        scope.data = (u_char *) beyond;
        scope.len = len;

        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_FORBIDDEN,
                                          "this scope cannot be granted here",
                                          &scope);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_admin_scopes_answer(ngx_http_apikey_admin_ctx_t *ctx)
{
    u_char     *scopes;
    ngx_str_t  *cap;

    ctx->out.len = 0;
    ngx_http_apikey_admin_out(&ctx->out, "{\"scopes\":",
                              sizeof("{\"scopes\":") - 1);

    if (!ctx->capped && !ctx->by_key) {
        ngx_http_apikey_admin_out(&ctx->out, "null}", 5);
        return NGX_HTTP_OK;
    }

    /* the one writer of scope arrays is the key object's */

    cap = ctx->capped ? &ctx->cap : &ctx->key_cap;

    scopes = ngx_pnalloc(ctx->request->pool, cap->len + 1);
    if (scopes == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *ngx_cpymem(scopes, cap->data, cap->len) = '\0';

    ngx_http_apikey_object_scopes_json((char *) scopes,
                                       ngx_http_apikey_admin_out, &ctx->out);

    ngx_http_apikey_admin_out(&ctx->out, "}", 1);

    return ctx->out.failed ? NGX_HTTP_INTERNAL_SERVER_ERROR : NGX_HTTP_OK;
}


ngx_int_t
ngx_http_apikey_admin_object(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_object_t *obj, const char *key)
{
    ctx->out.len = 0;

    ngx_http_apikey_object_json(obj, key, ngx_time(),
                                ngx_http_apikey_admin_out, &ctx->out);

    return ctx->out.failed ? NGX_HTTP_INTERNAL_SERVER_ERROR : NGX_HTTP_OK;
}


/* {"error": CODE, "error_description": "..."}; returns the status */

ngx_int_t
ngx_http_apikey_admin_fail(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_uint_t status, const char *description, ngx_str_t *arg)
{
    ngx_http_apikey_admin_error_t  *e;

    for (e = ngx_http_apikey_admin_errors; e->status; e++) {
        if (e->status == status) {
            break;
        }
    }

    if (e->status == 0) {
        return status;
    }

    ctx->out.len = 0;

    ngx_http_apikey_admin_out(&ctx->out, "{\"error\":\"", 10);
    ngx_http_apikey_admin_out(&ctx->out, (char *) e->code.data, e->code.len);
    ngx_http_apikey_admin_out(&ctx->out, "\",\"error_description\":",
                              sizeof("\",\"error_description\":") - 1);

    if (arg == NULL) {
        ngx_http_apikey_json_string(description, ngx_strlen(description),
                                    ngx_http_apikey_admin_out, &ctx->out);

    } else {
        /* "... : <arg>", one JSON string */
        ngx_http_apikey_admin_buf_t  b;

        ngx_memzero(&b, sizeof(ngx_http_apikey_admin_buf_t));
        b.pool = ctx->request->pool;

        ngx_http_apikey_admin_out(&b, description, ngx_strlen(description));
        ngx_http_apikey_admin_out(&b, ": ", 2);
        ngx_http_apikey_admin_out(&b, (char *) arg->data, arg->len);

        if (b.failed) {
            ctx->out.failed = 1;

        } else {
            ngx_http_apikey_json_string((char *) b.data, b.len,
                                        ngx_http_apikey_admin_out, &ctx->out);
        }
    }

    ngx_http_apikey_admin_out(&ctx->out, "}", 1);

    return status;
}


ngx_int_t
ngx_http_apikey_admin_answer(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_int_t status)
{
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t          out;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (status < NGX_HTTP_OK) {
        return status;
    }

    if (ctx->out.failed || ctx->out.len == 0) {
        if (status == NGX_HTTP_INTERNAL_SERVER_ERROR) {
            return status;
        }

        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = ctx->out.len;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    if (ctx->allow) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        h->value = *ctx->allow;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->out.data;
    b->last = ctx->out.data + ctx->out.len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The audit line: action, id, org and actor, nothing of the body (not
 * even which fields it held); docs/directives.md gives its format.
 */

void
ngx_http_apikey_admin_audit(ngx_http_apikey_admin_ctx_t *ctx,
    const char *action, ngx_http_apikey_object_t *obj)
{
    const char  *org;

    org = obj->org ? obj->org : "";

    if (ctx->action == NGX_HTTP_APIKEY_ADMIN_RENEW) {
        ngx_log_error(NGX_LOG_NOTICE, ctx->request->connection->log, 0,
                      "apikey admin: %s key \"%s\" org \"%s\" actor \"%V\" "
                      "new key \"%s\"", action, obj->id, org, &ctx->actor,
                      ctx->made.id);
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ctx->request->connection->log, 0,
                  "apikey admin: %s key \"%s\" org \"%s\" actor \"%V\"",
                  action, obj->id, org, &ctx->actor);
}


/* the JSON writer's output, and the commands' buffer */

void
ngx_http_apikey_admin_out(void *data, const char *p, size_t len)
{
    u_char                       *n;
    size_t                        size;
    ngx_http_apikey_admin_buf_t  *b;

    b = data;

    if (b->failed) {
        return;
    }

    if (b->len + len > b->size) {
        size = ngx_max(2 * b->size, ngx_max(b->len + len, 512));

        n = ngx_pnalloc(b->pool, size);
        if (n == NULL) {
            b->failed = 1;
            return;
        }

        if (b->len) {
            ngx_memcpy(n, b->data, b->len);
        }

        b->data = n;
        b->size = size;
    }

    ngx_memcpy(b->data + b->len, p, len);
    b->len += len;
}


/* the key object's strings are malloc()ed: the shared code frees them */

char *
ngx_http_apikey_admin_strndup(u_char *s, size_t len)
{
    char  *p;

    p = malloc(len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len);
    p[len] = '\0';

    return p;
}


static void
ngx_http_apikey_admin_cleanup(void *data)
{
    ngx_http_apikey_admin_ctx_t  *ctx = data;

    if (ctx->query.cmd || ctx->query.timer.timer_set) {
        ngx_http_apikey_redis_cancel(&ctx->query);
    }

    ngx_http_apikey_admin_body_free(&ctx->edit);
    ngx_http_apikey_object_free(&ctx->obj);
    ngx_http_apikey_object_free(&ctx->made);

    ngx_explicit_memzero(ctx->key, sizeof(ctx->key));
}


static void *
ngx_http_apikey_admin_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_admin_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_admin_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->prefix = { 0, NULL };
     *     conf->keys_with = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->org = NGX_CONF_UNSET_PTR;
    conf->scopes = NGX_CONF_UNSET_PTR;
    conf->actor = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_apikey_admin_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_apikey_admin_loc_conf_t *prev = parent;
    ngx_http_apikey_admin_loc_conf_t *conf = child;

    ngx_http_apikey_loc_conf_t  *alcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_ptr_value(conf->org, prev->org, NULL);
    ngx_conf_merge_ptr_value(conf->scopes, prev->scopes, NULL);
    ngx_conf_merge_ptr_value(conf->actor, prev->actor, NULL);
    ngx_conf_merge_str_value(conf->prefix, prev->prefix,
                             NGX_HTTP_APIKEY_KEY_DEFAULT_PREFIX);
    ngx_conf_merge_str_value(conf->keys_with, prev->keys_with, "");

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    /* the apikey module's locations merged first: it comes first */

    alcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_apikey_module);

    if (alcf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_admin\" requires \"apikey_redis\" or "
                           "\"apikey_redis_upstream\" in its location or "
                           "above");
        return NGX_CONF_ERROR;
    }

    /*
     * its writes span the record and its indexes in one transaction, which
     * a cluster refuses (CROSSSLOT): refused here, not at the first write
     */

    if (alcf->redis->nseeds) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_admin\" cannot write to the Redis "
                           "Cluster of \"%V\" yet: use the \"apikey\" "
                           "tool with --cluster", &alcf->redis->url);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_admin_loc_conf_t *aacf = conf;

    char                      *rv;
    ngx_http_core_loc_conf_t  *clcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (aacf->enable) {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        clcf->handler = ngx_http_apikey_admin_handler;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_admin_scopes(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_admin_loc_conf_t *aacf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    if (aacf->scopes != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    aacf->scopes = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                    sizeof(ngx_http_complex_value_t));
    if (aacf->scopes == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_http_script_variables_count(&value[i]) == 0
            && !ngx_http_apikey_object_word_valid((char *) value[i].data,
                                                  value[i].len))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid scope \"%V\": 1 to 255 printable "
                               "characters without spaces", &value[i]);
            return NGX_CONF_ERROR;
        }

        cv = ngx_array_push(aacf->scopes);
        if (cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[i];
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_admin_check_prefix(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *prefix = data;

    if (!ngx_http_apikey_key_prefix_valid(prefix->data, prefix->len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key prefix \"%V\": 1 to %d letters, "
                           "digits or underscores ending in \"_\"",
                           prefix, NGX_HTTP_APIKEY_KEY_PREFIX_MAX);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_admin_check_scope(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *scope = data;

    if (!ngx_http_apikey_object_word_valid((char *) scope->data, scope->len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid scope \"%V\": 1 to 255 printable "
                           "characters without spaces", scope);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
