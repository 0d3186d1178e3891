
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_apikey_redis.h"
#include "ngx_http_apikey_sentinel.h"
#include "ngx_http_apikey_cluster.h"


#define NGX_HTTP_APIKEY_REDIS_BUFFER  512


static ngx_int_t ngx_http_apikey_redis_nodes(ngx_conf_t *cf,
    ngx_http_apikey_redis_server_t *server, ngx_array_t *addresses,
    ngx_uint_t role);
static ngx_http_apikey_redis_node_t *ngx_http_apikey_redis_route(
    ngx_http_apikey_redis_server_t *server);
static void ngx_http_apikey_redis_down(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_node_t *node, ngx_uint_t generation, char *err);
static ngx_int_t ngx_http_apikey_redis_append(
    ngx_http_apikey_redis_conn_t *conn, u_char *data, size_t len);
static ngx_int_t ngx_http_apikey_redis_flush(
    ngx_http_apikey_redis_conn_t *conn);
static void ngx_http_apikey_redis_write_handler(ngx_event_t *wev);
static void ngx_http_apikey_redis_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_apikey_redis_next(ngx_http_apikey_redis_conn_t *conn,
    redisReply **reply, char **err);

static ngx_http_apikey_redis_conn_t *ngx_http_apikey_redis_pick(
    ngx_http_apikey_redis_query_t *q, ngx_uint_t open);
static ngx_int_t ngx_http_apikey_redis_redirect(
    ngx_http_apikey_redis_conn_t *conn, ngx_http_apikey_redis_query_t *q,
    redisReply *reply);
static ngx_http_apikey_redis_cmd_t *ngx_http_apikey_redis_push(
    ngx_http_apikey_redis_conn_t *conn, u_char *data, size_t len,
    ngx_msec_t timeout);
static void ngx_http_apikey_redis_wait(ngx_http_apikey_redis_query_t *q);
static void ngx_http_apikey_redis_timeout(ngx_event_t *ev);
static ngx_int_t ngx_http_apikey_redis_query_reply(
    ngx_http_apikey_redis_conn_t *conn, redisReply *reply);
static void ngx_http_apikey_redis_query_error(
    ngx_http_apikey_redis_conn_t *conn, char *err);
static void ngx_http_apikey_redis_fail(ngx_http_apikey_redis_conn_t *conn,
    char *err, ngx_uint_t retry);
static ngx_int_t ngx_http_apikey_redis_settle(
    ngx_http_apikey_redis_conn_t *conn);
static void ngx_http_apikey_redis_watch(ngx_http_apikey_redis_conn_t *conn);
static void ngx_http_apikey_redis_show(ngx_http_apikey_redis_server_t *server);
static char *ngx_http_apikey_redis_block(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf);
#if (NGX_HTTP_SSL)
static char *ngx_http_apikey_redis_tls(ngx_conf_t *cf,
    ngx_http_apikey_redis_server_t *server, void *block);
static void ngx_http_apikey_redis_tls_start(
    ngx_http_apikey_redis_conn_t *conn);
static void ngx_http_apikey_redis_tls_done(ngx_connection_t *c);
static void ngx_http_apikey_redis_tls_save(ngx_connection_t *c);
static ngx_int_t ngx_http_apikey_redis_tls_name(ngx_connection_t *c,
    ngx_str_t *name);
#endif


/* what -ASK asks for before the lookup it redirected */
static ngx_str_t  ngx_http_apikey_redis_asking =
    ngx_string("*1\r\n$6\r\nASKING\r\n");


/* the connections of queries, busy or idle */

static ngx_http_apikey_redis_user_t  ngx_http_apikey_redis_query_user = {
    ngx_http_apikey_redis_query_reply,
    ngx_http_apikey_redis_query_error,
    NGX_HTTP_APIKEY_REDIS_REPLY_MAX,
    NGX_HTTP_APIKEY_REDIS_ELEMENTS_MAX
};


ngx_http_apikey_redis_server_t *
ngx_http_apikey_redis_server(ngx_conf_t *cf, ngx_array_t *servers,
    ngx_str_t *args, ngx_uint_t nargs, ngx_str_t *name)
{
    u_char                          *p;
    size_t                           argvlen[3];
    ngx_int_t                        n;
    ngx_str_t                        s, user, password, auth, select;
    ngx_uint_t                       i, db;
    ngx_array_t                      addresses;
    const char                      *argv[3];
    ngx_http_apikey_redis_server_t  *server, **known;

    db = 0;
    ngx_str_null(&user);
    ngx_str_null(&password);

    for (i = 1; i < nargs; i++) {

        if (ngx_strncmp(args[i].data, "db=", 3) == 0) {
            n = ngx_atoi(args[i].data + 3, args[i].len - 3);
            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid database number \"%V\" in "
                                   "\"apikey_redis\"", &args[i]);
                return NULL;
            }

            db = n;
            continue;
        }

        if (ngx_strncmp(args[i].data, "user=", 5) == 0) {
            user.data = args[i].data + 5;
            user.len = args[i].len - 5;
            continue;
        }

        if (ngx_strncmp(args[i].data, "password=", 9) == 0) {
            password.data = args[i].data + 9;
            password.len = args[i].len - 9;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"apikey_redis\", "
                           "expected db=, user= or password=", &args[i]);
        return NULL;
    }

    if (user.len && password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"apikey_redis\" user= requires password=");
        return NULL;
    }

    /*
     * locations that name the same server share its connections; a block's
     * server is its own (its TLS settings may differ)
     */

    known = servers->elts;

    for (i = 0; name == NULL && i < servers->nelts; i++) {
        server = known[i];

        if (server->name.len == 0
            && server->url.len == args[0].len
            && ngx_strncmp(server->url.data, args[0].data, args[0].len) == 0
            && server->db == db
            && server->user.len == user.len
            && (user.len == 0
                || ngx_strncmp(server->user.data, user.data, user.len) == 0)
            && server->password.len == password.len
            && (password.len == 0
                || ngx_strncmp(server->password.data, password.data,
                               password.len)
                   == 0))
        {
            return server;
        }
    }

    server = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_redis_server_t));
    if (server == NULL) {
        return NULL;
    }

    known = ngx_array_push(servers);
    if (known == NULL) {
        return NULL;
    }

    *known = server;

    server->url = args[0];
    server->index = servers->nelts - 1;

    if (name) {
        server->name = *name;
    }

    server->db = db;
    server->user = user;
    server->password = password;

    ngx_str_null(&auth);
    ngx_str_null(&select);

    if (password.len) {
        n = 0;

        argv[n] = "AUTH";
        argvlen[n++] = 4;

        if (user.len) {
            argv[n] = (const char *) user.data;
            argvlen[n++] = user.len;
        }

        argv[n] = (const char *) password.data;
        argvlen[n++] = password.len;

        if (ngx_http_apikey_redis_format(cf->pool, &auth, n, argv, argvlen)
            != NGX_OK)
        {
            return NULL;
        }

        server->ninit++;
    }

    if (db) {
        s.data = ngx_pnalloc(cf->pool, NGX_INT_T_LEN);
        if (s.data == NULL) {
            return NULL;
        }

        s.len = ngx_sprintf(s.data, "%ui", db) - s.data;

        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) s.data;
        argvlen[1] = s.len;

        if (ngx_http_apikey_redis_format(cf->pool, &select, 2, argv, argvlen)
            != NGX_OK)
        {
            return NULL;
        }

        server->ninit++;
    }

    server->init.len = auth.len + select.len;

    if (server->init.len) {
        server->init.data = ngx_pnalloc(cf->pool, server->init.len);
        if (server->init.data == NULL) {
            return NULL;
        }

        /* either may be empty, with no data to copy from */

        p = server->init.data;

        if (auth.len) {
            p = ngx_cpymem(p, auth.data, auth.len);
        }

        if (select.len) {
            ngx_memcpy(p, select.data, select.len);
        }

        /* the password is in the configuration anyway; not twice in memory */
        ngx_explicit_memzero(auth.data, auth.len);
    }

    ngx_queue_init(&server->conns);
    ngx_queue_init(&server->waiting);
    ngx_queue_init(&server->others);

    /* a block adds its servers or sentinels itself */

    if (name) {
        return server;
    }

    addresses.elts = args;
    addresses.nelts = 1;

    if (ngx_http_apikey_redis_nodes(cf, server, &addresses,
                                    NGX_HTTP_APIKEY_REDIS_PRIMARY)
        != NGX_OK)
    {
        return NULL;
    }

    return server;
}


