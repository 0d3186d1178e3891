
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ngx_http_apikey_slot.h"
#include "apikey_cluster.h"


#define APIKEY_CLUSTER_PORT       6379

/* redirections of one command, and slot map refreshes of one run */
#define APIKEY_CLUSTER_REDIRECTS  5
#define APIKEY_CLUSTER_REFRESHES  8

/* microseconds before a command answered -TRYAGAIN is sent again */
#define APIKEY_CLUSTER_TRYAGAIN   100000

/* a bound on the nodes that hostile CLUSTER SLOTS replies can add */
#define APIKEY_CLUSTER_NODES_MAX  1024


typedef struct {
    char                  *host;
    int                    port;
    apikey_redis_t        *conn;
} apikey_cluster_node_t;


typedef enum {
    APIKEY_CLUSTER_KEYED = 0,
    APIKEY_CLUSTER_KEYLESS,
    APIKEY_CLUSTER_MULTI,
    APIKEY_CLUSTER_END           /* EXEC, DISCARD */
} apikey_cluster_kind_e;


typedef struct {
    char                  *cmd;
    size_t                 len;
    int                    slot;
    apikey_cluster_kind_e  kind;
} apikey_cluster_cmd_t;


struct apikey_cluster_s {
    apikey_redis_conf_t   *rc;

    apikey_cluster_node_t *nodes;
    size_t                 nnodes;
    size_t                 nalloc;
    int                   *slots;     /* node index, or -1 */

    apikey_cluster_cmd_t  *queue;     /* appended, not yet read */
    size_t                 head;
    size_t                 tail;
    size_t                 size;

    int                    pinned;    /* the node of a transaction, or -1 */
    unsigned               refreshes;
};


static int apikey_cluster_node(apikey_cluster_t *cl, const char *host,
    size_t len, int port);
static apikey_redis_t *apikey_cluster_conn(apikey_cluster_t *cl, int node,
    char *err);
static void apikey_cluster_drop(apikey_cluster_t *cl, int node);
static int apikey_cluster_refresh(apikey_cluster_t *cl, int first,
    char *err);
static int apikey_cluster_ask(apikey_cluster_t *cl, int node, int *slots,
    char *err);
static int apikey_cluster_map(apikey_cluster_t *cl, int node,
    redisReply *reply, int *slots);
static int apikey_cluster_route(apikey_cluster_t *cl,
    apikey_cluster_cmd_t *cmd, char *err);
static int apikey_cluster_any(apikey_cluster_t *cl);
static int apikey_cluster_redirect(apikey_cluster_t *cl, int from,
    const char *err, int *slot);


int
apikey_cluster_seeds(apikey_redis_conf_t *rc, const char *list, char *err)
{
    if (apikey_redis_addr_list(list) != 0) {
        snprintf(err, APIKEY_ERR_LEN,
                 "invalid --cluster \"%s\" (host:port[,host:port...])",
                 list);
        return -1;
    }

    rc->cluster = list;

    return 0;
}


apikey_redis_t *
apikey_cluster_connect(apikey_redis_conf_t *rc, char *err)
{
    int                port;
    size_t             i, n;
    char              *host;
    const char        *p, *comma;
    apikey_redis_t    *c;
    apikey_cluster_t  *cl;

    c = calloc(1, sizeof(apikey_redis_t));
    cl = calloc(1, sizeof(apikey_cluster_t));

    if (c == NULL || cl == NULL) {
        free(c);
        free(cl);
        snprintf(err, APIKEY_ERR_LEN, "out of memory");
        return NULL;
    }

    c->fd = -1;
    c->cluster = cl;
    cl->rc = rc;
    cl->pinned = -1;

    cl->slots = malloc(NGX_HTTP_APIKEY_SLOTS * sizeof(int));
    if (cl->slots == NULL) {
        goto nomem;
    }

    for (i = 0; i < NGX_HTTP_APIKEY_SLOTS; i++) {
        cl->slots[i] = -1;
    }

    /* the seeds are the first nodes, asked in the order given */

    for (p = rc->cluster; p; p = comma ? comma + 1 : NULL) {
        comma = strchr(p, ',');
        n = comma ? (size_t) (comma - p) : strlen(p);

        port = APIKEY_CLUSTER_PORT;

        if (apikey_redis_host_port(p, n, &host, &port) != 0) {
            goto nomem;
        }

        if (apikey_cluster_node(cl, host, strlen(host), port) == -1) {
            free(host);
            goto nomem;
        }

        free(host);
    }

    if (apikey_cluster_refresh(cl, -1, err) != 0) {
        apikey_redis_free(c);
        return NULL;
    }

    return c;

nomem:

    snprintf(err, APIKEY_ERR_LEN, "out of memory");
    apikey_redis_free(c);

    return NULL;
}


