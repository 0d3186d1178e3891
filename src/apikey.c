
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * apikey: create, list, show, update, revoke, rotate and verify the API
 * keys that ngx_http_apikey_module reads from Redis (docs/redis-schema.md,
 * docs/cli.md).  A key is printed once, by create and rotate; Redis only
 * ever holds its hash.
 */


#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <hiredis/hiredis.h>

#include "ngx_http_apikey_key.h"
#include "apikey_redis.h"
#include "apikey_record.h"
#include "apikey_text.h"
#include "apikey_time.h"


#define NGX_HTTP_APIKEY_CLI_OK             0
#define NGX_HTTP_APIKEY_CLI_ERROR          1
#define NGX_HTTP_APIKEY_CLI_USAGE          2

#define NGX_HTTP_APIKEY_CLI_PREFIX         "apikey:"
#define NGX_HTTP_APIKEY_CLI_NAME_MAX       1024
#define NGX_HTTP_APIKEY_CLI_WORD_MAX       255
#define NGX_HTTP_APIKEY_CLI_RKEY_LEN       1024
#define NGX_HTTP_APIKEY_CLI_ID_LEN                                          \
    (sizeof(NGX_HTTP_APIKEY_CLI_ID_PREFIX) - 1                              \
     + NGX_HTTP_APIKEY_CLI_ID_RANDOM_LEN)

/* how often update retries when another writer touched the key */
#define NGX_HTTP_APIKEY_CLI_RETRIES        3


enum {
    NGX_HTTP_APIKEY_CLI_OPT_REDIS = 0,
    NGX_HTTP_APIKEY_CLI_OPT_DB,
    NGX_HTTP_APIKEY_CLI_OPT_USER,
    NGX_HTTP_APIKEY_CLI_OPT_PASSWORD_FILE,
    NGX_HTTP_APIKEY_CLI_OPT_REDIS_PREFIX,
    NGX_HTTP_APIKEY_CLI_OPT_HASH_SECRET_FILE,
    NGX_HTTP_APIKEY_CLI_OPT_HELP,
    NGX_HTTP_APIKEY_CLI_OPT_NAME,
    NGX_HTTP_APIKEY_CLI_OPT_SCOPE,
    NGX_HTTP_APIKEY_CLI_OPT_ORG,
    NGX_HTTP_APIKEY_CLI_OPT_EXPIRES_IN,
    NGX_HTTP_APIKEY_CLI_OPT_EXPIRES_AT,
    NGX_HTTP_APIKEY_CLI_OPT_NO_EXPIRY,
    NGX_HTTP_APIKEY_CLI_OPT_PREFIX,
    NGX_HTTP_APIKEY_CLI_OPT_GRACE,
    NGX_HTTP_APIKEY_CLI_OPT_JSON
};

#define NGX_HTTP_APIKEY_CLI_O(opt)   (1U << NGX_HTTP_APIKEY_CLI_OPT_ ## opt)

/* getopt_long() values above every character */
#define NGX_HTTP_APIKEY_CLI_V(opt)   (0x100 + NGX_HTTP_APIKEY_CLI_OPT_ ## opt)

#define NGX_HTTP_APIKEY_CLI_GLOBAL                                          \
    (NGX_HTTP_APIKEY_CLI_O(REDIS) | NGX_HTTP_APIKEY_CLI_O(DB)               \
     | NGX_HTTP_APIKEY_CLI_O(USER) | NGX_HTTP_APIKEY_CLI_O(PASSWORD_FILE)   \
     | NGX_HTTP_APIKEY_CLI_O(REDIS_PREFIX)                                  \
     | NGX_HTTP_APIKEY_CLI_O(HASH_SECRET_FILE) | NGX_HTTP_APIKEY_CLI_O(HELP))

#define NGX_HTTP_APIKEY_CLI_EXPIRY                                          \
    (NGX_HTTP_APIKEY_CLI_O(EXPIRES_IN) | NGX_HTTP_APIKEY_CLI_O(EXPIRES_AT)  \
     | NGX_HTTP_APIKEY_CLI_O(NO_EXPIRY))


typedef struct {
    ngx_http_apikey_cli_redis_conf_t   redis;
    const char                        *redis_prefix;
    const char                        *password_file;
    const char                        *secret_file;
    char                              *secret;
    size_t                             secret_len;

    const char                        *arg;
    const char                        *name;
    const char                        *org;
    const char                        *prefix;
    char                             **scopes;
    size_t                             nscopes;
    int64_t                            expires_at;
    int64_t                            grace;
    unsigned                           options;

    int64_t                            now;
    EVP_MD                            *md;
    redisContext                      *ctx;
    size_t                             pending;
    unsigned                           queue_failed:1;
    char                               err[NGX_HTTP_APIKEY_CLI_ERR_LEN];
} ngx_http_apikey_cli_t;


typedef int (*ngx_http_apikey_cli_handler_pt)(ngx_http_apikey_cli_t *cli);

typedef struct {
    const char                        *name;
    ngx_http_apikey_cli_handler_pt     handler;
    unsigned                           options;
    const char                        *arg;
} ngx_http_apikey_cli_command_t;


static int ngx_http_apikey_cli_options(ngx_http_apikey_cli_t *cli, int argc,
    char **argv, ngx_http_apikey_cli_command_t **command);
static int ngx_http_apikey_cli_option(ngx_http_apikey_cli_t *cli, int opt,
    const char *value);
static int ngx_http_apikey_cli_scope_add(ngx_http_apikey_cli_t *cli,
    const char *value);
static int ngx_http_apikey_cli_check(ngx_http_apikey_cli_t *cli,
    ngx_http_apikey_cli_command_t *cmd);
static int ngx_http_apikey_cli_setup(ngx_http_apikey_cli_t *cli);
static void ngx_http_apikey_cli_cleanup(ngx_http_apikey_cli_t *cli);

static int ngx_http_apikey_cli_create(ngx_http_apikey_cli_t *cli);
static int ngx_http_apikey_cli_list(ngx_http_apikey_cli_t *cli);
static int ngx_http_apikey_cli_show(ngx_http_apikey_cli_t *cli);
static int ngx_http_apikey_cli_update(ngx_http_apikey_cli_t *cli);
static int ngx_http_apikey_cli_revoke(ngx_http_apikey_cli_t *cli);
static int ngx_http_apikey_cli_rotate(ngx_http_apikey_cli_t *cli);
static int ngx_http_apikey_cli_verify(ngx_http_apikey_cli_t *cli);

static int ngx_http_apikey_cli_new_key(ngx_http_apikey_cli_t *cli,
    const char *prefix, unsigned char *key, size_t *len,
    ngx_http_apikey_cli_record_t *rec);
static void ngx_http_apikey_cli_queue_record(ngx_http_apikey_cli_t *cli,
    ngx_http_apikey_cli_record_t *rec);
static void ngx_http_apikey_cli_queue_keep(ngx_http_apikey_cli_t *cli,
    ngx_http_apikey_cli_record_t *rec, int64_t until);
static int ngx_http_apikey_cli_load(ngx_http_apikey_cli_t *cli,
    const char *id, ngx_http_apikey_cli_record_t *rec, int watch);
static int ngx_http_apikey_cli_load_last_used(ngx_http_apikey_cli_t *cli,
    ngx_http_apikey_cli_record_t *rec);
static void ngx_http_apikey_cli_last_used(ngx_http_apikey_cli_record_t *rec,
    redisReply *reply);
static void ngx_http_apikey_cli_multi(ngx_http_apikey_cli_t *cli);
static void ngx_http_apikey_cli_queue(ngx_http_apikey_cli_t *cli, ...);
static int ngx_http_apikey_cli_exec(ngx_http_apikey_cli_t *cli);
static const char *ngx_http_apikey_cli_rkey(ngx_http_apikey_cli_t *cli,
    char *buf, const char *kind, const char *value);
static char *ngx_http_apikey_cli_scopes_join(ngx_http_apikey_cli_t *cli);
static unsigned char *ngx_http_apikey_cli_read_key(size_t *len);
static int ngx_http_apikey_cli_record_compare(const void *one,
    const void *two);
static void ngx_http_apikey_cli_print_record(ngx_http_apikey_cli_t *cli,
    ngx_http_apikey_cli_record_t *rec, const char *key);
