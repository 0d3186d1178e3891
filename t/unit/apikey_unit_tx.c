
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The apikey tool's transactions against a scripted Redis: one end of a
 * socket pair holds the replies, written ahead, and collects what the tool
 * sent.  What a real Redis cannot be made to do on purpose is here: a
 * command that fails inside EXEC after the new record of a rotation was
 * stored.
 */


#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "apikey.h"
#include "apikey_commands.h"
#include "apikey_tx.h"
#include "apikey_unit.h"


#define APIKEY_UNIT_HASH                                                     \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


typedef struct {
    int              fd[2];
    apikey_redis_t  *ctx;
    char             sent[16384];
} ngx_http_apikey_unit_redis_t;


static int ngx_http_apikey_unit_redis_open(ngx_http_apikey_unit_redis_t *r,
    const char *replies);
static const char *ngx_http_apikey_unit_redis_sent(
    ngx_http_apikey_unit_redis_t *r);
static void ngx_http_apikey_unit_redis_close(ngx_http_apikey_unit_redis_t *r);
static void ngx_http_apikey_unit_tx_refused(void);
static void ngx_http_apikey_unit_tx_partial(void);
static void ngx_http_apikey_unit_tx_changed(void);
static void ngx_http_apikey_unit_rotate_partial(void);
static FILE *ngx_http_apikey_unit_capture(int fd, FILE *f, int *saved);
static char *ngx_http_apikey_unit_restore(int fd, FILE *f, int saved,
    FILE *tmp);


void
ngx_http_apikey_unit_tx(void)
{
    ngx_http_apikey_unit_tx_refused();
    ngx_http_apikey_unit_tx_partial();
    ngx_http_apikey_unit_tx_changed();
    ngx_http_apikey_unit_rotate_partial();
}


static void
ngx_http_apikey_unit_tx_refused(void)
{
    char                          err[APIKEY_ERR_LEN];
    apikey_tx_t                   tx;
    ngx_http_apikey_unit_redis_t  r;

    if (ngx_http_apikey_unit_redis_open(&r, "+OK\r\n"
                                   "-NOPERM no EXPIREAT for you\r\n"
                                   "+QUEUED\r\n"
                                   "+OK\r\n")
        != 0)
    {
        return;
    }

    apikey_tx_begin(&tx, r.ctx, err);
    apikey_tx_queue(&tx, "EXPIREAT", "k", "1", NULL);
    apikey_tx_queue(&tx, "HSET", "k", "f", "v", NULL);

    ngx_http_apikey_unit_is_int(apikey_tx_exec(&tx), APIKEY_TX_FAILED,
                                "a command refused at queue time: failed");
    ngx_http_apikey_unit_ok(strstr(err, "NOPERM") != NULL,
                            "the refusal is the message");
    apikey_tx_end(&tx);

    ngx_http_apikey_unit_ok(
        strstr(ngx_http_apikey_unit_redis_sent(&r), "DISCARD") != NULL,
        "DISCARD is sent");
    ngx_http_apikey_unit_ok(strstr(r.sent, "EXEC") == NULL,
                            "EXEC is not");

    ngx_http_apikey_unit_redis_close(&r);
}


static void
ngx_http_apikey_unit_tx_partial(void)
{
    char                          err[APIKEY_ERR_LEN];
    apikey_tx_t                   tx;
    ngx_http_apikey_unit_redis_t  r;

    if (ngx_http_apikey_unit_redis_open(&r, "+OK\r\n+QUEUED\r\n+QUEUED\r\n"
                                   "*2\r\n:1\r\n-WRONGTYPE not a set\r\n")
        != 0)
    {
        return;
    }

    apikey_tx_begin(&tx, r.ctx, err);
    apikey_tx_queue(&tx, "HSET", "k", "f", "v", NULL);
    apikey_tx_queue(&tx, "SADD", "s", "m", NULL);

    ngx_http_apikey_unit_is_int(apikey_tx_exec(&tx), APIKEY_TX_PARTIAL,
                                "a command failed inside EXEC: partial");
    ngx_http_apikey_unit_ok(apikey_tx_ok(&tx, 0), "the first one ran");
    ngx_http_apikey_unit_ok(!apikey_tx_ok(&tx, 1), "the second did not");
    ngx_http_apikey_unit_ok(strstr(err, "WRONGTYPE") != NULL,
                            "the failure is the message");
    apikey_tx_end(&tx);

    ngx_http_apikey_unit_redis_close(&r);
}


static void
ngx_http_apikey_unit_tx_changed(void)
{
    char                          err[APIKEY_ERR_LEN];
    apikey_tx_t                   tx;
    ngx_http_apikey_unit_redis_t  r;

    if (ngx_http_apikey_unit_redis_open(&r, "+OK\r\n+QUEUED\r\n*-1\r\n") != 0) {
        return;
    }

    apikey_tx_begin(&tx, r.ctx, err);
    apikey_tx_queue(&tx, "HSET", "k", "f", "v", NULL);

    ngx_http_apikey_unit_is_int(apikey_tx_exec(&tx), APIKEY_TX_CHANGED,
                                "a watched key changed");
    ngx_http_apikey_unit_ok(!apikey_tx_ok(&tx, 0), "nothing ran");
    apikey_tx_end(&tx);

    ngx_http_apikey_unit_redis_close(&r);
}


/*
 * rotate --grace 0 of k_old: the new record is stored, the old key's
 * change fails inside EXEC; the new key must be printed all the same.
 */

