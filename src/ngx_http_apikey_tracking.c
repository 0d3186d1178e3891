
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_tracking.h"
#include "ngx_http_apikey_cache.h"
#include "ngx_http_apikey_metrics.h"
#include "ngx_http_apikey_cluster.h"


/* how often the subscription is checked, and how soon it is tried again */
#define NGX_HTTP_APIKEY_TRACKING_PING     1000
#define NGX_HTTP_APIKEY_TRACKING_RETRY    500
#define NGX_HTTP_APIKEY_TRACKING_REFUSED  5000

/* keys one invalidation message may carry, and its bytes */
#define NGX_HTTP_APIKEY_TRACKING_ELEMENTS 4096
#define NGX_HTTP_APIKEY_TRACKING_SIZE     (1024 * 1024)


typedef struct ngx_http_apikey_tracking_s  ngx_http_apikey_tracking_t;

typedef ngx_int_t (*ngx_http_apikey_tracking_state_pt)(
    ngx_http_apikey_tracking_t *t, redisReply *reply);


struct ngx_http_apikey_tracking_s {
    ngx_shm_zone_t                      *zone;
    ngx_http_apikey_source_t            *source;

    ngx_http_apikey_redis_conn_t        *conn;

    /* what the next reply must be */
    ngx_http_apikey_tracking_state_pt    state;

    ngx_event_t                          timer;
    ngx_log_t                            log;

    ngx_uint_t                           pings;
    ngx_msec_t                           retry;

    /*
     * On a cluster, a source's subscriptions are one per primary (subs),
     * each with its node and group; the worker vouches for the source
     * while every one of them is live.
     */
    ngx_http_apikey_redis_node_t        *node;
    ngx_http_apikey_tracking_t          *group;
    ngx_array_t                          subs;

    /* live at least once: any further time is a reconnection */
    unsigned                             subscribed:1;
};


static void ngx_http_apikey_tracking_connect(ngx_http_apikey_tracking_t *t);
static ngx_int_t ngx_http_apikey_tracking_client_id(
    ngx_http_apikey_tracking_t *t, redisReply *reply);
static ngx_int_t ngx_http_apikey_tracking_on(ngx_http_apikey_tracking_t *t,
    redisReply *reply);
static ngx_int_t ngx_http_apikey_tracking_subscribed(
    ngx_http_apikey_tracking_t *t, redisReply *reply);
static ngx_int_t ngx_http_apikey_tracking_message(
    ngx_http_apikey_tracking_t *t, redisReply *reply);
static void ngx_http_apikey_tracking_timer(ngx_event_t *ev);
static void ngx_http_apikey_tracking_down(ngx_http_apikey_tracking_t *t,
    char *reason);
static ngx_int_t ngx_http_apikey_tracking_reply(
    ngx_http_apikey_redis_conn_t *conn, redisReply *reply);
static void ngx_http_apikey_tracking_error(ngx_http_apikey_redis_conn_t *conn,
    char *err);
static void ngx_http_apikey_tracking_refused(ngx_http_apikey_tracking_t *t,
    const char *what, redisReply *reply);
static void ngx_http_apikey_tracking_vouch(ngx_http_apikey_tracking_t *t,
    ngx_uint_t state);
static ngx_uint_t ngx_http_apikey_tracking_live(
    ngx_http_apikey_tracking_t *group);
static void ngx_http_apikey_tracking_map(void *data);
static void ngx_http_apikey_tracking_close(ngx_http_apikey_tracking_t *t);
static void ngx_http_apikey_tracking_cleanup(void *data);


/* the node in a log line: none but on a cluster */
static ngx_str_t  ngx_http_apikey_tracking_none = ngx_null_string;

#define ngx_http_apikey_tracking_node(t)                                     \
    ((t)->node ? &(t)->node->name : &ngx_http_apikey_tracking_none)


