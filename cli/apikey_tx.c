
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apikey_redis.h"
#include "apikey_tx.h"


static int apikey_tx_send(apikey_tx_t *tx, const char *command);


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


size_t
apikey_tx_queue_argv(apikey_tx_t *tx, int argc, const char **argv)
{
    int     i;
    size_t  argvlen[APIKEY_TX_ARGS];

    if (argc > APIKEY_TX_ARGS) {
        tx->failed = 1;
        return tx->n++;
    }

    for (i = 0; i < argc; i++) {
        argvlen[i] = strlen(argv[i]);
    }

    if (redisAppendCommandArgv(tx->ctx, argc, argv, argvlen) != REDIS_OK) {
        tx->failed = 1;
    }

    return tx->n++;
}


int
apikey_tx_exec(apikey_tx_t *tx)
{
    int          refused;
    size_t       i;
    char         err[APIKEY_ERR_LEN];
    redisReply  *reply;

    if (tx->failed) {
        snprintf(tx->err, APIKEY_ERR_LEN, "cannot send a command to Redis");

        /* what was appended is never sent: the context is dropped */
        return APIKEY_TX_FAILED;
    }

    /* MULTI's "OK", then "QUEUED" or an error for each command */

    refused = 0;

    for (i = 0; i < tx->n + 1; i++) {
        reply = apikey_redis_read(tx->ctx, err);

        if (reply == NULL) {
            if (tx->ctx->err) {
                memcpy(tx->err, err, APIKEY_ERR_LEN);
                return APIKEY_TX_FAILED;
            }

            if (!refused) {
                memcpy(tx->err, err, APIKEY_ERR_LEN);
                refused = 1;
            }

            continue;
        }

        freeReplyObject(reply);
    }

    if (refused) {
        if (apikey_tx_send(tx, "DISCARD") != 0) {
            return APIKEY_TX_FAILED;
        }

        return APIKEY_TX_FAILED;
    }

    if (apikey_redis_append(tx->ctx, "EXEC", NULL) != 0) {
        snprintf(tx->err, APIKEY_ERR_LEN, "cannot send a command to Redis");
        return APIKEY_TX_FAILED;
    }

    tx->reply = apikey_redis_read(tx->ctx, tx->err);

    if (tx->reply == NULL) {
        return APIKEY_TX_FAILED;
    }

    if (tx->reply->type == REDIS_REPLY_NIL) {
        return APIKEY_TX_CHANGED;
    }

    if (tx->reply->type != REDIS_REPLY_ARRAY || tx->reply->elements != tx->n)
    {
        snprintf(tx->err, APIKEY_ERR_LEN, "Redis: unexpected reply to EXEC");
        freeReplyObject(tx->reply);
        tx->reply = NULL;
        return APIKEY_TX_FAILED;
    }

    for (i = 0; i < tx->n; i++) {
        reply = tx->reply->element[i];

        if (reply->type == REDIS_REPLY_ERROR) {
            snprintf(tx->err, APIKEY_ERR_LEN, "Redis: %.*s",
                     (int) reply->len, reply->str);
            return APIKEY_TX_PARTIAL;
        }
    }

    return APIKEY_TX_DONE;
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


/* a command outside the queue, such as DISCARD; its error is kept */

static int
apikey_tx_send(apikey_tx_t *tx, const char *command)
{
    char         err[APIKEY_ERR_LEN];
    redisReply  *reply;

    reply = apikey_redis_command(tx->ctx, err, command, NULL);

    if (reply == NULL) {
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}
