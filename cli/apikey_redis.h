
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The apikey tool's Redis connection: address parsing, secrets read from
 * files, one blocking connection with timeouts over TCP, a unix socket or
 * TLS (OpenSSL: hiredis 0.14 has none, so hiredis only formats commands
 * and parses replies), the primary found through Sentinel, AUTH and
 * SELECT, and pipelined commands.  On a Redis Cluster the same calls go
 * through apikey_cluster.c, which routes each command to its slot's node.
 */


#ifndef _APIKEY_REDIS_H_INCLUDED_
#define _APIKEY_REDIS_H_INCLUDED_


#include <stdarg.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include <hiredis/hiredis.h>


#define APIKEY_ERR_LEN        512
#define APIKEY_REDIS_DEFAULT  "127.0.0.1:6379"


typedef struct {
    const char    *addr;        /* as given, for messages */
    char          *host;        /* NULL for a unix socket */
    char          *path;
    int            port;
    int            db;
    unsigned       db_in_addr:1;
    unsigned       tls:1;
    const char    *user;
    char          *password;
    size_t         password_len;

    /* TLS, to the data nodes and the sentinels alike */
    const char    *tls_ca;      /* NULL: the system's CAs */
    const char    *tls_cert;
    const char    *tls_key;
    const char    *tls_name;    /* NULL: the host as written */
    SSL_CTX       *ssl;

    const char    *sentinels;   /* "host:port,host:port", or NULL */
    const char    *master;
    const char    *sentinel_user;
    char          *sentinel_password;
    size_t         sentinel_password_len;

    const char    *cluster;     /* seeds, "host:port,host:port", or NULL */
} apikey_redis_conf_t;


typedef struct apikey_cluster_s  apikey_cluster_t;


typedef struct {
    int            fd;
    SSL           *ssl;
    redisReader   *reader;
    char          *out;         /* formatted, not yet sent */
    size_t         out_len;
    size_t         out_size;
    int            err;         /* an I/O or protocol error: unusable */
    unsigned       anonymous:1; /* TLS without a client certificate */
    char           errstr[APIKEY_ERR_LEN];
    apikey_cluster_t  *cluster; /* a cluster's nodes, not a socket */
} apikey_redis_t;


/*
 * Parses "host:port", "host", "[v6addr]:port", "unix:/path" or
 * "redis[s]://host[:port][/db]" (rediss: TLS) into rc.
 * Returns 0, or -1 with a message in err.
 */
int apikey_redis_addr(apikey_redis_conf_t *rc, const char *addr, char *err);

/*
 * Checks "host:port[,host:port...]" (port 26379 if left out) and keeps it
 * in rc.  Returns 0, or -1 with a message in err.
 */
int apikey_redis_sentinels(apikey_redis_conf_t *rc, const char *list,
    char *err);

/* checks "host:port[,host:port...]" (the ports may be left out) */
int apikey_redis_addr_list(const char *list);

/*
 * Parses len bytes of "host:port", "host" or "[v6addr]:port" into a
 * malloc()ed host; *port is left as it is when the address has none.
 */
int apikey_redis_host_port(const char *addr, size_t len, char **host,
    int *port);

/*
 * Reads a whole file into a malloc()ed buffer with a NUL after it, one
 * trailing newline stripped, as nginx's apikey_hash_secret_file does.
 * Returns 0, or -1 with a message in err.
 */
int apikey_file_read(const char *path, char **data, size_t *len, char *err);

/* frees and wipes what apikey_file_read() returned */
void apikey_file_free(char *data, size_t len);

/* frees what apikey_redis_addr() and the connections kept in rc */
void apikey_redis_conf_free(apikey_redis_conf_t *rc);

/*
 * Connects to the address, or to the primary that the sentinels name
 * (confirmed by ROLE), with timeouts, TLS, AUTH and SELECT as configured.
 * Returns the connection, or NULL with a message in err.
 */
apikey_redis_t *apikey_redis_connect(apikey_redis_conf_t *rc, char *err);

/*
 * A connection to one node of the configuration (TLS and AUTH as
 * configured, never SELECT), or NULL with a message in err.
 */
apikey_redis_t *apikey_redis_node(apikey_redis_conf_t *rc, const char *host,
    int port, char *err);

/* a connection on a socket already connected, as a plain one */
apikey_redis_t *apikey_redis_fd(int fd, char *err);

void apikey_redis_free(apikey_redis_t *c);

/* queues one command; the arguments are strings ending with NULL */
int apikey_redis_append(apikey_redis_t *c, ...);
int apikey_redis_vappend(apikey_redis_t *c, va_list args);
int apikey_redis_append_argv(apikey_redis_t *c, int argc, const char **argv,
    const size_t *argvlen);

/* queues one command that hiredis formatted */
int apikey_redis_append_raw(apikey_redis_t *c, const char *cmd, size_t len);

/* sends what was queued; returns 0, or -1 with c->err set */
int apikey_redis_flush(apikey_redis_t *c);

/*
 * Sends what was queued and reads the next reply.  A Redis error reply is
 * freed and returned as NULL with its text in err, as is an I/O error.
 */
redisReply *apikey_redis_read(apikey_redis_t *c, char *err);

/* appends one command and reads its reply */
redisReply *apikey_redis_command(apikey_redis_t *c, char *err, ...);


#endif /* _APIKEY_REDIS_H_INCLUDED_ */