/*
 * The nodes of the addresses as written, in order: data nodes (a name may
 * resolve to several), or sentinels.  server->addrs keeps them all, for
 * the cache's fingerprint of the configuration.
 */

static ngx_int_t
ngx_http_apikey_redis_nodes(ngx_conf_t *cf,
    ngx_http_apikey_redis_server_t *server, ngx_array_t *addresses,
    ngx_uint_t role)
{
    u_char                        *p;
    ngx_url_t                     *u;
    ngx_str_t                     *address, host;
    ngx_addr_t                    *addrs;
    ngx_uint_t                     i, j, n;
    ngx_http_apikey_redis_node_t  *nodes;

    address = addresses->elts;

    u = ngx_pcalloc(cf->pool, addresses->nelts * sizeof(ngx_url_t));
    if (u == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    for (i = 0; i < addresses->nelts; i++) {
        u[i].url = address[i];
        u[i].default_port = (role == NGX_HTTP_APIKEY_REDIS_SENTINEL)
                            ? NGX_HTTP_APIKEY_SENTINEL_DEFAULT_PORT
                            : NGX_HTTP_APIKEY_REDIS_DEFAULT_PORT;

        if (ngx_parse_url(cf->pool, &u[i]) != NGX_OK) {
            if (u[i].err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%s in \"apikey_redis\" address \"%V\"",
                                   u[i].err, &u[i].url);
            }

            return NGX_ERROR;
        }

        if (u[i].naddrs == 0 || u[i].uri.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"apikey_redis\" address \"%V\"",
                               &u[i].url);
            return NGX_ERROR;
        }

        n += u[i].naddrs;
    }

    nodes = ngx_pcalloc(cf->pool, n * sizeof(ngx_http_apikey_redis_node_t));
    addrs = ngx_pcalloc(cf->pool, (server->naddrs + n) * sizeof(ngx_addr_t));
    if (nodes == NULL || addrs == NULL) {
        return NGX_ERROR;
    }

    if (server->naddrs) {
        ngx_memcpy(addrs, server->addrs,
                   server->naddrs * sizeof(ngx_addr_t));
    }

    n = 0;

    for (i = 0; i < addresses->nelts; i++) {

        /* the host as written, NUL-terminated: TLS verifies against it */

        host = u[i].host;

        if (host.len && host.data[0] == '[') {
            host.data++;
            host.len -= 2;
        }

        p = ngx_pnalloc(cf->pool, host.len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, host.data, host.len);
        p[host.len] = '\0';

        for (j = 0; j < u[i].naddrs; j++) {
            addrs[server->naddrs++] = u[i].addrs[j];

            nodes[n].addr = &u[i].addrs[j];
            nodes[n].role = role;
            nodes[n].name = u[i].addrs[j].name;
            nodes[n].host.data = p;
            nodes[n].host.len = host.len;
            n++;
        }
    }

    server->addrs = addrs;

    if (role == NGX_HTTP_APIKEY_REDIS_SENTINEL) {
        server->sentinels = nodes;
        server->nsentinels = n;

    } else if (role == NGX_HTTP_APIKEY_REDIS_SEED) {
        server->seeds = nodes;
        server->nseeds = n;

    } else {
        server->nodes = nodes;
        server->nnodes = n;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_redis_format(ngx_pool_t *pool, ngx_str_t *out, int argc,
    const char **argv, const size_t *argvlen)
{
    int    len;
    char  *cmd;

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        free(cmd);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, cmd, len);
    out->len = len;

    free(cmd);

    return NGX_OK;
}


/*
 * The one place that picks the node for a new connection: the "server"
 * that worked last (the first one, until it fails), or the primary the
 * sentinels named once it confirmed it is one; NULL while none is.  A
 * cluster has no one node: a query goes to its slot's primary (pick()).
 */

static ngx_http_apikey_redis_node_t *
ngx_http_apikey_redis_route(ngx_http_apikey_redis_server_t *server)
{
    if (server->seeds) {
        return NULL;
    }

    if (server->sentinels) {
        return server->primary;
    }

    return &server->nodes[server->next % server->nnodes];
}


/*
 * A data node failed: the next "server" is tried from now on, or the
 * sentinels are asked again.  Only the node in use counts: a failure of a
 * connection made before the last change tells nothing new.
 */

static void
ngx_http_apikey_redis_down(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_node_t *node, ngx_uint_t generation, char *err)
{
    if (server->seeds) {
        ngx_http_apikey_cluster_lost(server, node, err);
        return;
    }

    if (generation != server->generation
        || node != ngx_http_apikey_redis_route(server))
    {
        return;
    }

    if (server->sentinels) {
        ngx_http_apikey_sentinel_lost(server, err);
        return;
    }

    if (server->nnodes > 1) {
        server->next++;
        server->generation++;

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "apikey: redis \"%V\": \"%V\" %s, trying \"%V\" next",
                      &server->url, &node->name, err,
                      &server->nodes[server->next % server->nnodes].name);
    }
}


/*
 * Opens a connection for a user to the data node the router chooses; a
 * "server" that refuses at once makes way for the next one.  Commands may
 * be sent at once: they wait in the output buffer until connected.  NULL
 * means no connection could even start (nginx logged why).
 */

ngx_http_apikey_redis_conn_t *
ngx_http_apikey_redis_open(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_user_t *user, void *data, ngx_msec_t timeout,
    ngx_log_t *log)
{
    ngx_uint_t                      i, generation;
    ngx_http_apikey_redis_node_t   *node;
    ngx_http_apikey_redis_conn_t   *conn;

    conn = NULL;

    for (i = 0; i < server->nnodes || i == 0; i++) {

        node = ngx_http_apikey_redis_route(server);
        if (node == NULL) {
            return NULL;
        }

        generation = server->generation;

        conn = ngx_http_apikey_redis_connect(server, node, user, data,
                                             timeout, log);
        if (conn) {
            break;
        }

        ngx_http_apikey_redis_down(server, node, generation,
                                   "could not be connected to");
    }

    if (conn == NULL) {
        return NULL;
    }

    /* a change of primary closes them: they move with it */

    if (user != &ngx_http_apikey_redis_query_user) {
        ngx_queue_insert_tail(&server->others, &conn->queue);
        conn->other = 1;
    }

    return conn;
}


/*
 * A connection to one node: AUTH and SELECT go first to a data node, the
 * sentinels' AUTH to a sentinel.
 */

ngx_http_apikey_redis_conn_t *
ngx_http_apikey_redis_connect(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_node_t *node, ngx_http_apikey_redis_user_t *user,
    void *data, ngx_msec_t timeout, ngx_log_t *log)
{
    ngx_int_t                      rc;
    ngx_str_t                     *init;
    ngx_connection_t              *c;
    ngx_peer_connection_t         *pc;
    ngx_http_apikey_redis_conn_t  *conn;

    conn = ngx_calloc(sizeof(ngx_http_apikey_redis_conn_t), log);
    if (conn == NULL) {
        return NULL;
    }

    conn->server = server;
    conn->node = node;
    conn->generation = server->generation;
    conn->user = user;
    conn->data = data;
    conn->timeout = timeout;

    ngx_queue_init(&conn->pending);

    conn->reader = ngx_http_apikey_redis_reader(user->elements);
    if (conn->reader == NULL) {
        ngx_free(conn);
        return NULL;
    }

    if (node->role == NGX_HTTP_APIKEY_REDIS_SENTINEL) {
        init = &server->sentinel_init;
        conn->init = server->sentinel_ninit;

    } else {
        init = &server->init;
        conn->init = server->ninit;
    }

    if (init->len
        && ngx_http_apikey_redis_append(conn, init->data, init->len)
           != NGX_OK)
    {
        redisReaderFree(conn->reader);
        ngx_free(conn);
        return NULL;
    }

    pc = &conn->peer;
    pc->sockaddr = node->addr->sockaddr;
    pc->socklen = node->addr->socklen;
    pc->name = &node->name;
    pc->get = ngx_event_get_peer;
    pc->log = log;
    pc->log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(pc);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "apikey redis: connect to \"%V\": %i", &node->name, rc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (pc->connection) {
            ngx_close_connection(pc->connection);
        }

        redisReaderFree(conn->reader);
        ngx_free(conn->start);
        ngx_free(conn);
        return NULL;
    }

    c = pc->connection;
    c->data = conn;
    c->read->handler = ngx_http_apikey_redis_read_handler;
    c->write->handler = ngx_http_apikey_redis_write_handler;

