
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * apikey: create, list, show, update, revoke, rotate and verify the API
 * keys that ngx_http_apikey_module reads from Redis (docs/redis-schema.md,
 * docs/cli.md).  One run of the tool: what the options said, the Redis
 * store, the exit codes.
 */


#ifndef _APIKEY_H_INCLUDED_
#define _APIKEY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "apikey_redis.h"
#include "apikey_store.h"


#define APIKEY_OK                0
#define APIKEY_ERROR             1
#define APIKEY_USAGE             2


/* the options, in the order of the long options table */
enum {
    APIKEY_OPT_REDIS = 0,
    APIKEY_OPT_DB,
    APIKEY_OPT_USER,
    APIKEY_OPT_PASSWORD_FILE,
    APIKEY_OPT_REDIS_PREFIX,
    APIKEY_OPT_HASH_SECRET_FILE,
    APIKEY_OPT_TLS,
    APIKEY_OPT_TLS_CA,
    APIKEY_OPT_TLS_CERT,
    APIKEY_OPT_TLS_KEY,
    APIKEY_OPT_TLS_NAME,
    APIKEY_OPT_SENTINEL,
    APIKEY_OPT_SENTINEL_MASTER,
    APIKEY_OPT_SENTINEL_USER,
    APIKEY_OPT_SENTINEL_PASSWORD_FILE,
    APIKEY_OPT_CLUSTER,
    APIKEY_OPT_HELP,
    APIKEY_OPT_NAME,
    APIKEY_OPT_SCOPE,
    APIKEY_OPT_ORG,
    APIKEY_OPT_EXPIRES_IN,
    APIKEY_OPT_EXPIRES_AT,
    APIKEY_OPT_NO_EXPIRY,
    APIKEY_OPT_PREFIX,
    APIKEY_OPT_GRACE,
    APIKEY_OPT_JSON,
    APIKEY_OPT_RATE,
    APIKEY_OPT_BURST,
    APIKEY_OPT_CIDRS,
    APIKEY_OPT_FIELD
};

#define APIKEY_O(opt)            (1U << APIKEY_OPT_ ## opt)

#define APIKEY_TLS_FILES                                                     \
    (APIKEY_O(TLS_CA) | APIKEY_O(TLS_CERT) | APIKEY_O(TLS_KEY)               \
     | APIKEY_O(TLS_NAME))

#define APIKEY_SENTINELS                                                     \
    (APIKEY_O(SENTINEL) | APIKEY_O(SENTINEL_MASTER)                          \
     | APIKEY_O(SENTINEL_USER) | APIKEY_O(SENTINEL_PASSWORD_FILE))

#define APIKEY_EXPIRY                                                        \
    (APIKEY_O(EXPIRES_IN) | APIKEY_O(EXPIRES_AT) | APIKEY_O(NO_EXPIRY))


typedef struct {
    apikey_redis_conf_t    redis;
    const char            *password_file;
    const char            *sentinel_password_file;
    const char            *secret_file;
    char                  *secret;
    size_t                 secret_len;

    const char            *arg;
    const char            *name;
    const char            *org;
    const char            *prefix;
    char                  *scopes;       /* space-separated, or NULL */
    const char            *rate;         /* "" removes it */
    const char            *burst;        /* "" removes it */

    /* --cidrs and --field, as the record will hold them */
    apikey_record_t        extra;

    int64_t                expires_at;
    int64_t                grace;
    unsigned               options;

    int64_t                now;
    EVP_MD                *md;
    apikey_store_t         store;
} apikey_cli_t;


typedef int (*apikey_handler_pt)(apikey_cli_t *cli);

typedef struct {
    const char            *name;
    apikey_handler_pt      handler;
    unsigned               options;
    const char            *arg;
} apikey_command_t;


/* "apikey: <message>" on stderr; returns APIKEY_ERROR */
int apikey_fail(const char *fmt, ...);


#endif /* _APIKEY_H_INCLUDED_ */
