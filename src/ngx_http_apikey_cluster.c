
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_apikey_cluster.h"
#include "ngx_http_apikey_slot.h"


/* a node that does not answer CLUSTER SLOTS within this is passed over */
#define NGX_HTTP_APIKEY_CLUSTER_TIMEOUT   500

/* the least time between two refreshes of a worker's map */
#define NGX_HTTP_APIKEY_CLUSTER_FLOOR     200

/* after every known node failed, while there is no map at all */
#define NGX_HTTP_APIKEY_CLUSTER_RETRY     1000

/* addresses a worker keeps: far above the primaries of any real cluster */
#define NGX_HTTP_APIKEY_CLUSTER_NODES     256

/* CLUSTER SLOTS of a map cut into every single slot still fits */
#define NGX_HTTP_APIKEY_CLUSTER_SIZE      (8 * 1024 * 1024)
#define NGX_HTTP_APIKEY_CLUSTER_ELEMENTS  NGX_HTTP_APIKEY_SLOTS


typedef struct {
    ngx_http_apikey_cluster_watch_pt   handler;
    void                              *data;
} ngx_http_apikey_cluster_watcher_t;


/* a node learnt from the cluster; the seeds are the configuration's */

typedef struct {
    ngx_http_apikey_redis_node_t       node;
    ngx_addr_t                         addr;
    ngx_sockaddr_t                     sockaddr;
    u_char                             name[NGX_SOCKADDR_STRLEN];
    u_char                             host[NGX_INET6_ADDRSTRLEN + 1];
} ngx_http_apikey_cluster_node_t;


/*
 * A worker's map of one block.  Nodes are kept while the worker runs
 * (connections point at them; only those of a map refused, which none
 * do, are forgotten), never more than NODES: a map or a redirection
 * naming more is refused.
 */

struct ngx_http_apikey_cluster_s {
    ngx_http_apikey_redis_server_t    *server;
    ngx_log_t                          log;

    ngx_http_apikey_redis_node_t     **nodes;
    ngx_uint_t                         nnodes;
    ngx_uint_t                         nseeds;

    /* the owner of each slot: an index in nodes plus one, 0 for none */
    uint16_t                           slots[NGX_HTTP_APIKEY_SLOTS];
    uint16_t                           fresh[NGX_HTTP_APIKEY_SLOTS];

    /* the primaries of the map, for the tracking subscriptions */
    ngx_http_apikey_redis_node_t     **primaries;
    ngx_uint_t                         nprimaries;

    /* the one refresh in flight, and whom it asks */
    ngx_http_apikey_redis_conn_t      *ask;
    ngx_uint_t                         next;
    ngx_uint_t                         tries;
    ngx_msec_t                         last;
    ngx_event_t                        timer;

    ngx_uint_t                         refreshes;

    /* the tracking subscriptions, which follow the primaries */
    ngx_array_t                        watchers;

    unsigned                           mapped:1;
};


static void ngx_http_apikey_cluster_ask(ngx_http_apikey_cluster_t *c);
static void ngx_http_apikey_cluster_next(ngx_http_apikey_cluster_t *c,
    char *err);
static ngx_int_t ngx_http_apikey_cluster_reply(
    ngx_http_apikey_redis_conn_t *conn, redisReply *reply);
static void ngx_http_apikey_cluster_error(ngx_http_apikey_redis_conn_t *conn,
    char *err);
static char *ngx_http_apikey_cluster_map(ngx_http_apikey_cluster_t *c,
    ngx_http_apikey_redis_node_t *from, redisReply *reply);
static void ngx_http_apikey_cluster_apply(ngx_http_apikey_cluster_t *c,
    ngx_http_apikey_redis_node_t *from);
static void ngx_http_apikey_cluster_changed(ngx_http_apikey_cluster_t *c);
static ngx_int_t ngx_http_apikey_cluster_node(ngx_http_apikey_cluster_t *c,
    ngx_http_apikey_redis_node_t *from, u_char *ip, size_t len,
    ngx_int_t port);