#if (NGX_HTTP_SSL)
    /* commands wait in the buffer until the handshake is over */
    conn->tls = (server->ssl != NULL);
#endif

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, timeout);

    } else {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return conn;
}


/* queues a formatted command and sends what the socket takes now */

ngx_int_t
ngx_http_apikey_redis_send(ngx_http_apikey_redis_conn_t *conn, u_char *cmd,
    size_t len)
{
    ngx_connection_t  *c;

    if (ngx_http_apikey_redis_append(conn, cmd, len) != NGX_OK) {
        return NGX_ERROR;
    }

    c = conn->peer.connection;

    if ((c->write->timer_set && !c->write->ready) || conn->tls
#if (NGX_HTTP_SSL)
        || (c->ssl && !c->ssl->handshaked)
#endif
       )
    {
        /* connecting, in the handshake, or a full socket: sent later */
        return NGX_OK;
    }

    ngx_post_event(c->write, &ngx_posted_events);

    return NGX_OK;
}


ngx_int_t
ngx_http_apikey_redis_command(ngx_http_apikey_redis_conn_t *conn, int argc,
    const char **argv, const size_t *argvlen)
{
    int        len;
    char      *cmd;
    ngx_int_t  rc;

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    rc = ngx_http_apikey_redis_send(conn, (u_char *) cmd, len);

    free(cmd);

    return rc;
}


static ngx_int_t
ngx_http_apikey_redis_append(ngx_http_apikey_redis_conn_t *conn,
    u_char *data, size_t len)
{
    u_char  *p;
    size_t   size, used;

    if (conn->pos == conn->last) {
        conn->pos = conn->start;
        conn->last = conn->start;
    }

    if ((size_t) (conn->end - conn->last) < len) {
        used = conn->last - conn->pos;
        size = conn->end - conn->start;

        if (size < NGX_HTTP_APIKEY_REDIS_BUFFER) {
            size = NGX_HTTP_APIKEY_REDIS_BUFFER;
        }

        while (size < used + len) {
            size *= 2;
        }

        p = ngx_alloc(size, ngx_cycle->log);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, conn->pos, used);

        if (conn->start) {
            /* AUTH carries the password */
            ngx_explicit_memzero(conn->start, conn->end - conn->start);
            ngx_free(conn->start);
        }

        conn->start = p;
        conn->pos = p;
        conn->last = p + used;
        conn->end = p + size;
    }

    conn->last = ngx_cpymem(conn->last, data, len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_redis_flush(ngx_http_apikey_redis_conn_t *conn)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = conn->peer.connection;

    while (conn->pos < conn->last) {

        n = c->send(c, conn->pos, conn->last - conn->pos);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN || n == 0) {
            return NGX_AGAIN;
        }

        conn->pos += n;
    }

    return NGX_OK;
}


static void
ngx_http_apikey_redis_write_handler(ngx_event_t *wev)
{
    ngx_int_t                      rc;
    ngx_connection_t              *c;
    ngx_http_apikey_redis_conn_t  *conn;

    c = wev->data;
    conn = c->data;

    if (wev->timedout) {
        conn->user->error(conn, "timed out connecting or sending");
        return;
    }

#if (NGX_HTTP_SSL)
    if (conn->tls) {
        ngx_http_apikey_redis_tls_start(conn);
        return;
    }
#endif

    rc = ngx_http_apikey_redis_flush(conn);

    if (rc == NGX_ERROR) {
        conn->user->error(conn, "failed to send");
        return;
    }

    if (rc == NGX_AGAIN) {
        if (!wev->timer_set) {
            ngx_add_timer(wev, conn->timeout);
        }

        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            conn->user->error(conn, "failed to wait for writing");
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        conn->user->error(conn, "failed to wait for reading");
        return;
    }

    if (c->read->ready) {
        ngx_http_apikey_redis_read_handler(c->read);
    }
}


static void
ngx_http_apikey_redis_read_handler(ngx_event_t *rev)
{
    u_char                         buf[4096];
    char                          *err;
    ssize_t                        n;
    ngx_int_t                      rc;
    redisReply                    *reply;
    ngx_connection_t              *c;
    ngx_http_apikey_redis_conn_t  *conn;

    c = rev->data;
    conn = c->data;

    if (c->close) {
        conn->user->error(conn, NULL);
        return;
    }

    if (rev->timedout) {
        conn->user->error(conn, "timed out reading");
        return;
    }

    for ( ;; ) {

        err = NULL;

        rc = ngx_http_apikey_redis_next(conn, &reply, &err);

        if (rc == NGX_OK) {
            if (conn->user->reply(conn, reply) == NGX_DONE) {
                return;
            }

            continue;
        }

        if (rc == NGX_ERROR) {
            conn->user->error(conn, err);
            return;
        }

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            conn->user->error(conn, "closed the connection");
            return;
        }

        if (n == NGX_ERROR) {
            conn->user->error(conn, "failed to receive");
            return;
        }

        conn->received += n;
        conn->partial += n;

        if (conn->partial > conn->user->size) {
            conn->user->error(conn, "sent a reply too large");
            return;
        }

        if (redisReaderFeed(conn->reader, (const char *) buf, n)
            != REDIS_OK)
        {
            conn->user->error(conn, "sent a reply that could not be "
                                    "buffered");
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        conn->user->error(conn, "failed to wait for reading");
    }
}


/*
 * The next whole reply for the user (NGX_OK), none yet (NGX_AGAIN), or a
 * broken stream.  AUTH and SELECT are checked here, for every user.
 */

static ngx_int_t
ngx_http_apikey_redis_next(ngx_http_apikey_redis_conn_t *conn,
    redisReply **reply, char **err)
{
    void        *r;
    redisReply  *rr;

    for ( ;; ) {

        if (redisReaderGetReply(conn->reader, &r) != REDIS_OK) {
            *err = "sent an invalid reply";
            return NGX_ERROR;
        }

        if (r == NULL) {
            return NGX_AGAIN;
        }

        /* what is buffered beyond this reply belongs to the next one */
        conn->partial = conn->reader->len - conn->reader->pos;

        rr = r;

        if (conn->init) {
            conn->init--;

            if (rr->type != REDIS_REPLY_STATUS) {
                if (rr->type == REDIS_REPLY_ERROR) {
                    ngx_log_error(NGX_LOG_ERR, conn->peer.connection->log, 0,
                                  "apikey: redis \"%V\" refused AUTH or "
                                  "SELECT: %*s", &conn->server->url,
                                  (size_t) ngx_min(rr->len, 128), rr->str);
                }

                freeReplyObject(rr);
                *err = "refused AUTH or SELECT";
                return NGX_ERROR;
            }

            freeReplyObject(rr);
            continue;
        }

        *reply = rr;

        return NGX_OK;
    }
}


