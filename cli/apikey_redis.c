
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "apikey_redis.h"
#include "apikey_cluster.h"


#define APIKEY_REDIS_ARGS       64
#define APIKEY_FILE_MAX         65536
#define APIKEY_SENTINEL_PORT    26379

/* seconds; a list of many keys is one pipelined round trip per stage */
#define APIKEY_CONNECT_TIMEOUT  3
#define APIKEY_COMMAND_TIMEOUT  10


static apikey_redis_t *apikey_redis_sentinel(apikey_redis_conf_t *rc,
    char *err);
static int apikey_redis_ask(apikey_redis_conf_t *rc, const char *p, size_t n,
    char **host, int *port, char *err);
static apikey_redis_t *apikey_redis_primary(apikey_redis_conf_t *rc,
    const char *host, int port, char *err);
static apikey_redis_t *apikey_redis_open(apikey_redis_conf_t *rc,
    const char *host, int port, const char *path, char *err);
static int apikey_redis_socket(const char *host, int port, const char *path,
    char *err);
static int apikey_redis_timeout(int fd, int seconds);
static int apikey_redis_ssl_ctx(apikey_redis_conf_t *rc, char *err);
static int apikey_redis_readable(const char *option, const char *path,
    char *err);
static int apikey_redis_handshake(apikey_redis_conf_t *rc, apikey_redis_t *c,
    const char *host, char *err);
static void apikey_redis_ssl_error(char *err, const char *what);
static int apikey_redis_login(apikey_redis_t *c, const char *user,
    const char *password, int db, char *err);
static void apikey_redis_io_error(apikey_redis_t *c, ssize_t n,
    const char *what);


int
apikey_redis_addr(apikey_redis_conf_t *rc, const char *addr, char *err)
{
    long         db;
    char        *end;
    size_t       len;
    const char  *p, *slash;

    rc->addr = addr;
    rc->host = NULL;
    rc->path = NULL;
    rc->port = 6379;

    if (strncmp(addr, "unix:", 5) == 0) {

        if (addr[5] == '\0') {
            snprintf(err, APIKEY_ERR_LEN,
                     "invalid Redis address \"%s\": no socket path", addr);
            return -1;
        }

        rc->path = strdup(addr + 5);
        return rc->path ? 0 : -1;
    }

    p = addr;
    len = strlen(addr);

    if (strncmp(addr, "rediss://", 9) == 0 || strncmp(addr, "redis://", 8)
        == 0)
    {
        if (addr[5] == 's') {
            rc->tls = 1;
        }

        p = strstr(addr, "://") + 3;

        slash = strchr(p, '/');

        if (slash) {
            errno = 0;
            db = strtol(slash + 1, &end, 10);

            if (slash[1] < '0' || slash[1] > '9' || *end != '\0'
                || errno != 0 || db > 65535)
            {
                snprintf(err, APIKEY_ERR_LEN,
                         "invalid Redis address \"%s\": the database after "
                         "\"/\" must be a number from 0 to 65535", addr);
                return -1;
            }

            rc->db = (int) db;
            rc->db_in_addr = 1;
        }

        len = slash ? (size_t) (slash - p) : strlen(p);
    }

    if (apikey_redis_host_port(p, len, &rc->host, &rc->port) != 0) {
        snprintf(err, APIKEY_ERR_LEN,
                 "invalid Redis address \"%s\" (host:port, [v6]:port, "
                 "unix:/path or rediss://host:port/db)", rc->addr);
        return -1;
    }

    return 0;
}


int
apikey_redis_sentinels(apikey_redis_conf_t *rc, const char *list, char *err)
{
    if (apikey_redis_addr_list(list) != 0) {
        snprintf(err, APIKEY_ERR_LEN,
                 "invalid --sentinel \"%s\" (host:port[,host:port...])",
                 list);
        return -1;
    }

    rc->sentinels = list;

    return 0;
}


int
apikey_redis_addr_list(const char *list)
{
    int          port;
    char        *host;
    const char  *p, *comma;

    for (p = list; /* void */; p = comma + 1) {
        comma = strchr(p, ',');

        port = 0;

        if (apikey_redis_host_port(p, comma ? (size_t) (comma - p)
                                            : strlen(p), &host, &port)
            != 0)
        {
            return -1;
        }

        free(host);

        if (comma == NULL) {
            return 0;
        }
    }
}