static int ngx_http_apikey_cli_fail(const char *fmt, ...);
static int ngx_http_apikey_cli_usage_error(const char *fmt, ...);
static void ngx_http_apikey_cli_usage(FILE *f);


static struct option  ngx_http_apikey_cli_long_options[] = {
    { "redis", required_argument, NULL, NGX_HTTP_APIKEY_CLI_V(REDIS) },
    { "db", required_argument, NULL, NGX_HTTP_APIKEY_CLI_V(DB) },
    { "user", required_argument, NULL, NGX_HTTP_APIKEY_CLI_V(USER) },
    { "password-file", required_argument, NULL,
      NGX_HTTP_APIKEY_CLI_V(PASSWORD_FILE) },
    { "redis-prefix", required_argument, NULL,
      NGX_HTTP_APIKEY_CLI_V(REDIS_PREFIX) },
    { "hash-secret-file", required_argument, NULL,
      NGX_HTTP_APIKEY_CLI_V(HASH_SECRET_FILE) },
    { "help", no_argument, NULL, NGX_HTTP_APIKEY_CLI_V(HELP) },
    { "name", required_argument, NULL, NGX_HTTP_APIKEY_CLI_V(NAME) },
    { "scope", required_argument, NULL, NGX_HTTP_APIKEY_CLI_V(SCOPE) },
    { "org", required_argument, NULL, NGX_HTTP_APIKEY_CLI_V(ORG) },
    { "expires-in", required_argument, NULL,
      NGX_HTTP_APIKEY_CLI_V(EXPIRES_IN) },
    { "expires-at", required_argument, NULL,
      NGX_HTTP_APIKEY_CLI_V(EXPIRES_AT) },
    { "no-expiry", no_argument, NULL, NGX_HTTP_APIKEY_CLI_V(NO_EXPIRY) },
    { "prefix", required_argument, NULL, NGX_HTTP_APIKEY_CLI_V(PREFIX) },
    { "grace", required_argument, NULL, NGX_HTTP_APIKEY_CLI_V(GRACE) },
    { "json", no_argument, NULL, NGX_HTTP_APIKEY_CLI_V(JSON) },
    { NULL, 0, NULL, 0 }
};


static ngx_http_apikey_cli_command_t  ngx_http_apikey_cli_commands[] = {

    { "create",
      ngx_http_apikey_cli_create,
      NGX_HTTP_APIKEY_CLI_O(NAME) | NGX_HTTP_APIKEY_CLI_O(SCOPE)
      | NGX_HTTP_APIKEY_CLI_O(ORG) | NGX_HTTP_APIKEY_CLI_O(EXPIRES_IN)
      | NGX_HTTP_APIKEY_CLI_O(EXPIRES_AT) | NGX_HTTP_APIKEY_CLI_O(PREFIX)
      | NGX_HTTP_APIKEY_CLI_O(JSON),
      NULL },

    { "list",
      ngx_http_apikey_cli_list,
      NGX_HTTP_APIKEY_CLI_O(ORG) | NGX_HTTP_APIKEY_CLI_O(JSON),
      NULL },

    { "show",
      ngx_http_apikey_cli_show,
      NGX_HTTP_APIKEY_CLI_O(JSON),
      "ID" },

    { "update",
      ngx_http_apikey_cli_update,
      NGX_HTTP_APIKEY_CLI_O(NAME) | NGX_HTTP_APIKEY_CLI_O(SCOPE)
      | NGX_HTTP_APIKEY_CLI_EXPIRY | NGX_HTTP_APIKEY_CLI_O(JSON),
      "ID" },

    { "revoke",
      ngx_http_apikey_cli_revoke,
      NGX_HTTP_APIKEY_CLI_O(JSON),
      "ID" },

    { "rotate",
      ngx_http_apikey_cli_rotate,
      NGX_HTTP_APIKEY_CLI_O(GRACE) | NGX_HTTP_APIKEY_CLI_O(PREFIX)
      | NGX_HTTP_APIKEY_CLI_O(JSON),
      "ID" },

    { "verify",
      ngx_http_apikey_cli_verify,
      NGX_HTTP_APIKEY_CLI_O(SCOPE) | NGX_HTTP_APIKEY_CLI_O(ORG)
      | NGX_HTTP_APIKEY_CLI_O(JSON),
      "KEY" },

    { NULL, NULL, 0, NULL }
};


int
main(int argc, char **argv)
{
    int                             rc;
    ngx_http_apikey_cli_t           cli;
    ngx_http_apikey_cli_command_t  *cmd;

    memset(&cli, 0, sizeof(ngx_http_apikey_cli_t));

    cli.now = time(NULL);
    cli.redis_prefix = NGX_HTTP_APIKEY_CLI_PREFIX;

    cmd = NULL;

    rc = ngx_http_apikey_cli_options(&cli, argc, argv, &cmd);

    if (rc == NGX_HTTP_APIKEY_CLI_OK && cmd != NULL) {
        rc = ngx_http_apikey_cli_setup(&cli);

        if (rc == NGX_HTTP_APIKEY_CLI_OK) {
            rc = cmd->handler(&cli);
        }
    }

    ngx_http_apikey_cli_cleanup(&cli);

    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "apikey: cannot write the output\n");
        return NGX_HTTP_APIKEY_CLI_ERROR;
    }

    return rc;
}