static ngx_http_apikey_redis_node_t *ngx_http_apikey_cluster_candidate(
    ngx_http_apikey_cluster_t *c);
static void ngx_http_apikey_cluster_timer(ngx_event_t *ev);
static void ngx_http_apikey_cluster_cleanup(void *data);
static ngx_int_t ngx_http_apikey_cluster_key(ngx_str_t *command,
    ngx_str_t *key);


static ngx_http_apikey_redis_user_t  ngx_http_apikey_cluster_user = {
    ngx_http_apikey_cluster_reply,
    ngx_http_apikey_cluster_error,
    NGX_HTTP_APIKEY_CLUSTER_SIZE,
    NGX_HTTP_APIKEY_CLUSTER_ELEMENTS
};


ngx_int_t
ngx_http_apikey_cluster_start(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_server_t *server)
{
    ngx_uint_t                  i;
    ngx_pool_cleanup_t         *cln;
    ngx_http_apikey_cluster_t  *c;

    c = ngx_pcalloc(cycle->pool, sizeof(ngx_http_apikey_cluster_t));
    if (c == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_apikey_cluster_cleanup;
    cln->data = c;

    c->nodes = ngx_pcalloc(cycle->pool, NGX_HTTP_APIKEY_CLUSTER_NODES
                                        * sizeof(void *));
    c->primaries = ngx_pcalloc(cycle->pool, NGX_HTTP_APIKEY_CLUSTER_NODES
                                            * sizeof(void *));
    if (c->nodes == NULL || c->primaries == NULL) {
        return NGX_ERROR;
    }

    if (ngx_array_init(&c->watchers, cycle->pool, 2,
                       sizeof(ngx_http_apikey_cluster_watcher_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    c->server = server;
    c->log = *cycle->log;

    for (i = 0; i < server->nseeds && i < NGX_HTTP_APIKEY_CLUSTER_NODES; i++)
    {
        c->nodes[c->nnodes++] = &server->seeds[i];
    }

    c->nseeds = c->nnodes;

    c->timer.handler = ngx_http_apikey_cluster_timer;
    c->timer.data = c;
    c->timer.log = &c->log;
    c->timer.cancelable = 1;

    /* the workers do not all lean on the first seed */
    c->next = ngx_worker;

    server->cluster = c;

    ngx_time_update();

    ngx_http_apikey_cluster_ask(c);

    return NGX_OK;
}


/*
 * The primary of the slot of the command's key: NGX_AGAIN while there is
 * no map yet, NGX_DECLINED if no primary serves the slot now (a refresh
 * is due).
 */

ngx_int_t
ngx_http_apikey_cluster_route(ngx_http_apikey_redis_server_t *server,
    ngx_str_t *command, ngx_http_apikey_redis_node_t **node)
{
    ngx_str_t                   key;
    ngx_uint_t                  slot, owner;
    ngx_http_apikey_cluster_t  *c;

    c = server->cluster;

    if (c == NULL || !c->mapped) {
        return NGX_AGAIN;
    }

    if (ngx_http_apikey_cluster_key(command, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    slot = ngx_http_apikey_slot(key.data, key.len);
    owner = c->slots[slot];

    if (owner == 0) {
        ngx_log_error(NGX_LOG_ERR, &c->log, 0,
                      "apikey: redis \"%V\": no primary serves slot %ui",
                      &server->url, slot);
        ngx_http_apikey_cluster_refresh(server, "a slot has no primary");
        return NGX_DECLINED;
    }

    *node = c->nodes[owner - 1];

    return NGX_OK;
}


/*
 * The key of a command formatted by hiredis, its second argument (HMGET
 * and HSET alike): "*<n>\r\n$<len>\r\n<name>\r\n$<len>\r\n<key>\r\n".
 */

static ngx_int_t
ngx_http_apikey_cluster_key(ngx_str_t *command, ngx_str_t *key)
{
    u_char      *p, *last;
    ngx_int_t    len;
    ngx_uint_t   arg;

    p = command->data;
    last = p + command->len;

    p = ngx_strlchr(p, last, '\n');
    if (p == NULL) {
        return NGX_ERROR;
    }

    p++;

    for (arg = 0; arg < 2; arg++) {

        if (p == last || *p != '$') {
            return NGX_ERROR;
        }

        key->data = ngx_strlchr(p, last, '\r');
        if (key->data == NULL) {
            return NGX_ERROR;
        }

        len = ngx_atoi(p + 1, key->data - p - 1);
        if (len == NGX_ERROR || last - key->data < 2 + len) {
            return NGX_ERROR;
        }

        key->data += 2;
        key->len = len;

        p = key->data + len + 2;

        if (p > last) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A "-MOVED <slot> <ip>:<port>" or "-ASK <slot> <ip>:<port>" error names
 * where the lookup goes (NGX_OK); -MOVED updates the slot's owner now and
 * asks for a refresh.  -TRYAGAIN and -CLUSTERDOWN, and any other error,
 * are answered as they are (NGX_DECLINED), the first two after asking for
 * a refresh.  A redirection that cannot be followed is NGX_ERROR, logged.
 */

ngx_int_t
ngx_http_apikey_cluster_redirect(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_node_t *from, redisReply *reply,
    ngx_http_apikey_redis_node_t **node, ngx_uint_t *ask)
{
    u_char                     *p, *last, *slot, *addr, *colon;
    ngx_int_t                   n, port, index;
    ngx_uint_t                  i;
    ngx_http_apikey_cluster_t  *c;

    c = server->cluster;

    p = (u_char *) reply->str;
    last = p + reply->len;

    if (reply->len >= 8 && ngx_strncmp(p, "TRYAGAIN", 8) == 0) {
        ngx_http_apikey_cluster_refresh(server, "a node answered TRYAGAIN");
        return NGX_DECLINED;
    }

    if (reply->len >= 11 && ngx_strncmp(p, "CLUSTERDOWN", 11) == 0) {
        ngx_http_apikey_cluster_refresh(server,
                                        "a node answered CLUSTERDOWN");
        return NGX_DECLINED;
    }

    if (reply->len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        *ask = 0;
        p += 6;

    } else if (reply->len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        *ask = 1;
        p += 4;

    } else {
        return NGX_DECLINED;
    }

    if (c == NULL) {
        return NGX_DECLINED;
    }

    slot = p;

    addr = ngx_strlchr(p, last, ' ');
    if (addr == NULL) {
        goto invalid;
    }

    n = ngx_atoi(slot, addr - slot);
    addr++;

    /* the port follows the last colon: an IPv6 address has colons too */

    for (colon = last; colon > addr && colon[-1] != ':'; colon--) {
        /* void */
    }

    if (n == NGX_ERROR || n >= NGX_HTTP_APIKEY_SLOTS || colon == addr) {
        goto invalid;
    }

    port = ngx_atoi(colon, last - colon);

    index = ngx_http_apikey_cluster_node(c, from, addr, colon - 1 - addr,
                                         port);
    if (index == NGX_ERROR) {
        goto invalid;
    }

    *node = c->nodes[index];

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &c->log, 0,
                   "apikey redis: %s slot %i to \"%V\"",
                   *ask ? "ask" : "moved", n, &(*node)->name);

    if (!*ask) {
        c->slots[n] = (uint16_t) (index + 1);
        ngx_http_apikey_cluster_refresh(server, "a node answered MOVED");
    }

    /* a primary not in the map yet: its subscription first */

    for (i = 0; i < c->nprimaries; i++) {
        if (c->primaries[i] == *node) {
            return NGX_OK;
        }
    }

    c->primaries[c->nprimaries++] = *node;

    ngx_http_apikey_cluster_changed(c);

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_ERR, &c->log, 0,
                  "apikey: redis \"%V\": \"%V\" sent an invalid "
                  "redirection: %*s", &server->url, &from->name,
                  (size_t) ngx_min(reply->len, 128), reply->str);

    ngx_http_apikey_cluster_refresh(server, "an invalid redirection");

    return NGX_ERROR;
}


/* a node's connection failed: the map may be stale */

void
ngx_http_apikey_cluster_lost(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_node_t *node, char *err)
{
    ngx_http_apikey_cluster_t  *c;

    c = server->cluster;

    if (c == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, &c->log, 0,
                  "apikey: redis \"%V\": \"%V\" %s",
                  &server->url, &node->name, err);

    ngx_http_apikey_cluster_refresh(server, "a node was lost");
}


/*
 * One refresh at a time, however many lookups ask for it, and never two
 * within the floor: a failover or a resharding costs the cluster a few
 * CLUSTER SLOTS per worker, not one per lookup.
 */

void
ngx_http_apikey_cluster_refresh(ngx_http_apikey_redis_server_t *server,
    char *reason)
{
    ngx_msec_t                  elapsed;
    ngx_http_apikey_cluster_t  *c;

    c = server->cluster;

    if (c == NULL || c->ask || c->timer.timer_set
        || ngx_exiting || ngx_terminate)
    {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &c->log, 0,
                   "apikey redis: slot map refresh: %s", reason);

    elapsed = ngx_current_msec - c->last;

    if (elapsed < NGX_HTTP_APIKEY_CLUSTER_FLOOR) {
        ngx_add_timer(&c->timer, NGX_HTTP_APIKEY_CLUSTER_FLOOR - elapsed);
        return;
    }

    c->tries = 0;
    ngx_http_apikey_cluster_ask(c);
}


/*
 * The handler runs on every change of the map, before any lookup is
 * routed by the new one: a subscription to a new primary must be up
 * before the cache may keep what that primary answers.
 */

ngx_int_t
ngx_http_apikey_cluster_watch(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_cluster_watch_pt handler, void *data)
{
    ngx_http_apikey_cluster_watcher_t  *w;

    if (server->cluster == NULL) {
        return NGX_ERROR;
    }

    w = ngx_array_push(&server->cluster->watchers);
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->handler = handler;
    w->data = data;

    return NGX_OK;
}


/* the nodes a tracking subscription goes to; NULL before the first map */

ngx_uint_t
ngx_http_apikey_cluster_primaries(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_node_t ***nodes)
{
    ngx_http_apikey_cluster_t  *c;

    c = server->cluster;

    if (c == NULL || !c->mapped) {
        *nodes = NULL;
        return 0;
    }

    *nodes = c->primaries;

    return c->nprimaries;
}


static void
ngx_http_apikey_cluster_ask(ngx_http_apikey_cluster_t *c)
{
    static const char   *argv[] = { "CLUSTER", "SLOTS" };
    static const size_t  argvlen[] = { 7, 5 };

    ngx_http_apikey_redis_node_t  *node;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (c->ask) {
        ngx_http_apikey_redis_close(c->ask);
        c->ask = NULL;
    }

    if (c->timer.timer_set) {
        ngx_del_timer(&c->timer);
    }

    c->last = ngx_current_msec;
    c->refreshes++;

    node = ngx_http_apikey_cluster_candidate(c);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &c->log, 0,
                   "apikey redis: asking \"%V\" for the slot map (%ui)",
                   &node->name, c->refreshes);

    c->ask = ngx_http_apikey_redis_connect(c->server, node,
                                           &ngx_http_apikey_cluster_user, c,
                                           NGX_HTTP_APIKEY_CLUSTER_TIMEOUT,
                                           &c->log);
    if (c->ask == NULL) {
        ngx_http_apikey_cluster_next(c, "could not be connected to");
        return;
    }

    /* closed at once on graceful shutdown, as idle connections are */
    c->ask->peer.connection->idle = 1;

    if (ngx_http_apikey_redis_command(c->ask, 2, argv, argvlen) != NGX_OK) {
        ngx_http_apikey_cluster_next(c, "could not be asked CLUSTER SLOTS");
        return;
    }

    ngx_add_timer(&c->timer, NGX_HTTP_APIKEY_CLUSTER_TIMEOUT);
}


/*
 * The next node is asked at once, until each was asked once; then, with
 * no map at all, again after a pause; with a map, at the next request.
 */

static void
ngx_http_apikey_cluster_next(ngx_http_apikey_cluster_t *c, char *err)
{
    ngx_log_error(NGX_LOG_WARN, &c->log, 0,
                  "apikey: redis \"%V\": \"%V\" %s, asking the next node "
                  "for the slot map", &c->server->url,
                  &ngx_http_apikey_cluster_candidate(c)->name, err);

    if (c->ask) {
        ngx_http_apikey_redis_close(c->ask);
        c->ask = NULL;
    }

    if (c->timer.timer_set) {
        ngx_del_timer(&c->timer);
    }

    c->next++;

    if (++c->tries < c->nseeds + c->nprimaries) {
        ngx_http_apikey_cluster_ask(c);
        return;
    }

    c->tries = 0;

    if (!c->mapped && !ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&c->timer, NGX_HTTP_APIKEY_CLUSTER_RETRY);
    }
}


static ngx_int_t
ngx_http_apikey_cluster_reply(ngx_http_apikey_redis_conn_t *conn,
    redisReply *reply)
{
    char                          *err;
    ngx_uint_t                     known;
    ngx_http_apikey_cluster_t     *c;
    ngx_http_apikey_redis_node_t  *from;

    c = conn->data;
    from = conn->node;
    known = c->nnodes;

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, &c->log, 0,
                      "apikey: redis \"%V\": \"%V\" said: %*s",
                      &c->server->url, &from->name,
                      (size_t) ngx_min(reply->len, 128), reply->str);
    }

    err = ngx_http_apikey_cluster_map(c, from, reply);

    freeReplyObject(reply);

    if (err) {
        /* nodes of a map refused are forgotten: no connection has them */

        while (c->nnodes > known) {
            ngx_free(c->nodes[--c->nnodes]);
        }

        ngx_http_apikey_cluster_next(c, err);
        return NGX_DONE;
    }

    ngx_http_apikey_redis_close(c->ask);
    c->ask = NULL;

    if (c->timer.timer_set) {
        ngx_del_timer(&c->timer);
    }

    c->tries = 0;

    ngx_http_apikey_cluster_apply(c, from);

    return NGX_DONE;
}


static void
ngx_http_apikey_cluster_error(ngx_http_apikey_redis_conn_t *conn, char *err)
{
    ngx_http_apikey_cluster_t  *c;

    c = conn->data;

    if (err == NULL) {
        ngx_http_apikey_redis_close(c->ask);
        c->ask = NULL;
        return;
    }

    ngx_http_apikey_cluster_next(c, err);
}


/*
 * CLUSTER SLOTS into c->fresh, checked whole before any of it is used:
 * [[start, end, [ip, port, id, ...], replicas...], ...].  Only the
 * primary of each range is taken: lookups never go to replicas.
 */

static char *
ngx_http_apikey_cluster_map(ngx_http_apikey_cluster_t *c,
    ngx_http_apikey_redis_node_t *from, redisReply *reply)
{
    size_t       i;
    ngx_int_t    index;
    ngx_uint_t   covered;
    long long    start, end, s;
    redisReply  *range, *primary, *ip, *port;

    if (reply->type != REDIS_REPLY_ARRAY) {
        return "sent no slot map";
    }

    ngx_memzero(c->fresh, sizeof(c->fresh));

    covered = 0;

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
            || range->element[0]->type != REDIS_REPLY_INTEGER
            || range->element[1]->type != REDIS_REPLY_INTEGER
            || range->element[2]->type != REDIS_REPLY_ARRAY)
        {
            return "sent a malformed slot map";
        }

        start = range->element[0]->integer;
        end = range->element[1]->integer;
        primary = range->element[2];

        if (start < 0 || end < start || end >= NGX_HTTP_APIKEY_SLOTS
            || primary->elements < 2)
        {
            return "sent a malformed slot map";
        }

        ip = primary->element[0];
        port = primary->element[1];

        if ((ip->type != REDIS_REPLY_STRING && ip->type != REDIS_REPLY_NIL)
            || port->type != REDIS_REPLY_INTEGER)
        {
            return "sent a malformed slot map";
        }

        /* an endpoint the node does not know ("?" or null): not served */

        if (ip->type == REDIS_REPLY_NIL
            || (ip->len == 1 && ip->str[0] == '?'))
        {
            continue;
        }

        index = ngx_http_apikey_cluster_node(c, from, (u_char *) ip->str,
                                             ip->len,
                                             port->integer > 65535
                                             ? NGX_ERROR
                                             : (ngx_int_t) port->integer);
        if (index == NGX_ERROR) {
            return "sent a slot map with an unusable address";
        }

        for (s = start; s <= end; s++) {
            if (c->fresh[s] == 0) {
                covered++;
            }

            c->fresh[s] = (uint16_t) (index + 1);
        }
    }

    if (covered == 0) {
        return "sent an empty slot map";
    }

    return NULL;
}