void
apikey_cluster_free(apikey_cluster_t *cl)
{
    size_t  i;

    for (i = 0; i < cl->nnodes; i++) {
        apikey_redis_free(cl->nodes[i].conn);
        free(cl->nodes[i].host);
    }

    for (i = cl->head; i < cl->tail; i++) {
        free(cl->queue[i].cmd);
    }

    free(cl->nodes);
    free(cl->slots);
    free(cl->queue);
    free(cl);
}


/*
 * The command is kept with the slot of its key: every command the tool
 * sends names its one key first, or none (MULTI, EXEC, DISCARD, PING).
 */

int
apikey_cluster_append(apikey_cluster_t *cl, int argc, const char **argv,
    const size_t *argvlen)
{
    int                    len;
    char                  *cmd;
    size_t                 size;
    apikey_cluster_cmd_t  *q, *queue;

    if (cl->tail == cl->size) {
        if (cl->head > 0) {
            memmove(cl->queue, cl->queue + cl->head,
                    (cl->tail - cl->head) * sizeof(apikey_cluster_cmd_t));
            cl->tail -= cl->head;
            cl->head = 0;
        }
    }

    if (cl->tail == cl->size) {
        size = cl->size ? cl->size * 2 : 64;

        queue = realloc(cl->queue, size * sizeof(apikey_cluster_cmd_t));
        if (queue == NULL) {
            return -1;
        }

        cl->queue = queue;
        cl->size = size;
    }

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        return -1;
    }

    q = &cl->queue[cl->tail++];

    q->cmd = cmd;
    q->len = len;
    q->slot = -1;

    if (strcasecmp(argv[0], "MULTI") == 0) {
        q->kind = APIKEY_CLUSTER_MULTI;

    } else if (strcasecmp(argv[0], "EXEC") == 0
               || strcasecmp(argv[0], "DISCARD") == 0)
    {
        q->kind = APIKEY_CLUSTER_END;

    } else if (argc < 2 || strcasecmp(argv[0], "PING") == 0
               || strcasecmp(argv[0], "UNWATCH") == 0)
    {
        q->kind = APIKEY_CLUSTER_KEYLESS;

    } else {
        q->kind = APIKEY_CLUSTER_KEYED;
        q->slot = ngx_http_apikey_slot((const unsigned char *) argv[1],
                                       argvlen[1]);
    }

    return 0;
}


/*
 * Sends the oldest command appended to the node of its slot, and reads
 * its reply.  A transaction stays on one node from MULTI to EXEC: the
 * node of the first key after MULTI.  Within it a redirection is not
 * followed (the command would leave the transaction): it fails it, and
 * the slot map learns from it for the next command.
 */