static int
ngx_http_apikey_cli_options(ngx_http_apikey_cli_t *cli, int argc,
    char **argv, ngx_http_apikey_cli_command_t **command)
{
    int                             opt, rc;
    const char                     *name;
    ngx_http_apikey_cli_command_t  *cmd;

    opterr = 0;

    for ( ;; ) {
        opt = getopt_long(argc, argv, "h", ngx_http_apikey_cli_long_options,
                          NULL);

        if (opt == -1) {
            break;
        }

        if (opt == '?') {
            name = argv[optind - 1];

            if (optopt >= 0x100) {
                return ngx_http_apikey_cli_usage_error(
                           "option --%s %s",
                           ngx_http_apikey_cli_long_options[optopt - 0x100]
                               .name,
                           ngx_http_apikey_cli_long_options[optopt - 0x100]
                               .has_arg ? "needs a value" : "takes no value");
            }

            if (optopt != 0) {
                return ngx_http_apikey_cli_usage_error("unknown option -%c",
                                                       optopt);
            }

            return ngx_http_apikey_cli_usage_error("unknown option %s", name);
        }

        opt = (opt == 'h') ? NGX_HTTP_APIKEY_CLI_OPT_HELP : opt - 0x100;

        if (opt != NGX_HTTP_APIKEY_CLI_OPT_SCOPE
            && (cli->options & (1U << opt)))
        {
            return ngx_http_apikey_cli_usage_error("option --%s is duplicate",
                       ngx_http_apikey_cli_long_options[opt].name);
        }

        cli->options |= 1U << opt;

        rc = ngx_http_apikey_cli_option(cli, opt, optarg);
        if (rc != NGX_HTTP_APIKEY_CLI_OK) {
            return rc;
        }
    }

    if (cli->options & NGX_HTTP_APIKEY_CLI_O(HELP)) {
        ngx_http_apikey_cli_usage(stdout);
        return NGX_HTTP_APIKEY_CLI_OK;
    }

    if (optind == argc) {
        return ngx_http_apikey_cli_usage_error("no command given");
    }

    name = argv[optind++];

    if (strcmp(name, "help") == 0) {
        ngx_http_apikey_cli_usage(stdout);
        return NGX_HTTP_APIKEY_CLI_OK;
    }

    for (cmd = ngx_http_apikey_cli_commands; cmd->name; cmd++) {
        if (strcmp(name, cmd->name) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        return ngx_http_apikey_cli_usage_error("unknown command \"%s\"", name);
    }

    if (cmd->arg) {
        if (optind == argc) {
            return ngx_http_apikey_cli_usage_error("%s needs %s", cmd->name,
                                                   cmd->arg);
        }

        cli->arg = argv[optind++];
    }

    if (optind != argc) {
        return ngx_http_apikey_cli_usage_error("unexpected argument \"%s\"",
                                               argv[optind]);
    }

    rc = ngx_http_apikey_cli_check(cli, cmd);
    if (rc != NGX_HTTP_APIKEY_CLI_OK) {
        return rc;
    }

    *command = cmd;

    return NGX_HTTP_APIKEY_CLI_OK;
}


static int
ngx_http_apikey_cli_option(ngx_http_apikey_cli_t *cli, int opt,
    const char *value)
{
    int64_t  n;

    switch (opt) {

    case NGX_HTTP_APIKEY_CLI_OPT_REDIS:
        cli->redis.addr = value;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_DB:
        n = ngx_http_apikey_cli_number(value);

        if (n < 0 || n > 65535) {
            return ngx_http_apikey_cli_usage_error("invalid --db \"%s\"",
                                                   value);
        }

        cli->redis.db = (int) n;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_USER:
        if (!ngx_http_apikey_cli_word_valid(value)) {
            return ngx_http_apikey_cli_usage_error("invalid --user");
        }

        cli->redis.user = value;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_PASSWORD_FILE:
        cli->password_file = value;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_REDIS_PREFIX:
        if (strlen(value) > NGX_HTTP_APIKEY_CLI_WORD_MAX
            || (value[0] && !ngx_http_apikey_cli_word_valid(value)))
        {
            return ngx_http_apikey_cli_usage_error(
                       "invalid --redis-prefix \"%s\"", value);
        }

        cli->redis_prefix = value;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_HASH_SECRET_FILE:
        cli->secret_file = value;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_NAME:
        if (value[0] == '\0' || strlen(value) > NGX_HTTP_APIKEY_CLI_NAME_MAX
            || !ngx_http_apikey_cli_text_valid(value))
        {
            return ngx_http_apikey_cli_usage_error(
                       "invalid --name: 1 to %d bytes of UTF-8 text without "
                       "control characters", NGX_HTTP_APIKEY_CLI_NAME_MAX);
        }

        cli->name = value;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_SCOPE:
        return ngx_http_apikey_cli_scope_add(cli, value);

    case NGX_HTTP_APIKEY_CLI_OPT_ORG:
        if (!ngx_http_apikey_cli_word_valid(value)) {
            return ngx_http_apikey_cli_usage_error(
                       "invalid --org \"%s\": printable characters without "
                       "spaces", value);
        }

        cli->org = value;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_EXPIRES_IN:
        if (ngx_http_apikey_cli_duration_parse(value, &n) != 0 || n == 0) {
            return ngx_http_apikey_cli_usage_error(
                       "invalid --expires-in \"%s\" (like 90m, 12h, 30d)",
                       value);
        }

        cli->expires_at = cli->now + n;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_EXPIRES_AT:
        if (ngx_http_apikey_cli_time_parse(value, &n) != 0) {
            return ngx_http_apikey_cli_usage_error(
                       "invalid --expires-at \"%s\" (RFC 3339, like "
                       "2030-01-31T12:00:00Z)", value);
        }

        cli->expires_at = n;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_PREFIX:
        if (!ngx_http_apikey_key_prefix_valid((const unsigned char *) value,
                                              strlen(value)))
        {
            return ngx_http_apikey_cli_usage_error(
                       "invalid --prefix \"%s\": up to %d letters, digits "
                       "and underscores, ending in \"_\"", value,
                       NGX_HTTP_APIKEY_KEY_PREFIX_MAX);
        }

        cli->prefix = value;
        break;

    case NGX_HTTP_APIKEY_CLI_OPT_GRACE:
        if (ngx_http_apikey_cli_duration_parse(value, &n) != 0) {
            return ngx_http_apikey_cli_usage_error(
                       "invalid --grace \"%s\" (like 0, 90m, 12h, 7d)",
                       value);
        }

        cli->grace = n;
        break;

    default:
        /* --help, --no-expiry and --json are flags */
        break;
    }

    return NGX_HTTP_APIKEY_CLI_OK;
}


/* a --scope value may hold several scopes separated by spaces */

static int
ngx_http_apikey_cli_scope_add(ngx_http_apikey_cli_t *cli, const char *value)
{
    size_t        i, len;
    char        **scopes, *scope;
    const char   *p, *start;

    for (p = value; *p; /* void */ ) {

        if (*p == ' ') {
            p++;
            continue;
        }

        start = p;

        while (*p && *p != ' ') {
            p++;
        }

        len = p - start;

        scope = strndup(start, len);
        if (scope == NULL) {
            return ngx_http_apikey_cli_fail("out of memory");
        }

        if (!ngx_http_apikey_cli_word_valid(scope)) {
            free(scope);
            return ngx_http_apikey_cli_usage_error(
                       "invalid --scope \"%s\": printable characters "
                       "without spaces", value);
        }

        for (i = 0; i < cli->nscopes; i++) {
            if (strcmp(cli->scopes[i], scope) == 0) {
                break;
            }
        }

        if (i < cli->nscopes) {
            free(scope);
            continue;
        }

        scopes = realloc(cli->scopes, (cli->nscopes + 1) * sizeof(char *));
        if (scopes == NULL) {
            free(scope);
            return ngx_http_apikey_cli_fail("out of memory");
        }

        cli->scopes = scopes;
        cli->scopes[cli->nscopes++] = scope;
    }

    return NGX_HTTP_APIKEY_CLI_OK;
}


static int
ngx_http_apikey_cli_check(ngx_http_apikey_cli_t *cli,
    ngx_http_apikey_cli_command_t *cmd)
{
    int       i;
    unsigned  extra, expiry;

    extra = cli->options & ~(cmd->options | NGX_HTTP_APIKEY_CLI_GLOBAL);

    if (extra) {
        for (i = 0; (extra & (1U << i)) == 0; i++) { /* void */ }

        return ngx_http_apikey_cli_usage_error("%s does not take --%s",
                   cmd->name, ngx_http_apikey_cli_long_options[i].name);
    }

    expiry = cli->options & NGX_HTTP_APIKEY_CLI_EXPIRY;

    if (expiry & (expiry - 1)) {
        return ngx_http_apikey_cli_usage_error(
                   "--expires-in, --expires-at and --no-expiry exclude "
                   "each other");
    }

    if ((cli->options & NGX_HTTP_APIKEY_CLI_O(USER))
        && !(cli->options & NGX_HTTP_APIKEY_CLI_O(PASSWORD_FILE)))
    {
        return ngx_http_apikey_cli_usage_error("--user needs --password-file");
    }

    if (cmd->handler == ngx_http_apikey_cli_create) {

        if (cli->name == NULL) {
            return ngx_http_apikey_cli_usage_error("create needs --name");
        }

        if (expiry && cli->expires_at <= cli->now) {
            return ngx_http_apikey_cli_usage_error(
                       "--expires-at is in the past");
        }
    }

    if (cmd->handler == ngx_http_apikey_cli_update
        && (cli->options
            & (NGX_HTTP_APIKEY_CLI_O(NAME) | NGX_HTTP_APIKEY_CLI_O(SCOPE)
               | NGX_HTTP_APIKEY_CLI_EXPIRY))
           == 0)
    {
        return ngx_http_apikey_cli_usage_error(
                   "update needs --name, --scope, --expires-in, --expires-at "
                   "or --no-expiry");
    }

    if (cli->arg && cmd->handler != ngx_http_apikey_cli_verify
        && (!ngx_http_apikey_cli_word_valid(cli->arg)
            || strlen(cli->arg) > NGX_HTTP_APIKEY_CLI_WORD_MAX))
    {
        return ngx_http_apikey_cli_usage_error("invalid ID \"%s\"", cli->arg);
    }

    return NGX_HTTP_APIKEY_CLI_OK;
}


static int
ngx_http_apikey_cli_setup(ngx_http_apikey_cli_t *cli)
{
    const char  *addr;

    addr = cli->redis.addr;

    if (addr == NULL) {
        addr = getenv("APIKEY_REDIS");

        if (addr == NULL || addr[0] == '\0') {
            addr = NGX_HTTP_APIKEY_CLI_REDIS_DEFAULT;
        }
    }

    if (ngx_http_apikey_cli_redis_addr(&cli->redis, addr, cli->err) != 0) {
        return ngx_http_apikey_cli_usage_error("%s", cli->err);
    }

    if (cli->password_file
        && ngx_http_apikey_cli_file_read(cli->password_file,
                                         &cli->redis.password,
                                         &cli->redis.password_len, cli->err)
           != 0)
    {
        return ngx_http_apikey_cli_fail("--password-file: %s", cli->err);
    }

    if (cli->secret_file) {
        if (ngx_http_apikey_cli_file_read(cli->secret_file, &cli->secret,
                                          &cli->secret_len, cli->err)
            != 0)
        {
            return ngx_http_apikey_cli_fail("--hash-secret-file: %s",
                                            cli->err);
        }

        if (cli->secret_len == 0) {
            return ngx_http_apikey_cli_fail(
                       "--hash-secret-file: \"%s\" is empty",
                       cli->secret_file);
        }
    }

    cli->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (cli->md == NULL) {
        return ngx_http_apikey_cli_fail("OpenSSL has no SHA-256");
    }

    cli->ctx = ngx_http_apikey_cli_redis_connect(&cli->redis, cli->err);
    if (cli->ctx == NULL) {
        return ngx_http_apikey_cli_fail("%s", cli->err);
    }

    return NGX_HTTP_APIKEY_CLI_OK;
}


static void
ngx_http_apikey_cli_cleanup(ngx_http_apikey_cli_t *cli)
{
    size_t  i;

    if (cli->ctx) {
        redisFree(cli->ctx);
    }

    if (cli->md) {
        EVP_MD_free(cli->md);
    }

    ngx_http_apikey_cli_file_free(cli->secret, cli->secret_len);
    ngx_http_apikey_cli_file_free(cli->redis.password,
                                  cli->redis.password_len);

    for (i = 0; i < cli->nscopes; i++) {
        free(cli->scopes[i]);
    }

    free(cli->scopes);
    free(cli->redis.host);
    free(cli->redis.path);
}


static int
ngx_http_apikey_cli_create(ngx_http_apikey_cli_t *cli)
{
    int                           rc;
    size_t                        len;
    unsigned char                 key[NGX_HTTP_APIKEY_KEY_MAX_LEN + 1];
    ngx_http_apikey_cli_record_t  rec;

    rc = ngx_http_apikey_cli_new_key(cli, cli->prefix, key, &len, &rec);
    if (rc != NGX_HTTP_APIKEY_CLI_OK) {
        return rc;
    }

    rec.name = strdup(cli->name);
    rec.org = cli->org ? strdup(cli->org) : NULL;
    rec.scopes = ngx_http_apikey_cli_scopes_join(cli);
    rec.expires_at = cli->expires_at;

    if (rec.name == NULL || (cli->org && rec.org == NULL)
        || rec.scopes == NULL)
    {
        rc = ngx_http_apikey_cli_fail("out of memory");
        goto done;
    }

    ngx_http_apikey_cli_multi(cli);
    ngx_http_apikey_cli_queue_record(cli, &rec);

    if (ngx_http_apikey_cli_exec(cli) != 1) {
        rc = ngx_http_apikey_cli_fail("%s", cli->err);
        goto done;
    }

    ngx_http_apikey_cli_print_record(cli, &rec, (char *) key);

done:

    OPENSSL_cleanse(key, sizeof(key));
    ngx_http_apikey_cli_record_free(&rec);

    return rc;
}


static int
ngx_http_apikey_cli_list(ngx_http_apikey_cli_t *cli)
{
    int                            rc;
    size_t                         i, n, nrecs, nstale;
    char                           set[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    char                           buf[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    redisReply                    *ids, *reply, *used, **hashes;
    ngx_http_apikey_cli_table_t    table;
    ngx_http_apikey_cli_record_t  *recs;

    if (cli->org) {
        ngx_http_apikey_cli_rkey(cli, set, "org:", cli->org);

    } else {
        ngx_http_apikey_cli_rkey(cli, set, "ids", "");
    }

    ids = ngx_http_apikey_cli_redis_command(cli->ctx, cli->err, "SMEMBERS",
                                            set, NULL);
    if (ids == NULL) {
        return ngx_http_apikey_cli_fail("%s", cli->err);
    }

    n = (ids->type == REDIS_REPLY_ARRAY) ? ids->elements : 0;

    rc = NGX_HTTP_APIKEY_CLI_ERROR;
    recs = NULL;
    nrecs = 0;

    hashes = calloc(n + 1, sizeof(redisReply *));
    recs = calloc(n + 1, sizeof(ngx_http_apikey_cli_record_t));

    if (hashes == NULL || recs == NULL) {
        ngx_http_apikey_cli_fail("out of memory");
        goto done;
    }

    /* two pipelined round trips: the id index, then the records */

    for (i = 0; i < n; i++) {
        ngx_http_apikey_cli_redis_append(cli->ctx, "GET",
            ngx_http_apikey_cli_rkey(cli, buf, "id:", ids->element[i]->str),
            NULL);
    }

    for (i = 0; i < n; i++) {
        hashes[i] = ngx_http_apikey_cli_redis_read(cli->ctx, cli->err);

        if (hashes[i] == NULL) {
            ngx_http_apikey_cli_fail("%s", cli->err);
            goto done;
        }
    }

    for (i = 0; i < n; i++) {
        if (hashes[i]->type == REDIS_REPLY_STRING
            && hashes[i]->len == NGX_HTTP_APIKEY_HASH_HEX_LEN)
        {
            ngx_http_apikey_cli_redis_append(cli->ctx, "HGETALL",
                ngx_http_apikey_cli_rkey(cli, buf, "", hashes[i]->str), NULL);
            ngx_http_apikey_cli_redis_append(cli->ctx, "HGET",
                ngx_http_apikey_cli_rkey(cli, buf, "last_used", ""),
                ids->element[i]->str, NULL);
        }
    }

    nstale = 0;

    for (i = 0; i < n; i++) {
        if (hashes[i]->type != REDIS_REPLY_STRING
            || hashes[i]->len != NGX_HTTP_APIKEY_HASH_HEX_LEN)
        {
            goto stale;
        }

        reply = ngx_http_apikey_cli_redis_read(cli->ctx, cli->err);
        if (reply == NULL) {
            ngx_http_apikey_cli_fail("%s", cli->err);
            goto done;
        }

        used = ngx_http_apikey_cli_redis_read(cli->ctx, cli->err);
        if (used == NULL) {
            freeReplyObject(reply);
            ngx_http_apikey_cli_fail("%s", cli->err);
            goto done;
        }

        if (ngx_http_apikey_cli_record_parse(&recs[nrecs], reply) != 0) {
            freeReplyObject(reply);
            freeReplyObject(used);
            goto stale;
        }

        freeReplyObject(reply);

        ngx_http_apikey_cli_last_used(&recs[nrecs], used);
        freeReplyObject(used);

        if (strcmp(recs[nrecs].id, ids->element[i]->str) != 0
            || (cli->org
                && (recs[nrecs].org == NULL
                    || strcmp(recs[nrecs].org, cli->org) != 0)))
        {
            /* not this index's key: leave it to whoever wrote it */
            ngx_http_apikey_cli_record_free(&recs[nrecs]);
            continue;
        }

        memcpy(recs[nrecs].hash, hashes[i]->str,
               NGX_HTTP_APIKEY_HASH_HEX_LEN);
        nrecs++;

        continue;

    stale:

        /* the record expired or was deleted: drop its index entries */

        freeReplyObject(hashes[i]);
        hashes[i] = NULL;
        nstale++;
    }

    for (i = 0; i < n; i++) {
        if (hashes[i] != NULL) {
            continue;
        }

        ngx_http_apikey_cli_redis_append(cli->ctx, "SREM", set,
                                         ids->element[i]->str, NULL);
        ngx_http_apikey_cli_redis_append(cli->ctx, "SREM",
            ngx_http_apikey_cli_rkey(cli, buf, "ids", ""),
            ids->element[i]->str, NULL);
        ngx_http_apikey_cli_redis_append(cli->ctx, "DEL",
            ngx_http_apikey_cli_rkey(cli, buf, "id:", ids->element[i]->str),
            NULL);
        ngx_http_apikey_cli_redis_append(cli->ctx, "HDEL",
            ngx_http_apikey_cli_rkey(cli, buf, "last_used", ""),
            ids->element[i]->str, NULL);
    }

    for (i = 0; i < nstale * 4; i++) {
        reply = ngx_http_apikey_cli_redis_read(cli->ctx, cli->err);
        if (reply == NULL) {
            ngx_http_apikey_cli_fail("%s", cli->err);
            goto done;
        }

        freeReplyObject(reply);
    }

    qsort(recs, nrecs, sizeof(ngx_http_apikey_cli_record_t),
          ngx_http_apikey_cli_record_compare);

    if (cli->options & NGX_HTTP_APIKEY_CLI_O(JSON)) {
        putchar('[');

        for (i = 0; i < nrecs; i++) {
            if (i) {
                putchar(',');
            }

            ngx_http_apikey_cli_record_json(stdout, &recs[i], NULL, cli->now);
        }

        puts("]");

        rc = NGX_HTTP_APIKEY_CLI_OK;
        goto done;
    }

    ngx_http_apikey_cli_table_init(&table, 9);

    if (ngx_http_apikey_cli_record_list_header(&table) != 0) {
        ngx_http_apikey_cli_fail("out of memory");
        goto table_done;
    }

    for (i = 0; i < nrecs; i++) {
        if (ngx_http_apikey_cli_record_list_row(&table, &recs[i], cli->now)
            != 0)
        {
            ngx_http_apikey_cli_fail("out of memory");
            goto table_done;
        }
    }

    ngx_http_apikey_cli_table_print(stdout, &table);

    rc = NGX_HTTP_APIKEY_CLI_OK;

table_done:

    ngx_http_apikey_cli_table_free(&table);

done:

    if (hashes) {
        for (i = 0; i < n; i++) {
            if (hashes[i]) {
                freeReplyObject(hashes[i]);
            }
        }

        free(hashes);
    }

    if (recs) {
        for (i = 0; i < nrecs; i++) {
            ngx_http_apikey_cli_record_free(&recs[i]);
        }

        free(recs);
    }

    freeReplyObject(ids);

    return rc;
}


static int
ngx_http_apikey_cli_show(ngx_http_apikey_cli_t *cli)
{
    int                           rc;
    ngx_http_apikey_cli_record_t  rec;

    rc = ngx_http_apikey_cli_load(cli, cli->arg, &rec, 0);
    if (rc != NGX_HTTP_APIKEY_CLI_OK) {
        return rc;
    }

    ngx_http_apikey_cli_print_record(cli, &rec, NULL);
    ngx_http_apikey_cli_record_free(&rec);

    return NGX_HTTP_APIKEY_CLI_OK;
}


static int
ngx_http_apikey_cli_update(ngx_http_apikey_cli_t *cli)
{
    int                           rc, n, done;
    char                          rkey[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    char                          expires[32], *scopes, *p;
    ngx_http_apikey_cli_record_t  rec;

    scopes = NULL;

    if (cli->options & NGX_HTTP_APIKEY_CLI_O(SCOPE)) {
        scopes = ngx_http_apikey_cli_scopes_join(cli);
        if (scopes == NULL) {
            return ngx_http_apikey_cli_fail("out of memory");
        }
    }

    if (cli->options & NGX_HTTP_APIKEY_CLI_O(NO_EXPIRY)) {
        cli->expires_at = 0;
    }

    snprintf(expires, sizeof(expires), "%lld", (long long) cli->expires_at);

    /* WATCH makes the read-modify-write safe against a concurrent writer */

    for (n = 0; n < NGX_HTTP_APIKEY_CLI_RETRIES; n++) {

        rc = ngx_http_apikey_cli_load(cli, cli->arg, &rec, 1);
        if (rc != NGX_HTTP_APIKEY_CLI_OK) {
            free(scopes);
            return rc;
        }

        ngx_http_apikey_cli_rkey(cli, rkey, "", rec.hash);

        ngx_http_apikey_cli_multi(cli);

        if (cli->name) {
            ngx_http_apikey_cli_queue(cli, "HSET", rkey, "name", cli->name,
                                      NULL);
            p = strdup(cli->name);
            free(rec.name);
            rec.name = p;
        }

        if (scopes) {
            ngx_http_apikey_cli_queue(cli, "HSET", rkey, "scopes", scopes,
                                      NULL);
            p = strdup(scopes);
            free(rec.scopes);
            rec.scopes = p;
        }

        if (cli->options & NGX_HTTP_APIKEY_CLI_EXPIRY) {
            ngx_http_apikey_cli_queue(cli, "HSET", rkey, "expires_at",
                                      expires, NULL);
            rec.expires_at = cli->expires_at;

            /* a revoked key keeps the housekeeping TTL of its revocation */

            if (!rec.revoked) {
                ngx_http_apikey_cli_queue_keep(cli, &rec, rec.expires_at);
            }
        }

        done = ngx_http_apikey_cli_exec(cli);

        if (done == 1) {
            ngx_http_apikey_cli_print_record(cli, &rec, NULL);
        }

        ngx_http_apikey_cli_record_free(&rec);

        if (done == -1) {
            free(scopes);
            return ngx_http_apikey_cli_fail("%s", cli->err);
        }

        if (done == 1) {
            free(scopes);
            return NGX_HTTP_APIKEY_CLI_OK;
        }
    }

    free(scopes);

    return ngx_http_apikey_cli_fail(
               "%s is being changed by someone else, try again", cli->arg);
}


static int
ngx_http_apikey_cli_revoke(ngx_http_apikey_cli_t *cli)
{
    int                           rc, done, was;
    int64_t                       until;
    char                          rkey[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    ngx_http_apikey_cli_record_t  rec;

    rc = ngx_http_apikey_cli_load(cli, cli->arg, &rec, 1);
    if (rc != NGX_HTTP_APIKEY_CLI_OK) {
        return rc;
    }

    was = rec.revoked;

    if (!rec.revoked) {
        ngx_http_apikey_cli_multi(cli);

        ngx_http_apikey_cli_queue(cli, "HSET",
                                  ngx_http_apikey_cli_rkey(cli, rkey, "",
                                                           rec.hash),
                                  "revoked", "1", NULL);

        until = cli->now;

        if (rec.expires_at && rec.expires_at < until) {
            until = rec.expires_at;
        }

        ngx_http_apikey_cli_queue_keep(cli, &rec, until);

        done = ngx_http_apikey_cli_exec(cli);

        if (done != 1) {
            ngx_http_apikey_cli_record_free(&rec);
            return ngx_http_apikey_cli_fail("%s", done == 0
                       ? "the key changed while revoking it, try again"
                       : cli->err);
        }

        rec.revoked = 1;
    }

    if (cli->options & NGX_HTTP_APIKEY_CLI_O(JSON)) {
        ngx_http_apikey_cli_print_record(cli, &rec, NULL);

    } else {
        printf(was ? "%s was already revoked\n" : "%s revoked\n", rec.id);
    }

    ngx_http_apikey_cli_record_free(&rec);

    return NGX_HTTP_APIKEY_CLI_OK;
}


static int
ngx_http_apikey_cli_rotate(ngx_http_apikey_cli_t *cli)
{
    int                           rc, done;
    size_t                        len;
    int64_t                       until;
    char                          rkey[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    char                          expires[32];
    char                          at[NGX_HTTP_APIKEY_CLI_TIME_LEN];
    const char                   *prefix;
    unsigned char                 key[NGX_HTTP_APIKEY_KEY_MAX_LEN + 1];
    ngx_http_apikey_cli_record_t  old, rec;

    rc = ngx_http_apikey_cli_load(cli, cli->arg, &old, 1);
    if (rc != NGX_HTTP_APIKEY_CLI_OK) {
        return rc;
    }

    memset(&rec, 0, sizeof(ngx_http_apikey_cli_record_t));
    until = cli->now;

    if (old.revoked || (old.expires_at && old.expires_at <= cli->now)) {
        rc = ngx_http_apikey_cli_fail("%s is %s: create a new key "
                                      "instead", old.id, old.revoked
                                      ? "revoked" : "expired");
        goto done;
    }

    if (old.replaced_by) {
        rc = ngx_http_apikey_cli_fail("%s was already rotated: it is "
                                      "replaced by %s", old.id,
                                      old.replaced_by);
        goto done;
    }

    prefix = cli->prefix ? cli->prefix : old.prefix;

    if (prefix
        && !ngx_http_apikey_key_prefix_valid((const unsigned char *) prefix,
                                             strlen(prefix)))
    {
        prefix = NULL;
    }

    rc = ngx_http_apikey_cli_new_key(cli, prefix, key, &len, &rec);
    if (rc != NGX_HTTP_APIKEY_CLI_OK) {
        goto done;
    }

    rec.name = old.name ? strdup(old.name) : NULL;
    rec.org = old.org ? strdup(old.org) : NULL;
    rec.scopes = old.scopes ? strdup(old.scopes) : strdup("");
    rec.expires_at = old.expires_at;

    if ((old.name && rec.name == NULL) || (old.org && rec.org == NULL)
        || rec.scopes == NULL)
    {
        rc = ngx_http_apikey_cli_fail("out of memory");
        goto done;
    }

    ngx_http_apikey_cli_rkey(cli, rkey, "", old.hash);

    ngx_http_apikey_cli_multi(cli);
    ngx_http_apikey_cli_queue_record(cli, &rec);
    ngx_http_apikey_cli_queue(cli, "HSET", rkey, "replaced_by", rec.id, NULL);

    if (cli->grace == 0) {
        ngx_http_apikey_cli_queue(cli, "HSET", rkey, "revoked", "1", NULL);
        ngx_http_apikey_cli_queue_keep(cli, &old, cli->now);

    } else {
        until = cli->now + cli->grace;

        if (old.expires_at && old.expires_at < until) {
            until = old.expires_at;
        }

        snprintf(expires, sizeof(expires), "%lld", (long long) until);

        ngx_http_apikey_cli_queue(cli, "HSET", rkey, "expires_at", expires,
                                  NULL);
        ngx_http_apikey_cli_queue_keep(cli, &old, until);
    }

    done = ngx_http_apikey_cli_exec(cli);

    if (done != 1) {
        rc = ngx_http_apikey_cli_fail("%s", done == 0
                 ? "the key changed while rotating it, try again" : cli->err);
        goto done;
    }

    ngx_http_apikey_cli_print_record(cli, &rec, (char *) key);

    if (!(cli->options & NGX_HTTP_APIKEY_CLI_O(JSON))) {
        if (cli->grace == 0) {
            fprintf(stderr, "%s is revoked.\n", old.id);

        } else {
            ngx_http_apikey_cli_time_format(until, at);
            fprintf(stderr, "%s keeps working until %s.\n", old.id, at);
        }
    }

done:

    OPENSSL_cleanse(key, sizeof(key));
    ngx_http_apikey_cli_record_free(&old);
    ngx_http_apikey_cli_record_free(&rec);

    return rc;
}


static int
ngx_http_apikey_cli_verify(ngx_http_apikey_cli_t *cli)
{
    int                            json;
    char                           rkey[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    char                          *scopes;
    size_t                         len, plen;
    unsigned char                 *key, *line;
    unsigned char                  hash[NGX_HTTP_APIKEY_HASH_HEX_LEN + 1];
    const char                    *result, *checksum, *row[2];
    redisReply                    *reply;
    ngx_http_apikey_cli_table_t    table;
    ngx_http_apikey_cli_record_t   rec, *found;
    ngx_http_apikey_status_e       status;

    line = NULL;

    if (strcmp(cli->arg, "-") == 0) {
        line = ngx_http_apikey_cli_read_key(&len);
        if (line == NULL) {
            return ngx_http_apikey_cli_fail("cannot read the key from "
                                            "standard input");
        }

        key = line;

    } else {
        key = (unsigned char *) cli->arg;
        len = strlen(cli->arg);
    }

    found = NULL;
    checksum = NULL;
    scopes = NULL;
    memset(&rec, 0, sizeof(ngx_http_apikey_cli_record_t));

    status = ngx_http_apikey_policy_token(key, len);

    if (status != NGX_HTTP_APIKEY_OK) {
        goto done;
    }

    /* a key that looks like one of ours: a valid prefix before the body */

    if (len > NGX_HTTP_APIKEY_KEY_BODY_LEN
        && len <= NGX_HTTP_APIKEY_KEY_MAX_LEN)
    {
        plen = len - NGX_HTTP_APIKEY_KEY_BODY_LEN;

        if (ngx_http_apikey_key_prefix_valid(key, plen)) {
            checksum = ngx_http_apikey_key_check(key, len) ? "ok" : "bad";
        }
    }

    status = NGX_HTTP_APIKEY_ERROR;

    if (ngx_http_apikey_key_hash(cli->md, (unsigned char *) cli->secret,
                                 cli->secret_len, key, len, hash)
        != 0)
    {
        ngx_http_apikey_cli_fail("cannot hash the key");
        goto failed;
    }

    hash[NGX_HTTP_APIKEY_HASH_HEX_LEN] = '\0';

    reply = ngx_http_apikey_cli_redis_command(cli->ctx, cli->err, "HGETALL",
                ngx_http_apikey_cli_rkey(cli, rkey, "", (char *) hash), NULL);

    if (reply == NULL) {
        ngx_http_apikey_cli_fail("%s", cli->err);
        goto failed;
    }

    if (ngx_http_apikey_cli_record_parse(&rec, reply) == 0) {
        found = &rec;
    }

    freeReplyObject(reply);

    if (found && ngx_http_apikey_cli_load_last_used(cli, found) != 0) {
        goto failed;
    }

    scopes = ngx_http_apikey_cli_scopes_join(cli);
    if (scopes == NULL) {
        ngx_http_apikey_cli_fail("out of memory");
        goto failed;
    }

    status = ngx_http_apikey_cli_record_verdict(found, cli->now, scopes,
                                                cli->org);

done:

    result = ngx_http_apikey_policy_status_name(status);

    if (line) {
        OPENSSL_cleanse(line, len);
        free(line);
    }

    free(scopes);

    json = (cli->options & NGX_HTTP_APIKEY_CLI_O(JSON)) != 0;

    if (json) {
        fputs("{\"result\":", stdout);
        ngx_http_apikey_cli_json_string(stdout, result);
        fputs(",\"checksum\":", stdout);
        ngx_http_apikey_cli_json_string(stdout, checksum);

        if (found) {
            fputs(",\"record\":", stdout);
            ngx_http_apikey_cli_record_json(stdout, found, NULL, cli->now);

        } else {
            fputs(",\"record\":null", stdout);
        }

        puts("}");

    } else {
        ngx_http_apikey_cli_table_init(&table, 2);

        row[0] = "result";
        row[1] = result;

        if (ngx_http_apikey_cli_table_add(&table, row) == 0) {
            row[0] = "checksum";
            row[1] = checksum ? checksum : "n/a";
        }

        if (ngx_http_apikey_cli_table_add(&table, row) == 0
            && (found == NULL
                || ngx_http_apikey_cli_record_rows(&table, found, cli->now)
                   == 0))
        {
            ngx_http_apikey_cli_table_print(stdout, &table);
        }

        ngx_http_apikey_cli_table_free(&table);
    }

    ngx_http_apikey_cli_record_free(&rec);

    return NGX_HTTP_APIKEY_CLI_OK;

failed:

    if (line) {
        OPENSSL_cleanse(line, len);
        free(line);
    }

    ngx_http_apikey_cli_record_free(&rec);

    return NGX_HTTP_APIKEY_CLI_ERROR;
}


/*
 * Makes a key, its hash and an id; rec gets what the tool writes besides
 * name, org, scopes and expiry.
 */

static int
ngx_http_apikey_cli_new_key(ngx_http_apikey_cli_t *cli, const char *prefix,
    unsigned char *key, size_t *len, ngx_http_apikey_cli_record_t *rec)
{
    size_t         n;
    unsigned char  id[NGX_HTTP_APIKEY_CLI_ID_LEN + 1];

    memset(rec, 0, sizeof(ngx_http_apikey_cli_record_t));

    if (prefix == NULL) {
        prefix = NGX_HTTP_APIKEY_KEY_DEFAULT_PREFIX;
    }

    n = ngx_http_apikey_key_generate((const unsigned char *) prefix,
                                     strlen(prefix), key);

    if (n == 0) {
        return ngx_http_apikey_cli_fail("cannot generate a key: "
                                        "RAND_bytes() failed");
    }

    key[n] = '\0';
    *len = n;

    if (ngx_http_apikey_key_hash(cli->md, (unsigned char *) cli->secret,
                                 cli->secret_len, key, n,
                                 (unsigned char *) rec->hash)
        != 0)
    {
        OPENSSL_cleanse(key, n);
        return ngx_http_apikey_cli_fail("cannot hash the key");
    }

    rec->hash[NGX_HTTP_APIKEY_HASH_HEX_LEN] = '\0';

    memcpy(id, NGX_HTTP_APIKEY_CLI_ID_PREFIX,
           sizeof(NGX_HTTP_APIKEY_CLI_ID_PREFIX) - 1);

    if (ngx_http_apikey_key_random(id + sizeof(NGX_HTTP_APIKEY_CLI_ID_PREFIX)
                                   - 1, NGX_HTTP_APIKEY_CLI_ID_RANDOM_LEN)
        != 0)
    {
        OPENSSL_cleanse(key, n);
        return ngx_http_apikey_cli_fail("cannot generate an id: "
                                        "RAND_bytes() failed");
    }

    id[NGX_HTTP_APIKEY_CLI_ID_LEN] = '\0';

    rec->id = strdup((char *) id);
    rec->hint = strndup((char *) key + n - NGX_HTTP_APIKEY_KEY_HINT_LEN,
                        NGX_HTTP_APIKEY_KEY_HINT_LEN);
    rec->prefix = strdup(prefix);
    rec->created_at = cli->now;

    if (rec->id == NULL || rec->hint == NULL || rec->prefix == NULL) {
        OPENSSL_cleanse(key, n);
        ngx_http_apikey_cli_record_free(rec);
        return ngx_http_apikey_cli_fail("out of memory");
    }

    return NGX_HTTP_APIKEY_CLI_OK;
}


/* the record, its index entries and its housekeeping TTL */

static void
ngx_http_apikey_cli_queue_record(ngx_http_apikey_cli_t *cli,
    ngx_http_apikey_cli_record_t *rec)
{
    char  rkey[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    char  expires[32], created[32];

    snprintf(expires, sizeof(expires), "%lld", (long long) rec->expires_at);
    snprintf(created, sizeof(created), "%lld", (long long) rec->created_at);

    ngx_http_apikey_cli_queue(cli, "HSET",
                              ngx_http_apikey_cli_rkey(cli, rkey, "",
                                                       rec->hash),
                              "id", rec->id,
                              "name", rec->name ? rec->name : "",
                              "org", rec->org ? rec->org : "",
                              "scopes", rec->scopes ? rec->scopes : "",
                              "expires_at", expires,
                              "created_at", created,
                              "hint", rec->hint,
                              "prefix", rec->prefix,
                              NULL);

    ngx_http_apikey_cli_queue(cli, "SET",
                              ngx_http_apikey_cli_rkey(cli, rkey, "id:",
                                                       rec->id),
                              rec->hash, NULL);

    ngx_http_apikey_cli_queue(cli, "SADD",
                              ngx_http_apikey_cli_rkey(cli, rkey, "ids", ""),
                              rec->id, NULL);

    if (rec->org) {
        ngx_http_apikey_cli_queue(cli, "SADD",
                                  ngx_http_apikey_cli_rkey(cli, rkey, "org:",
                                                           rec->org),
                                  rec->id, NULL);
    }

    if (rec->expires_at) {
        ngx_http_apikey_cli_queue_keep(cli, rec, rec->expires_at);
    }
}


/*
 * The record and its id index vanish a week after "until" (0: never);
 * the module decides by expires_at and revoked, never by this TTL.
 */

static void
ngx_http_apikey_cli_queue_keep(ngx_http_apikey_cli_t *cli,
    ngx_http_apikey_cli_record_t *rec, int64_t until)
{
    char  rkey[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    char  at[32];

    if (until == 0) {
        ngx_http_apikey_cli_queue(cli, "PERSIST",
                                  ngx_http_apikey_cli_rkey(cli, rkey, "",
                                                           rec->hash),
                                  NULL);
        ngx_http_apikey_cli_queue(cli, "PERSIST",
                                  ngx_http_apikey_cli_rkey(cli, rkey, "id:",
                                                           rec->id),
                                  NULL);
        return;
    }

    snprintf(at, sizeof(at), "%lld",
             (long long) (until + NGX_HTTP_APIKEY_CLI_KEEP));

    ngx_http_apikey_cli_queue(cli, "EXPIREAT",
                              ngx_http_apikey_cli_rkey(cli, rkey, "",
                                                       rec->hash),
                              at, NULL);
    ngx_http_apikey_cli_queue(cli, "EXPIREAT",
                              ngx_http_apikey_cli_rkey(cli, rkey, "id:",
                                                       rec->id),
                              at, NULL);
}


/*
 * Finds a record through the id index; with watch, both keys are watched
 * so that a following MULTI/EXEC fails if anyone changed them.
 */

static int
ngx_http_apikey_cli_load(ngx_http_apikey_cli_t *cli, const char *id,
    ngx_http_apikey_cli_record_t *rec, int watch)
{
    char         ikey[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    char         rkey[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    char         hash[NGX_HTTP_APIKEY_HASH_HEX_LEN + 1];
    redisReply  *reply;

    memset(rec, 0, sizeof(ngx_http_apikey_cli_record_t));

    ngx_http_apikey_cli_rkey(cli, ikey, "id:", id);

    if (watch) {
        reply = ngx_http_apikey_cli_redis_command(cli->ctx, cli->err,
                                                  "WATCH", ikey, NULL);
        if (reply == NULL) {
            return ngx_http_apikey_cli_fail("%s", cli->err);
        }

        freeReplyObject(reply);
    }

    reply = ngx_http_apikey_cli_redis_command(cli->ctx, cli->err, "GET", ikey,
                                              NULL);
    if (reply == NULL) {
        return ngx_http_apikey_cli_fail("%s", cli->err);
    }

    if (reply->type != REDIS_REPLY_STRING
        || reply->len != NGX_HTTP_APIKEY_HASH_HEX_LEN)
    {
        freeReplyObject(reply);
        return ngx_http_apikey_cli_fail("no key with id %s", id);
    }

    memcpy(hash, reply->str, NGX_HTTP_APIKEY_HASH_HEX_LEN);
    hash[NGX_HTTP_APIKEY_HASH_HEX_LEN] = '\0';
    freeReplyObject(reply);

    ngx_http_apikey_cli_rkey(cli, rkey, "", hash);

    if (watch) {
        reply = ngx_http_apikey_cli_redis_command(cli->ctx, cli->err,
                                                  "WATCH", rkey, NULL);
        if (reply == NULL) {
            return ngx_http_apikey_cli_fail("%s", cli->err);
        }

        freeReplyObject(reply);
    }

    reply = ngx_http_apikey_cli_redis_command(cli->ctx, cli->err, "HGETALL",
                                              rkey, NULL);
    if (reply == NULL) {
        return ngx_http_apikey_cli_fail("%s", cli->err);
    }

    if (ngx_http_apikey_cli_record_parse(rec, reply) != 0
        || strcmp(rec->id, id) != 0)
    {
        freeReplyObject(reply);
        ngx_http_apikey_cli_record_free(rec);
        return ngx_http_apikey_cli_fail("no key with id %s", id);
    }

    freeReplyObject(reply);

    memcpy(rec->hash, hash, sizeof(hash));

    return ngx_http_apikey_cli_load_last_used(cli, rec);
}


/* the module writes the last use apart from the record: Plast_used */

static int
ngx_http_apikey_cli_load_last_used(ngx_http_apikey_cli_t *cli,
    ngx_http_apikey_cli_record_t *rec)
{
    char         rkey[NGX_HTTP_APIKEY_CLI_RKEY_LEN];
    redisReply  *reply;

    reply = ngx_http_apikey_cli_redis_command(cli->ctx, cli->err, "HGET",
                ngx_http_apikey_cli_rkey(cli, rkey, "last_used", ""),
                rec->id, NULL);

    if (reply == NULL) {
        ngx_http_apikey_cli_record_free(rec);
        return ngx_http_apikey_cli_fail("%s", cli->err);
    }

    ngx_http_apikey_cli_last_used(rec, reply);
    freeReplyObject(reply);

    return NGX_HTTP_APIKEY_CLI_OK;
}


static void
ngx_http_apikey_cli_last_used(ngx_http_apikey_cli_record_t *rec,
    redisReply *reply)
{
    int64_t  t;

    if (reply->type != REDIS_REPLY_STRING) {
        return;
    }

    t = ngx_http_apikey_cli_number(reply->str);

    /* a last_used_at field in the record, from older writers, may be newer */

    if (t > rec->last_used_at) {
        rec->last_used_at = t;
    }
}


static void
ngx_http_apikey_cli_multi(ngx_http_apikey_cli_t *cli)
{
    cli->pending = 0;
    cli->queue_failed = 0;

    ngx_http_apikey_cli_queue(cli, "MULTI", NULL);
}


static void
ngx_http_apikey_cli_queue(ngx_http_apikey_cli_t *cli, ...)
{
    int      rc;
    va_list  args;

    va_start(args, cli);
    rc = ngx_http_apikey_cli_redis_vappend(cli->ctx, args);
    va_end(args);

    if (rc != 0) {
        cli->queue_failed = 1;
        return;
    }

    cli->pending++;
}


/*
 * Sends EXEC and reads every queued reply.  Returns 1 when the transaction
 * ran, 0 when a watched key changed, -1 on an error (in cli->err).
 */

static int
ngx_http_apikey_cli_exec(ngx_http_apikey_cli_t *cli)
{
    int          rc;
    size_t       i, j;
    char         err[NGX_HTTP_APIKEY_CLI_ERR_LEN];
    redisReply  *reply;

    ngx_http_apikey_cli_queue(cli, "EXEC", NULL);

    rc = 1;

    if (cli->queue_failed) {
        snprintf(cli->err, NGX_HTTP_APIKEY_CLI_ERR_LEN,
                 "cannot send a command to Redis");
        rc = -1;
    }

    for (i = 0; i < cli->pending; i++) {
        reply = ngx_http_apikey_cli_redis_read(cli->ctx, err);

        if (reply == NULL) {
            if (rc == 1) {
                memcpy(cli->err, err, NGX_HTTP_APIKEY_CLI_ERR_LEN);
                rc = -1;
            }

            if (cli->ctx->err) {
                break;
            }

            continue;
        }

        if (i == cli->pending - 1 && rc == 1) {

            if (reply->type == REDIS_REPLY_NIL) {
                rc = 0;

            } else if (reply->type != REDIS_REPLY_ARRAY) {
                snprintf(cli->err, NGX_HTTP_APIKEY_CLI_ERR_LEN,
                         "Redis: unexpected reply to EXEC");
                rc = -1;

            } else {
                for (j = 0; j < reply->elements; j++) {
                    if (reply->element[j]->type == REDIS_REPLY_ERROR) {
                        snprintf(cli->err, NGX_HTTP_APIKEY_CLI_ERR_LEN,
                                 "Redis: %s", reply->element[j]->str);
                        rc = -1;
                        break;
                    }
                }
            }
        }

        freeReplyObject(reply);
    }

    cli->pending = 0;

    return rc;
}


/* kind is "" for a record (value: its hash), "id:", "ids" or "org:" */

static const char *
ngx_http_apikey_cli_rkey(ngx_http_apikey_cli_t *cli, char *buf,
    const char *kind, const char *value)
{
    snprintf(buf, NGX_HTTP_APIKEY_CLI_RKEY_LEN, "%s%s%s", cli->redis_prefix,
             kind, value);

    return buf;
}


static char *
ngx_http_apikey_cli_scopes_join(ngx_http_apikey_cli_t *cli)
{
    char    *scopes, *p;
    size_t   i, len;

    len = 1;

    for (i = 0; i < cli->nscopes; i++) {
        len += strlen(cli->scopes[i]) + 1;
    }

    scopes = malloc(len);
    if (scopes == NULL) {
        return NULL;
    }

    p = scopes;

    for (i = 0; i < cli->nscopes; i++) {
        if (i) {
            *p++ = ' ';
        }

        len = strlen(cli->scopes[i]);
        memcpy(p, cli->scopes[i], len);
        p += len;
    }

    *p = '\0';

    return scopes;
}


/*
 * The first line of standard input, without its line end, whole: the
 * policy decides on every byte of it, as the module would.
 */

static unsigned char *
ngx_http_apikey_cli_read_key(size_t *len)
{
    char     *line;
    size_t    size;
    ssize_t   n;

    line = NULL;
    size = 0;

    n = getline(&line, &size, stdin);

    if (n < 0) {
        if (ferror(stdin)) {
            if (line) {
                OPENSSL_cleanse(line, size);
            }

            free(line);
            return NULL;
        }

        /* no input at all: an empty key */
        n = 0;

        if (line == NULL) {
            line = malloc(1);
            if (line == NULL) {
                return NULL;
            }

            size = 1;
        }
    }

    if (n > 0 && line[n - 1] == '\n') {
        n--;
    }

    if (n > 0 && line[n - 1] == '\r') {
        n--;
    }

    *len = n;

    return (unsigned char *) line;
}


static int
ngx_http_apikey_cli_record_compare(const void *one, const void *two)
{
    const ngx_http_apikey_cli_record_t  *a, *b;

    a = one;
    b = two;

    if (a->created_at != b->created_at) {
        return a->created_at < b->created_at ? -1 : 1;
    }

    return strcmp(a->id, b->id);
}


static void
ngx_http_apikey_cli_print_record(ngx_http_apikey_cli_t *cli,
    ngx_http_apikey_cli_record_t *rec, const char *key)
{
    const char                   *row[2];
    ngx_http_apikey_cli_table_t   table;

    if (cli->options & NGX_HTTP_APIKEY_CLI_O(JSON)) {
        ngx_http_apikey_cli_record_json(stdout, rec, key, cli->now);
        putchar('\n');
        return;
    }

    ngx_http_apikey_cli_table_init(&table, 2);

    if (key) {
        row[0] = "key";
        row[1] = key;

        if (ngx_http_apikey_cli_table_add(&table, row) != 0) {
            goto failed;
        }
    }

    if (ngx_http_apikey_cli_record_rows(&table, rec, cli->now) != 0) {
        goto failed;
    }

    ngx_http_apikey_cli_table_print(stdout, &table);
    ngx_http_apikey_cli_table_free(&table);

    if (key) {
        fprintf(stderr, "Store the key now: it is not kept anywhere and "
                "cannot be shown again.\n");
    }

    return;

failed:

    ngx_http_apikey_cli_table_free(&table);
    ngx_http_apikey_cli_fail("out of memory");
}


static int
ngx_http_apikey_cli_fail(const char *fmt, ...)
{
    va_list  args;

    fputs("apikey: ", stderr);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);

    return NGX_HTTP_APIKEY_CLI_ERROR;
}


static int
ngx_http_apikey_cli_usage_error(const char *fmt, ...)
{
    va_list  args;

    fputs("apikey: ", stderr);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputs("\n\n", stderr);

    ngx_http_apikey_cli_usage(stderr);

    return NGX_HTTP_APIKEY_CLI_USAGE;
}


static void
ngx_http_apikey_cli_usage(FILE *f)
{
    fputs(
"usage: apikey [options] command [arguments]\n"
"\n"
"commands:\n"
"  create --name NAME [--scope S]... [--org ORG]\n"
"         [--expires-in DUR | --expires-at TIME] [--prefix P] [--json]\n"
"  list   [--org ORG] [--json]\n"
"  show   ID [--json]\n"
"  update ID [--name NAME] [--scope S]...\n"
"         [--expires-in DUR | --expires-at TIME | --no-expiry] [--json]\n"
"  revoke ID [--json]\n"
"  rotate ID [--grace DUR] [--prefix P] [--json]\n"
"  verify [--scope S]... [--org ORG] [--json] KEY|-\n"
"\n"
"options (as the module's directives):\n"
"  --redis ADDR             host:port, [v6addr]:port or unix:/path\n"
"                           (default: $APIKEY_REDIS or 127.0.0.1:6379)\n"
"  --db N                   Redis database number (default 0)\n"
"  --user NAME              Redis ACL user (needs --password-file)\n"
"  --password-file PATH     Redis password, one trailing newline stripped\n"
"  --redis-prefix P         prefix of every Redis key (default apikey:)\n"
"  --hash-secret-file PATH  as apikey_hash_secret_file: HMAC-SHA256 hashes\n"
"\n"
"DUR is like 90m, 12h, 30d or 2s; TIME is RFC 3339, like\n"
"2030-01-31T12:00:00Z.  A key is printed once, by create and rotate.\n"
"Exit status: 0 done, 1 runtime error, 2 usage error.\n",
    f);
}