void
ngx_http_apikey_redis_close(ngx_http_apikey_redis_conn_t *conn)
{
    ngx_pool_t        *pool;
    ngx_connection_t  *c;

    c = conn->peer.connection;
    pool = c->pool;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "apikey redis: close connection %p", c);

    if (conn->queued) {
        ngx_queue_remove(&conn->queue);
        conn->server->nconns--;

        if (conn->npending == 0) {
            conn->server->nidle--;
        }

        ngx_http_apikey_redis_show(conn->server);
    }

    if (conn->other) {
        ngx_queue_remove(&conn->queue);
    }

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }
#endif

    ngx_close_connection(c);

    if (pool) {
        ngx_destroy_pool(pool);
    }

    if (conn->reply) {
        freeReplyObject(conn->reply);
    }

    if (conn->start) {
        ngx_explicit_memzero(conn->start, conn->end - conn->start);
        ngx_free(conn->start);
    }

    redisReaderFree(conn->reader);
    ngx_free(conn);
}


/*
 * Starts a query; the handler is always called later from an event, never
 * from within this call.  NGX_ERROR means the query could not even start
 * (the cause is logged) and the handler will not be called.
 *
 * Queries of a worker to a server share its connections: the first one
 * with room for another command takes it, and every command queued during
 * one pass of the event loop goes out in one send (the write event is
 * posted, not handled at once).
 */

ngx_int_t
ngx_http_apikey_redis_query(ngx_http_apikey_redis_query_t *q)
{
    ngx_http_apikey_redis_cmd_t   *cmd;
    ngx_http_apikey_redis_conn_t  *conn;

    q->timer.handler = ngx_http_apikey_redis_timeout;
    q->timer.data = q;
    q->timer.log = q->log;

    if (q->server->sentinels && q->server->primary == NULL) {
        ngx_http_apikey_redis_wait(q);
        return NGX_OK;
    }

    /* a redirected query goes where the redirection said */

    if (q->server->seeds && q->redirects == 0) {
        switch (ngx_http_apikey_cluster_route(q->server, &q->command,
                                              &q->node))
        {
        case NGX_OK:
            break;

        case NGX_AGAIN:
            ngx_http_apikey_redis_wait(q);
            return NGX_OK;

        default:
            return NGX_ERROR;
        }
    }

    conn = ngx_http_apikey_redis_pick(q, 1);
    if (conn == NULL) {
        if (q->server->sentinels && q->server->primary == NULL) {
            /* the sentinels are asked again */
            ngx_http_apikey_redis_wait(q);
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "apikey: could not connect to redis \"%V\"",
                      &q->server->url);
        return NGX_ERROR;
    }

    /* -ASK: this one command only, on this node only */

    if (q->asking
        && ngx_http_apikey_redis_push(conn, ngx_http_apikey_redis_asking.data,
                                      ngx_http_apikey_redis_asking.len,
                                      q->timeout)
           == NULL)
    {
        return NGX_ERROR;
    }

    cmd = ngx_http_apikey_redis_push(conn, q->command.data, q->command.len,
                                     q->timeout);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->query = q;
    cmd->skip = q->replies > 1 ? q->replies - 1 : 0;
    cmd->nonce_len = ngx_min(q->nonce.len, NGX_HTTP_APIKEY_REDIS_NONCE_MAX);
    ngx_memcpy(cmd->nonce, q->nonce.data, cmd->nonce_len);

    q->cmd = cmd;

    /* a query tried again keeps its deadline */

    if (!q->timer.timer_set) {
        ngx_add_timer(&q->timer, q->timeout);
    }

    return NGX_OK;
}


/*
 * no primary is confirmed, or no slot map came yet: the query waits for
 * one, under its own timer
 */

static void
ngx_http_apikey_redis_wait(ngx_http_apikey_redis_query_t *q)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "apikey redis: waiting for the primary");

    ngx_queue_insert_tail(&q->server->waiting, &q->queue);
    q->waiting = 1;

    if (!q->timer.timer_set) {
        ngx_add_timer(&q->timer, q->timeout);
    }
}


/*
 * The sentinels named another primary (retire), or the one they name
 * confirmed it is the primary (node), or it is asked for again (NULL).
 * Retired connections get no more commands and close once their replies
 * came; other users' connections close now, and their users open new ones.
 */

void
ngx_http_apikey_redis_primary(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_node_t *node, ngx_uint_t retire)
{
    ngx_queue_t                    *x, *next;
    ngx_http_apikey_redis_conn_t   *conn;

    server->primary = node;

    if (retire) {
        server->generation++;

        for (x = ngx_queue_head(&server->conns);
             x != ngx_queue_sentinel(&server->conns);
             x = next)
        {
            next = ngx_queue_next(x);
            conn = ngx_queue_data(x, ngx_http_apikey_redis_conn_t, queue);

            ngx_queue_remove(&conn->queue);
            conn->queued = 0;
            server->nconns--;

            if (conn->npending == 0) {
                server->nidle--;
                ngx_http_apikey_redis_close(conn);
                continue;
            }

            conn->retired = 1;
        }

        ngx_http_apikey_redis_show(server);

        for (x = ngx_queue_head(&server->others);
             x != ngx_queue_sentinel(&server->others);
             x = next)
        {
            next = ngx_queue_next(x);
            conn = ngx_queue_data(x, ngx_http_apikey_redis_conn_t, queue);

            conn->user->error(conn, "is no longer the primary");
        }
    }

    if (node) {
        ngx_http_apikey_redis_release(server);
    }
}


/* a primary is confirmed, or a slot map came: the waiting queries go */

void
ngx_http_apikey_redis_release(ngx_http_apikey_redis_server_t *server)
{
    ngx_queue_t                     waiting, *x;
    ngx_http_apikey_redis_query_t  *q;

    if (ngx_queue_empty(&server->waiting)) {
        return;
    }

    ngx_queue_init(&waiting);
    ngx_queue_add(&waiting, &server->waiting);
    ngx_queue_init(&server->waiting);

    while (!ngx_queue_empty(&waiting)) {
        x = ngx_queue_head(&waiting);
        ngx_queue_remove(x);

        q = ngx_queue_data(x, ngx_http_apikey_redis_query_t, queue);
        q->waiting = 0;

        if (ngx_http_apikey_redis_query(q) != NGX_OK) {
            if (q->timer.timer_set) {
                ngx_del_timer(&q->timer);
            }

            q->handler(q, NULL);
        }
    }
}


/*
 * A connection with room for one more command: busy connections are kept
 * at the head, so that one connection takes all while it can.  On a
 * cluster, only a connection to the query's node will do.
 */

static ngx_http_apikey_redis_conn_t *
ngx_http_apikey_redis_pick(ngx_http_apikey_redis_query_t *q, ngx_uint_t open)
{
    ngx_uint_t                       found;
    ngx_queue_t                     *x;
    ngx_http_apikey_redis_node_t    *node;
    ngx_http_apikey_redis_conn_t    *conn;
    ngx_http_apikey_redis_server_t  *server;

    server = q->server;
    node = server->seeds ? q->node : NULL;
    found = 0;

    for (x = ngx_queue_head(&server->conns);
         x != ngx_queue_sentinel(&server->conns);
         x = ngx_queue_next(x))
    {
        conn = ngx_queue_data(x, ngx_http_apikey_redis_conn_t, queue);

        if (node && conn->node != node) {
            continue;
        }

        found = 1;

        if (conn->npending < q->pipeline) {
            conn->keepalive = q->keepalive;
            return conn;
        }
    }

    /* all full: another connection, or none at all if open is 0 */

    if (!open && found) {
        return NULL;
    }

    if (node) {
        conn = ngx_http_apikey_redis_connect(server, node,
                                             &ngx_http_apikey_redis_query_user,
                                             NULL, q->timeout, q->log);
        if (conn == NULL) {
            ngx_http_apikey_cluster_lost(server, node,
                                         "could not be connected to");
        }

    } else {
        conn = ngx_http_apikey_redis_open(server,
                                          &ngx_http_apikey_redis_query_user,
                                          NULL, q->timeout, q->log);
    }

    if (conn == NULL) {
        return NULL;
    }

    conn->keepalive = q->keepalive;

    conn->peer.connection->log = ngx_cycle->log;
    conn->peer.connection->read->log = ngx_cycle->log;
    conn->peer.connection->write->log = ngx_cycle->log;

    ngx_queue_insert_tail(&server->conns, &conn->queue);
    conn->queued = 1;
    server->nconns++;
    server->nidle++;

    ngx_http_apikey_redis_show(server);

    return conn;
}


