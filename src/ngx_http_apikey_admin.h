
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The admin API: a location that lists, creates, changes, revokes and
 * rotates keys over HTTP, writing the records and indexes of
 * docs/redis-schema.md through the module's own Redis client.  The HTTP
 * side (routes, who asks, bodies, answers) is ngx_http_apikey_admin.c;
 * the Redis round trips of each action are ngx_http_apikey_admin_store.c.
 */


#ifndef _NGX_HTTP_APIKEY_ADMIN_H_INCLUDED_
#define _NGX_HTTP_APIKEY_ADMIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"
#include "ngx_http_apikey_admin_body.h"
#include "ngx_http_apikey_object.h"


typedef enum {
    NGX_HTTP_APIKEY_ADMIN_LIST = 0,
    NGX_HTTP_APIKEY_ADMIN_NEW,
    NGX_HTTP_APIKEY_ADMIN_SHOW,
    NGX_HTTP_APIKEY_ADMIN_CHANGE,
    NGX_HTTP_APIKEY_ADMIN_REVOKE,
    NGX_HTTP_APIKEY_ADMIN_RENEW,
    NGX_HTTP_APIKEY_ADMIN_SCOPES
} ngx_http_apikey_admin_action_e;


typedef struct {
    ngx_flag_t                         enable;
    ngx_http_complex_value_t          *org;
    ngx_array_t                       *scopes;    /* of complex values */
    ngx_str_t                          prefix;
    ngx_str_t                          keys_with;
    ngx_http_complex_value_t          *actor;
} ngx_http_apikey_admin_loc_conf_t;


typedef struct ngx_http_apikey_admin_ctx_s  ngx_http_apikey_admin_ctx_t;

/* what a reply leads to: NGX_AGAIN (another query), or a status */
typedef ngx_int_t (*ngx_http_apikey_admin_step_pt)(
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);


/* a growing buffer from the request's pool */
typedef struct {
    ngx_pool_t                        *pool;
    u_char                            *data;
    size_t                             len;
    size_t                             size;
    unsigned                           failed:1;
} ngx_http_apikey_admin_buf_t;


struct ngx_http_apikey_admin_ctx_s {
    ngx_http_request_t                *request;
    ngx_http_apikey_loc_conf_t        *alcf;
    ngx_http_apikey_admin_loc_conf_t  *conf;
    ngx_http_apikey_admin_action_e     action;

    ngx_str_t                          id;
    ngx_str_t                         *allow;     /* a 405's */

    /* who asks, and what they may touch */
    ngx_str_t                          actor;
    ngx_str_t                          org;       /* data NULL: any */
    ngx_str_t                          cap;       /* the location's */
    ngx_str_t                          key_cap;   /* the asking key's */
    unsigned                           confined:1;
    unsigned                           capped:1;
    unsigned                           by_key:1;

    /* a list: its index, filter and page */
    ngx_str_t                          index;
    ngx_str_t                          list_org;
    ngx_str_t                          state;
    ngx_uint_t                         offset;
    ngx_array_t                       *page;     /* of ngx_str_t, ids */
    ngx_uint_t                         listed;

    ngx_http_apikey_admin_edit_t       edit;
    ngx_http_apikey_object_t           obj;
    ngx_http_apikey_object_t           made;
    u_char                             key[NGX_HTTP_APIKEY_KEY_MAX_LEN + 1];
    ngx_uint_t                         tries;

    ngx_http_apikey_admin_buf_t        cmd;
    ngx_uint_t                         ncmds;
    ngx_http_apikey_admin_buf_t        out;

    ngx_http_apikey_redis_query_t      query;
    ngx_http_apikey_admin_step_pt      step;
};


/* the Redis round trips of the action: NGX_AGAIN, or a status to answer */
ngx_int_t ngx_http_apikey_admin_start(ngx_http_apikey_admin_ctx_t *ctx);

/* the answer: its body in ctx->out; returns what a handler returns */
ngx_int_t ngx_http_apikey_admin_answer(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_int_t status);

/* the key object as the body; returns NGX_HTTP_OK */
ngx_int_t ngx_http_apikey_admin_object(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_object_t *obj, const char *key);

/* an error body of the status; returns the status */
ngx_int_t ngx_http_apikey_admin_fail(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_uint_t status, const char *description, ngx_str_t *arg);

void ngx_http_apikey_admin_audit(ngx_http_apikey_admin_ctx_t *ctx,
    const char *action, ngx_http_apikey_object_t *obj);

/* appends to an ngx_http_apikey_admin_buf_t: the JSON writer's output */
void ngx_http_apikey_admin_out(void *data, const char *p, size_t len);

/* a malloc()ed copy, as the key object's strings are */
char *ngx_http_apikey_admin_strndup(u_char *s, size_t len);


extern ngx_module_t  ngx_http_apikey_admin_module;


#endif /* _NGX_HTTP_APIKEY_ADMIN_H_INCLUDED_ */
