
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apikey_redis.h"
#include "apikey_tx.h"


void
apikey_tx_begin(apikey_tx_t *tx, redisContext *ctx, char *err)
{
    memset(tx, 0, sizeof(apikey_tx_t));

    tx->ctx = ctx;
    tx->err = err;

    if (apikey_redis_append(ctx, "MULTI", NULL) != 0) {
        tx->failed = 1;
    }
}


size_t
apikey_tx_queue(apikey_tx_t *tx, ...)
{
    int      rc;
    va_list  args;

    va_start(args, tx);
    rc = apikey_redis_vappend(tx->ctx, args);
    va_end(args);

    if (rc != 0) {
        tx->failed = 1;
    }

    return tx->n++;
}


int
apikey_tx_exec(apikey_tx_t *tx)
{
    int          rc;
    size_t       i;
    char         err[APIKEY_ERR_LEN];
    redisReply  *reply;

    if (apikey_redis_append(tx->ctx, "EXEC", NULL) != 0) {
        tx->failed = 1;
    }

    rc = APIKEY_TX_DONE;

    if (tx->failed) {
        snprintf(tx->err, APIKEY_ERR_LEN, "cannot send a command to Redis");
        rc = APIKEY_TX_FAILED;
    }

    /* MULTI, the queued commands, EXEC */

    for (i = 0; i < tx->n + 2; i++) {
        reply = apikey_redis_read(tx->ctx, err);

        if (reply == NULL) {
            if (rc == APIKEY_TX_DONE) {
                memcpy(tx->err, err, APIKEY_ERR_LEN);
                rc = APIKEY_TX_FAILED;
            }

            if (tx->ctx->err) {
                break;
            }

            continue;
        }

        if (i == tx->n + 1 && rc == APIKEY_TX_DONE) {

            if (reply->type == REDIS_REPLY_NIL) {
                rc = APIKEY_TX_CHANGED;

            } else if (reply->type != REDIS_REPLY_ARRAY) {
                snprintf(tx->err, APIKEY_ERR_LEN,
                         "Redis: unexpected reply to EXEC");
                rc = APIKEY_TX_FAILED;

            } else {
                tx->reply = reply;
                reply = NULL;

                for (i = 0; i < tx->reply->elements; i++) {
                    if (tx->reply->element[i]->type == REDIS_REPLY_ERROR) {
                        snprintf(tx->err, APIKEY_ERR_LEN, "Redis: %s",
                                 tx->reply->element[i]->str);
                        rc = APIKEY_TX_PARTIAL;
                        break;
                    }
                }

                break;
            }
        }

        if (reply) {
            freeReplyObject(reply);
        }
    }

    return rc;
}


int
apikey_tx_ok(apikey_tx_t *tx, size_t i)
{
    return tx->reply != NULL
           && tx->reply->type == REDIS_REPLY_ARRAY
           && i < tx->reply->elements
           && tx->reply->element[i]->type != REDIS_REPLY_ERROR;
}


void
apikey_tx_end(apikey_tx_t *tx)
{
    if (tx->reply) {
        freeReplyObject(tx->reply);
        tx->reply = NULL;
    }
}