/* the checked map replaces the old one; the waiting lookups go */

static void
ngx_http_apikey_cluster_apply(ngx_http_apikey_cluster_t *c,
    ngx_http_apikey_redis_node_t *from)
{
    u_char      seen[NGX_HTTP_APIKEY_CLUSTER_NODES];
    ngx_uint_t  i, j, n, covered, changed, level;

    changed = !c->mapped
              || ngx_memcmp(c->slots, c->fresh, sizeof(c->slots)) != 0;

    ngx_memcpy(c->slots, c->fresh, sizeof(c->slots));

    ngx_memzero(seen, sizeof(seen));
    covered = 0;
    n = 0;

    for (i = 0; i < NGX_HTTP_APIKEY_SLOTS; i++) {
        if (c->slots[i] == 0) {
            continue;
        }

        covered++;

        if (!seen[c->slots[i] - 1]) {
            seen[c->slots[i] - 1] = 1;
            n++;
        }
    }

    /*
     * a redirection may have changed the slots already, not the set of
     * primaries the subscriptions follow
     */

    for (i = 0; i < c->nprimaries && !changed; i++) {
        for (j = 0; j < c->nnodes; j++) {
            if (c->nodes[j] == c->primaries[i]) {
                changed = !seen[j];
                break;
            }
        }
    }

    changed = changed || n != c->nprimaries;

    for (i = 0, n = 0; i < c->nnodes; i++) {
        if (seen[i]) {
            c->primaries[n++] = c->nodes[i];
        }
    }

    c->nprimaries = n;
    c->mapped = 1;

    /* a map that changed is worth telling; one that did not, less so */
    level = changed ? NGX_LOG_NOTICE : NGX_LOG_INFO;

    ngx_log_error(level, &c->log, 0,
                  "apikey: redis \"%V\": slot map from \"%V\"%s: "
                  "%ui slots on %ui primaries (refresh %ui)",
                  &c->server->url, &from->name,
                  changed ? "" : " unchanged", covered, n, c->refreshes);

    if (changed) {
        ngx_http_apikey_cluster_changed(c);
    }

    ngx_http_apikey_redis_release(c->server);
}


