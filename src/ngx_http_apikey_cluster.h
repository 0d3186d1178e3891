
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Redis Cluster: which primary owns the slot of a key, for an
 * apikey_redis_upstream block with "cluster" seeds.  Each worker keeps its
 * own slot map, from CLUSTER SLOTS asked of the seeds and the nodes it
 * learnt, and refreshes it one request at a time, never twice within the
 * floor, when a lookup is redirected (-MOVED), refused (-TRYAGAIN,
 * -CLUSTERDOWN) or its node is lost.  Nothing here blocks: lookups wait
 * for the first map under their own timers.
 */


#ifndef _NGX_HTTP_APIKEY_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_APIKEY_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_redis.h"


/* told of every change of a worker's slot map, at once */
typedef void (*ngx_http_apikey_cluster_watch_pt)(void *data);


/* redirections one lookup follows before it answers 503 */
#define NGX_HTTP_APIKEY_CLUSTER_REDIRECTS  3


ngx_int_t ngx_http_apikey_cluster_start(ngx_cycle_t *cycle,
    ngx_http_apikey_redis_server_t *server);
ngx_int_t ngx_http_apikey_cluster_route(
    ngx_http_apikey_redis_server_t *server, ngx_str_t *command,
    ngx_http_apikey_redis_node_t **node);
ngx_int_t ngx_http_apikey_cluster_redirect(
    ngx_http_apikey_redis_server_t *server, ngx_http_apikey_redis_node_t *from,
    redisReply *reply, ngx_http_apikey_redis_node_t **node, ngx_uint_t *ask);
void ngx_http_apikey_cluster_lost(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_node_t *node, char *err);
void ngx_http_apikey_cluster_refresh(ngx_http_apikey_redis_server_t *server,
    char *reason);
ngx_int_t ngx_http_apikey_cluster_watch(ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_cluster_watch_pt handler, void *data);
ngx_uint_t ngx_http_apikey_cluster_primaries(
    ngx_http_apikey_redis_server_t *server,
    ngx_http_apikey_redis_node_t ***nodes);


#endif /* _NGX_HTTP_APIKEY_CLUSTER_H_INCLUDED_ */
