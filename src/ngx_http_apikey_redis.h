
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The module's one Redis client, owned by nginx's event loop: nginx
 * connects, sends, reads and times out; hiredis only formats commands and
 * parses replies.  A server is a set of nodes; a connection goes to the
 * node the router chooses (the first "server" that works, or the primary
 * the sentinels named and ROLE confirmed: ngx_http_apikey_sentinel.c; on
 * a Redis Cluster, the primary of the key's slot: ..._apikey_cluster.c),
 * sends AUTH and SELECT first and checks their replies, caps what a reply
 * may cost, and hands every further reply to its user: queries (key
 * lookups, pipelined on a few connections per worker and server, their
 * replies matched in order; waiting while no primary is confirmed) or a
 * long-lived user such as the tracking subscription, whose connections
 * close when the primary changes.
 */


#ifndef _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_
#define _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include <hiredis/hiredis.h>


/* no reply a query asks for comes near this; a larger one is hostile */
#define NGX_HTTP_APIKEY_REDIS_REPLY_MAX     65536
#define NGX_HTTP_APIKEY_REDIS_ELEMENTS_MAX  64
#define NGX_HTTP_APIKEY_REDIS_IDLE_TIMEOUT  60000
#define NGX_HTTP_APIKEY_REDIS_DEFAULT_PORT  6379
#define NGX_HTTP_APIKEY_REDIS_NONCE_MAX     16

/* the roles of a server's nodes; only primaries hold data we read now */
#define NGX_HTTP_APIKEY_REDIS_PRIMARY       1
#define NGX_HTTP_APIKEY_REDIS_SENTINEL      2
#define NGX_HTTP_APIKEY_REDIS_SEED          3


typedef struct ngx_http_apikey_redis_query_s  ngx_http_apikey_redis_query_t;
typedef struct ngx_http_apikey_redis_conn_s   ngx_http_apikey_redis_conn_t;
typedef struct ngx_http_apikey_redis_cmd_s    ngx_http_apikey_redis_cmd_t;
typedef struct ngx_http_apikey_sentinel_s     ngx_http_apikey_sentinel_t;
typedef struct ngx_http_apikey_cluster_s      ngx_http_apikey_cluster_t;

/* reply is NULL when the query failed; the failure is already logged */
typedef void (*ngx_http_apikey_redis_handler_pt)(
    ngx_http_apikey_redis_query_t *q, redisReply *reply);


typedef struct {
    ngx_addr_t                        *addr;
    ngx_uint_t                         role;

    /* "host:port" for logs; the host, NUL-terminated, for TLS */
    ngx_str_t                          name;
    ngx_str_t                          host;
} ngx_http_apikey_redis_node_t;


typedef struct {
    ngx_str_t                          url;
    ngx_uint_t                         index;     /* in the configuration */

    /* the apikey_redis_upstream block that made it, if any */
    ngx_str_t                          name;

#if (NGX_HTTP_SSL)
    /*
     * TLS to every node; a session is resumed by this block's only; the
     * name verified is tls_name if set, else the node's host
     */
    ngx_ssl_t                         *ssl;
    ngx_str_t                          tls_name;
    ngx_flag_t                         tls_verify;
    ngx_ssl_session_t                 *session;
#endif

    /* the addresses the configuration resolved to */
    ngx_addr_t                        *addrs;
    ngx_uint_t                         naddrs;

    /*
     * where connections go: the "server" nodes in order, from the first
     * one that works; or the primary the sentinels name, once confirmed
     */
    ngx_http_apikey_redis_node_t      *nodes;
    ngx_uint_t                         nnodes;
    ngx_uint_t                         next;

    ngx_http_apikey_redis_node_t      *sentinels;
    ngx_uint_t                         nsentinels;
    ngx_str_t                          master;

    /* AUTH sent first to a sentinel */
    ngx_str_t                          sentinel_init;
    ngx_uint_t                         sentinel_ninit;

    /* a Redis Cluster's seeds, and per worker its slot map */
    ngx_http_apikey_redis_node_t      *seeds;
    ngx_uint_t                         nseeds;
    ngx_http_apikey_cluster_t         *cluster;

    /* per worker: the discovery, and the primary it confirmed */
    ngx_http_apikey_sentinel_t        *sentinel;
    ngx_http_apikey_redis_node_t      *primary;

    /* per worker: a new primary retires connections of older ones */
    ngx_uint_t                         generation;

    /* per worker: queries waiting for the primary to be confirmed */
    ngx_queue_t                        waiting;

    /* per worker: other users' connections to data nodes (tracking) */
    ngx_queue_t                        others;

    ngx_uint_t                         db;
    ngx_str_t                          user;
    ngx_str_t                          password;

    /* AUTH and SELECT, sent first on every new connection */
    ngx_str_t                          init;
    ngx_uint_t                         ninit;

    /* per worker: the connections of queries, busy ones first */
    ngx_queue_t                        conns;
    ngx_uint_t                         nconns;
    ngx_uint_t                         nidle;

    /*
     * where the worker shows other processes its counts of busy and idle
     * connections (apikey_metrics), or NULL
     */
    ngx_uint_t                        *shown;
} ngx_http_apikey_redis_server_t;


/*
 * Who reads a connection's replies.  reply() owns the reply and returns
 * NGX_OK to go on reading, or NGX_DONE when it closed or handed on the
 * connection.  error() must close the connection (or hand it on); err is
 * NULL when nginx closes it on shutdown.
 */

typedef struct {
    ngx_int_t                        (*reply)(
                                         ngx_http_apikey_redis_conn_t *conn,
                                         redisReply *reply);
    void                             (*error)(
                                         ngx_http_apikey_redis_conn_t *conn,
                                         char *err);

    /* what one reply may cost: bytes, and elements of one array */
    size_t                             size;
    ngx_uint_t                         elements;
} ngx_http_apikey_redis_user_t;


struct ngx_http_apikey_redis_conn_s {
    ngx_queue_t                        queue;       /* in server->conns */
    ngx_http_apikey_redis_server_t    *server;
    ngx_http_apikey_redis_node_t      *node;
    ngx_uint_t                         generation;
    ngx_peer_connection_t              peer;
    redisReader                       *reader;

    ngx_http_apikey_redis_user_t      *user;
    void                              *data;

    /* connecting and sending */
    ngx_msec_t                         timeout;

    u_char                            *start;       /* output */
    u_char                            *pos;
    u_char                            *last;
    u_char                            *end;

    /* bytes of the reply being read, and of all since it was last idle */
    size_t                             partial;
    size_t                             received;

    /* AUTH and SELECT replies still to check */
    ngx_uint_t                         init;

    /* queries: the commands whose replies are due, in order */
    ngx_queue_t                        pending;
    ngx_uint_t                         npending;
    ngx_uint_t                         keepalive;

    /* a record, until the echo of its nonce vouches for it */
    redisReply                        *reply;

    unsigned                           queued:1;    /* in server->conns */
    unsigned                           other:1;     /* in server->others */
    unsigned                           retired:1;   /* an old primary's */
    unsigned                           reused:1;
    unsigned                           tls:1;       /* handshake to do */
    unsigned                           timedout:1;
};


/*
 * A command sent for a query, or for nobody: it lives on its connection
 * until its replies came, even when its query was cancelled meanwhile.
 */

struct ngx_http_apikey_redis_cmd_s {
    ngx_queue_t                        queue;
    ngx_http_apikey_redis_conn_t      *conn;
    ngx_http_apikey_redis_query_t     *query;
    ngx_msec_t                         deadline;
    ngx_uint_t                         skip;        /* replies to drop */
    size_t                             nonce_len;
    u_char                             nonce[NGX_HTTP_APIKEY_REDIS_NONCE_MAX];
};


struct ngx_http_apikey_redis_query_s {
    ngx_http_apikey_redis_server_t    *server;
    ngx_msec_t                         timeout;
    ngx_uint_t                         keepalive;
    ngx_uint_t                         pipeline;

    ngx_str_t                          command;

    /*
     * How many replies the command brings, if more than one: a sequence
     * such as MULTI ... EXEC, whose last reply speaks for all; the
     * handler gets that one.
     */
    ngx_uint_t                         replies;

    /*
     * If set, the command ends with PING <nonce>, whose echo must follow
     * the reply: a stray reply cannot pass for this one.
     */
    ngx_str_t                          nonce;

    ngx_http_apikey_redis_handler_pt   handler;
    void                              *data;
    ngx_log_t                         *log;

    ngx_http_apikey_redis_cmd_t       *cmd;
    ngx_event_t                        timer;

    /* in server->waiting, while no primary is confirmed (or slot map) */
    ngx_queue_t                        queue;
    unsigned                           waiting:1;

    /*
     * on a cluster: the primary of the key's slot, or the node a -MOVED
     * or -ASK named (ASKING goes first then); redirections so far
     */
    ngx_http_apikey_redis_node_t      *node;
    ngx_uint_t                         redirects;
    unsigned                           asking:1;

    unsigned                           retried:1;

    /* the handler got no reply because time ran out */
    unsigned                           timedout:1;
};


ngx_http_apikey_redis_server_t *ngx_http_apikey_redis_server(ngx_conf_t *cf,
    ngx_array_t *servers, ngx_str_t *args, ngx_uint_t nargs, ngx_str_t *name);
char *ngx_http_apikey_redis_upstream(ngx_conf_t *cf, ngx_array_t *servers);
ngx_int_t ngx_http_apikey_redis_init_process(ngx_cycle_t *cycle,
    ngx_array_t *servers);
void ngx_http_apikey_redis_exit_process(ngx_array_t *servers);
ngx_int_t ngx_http_apikey_redis_format(ngx_pool_t *pool, ngx_str_t *out,
    int argc, const char **argv, const size_t *argvlen);
redisReader *ngx_http_apikey_redis_reader(ngx_uint_t elements);

ngx_http_apikey_redis_conn_t *ngx_http_apikey_redis_open(
    ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_user_t *user, void *data, ngx_msec_t timeout,
    ngx_log_t *log);
ngx_http_apikey_redis_conn_t *ngx_http_apikey_redis_connect(
    ngx_http_apikey_redis_server_t *server, ngx_http_apikey_redis_node_t *node,
    ngx_http_apikey_redis_user_t *user, void *data, ngx_msec_t timeout,
    ngx_log_t *log);
ngx_int_t ngx_http_apikey_redis_send(ngx_http_apikey_redis_conn_t *conn,
    u_char *cmd, size_t len);
ngx_int_t ngx_http_apikey_redis_command(ngx_http_apikey_redis_conn_t *conn,
    int argc, const char **argv, const size_t *argvlen);
void ngx_http_apikey_redis_close(ngx_http_apikey_redis_conn_t *conn);

ngx_int_t ngx_http_apikey_redis_query(ngx_http_apikey_redis_query_t *q);
void ngx_http_apikey_redis_cancel(ngx_http_apikey_redis_query_t *q);
void ngx_http_apikey_redis_log(ngx_http_apikey_redis_query_t *q,
    ngx_log_t *log);
ngx_int_t ngx_http_apikey_redis_forget(ngx_http_apikey_redis_query_t *q);

void ngx_http_apikey_redis_primary(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_node_t *node, ngx_uint_t retire);
void ngx_http_apikey_redis_release(ngx_http_apikey_redis_server_t *server);


#endif /* _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_ */
