
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The apikey tool's Redis connection: address parsing, secrets read from
 * files, a synchronous hiredis context with timeouts, AUTH and SELECT, and
 * pipelined commands.
 */


#ifndef _APIKEY_REDIS_H_INCLUDED_
#define _APIKEY_REDIS_H_INCLUDED_


#include <stdarg.h>
#include <stddef.h>

#include <hiredis/hiredis.h>


#define APIKEY_ERR_LEN        512
#define APIKEY_REDIS_DEFAULT  "127.0.0.1:6379"


typedef struct {
    const char  *addr;        /* as given, for messages */
    char        *host;        /* NULL for a unix socket */
    char        *path;
    int          port;
    int          db;
    const char  *user;
    char        *password;
    size_t       password_len;
} apikey_redis_conf_t;


/*
 * Parses "host:port", "host", "[v6addr]:port" or "unix:/path" into rc.
 * Returns 0, or -1 with a message in err.
 */
int apikey_redis_addr(apikey_redis_conf_t *rc, const char *addr, char *err);

/*
 * Reads a whole file into a malloc()ed buffer with a NUL after it, one
 * trailing newline stripped, as nginx's apikey_hash_secret_file does.
 * Returns 0, or -1 with a message in err.
 */
int apikey_file_read(const char *path, char **data, size_t *len, char *err);

/* frees and wipes what apikey_file_read() returned */
void apikey_file_free(char *data, size_t len);

/*
 * Connects with a timeout, sends AUTH and SELECT as configured.
 * Returns the context, or NULL with a message in err.
 */
redisContext *apikey_redis_connect(
    apikey_redis_conf_t *rc, char *err);

/* queues one command; the arguments are strings ending with NULL */
int apikey_redis_append(redisContext *c, ...);
int apikey_redis_vappend(redisContext *c, va_list args);

/*
 * Reads the next reply.  A Redis error reply is freed and returned as
 * NULL with its text in err, as is an I/O error.
 */
redisReply *apikey_redis_read(redisContext *c, char *err);

/* appends one command and reads its reply */
redisReply *apikey_redis_command(redisContext *c, char *err, ...);


#endif /* _APIKEY_REDIS_H_INCLUDED_ */
