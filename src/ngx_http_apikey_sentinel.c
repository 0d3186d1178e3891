
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_apikey_sentinel.h"


/* a sentinel or a node that does not answer within this is passed over */
#define NGX_HTTP_APIKEY_SENTINEL_TIMEOUT  500

/* after every sentinel was asked, or a node denied being the primary */
#define NGX_HTTP_APIKEY_SENTINEL_RETRY    100

/* how often the subscription is checked */
#define NGX_HTTP_APIKEY_SENTINEL_PING     1000

#define NGX_HTTP_APIKEY_SENTINEL_ELEMENTS 8
#define NGX_HTTP_APIKEY_SENTINEL_SIZE     4096


/*
 * A worker's discovery for one block.  The primary's node is kept here,
 * and its address is rewritten when the sentinels name another one: the
 * connections to the old one are told apart by their generation.
 */

struct ngx_http_apikey_sentinel_s {
    ngx_http_apikey_redis_server_t    *server;
    ngx_log_t                          log;

    ngx_http_apikey_redis_node_t       node;
    ngx_addr_t                         addr;
    ngx_sockaddr_t                     sockaddr;
    u_char                             name[NGX_SOCKADDR_STRLEN];
    u_char                             host[NGX_SOCKADDR_STRLEN + 1];

    /* asking a sentinel, then the node it named */
    ngx_http_apikey_redis_conn_t      *ask;
    ngx_http_apikey_redis_conn_t      *role;
    ngx_uint_t                         next;
    ngx_uint_t                         tries;
    ngx_event_t                        timer;

    /* the subscription to +switch-master */
    ngx_http_apikey_redis_conn_t      *sub;
    ngx_uint_t                         sub_next;
    ngx_uint_t                         pings;
    ngx_event_t                        sub_timer;

    unsigned                           named:1;
    unsigned                           subscribed:1;

    /* the node named was said to deny; until another is named or confirms */
    unsigned                           denied:1;
};


static void ngx_http_apikey_sentinel_ask(ngx_http_apikey_sentinel_t *s);
static void ngx_http_apikey_sentinel_next(ngx_http_apikey_sentinel_t *s,
    char *err);
static ngx_int_t ngx_http_apikey_sentinel_ask_reply(
    ngx_http_apikey_redis_conn_t *conn, redisReply *reply);
static void ngx_http_apikey_sentinel_ask_error(
    ngx_http_apikey_redis_conn_t *conn, char *err);
static void ngx_http_apikey_sentinel_name(ngx_http_apikey_sentinel_t *s,
    u_char *ip, size_t ip_len, u_char *port, size_t port_len);
static void ngx_http_apikey_sentinel_confirm(ngx_http_apikey_sentinel_t *s);
static ngx_int_t ngx_http_apikey_sentinel_role_reply(
    ngx_http_apikey_redis_conn_t *conn, redisReply *reply);
static void ngx_http_apikey_sentinel_role_error(
    ngx_http_apikey_redis_conn_t *conn, char *err);
static void ngx_http_apikey_sentinel_denied(ngx_http_apikey_sentinel_t *s,
    char *err);
static void ngx_http_apikey_sentinel_timer(ngx_event_t *ev);
static void ngx_http_apikey_sentinel_subscribe(
    ngx_http_apikey_sentinel_t *s);
static ngx_int_t ngx_http_apikey_sentinel_sub_reply(
    ngx_http_apikey_redis_conn_t *conn, redisReply *reply);
static void ngx_http_apikey_sentinel_sub_error(
    ngx_http_apikey_redis_conn_t *conn, char *err);
static void ngx_http_apikey_sentinel_sub_down(ngx_http_apikey_sentinel_t *s,
    char *err);
static void ngx_http_apikey_sentinel_sub_timer(ngx_event_t *ev);
static ngx_int_t ngx_http_apikey_sentinel_switch(ngx_http_apikey_sentinel_t *s,
    redisReply *payload);
static void ngx_http_apikey_sentinel_close(
    ngx_http_apikey_redis_conn_t **conn);


