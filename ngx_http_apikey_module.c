
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * API keys for an API behind nginx: the Bearer token of a request is
 * hashed, its record read from Redis without blocking the worker, and the
 * request let through with the key's identity, or answered as RFC 6750
 * says.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"
#include "ngx_http_apikey_ctx.h"
#include "ngx_http_apikey_answer.h"
#include "ngx_http_apikey_lookup.h"
#include "ngx_http_apikey_cache.h"
#include "ngx_http_apikey_tracking.h"
#include "ngx_http_apikey_policy.h"
#include "ngx_http_apikey_headers.h"
#include "ngx_http_apikey_last_used.h"
#include "ngx_http_apikey_variables.h"
#include "ngx_http_apikey_metrics.h"
#include "ngx_http_apikey_ratelimit.h"
#include "ngx_http_apikey_record.h"


/* "time | off": the least time, and what is said of a wrong value */

typedef struct {
    ngx_msec_t                       min;
    char                            *error;
} ngx_http_apikey_msec_off_t;


static ngx_int_t ngx_http_apikey_preaccess_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_access_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_decide(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx);
static ngx_http_apikey_status_e ngx_http_apikey_policy(
    ngx_http_request_t *r, ngx_http_apikey_loc_conf_t *alcf,
    ngx_http_apikey_record_t *record);
static void ngx_http_apikey_client(ngx_http_request_t *r,
    ngx_http_apikey_cidr_t *client);
static ngx_int_t ngx_http_apikey_deny(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx);

static void *ngx_http_apikey_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_apikey_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_apikey_merge_source(ngx_conf_t *cf,
    ngx_http_apikey_loc_conf_t *conf);