redisReply *
apikey_cluster_read(apikey_redis_t *c, char *err)
{
    int                    node, asking, slot, tries, in_tx;
    char                   what[APIKEY_ERR_LEN];
    redisReply            *reply;
    apikey_redis_t        *conn;
    apikey_cluster_t      *cl;
    apikey_cluster_cmd_t   cmd;

    cl = c->cluster;

    if (cl->head == cl->tail) {
        snprintf(err, APIKEY_ERR_LEN, "Redis: no command to read a reply to");
        return NULL;
    }

    cmd = cl->queue[cl->head++];
    reply = NULL;

    in_tx = (cl->pinned != -1 && cmd.kind != APIKEY_CLUSTER_MULTI);

    node = apikey_cluster_route(cl, &cmd, err);
    if (node == -1) {
        goto done;
    }

    asking = 0;

    for (tries = 0; /* void */; tries++) {

        conn = apikey_cluster_conn(cl, node, what);

        if (conn == NULL) {
            snprintf(err, APIKEY_ERR_LEN, "Redis: %.400s", what);

            /* a node gone, maybe failed over: a replica took its slots */

            if (in_tx || tries == APIKEY_CLUSTER_REDIRECTS
                || cl->refreshes >= APIKEY_CLUSTER_REFRESHES
                || apikey_cluster_refresh(cl, -1, what) != 0)
            {
                goto done;
            }

            node = apikey_cluster_route(cl, &cmd, err);
            if (node == -1) {
                goto done;
            }

            continue;
        }

        if (asking) {
            if (apikey_redis_append(conn, "ASKING", NULL) != 0) {
                snprintf(err, APIKEY_ERR_LEN, "Redis: cannot send ASKING");
                goto failed;
            }
        }

        if (apikey_redis_append_raw(conn, cmd.cmd, cmd.len) != 0) {
            snprintf(err, APIKEY_ERR_LEN, "Redis: %.400s",
                     conn->err ? conn->errstr : "cannot send a command");
            goto failed;
        }

        if (asking) {
            reply = apikey_redis_read(conn, err);
            if (reply == NULL && conn->err) {
                goto failed;
            }

            if (reply) {
                freeReplyObject(reply);
            }

            asking = 0;
        }

        reply = apikey_redis_read(conn, err);

        if (reply != NULL) {
            goto done;
        }

        if (conn->err) {
            goto failed;
        }

        if (strncmp(err, "Redis: TRYAGAIN", 15) == 0 && !in_tx
            && tries < APIKEY_CLUSTER_REDIRECTS)
        {
            usleep(APIKEY_CLUSTER_TRYAGAIN);
            continue;
        }

        node = apikey_cluster_redirect(cl, node, err, &slot);

        if (node == -1) {
            /* a plain error reply, as Redis said it */
            goto done;
        }

        if (slot == -1) {
            asking = 1;

        } else {
            cl->slots[slot] = node;

            /*
             * One slot moved, often with others: learn them all at once,
             * but not within a transaction, whose node holds it queued.
             */

            if (!in_tx && cl->refreshes < APIKEY_CLUSTER_REFRESHES) {
                apikey_cluster_refresh(cl, node, what);
                cl->slots[slot] = node;
            }
        }

        if (in_tx || tries == APIKEY_CLUSTER_REDIRECTS) {
            if (tries == APIKEY_CLUSTER_REDIRECTS) {
                snprintf(err, APIKEY_ERR_LEN,
                         "Redis: too many redirections (%d) for slot %d",
                         APIKEY_CLUSTER_REDIRECTS, cmd.slot);
            }

            goto done;
        }
    }

failed:

    /* the command may have run or not: nothing after it can be trusted */

    c->err = 1;
    snprintf(c->errstr, APIKEY_ERR_LEN, "%.400s", err + 7);
    apikey_cluster_drop(cl, node);

done:

    if (cmd.kind == APIKEY_CLUSTER_END) {
        cl->pinned = -1;
    }

    free(cmd.cmd);

    return reply;
}


static int
apikey_cluster_route(apikey_cluster_t *cl, apikey_cluster_cmd_t *cmd,
    char *err)
{
    int     slot, node;
    size_t  i;

    slot = cmd->slot;

    if (cmd->kind == APIKEY_CLUSTER_MULTI) {
        cl->pinned = -1;

        for (i = cl->head; i < cl->tail; i++) {
            if (cl->queue[i].slot != -1) {
                slot = cl->queue[i].slot;
                break;
            }
        }

    } else if (cl->pinned != -1) {
        return cl->pinned;
    }

    if (slot == -1) {
        node = apikey_cluster_any(cl);

        if (cmd->kind == APIKEY_CLUSTER_MULTI) {
            cl->pinned = node;
        }

        return node;
    }

    if (cl->slots[slot] == -1
        && (cl->refreshes >= APIKEY_CLUSTER_REFRESHES
            || apikey_cluster_refresh(cl, -1, err) != 0
            || cl->slots[slot] == -1))
    {
        snprintf(err, APIKEY_ERR_LEN,
                 "Redis: no node of the cluster serves slot %d", slot);
        return -1;
    }

    if (cmd->kind == APIKEY_CLUSTER_MULTI) {
        cl->pinned = cl->slots[slot];
    }

    return cl->slots[slot];
}