static ngx_http_apikey_redis_user_t  ngx_http_apikey_sentinel_ask_user = {
    ngx_http_apikey_sentinel_ask_reply,
    ngx_http_apikey_sentinel_ask_error,
    NGX_HTTP_APIKEY_SENTINEL_SIZE,
    NGX_HTTP_APIKEY_SENTINEL_ELEMENTS
};


static ngx_http_apikey_redis_user_t  ngx_http_apikey_sentinel_role_user = {
    ngx_http_apikey_sentinel_role_reply,
    ngx_http_apikey_sentinel_role_error,
    NGX_HTTP_APIKEY_SENTINEL_SIZE,
    NGX_HTTP_APIKEY_SENTINEL_ELEMENTS
};


static ngx_http_apikey_redis_user_t  ngx_http_apikey_sentinel_sub_user = {
    ngx_http_apikey_sentinel_sub_reply,
    ngx_http_apikey_sentinel_sub_error,
    NGX_HTTP_APIKEY_SENTINEL_SIZE,
    NGX_HTTP_APIKEY_SENTINEL_ELEMENTS
};


/* the master's name, and AUTH for the sentinels (sentinel_auth) */

ngx_int_t
ngx_http_apikey_sentinel_conf(ngx_conf_t *cf,
    ngx_http_apikey_redis_server_t *server, ngx_str_t *master,
    ngx_str_t *user, ngx_str_t *password)
{
    size_t       argvlen[3];
    ngx_uint_t   n;
    const char  *argv[3];

    server->master = *master;

    if (password->len == 0) {
        return NGX_OK;
    }

    n = 0;

    argv[n] = "AUTH";
    argvlen[n++] = 4;

    if (user->len) {
        argv[n] = (const char *) user->data + 5;
        argvlen[n++] = user->len - 5;
    }

    argv[n] = (const char *) password->data + 9;
    argvlen[n++] = password->len - 9;

    if (ngx_http_apikey_redis_format(cf->pool, &server->sentinel_init, n,
                                     argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    server->sentinel_ninit = 1;

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_sentinel_start(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_server_t *server)
{
    ngx_http_apikey_sentinel_t  *s;

    s = ngx_pcalloc(cycle->pool, sizeof(ngx_http_apikey_sentinel_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    s->server = server;
    s->log = *cycle->log;

    s->node.addr = &s->addr;
    s->node.role = NGX_HTTP_APIKEY_REDIS_PRIMARY;
    s->node.name.data = s->name;
    s->node.host.data = s->host;
    s->addr.sockaddr = &s->sockaddr.sockaddr;

    s->timer.handler = ngx_http_apikey_sentinel_timer;
    s->timer.data = s;
    s->timer.log = &s->log;
    s->timer.cancelable = 1;

    s->sub_timer.handler = ngx_http_apikey_sentinel_sub_timer;
    s->sub_timer.data = s;
    s->sub_timer.log = &s->log;
    s->sub_timer.cancelable = 1;

    /* the workers do not all lean on the first sentinel */
    s->sub_next = ngx_worker;

    server->sentinel = s;

    ngx_time_update();

    ngx_http_apikey_sentinel_subscribe(s);
    ngx_http_apikey_sentinel_ask(s);

    return NGX_OK;
}


/*
 * The primary failed (a connection error, READONLY, LOADING): no lookup
 * goes to it until the sentinels named a primary again and it confirmed.
 */

void
ngx_http_apikey_sentinel_lost(ngx_http_apikey_redis_server_t *server,
    char *err)
{
    ngx_http_apikey_sentinel_t  *s;

    s = server->sentinel;

    if (s == NULL || server->primary == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, &s->log, 0,
                  "apikey: redis \"%V\": primary \"%V\" %s, asking the "
                  "sentinels", &server->url, &s->node.name, err);

    ngx_http_apikey_redis_primary(server, NULL, 0);

    s->tries = 0;
    ngx_http_apikey_sentinel_ask(s);
}


static void
ngx_http_apikey_sentinel_ask(ngx_http_apikey_sentinel_t *s)
{
    size_t                           argvlen[3];
    const char                      *argv[3];
    ngx_http_apikey_redis_node_t    *node;
    ngx_http_apikey_redis_server_t  *server;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    server = s->server;

    ngx_http_apikey_sentinel_close(&s->ask);
    ngx_http_apikey_sentinel_close(&s->role);

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    node = &server->sentinels[s->next % server->nsentinels];

    s->ask = ngx_http_apikey_redis_connect(server, node,
                                           &ngx_http_apikey_sentinel_ask_user,
                                           s, NGX_HTTP_APIKEY_SENTINEL_TIMEOUT,
                                           &s->log);
    if (s->ask == NULL) {
        ngx_http_apikey_sentinel_next(s, "could not be connected to");
        return;
    }

    s->ask->peer.connection->idle = 1;

    argv[0] = "SENTINEL";
    argvlen[0] = 8;
    argv[1] = "get-master-addr-by-name";
    argvlen[1] = 23;
    argv[2] = (const char *) server->master.data;
    argvlen[2] = server->master.len;

    if (ngx_http_apikey_redis_command(s->ask, 3, argv, argvlen) != NGX_OK) {
        ngx_http_apikey_sentinel_next(s, "could not be asked");
        return;
    }

    ngx_add_timer(&s->timer, NGX_HTTP_APIKEY_SENTINEL_TIMEOUT);
}


/* the next sentinel is asked; after a round of them, a pause */

static void
ngx_http_apikey_sentinel_next(ngx_http_apikey_sentinel_t *s, char *err)
{
    ngx_http_apikey_redis_server_t  *server;

    server = s->server;

    ngx_log_error(NGX_LOG_WARN, &s->log, 0,
                  "apikey: redis \"%V\": sentinel \"%V\" %s",
                  &server->url,
                  &server->sentinels[s->next % server->nsentinels].name, err);

    ngx_http_apikey_sentinel_close(&s->ask);

    s->next++;

    if (++s->tries < server->nsentinels) {
        ngx_http_apikey_sentinel_ask(s);
        return;
    }

    s->tries = 0;

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    if (!ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&s->timer, NGX_HTTP_APIKEY_SENTINEL_RETRY);
    }
}


static ngx_int_t
ngx_http_apikey_sentinel_ask_reply(ngx_http_apikey_redis_conn_t *conn,
    redisReply *reply)
{
    char                        *err;
    redisReply                  *ip, *port;
    ngx_http_apikey_sentinel_t  *s;

    s = conn->data;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_WARN, &s->log, 0,
                          "apikey: redis \"%V\": sentinel \"%V\" said: %*s",
                          &s->server->url, &conn->node->name,
                          (size_t) ngx_min(reply->len, 128), reply->str);
        }

        err = (reply->type == REDIS_REPLY_NIL) ? "does not know the master"
                                               : "did not name the primary";
        freeReplyObject(reply);
        ngx_http_apikey_sentinel_next(s, err);
        return NGX_DONE;
    }

    ngx_http_apikey_sentinel_close(&s->ask);

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    s->tries = 0;

    ip = reply->element[0];
    port = reply->element[1];

    ngx_http_apikey_sentinel_name(s, (u_char *) ip->str, ip->len,
                                  (u_char *) port->str, port->len);

    freeReplyObject(reply);

    return NGX_DONE;
}


static void
ngx_http_apikey_sentinel_ask_error(ngx_http_apikey_redis_conn_t *conn,
    char *err)
{
    ngx_http_apikey_sentinel_t  *s;

    s = conn->data;

    if (err == NULL) {
        ngx_http_apikey_sentinel_close(&s->ask);
        return;
    }

    ngx_http_apikey_sentinel_next(s, err);
}


/*
 * The sentinels name a primary by its IP address: parsed here, never
 * resolved.  Another address than before retires the old primary at
 * once, even if it still calls itself one; the new one is confirmed.
 */

static void
ngx_http_apikey_sentinel_name(ngx_http_apikey_sentinel_t *s, u_char *ip,
    size_t ip_len, u_char *port, size_t port_len)
{
    ngx_int_t                        n;
    in_addr_t                        inaddr;
    ngx_sockaddr_t                   sa;
    struct sockaddr_in              *sin;
    ngx_http_apikey_redis_server_t  *server;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6             *sin6;
#endif

    server = s->server;

    ngx_memzero(&sa, sizeof(ngx_sockaddr_t));

    n = ngx_atoi(port, port_len);

    if (n < 1 || n > 65535 || ip_len == 0 || ip_len > NGX_INET6_ADDRSTRLEN) {
        goto invalid;
    }

    inaddr = ngx_inet_addr(ip, ip_len);

    if (inaddr != INADDR_NONE) {
        sin = &sa.sockaddr_in;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = inaddr;
        sin->sin_port = htons((in_port_t) n);
        s->addr.socklen = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
    } else if (ngx_inet6_addr(ip, ip_len, sa.sockaddr_in6.sin6_addr.s6_addr)
               == NGX_OK)
    {
        sin6 = &sa.sockaddr_in6;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((in_port_t) n);
        s->addr.socklen = sizeof(struct sockaddr_in6);
#endif

    } else {
        goto invalid;
    }

    if (s->named
        && ngx_cmp_sockaddr(&sa.sockaddr, s->addr.socklen,
                            &s->sockaddr.sockaddr, s->addr.socklen, 1)
           == NGX_OK)
    {
        if (server->primary == NULL && s->role == NULL) {
            ngx_http_apikey_sentinel_confirm(s);
        }

        return;
    }

    if (s->named) {
        ngx_http_apikey_redis_primary(server, NULL, 1);
    }

    s->sockaddr = sa;
    s->named = 1;
    s->denied = 0;

    s->node.name.len = ngx_sock_ntop(&s->sockaddr.sockaddr, s->addr.socklen,
                                     s->name, NGX_SOCKADDR_STRLEN, 1);
    s->addr.name = s->node.name;

    ngx_memcpy(s->host, ip, ip_len);
    s->host[ip_len] = '\0';
    s->node.host.len = ip_len;

    ngx_log_error(NGX_LOG_NOTICE, &s->log, 0,
                  "apikey: redis \"%V\": the sentinels name \"%V\" as the "
                  "primary", &server->url, &s->node.name);

    ngx_http_apikey_sentinel_confirm(s);

    return;

invalid:

    ngx_log_error(NGX_LOG_WARN, &s->log, 0,
                  "apikey: redis \"%V\": a sentinel named an invalid "
                  "address \"%*s\" port \"%*s\"", &server->url,
                  ngx_min(ip_len, 64), ip, ngx_min(port_len, 8), port);

    s->next++;

    if (!s->timer.timer_set && !ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&s->timer, NGX_HTTP_APIKEY_SENTINEL_RETRY);
    }
}


