
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_apikey_key.h"
#include "ngx_http_apikey_policy.h"
#include "ngx_http_apikey_rate.h"
#include "apikey.h"
#include "apikey_cluster.h"
#include "apikey_commands.h"
#include "apikey_options.h"
#include "apikey_record.h"
#include "apikey_text.h"
#include "ngx_http_apikey_time.h"


#define APIKEY_NAME_MAX          1024
#define APIKEY_WORD_MAX          255

/* getopt_long() values above every character */
#define APIKEY_V(opt)            (0x100 + APIKEY_OPT_ ## opt)

#define APIKEY_GLOBAL                                                        \
    (APIKEY_O(REDIS) | APIKEY_O(DB) | APIKEY_O(USER)                         \
     | APIKEY_O(PASSWORD_FILE) | APIKEY_O(REDIS_PREFIX)                      \
     | APIKEY_O(HASH_SECRET_FILE) | APIKEY_O(TLS) | APIKEY_TLS_FILES         \
     | APIKEY_SENTINELS | APIKEY_O(CLUSTER) | APIKEY_O(HELP))


static int apikey_option(apikey_cli_t *cli, int opt, const char *value);
static int apikey_scope_add(apikey_cli_t *cli, const char *value);
static int apikey_rate_option(apikey_cli_t *cli, const char *value);
static int apikey_burst_option(apikey_cli_t *cli, const char *value);
static int apikey_field_add(apikey_cli_t *cli, const char *value);
static int apikey_check(apikey_cli_t *cli, apikey_command_t *cmd);


static struct option  apikey_long_options[] = {
    { "redis", required_argument, NULL, APIKEY_V(REDIS) },
    { "db", required_argument, NULL, APIKEY_V(DB) },
    { "user", required_argument, NULL, APIKEY_V(USER) },
    { "password-file", required_argument, NULL, APIKEY_V(PASSWORD_FILE) },
    { "redis-prefix", required_argument, NULL, APIKEY_V(REDIS_PREFIX) },
    { "hash-secret-file", required_argument, NULL, APIKEY_V(HASH_SECRET_FILE) },
    { "tls", no_argument, NULL, APIKEY_V(TLS) },
    { "tls-ca", required_argument, NULL, APIKEY_V(TLS_CA) },
    { "tls-cert", required_argument, NULL, APIKEY_V(TLS_CERT) },
    { "tls-key", required_argument, NULL, APIKEY_V(TLS_KEY) },
    { "tls-name", required_argument, NULL, APIKEY_V(TLS_NAME) },
    { "sentinel", required_argument, NULL, APIKEY_V(SENTINEL) },
    { "sentinel-master", required_argument, NULL, APIKEY_V(SENTINEL_MASTER) },
    { "sentinel-user", required_argument, NULL, APIKEY_V(SENTINEL_USER) },
    { "sentinel-password-file", required_argument, NULL,
      APIKEY_V(SENTINEL_PASSWORD_FILE) },
    { "cluster", required_argument, NULL, APIKEY_V(CLUSTER) },
    { "help", no_argument, NULL, APIKEY_V(HELP) },
    { "name", required_argument, NULL, APIKEY_V(NAME) },
    { "scope", required_argument, NULL, APIKEY_V(SCOPE) },
    { "org", required_argument, NULL, APIKEY_V(ORG) },
    { "expires-in", required_argument, NULL, APIKEY_V(EXPIRES_IN) },
    { "expires-at", required_argument, NULL, APIKEY_V(EXPIRES_AT) },
    { "no-expiry", no_argument, NULL, APIKEY_V(NO_EXPIRY) },
    { "prefix", required_argument, NULL, APIKEY_V(PREFIX) },
    { "grace", required_argument, NULL, APIKEY_V(GRACE) },
    { "json", no_argument, NULL, APIKEY_V(JSON) },
    { "rate", required_argument, NULL, APIKEY_V(RATE) },
    { "burst", required_argument, NULL, APIKEY_V(BURST) },
    { "cidrs", required_argument, NULL, APIKEY_V(CIDRS) },
    { "field", required_argument, NULL, APIKEY_V(FIELD) },
    { NULL, 0, NULL, 0 }
};


