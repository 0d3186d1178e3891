
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_last_used.h"


/*
 * A fixed table indexed by a hash of the key id: two ids that share a slot
 * only make each other's writes a little more frequent.
 */

#define NGX_HTTP_APIKEY_LAST_USED_SLOTS  4096


typedef struct {
    uint32_t                         id;
    ngx_msec_t                       written;
} ngx_http_apikey_last_used_slot_t;


static ngx_http_apikey_last_used_slot_t  *ngx_http_apikey_last_used_slots;


ngx_int_t
ngx_http_apikey_last_used_init(ngx_cycle_t *cycle)
{
    ngx_http_apikey_last_used_slots = ngx_calloc(
        NGX_HTTP_APIKEY_LAST_USED_SLOTS
        * sizeof(ngx_http_apikey_last_used_slot_t), cycle->log);

    if (ngx_http_apikey_last_used_slots == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_apikey_last_used(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_record_t *record)
{
    u_char                            *p;
    size_t                             argvlen[4];
    uint32_t                           id;
    ngx_str_t                          cmd, key, now;
    ngx_http_apikey_redis_query_t      q;
    const char                        *argv[4];
    ngx_http_apikey_last_used_slot_t  *slot;

    id = ngx_crc32_short(record->id.data, record->id.len);

    slot = &ngx_http_apikey_last_used_slots[id
                                            % NGX_HTTP_APIKEY_LAST_USED_SLOTS];

    if (slot->written
        && slot->id == id
        && ngx_current_msec - slot->written < alcf->last_used_interval)
    {
        return;
    }

    key.len = alcf->prefix.len + sizeof("last_used") - 1;
    key.data = ngx_pnalloc(r->pool, key.len + NGX_TIME_T_LEN);
    if (key.data == NULL) {
        return;
    }

    p = ngx_cpymem(key.data, alcf->prefix.data, alcf->prefix.len);
    p = ngx_cpymem(p, "last_used", sizeof("last_used") - 1);

    now.data = p;
    now.len = ngx_sprintf(p, "%T", ngx_time()) - p;

    argv[0] = "HSET";
    argvlen[0] = 4;
    argv[1] = (const char *) key.data;
    argvlen[1] = key.len;
    argv[2] = (const char *) record->id.data;
    argvlen[2] = record->id.len;
    argv[3] = (const char *) now.data;
    argvlen[3] = now.len;

    if (ngx_http_apikey_redis_format(r->pool, &cmd, 4, argv, argvlen)
        != NGX_OK)
    {
        return;
    }

    ngx_memzero(&q, sizeof(ngx_http_apikey_redis_query_t));

    q.server = alcf->redis;
    q.command = cmd;
    q.timeout = alcf->timeout;
    q.keepalive = alcf->keepalive;
    q.pipeline = alcf->pipeline;
    q.log = r->connection->log;

    if (ngx_http_apikey_redis_forget(&q) != NGX_OK) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "apikey: last use of key \"%V\" written", &record->id);

    slot->id = id;
    slot->written = ngx_current_msec;
}