static ngx_http_apikey_redis_user_t  ngx_http_apikey_tracking_user = {
    ngx_http_apikey_tracking_reply,
    ngx_http_apikey_tracking_error,
    NGX_HTTP_APIKEY_TRACKING_SIZE,
    NGX_HTTP_APIKEY_TRACKING_ELEMENTS
};


/*
 * Every worker subscribes on its own: Redis sends each invalidation to
 * all of them, and any one that runs drops the entry from the shared
 * zone.  The cost is a connection per worker and cached source.
 */

ngx_int_t
ngx_http_apikey_tracking_init_process(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *amcf)
{
    ngx_uint_t                   i;
    ngx_pool_cleanup_t          *cln;
    ngx_http_apikey_source_t   **source;
    ngx_http_apikey_tracking_t  *t;

    if (amcf->cache == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE)
        || ngx_worker >= NGX_HTTP_APIKEY_CACHE_WORKERS)
    {
        return NGX_OK;
    }

    /*
     * the cached time is the master's from when it began to read the
     * configuration, which may be seconds ago: the handshake's deadline
     * counts from now
     */

    ngx_time_update();

    source = amcf->sources.elts;

    for (i = 0; i < amcf->sources.nelts; i++) {

        if (!source[i]->cached) {
            continue;
        }

        t = ngx_pcalloc(cycle->pool, sizeof(ngx_http_apikey_tracking_t));
        if (t == NULL) {
            return NGX_ERROR;
        }

        t->zone = amcf->cache;
        t->source = source[i];

        t->log = *cycle->log;

        t->timer.handler = ngx_http_apikey_tracking_timer;
        t->timer.data = t;
        t->timer.log = &t->log;
        t->timer.cancelable = 1;

        t->retry = NGX_HTTP_APIKEY_TRACKING_RETRY;

        if (source[i]->server->seeds == NULL) {
            ngx_http_apikey_tracking_connect(t);
            continue;
        }

        /* subscriptions come with the slot map, one per primary */

        cln = ngx_pool_cleanup_add(cycle->pool, 0);

        if (cln == NULL
            || ngx_array_init(&t->subs, cycle->pool, 4, sizeof(void *))
               != NGX_OK
            || ngx_http_apikey_cluster_watch(source[i]->server,
                                             ngx_http_apikey_tracking_map, t)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_apikey_tracking_cleanup;
        cln->data = t;
    }

    return NGX_OK;
}


static void
ngx_http_apikey_tracking_connect(ngx_http_apikey_tracking_t *t)
{
    static const char   *argv[] = { "CLIENT", "ID" };
    static const size_t  argvlen[] = { 6, 2 };

    if (t->node) {
        t->conn = ngx_http_apikey_redis_connect(t->source->server, t->node,
                                                &ngx_http_apikey_tracking_user,
                                                t,
                                                NGX_HTTP_APIKEY_TRACKING_PING,
                                                &t->log);

    } else {
        t->conn = ngx_http_apikey_redis_open(t->source->server,
                                             &ngx_http_apikey_tracking_user,
                                             t, NGX_HTTP_APIKEY_TRACKING_PING,
                                             &t->log);
    }

    if (t->conn == NULL) {
        ngx_add_timer(&t->timer, t->retry);
        return;
    }

    /* closed at once on graceful shutdown, as idle connections are */
    t->conn->peer.connection->idle = 1;

    t->pings = 0;
    t->state = ngx_http_apikey_tracking_client_id;

    if (ngx_http_apikey_redis_command(t->conn, 2, argv, argvlen) != NGX_OK) {
        ngx_http_apikey_tracking_down(t, "could not send CLIENT ID");
        return;
    }

    /* the handshake must be over by the first check */
    ngx_add_timer(&t->timer, NGX_HTTP_APIKEY_TRACKING_PING);
}


/* invalidations of our prefix are redirected to this very connection */