int
apikey_redis_host_port(const char *addr, size_t len, char **host, int *port)
{
    long         n;
    char        *end, buf[8];
    size_t       hlen, plen;
    const char  *colon, *last, *p;

    last = addr + len;

    if (len > 0 && addr[0] == '[') {
        colon = memchr(addr, ']', len);

        if (colon == NULL || colon == addr + 1
            || (colon + 1 != last && colon[1] != ':'))
        {
            return -1;
        }

        hlen = colon - addr - 1;
        addr++;
        colon = (colon + 1 != last) ? colon + 1 : NULL;

    } else {
        colon = NULL;

        for (p = addr; p < last; p++) {
            if (*p == ':') {
                if (colon) {
                    /* a bare IPv6 address is ambiguous: "[::1]:6379" */
                    return -1;
                }

                colon = p;
            }
        }

        hlen = colon ? (size_t) (colon - addr) : len;
    }

    if (hlen == 0) {
        return -1;
    }

    if (colon) {
        plen = last - colon - 1;

        if (plen == 0 || plen >= sizeof(buf)) {
            return -1;
        }

        memcpy(buf, colon + 1, plen);
        buf[plen] = '\0';

        errno = 0;
        n = strtol(buf, &end, 10);

        if (buf[0] < '0' || buf[0] > '9' || *end != '\0' || errno != 0
            || n < 1 || n > 65535)
        {
            return -1;
        }

        *port = (int) n;
    }

    *host = strndup(addr, hlen);

    return *host ? 0 : -1;
}


int
apikey_file_read(const char *path, char **data, size_t *len, char *err)
{
    FILE   *f;
    char   *buf;
    size_t  n;

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "cannot open \"%s\": %s",
                 path, strerror(errno));
        return -1;
    }

    buf = malloc(APIKEY_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, APIKEY_ERR_LEN, "out of memory");
        return -1;
    }

    n = fread(buf, 1, APIKEY_FILE_MAX + 1, f);

    if (ferror(f)) {
        snprintf(err, APIKEY_ERR_LEN, "cannot read \"%s\": %s",
                 path, strerror(errno));
        goto failed;
    }

    if (n > APIKEY_FILE_MAX) {
        snprintf(err, APIKEY_ERR_LEN,
                 "\"%s\" is larger than %d bytes", path,
                 APIKEY_FILE_MAX);
        goto failed;
    }

    fclose(f);

    if (n > 0 && buf[n - 1] == '\n') {
        n--;
    }

    buf[n] = '\0';

    *data = buf;
    *len = n;

    return 0;

failed:

    fclose(f);
    apikey_file_free(buf, APIKEY_FILE_MAX + 1);

    return -1;
}


void
apikey_file_free(char *data, size_t len)
{
    if (data) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
}


void
apikey_redis_conf_free(apikey_redis_conf_t *rc)
{
    apikey_file_free(rc->password, rc->password_len);
    apikey_file_free(rc->sentinel_password, rc->sentinel_password_len);

    if (rc->ssl) {
        SSL_CTX_free(rc->ssl);
    }

    free(rc->host);
    free(rc->path);
}


apikey_redis_t *
apikey_redis_connect(apikey_redis_conf_t *rc, char *err)
{
    char             what[APIKEY_ERR_LEN];
    apikey_redis_t  *c;

    /* unreadable certificates are told as such, before any connection */

    if (rc->tls && apikey_redis_ssl_ctx(rc, err) != 0) {
        return NULL;
    }

    if (rc->sentinels) {
        return apikey_redis_sentinel(rc, err);
    }

    if (rc->cluster) {
        return apikey_cluster_connect(rc, err);
    }

    c = apikey_redis_open(rc, rc->host, rc->port, rc->path, what);

    if (c == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "cannot connect to Redis at %s: %.400s",
                 rc->addr, what);
        return NULL;
    }

    /* a refused AUTH or SELECT is told as Redis said it */

    if (apikey_redis_login(c, rc->user, rc->password, rc->db, err) != 0) {
        apikey_redis_free(c);
        return NULL;
    }

    return c;
}