static void
ngx_http_apikey_cluster_changed(ngx_http_apikey_cluster_t *c)
{
    ngx_uint_t                          i;
    ngx_http_apikey_cluster_watcher_t  *w;

    w = c->watchers.elts;

    for (i = 0; i < c->watchers.nelts; i++) {
        w[i].handler(w[i].data);
    }
}


/*
 * The node of an address a node named, learnt once: an IP address (a
 * name would have to be resolved, which blocks) or, empty, the address
 * of the node that named it.  Its index, or NGX_ERROR.
 */

static ngx_int_t
ngx_http_apikey_cluster_node(ngx_http_apikey_cluster_t *c,
    ngx_http_apikey_redis_node_t *from, u_char *ip, size_t len,
    ngx_int_t port)
{
    ngx_uint_t                       i;
    in_addr_t                        inaddr;
    ngx_sockaddr_t                   sa;
    socklen_t                        socklen;
    ngx_http_apikey_cluster_node_t  *cn;
#if (NGX_HAVE_INET6)
    u_char                           inaddr6[16];
#endif

    if (port < 1 || port > 65535 || len > NGX_INET6_ADDRSTRLEN) {
        return NGX_ERROR;
    }

    ngx_memzero(&sa, sizeof(ngx_sockaddr_t));

    if (len == 0) {
        socklen = from->addr->socklen;
        ngx_memcpy(&sa, from->addr->sockaddr, socklen);
        ip = from->host.data;
        len = ngx_min(from->host.len, NGX_INET6_ADDRSTRLEN);

    } else if ((inaddr = ngx_inet_addr(ip, len)) != INADDR_NONE) {
        sa.sockaddr_in.sin_family = AF_INET;
        sa.sockaddr_in.sin_addr.s_addr = inaddr;
        socklen = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
    } else if (ngx_inet6_addr(ip, len, inaddr6) == NGX_OK) {
        sa.sockaddr_in6.sin6_family = AF_INET6;
        ngx_memcpy(sa.sockaddr_in6.sin6_addr.s6_addr, inaddr6, 16);
        socklen = sizeof(struct sockaddr_in6);
#endif

    } else {
        return NGX_ERROR;
    }

    ngx_inet_set_port(&sa.sockaddr, (in_port_t) port);

    for (i = 0; i < c->nnodes; i++) {
        if (ngx_cmp_sockaddr(&sa.sockaddr, socklen,
                             c->nodes[i]->addr->sockaddr,
                             c->nodes[i]->addr->socklen, 1)
            == NGX_OK)
        {
            return i;
        }
    }

    if (c->nnodes == NGX_HTTP_APIKEY_CLUSTER_NODES) {
        ngx_log_error(NGX_LOG_ERR, &c->log, 0,
                      "apikey: redis \"%V\": more than %d nodes named",
                      &c->server->url, NGX_HTTP_APIKEY_CLUSTER_NODES);
        return NGX_ERROR;
    }

    /* the node is its struct's first member: ngx_free() takes either */

    cn = ngx_calloc(sizeof(ngx_http_apikey_cluster_node_t), &c->log);
    if (cn == NULL) {
        return NGX_ERROR;
    }

    cn->sockaddr = sa;
    cn->addr.sockaddr = &cn->sockaddr.sockaddr;
    cn->addr.socklen = socklen;

    cn->node.addr = &cn->addr;
    cn->node.role = NGX_HTTP_APIKEY_REDIS_PRIMARY;

    cn->node.name.data = cn->name;
    cn->node.name.len = ngx_sock_ntop(&cn->sockaddr.sockaddr, socklen,
                                      cn->name, NGX_SOCKADDR_STRLEN, 1);
    cn->addr.name = cn->node.name;

    /* TLS verifies against the address as the cluster gave it */

    ngx_memcpy(cn->host, ip, len);
    cn->host[len] = '\0';
    cn->node.host.data = cn->host;
    cn->node.host.len = len;

    c->nodes[c->nnodes] = &cn->node;

    return c->nnodes++;
}


/*
 * Who is asked for the map: the seeds and the primaries of the map, never
 * every address some node ever named.
 */

static ngx_http_apikey_redis_node_t *
ngx_http_apikey_cluster_candidate(ngx_http_apikey_cluster_t *c)
{
    ngx_uint_t  k;

    k = c->next % (c->nseeds + c->nprimaries);

    return (k < c->nseeds) ? c->nodes[k] : c->primaries[k - c->nseeds];
}


/* a node did not answer in time, or the floor or a pause is over */

static void
ngx_http_apikey_cluster_timer(ngx_event_t *ev)
{
    ngx_http_apikey_cluster_t  *c;

    c = ev->data;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (c->ask) {
        ngx_http_apikey_cluster_next(c, "did not answer CLUSTER SLOTS in "
                                        "time");
        return;
    }

    ngx_http_apikey_cluster_ask(c);
}


/* the nodes learnt are the heap's, the seeds the configuration's */

static void
ngx_http_apikey_cluster_cleanup(void *data)
{
    ngx_http_apikey_cluster_t  *c = data;

    while (c->nnodes > c->nseeds) {
        ngx_free(c->nodes[--c->nnodes]);
    }
}