int
apikey_options(apikey_cli_t *cli, int argc, char **argv,
    apikey_command_t **command)
{
    int                opt, rc;
    const char        *name;
    apikey_command_t  *cmd;

    opterr = 0;

    for ( ;; ) {
        opt = getopt_long(argc, argv, "h", apikey_long_options, NULL);

        if (opt == -1) {
            break;
        }

        if (opt == '?') {
            name = argv[optind - 1];

            if (optopt >= 0x100) {
                return apikey_usage_error(
                           "option --%s %s",
                           apikey_long_options[optopt - 0x100]
                               .name,
                           apikey_long_options[optopt - 0x100]
                               .has_arg ? "needs a value" : "takes no value");
            }

            if (optopt != 0) {
                return apikey_usage_error("unknown option -%c", optopt);
            }

            return apikey_usage_error("unknown option %s", name);
        }

        opt = (opt == 'h') ? APIKEY_OPT_HELP : opt - 0x100;

        if (opt != APIKEY_OPT_SCOPE && opt != APIKEY_OPT_FIELD
            && (cli->options & (1U << opt)))
        {
            return apikey_usage_error("option --%s is duplicate",
                       apikey_long_options[opt].name);
        }

        cli->options |= 1U << opt;

        rc = apikey_option(cli, opt, optarg);
        if (rc != APIKEY_OK) {
            return rc;
        }
    }

    if (cli->options & APIKEY_O(HELP)) {
        apikey_usage(stdout);
        return APIKEY_OK;
    }

    if (optind == argc) {
        return apikey_usage_error("no command given");
    }

    name = argv[optind++];

    if (strcmp(name, "help") == 0) {
        apikey_usage(stdout);
        return APIKEY_OK;
    }

    for (cmd = apikey_commands; cmd->name; cmd++) {
        if (strcmp(name, cmd->name) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        return apikey_usage_error("unknown command \"%s\"", name);
    }

    if (cmd->arg) {
        if (optind == argc) {
            return apikey_usage_error("%s needs %s", cmd->name, cmd->arg);
        }

        cli->arg = argv[optind++];
    }

    if (optind != argc) {
        return apikey_usage_error("unexpected argument \"%s\"", argv[optind]);
    }

    rc = apikey_check(cli, cmd);
    if (rc != APIKEY_OK) {
        return rc;
    }

    *command = cmd;

    return APIKEY_OK;
}


int
apikey_fail(const char *fmt, ...)
{
    va_list  args;

    fputs("apikey: ", stderr);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);

    return APIKEY_ERROR;
}


int
apikey_usage_error(const char *fmt, ...)
{
    va_list  args;

    fputs("apikey: ", stderr);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputs("\n\n", stderr);

    apikey_usage(stderr);

    return APIKEY_USAGE;
}


