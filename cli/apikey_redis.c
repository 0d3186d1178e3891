
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/crypto.h>

#include "apikey_redis.h"


#define APIKEY_REDIS_ARGS       64
#define APIKEY_FILE_MAX         65536

/* seconds; a list of many keys is one pipelined round trip per stage */
#define APIKEY_CONNECT_TIMEOUT  3
#define APIKEY_COMMAND_TIMEOUT  10


int
apikey_redis_addr(apikey_redis_conf_t *rc, const char *addr, char *err)
{
    long         port;
    char        *end;
    size_t       len;
    const char  *colon;

    rc->addr = addr;
    rc->host = NULL;
    rc->path = NULL;
    rc->port = 6379;

    if (strncmp(addr, "unix:", 5) == 0) {

        if (addr[5] == '\0') {
            snprintf(err, APIKEY_ERR_LEN,
                     "invalid Redis address \"%s\": no socket path", addr);
            return -1;
        }

        rc->path = strdup(addr + 5);
        return rc->path ? 0 : -1;
    }

    if (addr[0] == '[') {
        colon = strchr(addr, ']');

        if (colon == NULL || colon == addr + 1
            || (colon[1] != '\0' && colon[1] != ':'))
        {
            goto invalid;
        }

        len = colon - addr - 1;
        addr++;
        colon = (colon[1] == ':') ? colon + 1 : NULL;

    } else {
        colon = strrchr(addr, ':');

        if (colon && strchr(addr, ':') != colon) {
            /* a bare IPv6 address is ambiguous: "[::1]:6379" */
            goto invalid;
        }

        len = colon ? (size_t) (colon - addr) : strlen(addr);
    }

    if (len == 0) {
        goto invalid;
    }

    if (colon) {
        errno = 0;
        port = strtol(colon + 1, &end, 10);

        if (colon[1] < '0' || colon[1] > '9' || *end != '\0'
            || errno != 0 || port < 1 || port > 65535)
        {
            goto invalid;
        }

        rc->port = (int) port;
    }

    rc->host = strndup(addr, len);

    return rc->host ? 0 : -1;

invalid:

    snprintf(err, APIKEY_ERR_LEN,
             "invalid Redis address \"%s\" (host:port, [v6]:port or "
             "unix:/path)", rc->addr);

    return -1;
}


int
apikey_file_read(const char *path, char **data, size_t *len, char *err)
{
    FILE   *f;
    char   *buf;
    size_t  n;

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "cannot open \"%s\": %s",
                 path, strerror(errno));
        return -1;
    }

    buf = malloc(APIKEY_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, APIKEY_ERR_LEN, "out of memory");
        return -1;
    }

    n = fread(buf, 1, APIKEY_FILE_MAX + 1, f);

    if (ferror(f)) {
        snprintf(err, APIKEY_ERR_LEN, "cannot read \"%s\": %s",
                 path, strerror(errno));
        goto failed;
    }

    if (n > APIKEY_FILE_MAX) {
        snprintf(err, APIKEY_ERR_LEN,
                 "\"%s\" is larger than %d bytes", path,
                 APIKEY_FILE_MAX);
        goto failed;
    }

    fclose(f);

    if (n > 0 && buf[n - 1] == '\n') {
        n--;
    }

    buf[n] = '\0';

    *data = buf;
    *len = n;

    return 0;

failed:

    fclose(f);
    apikey_file_free(buf, APIKEY_FILE_MAX + 1);

    return -1;
}


void
apikey_file_free(char *data, size_t len)
{
    if (data) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
}


redisContext *
apikey_redis_connect(apikey_redis_conf_t *rc, char *err)
{
    char            db[32];
    redisReply     *reply;
    redisContext   *c;
    struct timeval  tv;

    tv.tv_sec = APIKEY_CONNECT_TIMEOUT;
    tv.tv_usec = 0;

    if (rc->path) {
        c = redisConnectUnixWithTimeout(rc->path, tv);

    } else {
        c = redisConnectWithTimeout(rc->host, rc->port, tv);
    }

    if (c == NULL || c->err) {
        snprintf(err, APIKEY_ERR_LEN,
                 "cannot connect to Redis at %s: %s", rc->addr,
                 c ? c->errstr : "out of memory");
        goto failed;
    }

    tv.tv_sec = APIKEY_COMMAND_TIMEOUT;

    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, APIKEY_ERR_LEN,
                 "cannot set a timeout on the Redis connection");
        goto failed;
    }

    if (rc->password) {
        if (rc->user) {
            reply = apikey_redis_command(c, err, "AUTH",
                                         rc->user, rc->password,
                                         NULL);
        } else {
            reply = apikey_redis_command(c, err, "AUTH", rc->password, NULL);
        }

        if (reply == NULL) {
            goto failed;
        }

        freeReplyObject(reply);
    }

    if (rc->db) {
        snprintf(db, sizeof(db), "%d", rc->db);

        reply = apikey_redis_command(c, err, "SELECT", db, NULL);
        if (reply == NULL) {
            goto failed;
        }

        freeReplyObject(reply);
    }

    return c;

failed:

    if (c) {
        redisFree(c);
    }

    return NULL;
}


int
apikey_redis_append(redisContext *c, ...)
{
    int      rc;
    va_list  args;

    va_start(args, c);
    rc = apikey_redis_vappend(c, args);
    va_end(args);

    return rc;
}


redisReply *
apikey_redis_read(redisContext *c, char *err)
{
    void        *p;
    redisReply  *reply;

    if (redisGetReply(c, &p) != REDIS_OK || p == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "Redis: %s",
                 c->err ? c->errstr : "no reply");
        return NULL;
    }

    reply = p;

    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, APIKEY_ERR_LEN, "Redis: %.*s",
                 (int) reply->len, reply->str);
        freeReplyObject(reply);
        return NULL;
    }

    return reply;
}


redisReply *
apikey_redis_command(redisContext *c, char *err, ...)
{
    int      rc;
    va_list  args;

    va_start(args, err);
    rc = apikey_redis_vappend(c, args);
    va_end(args);

    if (rc != 0) {
        snprintf(err, APIKEY_ERR_LEN, "Redis: %s",
                 c->err ? c->errstr : "cannot format a command");
        return NULL;
    }

    return apikey_redis_read(c, err);
}


int
apikey_redis_vappend(redisContext *c, va_list args)
{
    int          argc;
    size_t       argvlen[APIKEY_REDIS_ARGS];
    const char  *argv[APIKEY_REDIS_ARGS], *arg;

    for (argc = 0; (arg = va_arg(args, const char *)) != NULL; argc++) {

        if (argc == APIKEY_REDIS_ARGS) {
            return -1;
        }

        argv[argc] = arg;
        argvlen[argc] = strlen(arg);
    }

    if (redisAppendCommandArgv(c, argc, argv, argvlen) != REDIS_OK) {
        return -1;
    }

    return 0;
}