/* a command whose replies are due on conn, sent with the next send */

static ngx_http_apikey_redis_cmd_t *
ngx_http_apikey_redis_push(ngx_http_apikey_redis_conn_t *conn, u_char *data,
    size_t len, ngx_msec_t timeout)
{
    ngx_connection_t             *c;
    ngx_http_apikey_redis_cmd_t  *cmd;

    cmd = ngx_alloc(sizeof(ngx_http_apikey_redis_cmd_t), ngx_cycle->log);
    if (cmd == NULL) {
        return NULL;
    }

    if (ngx_http_apikey_redis_send(conn, data, len) != NGX_OK) {
        ngx_free(cmd);
        return NULL;
    }

    cmd->conn = conn;
    cmd->query = NULL;
    cmd->deadline = ngx_current_msec + timeout;
    cmd->skip = 0;
    cmd->nonce_len = 0;

    if (conn->npending++ == 0) {

        /* idle until now: busy connections go first */

        conn->server->nidle--;
        conn->received = 0;

        ngx_http_apikey_redis_show(conn->server);

        c = conn->peer.connection;
        c->idle = 0;
        c->read->cancelable = 0;

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        ngx_queue_remove(&conn->queue);
        ngx_queue_insert_head(&conn->server->conns, &conn->queue);
    }

    ngx_queue_insert_tail(&conn->pending, &cmd->queue);

    ngx_http_apikey_redis_watch(conn);

    return cmd;
}


/* a query waited too long: its connection cannot be trusted to catch up */

static void
ngx_http_apikey_redis_timeout(ngx_event_t *ev)
{
    ngx_http_apikey_redis_conn_t   *conn;
    ngx_http_apikey_redis_query_t  *q;

    q = ev->data;

    if (q->waiting) {
        ngx_queue_remove(&q->queue);
        q->waiting = 0;

        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "apikey: redis \"%V\" timed out waiting for %s",
                      &q->server->url,
                      q->server->seeds ? "the slot map"
                                       : "the sentinels to name a primary");

        q->timedout = 1;
        q->handler(q, NULL);
        return;
    }

    conn = q->cmd->conn;
    conn->timedout = 1;

    ngx_http_apikey_redis_fail(conn, conn->pos < conn->last
                                     ? "timed out connecting or sending"
                                     : "timed out reading", 0);
}


static ngx_int_t
ngx_http_apikey_redis_query_reply(ngx_http_apikey_redis_conn_t *conn,
    redisReply *reply)
{
    ngx_int_t                       rc;
    ngx_uint_t                      ask;
    ngx_http_apikey_redis_cmd_t    *cmd;
    ngx_http_apikey_redis_node_t   *node;
    ngx_http_apikey_redis_query_t  *q;

    if (ngx_queue_empty(&conn->pending)) {
        freeReplyObject(reply);
        ngx_http_apikey_redis_fail(conn, "sent an unexpected reply", 0);
        return NGX_DONE;
    }

    /* a primary that became a replica, or one still loading its data */

    if (reply->type == REDIS_REPLY_ERROR
        && conn->server->sentinels
        && (ngx_strncmp(reply->str, "READONLY", 8) == 0
            || ngx_strncmp(reply->str, "LOADING", 7) == 0))
    {
        ngx_http_apikey_redis_down(conn->server, conn->node, conn->generation,
                                   "answered READONLY or LOADING");
    }

    cmd = ngx_queue_data(ngx_queue_head(&conn->pending),
                         ngx_http_apikey_redis_cmd_t, queue);

    if (cmd->skip) {
        cmd->skip--;
        freeReplyObject(reply);
        return NGX_OK;
    }

    if (cmd->nonce_len) {

        if (conn->reply == NULL) {
            conn->reply = reply;
            return NGX_OK;
        }

        /*
         * A reply nobody asked for (a broken or hostile server) would
         * otherwise answer the next lookup on this connection.
         */

        if (reply->type != REDIS_REPLY_STRING
            || reply->len != cmd->nonce_len
            || ngx_memcmp(reply->str, cmd->nonce, reply->len) != 0)
        {
            freeReplyObject(reply);
            ngx_http_apikey_redis_fail(conn, "sent replies out of order", 0);
            return NGX_DONE;
        }

        freeReplyObject(reply);

        reply = conn->reply;
        conn->reply = NULL;
    }

    ngx_queue_remove(&cmd->queue);

    q = cmd->query;
    ngx_free(cmd);

    /*
     * The connection stays busy while the handler runs: the queries it
     * starts may join it.  A query it cancels leaves its command behind.
     */

    if (q) {
        q->cmd = NULL;

        rc = NGX_DECLINED;

        if (reply->type == REDIS_REPLY_ERROR && conn->server->seeds) {
            rc = ngx_http_apikey_redis_redirect(conn, q, reply);
        }

        if (rc != NGX_OK) {
            if (q->timer.timer_set) {
                ngx_del_timer(&q->timer);
            }

            q->handler(q, (rc == NGX_ERROR) ? NULL : reply);
        }

    } else if (reply->type == REDIS_REPLY_ERROR && conn->server->seeds) {
        /* a last-use write, or a lookup whose request has gone */
        (void) ngx_http_apikey_cluster_redirect(conn->server, conn->node,
                                                reply, &node, &ask);
    }

    freeReplyObject(reply);

    if (--conn->npending == 0) {
        if (conn->retired) {
            ngx_http_apikey_redis_close(conn);
            return NGX_DONE;
        }

        conn->server->nidle++;
        ngx_http_apikey_redis_show(conn->server);
        return ngx_http_apikey_redis_settle(conn);
    }

    ngx_http_apikey_redis_watch(conn);

    return NGX_OK;
}


/*
 * A lookup a cluster node redirected goes to the node named, within the
 * bound (NGX_OK); an error that is no redirection is the handler's to
 * answer (NGX_DECLINED); one that cannot be followed fails it (NGX_ERROR).
 * The query keeps its deadline.
 */