/* for a command without a key: a node connected, else a primary */

static int
apikey_cluster_any(apikey_cluster_t *cl)
{
    size_t  i;

    for (i = 0; i < cl->nnodes; i++) {
        if (cl->nodes[i].conn != NULL) {
            return (int) i;
        }
    }

    return cl->slots[0] != -1 ? cl->slots[0] : 0;
}


/*
 * "Redis: MOVED <slot> <host>:<port>" or "Redis: ASK <slot> ...": the
 * node named, and for MOVED the slot (-1 for ASK); -1 for any other error.
 * A host left empty or "?" is that of the node that answered, from.
 */

static int
apikey_cluster_redirect(apikey_cluster_t *cl, int from, const char *err,
    int *slot)
{
    int          ask, port;
    long         n;
    char        *end;
    const char  *p, *colon;

    if (strncmp(err, "Redis: MOVED ", 13) == 0) {
        ask = 0;
        p = err + 13;

    } else if (strncmp(err, "Redis: ASK ", 11) == 0) {
        ask = 1;
        p = err + 11;

    } else {
        return -1;
    }

    n = strtol(p, &end, 10);

    if (end == p || *end != ' ' || n < 0 || n >= NGX_HTTP_APIKEY_SLOTS) {
        return -1;
    }

    p = end + 1;
    colon = strrchr(p, ':');

    if (colon == NULL) {
        return -1;
    }

    port = (int) strtol(colon + 1, &end, 10);

    if (end == colon + 1 || *end != '\0' || port <= 0 || port > 65535) {
        return -1;
    }

    if (colon > p && *p == '[' && colon[-1] == ']') {
        p++;
        colon--;
    }

    *slot = ask ? -1 : (int) n;

    if (colon == p || (colon == p + 1 && *p == '?')) {
        p = cl->nodes[from].host;
        colon = p + strlen(p);
    }

    return apikey_cluster_node(cl, p, colon - p, port);
}


/* the index of a node, added when it is new; -1 when there is no room */

static int
apikey_cluster_node(apikey_cluster_t *cl, const char *host, size_t len,
    int port)
{
    size_t                  i, n;
    apikey_cluster_node_t  *nodes;

    for (i = 0; i < cl->nnodes; i++) {
        if (cl->nodes[i].port == port
            && strlen(cl->nodes[i].host) == len
            && strncmp(cl->nodes[i].host, host, len) == 0)
        {
            return (int) i;
        }
    }

    if (cl->nnodes == APIKEY_CLUSTER_NODES_MAX) {
        return -1;
    }

    if (cl->nnodes == cl->nalloc) {
        n = cl->nalloc ? cl->nalloc * 2 : 8;

        nodes = realloc(cl->nodes, n * sizeof(apikey_cluster_node_t));
        if (nodes == NULL) {
            return -1;
        }

        cl->nodes = nodes;
        cl->nalloc = n;
    }

    cl->nodes[cl->nnodes].host = strndup(host, len);
    if (cl->nodes[cl->nnodes].host == NULL) {
        return -1;
    }

    cl->nodes[cl->nnodes].port = port;
    cl->nodes[cl->nnodes].conn = NULL;

    return (int) cl->nnodes++;
}


static apikey_redis_t *
apikey_cluster_conn(apikey_cluster_t *cl, int node, char *err)
{
    char                    what[APIKEY_ERR_LEN];
    apikey_cluster_node_t  *nd;

    nd = &cl->nodes[node];

    if (nd->conn == NULL) {
        nd->conn = apikey_redis_node(cl->rc, nd->host, nd->port, what);

        if (nd->conn == NULL) {
            snprintf(err, APIKEY_ERR_LEN, "cluster node %s%s%s:%d: %.400s",
                     strchr(nd->host, ':') ? "[" : "", nd->host,
                     strchr(nd->host, ':') ? "]" : "", nd->port, what);
        }
    }

    return nd->conn;
}


static void
apikey_cluster_drop(apikey_cluster_t *cl, int node)
{
    if (node >= 0 && (size_t) node < cl->nnodes) {
        apikey_redis_free(cl->nodes[node].conn);
        cl->nodes[node].conn = NULL;
    }
}


