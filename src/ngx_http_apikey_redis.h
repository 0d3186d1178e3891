
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A Redis client owned by nginx's event loop: nginx connects, sends,
 * reads and times out; hiredis only formats commands and parses replies.
 */


#ifndef _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_
#define _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include <hiredis/hiredis.h>


/* no reply the module asks for comes near this; a larger one is hostile */
#define NGX_HTTP_APIKEY_REDIS_REPLY_MAX     65536
#define NGX_HTTP_APIKEY_REDIS_ELEMENTS_MAX  64
#define NGX_HTTP_APIKEY_REDIS_IDLE_TIMEOUT  60000
#define NGX_HTTP_APIKEY_REDIS_DEFAULT_PORT  6379


typedef struct ngx_http_apikey_redis_query_s  ngx_http_apikey_redis_query_t;
typedef struct ngx_http_apikey_redis_conn_s   ngx_http_apikey_redis_conn_t;

/* reply is NULL when the query failed; the failure is already logged */
typedef void (*ngx_http_apikey_redis_handler_pt)(
    ngx_http_apikey_redis_query_t *q, redisReply *reply);


typedef struct {
    ngx_str_t                          url;
    ngx_addr_t                        *addrs;
    ngx_uint_t                         naddrs;
    ngx_uint_t                         next;     /* round robin */

    ngx_uint_t                         db;
    ngx_str_t                          user;
    ngx_str_t                          password;

    /* AUTH and SELECT, sent first on every new connection */
    ngx_str_t                          init;
    ngx_uint_t                         ninit;

    /* per worker */
    ngx_queue_t                        idle;
    ngx_uint_t                         nidle;
} ngx_http_apikey_redis_server_t;


struct ngx_http_apikey_redis_query_s {
    ngx_http_apikey_redis_server_t    *server;
    ngx_msec_t                         timeout;
    ngx_uint_t                         keepalive;

    ngx_str_t                          command;

    /*
     * If set, the command ends with PING <nonce>, whose echo must follow
     * the reply: a stray reply cannot pass for this one.
     */
    ngx_str_t                          nonce;

    ngx_http_apikey_redis_handler_pt   handler;
    void                              *data;
    ngx_log_t                         *log;

    ngx_http_apikey_redis_conn_t      *conn;
};


ngx_http_apikey_redis_server_t *ngx_http_apikey_redis_server(ngx_conf_t *cf,
    ngx_array_t *servers, ngx_str_t *args, ngx_uint_t nargs);
ngx_int_t ngx_http_apikey_redis_format(ngx_pool_t *pool, ngx_str_t *out,
    int argc, const char **argv, const size_t *argvlen);

redisReader *ngx_http_apikey_redis_reader(ngx_uint_t elements);
ngx_int_t ngx_http_apikey_redis_query(ngx_http_apikey_redis_query_t *q);
void ngx_http_apikey_redis_cancel(ngx_http_apikey_redis_query_t *q);
void ngx_http_apikey_redis_log(ngx_http_apikey_redis_query_t *q,
    ngx_log_t *log);
ngx_int_t ngx_http_apikey_redis_forget(ngx_http_apikey_redis_server_t *server,
    u_char *cmd, size_t len);


#endif /* _NGX_HTTP_APIKEY_REDIS_H_INCLUDED_ */