/* no lookup goes to a node before it says it is the primary */

static void
ngx_http_apikey_sentinel_confirm(ngx_http_apikey_sentinel_t *s)
{
    static const char   *argv[] = { "ROLE" };
    static const size_t  argvlen[] = { 4 };

    ngx_http_apikey_sentinel_close(&s->role);

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    s->role = ngx_http_apikey_redis_connect(s->server, &s->node,
                                            &ngx_http_apikey_sentinel_role_user,
                                            s,
                                            NGX_HTTP_APIKEY_SENTINEL_TIMEOUT,
                                            &s->log);
    if (s->role == NULL) {
        ngx_http_apikey_sentinel_denied(s, "could not be connected to");
        return;
    }

    s->role->peer.connection->idle = 1;

    if (ngx_http_apikey_redis_command(s->role, 1, argv, argvlen) != NGX_OK) {
        ngx_http_apikey_sentinel_denied(s, "could not be asked ROLE");
        return;
    }

    ngx_add_timer(&s->timer, NGX_HTTP_APIKEY_SENTINEL_TIMEOUT);
}


static ngx_int_t
ngx_http_apikey_sentinel_role_reply(ngx_http_apikey_redis_conn_t *conn,
    redisReply *reply)
{
    ngx_uint_t                   master;
    ngx_http_apikey_sentinel_t  *s;

    s = conn->data;

    master = (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1
              && reply->element[0]->type == REDIS_REPLY_STRING
              && reply->element[0]->len == 6
              && ngx_strncmp(reply->element[0]->str, "master", 6) == 0);

    freeReplyObject(reply);

    if (!master) {
        ngx_http_apikey_sentinel_denied(s, "does not say ROLE master");
        return NGX_DONE;
    }

    ngx_http_apikey_sentinel_close(&s->role);

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    ngx_log_error(NGX_LOG_NOTICE, &s->log, 0,
                  "apikey: redis \"%V\": primary \"%V\" confirmed",
                  &s->server->url, &s->node.name);

    s->denied = 0;

    ngx_http_apikey_redis_primary(s->server, &s->node, 0);

    return NGX_DONE;
}