static ngx_int_t
ngx_http_apikey_tracking_client_id(ngx_http_apikey_tracking_t *t,
    redisReply *reply)
{
    u_char       id[NGX_INT64_LEN];
    size_t       argvlen[8];
    ngx_uint_t   i;
    const char  *argv[8];

    if (reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_apikey_tracking_refused(t, "CLIENT ID", reply);
        return NGX_ERROR;
    }

    argv[0] = "CLIENT";
    argv[1] = "TRACKING";
    argv[2] = "on";
    argv[3] = "REDIRECT";
    argv[4] = (const char *) id;
    argv[5] = "BCAST";
    argv[6] = "PREFIX";
    argv[7] = (const char *) t->source->prefix.data;

    for (i = 0; i < 8; i++) {
        if (i != 4 && i != 7) {
            argvlen[i] = ngx_strlen(argv[i]);
        }
    }

    argvlen[4] = ngx_sprintf(id, "%L", (int64_t) reply->integer) - id;
    argvlen[7] = t->source->prefix.len;

    if (ngx_http_apikey_redis_command(t->conn, 8, argv, argvlen) != NGX_OK) {
        return NGX_ERROR;
    }

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    argv[1] = "__redis__:invalidate";
    argvlen[1] = 20;

    if (ngx_http_apikey_redis_command(t->conn, 2, argv, argvlen) != NGX_OK) {
        return NGX_ERROR;
    }

    t->state = ngx_http_apikey_tracking_on;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_tracking_on(ngx_http_apikey_tracking_t *t,
    redisReply *reply)
{
    if (reply->type != REDIS_REPLY_STATUS) {
        ngx_http_apikey_tracking_refused(t, "CLIENT TRACKING", reply);
        return NGX_ERROR;
    }

    t->state = ngx_http_apikey_tracking_subscribed;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_tracking_subscribed(ngx_http_apikey_tracking_t *t,
    redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING
        || ngx_strcmp(reply->element[0]->str, "subscribe") != 0)
    {
        ngx_http_apikey_tracking_refused(t, "SUBSCRIBE", reply);
        return NGX_ERROR;
    }

    /* from now on every write is heard of */

    t->retry = NGX_HTTP_APIKEY_TRACKING_RETRY;
    t->state = ngx_http_apikey_tracking_message;

    ngx_http_apikey_tracking_vouch(t, NGX_HTTP_APIKEY_CACHE_LIVE);

    if (t->subscribed) {
        ngx_http_apikey_metrics_resubscribed(t->source);
    }

    t->subscribed = 1;

    ngx_log_error(NGX_LOG_INFO, &t->log, 0,
                  "apikey cache: invalidations from redis \"%V\"%s%V on "
                  "\"%V\" are live", &t->source->server->url,
                  t->node ? " node " : "", ngx_http_apikey_tracking_node(t),
                  &t->source->prefix);

    if (t->timer.timer_set) {
        ngx_del_timer(&t->timer);
    }

    ngx_add_timer(&t->timer, NGX_HTTP_APIKEY_TRACKING_PING);

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_tracking_message(ngx_http_apikey_tracking_t *t,
    redisReply *reply)
{
    size_t       i;
    redisReply  *keys, *key;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return NGX_ERROR;
    }

    if (ngx_strcmp(reply->element[0]->str, "pong") == 0) {
        t->pings = 0;
        ngx_http_apikey_tracking_vouch(t, NGX_HTTP_APIKEY_CACHE_HEARD);
        return NGX_OK;
    }

    if (ngx_strcmp(reply->element[0]->str, "message") != 0
        || reply->elements != 3)
    {
        return NGX_OK;
    }

    keys = reply->element[2];

    /* FLUSHALL and FLUSHDB invalidate everything with a null */

    if (keys->type == REDIS_REPLY_NIL) {
        ngx_http_apikey_cache_flush(t->zone, t->source->index);
        return NGX_OK;
    }

    if (keys->type != REDIS_REPLY_ARRAY) {
        return NGX_OK;
    }

    for (i = 0; i < keys->elements; i++) {
        key = keys->element[i];

        if (key->type == REDIS_REPLY_STRING) {
            ngx_http_apikey_cache_invalidate(t->zone, t->source,
                                             (u_char *) key->str, key->len);
        }
    }

    return NGX_OK;
}


static void
ngx_http_apikey_tracking_timer(ngx_event_t *ev)
{
    ngx_http_apikey_tracking_t  *t;

    static const char   *argv[] = { "PING" };
    static const size_t  argvlen[] = { 4 };

    t = ev->data;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (t->conn == NULL) {
        ngx_http_apikey_tracking_connect(t);
        return;
    }

    if (t->state != ngx_http_apikey_tracking_message) {
        ngx_http_apikey_tracking_down(t, "did not complete the "
                                         "subscription in time");
        return;
    }

    if (t->pings) {
        ngx_http_apikey_tracking_down(t, "did not answer PING in time");
        return;
    }

    if (ngx_http_apikey_redis_command(t->conn, 1, argv, argvlen) != NGX_OK) {
        ngx_http_apikey_tracking_down(t, "failed to send PING");
        return;
    }

    t->pings++;

    ngx_add_timer(&t->timer, NGX_HTTP_APIKEY_TRACKING_PING);
}


/* reason is NULL on shutdown: nothing worth logging */

static void
ngx_http_apikey_tracking_down(ngx_http_apikey_tracking_t *t, char *reason)
{
    ngx_http_apikey_tracking_vouch(t, NGX_HTTP_APIKEY_CACHE_DOWN);

    if (reason) {
        ngx_log_error(NGX_LOG_ERR, &t->log, 0,
                      "apikey cache: redis \"%V\"%s%V %s; this worker "
                      "subscribes again, the cache is bypassed while no "
                      "worker is subscribed", &t->source->server->url,
                      t->node ? " node " : "", ngx_http_apikey_tracking_node(t),
                      reason);

        /* a primary lost on a cluster: the map may have changed */

        if (t->node) {
            ngx_http_apikey_cluster_refresh(t->source->server,
                                            "a subscription was lost");
        }
    }

    if (t->conn) {
        ngx_http_apikey_redis_close(t->conn);
        t->conn = NULL;
    }

    /* not live until subscribed again: the group's check counts on it */
    t->state = ngx_http_apikey_tracking_client_id;

    if (t->timer.timer_set) {
        ngx_del_timer(&t->timer);
    }

    if (!ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&t->timer, t->retry);
    }
}