/*
 * The sentinels are asked in the order given; the first that names a
 * primary which calls itself one wins.  A node that the sentinels name
 * but that is not (yet, or any more) a primary is not written to: another
 * sentinel may know better.
 */

static apikey_redis_t *
apikey_redis_sentinel(apikey_redis_conf_t *rc, char *err)
{
    int              port;
    char            *host, what[APIKEY_ERR_LEN];
    size_t           n;
    const char      *p, *comma;
    apikey_redis_t  *c;

    snprintf(err, APIKEY_ERR_LEN, "no sentinel in \"%s\"", rc->sentinels);

    for (p = rc->sentinels; p; p = comma ? comma + 1 : NULL) {
        comma = strchr(p, ',');
        n = comma ? (size_t) (comma - p) : strlen(p);

        if (apikey_redis_ask(rc, p, n, &host, &port, err) != 0) {
            continue;
        }

        c = apikey_redis_primary(rc, host, port, what);

        if (c == NULL) {
            snprintf(err, APIKEY_ERR_LEN,
                     "the primary %s%s%s:%d named by sentinel %.*s: %.400s",
                     strchr(host, ':') ? "[" : "", host,
                     strchr(host, ':') ? "]" : "", port, (int) n, p, what);
        }

        free(host);

        if (c) {
            return c;
        }
    }

    return NULL;
}


/* the primary's address from the sentinel of n bytes at p */

static int
apikey_redis_ask(apikey_redis_conf_t *rc, const char *p, size_t n,
    char **host, int *port, char *err)
{
    char             what[APIKEY_ERR_LEN];
    redisReply      *reply;
    apikey_redis_t  *s;

    *port = APIKEY_SENTINEL_PORT;

    if (apikey_redis_host_port(p, n, host, port) != 0) {
        snprintf(err, APIKEY_ERR_LEN, "out of memory");
        return -1;
    }

    s = apikey_redis_open(rc, *host, *port, NULL, what);
    free(*host);

    if (s == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "cannot connect to sentinel %.*s: "
                 "%.400s", (int) n, p, what);
        return -1;
    }

    if (apikey_redis_login(s, rc->sentinel_user, rc->sentinel_password, 0,
                           what)
        != 0)
    {
        reply = NULL;

    } else {
        reply = apikey_redis_command(s, what, "SENTINEL",
                                     "get-master-addr-by-name", rc->master,
                                     NULL);
    }

    apikey_redis_free(s);

    if (reply == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "sentinel %.*s: %.400s", (int) n, p,
                 what);
        return -1;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        snprintf(err, APIKEY_ERR_LEN,
                 "sentinel %.*s knows no master named \"%s\"", (int) n, p,
                 rc->master);
        freeReplyObject(reply);
        return -1;
    }

    *host = strdup(reply->element[0]->str);
    *port = atoi(reply->element[1]->str);
    freeReplyObject(reply);

    if (*host == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "out of memory");
        return -1;
    }

    return 0;
}


/* a connection to the node named, once it says it is the primary */

static apikey_redis_t *
apikey_redis_primary(apikey_redis_conf_t *rc, const char *host, int port,
    char *err)
{
    redisReply      *reply, *role;
    apikey_redis_t  *c;

    c = apikey_redis_open(rc, host, port, NULL, err);
    if (c == NULL) {
        return NULL;
    }

    if (apikey_redis_login(c, rc->user, rc->password, rc->db, err) != 0) {
        goto failed;
    }

    reply = apikey_redis_command(c, err, "ROLE", NULL);
    if (reply == NULL) {
        goto failed;
    }

    role = (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0
            && reply->element[0]->type == REDIS_REPLY_STRING)
           ? reply->element[0] : NULL;

    if (role == NULL || strcmp(role->str, "master") != 0) {
        snprintf(err, APIKEY_ERR_LEN, "it is not a primary (ROLE %s)",
                 role ? role->str : "?");
        freeReplyObject(reply);
        goto failed;
    }

    freeReplyObject(reply);

    return c;

failed:

    apikey_redis_free(c);

    return NULL;
}