static void
ngx_http_apikey_sentinel_role_error(ngx_http_apikey_redis_conn_t *conn,
    char *err)
{
    ngx_http_apikey_sentinel_t  *s;

    s = conn->data;

    if (err == NULL) {
        ngx_http_apikey_sentinel_close(&s->role);
        return;
    }

    ngx_http_apikey_sentinel_denied(s, err);
}


/* the node the sentinels named is not (yet) the primary: ask again soon */

static void
ngx_http_apikey_sentinel_denied(ngx_http_apikey_sentinel_t *s, char *err)
{
    ngx_uint_t  level;

    /* asked again every RETRY during a failover: said once */

    level = s->denied ? NGX_LOG_INFO : NGX_LOG_WARN;

    ngx_log_error(level, &s->log, 0,
                  "apikey: redis \"%V\": \"%V\" named by the sentinels %s",
                  &s->server->url, &s->node.name, err);

    s->denied = 1;

    ngx_http_apikey_sentinel_close(&s->role);

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    if (!ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&s->timer, NGX_HTTP_APIKEY_SENTINEL_RETRY);
    }
}


/* a sentinel or a node did not answer in time, or a pause is over */

static void
ngx_http_apikey_sentinel_timer(ngx_event_t *ev)
{
    ngx_http_apikey_sentinel_t  *s;

    s = ev->data;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (s->ask) {
        ngx_http_apikey_sentinel_next(s, "did not answer in time");
        return;
    }

    if (s->role) {
        ngx_http_apikey_sentinel_denied(s, "did not answer ROLE in time");
        return;
    }

    ngx_http_apikey_sentinel_ask(s);
}