void
apikey_usage(FILE *f)
{
    fputs(
"usage: apikey [options] command [arguments]\n"
"\n"
"commands:\n"
"  create --name NAME [--scope S]... [--org ORG]\n"
"         [--expires-in DUR | --expires-at TIME] [--prefix P]\n"
"         [--rate RATE] [--burst N] [--cidrs LIST]\n"
"         [--field NAME=VALUE]... [--json]\n"
"  list   [--org ORG] [--json]\n"
"  show   ID [--json]\n"
"  update ID [--name NAME] [--scope S]...\n"
"         [--expires-in DUR | --expires-at TIME | --no-expiry]\n"
"         [--rate RATE] [--burst N] [--cidrs LIST]\n"
"         [--field NAME=VALUE]... [--json]\n"
"  revoke ID [--json]\n"
"  rotate ID [--grace DUR] [--prefix P] [--json]\n"
"  verify [--scope S]... [--org ORG] [--json] KEY|-\n"
"\n"
"options (as the module's directives):\n"
"  --redis ADDR             host:port, [v6addr]:port, unix:/path or\n"
"                           rediss://host:port[/db] (TLS)\n"
"                           (default: $APIKEY_REDIS or 127.0.0.1:6379)\n"
"  --db N                   Redis database number (default 0)\n"
"  --user NAME              Redis ACL user (needs --password-file)\n"
"  --password-file PATH     Redis password, one trailing newline stripped\n"
"  --redis-prefix P         prefix of every Redis key (default apikey:)\n"
"  --hash-secret-file PATH  as apikey_hash_secret_file: HMAC-SHA256 hashes\n"
"\n"
"TLS (rediss://host:port[/db], or --tls; to the sentinels too):\n"
"  --tls                    TLS to the address, or to the sentinels and\n"
"                           the primary they name, or to every cluster node\n"
"  --tls-ca PATH            CA certificates (default: the system's)\n"
"  --tls-cert PATH          client certificate, with --tls-key PATH\n"
"  --tls-key PATH           its private key\n"
"  --tls-name NAME          name to verify (default: the host as written)\n"
"\n"
"Sentinel (instead of --redis):\n"
"  --sentinel ADDR[,ADDR]   sentinels, asked in order (port 26379 default)\n"
"  --sentinel-master NAME   the name the sentinels monitor the primary by\n"
"  --sentinel-user NAME     the sentinels' ACL user\n"
"  --sentinel-password-file PATH  the sentinels' password\n"
"\n"
"Redis Cluster (instead of --redis):\n"
"  --cluster ADDR[,ADDR]    seed nodes, asked in order for the slot map\n"
"                           (port 6379 default); the rest is discovered\n"
"\n"
"DUR is like 90m, 12h, 30d or 2s; TIME is RFC 3339, like\n"
"2030-01-31T12:00:00Z.  RATE is like 100r/s or 6000r/m, as limit_req\n"
"writes it; update --rate \"\" or --burst \"\" removes it.\n"
"A key is printed once, by create and rotate.\n"
"Exit status: 0 done, 1 runtime error, 2 usage error.\n",
    f);
}


