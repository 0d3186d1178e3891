
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * libFuzzer target: a Redis reply turned into a key record, as the module
 * does it: the bytes go through the module's redisReader (hiredis, with
 * arrays capped at NGX_HTTP_APIKEY_REDIS_ELEMENTS_MAX) in pieces, at most
 * NGX_HTTP_APIKEY_REDIS_REPLY_MAX of them as the connection reads, and
 * each reply through ngx_http_apikey_record().  Besides memory errors it
 * checks the record's promises: a key has an id, no value that goes into
 * a request header or a log line holds a control character, and the
 * allowlist is whole networks or marked malformed.
 *
 * Input: one byte for the size of the pieces fed to the reader (1 to
 * 256), then the bytes Redis sends.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"
#include "ngx_http_apikey_cidr.h"
#include "ngx_http_apikey_record.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void ngx_http_apikey_fuzz_nets(ngx_http_apikey_record_t *record);


static void
ngx_http_apikey_fuzz_clean(ngx_str_t *s)
{
    size_t  i;

    if (s->len && s->data == NULL) {
        abort();
    }

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < 0x20 || s->data[i] == 0x7f) {
            abort();
        }
    }
}


/* the parsed allowlist: networks of a family, with a prefix it allows */

static void
ngx_http_apikey_fuzz_nets(ngx_http_apikey_record_t *record)
{
    size_t                   i, n;
    ngx_http_apikey_cidr_t  *net;

    if (record->nets.len % sizeof(ngx_http_apikey_cidr_t) != 0
        || (record->cidrs_invalid && record->nets.len != 0))
    {
        abort();
    }

    n = record->nets.len / sizeof(ngx_http_apikey_cidr_t);
    net = (ngx_http_apikey_cidr_t *) record->nets.data;

    for (i = 0; i < n; i++) {
        if (!((net[i].family == 4 && net[i].prefix <= 32)
              || (net[i].family == 6 && net[i].prefix <= 128)))
        {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void                      *reply;
    size_t                     piece, n;
    ngx_int_t                  rc;
    ngx_log_t                  log;
    ngx_pool_t                *pool;
    redisReader               *reader;
    ngx_http_apikey_record_t   record;

    if (size == 0) {
        return 0;
    }

    piece = (size_t) data[0] + 1;
    data++;
    size--;

    if (size > NGX_HTTP_APIKEY_REDIS_REPLY_MAX) {
        size = NGX_HTTP_APIKEY_REDIS_REPLY_MAX;
    }

    ngx_memzero(&log, sizeof(ngx_log_t));
    log.log_level = NGX_LOG_DEBUG;

    pool = ngx_create_pool(1024, &log);
    reader = ngx_http_apikey_redis_reader(
                                     NGX_HTTP_APIKEY_REDIS_ELEMENTS_MAX);

    if (pool == NULL || reader == NULL) {
        abort();
    }

    while (size) {
        n = ngx_min(piece, size);

        if (redisReaderFeed(reader, (const char *) data, n) != REDIS_OK) {
            break;
        }

        data += n;
        size -= n;

        for ( ;; ) {
            reply = NULL;

            if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
                goto done;
            }

            if (reply == NULL) {
                break;
            }

            /* one apikey_record_fields name after the fixed fields */
            rc = ngx_http_apikey_record(pool, reply, 1, &record, &log);

            if (rc == NGX_OK) {
                if (record.id.len == 0) {
                    abort();
                }

                ngx_http_apikey_fuzz_clean(&record.id);
                ngx_http_apikey_fuzz_clean(&record.name);
                ngx_http_apikey_fuzz_clean(&record.org);
                ngx_http_apikey_fuzz_clean(&record.scopes);
                ngx_http_apikey_fuzz_nets(&record);

                if (record.nfields != 1) {
                    abort();
                }

                ngx_http_apikey_fuzz_clean(&record.fields[0]);

                if (record.expires_at < 0) {
                    abort();
                }

            } else if (rc != NGX_DECLINED && rc != NGX_ERROR) {
                abort();
            }

            freeReplyObject(reply);
        }
    }

done:

    redisReaderFree(reader);
    ngx_destroy_pool(pool);

    return 0;
}