apikey_redis_t *
apikey_redis_node(apikey_redis_conf_t *rc, const char *host, int port,
    char *err)
{
    apikey_redis_t  *c;

    c = apikey_redis_open(rc, host, port, NULL, err);
    if (c == NULL) {
        return NULL;
    }

    if (apikey_redis_login(c, rc->user, rc->password, 0, err) != 0) {
        apikey_redis_free(c);
        return NULL;
    }

    return c;
}


static apikey_redis_t *
apikey_redis_open(apikey_redis_conf_t *rc, const char *host, int port,
    const char *path, char *err)
{
    int              fd;
    apikey_redis_t  *c;

    fd = apikey_redis_socket(host, port, path, err);
    if (fd == -1) {
        return NULL;
    }

    c = apikey_redis_fd(fd, err);
    if (c == NULL) {
        close(fd);
        return NULL;
    }

    if (rc->tls && apikey_redis_handshake(rc, c, host, err) != 0) {
        apikey_redis_free(c);
        return NULL;
    }

    if (apikey_redis_timeout(fd, APIKEY_COMMAND_TIMEOUT) != 0) {
        snprintf(err, APIKEY_ERR_LEN, "cannot set a timeout: %s",
                 strerror(errno));
        apikey_redis_free(c);
        return NULL;
    }

    return c;
}


/* a blocking socket, connected within APIKEY_CONNECT_TIMEOUT */

static int
apikey_redis_socket(const char *host, int port, const char *path, char *err)
{
    int                 fd, rc, e, one;
    char                service[8];
    socklen_t           len;
    struct pollfd       pfd;
    struct addrinfo     hints, *res, *ai;
    struct sockaddr_un  sun;

    res = NULL;

    if (path) {
        if (strlen(path) >= sizeof(sun.sun_path)) {
            snprintf(err, APIKEY_ERR_LEN, "socket path too long");
            return -1;
        }

        memset(&sun, 0, sizeof(struct sockaddr_un));
        sun.sun_family = AF_UNIX;
        strcpy(sun.sun_path, path);

    } else {
        memset(&hints, 0, sizeof(struct addrinfo));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;

        snprintf(service, sizeof(service), "%d", port);

        rc = getaddrinfo(host, service, &hints, &res);
        if (rc != 0) {
            snprintf(err, APIKEY_ERR_LEN, "%s", gai_strerror(rc));
            return -1;
        }
    }

    e = 0;
    fd = -1;

    for (ai = res; path || ai; ai = ai->ai_next) {
        fd = socket(path ? AF_UNIX : ai->ai_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd == -1) {
            e = errno;
            break;
        }

        if (path) {
            rc = connect(fd, (struct sockaddr *) &sun, sizeof(sun));

        } else {
            rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        }

        if (rc != 0 && errno == EINPROGRESS) {
            pfd.fd = fd;
            pfd.events = POLLOUT;

            rc = poll(&pfd, 1, APIKEY_CONNECT_TIMEOUT * 1000);

            if (rc == 1) {
                len = sizeof(int);
                rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
                rc = (rc == 0 && e == 0) ? 0 : -1;
                errno = e ? e : errno;

            } else {
                errno = (rc == 0) ? ETIMEDOUT : errno;
                rc = -1;
            }
        }

        if (rc == 0) {
            break;
        }

        e = errno;
        close(fd);
        fd = -1;

        if (path) {
            break;
        }
    }

    if (res) {
        freeaddrinfo(res);
    }

    if (fd == -1) {
        snprintf(err, APIKEY_ERR_LEN, "%s", strerror(e ? e : ECONNREFUSED));
        return -1;
    }

    one = 1;

    if ((path == NULL
         && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(int)) != 0)
        || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == -1
        || apikey_redis_timeout(fd, APIKEY_CONNECT_TIMEOUT) != 0)
    {
        snprintf(err, APIKEY_ERR_LEN, "%s", strerror(errno));
        close(fd);
        return -1;
    }

    return fd;
}


static int
apikey_redis_timeout(int fd, int seconds)
{
    struct timeval  tv;

    tv.tv_sec = seconds;
    tv.tv_usec = 0;

    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0
        || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
    {
        return -1;
    }

    return 0;
}


/* one context for every connection of a run, made at the first */

