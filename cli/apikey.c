
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * apikey: create, list, show, update, revoke, rotate and verify the API
 * keys that ngx_http_apikey_module reads from Redis (docs/redis-schema.md,
 * docs/cli.md).  Options and usage are in apikey_options.c, the commands
 * in apikey_commands.c, the Redis key names in apikey_store.c.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include <hiredis/hiredis.h>

#include "apikey.h"
#include "apikey_options.h"
#include "apikey_redis.h"
#include "apikey_store.h"


static int apikey_setup(apikey_cli_t *cli);
static void apikey_cleanup(apikey_cli_t *cli);


int
main(int argc, char **argv)
{
    int                rc;
    apikey_cli_t       cli;
    apikey_command_t  *cmd;

    memset(&cli, 0, sizeof(apikey_cli_t));

    cli.now = time(NULL);
    cli.store.prefix = APIKEY_STORE_PREFIX;

    cmd = NULL;

    rc = apikey_options(&cli, argc, argv, &cmd);

    if (rc == APIKEY_OK && cmd != NULL) {
        rc = apikey_setup(&cli);

        if (rc == APIKEY_OK) {
            rc = cmd->handler(&cli);
        }
    }

    apikey_cleanup(&cli);

    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "apikey: cannot write the output\n");
        return APIKEY_ERROR;
    }

    return rc;
}


static int
apikey_setup(apikey_cli_t *cli)
{
    char        *err;
    const char  *addr;

    err = cli->store.err;
    addr = cli->redis.addr;

    if (addr == NULL && cli->redis.sentinels == NULL
        && cli->redis.cluster == NULL)
    {
        addr = getenv("APIKEY_REDIS");

        if (addr == NULL || addr[0] == '\0') {
            addr = APIKEY_REDIS_DEFAULT;
        }
    }

    if (cli->redis.sentinels == NULL && cli->redis.cluster == NULL) {

        if (apikey_redis_addr(&cli->redis, addr, err) != 0) {
            return apikey_usage_error("%s", err);
        }

        if (cli->redis.db_in_addr && (cli->options & APIKEY_O(DB))) {
            return apikey_usage_error(
                       "--db and a database in the address exclude each "
                       "other");
        }

        if ((cli->options & APIKEY_TLS_FILES) && !cli->redis.tls) {
            return apikey_usage_error(
                       "the --tls-* options need rediss:// or --tls");
        }

        if (cli->redis.tls && cli->redis.path) {
            return apikey_usage_error("TLS needs a host, not unix:");
        }
    }

    if (cli->sentinel_password_file
        && apikey_file_read(cli->sentinel_password_file,
                            &cli->redis.sentinel_password,
                            &cli->redis.sentinel_password_len, err)
           != 0)
    {
        return apikey_fail("--sentinel-password-file: %s", err);
    }

    if (cli->password_file
        && apikey_file_read(cli->password_file, &cli->redis.password,
                            &cli->redis.password_len, err)
           != 0)
    {
        return apikey_fail("--password-file: %s", err);
    }

    if (cli->secret_file) {
        if (apikey_file_read(cli->secret_file, &cli->secret,
                             &cli->secret_len, err)
            != 0)
        {
            return apikey_fail("--hash-secret-file: %s", err);
        }

        if (cli->secret_len == 0) {
            return apikey_fail("--hash-secret-file: \"%s\" is empty",
                               cli->secret_file);
        }
    }

    cli->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (cli->md == NULL) {
        return apikey_fail("OpenSSL has no SHA-256");
    }

    cli->store.ctx = apikey_redis_connect(&cli->redis, err);
    if (cli->store.ctx == NULL) {
        return apikey_fail("%s", err);
    }

    return APIKEY_OK;
}


static void
apikey_cleanup(apikey_cli_t *cli)
{
    apikey_redis_free(cli->store.ctx);

    if (cli->md) {
        EVP_MD_free(cli->md);
    }

    apikey_file_free(cli->secret, cli->secret_len);
    apikey_redis_conf_free(&cli->redis);

    free(cli->scopes);
    ngx_http_apikey_object_free(&cli->extra);
}