static char *ngx_http_apikey_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_redis_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_scopes(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_key_prefix(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_msec_off_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_apikey_key_from(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_record_fields(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_apikey_check_realm(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_apikey_check_prefix(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_apikey_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_apikey_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_apikey_init_process(ngx_cycle_t *cycle);
static void ngx_http_apikey_exit_process(ngx_cycle_t *cycle);


static ngx_conf_post_handler_pt  ngx_http_apikey_realm_p =
    ngx_http_apikey_check_realm;

static ngx_conf_post_handler_pt  ngx_http_apikey_prefix_p =
    ngx_http_apikey_check_prefix;

static ngx_conf_num_bounds_t  ngx_http_apikey_keepalive_bounds = {
    ngx_conf_check_num_bounds, 0, 65535
};

static ngx_conf_num_bounds_t  ngx_http_apikey_pipeline_bounds = {
    ngx_conf_check_num_bounds, 1, 65535
};

static ngx_http_apikey_msec_off_t  ngx_http_apikey_last_used_bounds = {
    1000, "must be \"off\" or a time of at least 1s"
};

static ngx_http_apikey_msec_off_t  ngx_http_apikey_cache_stale_bounds = {
    1, "must be \"off\" or a time greater than 0"
};


static ngx_command_t  ngx_http_apikey_commands[] = {

    { ngx_string("apikey"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, enable),
      NULL },

    { ngx_string("apikey_realm"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, realm),
      &ngx_http_apikey_realm_p },

    { ngx_string("apikey_redis"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_redis,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_redis_upstream"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_apikey_redis_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, timeout),
      NULL },

    { ngx_string("apikey_redis_keepalive"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, keepalive),
      &ngx_http_apikey_keepalive_bounds },

    { ngx_string("apikey_redis_pipeline"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, pipeline),
      &ngx_http_apikey_pipeline_bounds },

    { ngx_string("apikey_redis_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, prefix),
      &ngx_http_apikey_prefix_p },

    { ngx_string("apikey_hash_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_cache_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_cache_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_cache,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_cache_stale"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_msec_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, cache_stale),
      &ngx_http_apikey_cache_stale_bounds },

    { ngx_string("apikey_key_checksum"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, key_checksum),
      NULL },

    { ngx_string("apikey_key_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_key_prefix,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_last_used_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_msec_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, last_used_interval),
      &ngx_http_apikey_last_used_bounds },

    { ngx_string("apikey_scopes"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_1MORE,
      ngx_http_apikey_scopes,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_org"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, org),
      NULL },

    { ngx_string("apikey_key_from"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_key_from,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_record_fields"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_record_fields,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_upstream_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, upstream_headers),
      NULL },

    { ngx_string("apikey_hide_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, hide_credentials),
      NULL },

    { ngx_string("apikey_rate_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_ratelimit_zone,
      0,
      0,
      NULL },

    { ngx_string("apikey_rate_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_1MORE,
      ngx_http_apikey_ratelimit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_metrics"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_apikey_metrics,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_apikey_module_ctx = {
    ngx_http_apikey_preconfiguration,      /* preconfiguration */
    ngx_http_apikey_init,                  /* postconfiguration */

    ngx_http_apikey_create_main_conf,      /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_apikey_create_loc_conf,       /* create location configuration */
    ngx_http_apikey_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_apikey_module = {
    NGX_MODULE_V1,
    &ngx_http_apikey_module_ctx,           /* module context */
    ngx_http_apikey_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_apikey_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_apikey_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/*
 * The lookup starts in the preaccess phase, ahead of limit_req and
 * limit_conn, so that $apikey_id can key their zones; the decision is made
 * in the access phase, where "satisfy" applies.
 */

static ngx_int_t
ngx_http_apikey_preaccess_handler(ngx_http_request_t *r)
{
    ngx_http_apikey_ctx_t       *ctx;
    ngx_http_apikey_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);

    if (!alcf->enable || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_module);

    if (ctx) {
        return ctx->done ? NGX_DECLINED : NGX_AGAIN;
    }

    /*
     * After an internal redirect the lookup may be done already; the
     * identity headers of the first location go, the new location sets its
     * own.
     */

    if (ngx_http_apikey_headers_clean(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_http_apikey_ctx_get(r);

    if (ctx && ngx_http_apikey_ctx_reusable(ctx, alcf)) {
        ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);
        return NGX_DECLINED;
    }

    ctx = ngx_http_apikey_ctx_create(r, alcf, ctx);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_apikey_lookup(r, alcf, ctx) == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    ctx->done = 1;

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_apikey_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_apikey_ctx_t       *ctx;
    ngx_http_apikey_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);

    if (!alcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_module);

    if (ctx == NULL) {
        rc = ngx_http_apikey_preaccess_handler(r);

        if (rc != NGX_DECLINED) {
            return rc;
        }

        ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_module);
    }

    if (!ctx->done) {
        return NGX_AGAIN;
    }

    return ngx_http_apikey_decide(r, alcf, ctx);
}


static ngx_int_t
ngx_http_apikey_decide(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx)
{
    if (ctx->rate_delayed) {
        ctx->rate_delayed = 0;
        return NGX_OK;
    }

    ctx->status = ctx->lookup;

    if (ctx->found) {
        ctx->status = ngx_http_apikey_policy(r, alcf, &ctx->record);

        /* the last check: a request refused by another does not count */

        if (ctx->status == NGX_HTTP_APIKEY_OK && alcf->rate_limit
            && !ctx->rate_checked)
        {
            ctx->status = ngx_http_apikey_ratelimit_check(r, alcf, ctx);
        }
    }

    ctx->decided = 1;

    if (!ctx->counted) {
        ctx->counted = 1;
        ngx_http_apikey_metrics_request(ctx->status);
    }

    if (ctx->status != NGX_HTTP_APIKEY_OK) {
        return ngx_http_apikey_deny(r, alcf, ctx);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "apikey: key \"%V\" allowed", &ctx->record.id);

    if (alcf->last_used_interval) {
        ngx_http_apikey_last_used(r, alcf, &ctx->record);
    }

    if (ngx_http_apikey_headers_identity(r, alcf, ctx->from, &ctx->record)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (alcf->hide_credentials && ctx->from
        && ctx->from->type != NGX_HTTP_APIKEY_FROM_BEARER)
    {
        ctx->hidden_from = ctx->from;
        ctx->hidden = ctx->token;
    }

    /* the wait the rate limit asks for, after every other step */

    if (ctx->rate_delay) {
        return ngx_http_apikey_ratelimit_delay(r, ctx);
    }

    return NGX_OK;
}


/* the location's requirements for the shared policy */

static ngx_http_apikey_status_e
ngx_http_apikey_policy(ngx_http_request_t *r, ngx_http_apikey_loc_conf_t *alcf,
    ngx_http_apikey_record_t *record)
{
    ngx_str_t                      org;
    ngx_http_apikey_cidr_t         client;
    ngx_http_apikey_status_e       status;
    ngx_http_apikey_policy_key_t   key;
    ngx_http_apikey_policy_need_t  need;

    key.org = record->org.data;
    key.org_len = record->org.len;
    key.scopes = record->scopes.data;
    key.scopes_len = record->scopes.len;
    key.expires_at = record->expires_at;
    key.revoked = record->revoked;
    key.cidrs = NULL;
    key.cidrs_len = 0;
    key.nets = (ngx_http_apikey_cidr_t *) record->nets.data;
    key.nnets = record->cidrs_invalid
                ? -1
                : (int) (record->nets.len / sizeof(ngx_http_apikey_cidr_t));

    need.org = NULL;
    need.org_len = 0;
    need.scopes = alcf->scope_list.data;
    need.scopes_len = alcf->scope_list.len;
    need.client = NULL;

    if (key.nnets > 0) {
        ngx_http_apikey_client(r, &client);
        need.client = &client;
    }

    if (alcf->org) {
        if (ngx_http_complex_value(r, alcf->org, &org) != NGX_OK) {
            return NGX_HTTP_APIKEY_ERROR;
        }

        /* an empty value is still a requirement: it matches nothing */
        need.org = org.data ? org.data : (u_char *) "";
        need.org_len = org.len;
    }

    status = ngx_http_apikey_policy_check(&key, &need, ngx_time());

    /* a record that is a key but whose allowlist cannot be read */

    if (status == NGX_HTTP_APIKEY_INVALID && record->cidrs_invalid) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "apikey: key \"%V\" has an invalid cidrs field",
                      &record->id);
    }

    return status;
}


/*
 * The client address as the realip module left it ($remote_addr); a
 * UNIX-domain client has none, and is inside no network.
 */

static void
ngx_http_apikey_client(ngx_http_request_t *r, ngx_http_apikey_cidr_t *client)
{
    struct sockaddr      *sa;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    sa = r->connection->sockaddr;

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        ngx_http_apikey_cidr_address(client, 4,
                                     (u_char *) &sin->sin_addr.s_addr);
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        ngx_http_apikey_cidr_address(client, 6, sin6->sin6_addr.s6_addr);
        break;
#endif

    default:
        ngx_http_apikey_cidr_address(client, 0, NULL);
        break;
    }
}


static ngx_int_t
ngx_http_apikey_deny(ngx_http_request_t *r, ngx_http_apikey_loc_conf_t *alcf,
    ngx_http_apikey_ctx_t *ctx)
{
    if (ctx->quiet) {
        /* the request line in the log context would carry the token */

    } else if (ctx->found) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "apikey: key \"%V\" refused: %V", &ctx->record.id,
                      ngx_http_apikey_answer_name(ctx->status));

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "apikey: request refused: %V",
                      ngx_http_apikey_answer_name(ctx->status));
    }

    return ngx_http_apikey_answer(r, alcf, ctx->status);
}


static void *
ngx_http_apikey_create_main_conf(ngx_conf_t *cf)
{
    ngx_str_t                    *secret;
    ngx_http_apikey_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&amcf->servers, cf->pool, 4,
                       sizeof(ngx_http_apikey_redis_server_t *))
        != NGX_OK
        || ngx_array_init(&amcf->sources, cf->pool, 4,
                          sizeof(ngx_http_apikey_source_t *))
           != NGX_OK
        || ngx_array_init(&amcf->secrets, cf->pool, 2, sizeof(ngx_str_t))
           != NGX_OK
        || ngx_array_init(&amcf->record_fields, cf->pool, 4,
                          sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NULL;
    }

    /* hasher 0: plain SHA-256 */

    secret = ngx_array_push(&amcf->secrets);
    if (secret == NULL) {
        return NULL;
    }

    ngx_str_null(secret);

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->cache = NULL;
     *     amcf->cache_ttl = 0;
     *     amcf->cache_negative_ttl = 0;
     *     amcf->metrics = NULL;
     *     amcf->metrics_used = 0;
     */

    return amcf;
}


static void *
ngx_http_apikey_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->realm = { 0, NULL };
     *     conf->prefix = { 0, NULL };
     *     conf->secret = { 0, NULL };
     *     conf->source = NULL;
     *     conf->challenges = NULL;
     *     conf->scope_list = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->redis = NGX_CONF_UNSET_PTR;
    conf->timeout = NGX_CONF_UNSET_MSEC;
    conf->keepalive = NGX_CONF_UNSET;
    conf->pipeline = NGX_CONF_UNSET;
    conf->key_checksum = NGX_CONF_UNSET;
    conf->key_prefixes = NGX_CONF_UNSET_PTR;
    conf->last_used_interval = NGX_CONF_UNSET_MSEC;
    conf->scopes = NGX_CONF_UNSET_PTR;
    conf->org = NGX_CONF_UNSET_PTR;
    conf->key_from = NGX_CONF_UNSET_PTR;
    conf->record_fields = NGX_CONF_UNSET_PTR;
    conf->upstream_headers = NGX_CONF_UNSET;
    conf->hide_credentials = NGX_CONF_UNSET;
    conf->cache = NGX_CONF_UNSET_PTR;
    conf->cache_stale = NGX_CONF_UNSET_MSEC;
    conf->rate_limit = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_apikey_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_apikey_loc_conf_t *prev = parent;
    ngx_http_apikey_loc_conf_t *conf = child;

    ngx_str_t                     address;
    ngx_http_apikey_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_str_value(conf->realm, prev->realm, "api");
    ngx_conf_merge_ptr_value(conf->redis, prev->redis, NULL);
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 200);
    ngx_conf_merge_value(conf->keepalive, prev->keepalive, 16);
    ngx_conf_merge_value(conf->pipeline, prev->pipeline, 128);
    ngx_conf_merge_str_value(conf->prefix, prev->prefix,
                             NGX_HTTP_APIKEY_KEY_REDIS_PREFIX);
    ngx_conf_merge_str_value(conf->secret, prev->secret, "");
    ngx_conf_merge_value(conf->key_checksum, prev->key_checksum, 0);
    ngx_conf_merge_ptr_value(conf->key_prefixes, prev->key_prefixes, NULL);
    ngx_conf_merge_msec_value(conf->last_used_interval,
                              prev->last_used_interval, 60000);
    ngx_conf_merge_ptr_value(conf->scopes, prev->scopes, NULL);
    ngx_conf_merge_str_value(conf->scope_list, prev->scope_list, "");
    ngx_conf_merge_ptr_value(conf->org, prev->org, NULL);
    ngx_conf_merge_ptr_value(conf->key_from, prev->key_from, NULL);
    ngx_conf_merge_ptr_value(conf->record_fields, prev->record_fields, NULL);
    ngx_conf_merge_value(conf->upstream_headers, prev->upstream_headers, 1);
    ngx_conf_merge_value(conf->hide_credentials, prev->hide_credentials, 1);
    ngx_conf_merge_ptr_value(conf->cache, prev->cache, NULL);
    ngx_conf_merge_msec_value(conf->cache_stale, prev->cache_stale, 0);
    ngx_conf_merge_ptr_value(conf->rate_limit, prev->rate_limit, NULL);

    /* zones are checked here: one may be used before it is declared */

    if (conf->cache && conf->cache != amcf->cache) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown apikey_cache zone \"%V\"",
                           &conf->cache->shm.name);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_apikey_ratelimit_merge(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    if (conf->cache && conf->cache_stale) {
        ngx_http_apikey_cache_keep(conf->cache);
    }

    if (conf->redis == NULL) {
        ngx_str_set(&address, "127.0.0.1:6379");

        conf->redis = ngx_http_apikey_redis_server(cf, &amcf->servers,
                                                   &address, 1, NULL);
        if (conf->redis == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_apikey_merge_source(cf, conf) != NGX_OK
        || ngx_http_apikey_answer_challenges(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_apikey_merge_source(ngx_conf_t *cf, ngx_http_apikey_loc_conf_t *conf)
{
    ngx_str_t                    *secret;
    ngx_uint_t                    i;
    ngx_http_apikey_source_t     *source, **known;
    ngx_http_apikey_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    known = amcf->sources.elts;

    for (i = 0; i < amcf->sources.nelts; i++) {
        source = known[i];

        if (source->server == conf->redis
            && source->prefix.len == conf->prefix.len
            && ngx_strncmp(source->prefix.data, conf->prefix.data,
                           conf->prefix.len)
               == 0)
        {
            goto found;
        }
    }

    source = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_source_t));
    if (source == NULL) {
        return NGX_ERROR;
    }

    source->server = conf->redis;
    source->prefix = conf->prefix;
    source->index = amcf->sources.nelts;

    known = ngx_array_push(&amcf->sources);
    if (known == NULL) {
        return NGX_ERROR;
    }

    *known = source;

found:

    conf->source = source;

    secret = amcf->secrets.elts;

    for (i = 0; i < amcf->secrets.nelts; i++) {
        if (secret[i].len == conf->secret.len
            && (conf->secret.len == 0
                || ngx_memcmp(secret[i].data, conf->secret.data,
                              conf->secret.len)
                   == 0))
        {
            break;
        }
    }

    if (i == amcf->secrets.nelts) {
        secret = ngx_array_push(&amcf->secrets);
        if (secret == NULL) {
            return NGX_ERROR;
        }

        *secret = conf->secret;
    }

    conf->hasher = i;

    if (conf->cache) {
        if (source->index >= NGX_HTTP_APIKEY_CACHE_SOURCES) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"apikey_cache\" tracks at most %d pairs of "
                               "\"apikey_redis\" and \"apikey_redis_prefix\"",
                               NGX_HTTP_APIKEY_CACHE_SOURCES);
            return NGX_ERROR;
        }

        source->cached = 1;
    }

    return NGX_OK;
}


static char *
ngx_http_apikey_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    ngx_str_t                        *value;
    ngx_uint_t                        i;
    ngx_http_apikey_main_conf_t      *amcf;
    ngx_http_apikey_redis_server_t  **server;

    if (alcf->redis != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    if (cf->args->nelts > 5) {
        return "has too many parameters";
    }

    value = cf->args->elts;
    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    /* the name of an apikey_redis_upstream block defined above */

    if (cf->args->nelts == 2) {
        server = amcf->servers.elts;

        for (i = 0; i < amcf->servers.nelts; i++) {
            if (server[i]->name.len == value[1].len
                && ngx_strncmp(server[i]->name.data, value[1].data,
                               value[1].len)
                   == 0)
            {
                alcf->redis = server[i];
                return NGX_CONF_OK;
            }
        }
    }

    alcf->redis = ngx_http_apikey_redis_server(cf, &amcf->servers, &value[1],
                                               cf->args->nelts - 1, NULL);
    if (alcf->redis == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* apikey_redis_upstream NAME { ... } */

static char *
ngx_http_apikey_redis_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_main_conf_t *amcf = conf;

    return ngx_http_apikey_redis_upstream(cf, &amcf->servers);
}


/*
 * apikey_cache_zone zone=NAME:SIZE [ttl=TIME] [negative_ttl=TIME];
 *
 * One zone per http block: the workers' subscriptions vouch for one zone.
 */

static char *
ngx_http_apikey_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_main_conf_t *amcf = conf;

    u_char      *p;
    ssize_t      size;
    ngx_str_t   *value, name, s;
    ngx_uint_t   i;
    ngx_msec_t   ttl, negative_ttl;

    value = cf->args->elts;

    if (amcf->cache) {
        return "is duplicate: one zone per http block";
    }

    ngx_str_null(&name);
    size = 0;
    ttl = 60000;
    negative_ttl = 10000;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || name.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {

            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            ttl = ngx_parse_time(&s, 0);

            if (ttl == (ngx_msec_t) NGX_ERROR || ttl == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid ttl \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "negative_ttl=", 13) == 0) {

            s.data = value[i].data + 13;
            s.len = value[i].len - 13;

            negative_ttl = ngx_parse_time(&s, 0);

            if (negative_ttl == (ngx_msec_t) NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid negative_ttl \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected zone=, ttl= "
                           "or negative_ttl=", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs zone=NAME:SIZE", &cmd->name);
        return NGX_CONF_ERROR;
    }

    amcf->cache = ngx_http_apikey_cache_add(cf, &name, size);
    if (amcf->cache == NULL) {
        return NGX_CONF_ERROR;
    }

    amcf->cache_ttl = ttl;
    amcf->cache_negative_ttl = negative_ttl;

    return NGX_CONF_OK;
}


/*
 * apikey_cache NAME | off;
 * apikey_cache zone=NAME:SIZE [ttl=TIME] [negative_ttl=TIME];  (http)
 *
 * The second form, from before apikey_cache_zone, declares the zone and
 * uses it at once.
 */

static char *
ngx_http_apikey_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    char                         *rv;
    ngx_str_t                    *value;
    ngx_http_apikey_main_conf_t  *amcf;

    value = cf->args->elts;

    if (alcf->cache != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    if (cf->args->nelts == 2
        && ngx_strlchr(value[1].data, value[1].data + value[1].len, '=')
           == NULL)
    {
        if (ngx_strcmp(value[1].data, "off") == 0) {
            alcf->cache = NULL;
            return NGX_CONF_OK;
        }

        alcf->cache = ngx_shared_memory_add(cf, &value[1], 0,
                                            &ngx_http_apikey_module);
        if (alcf->cache == NULL) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (cf->cmd_type != NGX_HTTP_MAIN_CONF) {
        return "with zone= is only valid at the http level; "
               "use \"apikey_cache NAME\" or \"apikey_cache off\" here";
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    rv = ngx_http_apikey_cache_zone(cf, cmd, amcf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    alcf->cache = amcf->cache;

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    u_char           *buf;
    size_t            size;
    ssize_t           n;
    ngx_str_t        *value, name;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    if (alcf->secret.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = name;
    file.log = cf->log;

    file.fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_CONF_ERROR;
    }

    buf = NULL;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &name);
        goto failed;
    }

    size = ngx_file_size(&fi);

    if (size == 0 || size > 4096) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must hold a secret of 1 to 4096 bytes",
                           &name);
        goto failed;
    }

    buf = ngx_pnalloc(cf->pool, size);
    if (buf == NULL) {
        goto failed;
    }

    n = ngx_read_file(&file, buf, size, 0);

    if (n == NGX_ERROR) {
        goto failed;
    }

    if ((size_t) n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           ngx_read_file_n " \"%V\" returned only %z bytes "
                           "instead of %uz", &name, n, size);
        goto failed;
    }

    if (buf[size - 1] == LF) {
        size--;
    }

    if (size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" holds an empty secret", &name);
        goto failed;
    }

    alcf->secret.data = buf;
    alcf->secret.len = size;

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &name);
    }

    return NGX_CONF_OK;

failed:

    if (buf) {
        ngx_explicit_memzero(buf, size);
    }

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &name);
    }

    return NGX_CONF_ERROR;
}


static char *
ngx_http_apikey_scopes(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    u_char      *p;
    size_t       len;
    ngx_str_t   *value, *scope;
    ngx_uint_t   i;

    if (alcf->scopes != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    alcf->scopes = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                    sizeof(ngx_str_t));
    if (alcf->scopes == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        /* RFC 6750 scope-token: it goes into a quoted challenge */

        for (p = value[i].data; p < value[i].data + value[i].len; p++) {
            if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid scope \"%V\": a scope is "
                                   "printable ASCII without spaces, "
                                   "quotes or backslashes", &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        if (value[i].len == 0) {
            return "has an empty scope";
        }

        scope = ngx_array_push(alcf->scopes);
        if (scope == NULL) {
            return NGX_CONF_ERROR;
        }

        *scope = value[i];
    }

    /* the policy reads them as a record holds them: space-separated */

    len = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        len += value[i].len + 1;
    }

    alcf->scope_list.data = ngx_pnalloc(cf->pool, len);
    if (alcf->scope_list.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = alcf->scope_list.data;

    for (i = 1; i < cf->args->nelts; i++) {
        p = ngx_cpymem(p, value[i].data, value[i].len);
        *p++ = ' ';
    }

    alcf->scope_list.len = len - 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_key_prefix(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    ngx_str_t   *value, *prefix;
    ngx_uint_t   i;

    if (alcf->key_prefixes != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    alcf->key_prefixes = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                          sizeof(ngx_str_t));
    if (alcf->key_prefixes == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (!ngx_http_apikey_key_prefix_valid(value[i].data, value[i].len)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid key prefix \"%V\": 1 to %d letters, "
                               "digits or underscores ending in \"_\"",
                               &value[i], NGX_HTTP_APIKEY_KEY_PREFIX_MAX);
            return NGX_CONF_ERROR;
        }

        prefix = ngx_array_push(alcf->key_prefixes);
        if (prefix == NULL) {
            return NGX_CONF_ERROR;
        }

        *prefix = value[i];
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_msec_off_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t                   *value;
    ngx_msec_t                  *msp;
    ngx_http_apikey_msec_off_t  *bounds;

    msp = (ngx_msec_t *) (p + cmd->offset);
    bounds = cmd->post;

    if (*msp != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *msp = 0;
        return NGX_CONF_OK;
    }

    *msp = ngx_parse_time(&value[1], 0);

    if (*msp == (ngx_msec_t) NGX_ERROR || *msp < bounds->min) {
        return bounds->error;
    }

    return NGX_CONF_OK;
}


/*
 * apikey_key_from header:NAME | query:NAME | bearer ...;
 *
 * A token sent twice is refused however it comes (ngx_http_apikey_token.c);
 * sources are kept in the order given, for the reader of the
 * configuration.
 */

static char *
ngx_http_apikey_key_from(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    u_char                      *p;
    ngx_str_t                   *value;
    ngx_uint_t                   i, j;
    ngx_http_apikey_key_from_t  *from, *known;

    if (alcf->key_from != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    alcf->key_from = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                      sizeof(ngx_http_apikey_key_from_t));
    if (alcf->key_from == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        from = ngx_array_push(alcf->key_from);
        if (from == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(from, sizeof(ngx_http_apikey_key_from_t));

        if (ngx_strcmp(value[i].data, "bearer") == 0) {
            from->type = NGX_HTTP_APIKEY_FROM_BEARER;

        } else if (ngx_strncmp(value[i].data, "header:", 7) == 0) {
            from->type = NGX_HTTP_APIKEY_FROM_HEADER;
            from->name.data = value[i].data + 7;
            from->name.len = value[i].len - 7;

        } else if (ngx_strncmp(value[i].data, "query:", 6) == 0) {
            from->type = NGX_HTTP_APIKEY_FROM_QUERY;
            from->name.data = value[i].data + 6;
            from->name.len = value[i].len - 6;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid key source \"%V\", expected "
                               "\"bearer\", \"header:NAME\" or "
                               "\"query:NAME\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (from->type != NGX_HTTP_APIKEY_FROM_BEARER) {

            if (from->name.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "key source \"%V\" needs a name",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            /* RFC 9110 token characters name a header; "&=#" end an arg */

            for (p = from->name.data;
                 p < from->name.data + from->name.len;
                 p++)
            {
                if (*p <= 0x20 || *p >= 0x7f
                    || ngx_strchr("\"(),/:;<=>?@[\\]{}&#%+", *p) != NULL)
                {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid name in key source \"%V\"",
                                       &value[i]);
                    return NGX_CONF_ERROR;
                }
            }
        }

        if (from->type == NGX_HTTP_APIKEY_FROM_HEADER) {

            if (from->name.len == sizeof("Authorization") - 1
                && ngx_strncasecmp(from->name.data, (u_char *) "Authorization",
                                   from->name.len)
                   == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\": the Authorization header is "
                                   "the \"bearer\" source", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (ngx_http_apikey_headers_identity_name(&from->name)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\": X-ApiKey-* headers are the "
                                   "module's, removed from every request",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            from->lowcase.data = ngx_pnalloc(cf->pool, from->name.len);
            if (from->lowcase.data == NULL) {
                return NGX_CONF_ERROR;
            }

            from->lowcase.len = from->name.len;
            from->hash = ngx_hash_strlow(from->lowcase.data, from->name.data,
                                         from->name.len);
        }

        known = alcf->key_from->elts;

        for (j = 0; j + 1 < alcf->key_from->nelts; j++) {
            if (known[j].type == from->type
                && known[j].name.len == from->name.len
                && ngx_strncasecmp(known[j].name.data, from->name.data,
                                   from->name.len)
                   == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate key source \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
        }
    }

    return NGX_CONF_OK;
}


/*
 * apikey_record_fields field ...;
 *
 * Every lookup of the http block reads the fields of all of them, so that
 * locations share lookups and cache entries; a location exposes its own as
 * $apikey_field_<name>.
 */

static char *
ngx_http_apikey_record_fields(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    char                         *err;
    ngx_str_t                    *value, *name;
    ngx_uint_t                    i, j, k, *index;
    ngx_http_apikey_main_conf_t  *amcf;

    if (alcf->record_fields != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    alcf->record_fields = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                           sizeof(ngx_uint_t));
    if (alcf->record_fields == NULL) {
        return NGX_CONF_ERROR;
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        err = ngx_http_apikey_record_field_name(&value[i]);

        if (err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid record field \"%V\": it %s",
                               &value[i], err);
            return NGX_CONF_ERROR;
        }

        name = amcf->record_fields.elts;

        for (j = 0; j < amcf->record_fields.nelts; j++) {
            if (name[j].len == value[i].len
                && ngx_strncmp(name[j].data, value[i].data, value[i].len)
                   == 0)
            {
                break;
            }
        }

        k = j;

        if (k == amcf->record_fields.nelts) {

            if (k == NGX_HTTP_APIKEY_RECORD_EXTRA_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "at most %d record fields may be read",
                                   NGX_HTTP_APIKEY_RECORD_EXTRA_MAX);
                return NGX_CONF_ERROR;
            }

            name = ngx_array_push(&amcf->record_fields);
            if (name == NULL) {
                return NGX_CONF_ERROR;
            }

            *name = value[i];

            if (ngx_http_apikey_add_field_variable(cf, name, k) != NGX_OK) {
                return NGX_CONF_ERROR;
            }
        }

        index = alcf->record_fields->elts;

        for (j = 0; j < alcf->record_fields->nelts; j++) {
            if (index[j] == k) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate record field \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        index = ngx_array_push(alcf->record_fields);
        if (index == NULL) {
            return NGX_CONF_ERROR;
        }

        *index = k;
    }

    return NGX_CONF_OK;
}


/* the realm goes into a quoted string of a response header */

static char *
ngx_http_apikey_check_realm(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *realm = data;

    u_char  *p;

    for (p = realm->data; p < realm->data + realm->len; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\') {
            return "must not contain quotes, backslashes or control "
                   "characters";
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_check_prefix(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *prefix = data;

    if (prefix->len == 0) {
        return "must not be empty";
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_apikey_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_apikey_answer_init();

    return ngx_http_apikey_add_variables(cf);
}


static ngx_int_t
ngx_http_apikey_init(ngx_conf_t *cf)
{
    ngx_uint_t                    i;
    ngx_http_handler_pt          *h;
    ngx_http_apikey_source_t    **source;
    ngx_http_core_main_conf_t    *cmcf;
    ngx_http_apikey_main_conf_t  *amcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_preaccess_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_access_handler;

    if (ngx_http_apikey_ratelimit_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    /* only now are all apikey_record_fields of the http block known */

    source = amcf->sources.elts;

    for (i = 0; i < amcf->sources.nelts; i++) {
        if (ngx_http_apikey_lookup_command(cf, source[i],
                                           &amcf->record_fields)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (amcf->cache) {
        ngx_http_apikey_cache_sources(amcf->cache, &amcf->sources,
                                      &amcf->record_fields);
    }

    if ((amcf->metrics_used || amcf->sources.nelts)
        && ngx_http_apikey_metrics_add(cf, amcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_init_process(ngx_cycle_t *cycle)
{
    ngx_http_apikey_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_apikey_module);

    if (amcf == NULL) {
        return NGX_OK;
    }

    if (ngx_http_apikey_lookup_init_process(cycle, amcf) != NGX_OK
        || ngx_http_apikey_last_used_init(cycle) != NGX_OK
        || ngx_http_apikey_metrics_init_process(cycle, amcf) != NGX_OK
        || ngx_http_apikey_cache_init_process(cycle, amcf) != NGX_OK
        || ngx_http_apikey_redis_init_process(cycle, &amcf->servers)
           != NGX_OK
        || ngx_http_apikey_tracking_init_process(cycle, amcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_apikey_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_apikey_main_conf_t  *amcf;

    ngx_http_apikey_lookup_exit_process(cycle);

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_apikey_module);

    if (amcf) {
        ngx_http_apikey_redis_exit_process(&amcf->servers);
    }
}