static ngx_int_t
ngx_http_apikey_tracking_reply(ngx_http_apikey_redis_conn_t *conn,
    redisReply *reply)
{
    ngx_int_t                    rc;
    ngx_http_apikey_tracking_t  *t;

    t = conn->data;

    rc = t->state(t, reply);

    freeReplyObject(reply);

    if (rc != NGX_OK) {
        /* a refusal (ACL, CLIENT TRACKING off) does not pass soon */
        t->retry = NGX_HTTP_APIKEY_TRACKING_REFUSED;
        ngx_http_apikey_tracking_down(t, "refused the subscription");
        return NGX_DONE;
    }

    return NGX_OK;
}


static void
ngx_http_apikey_tracking_error(ngx_http_apikey_redis_conn_t *conn, char *err)
{
    ngx_http_apikey_tracking_down(conn->data, err);
}


static void
ngx_http_apikey_tracking_refused(ngx_http_apikey_tracking_t *t,
    const char *what, redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &t->log, 0,
                      "apikey cache: redis \"%V\" refused %s: %*s",
                      &t->source->server->url, what,
                      (size_t) ngx_min(reply->len, 128), reply->str);
    }
}


/*
 * On a cluster the worker vouches for the source only while every
 * primary's subscription is live; losing any one is losing them all.
 */