/*
 * CLUSTER SLOTS from the node that redirected (first, or -1), then from
 * the nodes known, in order, seeds first: the first whole map wins.  A
 * map that does not parse leaves the one in use.
 */

static int
apikey_cluster_refresh(apikey_cluster_t *cl, int first, char *err)
{
    int     *slots;
    size_t   i, n;
    char     what[APIKEY_ERR_LEN];

    cl->refreshes++;

    slots = malloc(NGX_HTTP_APIKEY_SLOTS * sizeof(int));
    if (slots == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "out of memory");
        return -1;
    }

    snprintf(err, APIKEY_ERR_LEN, "no node in \"%s\"", cl->rc->cluster);

    /* nodes that a map adds are not asked this time */

    n = cl->nnodes;

    for (i = 0; i < n + 1; i++) {

        if (i == 0 && first == -1) {
            continue;
        }

        if (i > 0 && (int) i - 1 == first) {
            continue;
        }

        if (apikey_cluster_ask(cl, i == 0 ? first : (int) i - 1, slots, err)
            == 0)
        {
            memcpy(cl->slots, slots, NGX_HTTP_APIKEY_SLOTS * sizeof(int));
            free(slots);
            return 0;
        }
    }

    free(slots);

    snprintf(what, APIKEY_ERR_LEN, "%s", err);
    snprintf(err, APIKEY_ERR_LEN, "cannot read the slot map of the Redis "
             "Cluster at %.100s: %.300s", cl->rc->cluster, what);

    return -1;
}


static int
apikey_cluster_ask(apikey_cluster_t *cl, int node, int *slots, char *err)
{
    char             what[APIKEY_ERR_LEN];
    redisReply      *reply;
    apikey_redis_t  *conn;

    conn = apikey_cluster_conn(cl, node, err);
    if (conn == NULL) {
        return -1;
    }

    reply = apikey_redis_command(conn, what, "CLUSTER", "SLOTS", NULL);

    if (reply == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "cluster node %s:%d: %.400s",
                 cl->nodes[node].host, cl->nodes[node].port, what);

        if (conn->err) {
            apikey_cluster_drop(cl, node);
        }

        return -1;
    }

    if (apikey_cluster_map(cl, node, reply, slots) != 0) {
        snprintf(err, APIKEY_ERR_LEN,
                 "cluster node %s:%d: no slot map in its CLUSTER SLOTS reply",
                 cl->nodes[node].host, cl->nodes[node].port);
        freeReplyObject(reply);
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}


/*
 * [[start, end, [host, port, id...], replicas...], ...]; an empty host
 * or "?" is the address of the node asked, as the specification says.
 */

static int
apikey_cluster_map(apikey_cluster_t *cl, int node, redisReply *reply,
    int *slots)
{
    int          n, some;
    size_t       i, len;
    long long    start, end, port, s;
    const char  *host;
    redisReply  *range, *primary;

    if (reply->type != REDIS_REPLY_ARRAY) {
        return -1;
    }

    for (s = 0; s < NGX_HTTP_APIKEY_SLOTS; s++) {
        slots[s] = -1;
    }

    some = 0;

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
            || range->element[0]->type != REDIS_REPLY_INTEGER
            || range->element[1]->type != REDIS_REPLY_INTEGER
            || range->element[2]->type != REDIS_REPLY_ARRAY
            || range->element[2]->elements < 2)
        {
            return -1;
        }

        start = range->element[0]->integer;
        end = range->element[1]->integer;
        primary = range->element[2];

        if (start < 0 || end < start || end >= NGX_HTTP_APIKEY_SLOTS
            || primary->element[0]->type != REDIS_REPLY_STRING
            || primary->element[1]->type != REDIS_REPLY_INTEGER)
        {
            return -1;
        }

        host = primary->element[0]->str;
        len = primary->element[0]->len;
        port = primary->element[1]->integer;

        if (port <= 0 || port > 65535) {
            return -1;
        }

        if (len == 0 || (len == 1 && host[0] == '?')) {
            host = cl->nodes[node].host;
            len = strlen(host);
        }

        n = apikey_cluster_node(cl, host, len, (int) port);
        if (n == -1) {
            return -1;
        }

        for (s = start; s <= end; s++) {
            slots[s] = n;
        }

        some = 1;
    }

    return some ? 0 : -1;
}
