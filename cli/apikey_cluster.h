
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The apikey tool on a Redis Cluster: the slot map read from the seeds
 * with CLUSTER SLOTS, one connection per node opened when a command first
 * needs it, and each command sent to the node of its key's slot, -MOVED
 * and -ASK followed a bounded number of times.  A command is sent when its
 * reply is read: the tool's pipelines become one round trip per command,
 * which keeps a redirection a matter of one command.
 */


#ifndef _APIKEY_CLUSTER_H_INCLUDED_
#define _APIKEY_CLUSTER_H_INCLUDED_


#include <stddef.h>

#include <hiredis/hiredis.h>

#include "apikey_redis.h"


/*
 * Checks "host:port[,host:port...]" (port 6379 if left out) and keeps it
 * in rc.  Returns 0, or -1 with a message in err.
 */
int apikey_cluster_seeds(apikey_redis_conf_t *rc, const char *list,
    char *err);

/*
 * Reads the slot map from the first seed that answers.  Returns a
 * connection that apikey_redis_append() and apikey_redis_read() route, or
 * NULL with a message in err.
 */
apikey_redis_t *apikey_cluster_connect(apikey_redis_conf_t *rc, char *err);

int apikey_cluster_append(apikey_cluster_t *cl, int argc, const char **argv,
    const size_t *argvlen);
redisReply *apikey_cluster_read(apikey_redis_t *c, char *err);
void apikey_cluster_free(apikey_cluster_t *cl);


#endif /* _APIKEY_CLUSTER_H_INCLUDED_ */