static void
ngx_http_apikey_tracking_vouch(ngx_http_apikey_tracking_t *t,
    ngx_uint_t state)
{
    if (t->group
        && state != NGX_HTTP_APIKEY_CACHE_DOWN
        && !ngx_http_apikey_tracking_live(t->group))
    {
        return;
    }

    ngx_http_apikey_cache_vouch(t->zone, t->source->index, state);
}


static ngx_uint_t
ngx_http_apikey_tracking_live(ngx_http_apikey_tracking_t *group)
{
    ngx_uint_t                   i;
    ngx_http_apikey_tracking_t **sub;

    sub = group->subs.elts;

    for (i = 0; i < group->subs.nelts; i++) {
        if (sub[i]->state != ngx_http_apikey_tracking_message) {
            return 0;
        }
    }

    return group->subs.nelts != 0;
}


/*
 * The slot map changed: the source's entries go (their slots' owners may
 * have changed), a primary that left loses its subscription, a new one
 * gets one, and the worker vouches again once all are live.
 */

static void
ngx_http_apikey_tracking_map(void *data)
{
    ngx_http_apikey_tracking_t *group = data;

    ngx_uint_t                     i, j, n;
    ngx_http_apikey_tracking_t    *t, **sub;
    ngx_http_apikey_redis_node_t **nodes;

    n = ngx_http_apikey_cluster_primaries(group->source->server, &nodes);

    ngx_http_apikey_cache_flush(group->zone, group->source->index);

    sub = group->subs.elts;

    for (i = 0; i < group->subs.nelts; /* void */) {
        for (j = 0; j < n; j++) {
            if (sub[i]->node == nodes[j]) {
                break;
            }
        }

        if (j < n) {
            i++;
            continue;
        }

        ngx_http_apikey_tracking_close(sub[i]);
        sub[i] = sub[--group->subs.nelts];
    }

    for (j = 0; j < n; j++) {
        for (i = 0; i < group->subs.nelts; i++) {
            if (sub[i]->node == nodes[j]) {
                break;
            }
        }

        if (i < group->subs.nelts) {
            continue;
        }

        t = ngx_calloc(sizeof(ngx_http_apikey_tracking_t), &group->log);
        if (t == NULL) {
            continue;
        }

        sub = ngx_array_push(&group->subs);
        if (sub == NULL) {
            ngx_free(t);
            continue;
        }

        *sub = t;
        sub = group->subs.elts;

        t->zone = group->zone;
        t->source = group->source;
        t->node = nodes[j];
        t->group = group;
        t->log = group->log;

        t->timer.handler = ngx_http_apikey_tracking_timer;
        t->timer.data = t;
        t->timer.log = &t->log;
        t->timer.cancelable = 1;

        t->retry = NGX_HTTP_APIKEY_TRACKING_RETRY;

        ngx_http_apikey_tracking_connect(t);
    }

    ngx_http_apikey_cache_vouch(group->zone, group->source->index,
                                ngx_http_apikey_tracking_live(group)
                                ? NGX_HTTP_APIKEY_CACHE_LIVE
                                : NGX_HTTP_APIKEY_CACHE_DOWN);
}


/* a subscription to a node that is no longer a primary */

static void
ngx_http_apikey_tracking_close(ngx_http_apikey_tracking_t *t)
{
    if (t->conn) {
        ngx_http_apikey_redis_close(t->conn);
    }

    if (t->timer.timer_set) {
        ngx_del_timer(&t->timer);
    }

    ngx_free(t);
}


/* the worker exits: the subscriptions' connections are closed already */

static void
ngx_http_apikey_tracking_cleanup(void *data)
{
    ngx_http_apikey_tracking_t *group = data;

    ngx_uint_t                   i;
    ngx_http_apikey_tracking_t **sub;

    sub = group->subs.elts;

    for (i = 0; i < group->subs.nelts; i++) {
        ngx_free(sub[i]);
    }

    group->subs.nelts = 0;
}
