
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A MULTI/EXEC transaction of the apikey tool.  Commands are pipelined;
 * EXEC is sent only when Redis queued every one of them, DISCARD
 * otherwise; EXEC's reply is kept, so that a caller learns which commands
 * ran, since Redis runs the rest of a transaction after one fails.
 */


#ifndef _APIKEY_TX_H_INCLUDED_
#define _APIKEY_TX_H_INCLUDED_


#include <stddef.h>

#include <hiredis/hiredis.h>

#include "apikey_redis.h"


/* the most strings of one command: a record's HSET with its fields */
#define APIKEY_TX_ARGS      96

/* what apikey_tx_exec() returns */
#define APIKEY_TX_DONE      0     /* every command ran without an error */
#define APIKEY_TX_CHANGED   1     /* a watched key changed: nothing ran */
#define APIKEY_TX_FAILED   -1     /* nothing ran (refused, I/O error) */
#define APIKEY_TX_PARTIAL  -2     /* it ran, some commands failed */


typedef struct {
    apikey_redis_t  *ctx;
    char            *err;         /* APIKEY_ERR_LEN bytes */
    redisReply      *reply;       /* EXEC's */
    size_t           n;           /* commands queued */
    unsigned         failed:1;
} apikey_tx_t;


/* sends MULTI (pipelined, as every command up to EXEC) */
void apikey_tx_begin(apikey_tx_t *tx, apikey_redis_t *ctx, char *err);

/* queues one command, strings up to NULL; returns its index */
size_t apikey_tx_queue(apikey_tx_t *tx, ...);

/* queues one command of argc arguments; returns its index */
size_t apikey_tx_queue_argv(apikey_tx_t *tx, int argc, const char **argv,
    const size_t *argvlen);

/*
 * Reads what Redis said to each queued command, then sends EXEC, or
 * DISCARD if any was refused.  The message of a failure is in tx->err.
 */
int apikey_tx_exec(apikey_tx_t *tx);

/* 1 if command i ran without an error (after APIKEY_TX_DONE or PARTIAL) */
int apikey_tx_ok(apikey_tx_t *tx, size_t i);

void apikey_tx_end(apikey_tx_t *tx);


#endif /* _APIKEY_TX_H_INCLUDED_ */