static int
apikey_option(apikey_cli_t *cli, int opt, const char *value)
{
    char     err[APIKEY_ERR_LEN];
    int64_t  n;

    switch (opt) {

    case APIKEY_OPT_REDIS:
        cli->redis.addr = value;
        break;

    case APIKEY_OPT_DB:
        n = ngx_http_apikey_object_number(value);

        if (n < 0 || n > 65535) {
            return apikey_usage_error("invalid --db \"%s\"", value);
        }

        cli->redis.db = (int) n;
        break;

    case APIKEY_OPT_USER:
        if (!apikey_word_valid(value)) {
            return apikey_usage_error("invalid --user");
        }

        cli->redis.user = value;
        break;

    case APIKEY_OPT_PASSWORD_FILE:
        cli->password_file = value;
        break;

    case APIKEY_OPT_REDIS_PREFIX:
        if (strlen(value) > APIKEY_WORD_MAX
            || (value[0] && !apikey_word_valid(value)))
        {
            return apikey_usage_error(
                       "invalid --redis-prefix \"%s\"", value);
        }

        cli->store.prefix = value;
        break;

    case APIKEY_OPT_HASH_SECRET_FILE:
        cli->secret_file = value;
        break;

    case APIKEY_OPT_TLS:
        cli->redis.tls = 1;
        break;

    case APIKEY_OPT_TLS_CA:
        cli->redis.tls_ca = value;
        break;

    case APIKEY_OPT_TLS_CERT:
        cli->redis.tls_cert = value;
        break;

    case APIKEY_OPT_TLS_KEY:
        cli->redis.tls_key = value;
        break;

    case APIKEY_OPT_TLS_NAME:
        if (value[0] == '\0' || !apikey_word_valid(value)) {
            return apikey_usage_error("invalid --tls-name \"%s\"", value);
        }

        cli->redis.tls_name = value;
        break;

    case APIKEY_OPT_SENTINEL:
        if (apikey_redis_sentinels(&cli->redis, value, err) != 0) {
            return apikey_usage_error("%s", err);
        }

        break;

    case APIKEY_OPT_CLUSTER:
        if (apikey_cluster_seeds(&cli->redis, value, err) != 0) {
            return apikey_usage_error("%s", err);
        }

        break;

    case APIKEY_OPT_SENTINEL_MASTER:
        if (value[0] == '\0' || !apikey_word_valid(value)) {
            return apikey_usage_error("invalid --sentinel-master \"%s\"",
                                      value);
        }

        cli->redis.master = value;
        break;

    case APIKEY_OPT_SENTINEL_USER:
        if (!apikey_word_valid(value)) {
            return apikey_usage_error("invalid --sentinel-user");
        }

        cli->redis.sentinel_user = value;
        break;

    case APIKEY_OPT_SENTINEL_PASSWORD_FILE:
        cli->sentinel_password_file = value;
        break;

    case APIKEY_OPT_NAME:
        if (value[0] == '\0' || strlen(value) > APIKEY_NAME_MAX
            || !apikey_text_valid(value))
        {
            return apikey_usage_error(
                       "invalid --name: 1 to %d bytes of UTF-8 text without "
                       "control characters", APIKEY_NAME_MAX);
        }

        cli->name = value;
        break;

    case APIKEY_OPT_SCOPE:
        return apikey_scope_add(cli, value);

    case APIKEY_OPT_CIDRS:

        /* the module's own parser: it would take a bad list for no key */

        if (value[0]
            && ngx_http_apikey_cidr_match((const unsigned char *) value,
                                          strlen(value), NULL)
               < 0)
        {
            return apikey_usage_error(
                       "invalid --cidrs \"%s\": IPv4 or IPv6 networks or "
                       "addresses separated by spaces, like "
                       "\"203.0.113.0/24 2001:db8::/32\"", value);
        }

        cli->extra.cidrs = strdup(value);
        if (cli->extra.cidrs == NULL) {
            return apikey_fail("out of memory");
        }

        break;

    case APIKEY_OPT_FIELD:
        return apikey_field_add(cli, value);

    case APIKEY_OPT_ORG:
        if (!apikey_word_valid(value)) {
            return apikey_usage_error(
                       "invalid --org \"%s\": printable characters without "
                       "spaces", value);
        }

        cli->org = value;
        break;

    case APIKEY_OPT_EXPIRES_IN:
        if (ngx_http_apikey_duration_parse(value, &n) != 0 || n == 0) {
            return apikey_usage_error(
                       "invalid --expires-in \"%s\" (like 90m, 12h, 30d)",
                       value);
        }

        cli->expires_at = cli->now + n;
        break;

    case APIKEY_OPT_EXPIRES_AT:
        if (ngx_http_apikey_time_parse(value, &n) != 0) {
            return apikey_usage_error(
                       "invalid --expires-at \"%s\" (RFC 3339, like "
                       "2030-01-31T12:00:00Z)", value);
        }

        cli->expires_at = n;
        break;

    case APIKEY_OPT_PREFIX:
        if (!ngx_http_apikey_key_prefix_valid((const unsigned char *) value,
                                              strlen(value)))
        {
            return apikey_usage_error(
                       "invalid --prefix \"%s\": up to %d letters, digits "
                       "and underscores, ending in \"_\"", value,
                       NGX_HTTP_APIKEY_KEY_PREFIX_MAX);
        }

        cli->prefix = value;
        break;

    case APIKEY_OPT_GRACE:
        if (ngx_http_apikey_duration_parse(value, &n) != 0) {
            return apikey_usage_error(
                       "invalid --grace \"%s\" (like 0, 90m, 12h, 7d)",
                       value);
        }

        cli->grace = n;
        break;

    case APIKEY_OPT_RATE:
        return apikey_rate_option(cli, value);

    case APIKEY_OPT_BURST:
        return apikey_burst_option(cli, value);

    default:
        /* --help, --no-expiry and --json are flags */
        break;
    }

    return APIKEY_OK;
}


/*
 * A --scope value may hold several scopes separated by spaces; cli->scopes
 * keeps them as a record does, each once.
 */