static void
ngx_http_apikey_unit_rotate_partial(void)
{
    int                           rc, saved_out, saved_err;
    char                         *out, *err;
    FILE                         *tmp_out, *tmp_err;
    apikey_cli_t                  cli;
    ngx_http_apikey_unit_redis_t  r;

    if (ngx_http_apikey_unit_redis_open(&r,
            /* GET, WATCH, HGETALL, HGET of the old key */
            "$64\r\n" APIKEY_UNIT_HASH "\r\n"
            "+OK\r\n"
            "*6\r\n$2\r\nid\r\n$5\r\nk_old\r\n$4\r\nname\r\n$3\r\nOld\r\n"
            "$6\r\nscopes\r\n$1\r\n*\r\n"
            "$-1\r\n"
            /* SET NX of the new id, SADD of the id index */
            "+OK\r\n"
            ":1\r\n"
            /* HSET of the new record: the new key is stored */
            ":8\r\n"
            /* MULTI, then old HSET x2, EXPIREAT */
            "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n"
            /* EXEC: the old key's change failed */
            "*3\r\n:1\r\n-ERR boom\r\n:1\r\n")
        != 0)
    {
        return;
    }

    memset(&cli, 0, sizeof(apikey_cli_t));

    cli.now = 1000;
    cli.arg = "k_old";
    cli.store.ctx = r.ctx;
    cli.store.prefix = "apikey:";
    cli.md = EVP_MD_fetch(NULL, "SHA256", NULL);

    tmp_out = ngx_http_apikey_unit_capture(STDOUT_FILENO, stdout, &saved_out);
    tmp_err = ngx_http_apikey_unit_capture(STDERR_FILENO, stderr, &saved_err);

    rc = apikey_rotate(&cli);

    err = ngx_http_apikey_unit_restore(STDERR_FILENO, stderr, saved_err,
                                       tmp_err);
    out = ngx_http_apikey_unit_restore(STDOUT_FILENO, stdout, saved_out,
                                       tmp_out);

    ngx_http_apikey_unit_is_int(rc, APIKEY_ERROR,
                                "rotate with a failed old-key change: 1");
    ngx_http_apikey_unit_ok(out && strstr(out, "key") != NULL
                            && strstr(out, "ak_") != NULL,
                            "the stored new key is printed");
    ngx_http_apikey_unit_ok(err && strstr(err, "the new key is stored")
                            != NULL && strstr(err, "ERR boom") != NULL,
                            "and the failure is told");
    ngx_http_apikey_unit_ok(strstr(ngx_http_apikey_unit_redis_sent(&r), "EXEC")
                            != NULL, "EXEC was sent");

    free(out);
    free(err);
    EVP_MD_free(cli.md);
    ngx_http_apikey_unit_redis_close(&r);
}


static int
ngx_http_apikey_unit_redis_open(ngx_http_apikey_unit_redis_t *r,
    const char *replies)
{
    size_t          len;
    struct timeval  tv;

    memset(r, 0, sizeof(ngx_http_apikey_unit_redis_t));

    len = strlen(replies);

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, r->fd) != 0
        || write(r->fd[1], replies, len) != (ssize_t) len)
    {
        ngx_http_apikey_unit_ok(0, "a socket pair for a scripted Redis");
        return -1;
    }

    r->ctx = apikey_redis_fd(r->fd[0], r->sent);

    if (r->ctx == NULL) {
        ngx_http_apikey_unit_ok(0, "a connection on a socket");
        return -1;
    }

    /* a command the script has no reply for fails instead of waiting */

    tv.tv_sec = 2;
    tv.tv_usec = 0;

    setsockopt(r->fd[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    return 0;
}


/*
 * The connection writes what was queued only when it must wait for a
 * reply, and the replies here were there before the commands: what is
 * still queued was sent all the same, as far as the tool can tell.
 */

static const char *
ngx_http_apikey_unit_redis_sent(ngx_http_apikey_unit_redis_t *r)
{
    ssize_t  n;

    apikey_redis_flush(r->ctx);

    shutdown(r->fd[0], SHUT_WR);

    n = read(r->fd[1], r->sent, sizeof(r->sent) - 1);
    r->sent[n > 0 ? n : 0] = '\0';

    return r->sent;
}


static void
ngx_http_apikey_unit_redis_close(ngx_http_apikey_unit_redis_t *r)
{
    apikey_redis_free(r->ctx);
    close(r->fd[1]);
}


/* what a command prints goes to a temporary file meanwhile */

static FILE *
ngx_http_apikey_unit_capture(int fd, FILE *f, int *saved)
{
    FILE  *tmp;

    fflush(f);

    *saved = -1;

    tmp = tmpfile();
    if (tmp == NULL) {
        return NULL;
    }

    *saved = dup(fd);
    dup2(fileno(tmp), fd);

    return tmp;
}


static char *
ngx_http_apikey_unit_restore(int fd, FILE *f, int saved, FILE *tmp)
{
    long   n;
    char  *text;

    fflush(f);

    if (tmp == NULL) {
        return NULL;
    }

    dup2(saved, fd);
    close(saved);

    n = ftell(tmp);
    rewind(tmp);

    text = calloc(1, n > 0 ? n + 1 : 1);

    if (text && n > 0 && fread(text, 1, n, tmp) != (size_t) n) {
        text[0] = '\0';
    }

    fclose(tmp);

    return text;
}