static int
apikey_redis_ssl_ctx(apikey_redis_conf_t *rc, char *err)
{
    SSL_CTX  *ssl;

    if (rc->ssl) {
        return 0;
    }

    /* OpenSSL would say only "system lib" of a file it cannot open */

    if (apikey_redis_readable("--tls-ca", rc->tls_ca, err) != 0
        || apikey_redis_readable("--tls-cert", rc->tls_cert, err) != 0
        || apikey_redis_readable("--tls-key", rc->tls_key, err) != 0)
    {
        return -1;
    }

    ssl = SSL_CTX_new(TLS_client_method());
    if (ssl == NULL) {
        apikey_redis_ssl_error(err, "cannot make a TLS context");
        return -1;
    }

    rc->ssl = ssl;

    SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);

    if (rc->tls_ca) {
        if (SSL_CTX_load_verify_locations(ssl, rc->tls_ca, NULL) != 1) {
            apikey_redis_ssl_error(err, "--tls-ca: cannot load the CA "
                                   "certificates");
            return -1;
        }

    } else if (SSL_CTX_set_default_verify_paths(ssl) != 1) {
        apikey_redis_ssl_error(err, "cannot load the system's CA "
                               "certificates");
        return -1;
    }

    if (rc->tls_cert) {
        if (SSL_CTX_use_certificate_chain_file(ssl, rc->tls_cert) != 1) {
            apikey_redis_ssl_error(err, "--tls-cert: cannot load the "
                                   "certificate");
            return -1;
        }

        if (SSL_CTX_use_PrivateKey_file(ssl, rc->tls_key, SSL_FILETYPE_PEM)
            != 1)
        {
            apikey_redis_ssl_error(err, "--tls-key: cannot load the key");
            return -1;
        }

        if (SSL_CTX_check_private_key(ssl) != 1) {
            apikey_redis_ssl_error(err, "--tls-key does not match "
                                   "--tls-cert");
            return -1;
        }
    }

    return 0;
}


static int
apikey_redis_readable(const char *option, const char *path, char *err)
{
    if (path != NULL && access(path, R_OK) != 0) {
        snprintf(err, APIKEY_ERR_LEN, "%s: cannot read \"%s\": %s", option,
                 path, strerror(errno));
        return -1;
    }

    return 0;
}


/*
 * The certificate must name --tls-name, else the host as written: an IP
 * address among its IP entries, a name among its DNS names.
 */

static int
apikey_redis_handshake(apikey_redis_conf_t *rc, apikey_redis_t *c,
    const char *host, char *err)
{
    int                  n;
    long                 verify;
    const char          *name;
    unsigned char        ip[sizeof(struct in6_addr)];
    X509_VERIFY_PARAM   *param;
    struct sigaction     sa, old;

    if (apikey_redis_ssl_ctx(rc, err) != 0) {
        return -1;
    }

    c->ssl = SSL_new(rc->ssl);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        apikey_redis_ssl_error(err, "cannot make a TLS connection");
        return -1;
    }

    c->anonymous = (rc->tls_cert == NULL);

    name = rc->tls_name ? rc->tls_name : host;
    param = SSL_get0_param(c->ssl);

    if (inet_pton(AF_INET, name, ip) == 1
        || inet_pton(AF_INET6, name, ip) == 1)
    {
        n = X509_VERIFY_PARAM_set1_ip_asc(param, name);

    } else {
        n = SSL_set_tlsext_host_name(c->ssl, name)
            && SSL_set1_host(c->ssl, name);
    }

    if (n != 1) {
        apikey_redis_ssl_error(err, "cannot set the name to verify");
        return -1;
    }

    /* a peer gone while we write must be an error, not SIGPIPE */

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old);

    n = SSL_connect(c->ssl);

    sigaction(SIGPIPE, &old, NULL);

    if (n == 1) {
        return 0;
    }

    verify = SSL_get_verify_result(c->ssl);

    if (verify != X509_V_OK) {
        snprintf(err, APIKEY_ERR_LEN,
                 "TLS handshake: certificate verify failed (%s, checked "
                 "against \"%s\")", X509_verify_cert_error_string(verify),
                 name);

    } else if (ERR_peek_error() == 0) {
        snprintf(err, APIKEY_ERR_LEN, "TLS handshake: %s",
                 errno == EAGAIN ? "timed out"
                 : errno ? strerror(errno) : "connection closed");

    } else {
        apikey_redis_ssl_error(err, "TLS handshake");
    }

    return -1;
}