static int
apikey_scope_add(apikey_cli_t *cli, const char *value)
{
    int                   valid;
    char                 *scopes, *scope;
    size_t                len, have, n;
    const unsigned char  *p, *last, *start, *q, *qlast, *known;

    /* --scope "" is a list, if empty: update clears the key's scopes */

    if (cli->scopes == NULL) {
        cli->scopes = calloc(1, 1);
        if (cli->scopes == NULL) {
            return apikey_fail("out of memory");
        }
    }

    p = (const unsigned char *) value;
    last = p + strlen(value);

    while ((start = ngx_http_apikey_policy_scope_next(&p, last, &len))
           != NULL)
    {
        scope = strndup((const char *) start, len);
        if (scope == NULL) {
            return apikey_fail("out of memory");
        }

        valid = apikey_word_valid(scope);
        free(scope);

        if (!valid) {
            return apikey_usage_error("invalid --scope \"%s\": printable "
                                      "characters without spaces", value);
        }

        have = strlen(cli->scopes);

        q = (const unsigned char *) cli->scopes;
        qlast = q + have;

        while ((known = ngx_http_apikey_policy_scope_next(&q, qlast, &n))
               != NULL)
        {
            if (n == len && memcmp(known, start, len) == 0) {
                break;
            }
        }

        if (known != NULL) {
            continue;
        }

        scopes = realloc(cli->scopes, have + len + 2);
        if (scopes == NULL) {
            return apikey_fail("out of memory");
        }

        if (have) {
            scopes[have++] = ' ';
        }

        memcpy(scopes + have, start, len);
        scopes[have + len] = '\0';

        cli->scopes = scopes;
    }

    return APIKEY_OK;
}


/* the module's own parser: what the tool writes, nginx reads */

static int
apikey_rate_option(apikey_cli_t *cli, const char *value)
{
    ngx_http_apikey_rate_t  rate;

    if (value[0] != '\0'
        && ngx_http_apikey_rate_parse((const unsigned char *) value,
                                      strlen(value), &rate)
           != 0)
    {
        return apikey_usage_error(
                   "invalid --rate \"%s\": Nr/s or Nr/m, N from 1 to %d "
                   "(like 100r/s, 6000r/m)", value, NGX_HTTP_APIKEY_RATE_MAX);
    }

    cli->rate = value;

    return APIKEY_OK;
}


static int
apikey_burst_option(apikey_cli_t *cli, const char *value)
{
    uint32_t  burst;

    if (value[0] != '\0'
        && ngx_http_apikey_rate_burst((const unsigned char *) value,
                                      strlen(value), &burst)
           != 0)
    {
        return apikey_usage_error(
                   "invalid --burst \"%s\": a whole number of requests from "
                   "0 to %d", value, NGX_HTTP_APIKEY_BURST_MAX);
    }

    cli->burst = value;

    return APIKEY_OK;
}


/* --field NAME=VALUE; an empty VALUE removes the field (update) */

static int
apikey_field_add(apikey_cli_t *cli, const char *value)
{
    size_t       i, len;
    const char  *eq;

    eq = strchr(value, '=');
    len = eq ? (size_t) (eq - value) : 0;

    if (eq == NULL || !ngx_http_apikey_object_extra_name(value, len)) {
        return apikey_usage_error(
                   "invalid --field \"%s\": NAME=VALUE, NAME being 1 to %d "
                   "lowercase letters, digits or underscores, and no field "
                   "the module or the tool reads itself",
                   value, NGX_HTTP_APIKEY_POLICY_FIELD_MAX);
    }

    if (strlen(eq + 1) > APIKEY_NAME_MAX || !apikey_text_valid(eq + 1)) {
        return apikey_usage_error(
                   "invalid --field \"%.*s\": a value is up to %d bytes of "
                   "UTF-8 text without control characters",
                   (int) len, value, APIKEY_NAME_MAX);
    }

    for (i = 0; i < cli->extra.nfields; i++) {
        if (strlen(cli->extra.fields[2 * i]) == len
            && memcmp(cli->extra.fields[2 * i], value, len) == 0)
        {
            return apikey_usage_error("--field %.*s is duplicate", (int) len,
                                      value);
        }
    }

    if (cli->extra.nfields == APIKEY_FIELDS_MAX) {
        return apikey_usage_error("at most %d --field", APIKEY_FIELDS_MAX);
    }

    /* kept even when empty: update removes it */

    if (ngx_http_apikey_object_set_extra(&cli->extra, value, len,
                                         eq[1] ? eq + 1 : "-")
        != 0)
    {
        return apikey_fail("out of memory");
    }

    if (eq[1] == '\0') {
        cli->extra.fields[2 * i + 1][0] = '\0';
    }

    return APIKEY_OK;
}