static ngx_int_t
ngx_http_apikey_redis_redirect(ngx_http_apikey_redis_conn_t *conn,
    ngx_http_apikey_redis_query_t *q, redisReply *reply)
{
    ngx_int_t                      rc;
    ngx_uint_t                     ask;
    ngx_http_apikey_redis_node_t  *node;

    rc = ngx_http_apikey_cluster_redirect(conn->server, conn->node, reply,
                                          &node, &ask);
    if (rc != NGX_OK) {
        return rc;
    }

    if (q->redirects >= NGX_HTTP_APIKEY_CLUSTER_REDIRECTS) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "apikey: redis \"%V\": a lookup was redirected more "
                      "than %d times, last by \"%V\": %*s", &q->server->url,
                      NGX_HTTP_APIKEY_CLUSTER_REDIRECTS, &conn->node->name,
                      (size_t) ngx_min(reply->len, 128), reply->str);
        return NGX_ERROR;
    }

    q->redirects++;
    q->node = node;
    q->asking = ask;

    if (ngx_http_apikey_redis_query(q) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A live query has a timer of its own; a command nobody waits for any
 * more (its request gone, a last-use write) must still be answered in
 * time, or the queries behind it would wait for nothing: while such a
 * command is next in line, the connection's read timer holds its deadline.
 */

static void
ngx_http_apikey_redis_watch(ngx_http_apikey_redis_conn_t *conn)
{
    ngx_msec_int_t                left;
    ngx_connection_t             *c;
    ngx_http_apikey_redis_cmd_t  *cmd;

    c = conn->peer.connection;

    cmd = ngx_queue_data(ngx_queue_head(&conn->pending),
                         ngx_http_apikey_redis_cmd_t, queue);

    if (cmd->query) {
        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        return;
    }

    left = (ngx_msec_int_t) (cmd->deadline - ngx_current_msec);

    ngx_add_timer(c->read, left > 0 ? (ngx_msec_t) left : 1);
}


static void
ngx_http_apikey_redis_query_error(ngx_http_apikey_redis_conn_t *conn,
    char *err)
{
    ngx_connection_t  *c;

    c = conn->peer.connection;

    ngx_http_apikey_redis_fail(conn, err,
                               !c->read->timedout && !c->write->timedout);
}


/*
 * Every query still on the connection fails, or tries once more on a new
 * one: if the connection was kept idle and may have been closed by Redis
 * before we noticed, if it never got a byte from a "server" that has a
 * next one, or if the sentinels are to be asked for the primary again
 * (the query waits for the answer).  The commands move out before any
 * handler runs: a query a handler starts must not land on this connection.
 */

static void
ngx_http_apikey_redis_fail(ngx_http_apikey_redis_conn_t *conn, char *err,
    ngx_uint_t retry)
{
    ngx_uint_t                       timedout;
    ngx_queue_t                      pending, *x;
    ngx_connection_t                *c;
    ngx_http_apikey_redis_cmd_t     *cmd;
    ngx_http_apikey_redis_query_t   *q;
    ngx_http_apikey_redis_server_t  *server;

    if (err == NULL) {
        err = "closed on shutdown";
    }

    server = conn->server;

    if (retry && !conn->retired && !ngx_exiting && !ngx_terminate
        && (server->sentinels || server->seeds
            || (conn->received == 0 && !conn->reused)))
    {
        ngx_http_apikey_redis_down(server, conn->node, conn->generation, err);
    }

    retry = retry
            && ((conn->reused && conn->received == 0)
                || (server->nnodes > 1 && conn->received == 0)
                || server->sentinels);

    c = conn->peer.connection;
    timedout = conn->timedout || c->read->timedout || c->write->timedout;

    ngx_queue_init(&pending);

    if (!ngx_queue_empty(&conn->pending)) {
        ngx_queue_add(&pending, &conn->pending);
        ngx_queue_init(&conn->pending);
    }

    /* a handler may cancel a query further down: its command has no home */

    for (x = ngx_queue_head(&pending);
         x != ngx_queue_sentinel(&pending);
         x = ngx_queue_next(x))
    {
        cmd = ngx_queue_data(x, ngx_http_apikey_redis_cmd_t, queue);
        cmd->conn = NULL;
    }

    ngx_http_apikey_redis_close(conn);

    while (!ngx_queue_empty(&pending)) {
        x = ngx_queue_head(&pending);
        ngx_queue_remove(x);

        cmd = ngx_queue_data(x, ngx_http_apikey_redis_cmd_t, queue);
        q = cmd->query;
        ngx_free(cmd);

        if (q == NULL) {
            continue;
        }

        q->cmd = NULL;

        if (retry && !q->retried) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, q->log, 0,
                           "apikey redis: connection %s, retrying", err);

            q->retried = 1;

            if (ngx_http_apikey_redis_query(q) == NGX_OK) {
                continue;
            }

        } else {
            ngx_log_error(NGX_LOG_ERR, q->log, 0, "apikey: redis \"%V\" %s",
                          &q->server->url, err);
        }

        if (q->timer.timer_set) {
            ngx_del_timer(&q->timer);
        }

        q->timedout = timedout;
        q->handler(q, NULL);
    }
}


/* no reply is due any more: the connection is kept for later, or closed */

static ngx_int_t
ngx_http_apikey_redis_settle(ngx_http_apikey_redis_conn_t *conn)
{
    ngx_uint_t                      idle;
    ngx_queue_t                    *x;
    ngx_connection_t               *c;
    ngx_http_apikey_redis_conn_t   *other;

    idle = conn->server->nidle;

    /* on a cluster, keepalive counts per node */

    if (conn->server->seeds) {
        idle = 0;

        for (x = ngx_queue_head(&conn->server->conns);
             x != ngx_queue_sentinel(&conn->server->conns);
             x = ngx_queue_next(x))
        {
            other = ngx_queue_data(x, ngx_http_apikey_redis_conn_t, queue);

            if (other->node == conn->node && other->npending == 0) {
                idle++;
            }
        }
    }

    if (ngx_terminate || ngx_exiting || idle > conn->keepalive) {
        ngx_http_apikey_redis_close(conn);
        return NGX_DONE;
    }

    c = conn->peer.connection;

    c->idle = 1;
    c->read->cancelable = 1;
    ngx_add_timer(c->read, NGX_HTTP_APIKEY_REDIS_IDLE_TIMEOUT);

    conn->reused = 1;

    /* busy connections go first */

    ngx_queue_remove(&conn->queue);
    ngx_queue_insert_tail(&conn->server->conns, &conn->queue);

    return NGX_OK;
}


/* other processes read the counts without a lock: each is one word */

static void
ngx_http_apikey_redis_show(ngx_http_apikey_redis_server_t *server)
{
    if (server->shown) {
        server->shown[0] = server->nconns - server->nidle;
        server->shown[1] = server->nidle;
    }
}


/*
 * The request is gone: its command stays on the connection, whose reply
 * is read and dropped when it comes.
 */

void
ngx_http_apikey_redis_cancel(ngx_http_apikey_redis_query_t *q)
{
    ngx_http_apikey_redis_cmd_t  *cmd;

    if (q->waiting) {
        ngx_queue_remove(&q->queue);
        q->waiting = 0;
    }

    cmd = q->cmd;

    if (cmd) {
        cmd->query = NULL;
        q->cmd = NULL;

        if (cmd->conn) {
            ngx_http_apikey_redis_watch(cmd->conn);
        }
    }

    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }
}


/* the request a query logs for has gone; another one takes over */

void
ngx_http_apikey_redis_log(ngx_http_apikey_redis_query_t *q, ngx_log_t *log)
{
    q->log = log;
    q->timer.log = log;
}


/*
 * A command whose reply nobody waits for (q gives the server, the command
 * and the settings; no handler) goes on a connection with room for it: an
 * open one, or a new one if the server has none.  Otherwise it is dropped
 * (NGX_DECLINED).
 */