static void
apikey_redis_ssl_error(char *err, const char *what)
{
    char           reason[256];
    unsigned long  e;

    e = ERR_peek_last_error();
    ERR_clear_error();

    if (e == 0) {
        snprintf(err, APIKEY_ERR_LEN, "%s", what);
        return;
    }

    ERR_error_string_n(e, reason, sizeof(reason));

    snprintf(err, APIKEY_ERR_LEN, "%s: %s", what, reason);
}


static int
apikey_redis_login(apikey_redis_t *c, const char *user, const char *password,
    int db, char *err)
{
    char         n[32];
    redisReply  *reply;

    if (password) {
        if (user) {
            reply = apikey_redis_command(c, err, "AUTH", user, password,
                                         NULL);
        } else {
            reply = apikey_redis_command(c, err, "AUTH", password, NULL);
        }

        if (reply == NULL) {
            return -1;
        }

        freeReplyObject(reply);
    }

    if (db) {
        snprintf(n, sizeof(n), "%d", db);

        reply = apikey_redis_command(c, err, "SELECT", n, NULL);
        if (reply == NULL) {
            return -1;
        }

        freeReplyObject(reply);
    }

    return 0;
}


apikey_redis_t *
apikey_redis_fd(int fd, char *err)
{
    apikey_redis_t  *c;

    c = calloc(1, sizeof(apikey_redis_t));
    if (c == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "out of memory");
        return NULL;
    }

    c->reader = redisReaderCreate();
    if (c->reader == NULL) {
        snprintf(err, APIKEY_ERR_LEN, "out of memory");
        free(c);
        return NULL;
    }

    c->fd = fd;

    return c;
}


void
apikey_redis_free(apikey_redis_t *c)
{
    if (c == NULL) {
        return;
    }

    if (c->cluster) {
        apikey_cluster_free(c->cluster);
        free(c);
        return;
    }

    /* no close_notify: the server needs none, and it could raise SIGPIPE */

    if (c->ssl) {
        SSL_free(c->ssl);
    }

    close(c->fd);
    redisReaderFree(c->reader);
    free(c->out);
    free(c);
}


int
apikey_redis_append(apikey_redis_t *c, ...)
{
    int      rc;
    va_list  args;

    va_start(args, c);
    rc = apikey_redis_vappend(c, args);
    va_end(args);

    return rc;
}


int
apikey_redis_vappend(apikey_redis_t *c, va_list args)
{
    int          argc;
    size_t       argvlen[APIKEY_REDIS_ARGS];
    const char  *argv[APIKEY_REDIS_ARGS], *arg;

    for (argc = 0; (arg = va_arg(args, const char *)) != NULL; argc++) {

        if (argc == APIKEY_REDIS_ARGS) {
            return -1;
        }

        argv[argc] = arg;
        argvlen[argc] = strlen(arg);
    }

    return apikey_redis_append_argv(c, argc, argv, argvlen);
}


int
apikey_redis_append_argv(apikey_redis_t *c, int argc, const char **argv,
    const size_t *argvlen)
{
    int    len, rc;
    char  *cmd;

    if (c->err) {
        return -1;
    }

    if (c->cluster) {
        return apikey_cluster_append(c->cluster, argc, argv, argvlen);
    }

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        return -1;
    }

    rc = apikey_redis_append_raw(c, cmd, len);
    redisFreeCommand(cmd);

    return rc;
}


int
apikey_redis_append_raw(apikey_redis_t *c, const char *cmd, size_t len)
{
    char    *out;
    size_t   size;

    if (c->err) {
        return -1;
    }

    /* a list pipelines thousands of commands: no copy per command */

    if (c->out_len + len > c->out_size) {
        size = c->out_size ? c->out_size : 4096;

        while (size < c->out_len + len) {
            size *= 2;
        }

        out = realloc(c->out, size);
        if (out == NULL) {
            return -1;
        }

        c->out = out;
        c->out_size = size;
    }

    memcpy(c->out + c->out_len, cmd, len);

    c->out_len += len;

    return 0;
}


