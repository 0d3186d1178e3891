
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_cidr.h"
#include "ngx_http_apikey_record.h"


static ngx_int_t ngx_http_apikey_record_string(ngx_pool_t *pool,
    redisReply *field, ngx_str_t *value);
static ngx_int_t ngx_http_apikey_record_nets(ngx_pool_t *pool,
    ngx_http_apikey_record_t *record, redisReply *cidrs);
static void ngx_http_apikey_record_rate(ngx_http_apikey_record_t *record,
    redisReply *rate, redisReply *burst);


/*
 * NGX_OK: a key record; NGX_DECLINED: no such key, or a record that is
 * plainly not a key (no id, a broken expiry); NGX_ERROR: a reply that does
 * not answer the command (an error, a wrong type), or no memory.
 */

ngx_int_t
ngx_http_apikey_record(ngx_pool_t *pool, redisReply *reply,
    ngx_uint_t nfields, ngx_http_apikey_record_t *record, ngx_log_t *log)
{
    ngx_str_t    expires, revoked;
    ngx_uint_t   i;
    redisReply  *field;

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "apikey: redis answered the lookup with an error: %*s",
                      (size_t) ngx_min(reply->len, 128), reply->str);
        return NGX_ERROR;
    }

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != NGX_HTTP_APIKEY_RECORD_NFIELDS + nfields)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "apikey: redis answered the lookup with a reply of "
                      "type %d and %uz elements", reply->type,
                      (size_t) reply->elements);
        return NGX_ERROR;
    }

    for (i = 0; i < reply->elements; i++) {
        field = reply->element[i];

        if (field->type != REDIS_REPLY_STRING
            && field->type != REDIS_REPLY_NIL)
        {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "apikey: redis answered the lookup with a field "
                          "of type %d", field->type);
            return NGX_ERROR;
        }
    }

    ngx_memzero(record, sizeof(ngx_http_apikey_record_t));

    if (reply->element[0]->type == REDIS_REPLY_NIL
        || reply->element[0]->len == 0)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_apikey_record_string(pool, reply->element[0], &record->id)
            != NGX_OK
        || ngx_http_apikey_record_string(pool, reply->element[1],
                                         &record->name)
           != NGX_OK
        || ngx_http_apikey_record_string(pool, reply->element[2],
                                         &record->org)
           != NGX_OK
        || ngx_http_apikey_record_string(pool, reply->element[3],
                                         &record->scopes)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    expires.data = (u_char *) reply->element[4]->str;
    expires.len = reply->element[4]->type == REDIS_REPLY_STRING
                  ? reply->element[4]->len : 0;

    if (expires.len) {
        record->expires_at = ngx_atotm(expires.data, expires.len);

        if (record->expires_at == NGX_ERROR) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "apikey: key \"%V\" has an invalid expires_at",
                          &record->id);
            return NGX_DECLINED;
        }
    }

    revoked.data = (u_char *) reply->element[5]->str;
    revoked.len = reply->element[5]->type == REDIS_REPLY_STRING
                  ? reply->element[5]->len : 0;

    record->revoked = ngx_http_apikey_policy_revoked(revoked.data,
                                                     revoked.len);

    ngx_http_apikey_record_rate(record,
                                reply->element[NGX_HTTP_APIKEY_RECORD_RATE],
                                reply->element[NGX_HTTP_APIKEY_RECORD_BURST]);

    /* matched for each request, where the client address is known */

    field = reply->element[NGX_HTTP_APIKEY_RECORD_CIDRS];

    if (ngx_http_apikey_record_nets(pool, record, field) != NGX_OK) {
        return NGX_ERROR;
    }

    if (nfields == 0) {
        return NGX_OK;
    }

    record->fields = ngx_palloc(pool, nfields * sizeof(ngx_str_t));
    if (record->fields == NULL) {
        return NGX_ERROR;
    }

    record->nfields = nfields;

    for (i = 0; i < nfields; i++) {
        field = reply->element[NGX_HTTP_APIKEY_RECORD_NFIELDS + i];

        if (ngx_http_apikey_record_string(pool, field, &record->fields[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A malformed rate or burst is kept as such, not as "no limit": it makes
 * the key invalid, but only where apikey_rate_limit reads it.
 */

static void
ngx_http_apikey_record_rate(ngx_http_apikey_record_t *record,
    redisReply *rate, redisReply *burst)
{
    /* an empty field is an absent one, as for the other fields */

    if (rate->type == REDIS_REPLY_STRING && rate->len
        && ngx_http_apikey_rate_parse((u_char *) rate->str, rate->len,
                                      &record->rate)
           != 0)
    {
        record->rate.requests = 0;
        record->rate_invalid = 1;
    }

    if (burst->type == REDIS_REPLY_STRING && burst->len) {
        if (ngx_http_apikey_rate_burst((u_char *) burst->str, burst->len,
                                       &record->burst)
            == 0)
        {
            record->has_burst = 1;

        } else {
            record->rate_invalid = 1;
        }
    }
}


/*
 * The allowlist, parsed here once rather than for each request that uses
 * the record (and the cache keeps it parsed).  A malformed list is kept as
 * such: it makes the key invalid.
 */

static ngx_int_t
ngx_http_apikey_record_nets(ngx_pool_t *pool,
    ngx_http_apikey_record_t *record, redisReply *cidrs)
{
    int      n;
    size_t   words;

    /* an empty field is an absent one, as for the other fields */

    if (cidrs->type != REDIS_REPLY_STRING || cidrs->len == 0) {
        return NGX_OK;
    }

    words = ngx_http_apikey_cidr_count((u_char *) cidrs->str, cidrs->len);

    if (words == 0) {
        record->cidrs_invalid = 1;
        return NGX_OK;
    }

    record->nets.data = ngx_pnalloc(pool,
                                    words * sizeof(ngx_http_apikey_cidr_t));
    if (record->nets.data == NULL) {
        return NGX_ERROR;
    }

    n = ngx_http_apikey_cidr_list((u_char *) cidrs->str, cidrs->len,
                                  (ngx_http_apikey_cidr_t *) record->nets.data);

    if (n < 0) {
        ngx_str_null(&record->nets);
        record->cidrs_invalid = 1;
        return NGX_OK;
    }

    record->nets.len = n * sizeof(ngx_http_apikey_cidr_t);

    return NGX_OK;
}


/*
 * An apikey_record_fields name, which must not be a field the module
 * reads itself.  NULL, or what is wrong with it.
 */

char *
ngx_http_apikey_record_field_name(ngx_str_t *name)
{
    ngx_uint_t  i;

    static const char  *fixed[] = { NGX_HTTP_APIKEY_RECORD_FIELDS };

    if (!ngx_http_apikey_policy_field_name(name->data, name->len)) {
        return "must be 1 to 64 lowercase letters, digits or underscores";
    }

    for (i = 0; i < NGX_HTTP_APIKEY_RECORD_NFIELDS; i++) {
        if (name->len == ngx_strlen(fixed[i])
            && ngx_strncmp(name->data, fixed[i], name->len) == 0)
        {
            return "is a field the module reads itself";
        }
    }

    return NULL;
}


/* a record in one block of pool memory: a waiter's own copy */

ngx_int_t
ngx_http_apikey_record_copy(ngx_pool_t *pool, ngx_http_apikey_record_t *dst,
    ngx_http_apikey_record_t *src)
{
    u_char      *p;
    size_t       size;
    ngx_str_t   *from[5], *to[5];
    ngx_uint_t   i;

    from[0] = &src->id;
    from[1] = &src->name;
    from[2] = &src->org;
    from[3] = &src->scopes;
    from[4] = &src->nets;

    to[0] = &dst->id;
    to[1] = &dst->name;
    to[2] = &dst->org;
    to[3] = &dst->scopes;
    to[4] = &dst->nets;

    size = src->nfields * sizeof(ngx_str_t);

    for (i = 0; i < 5; i++) {
        size += from[i]->len;
    }

    for (i = 0; i < src->nfields; i++) {
        size += src->fields[i].len;
    }

    /* the fields' array first, where the block is aligned */

    p = ngx_palloc(pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    dst->fields = (ngx_str_t *) p;
    dst->nfields = src->nfields;
    p += src->nfields * sizeof(ngx_str_t);

    for (i = 0; i < 5; i++) {
        to[i]->data = p;
        to[i]->len = from[i]->len;
        p = ngx_cpymem(p, from[i]->data, from[i]->len);
    }

    for (i = 0; i < src->nfields; i++) {
        dst->fields[i].data = p;
        dst->fields[i].len = src->fields[i].len;
        p = ngx_cpymem(p, src->fields[i].data, src->fields[i].len);
    }

    dst->expires_at = src->expires_at;
    dst->revoked = src->revoked;

    dst->rate = src->rate;
    dst->burst = src->burst;
    dst->has_burst = src->has_burst;
    dst->rate_invalid = src->rate_invalid;
    dst->cidrs_invalid = src->cidrs_invalid;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_record_string(ngx_pool_t *pool, redisReply *field,
    ngx_str_t *value)
{
    u_char  *p, *last;

    if (field->type == REDIS_REPLY_NIL || field->len == 0) {
        ngx_str_null(value);
        return NGX_OK;
    }

    value->data = ngx_pnalloc(pool, field->len);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    value->len = field->len;

    /*
     * The values end up in upstream request headers and logs: control
     * characters would split a header or forge a log line.
     */

    last = ngx_cpymem(value->data, field->str, field->len);

    for (p = value->data; p < last; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }

    return NGX_OK;
}