ngx_int_t
ngx_http_apikey_redis_forget(ngx_http_apikey_redis_query_t *q)
{
    ngx_http_apikey_redis_conn_t  *conn;

    if (q->server->seeds
        && ngx_http_apikey_cluster_route(q->server, &q->command, &q->node)
           != NGX_OK)
    {
        return NGX_DECLINED;
    }

    conn = ngx_http_apikey_redis_pick(q, 0);
    if (conn == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_apikey_redis_push(conn, q->command.data, q->command.len,
                                   q->timeout)
        == NULL)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* each worker finds its own primaries: the sentinels' or the cluster's */

ngx_int_t
ngx_http_apikey_redis_init_process(ngx_cycle_t *cycle, ngx_array_t *servers)
{
    ngx_uint_t                        i;
    ngx_http_apikey_redis_server_t  **server;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    server = servers->elts;

    for (i = 0; i < servers->nelts; i++) {

        if (server[i]->sentinels
            && ngx_http_apikey_sentinel_start(cycle, server[i]) != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (server[i]->seeds
            && ngx_http_apikey_cluster_start(cycle, server[i]) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the TLS sessions a worker kept are OpenSSL's memory, not its pools' */

void
ngx_http_apikey_redis_exit_process(ngx_array_t *servers)
{
#if (NGX_HTTP_SSL)
    ngx_uint_t                        i;
    ngx_http_apikey_redis_server_t  **server;

    server = servers->elts;

    for (i = 0; i < servers->nelts; i++) {
        if (server[i]->session) {
            ngx_ssl_free_session(server[i]->session);
            server[i]->session = NULL;
        }
    }
#endif
}


/*
 * apikey_redis_upstream NAME { server ADDRESS; ... | sentinel ADDRESS; ...
 * sentinel_master NAME; sentinel_auth [user=U] password=P; | cluster
 * ADDRESS; ...
 * auth [user=U] password=P; db N; tls on; tls_trusted_certificate FILE;
 * tls_verify on|off; tls_name NAME; tls_certificate FILE;
 * tls_certificate_key FILE; }
 */

typedef struct {
    ngx_array_t                        servers;     /* of ngx_str_t */
    ngx_array_t                        sentinels;
    ngx_array_t                        seeds;
    ngx_str_t                          master;
    ngx_str_t                          sentinel_user;
    ngx_str_t                          sentinel_password;
    ngx_str_t                          user;
    ngx_str_t                          password;
    ngx_str_t                          db;
    ngx_flag_t                         tls;
    ngx_flag_t                         verify;
    ngx_str_t                          tls_name;
    ngx_str_t                          trusted;
    ngx_str_t                          certificate;
    ngx_str_t                          key;
} ngx_http_apikey_redis_block_t;


char *
ngx_http_apikey_redis_upstream(ngx_conf_t *cf, ngx_array_t *servers)
{
    char                            *rv;
    ngx_str_t                       *value, name, args[4];
    ngx_uint_t                       i, n;
    ngx_conf_t                       save;
    ngx_http_apikey_redis_block_t   *b;
    ngx_http_apikey_redis_server_t  *server, **known;

    /* the block's directives reuse cf->args */
    value = cf->args->elts;
    name = value[1];

    if (ngx_strlchr(name.data, name.data + name.len, ':')
        || ngx_strlchr(name.data, name.data + name.len, '/'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid apikey_redis_upstream name \"%V\": it "
                           "must not look like an address", &name);
        return NGX_CONF_ERROR;
    }

    known = servers->elts;

    for (i = 0; i < servers->nelts; i++) {
        if (known[i]->name.len == name.len
            && ngx_strncmp(known[i]->name.data, name.data,
                           name.len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate apikey_redis_upstream \"%V\"",
                               &name);
            return NGX_CONF_ERROR;
        }
    }

    b = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_redis_block_t));
    if (b == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&b->servers, cf->pool, 2, sizeof(ngx_str_t))
        != NGX_OK
        || ngx_array_init(&b->sentinels, cf->pool, 3, sizeof(ngx_str_t))
           != NGX_OK
        || ngx_array_init(&b->seeds, cf->pool, 3, sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    b->tls = NGX_CONF_UNSET;
    b->verify = NGX_CONF_UNSET;

    save = *cf;
    cf->handler = ngx_http_apikey_redis_block;
    cf->handler_conf = (char *) b;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (b->servers.nelts && b->sentinels.nelts) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "both \"server\" and \"sentinel\" in "
                           "apikey_redis_upstream \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    if (b->seeds.nelts && (b->servers.nelts || b->sentinels.nelts)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cluster\" cannot be mixed with \"%s\" in "
                           "apikey_redis_upstream \"%V\"",
                           b->servers.nelts ? "server" : "sentinel", &name);
        return NGX_CONF_ERROR;
    }

    if (b->seeds.nelts && b->db.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"db\" cannot be used with \"cluster\" in "
                           "apikey_redis_upstream \"%V\": a Redis Cluster "
                           "has database 0 only", &name);
        return NGX_CONF_ERROR;
    }

    if (b->servers.nelts == 0 && b->sentinels.nelts == 0
        && b->seeds.nelts == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"server\", \"sentinel\" or \"cluster\" in "
                           "apikey_redis_upstream \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    if (b->sentinels.nelts && b->master.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel\" without \"sentinel_master\" in "
                           "apikey_redis_upstream \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    if (b->sentinels.nelts == 0
        && (b->master.len || b->sentinel_password.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" without \"sentinel\" in "
                           "apikey_redis_upstream \"%V\"",
                           b->master.len ? "sentinel_master" : "sentinel_auth",
                           &name);
        return NGX_CONF_ERROR;
    }

    /* the same parameters as "apikey_redis ADDRESS ..." */

    /* no address: the block's nodes are added below */

    ngx_str_null(&args[0]);
    n = 1;

    if (b->db.len) {
        args[n++] = b->db;
    }

    if (b->user.len) {
        args[n++] = b->user;
    }

    if (b->password.len) {
        args[n++] = b->password;
    }

    server = ngx_http_apikey_redis_server(cf, servers, args, n, &name);
    if (server == NULL) {
        return NGX_CONF_ERROR;
    }

    if (b->servers.nelts) {
        if (ngx_http_apikey_redis_nodes(cf, server, &b->servers,
                                        NGX_HTTP_APIKEY_REDIS_PRIMARY)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        server->url = ((ngx_str_t *) b->servers.elts)[0];

    } else if (b->seeds.nelts) {
        if (ngx_http_apikey_redis_nodes(cf, server, &b->seeds,
                                        NGX_HTTP_APIKEY_REDIS_SEED)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        server->url = name;

    } else {
        if (ngx_http_apikey_redis_nodes(cf, server, &b->sentinels,
                                        NGX_HTTP_APIKEY_REDIS_SENTINEL)
            != NGX_OK
            || ngx_http_apikey_sentinel_conf(cf, server, &b->master,
                                             &b->sentinel_user,
                                             &b->sentinel_password)
               != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        server->url = name;
    }

    if (b->tls != 1) {
        if (b->verify != NGX_CONF_UNSET || b->tls_name.len || b->trusted.len
            || b->certificate.len || b->key.len)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the tls_* settings of apikey_redis_upstream "
                               "\"%V\" need \"tls on\"", &name);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

#if (NGX_HTTP_SSL)
    return ngx_http_apikey_redis_tls(cf, server, b);
#else
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"tls on\" needs nginx built with the SSL module");
    return NGX_CONF_ERROR;
#endif
}


/* one directive inside the block; cf->args holds it */

static char *
ngx_http_apikey_redis_block(ngx_conf_t *cf, ngx_command_t *dummy, void *conf)
{
    ngx_http_apikey_redis_block_t *b = (ngx_http_apikey_redis_block_t *) conf;

    ngx_str_t   *value, *target;
    ngx_uint_t   i, n, sentinel;
    ngx_flag_t  *flag;

    value = cf->args->elts;
    n = cf->args->nelts;

    if (n == 2
        && (ngx_strcmp(value[0].data, "server") == 0
            || ngx_strcmp(value[0].data, "sentinel") == 0
            || ngx_strcmp(value[0].data, "cluster") == 0))
    {
        target = ngx_array_push(value[0].data[0] == 'c' ? &b->seeds
                                : value[0].data[2] == 'r' ? &b->servers
                                : &b->sentinels);
        if (target == NULL) {
            return NGX_CONF_ERROR;
        }

        *target = value[1];
        return NGX_CONF_OK;
    }

    if (n == 2 && ngx_strcmp(value[0].data, "sentinel_master") == 0) {
        if (b->master.len) {
            return "duplicate \"sentinel_master\" in apikey_redis_upstream";
        }

        b->master = value[1];
        return NGX_CONF_OK;
    }

    if (n == 2 && ngx_strcmp(value[0].data, "db") == 0) {
        if (ngx_atoi(value[1].data, value[1].len) == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid database number \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        b->db.len = sizeof("db=") - 1 + value[1].len;
        b->db.data = ngx_pnalloc(cf->pool, b->db.len);
        if (b->db.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_sprintf(b->db.data, "db=%V", &value[1]);
        return NGX_CONF_OK;
    }

    if ((ngx_strcmp(value[0].data, "auth") == 0
         || ngx_strcmp(value[0].data, "sentinel_auth") == 0)
        && (n == 2 || n == 3))
    {
        sentinel = (value[0].data[0] == 's');

        for (i = 1; i < n; i++) {
            if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
                target = sentinel ? &b->sentinel_user : &b->user;
                *target = value[i];

            } else if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
                target = sentinel ? &b->sentinel_password : &b->password;
                *target = value[i];

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\" of \"%V\", "
                                   "expected user= or password=", &value[i],
                                   &value[0]);
                return NGX_CONF_ERROR;
            }
        }

        if (sentinel && b->sentinel_password.len == 0) {
            return "\"sentinel_auth\" needs password=";
        }

        return NGX_CONF_OK;
    }

    flag = NULL;

    if (ngx_strcmp(value[0].data, "tls") == 0) {
        flag = &b->tls;

    } else if (ngx_strcmp(value[0].data, "tls_verify") == 0) {
        flag = &b->verify;
    }

    if (flag && n == 2) {
        if (*flag != NGX_CONF_UNSET) {
            return "has a duplicate \"tls\" or \"tls_verify\"";
        }

        if (ngx_strcmp(value[1].data, "on") == 0) {
            *flag = 1;

        } else if (ngx_strcmp(value[1].data, "off") == 0) {
            *flag = 0;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" of \"%V\", expected "
                               "\"on\" or \"off\"", &value[1], &value[0]);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    target = NULL;

    if (ngx_strcmp(value[0].data, "tls_name") == 0) {
        target = &b->tls_name;

    } else if (ngx_strcmp(value[0].data, "tls_trusted_certificate") == 0) {
        target = &b->trusted;

    } else if (ngx_strcmp(value[0].data, "tls_certificate") == 0) {
        target = &b->certificate;

    } else if (ngx_strcmp(value[0].data, "tls_certificate_key") == 0) {
        target = &b->key;
    }

    if (target && n == 2) {
        *target = value[1];
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive or wrong number of parameters "
                       "\"%V\" in apikey_redis_upstream", &value[0]);
    return NGX_CONF_ERROR;
}


#if (NGX_HTTP_SSL)

static char *
ngx_http_apikey_redis_tls(ngx_conf_t *cf,
    ngx_http_apikey_redis_server_t *server, void *block)
{
    ngx_http_apikey_redis_block_t  *b = block;

    u_char                        *p;
    ngx_ssl_t                     *ssl;
    ngx_uint_t                     i, n;
    ngx_pool_cleanup_t            *cln;
    ngx_http_apikey_redis_node_t  *node;

    ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    ssl->log = cf->log;

    if (ngx_ssl_create(ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    if (b->certificate.len || b->key.len) {
        if (b->certificate.len == 0 || b->key.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tls_certificate\" and "
                               "\"tls_certificate_key\" go together");
            return NGX_CONF_ERROR;
        }

        if (ngx_ssl_certificate(cf, ssl, &b->certificate, &b->key, NULL)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    server->tls_verify = (b->verify != 0);

    if (server->tls_verify) {
        if (b->trusted.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tls_verify\" is on (the default with "
                               "\"tls on\") but no \"tls_trusted_certificate\""
                               " is set");
            return NGX_CONF_ERROR;
        }

        if (ngx_ssl_trusted_certificate(cf, ssl, &b->trusted, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_ssl_client_session_cache(cf, ssl, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    server->ssl = ssl;

    /* the name to verify and send (SNI): tls_name, or each host as written */

    if (b->tls_name.len == 0) {
        node = server->nnodes ? server->nodes
               : server->nseeds ? server->seeds : server->sentinels;
        n = server->nnodes ? server->nnodes
            : server->nseeds ? server->nseeds : server->nsentinels;

        for (i = 0; i < n; i++) {
            if (node[i].host.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"tls_name\" is needed for \"%V\"",
                                   &node[i].name);
                return NGX_CONF_ERROR;
            }
        }

        return NGX_CONF_OK;
    }

    /* NUL-terminated for SSL_set_tlsext_host_name() */

    p = ngx_pnalloc(cf->pool, b->tls_name.len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(p, b->tls_name.data, b->tls_name.len);
    p[b->tls_name.len] = '\0';

    server->tls_name.data = p;
    server->tls_name.len = b->tls_name.len;

    return NGX_CONF_OK;
}


static void
ngx_http_apikey_redis_tls_start(ngx_http_apikey_redis_conn_t *conn)
{
    ngx_int_t                        rc;
    ngx_str_t                       *name;
    ngx_connection_t                *c;
    ngx_http_apikey_redis_server_t  *server;

    c = conn->peer.connection;
    server = conn->server;
    name = server->tls_name.len ? &server->tls_name : &conn->node->host;

    conn->tls = 0;

    /* OpenSSL's per-connection state lives in a pool of the connection */

    c->pool = ngx_create_pool(512, c->log);
    if (c->pool == NULL) {
        conn->user->error(conn, "could not start TLS");
        return;
    }

    if (ngx_ssl_create_connection(server->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        conn->user->error(conn, "could not start TLS");
        return;
    }

    /* RFC 6066: no IP address literal as a server name */

    if (ngx_inet_addr(name->data, name->len) == INADDR_NONE
        && ngx_strlchr(name->data, name->data + name->len, ':') == NULL
        && SSL_set_tlsext_host_name(c->ssl->connection, (char *) name->data)
           == 0)
    {
        conn->user->error(conn, "could not set the TLS server name");
        return;
    }

    if (server->session
        && ngx_ssl_set_session(c, server->session) != NGX_OK)
    {
        conn->user->error(conn, "could not resume a TLS session");
        return;
    }

    c->ssl->save_session = ngx_http_apikey_redis_tls_save;

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, conn->timeout);
        }

        c->ssl->handler = ngx_http_apikey_redis_tls_done;
        return;
    }

    ngx_http_apikey_redis_tls_done(c);
}


static void
ngx_http_apikey_redis_tls_done(ngx_connection_t *c)
{
    long                             rc;
    ngx_str_t                       *name;
    ngx_http_apikey_redis_conn_t    *conn;
    ngx_http_apikey_redis_server_t  *server;

    conn = c->data;
    server = conn->server;
    name = server->tls_name.len ? &server->tls_name : &conn->node->host;

    if (!c->ssl->handshaked) {
        conn->user->error(conn, (c->write->timedout || c->read->timedout)
                                ? "timed out in the TLS handshake"
                                : "failed the TLS handshake");
        return;
    }

    if (server->tls_verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "apikey: redis \"%V\" TLS certificate verify "
                          "error: (%l:%s)", &conn->node->name, rc,
                          X509_verify_cert_error_string(rc));
            conn->user->error(conn, "failed TLS certificate verification");
            return;
        }

        if (ngx_http_apikey_redis_tls_name(c, name) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "apikey: redis \"%V\" TLS certificate does not "
                          "match \"%V\"", &conn->node->name, name);
            conn->user->error(conn, "failed TLS certificate verification");
            return;
        }
    }

    c->read->handler = ngx_http_apikey_redis_read_handler;
    c->write->handler = ngx_http_apikey_redis_write_handler;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ngx_http_apikey_redis_write_handler(c->write);
}


/*
 * An address is checked against the certificate's IP entries (nginx's
 * ngx_ssl_check_host() knows DNS names only), a name against its DNS names.
 */

static ngx_int_t
ngx_http_apikey_redis_tls_name(ngx_connection_t *c, ngx_str_t *name)
{
    int    rc;
    X509  *cert;

    if (ngx_inet_addr(name->data, name->len) == INADDR_NONE
        && ngx_strlchr(name->data, name->data + name->len, ':') == NULL)
    {
        return ngx_ssl_check_host(c, name);
    }

    cert = SSL_get1_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NGX_ERROR;
    }

    /* name is NUL-terminated (see ngx_http_apikey_redis_tls()) */
    rc = X509_check_ip_asc(cert, (const char *) name->data, 0);

    X509_free(cert);

    return (rc == 1) ? NGX_OK : NGX_ERROR;
}


/* sessions are kept per block and worker, never across blocks */

static void
ngx_http_apikey_redis_tls_save(ngx_connection_t *c)
{
    ngx_ssl_session_t             *session;
    ngx_http_apikey_redis_conn_t  *conn;

    conn = c->data;

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    if (conn->server->session) {
        ngx_ssl_free_session(conn->server->session);
    }

    conn->server->session = session;
}

#endif
