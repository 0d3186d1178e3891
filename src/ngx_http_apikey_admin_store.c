
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The admin API's Redis round trips, one after another, each started by
 * the reply to the one before: a key by id (its id index, then its record
 * and last use), a list a page at a time, and the writes in the order of
 * docs/redis-schema.md, each after the id claim one MULTI ... EXEC.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"
#include "ngx_http_apikey_lookup.h"
#include "ngx_http_apikey_admin.h"


/* a page of a list: its replies stay under the client's caps */
#define NGX_HTTP_APIKEY_ADMIN_PAGE         16

/* the id index's pattern in a SORT: the prefix and "id:*" */
#define NGX_HTTP_APIKEY_ADMIN_PATTERN_LEN  1024

/* a random id drawn is taken once in 62^12: three in a row is a fault */
#define NGX_HTTP_APIKEY_ADMIN_ID_TRIES     3


static ngx_int_t ngx_http_apikey_admin_list(ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_listed_ids(
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_listed(
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_hashed(
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_loaded(
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_change(
    ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_revoke(
    ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_make(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_object_t *like);
static ngx_int_t ngx_http_apikey_admin_claim(ngx_http_apikey_admin_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_admin_claimed(
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_written(
    ngx_http_apikey_admin_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_apikey_admin_revoked(
    ngx_http_apikey_admin_ctx_t *ctx);

static void ngx_http_apikey_admin_record(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_object_t *obj, ngx_http_apikey_object_fields_t *fields);
static void ngx_http_apikey_admin_keep(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_object_t *obj, int64_t until);
static void ngx_http_apikey_admin_command(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_uint_t argc, const char **argv, size_t *argvlen);
static void ngx_http_apikey_admin_command2(ngx_http_apikey_admin_ctx_t *ctx,
    const char *cmd, ngx_str_t *key, const char *arg, size_t len);
static ngx_int_t ngx_http_apikey_admin_send(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_step_pt step);
static void ngx_http_apikey_admin_reply(ngx_http_apikey_redis_query_t *q,
    redisReply *reply);
static ngx_str_t *ngx_http_apikey_admin_name(ngx_http_apikey_admin_ctx_t *ctx,
    const char *kind, const char *value, size_t len);


ngx_int_t
ngx_http_apikey_admin_start(ngx_http_apikey_admin_ctx_t *ctx)
{
    switch (ctx->action) {

    case NGX_HTTP_APIKEY_ADMIN_LIST:
        return ngx_http_apikey_admin_list(ctx);

    case NGX_HTTP_APIKEY_ADMIN_NEW:
        return ngx_http_apikey_admin_make(ctx, NULL);

    default:
        break;
    }

    /* by id: the id index first, then the record and its last use */

    ngx_http_apikey_admin_command2(ctx, "GET",
                                   ngx_http_apikey_admin_name(ctx, "id:",
                                       (char *) ctx->id.data, ctx->id.len),
                                   NULL, 0);

    return ngx_http_apikey_admin_send(ctx, ngx_http_apikey_admin_hashed);
}


static ngx_int_t
ngx_http_apikey_admin_hashed(ngx_http_apikey_admin_ctx_t *ctx,
    redisReply *reply)
{
    if (reply->type != REDIS_REPLY_STRING
        || reply->len != NGX_HTTP_APIKEY_HASH_HEX_LEN)
    {
        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_NOT_FOUND,
                                          "no key with this id", &ctx->id);
    }

    ngx_memcpy(ctx->obj.hash, reply->str, NGX_HTTP_APIKEY_HASH_HEX_LEN);

    ngx_http_apikey_admin_command2(ctx, "MULTI", NULL, NULL, 0);
    ngx_http_apikey_admin_command2(ctx, "HGETALL",
                                   ngx_http_apikey_admin_name(ctx, "",
                                       ctx->obj.hash,
                                       NGX_HTTP_APIKEY_HASH_HEX_LEN),
                                   NULL, 0);
    ngx_http_apikey_admin_command2(ctx, "HGET",
                                   ngx_http_apikey_admin_name(ctx,
                                       "last_used", "", 0),
                                   (char *) ctx->id.data, ctx->id.len);
    ngx_http_apikey_admin_command2(ctx, "EXEC", NULL, NULL, 0);

    return ngx_http_apikey_admin_send(ctx, ngx_http_apikey_admin_loaded);
}


static ngx_int_t
ngx_http_apikey_admin_loaded(ngx_http_apikey_admin_ctx_t *ctx,
    redisReply *reply)
{
    char  hash[NGX_HTTP_APIKEY_HASH_HEX_LEN + 1];

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "the key store is unavailable",
                                          NULL);
    }

    ngx_memcpy(hash, ctx->obj.hash, sizeof(hash));

    /* a key of another organisation does not exist, for this caller */

    if (ngx_http_apikey_object_parse(&ctx->obj, reply->element[0]) != 0
        || ngx_strlen(ctx->obj.id) != ctx->id.len
        || ngx_strncmp(ctx->obj.id, ctx->id.data, ctx->id.len) != 0
        || (ctx->confined
            && (ctx->obj.org == NULL
                || ngx_strlen(ctx->obj.org) != ctx->org.len
                || ngx_strncmp(ctx->obj.org, ctx->org.data, ctx->org.len)
                   != 0)))
    {
        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_NOT_FOUND,
                                          "no key with this id", &ctx->id);
    }

    ngx_memcpy(ctx->obj.hash, hash, sizeof(hash));

    ngx_http_apikey_object_last_used(&ctx->obj, reply->element[1]);

    switch (ctx->action) {

    case NGX_HTTP_APIKEY_ADMIN_CHANGE:
        return ngx_http_apikey_admin_change(ctx);

    case NGX_HTTP_APIKEY_ADMIN_REVOKE:
        return ngx_http_apikey_admin_revoke(ctx);

    case NGX_HTTP_APIKEY_ADMIN_RENEW:

        if (ctx->obj.revoked
            || (ctx->obj.expires_at && ctx->obj.expires_at <= ngx_time()))
        {
            return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_BAD_REQUEST,
                                              "the key is no longer active: "
                                              "create a new key instead",
                                              NULL);
        }

        if (ctx->obj.replaced_by) {
            return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_BAD_REQUEST,
                                              "the key was already rotated",
                                              NULL);
        }

        return ngx_http_apikey_admin_make(ctx, &ctx->obj);

    default:
        return ngx_http_apikey_admin_object(ctx, &ctx->obj, NULL);
    }
}


/*
 * One transaction: the record's changed fields, and the housekeeping TTL
 * when the expiry changed (a revoked key keeps its revocation's).
 */

static ngx_int_t
ngx_http_apikey_admin_change(ngx_http_apikey_admin_ctx_t *ctx)
{
    ngx_http_apikey_object_fields_t  fields;

    ngx_http_apikey_admin_body_apply(&ctx->edit, &ctx->obj, &fields);

    if (fields.n == 0) {
        return ngx_http_apikey_admin_object(ctx, &ctx->obj, NULL);
    }

    ngx_http_apikey_admin_command2(ctx, "MULTI", NULL, NULL, 0);
    ngx_http_apikey_admin_record(ctx, &ctx->obj, &fields);

    if (ctx->edit.has_expiry && !ctx->obj.revoked) {
        ngx_http_apikey_admin_keep(ctx, &ctx->obj, ctx->obj.expires_at);
    }

    ngx_http_apikey_admin_command2(ctx, "EXEC", NULL, NULL, 0);

    return ngx_http_apikey_admin_send(ctx, ngx_http_apikey_admin_written);
}


/* the record first: its "revoked" is what every lookup reads */

static ngx_int_t
ngx_http_apikey_admin_revoke(ngx_http_apikey_admin_ctx_t *ctx)
{
    int64_t                         until;
    ngx_http_apikey_object_fields_t  fields;

    if (ctx->obj.revoked) {
        return ngx_http_apikey_admin_revoked(ctx);
    }

    fields.n = 0;
    ngx_http_apikey_object_field(&fields, "revoked", "1");

    until = ngx_time();

    if (ctx->obj.expires_at && ctx->obj.expires_at < until) {
        until = ctx->obj.expires_at;
    }

    ngx_http_apikey_admin_command2(ctx, "MULTI", NULL, NULL, 0);
    ngx_http_apikey_admin_record(ctx, &ctx->obj, &fields);
    ngx_http_apikey_admin_keep(ctx, &ctx->obj, until);
    ngx_http_apikey_admin_command2(ctx, "EXEC", NULL, NULL, 0);

    ctx->obj.revoked = 1;

    return ngx_http_apikey_admin_send(ctx, ngx_http_apikey_admin_written);
}


/*
 * A new key, from the body (create) or like an old one (rotate): its
 * plaintext, hash and hint, then an id claimed with SET NX.
 */

static ngx_int_t
ngx_http_apikey_admin_make(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_object_t *like)
{
    size_t                           i, len;
    u_char                           digest[NGX_HTTP_APIKEY_HASH_LEN];
    ngx_str_t                        prefix;
    ngx_http_apikey_object_t        *obj;
    ngx_http_apikey_object_fields_t   fields;

    obj = &ctx->made;
    prefix = ctx->conf->prefix;

    if (like) {
        obj->name = like->name ? strdup(like->name) : NULL;
        obj->org = like->org ? strdup(like->org) : NULL;
        obj->scopes = like->scopes ? strdup(like->scopes) : NULL;
        obj->expires_at = like->expires_at;

        /* and its rate limit, as the tool's does */

        obj->rate = like->rate ? strdup(like->rate) : NULL;
        obj->burst = like->burst ? strdup(like->burst) : NULL;

        /* and its allowlist and other fields: the key's policy */

        obj->cidrs = like->cidrs ? strdup(like->cidrs) : NULL;

        for (i = 0; i < like->nfields; i++) {
            if (ngx_http_apikey_object_set_extra(obj, like->fields[2 * i],
                    ngx_strlen(like->fields[2 * i]), like->fields[2 * i + 1])
                != 0)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        /* a rotated key never goes without a limit or allowlist it had */

        if ((like->rate && obj->rate == NULL)
            || (like->burst && obj->burst == NULL)
            || (like->cidrs && obj->cidrs == NULL))
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* a rotated key keeps its product's prefix, as the tool's does */

        if (like->prefix
            && ngx_http_apikey_key_prefix_valid((u_char *) like->prefix,
                                                ngx_strlen(like->prefix)))
        {
            prefix.data = (u_char *) like->prefix;
            prefix.len = ngx_strlen(like->prefix);
        }

    } else {
        if (ctx->confined) {
            obj->org = ngx_http_apikey_admin_strndup(ctx->org.data,
                                                     ctx->org.len);

        } else if (ctx->edit.org) {
            obj->org = strdup(ctx->edit.org);
        }
    }

    len = ngx_http_apikey_key_generate(prefix.data, prefix.len, ctx->key);
    if (len == 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->key[len] = '\0';

    if (ngx_http_apikey_lookup_digest(ctx->alcf, ctx->key, len, digest)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_apikey_key_hex(digest, (u_char *) obj->hash);
    obj->hash[NGX_HTTP_APIKEY_HASH_HEX_LEN] = '\0';

    obj->hint = ngx_http_apikey_admin_strndup(
                    ctx->key + len - NGX_HTTP_APIKEY_KEY_HINT_LEN,
                    NGX_HTTP_APIKEY_KEY_HINT_LEN);
    obj->prefix = ngx_http_apikey_admin_strndup(prefix.data, prefix.len);
    obj->id = malloc(NGX_HTTP_APIKEY_OBJECT_ID_LEN + 1);
    obj->created_at = ngx_time();

    if (obj->hint == NULL || obj->prefix == NULL || obj->id == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (like == NULL) {
        /* the strings of the body become the record's */
        ngx_http_apikey_admin_body_apply(&ctx->edit, obj, &fields);
    }

    return ngx_http_apikey_admin_claim(ctx);
}


static ngx_int_t
ngx_http_apikey_admin_claim(ngx_http_apikey_admin_ctx_t *ctx)
{
    size_t                     argvlen[4];
    ngx_str_t                 *name;
    const char                *argv[4];
    ngx_http_apikey_object_t  *obj;

    obj = &ctx->made;

    if (ngx_http_apikey_object_id(obj->id) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    name = ngx_http_apikey_admin_name(ctx, "id:", obj->id,
                                      NGX_HTTP_APIKEY_OBJECT_ID_LEN);
    if (name == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (char *) name->data;
    argvlen[1] = name->len;
    argv[2] = obj->hash;
    argvlen[2] = NGX_HTTP_APIKEY_HASH_HEX_LEN;
    argv[3] = "NX";
    argvlen[3] = 2;

    ngx_http_apikey_admin_command(ctx, 4, argv, argvlen);

    return ngx_http_apikey_admin_send(ctx, ngx_http_apikey_admin_claimed);
}


/*
 * The id is ours: one transaction writes the indexes, then the record
 * (docs/redis-schema.md), then for a rotation the old key's change.
 */

static ngx_int_t
ngx_http_apikey_admin_claimed(ngx_http_apikey_admin_ctx_t *ctx,
    redisReply *reply)
{
    int64_t                          until;
    ngx_http_apikey_object_t        *obj, *old;
    ngx_http_apikey_object_fields_t   fields;

    obj = &ctx->made;

    if (reply->type == REDIS_REPLY_NIL) {
        if (++ctx->tries < NGX_HTTP_APIKEY_ADMIN_ID_TRIES) {
            return ngx_http_apikey_admin_claim(ctx);
        }

        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "apikey admin: no free id in %d tries",
                      NGX_HTTP_APIKEY_ADMIN_ID_TRIES);
    }

    if (reply->type != REDIS_REPLY_STATUS) {
        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "the key store is unavailable",
                                          NULL);
    }

    ngx_http_apikey_object_fields(obj, &fields);

    ngx_http_apikey_admin_command2(ctx, "MULTI", NULL, NULL, 0);
    ngx_http_apikey_admin_command2(ctx, "SADD",
                                   ngx_http_apikey_admin_name(ctx, "ids",
                                                              "", 0),
                                   obj->id, NGX_HTTP_APIKEY_OBJECT_ID_LEN);

    if (obj->org) {
        ngx_http_apikey_admin_command2(ctx, "SADD",
                                       ngx_http_apikey_admin_name(ctx,
                                           "org:", obj->org,
                                           ngx_strlen(obj->org)),
                                       obj->id,
                                       NGX_HTTP_APIKEY_OBJECT_ID_LEN);
    }

    ngx_http_apikey_admin_record(ctx, obj, &fields);

    if (obj->expires_at) {
        ngx_http_apikey_admin_keep(ctx, obj, obj->expires_at);
    }

    if (ctx->action == NGX_HTTP_APIKEY_ADMIN_RENEW) {
        old = &ctx->obj;

        fields.n = 0;
        ngx_http_apikey_object_field(&fields, "replaced_by", obj->id);

        until = ngx_time() + ctx->edit.grace;

        if (ctx->edit.grace == 0) {
            ngx_http_apikey_object_field(&fields, "revoked", "1");

        } else {
            if (old->expires_at && old->expires_at < until) {
                until = old->expires_at;
            }

            ngx_http_apikey_object_field_number(&fields, "expires_at", until);
        }

        ngx_http_apikey_admin_record(ctx, old, &fields);
        ngx_http_apikey_admin_keep(ctx, old, until);
    }

    ngx_http_apikey_admin_command2(ctx, "EXEC", NULL, NULL, 0);

    return ngx_http_apikey_admin_send(ctx, ngx_http_apikey_admin_written);
}


static ngx_int_t
ngx_http_apikey_admin_written(ngx_http_apikey_admin_ctx_t *ctx,
    redisReply *reply)
{
    size_t  i;

    /* EXEC ran every command, or none: a refused one voids the lot */

    if (reply->type != REDIS_REPLY_ARRAY) {
        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                          "apikey admin: redis refused the write: %*s",
                          (size_t) ngx_min(reply->len, 128), reply->str);
        }

        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "the key store is unavailable",
                                          NULL);
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                          "apikey admin: redis failed a write: %*s",
                          (size_t) ngx_min(reply->element[i]->len, 128),
                          reply->element[i]->str);

            return ngx_http_apikey_admin_fail(ctx,
                                              NGX_HTTP_SERVICE_UNAVAILABLE,
                                              "the key store is unavailable",
                                              NULL);
        }
    }

    switch (ctx->action) {

    case NGX_HTTP_APIKEY_ADMIN_NEW:
        ngx_http_apikey_admin_audit(ctx, "create", &ctx->made);
        break;

    case NGX_HTTP_APIKEY_ADMIN_RENEW:
        ngx_http_apikey_admin_audit(ctx, "rotate", &ctx->obj);
        break;

    case NGX_HTTP_APIKEY_ADMIN_CHANGE:
        ngx_http_apikey_admin_audit(ctx, "update", &ctx->obj);
        return ngx_http_apikey_admin_object(ctx, &ctx->obj, NULL);

    default:
        ngx_http_apikey_admin_audit(ctx, "revoke", &ctx->obj);

        return ngx_http_apikey_admin_revoked(ctx);
    }

    if (ngx_http_apikey_admin_object(ctx, &ctx->made, (char *) ctx->key)
        != NGX_HTTP_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_HTTP_CREATED;
}


static ngx_int_t
ngx_http_apikey_admin_revoked(ngx_http_apikey_admin_ctx_t *ctx)
{
    static ngx_str_t  ok = ngx_string("{\"ok\":true}");

    ctx->out.len = 0;
    ngx_http_apikey_admin_out(&ctx->out, (char *) ok.data, ok.len);

    return ctx->out.failed ? NGX_HTTP_INTERNAL_SERVER_ERROR : NGX_HTTP_OK;
}


/*
 * A list, a page at a time: SORT_RO ... GET # GET Pid:* gives ids and
 * their hashes, then one transaction reads the records and last uses.
 */

static ngx_int_t
ngx_http_apikey_admin_list(ngx_http_apikey_admin_ctx_t *ctx)
{
    u_char       *p, off[NGX_INT_T_LEN + 1], count[NGX_INT_T_LEN + 1];
    u_char        pattern[NGX_HTTP_APIKEY_ADMIN_PATTERN_LEN];
    size_t        argvlen[11];
    ngx_str_t     org, *index;
    ngx_uint_t    i;
    const char   *argv[11];

    if (ctx->index.len == 0) {

        if (ngx_http_arg(ctx->request, (u_char *) "state", 5, &ctx->state)
            == NGX_OK)
        {
            if (!(ctx->state.len == 6
                  && ngx_strncmp(ctx->state.data, "active", 6) == 0)
                && !(ctx->state.len == 7
                     && (ngx_strncmp(ctx->state.data, "expired", 7) == 0
                         || ngx_strncmp(ctx->state.data, "revoked", 7) == 0)))
            {
                return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_BAD_REQUEST,
                                                  "\"state\" must be active, "
                                                  "expired or revoked", NULL);
            }
        }

        ngx_str_null(&org);

        if (ctx->confined) {
            org = ctx->org;

        } else if (ngx_http_arg(ctx->request, (u_char *) "org", 3, &org)
                   == NGX_OK
                   && !ngx_http_apikey_object_word_valid((char *) org.data,
                                                         org.len))
        {
            return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_BAD_REQUEST,
                                              "\"org\" is not a valid "
                                              "organisation", NULL);
        }

        ctx->list_org = org;

        index = org.len ? ngx_http_apikey_admin_name(ctx, "org:",
                                                     (char *) org.data,
                                                     org.len)
                        : ngx_http_apikey_admin_name(ctx, "ids", "", 0);
        if (index == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->index = *index;

        ctx->out.len = 0;
        ngx_http_apikey_admin_out(&ctx->out, "[", 1);
    }

    /* SORT_RO Pids BY nosort LIMIT <offset> <page> GET # GET Pid:* */

    if (ctx->alcf->prefix.len > sizeof(pattern) - sizeof("id:*")) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* every argument a C string: the lengths below are theirs */

    p = ngx_cpymem(pattern, ctx->alcf->prefix.data, ctx->alcf->prefix.len);
    ngx_memcpy(p, "id:*", sizeof("id:*"));

    *ngx_sprintf(off, "%ui", ctx->offset) = '\0';
    *ngx_sprintf(count, "%d", NGX_HTTP_APIKEY_ADMIN_PAGE) = '\0';

    argv[0] = "SORT_RO";
    argv[1] = (char *) ctx->index.data;
    argv[2] = "BY";
    argv[3] = "nosort";
    argv[4] = "LIMIT";
    argv[5] = (char *) off;
    argv[6] = (char *) count;
    argv[7] = "GET";
    argv[8] = "#";
    argv[9] = "GET";
    argv[10] = (char *) pattern;

    for (i = 0; i < 11; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    ngx_http_apikey_admin_command(ctx, 11, argv, argvlen);

    return ngx_http_apikey_admin_send(ctx, ngx_http_apikey_admin_listed_ids);
}


static ngx_int_t
ngx_http_apikey_admin_listed_ids(ngx_http_apikey_admin_ctx_t *ctx,
    redisReply *reply)
{
    size_t       i;
    ngx_str_t   *id;
    redisReply  *rid, *hash;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "the key store is unavailable",
                                          NULL);
    }

    ctx->listed = reply->elements / 2;

    ctx->page = ngx_array_create(ctx->request->pool,
                                 NGX_HTTP_APIKEY_ADMIN_PAGE,
                                 sizeof(ngx_str_t));
    if (ctx->page == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_apikey_admin_command2(ctx, "MULTI", NULL, NULL, 0);

    for (i = 0; i < reply->elements; i += 2) {
        rid = reply->element[i];
        hash = reply->element[i + 1];

        /* an id whose record is gone: left for "apikey list" to prune */

        if (rid->type != REDIS_REPLY_STRING
            || hash->type != REDIS_REPLY_STRING
            || hash->len != NGX_HTTP_APIKEY_HASH_HEX_LEN)
        {
            continue;
        }

        id = ngx_array_push(ctx->page);
        if (id == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        id->len = rid->len;
        id->data = ngx_pnalloc(ctx->request->pool, rid->len);
        if (id->data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(id->data, rid->str, rid->len);

        ngx_http_apikey_admin_command2(ctx, "HGETALL",
                                       ngx_http_apikey_admin_name(ctx, "",
                                           hash->str, hash->len),
                                       NULL, 0);
        ngx_http_apikey_admin_command2(ctx, "HGET",
                                       ngx_http_apikey_admin_name(ctx,
                                           "last_used", "", 0),
                                       rid->str, rid->len);
    }

    ngx_http_apikey_admin_command2(ctx, "EXEC", NULL, NULL, 0);

    return ngx_http_apikey_admin_send(ctx, ngx_http_apikey_admin_listed);
}


static ngx_int_t
ngx_http_apikey_admin_listed(ngx_http_apikey_admin_ctx_t *ctx,
    redisReply *reply)
{
    time_t                     now;
    size_t                     i;
    ngx_str_t                 *ids;
    const char                *state;
    ngx_http_apikey_object_t   obj;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2 * ctx->page->nelts)
    {
        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "the key store is unavailable",
                                          NULL);
    }

    ids = ctx->page->elts;
    now = ngx_time();

    for (i = 0; i < ctx->page->nelts; i++) {

        if (ngx_http_apikey_object_parse(&obj, reply->element[2 * i]) != 0) {
            continue;
        }

        ngx_http_apikey_object_last_used(&obj, reply->element[2 * i + 1]);

        state = ngx_http_apikey_object_state(&obj, now);

        /* not this index's key, or not asked for: left out */

        if (ngx_strlen(obj.id) != ids[i].len
            || ngx_strncmp(obj.id, ids[i].data, ids[i].len) != 0
            || (ctx->list_org.len
                && (obj.org == NULL
                    || ngx_strlen(obj.org) != ctx->list_org.len
                    || ngx_strncmp(obj.org, ctx->list_org.data,
                                   ctx->list_org.len) != 0))
            || (ctx->state.len
                && (ngx_strlen(state) != ctx->state.len
                    || ngx_strncmp(state, ctx->state.data, ctx->state.len)
                       != 0)))
        {
            ngx_http_apikey_object_free(&obj);
            continue;
        }

        if (ctx->out.len > 1) {
            ngx_http_apikey_admin_out(&ctx->out, ",", 1);
        }

        ngx_http_apikey_object_json(&obj, NULL, now,
                                    ngx_http_apikey_admin_out, &ctx->out);
        ngx_http_apikey_object_free(&obj);
    }

    if (ctx->listed == NGX_HTTP_APIKEY_ADMIN_PAGE) {
        ctx->offset += NGX_HTTP_APIKEY_ADMIN_PAGE;
        return ngx_http_apikey_admin_list(ctx);
    }

    ngx_http_apikey_admin_out(&ctx->out, "]", 1);

    return ctx->out.failed ? NGX_HTTP_INTERNAL_SERVER_ERROR : NGX_HTTP_OK;
}


/* HSET P<hash> field value ... */

static void
ngx_http_apikey_admin_record(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_object_t *obj, ngx_http_apikey_object_fields_t *fields)
{
    size_t       argvlen[2 + 2 * NGX_HTTP_APIKEY_OBJECT_FIELDS_MAX];
    ngx_str_t   *name;
    const char  *argv[2 + 2 * NGX_HTTP_APIKEY_OBJECT_FIELDS_MAX];

    name = ngx_http_apikey_admin_name(ctx, "", obj->hash,
                                      NGX_HTTP_APIKEY_HASH_HEX_LEN);
    if (name == NULL) {
        ctx->cmd.failed = 1;
        return;
    }

    argv[0] = "HSET";
    argvlen[0] = 4;
    argv[1] = (char *) name->data;
    argvlen[1] = name->len;

    ngx_memcpy(&argv[2], fields->argv, fields->n * sizeof(char *));
    ngx_memcpy(&argvlen[2], fields->argvlen, fields->n * sizeof(size_t));

    ngx_http_apikey_admin_command(ctx, 2 + fields->n, argv, argvlen);
}


/*
 * The housekeeping TTL of the record and its id index: a week past
 * "until", or none (docs/redis-schema.md); lookups never rely on it.
 */

static void
ngx_http_apikey_admin_keep(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_object_t *obj, int64_t until)
{
    u_char      at[NGX_INT64_LEN];
    size_t      len;
    ngx_str_t  *record, *index;

    record = ngx_http_apikey_admin_name(ctx, "", obj->hash,
                                        NGX_HTTP_APIKEY_HASH_HEX_LEN);
    index = ngx_http_apikey_admin_name(ctx, "id:", obj->id,
                                       ngx_strlen(obj->id));

    if (until == 0) {
        ngx_http_apikey_admin_command2(ctx, "PERSIST", record, NULL, 0);
        ngx_http_apikey_admin_command2(ctx, "PERSIST", index, NULL, 0);
        return;
    }

    len = ngx_sprintf(at, "%L", until + NGX_HTTP_APIKEY_OBJECT_KEEP) - at;

    ngx_http_apikey_admin_command2(ctx, "EXPIREAT", record, (char *) at, len);
    ngx_http_apikey_admin_command2(ctx, "EXPIREAT", index, (char *) at, len);
}


static void
ngx_http_apikey_admin_command(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_uint_t argc, const char **argv, size_t *argvlen)
{
    ngx_str_t  cmd;

    if (ngx_http_apikey_redis_format(ctx->request->pool, &cmd, (int) argc,
                                     argv, argvlen)
        != NGX_OK)
    {
        ctx->cmd.failed = 1;
        return;
    }

    ngx_http_apikey_admin_out(&ctx->cmd, (char *) cmd.data, cmd.len);
    ctx->ncmds++;
}


/* a command of a name, a key and one argument, each optional */

static void
ngx_http_apikey_admin_command2(ngx_http_apikey_admin_ctx_t *ctx,
    const char *cmd, ngx_str_t *key, const char *arg, size_t len)
{
    size_t       argvlen[3];
    ngx_uint_t   argc;
    const char  *argv[3];

    argv[0] = cmd;
    argvlen[0] = ngx_strlen(cmd);
    argc = 1;

    if (key) {
        argv[argc] = (char *) key->data;
        argvlen[argc++] = key->len;

    } else if (ngx_strcmp(cmd, "MULTI") != 0 && ngx_strcmp(cmd, "EXEC") != 0)
    {
        ctx->cmd.failed = 1;
        return;
    }

    if (arg) {
        argv[argc] = arg;
        argvlen[argc++] = len;
    }

    ngx_http_apikey_admin_command(ctx, argc, argv, argvlen);
}


static ngx_int_t
ngx_http_apikey_admin_send(ngx_http_apikey_admin_ctx_t *ctx,
    ngx_http_apikey_admin_step_pt step)
{
    ngx_http_apikey_redis_query_t  *q;

    if (ctx->cmd.failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q = &ctx->query;

    q->server = ctx->alcf->redis;
    q->timeout = ctx->alcf->timeout;
    q->keepalive = ctx->alcf->keepalive;
    q->pipeline = ctx->alcf->pipeline;
    q->command.data = ctx->cmd.data;
    q->command.len = ctx->cmd.len;
    q->replies = ctx->ncmds;
    q->handler = ngx_http_apikey_admin_reply;
    q->data = ctx;
    q->log = ctx->request->connection->log;
    q->retried = 0;
    q->timedout = 0;

    /* the next step's commands go into a new buffer */

    ngx_memzero(&ctx->cmd, sizeof(ngx_http_apikey_admin_buf_t));
    ctx->cmd.pool = ctx->request->pool;
    ctx->ncmds = 0;

    ctx->step = step;

    if (ngx_http_apikey_redis_query(q) != NGX_OK) {
        return ngx_http_apikey_admin_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "the key store is unavailable",
                                          NULL);
    }

    return NGX_AGAIN;
}


static void
ngx_http_apikey_admin_reply(ngx_http_apikey_redis_query_t *q,
    redisReply *reply)
{
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_apikey_admin_ctx_t  *ctx;

    ctx = q->data;
    r = ctx->request;
    c = r->connection;

    if (reply == NULL) {
        rc = ngx_http_apikey_admin_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "the key store is unavailable",
                                        NULL);

    } else {
        rc = ctx->step(ctx, reply);
    }

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_finalize_request(r, ngx_http_apikey_admin_answer(ctx, rc));
    ngx_http_run_posted_requests(c);
}


/* P<kind><value>: docs/redis-schema.md */

static ngx_str_t *
ngx_http_apikey_admin_name(ngx_http_apikey_admin_ctx_t *ctx,
    const char *kind, const char *value, size_t len)
{
    u_char     *p;
    size_t      klen;
    ngx_str_t  *name, *prefix;

    prefix = &ctx->alcf->prefix;
    klen = ngx_strlen(kind);

    name = ngx_palloc(ctx->request->pool, sizeof(ngx_str_t));
    if (name == NULL) {
        ctx->cmd.failed = 1;
        return NULL;
    }

    name->len = prefix->len + klen + len;
    name->data = ngx_pnalloc(ctx->request->pool, name->len + 1);
    if (name->data == NULL) {
        ctx->cmd.failed = 1;
        return NULL;
    }

    p = ngx_cpymem(name->data, prefix->data, prefix->len);
    p = ngx_cpymem(p, kind, klen);
    p = ngx_cpymem(p, value, len);
    *p = '\0';

    return name;
}
