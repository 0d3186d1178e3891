
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The reply to HMGET <key> id name org scopes expires_at revoked cidrs
 * rate burst [field ...], turned into a key record (docs/redis-schema.md).
 */


#ifndef _NGX_HTTP_APIKEY_RECORD_H_INCLUDED_
#define _NGX_HTTP_APIKEY_RECORD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey.h"


/* the fields in the order the lookup asks for them */
#define NGX_HTTP_APIKEY_RECORD_FIELDS                                        \
    "id", "name", "org", "scopes", "expires_at", "revoked",                 \
    "cidrs", "rate", "burst"
#define NGX_HTTP_APIKEY_RECORD_NFIELDS  9

#define NGX_HTTP_APIKEY_RECORD_CIDRS    6
#define NGX_HTTP_APIKEY_RECORD_RATE     7
#define NGX_HTTP_APIKEY_RECORD_BURST    8

/* apikey_record_fields: at most so many, asked for after the fixed ones */
#define NGX_HTTP_APIKEY_RECORD_EXTRA_MAX     32


ngx_int_t ngx_http_apikey_record(ngx_pool_t *pool, redisReply *reply,
    ngx_uint_t nfields, ngx_http_apikey_record_t *record, ngx_log_t *log);
char *ngx_http_apikey_record_field_name(ngx_str_t *name);
ngx_int_t ngx_http_apikey_record_copy(ngx_pool_t *pool,
    ngx_http_apikey_record_t *dst, ngx_http_apikey_record_t *src);


#endif /* _NGX_HTTP_APIKEY_RECORD_H_INCLUDED_ */
