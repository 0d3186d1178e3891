
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_variables.h"
#include "ngx_http_apikey_ctx.h"
#include "ngx_http_apikey_answer.h"
#include "ngx_http_apikey_metrics.h"


static ngx_http_apikey_record_t *ngx_http_apikey_variable_record(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_record_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_apikey_expires_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_apikey_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_apikey_field_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_apikey_vars[] = {

    { ngx_string("apikey_id"), NULL, ngx_http_apikey_record_variable,
      offsetof(ngx_http_apikey_record_t, id), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_name"), NULL, ngx_http_apikey_record_variable,
      offsetof(ngx_http_apikey_record_t, name), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_org"), NULL, ngx_http_apikey_record_variable,
      offsetof(ngx_http_apikey_record_t, org), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_scopes"), NULL, ngx_http_apikey_record_variable,
      offsetof(ngx_http_apikey_record_t, scopes), NGX_HTTP_VAR_NOCACHEABLE,
      0 },

    { ngx_string("apikey_expires_at"), NULL, ngx_http_apikey_expires_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_status"), NULL, ngx_http_apikey_status_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_cache_status"), NULL,
      ngx_http_apikey_status_variable, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* indexed by NGX_HTTP_APIKEY_METRICS_HIT, _MISS, _BYPASS, _STALE */

static ngx_str_t  ngx_http_apikey_cache_statuses[] = {
    ngx_null_string,
    ngx_string("HIT"),
    ngx_string("MISS"),
    ngx_string("BYPASS"),
    ngx_string("STALE")
};


ngx_int_t
ngx_http_apikey_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_apikey_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * $apikey_field_<name>: one variable per name, so that a misspelt one
 * fails at "nginx -t" as an unknown variable
 */

ngx_int_t
ngx_http_apikey_add_field_variable(ngx_conf_t *cf, ngx_str_t *name,
    ngx_uint_t index)
{
    ngx_str_t             var_name;
    ngx_http_variable_t  *var;

    var_name.len = sizeof("apikey_field_") - 1 + name->len;
    var_name.data = ngx_pnalloc(cf->pool, var_name.len);
    if (var_name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(var_name.data, "apikey_field_%V", name);

    var = ngx_http_add_variable(cf, &var_name, NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_apikey_field_variable;
    var->data = index;

    return NGX_OK;
}


/* the record is known only once a lookup found the key */

static ngx_http_apikey_record_t *
ngx_http_apikey_variable_record(ngx_http_request_t *r)
{
    ngx_http_apikey_ctx_t  *ctx;

    ctx = ngx_http_apikey_ctx_get(r->main);

    if (ctx == NULL || !ctx->found) {
        return NULL;
    }

    return &ctx->record;
}


static ngx_int_t
ngx_http_apikey_record_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                 *value;
    ngx_http_apikey_record_t  *record;

    record = ngx_http_apikey_variable_record(r);

    if (record == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    value = (ngx_str_t *) ((u_char *) record + data);

    v->len = value->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = value->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_expires_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                    *p;
    ngx_http_apikey_record_t  *record;

    record = ngx_http_apikey_variable_record(r);

    if (record == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%T", record->expires_at) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


/*
 * $apikey_status, and (data 1) what the cache made of the lookup, written
 * as $upstream_cache_status writes it
 */

static ngx_int_t
ngx_http_apikey_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t              *name;
    ngx_http_apikey_ctx_t  *ctx;

    ctx = ngx_http_apikey_ctx_get(r->main);

    if (ctx == NULL || !ctx->decided) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (data == 0) {
        name = ngx_http_apikey_answer_name(ctx->status);

    } else if (ctx->cache == NGX_HTTP_APIKEY_METRICS_NONE) {
        v->not_found = 1;
        return NGX_OK;

    } else {
        name = &ngx_http_apikey_cache_statuses[ctx->cache];
    }

    v->len = name->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = name->data;

    return NGX_OK;
}


/* empty where the location does not name the field */

static ngx_int_t
ngx_http_apikey_field_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_uint_t                   i, *index;
    ngx_http_apikey_record_t    *record;
    ngx_http_apikey_loc_conf_t  *alcf;

    record = ngx_http_apikey_variable_record(r);
    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);

    if (record == NULL || data >= record->nfields
        || alcf->record_fields == NULL)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    index = alcf->record_fields->elts;

    for (i = 0; i < alcf->record_fields->nelts; i++) {
        if (index[i] == data) {
            v->len = record->fields[data].len;
            v->valid = 1;
            v->no_cacheable = 1;
            v->not_found = 0;
            v->data = record->fields[data].data;

            return NGX_OK;
        }
    }

    v->not_found = 1;

    return NGX_OK;
}