int
apikey_redis_flush(apikey_redis_t *c)
{
    size_t            sent;
    ssize_t           n;
    struct sigaction  sa, old;

    if (c->err) {
        return -1;
    }

    /* a cluster sends each command when its reply is read */

    if (c->cluster) {
        return 0;
    }

    /* called before every reply is read: most find nothing to send */

    if (c->out_len == 0) {
        return 0;
    }

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old);

    for (sent = 0; sent < c->out_len; sent += n) {

        if (c->ssl) {
            n = SSL_write(c->ssl, c->out + sent, c->out_len - sent);

        } else {
            n = send(c->fd, c->out + sent, c->out_len - sent, MSG_NOSIGNAL);
        }

        if (n <= 0) {
            if (n < 0 && c->ssl == NULL && errno == EINTR) {
                n = 0;
                continue;
            }

            apikey_redis_io_error(c, n, "write");
            break;
        }
    }

    sigaction(SIGPIPE, &old, NULL);

    c->out_len = 0;

    return c->err ? -1 : 0;
}


redisReply *
apikey_redis_read(apikey_redis_t *c, char *err)
{
    char         buf[16384];
    void        *p;
    ssize_t      n;
    redisReply  *reply;

    if (c->cluster && !c->err) {
        return apikey_cluster_read(c, err);
    }

    if (apikey_redis_flush(c) != 0) {
        goto failed;
    }

    for ( ;; ) {
        if (redisReaderGetReply(c->reader, &p) != REDIS_OK) {
            c->err = 1;
            snprintf(c->errstr, APIKEY_ERR_LEN, "protocol error: %s",
                     c->reader->errstr);
            goto failed;
        }

        if (p != NULL) {
            break;
        }

        if (c->ssl) {
            n = SSL_read(c->ssl, buf, sizeof(buf));

        } else {
            n = recv(c->fd, buf, sizeof(buf), 0);
        }

        if (n <= 0) {
            if (n < 0 && c->ssl == NULL && errno == EINTR) {
                continue;
            }

            apikey_redis_io_error(c, n, "read");
            goto failed;
        }

        if (redisReaderFeed(c->reader, buf, n) != REDIS_OK) {
            c->err = 1;
            snprintf(c->errstr, APIKEY_ERR_LEN, "out of memory");
            goto failed;
        }
    }

    reply = p;

    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, APIKEY_ERR_LEN, "Redis: %.*s",
                 (int) reply->len, reply->str);
        freeReplyObject(reply);
        return NULL;
    }

    return reply;

failed:

    snprintf(err, APIKEY_ERR_LEN, "Redis: %.400s", c->errstr);

    return NULL;
}


redisReply *
apikey_redis_command(apikey_redis_t *c, char *err, ...)
{
    int      rc;
    va_list  args;

    va_start(args, err);
    rc = apikey_redis_vappend(c, args);
    va_end(args);

    if (rc != 0) {
        snprintf(err, APIKEY_ERR_LEN, "Redis: %.400s",
                 c->err ? c->errstr : "cannot format a command");
        return NULL;
    }

    return apikey_redis_read(c, err);
}


/* n is what read(), write() or their TLS forms returned */

static void
apikey_redis_io_error(apikey_redis_t *c, ssize_t n, const char *what)
{
    int  e;

    e = errno;
    c->err = 1;

    if (c->ssl && SSL_get_error(c->ssl, (int) n) == SSL_ERROR_SSL) {
        apikey_redis_ssl_error(c->errstr, what);

    } else if (n == 0 || e == 0) {
        snprintf(c->errstr, APIKEY_ERR_LEN, "Server closed the connection");

    } else if (e == EAGAIN || e == EWOULDBLOCK) {
        snprintf(c->errstr, APIKEY_ERR_LEN, "%s timed out", what);

    } else if (c->anonymous && (e == ECONNRESET || e == EPIPE)) {

        /*
         * In TLS 1.3 a server refuses a client without a certificate after
         * the handshake, and its alert is lost when the reset comes first.
         */

        snprintf(c->errstr, APIKEY_ERR_LEN, "%s (does the server require a "
                 "client certificate? --tls-cert, --tls-key)", strerror(e));

    } else {
        snprintf(c->errstr, APIKEY_ERR_LEN, "%s", strerror(e));
    }
}