static int
apikey_check(apikey_cli_t *cli, apikey_command_t *cmd)
{
    int       i;
    unsigned  extra, expiry;

    extra = cli->options & ~(cmd->options | APIKEY_GLOBAL);

    if (extra) {
        for (i = 0; (extra & (1U << i)) == 0; i++) { /* void */ }

        return apikey_usage_error("%s does not take --%s",
                   cmd->name, apikey_long_options[i].name);
    }

    expiry = cli->options & APIKEY_EXPIRY;

    if (expiry & (expiry - 1)) {
        return apikey_usage_error(
                   "--expires-in, --expires-at and --no-expiry exclude "
                   "each other");
    }

    if ((cli->options & APIKEY_O(USER))
        && !(cli->options & APIKEY_O(PASSWORD_FILE)))
    {
        return apikey_usage_error("--user needs --password-file");
    }

    if ((cli->options & APIKEY_O(SENTINEL_USER))
        && !(cli->options & APIKEY_O(SENTINEL_PASSWORD_FILE)))
    {
        return apikey_usage_error(
                   "--sentinel-user needs --sentinel-password-file");
    }

    if (!(cli->options & APIKEY_O(TLS_CERT))
        != !(cli->options & APIKEY_O(TLS_KEY)))
    {
        return apikey_usage_error("--tls-cert and --tls-key go together");
    }

    if (cli->options & APIKEY_SENTINELS) {

        if (cli->options & APIKEY_O(REDIS)) {
            return apikey_usage_error(
                       "--redis and --sentinel exclude each other");
        }

        if (!(cli->options & APIKEY_O(SENTINEL))
            || !(cli->options & APIKEY_O(SENTINEL_MASTER)))
        {
            return apikey_usage_error(
                       "--sentinel and --sentinel-master go together");
        }

        if ((cli->options & APIKEY_TLS_FILES) && !cli->redis.tls) {
            return apikey_usage_error(
                       "the --tls-* options need --tls with --sentinel");
        }
    }

    if (cli->options & APIKEY_O(CLUSTER)) {

        if (cli->options & (APIKEY_O(REDIS) | APIKEY_SENTINELS)) {
            return apikey_usage_error(
                       "--cluster excludes --redis and --sentinel");
        }

        if (cli->options & APIKEY_O(DB)) {
            return apikey_usage_error(
                       "--db and --cluster exclude each other: a Redis "
                       "Cluster has only database 0");
        }

        if ((cli->options & APIKEY_TLS_FILES) && !cli->redis.tls) {
            return apikey_usage_error(
                       "the --tls-* options need --tls with --cluster");
        }
    }

    if (cmd->handler == apikey_create) {

        if (cli->name == NULL) {
            return apikey_usage_error("create needs --name");
        }

        if (expiry && cli->expires_at <= cli->now) {
            return apikey_usage_error(
                       "--expires-at is in the past");
        }
    }

    if (cmd->handler == apikey_update
        && (cli->options
            & (APIKEY_O(NAME) | APIKEY_O(SCOPE) | APIKEY_EXPIRY
               | APIKEY_O(RATE) | APIKEY_O(BURST) | APIKEY_O(CIDRS)
               | APIKEY_O(FIELD)))
           == 0)
    {
        return apikey_usage_error(
                   "update needs --name, --scope, --expires-in, --expires-at, "
                   "--no-expiry, --rate, --burst, --cidrs or --field");
    }

    if (cli->arg && cmd->handler != apikey_verify
        && (!apikey_word_valid(cli->arg)
            || strlen(cli->arg) > APIKEY_WORD_MAX))
    {
        return apikey_usage_error("invalid ID \"%s\"", cli->arg);
    }

    return APIKEY_OK;
}