/*
 * One subscription per worker, to the sentinels' +switch-master: a
 * failover moves the lookups as soon as a sentinel announces it.  Once
 * subscribed, the sentinels are asked again: a switch announced while
 * there was no subscription is not heard of otherwise.
 */

static void
ngx_http_apikey_sentinel_subscribe(ngx_http_apikey_sentinel_t *s)
{
    static const char   *argv[] = { "SUBSCRIBE", "+switch-master" };
    static const size_t  argvlen[] = { 9, 14 };

    ngx_http_apikey_redis_node_t    *node;
    ngx_http_apikey_redis_server_t  *server;

    server = s->server;
    node = &server->sentinels[s->sub_next % server->nsentinels];

    s->subscribed = 0;
    s->pings = 0;

    s->sub = ngx_http_apikey_redis_connect(server, node,
                                           &ngx_http_apikey_sentinel_sub_user,
                                           s, NGX_HTTP_APIKEY_SENTINEL_PING,
                                           &s->log);
    if (s->sub == NULL) {
        s->sub_next++;
        ngx_add_timer(&s->sub_timer, NGX_HTTP_APIKEY_SENTINEL_RETRY);
        return;
    }

    /* closed at once on graceful shutdown, as idle connections are */
    s->sub->peer.connection->idle = 1;

    if (ngx_http_apikey_redis_command(s->sub, 2, argv, argvlen) != NGX_OK) {
        ngx_http_apikey_sentinel_sub_down(s, "could not be subscribed to");
        return;
    }

    ngx_add_timer(&s->sub_timer, NGX_HTTP_APIKEY_SENTINEL_PING);
}


static ngx_int_t
ngx_http_apikey_sentinel_sub_reply(ngx_http_apikey_redis_conn_t *conn,
    redisReply *reply)
{
    ngx_int_t                    rc;
    redisReply                  *kind;
    ngx_http_apikey_sentinel_t  *s;

    s = conn->data;
    rc = NGX_OK;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        freeReplyObject(reply);
        ngx_http_apikey_sentinel_sub_down(s, "refused the subscription");
        return NGX_DONE;
    }

    kind = reply->element[0];

    if (kind->len == 4 && ngx_strncmp(kind->str, "pong", 4) == 0) {
        s->pings = 0;

    } else if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0)
    {
        s->subscribed = 1;

        ngx_log_error(NGX_LOG_INFO, &s->log, 0,
                      "apikey: redis \"%V\": subscribed to sentinel \"%V\"",
                      &s->server->url, &conn->node->name);

        if (s->ask == NULL) {
            s->tries = 0;
            ngx_http_apikey_sentinel_ask(s);
        }

    } else if (kind->len == 7 && ngx_strncmp(kind->str, "message", 7) == 0
               && reply->elements == 3
               && reply->element[2]->type == REDIS_REPLY_STRING)
    {
        rc = ngx_http_apikey_sentinel_switch(s, reply->element[2]);
    }

    freeReplyObject(reply);

    return rc;
}


/* "+switch-master": "<master> <old ip> <old port> <new ip> <new port>" */

static ngx_int_t
ngx_http_apikey_sentinel_switch(ngx_http_apikey_sentinel_t *s,
    redisReply *payload)
{
    u_char     *p, *last, *word[5];
    size_t      len[5];
    ngx_uint_t  n;

    p = (u_char *) payload->str;
    last = p + payload->len;

    for (n = 0; n < 5; n++) {
        while (p < last && *p == ' ') {
            p++;
        }

        word[n] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        len[n] = p - word[n];

        if (len[n] == 0) {
            return NGX_OK;
        }
    }

    if (len[0] != s->server->master.len
        || ngx_strncmp(word[0], s->server->master.data, len[0]) != 0)
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_NOTICE, &s->log, 0,
                  "apikey: redis \"%V\": sentinel announced a switch to "
                  "%*s:%*s", &s->server->url, len[3], word[3], len[4],
                  word[4]);

    ngx_http_apikey_sentinel_name(s, word[3], len[3], word[4], len[4]);

    return NGX_OK;
}


static void
ngx_http_apikey_sentinel_sub_error(ngx_http_apikey_redis_conn_t *conn,
    char *err)
{
    ngx_http_apikey_sentinel_t  *s;

    s = conn->data;

    if (err == NULL) {
        ngx_http_apikey_sentinel_close(&s->sub);
        return;
    }

    ngx_http_apikey_sentinel_sub_down(s, err);
}


/* the subscribed sentinel failed: the next one, at once */

static void
ngx_http_apikey_sentinel_sub_down(ngx_http_apikey_sentinel_t *s, char *err)
{
    ngx_http_apikey_redis_server_t  *server;

    server = s->server;

    ngx_log_error(NGX_LOG_WARN, &s->log, 0,
                  "apikey: redis \"%V\": subscribed sentinel \"%V\" %s, "
                  "subscribing to the next one", &server->url,
                  &server->sentinels[s->sub_next % server->nsentinels].name,
                  err);

    ngx_http_apikey_sentinel_close(&s->sub);

    if (s->sub_timer.timer_set) {
        ngx_del_timer(&s->sub_timer);
    }

    s->sub_next++;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    ngx_http_apikey_sentinel_subscribe(s);
}


static void
ngx_http_apikey_sentinel_sub_timer(ngx_event_t *ev)
{
    ngx_http_apikey_sentinel_t  *s;

    static const char   *argv[] = { "PING" };
    static const size_t  argvlen[] = { 4 };

    s = ev->data;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (s->sub == NULL) {
        ngx_http_apikey_sentinel_subscribe(s);
        return;
    }

    if (!s->subscribed) {
        ngx_http_apikey_sentinel_sub_down(s, "did not confirm the "
                                             "subscription in time");
        return;
    }

    if (s->pings) {
        ngx_http_apikey_sentinel_sub_down(s, "did not answer PING in time");
        return;
    }

    if (ngx_http_apikey_redis_command(s->sub, 1, argv, argvlen) != NGX_OK) {
        ngx_http_apikey_sentinel_sub_down(s, "could not be sent PING");
        return;
    }

    s->pings++;

    ngx_add_timer(&s->sub_timer, NGX_HTTP_APIKEY_SENTINEL_PING);
}


static void
ngx_http_apikey_sentinel_close(ngx_http_apikey_redis_conn_t **conn)
{
    if (*conn) {
        ngx_http_apikey_redis_close(*conn);
        *conn = NULL;
    }
}
