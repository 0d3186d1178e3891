
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A key is printed once, by create and rotate; Redis only ever holds its
 * hash.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ngx_http_apikey_key.h"
#include "ngx_http_apikey_policy.h"
#include "apikey.h"
#include "apikey_commands.h"
#include "apikey_record.h"
#include "apikey_store.h"
#include "apikey_text.h"
#include "ngx_http_apikey_time.h"
#include "apikey_tx.h"


/* how often update retries when another writer touched the key */
#define APIKEY_RETRIES           3


static int apikey_rotatable(apikey_cli_t *cli, apikey_record_t *old);
static int apikey_update_limit(apikey_cli_t *cli, apikey_tx_t *tx,
    apikey_record_t *rec);
static int apikey_update_extra(apikey_cli_t *cli, apikey_tx_t *tx,
    apikey_record_t *rec);
static int apikey_new_key(apikey_cli_t *cli, const char *prefix,
    apikey_record_t *like, unsigned char *key, apikey_record_t *rec);
static int apikey_list_print(apikey_cli_t *cli, apikey_store_list_t *list);
static int apikey_record_compare(const void *one, const void *two);
static unsigned char *apikey_read_key(size_t *len);
static void apikey_print_record(apikey_cli_t *cli, apikey_record_t *rec,
    const char *key);


apikey_command_t  apikey_commands[] = {

    { "create",
      apikey_create,
      APIKEY_O(NAME) | APIKEY_O(SCOPE) | APIKEY_O(ORG) | APIKEY_O(EXPIRES_IN)
      | APIKEY_O(EXPIRES_AT) | APIKEY_O(PREFIX) | APIKEY_O(JSON)
      | APIKEY_O(RATE) | APIKEY_O(BURST) | APIKEY_O(CIDRS)
      | APIKEY_O(FIELD),
      NULL },

    { "list",
      apikey_list,
      APIKEY_O(ORG) | APIKEY_O(JSON),
      NULL },

    { "show",
      apikey_show,
      APIKEY_O(JSON),
      "ID" },

    { "update",
      apikey_update,
      APIKEY_O(NAME) | APIKEY_O(SCOPE) | APIKEY_EXPIRY | APIKEY_O(JSON)
      | APIKEY_O(RATE) | APIKEY_O(BURST) | APIKEY_O(CIDRS)
      | APIKEY_O(FIELD),
      "ID" },

    { "revoke",
      apikey_revoke,
      APIKEY_O(JSON),
      "ID" },

    { "rotate",
      apikey_rotate,
      APIKEY_O(GRACE) | APIKEY_O(PREFIX) | APIKEY_O(JSON),
      "ID" },

    { "verify",
      apikey_verify,
      APIKEY_O(SCOPE) | APIKEY_O(ORG) | APIKEY_O(JSON),
      "KEY" },

    { NULL, NULL, 0, NULL }
};


int
apikey_create(apikey_cli_t *cli)
{
    int              rc, stored;
    unsigned char    key[NGX_HTTP_APIKEY_KEY_MAX_LEN + 1];
    apikey_record_t  like, rec;

    memset(&like, 0, sizeof(apikey_record_t));

    like.name = (char *) cli->name;
    like.org = (char *) cli->org;
    like.scopes = cli->scopes;
    like.expires_at = cli->expires_at;
    like.rate = (char *) cli->rate;
    like.burst = (char *) cli->burst;
    like.cidrs = cli->extra.cidrs;
    like.fields = cli->extra.fields;
    like.nfields = cli->extra.nfields;

    rc = apikey_new_key(cli, cli->prefix, &like, key, &rec);
    if (rc != APIKEY_OK) {
        return rc;
    }

    stored = apikey_store_write_record(&cli->store, &rec);

    if (stored == APIKEY_STORE_FAILED) {
        apikey_store_remove(&cli->store, &rec);
        rc = apikey_fail("%s", cli->store.err);
        goto done;
    }

    /* a key that was stored is printed, or nobody could ever use it */

    apikey_print_record(cli, &rec, (char *) key);

    if (stored != APIKEY_STORE_DONE) {
        rc = apikey_fail("the key is stored, but %s", cli->store.err);
    }

done:

    OPENSSL_cleanse(key, sizeof(key));
    ngx_http_apikey_object_free(&rec);

    return rc;
}


/* list loads, prunes and prints in three steps */

int
apikey_list(apikey_cli_t *cli)
{
    int                  rc;
    apikey_store_list_t  list;

    if (apikey_store_list(&cli->store, cli->org, &list) != 0) {
        apikey_store_list_free(&list);
        return apikey_fail("%s", cli->store.err);
    }

    if (apikey_store_prune(&cli->store, cli->org, &list) != 0) {
        apikey_store_list_free(&list);
        return apikey_fail("%s", cli->store.err);
    }

    rc = apikey_list_print(cli, &list);

    apikey_store_list_free(&list);

    return rc;
}


int
apikey_show(apikey_cli_t *cli)
{
    apikey_record_t  rec;

    if (apikey_store_load(&cli->store, cli->arg, &rec, 0) != 0) {
        return apikey_fail("%s", cli->store.err);
    }

    apikey_print_record(cli, &rec, NULL);
    ngx_http_apikey_object_free(&rec);

    return APIKEY_OK;
}


/*
 * The id index's TTL is kept no shorter than the record's: it goes first
 * when the key lives longer, after the record when it lives shorter.
 */

int
apikey_update(apikey_cli_t *cli)
{
    int              n, done, longer, expiry;
    char             expires[32], *p;
    apikey_tx_t      tx;
    apikey_record_t  rec;

    if (cli->options & APIKEY_O(NO_EXPIRY)) {
        cli->expires_at = 0;
    }

    snprintf(expires, sizeof(expires), "%lld", (long long) cli->expires_at);

    /* WATCH makes the read-modify-write safe against a concurrent writer */

    for (n = 0; n < APIKEY_RETRIES; n++) {

        if (apikey_store_load(&cli->store, cli->arg, &rec, 1) != 0) {
            return apikey_fail("%s", cli->store.err);
        }

        /* a revoked key keeps the housekeeping TTL of its revocation */

        expiry = (cli->options & APIKEY_EXPIRY) && !rec.revoked;

        longer = expiry
                 && (cli->expires_at == 0
                     || (rec.expires_at && cli->expires_at > rec.expires_at));

        if (longer
            && apikey_store_keep_id(&cli->store, &rec, cli->expires_at) != 0)
        {
            ngx_http_apikey_object_free(&rec);
            return apikey_fail("%s", cli->store.err);
        }

        apikey_tx_begin(&tx, cli->store.ctx, cli->store.err);

        if (cli->name) {
            apikey_store_queue_field(&cli->store, &tx, &rec, "name", cli->name);
            p = strdup(cli->name);
            free(rec.name);
            rec.name = p;
        }

        if (cli->options & APIKEY_O(SCOPE)) {
            apikey_store_queue_field(&cli->store, &tx, &rec, "scopes",
                                     cli->scopes);
            p = strdup(cli->scopes);
            free(rec.scopes);
            rec.scopes = p;
        }

        if (apikey_update_extra(cli, &tx, &rec) != 0) {
            apikey_tx_end(&tx);
            ngx_http_apikey_object_free(&rec);
            return apikey_fail("out of memory");
        }

        if (cli->options & APIKEY_EXPIRY) {
            apikey_store_queue_field(&cli->store, &tx, &rec, "expires_at",
                                     expires);
            rec.expires_at = cli->expires_at;

            if (expiry) {
                apikey_store_queue_keep(&cli->store, &tx, &rec, rec.expires_at);
            }
        }

        if (apikey_update_limit(cli, &tx, &rec) != APIKEY_OK) {
            apikey_tx_end(&tx);
            ngx_http_apikey_object_free(&rec);
            return apikey_fail("out of memory");
        }

        done = apikey_tx_exec(&tx);
        apikey_tx_end(&tx);

        if (done == APIKEY_TX_DONE) {
            apikey_print_record(cli, &rec, NULL);

            if (expiry && !longer
                && apikey_store_keep_id(&cli->store, &rec, rec.expires_at)
                   != 0)
            {
                done = APIKEY_TX_PARTIAL;
            }
        }

        ngx_http_apikey_object_free(&rec);

        if (done == APIKEY_TX_DONE) {
            return APIKEY_OK;
        }

        if (done == APIKEY_TX_PARTIAL) {
            return apikey_fail("%s is updated, but %s", cli->arg,
                               cli->store.err);
        }

        if (done != APIKEY_TX_CHANGED) {
            return apikey_fail("%s", cli->store.err);
        }
    }

    return apikey_fail("%s is being changed by someone else, try again",
                       cli->arg);
}


/* the record first: from then on no lookup accepts the key */

int
apikey_revoke(apikey_cli_t *cli)
{
    int              done, was, kept;
    int64_t          until;
    apikey_tx_t      tx;
    apikey_record_t  rec;

    if (apikey_store_load(&cli->store, cli->arg, &rec, 1) != 0) {
        return apikey_fail("%s", cli->store.err);
    }

    was = rec.revoked;
    kept = 1;

    if (!rec.revoked) {
        apikey_tx_begin(&tx, cli->store.ctx, cli->store.err);

        apikey_store_queue_field(&cli->store, &tx, &rec, "revoked", "1");

        until = cli->now;

        if (rec.expires_at && rec.expires_at < until) {
            until = rec.expires_at;
        }

        apikey_store_queue_keep(&cli->store, &tx, &rec, until);

        done = apikey_tx_exec(&tx);
        apikey_tx_end(&tx);

        if (done != APIKEY_TX_DONE) {
            ngx_http_apikey_object_free(&rec);
            return apikey_fail("%s", done == APIKEY_TX_CHANGED
                               ? "the key changed while revoking it, try "
                                 "again"
                               : cli->store.err);
        }

        rec.revoked = 1;

        kept = (apikey_store_keep_id(&cli->store, &rec, until) == 0);
    }

    if (cli->options & APIKEY_O(JSON)) {
        apikey_print_record(cli, &rec, NULL);

    } else {
        printf(was ? "%s was already revoked\n" : "%s revoked\n", rec.id);
    }

    ngx_http_apikey_object_free(&rec);

    if (!kept) {
        return apikey_fail("%s is revoked, but %s", cli->arg,
                           cli->store.err);
    }

    return APIKEY_OK;
}


/*
 * The new key as a create (taken back if it fails, the old key
 * untouched), then the old record in a transaction under the WATCH that
 * loading it set: if someone changed the old key meanwhile, the new one
 * is taken back before anyone saw it.  A new key that stays stored is
 * printed, whatever failed after it.
 */

int
apikey_rotate(apikey_cli_t *cli)
{
    int              rc, done, stored;
    int64_t          until;
    char             expires[32];
    char             at[NGX_HTTP_APIKEY_TIME_LEN];
    const char      *prefix;
    apikey_tx_t      tx;
    unsigned char    key[NGX_HTTP_APIKEY_KEY_MAX_LEN + 1];
    apikey_record_t  old, rec;

    memset(&rec, 0, sizeof(apikey_record_t));

    if (apikey_store_load(&cli->store, cli->arg, &old, 1) != 0) {
        return apikey_fail("%s", cli->store.err);
    }

    rc = apikey_rotatable(cli, &old);
    if (rc != APIKEY_OK) {
        goto done;
    }

    prefix = cli->prefix ? cli->prefix : old.prefix;

    if (prefix
        && !ngx_http_apikey_key_prefix_valid((const unsigned char *) prefix,
                                             strlen(prefix)))
    {
        prefix = NULL;
    }

    rc = apikey_new_key(cli, prefix, &old, key, &rec);
    if (rc != APIKEY_OK) {
        goto done;
    }

    stored = apikey_store_write_record(&cli->store, &rec);

    if (stored == APIKEY_STORE_FAILED) {
        apikey_store_remove(&cli->store, &rec);
        rc = apikey_fail("%s", cli->store.err);
        goto done;
    }

    apikey_tx_begin(&tx, cli->store.ctx, cli->store.err);

    apikey_store_queue_field(&cli->store, &tx, &old, "replaced_by", rec.id);

    if (cli->grace == 0) {
        until = cli->now;
        apikey_store_queue_field(&cli->store, &tx, &old, "revoked", "1");

    } else {
        until = cli->now + cli->grace;

        if (old.expires_at && old.expires_at < until) {
            until = old.expires_at;
        }

        snprintf(expires, sizeof(expires), "%lld", (long long) until);

        apikey_store_queue_field(&cli->store, &tx, &old, "expires_at",
                                 expires);
    }

    apikey_store_queue_keep(&cli->store, &tx, &old, until);

    done = apikey_tx_exec(&tx);
    apikey_tx_end(&tx);

    if (done == APIKEY_TX_CHANGED) {
        apikey_store_remove(&cli->store, &rec);
        rc = apikey_fail("the key changed while rotating it, try again");
        goto done;
    }

    apikey_print_record(cli, &rec, (char *) key);

    if (done != APIKEY_TX_DONE) {
        rc = apikey_fail("the new key is stored, but %s may still work: %s",
                         old.id, cli->store.err);
        goto done;
    }

    if (apikey_store_keep_id(&cli->store, &old, until) != 0
        || stored != APIKEY_STORE_DONE)
    {
        rc = apikey_fail("the key is rotated, but %s", cli->store.err);
    }

    if (!(cli->options & APIKEY_O(JSON))) {
        if (cli->grace == 0) {
            fprintf(stderr, "%s is revoked.\n", old.id);

        } else {
            ngx_http_apikey_time_format(until, at);
            fprintf(stderr, "%s keeps working until %s.\n", old.id, at);
        }
    }

done:

    OPENSSL_cleanse(key, sizeof(key));
    ngx_http_apikey_object_free(&old);
    ngx_http_apikey_object_free(&rec);

    return rc;
}


int
apikey_verify(apikey_cli_t *cli)
{
    int                       json;
    char                      name[APIKEY_STORE_NAME_LEN];
    size_t                    len, plen;
    unsigned char            *key, *line;
    unsigned char             hash[NGX_HTTP_APIKEY_HASH_HEX_LEN + 1];
    const char               *result, *checksum, *row[2];
    redisReply               *reply;
    apikey_table_t            table;
    apikey_record_t           rec, *found;
    ngx_http_apikey_status_e  status;

    line = NULL;

    if (strcmp(cli->arg, "-") == 0) {
        line = apikey_read_key(&len);
        if (line == NULL) {
            return apikey_fail("cannot read the key from standard input");
        }

        key = line;

    } else {
        key = (unsigned char *) cli->arg;
        len = strlen(cli->arg);
    }

    found = NULL;
    checksum = NULL;
    memset(&rec, 0, sizeof(apikey_record_t));

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

    if (ngx_http_apikey_key_hash(cli->md, (unsigned char *) cli->secret,
                                 cli->secret_len, key, len, hash)
        != 0)
    {
        apikey_fail("cannot hash the key");
        goto failed;
    }

    hash[NGX_HTTP_APIKEY_HASH_HEX_LEN] = '\0';

    reply = apikey_redis_command(cli->store.ctx, cli->store.err, "HGETALL",
                                 apikey_store_record_name(&cli->store, name,
                                                          (char *) hash),
                                 NULL);
    if (reply == NULL) {
        apikey_fail("%s", cli->store.err);
        goto failed;
    }

    if (ngx_http_apikey_object_parse(&rec, reply) == 0) {
        found = &rec;
    }

    freeReplyObject(reply);

    if (found && apikey_store_last_used(&cli->store, found) != 0) {
        apikey_fail("%s", cli->store.err);
        goto failed;
    }

    status = apikey_record_verdict(found, cli->now, cli->scopes, cli->org);

done:

    result = ngx_http_apikey_policy_status_name(status);

    if (line) {
        OPENSSL_cleanse(line, len);
        free(line);
    }

    json = (cli->options & APIKEY_O(JSON)) != 0;

    if (json) {
        fputs("{\"result\":", stdout);
        apikey_json_string(stdout, result);
        fputs(",\"checksum\":", stdout);
        apikey_json_string(stdout, checksum);

        if (found) {
            fputs(",\"record\":", stdout);
            apikey_record_json(stdout, found, NULL, cli->now);

        } else {
            fputs(",\"record\":null", stdout);
        }

        puts("}");

    } else {
        apikey_table_init(&table, 2);

        row[0] = "result";
        row[1] = result;

        if (apikey_table_add(&table, row) == 0) {
            row[0] = "checksum";
            row[1] = checksum ? checksum : "n/a";
        }

        if (apikey_table_add(&table, row) == 0
            && (found == NULL
                || apikey_record_rows(&table, found, cli->now) == 0))
        {
            apikey_table_print(stdout, &table);
        }

        apikey_table_free(&table);
    }

    ngx_http_apikey_object_free(&rec);

    return APIKEY_OK;

failed:

    if (line) {
        OPENSSL_cleanse(line, len);
        free(line);
    }

    ngx_http_apikey_object_free(&rec);

    return APIKEY_ERROR;
}


/* --rate and --burst of update; an empty value writes the field empty */

static int
apikey_update_limit(apikey_cli_t *cli, apikey_tx_t *tx, apikey_record_t *rec)
{
    size_t        i;
    char        **field;
    const char   *value, *name;

    for (i = 0; i < 2; i++) {
        value = i ? cli->burst : cli->rate;
        name = i ? "burst" : "rate";
        field = i ? &rec->burst : &rec->rate;

        if (value == NULL) {
            continue;
        }

        apikey_store_queue_field(&cli->store, tx, rec, name, value);

        free(*field);
        *field = NULL;

        if (value[0]) {
            *field = strdup(value);
            if (*field == NULL) {
                return APIKEY_ERROR;
            }
        }
    }

    return APIKEY_OK;
}


static int
apikey_rotatable(apikey_cli_t *cli, apikey_record_t *old)
{
    if (old->revoked || (old->expires_at && old->expires_at <= cli->now)) {
        return apikey_fail("%s is %s: create a new key instead", old->id,
                           old->revoked ? "revoked" : "expired");
    }

    if (old->replaced_by) {
        return apikey_fail("%s was already rotated: it is replaced by %s",
                           old->id, old->replaced_by);
    }

    return APIKEY_OK;
}


/*
 * --cidrs and --field of update: written, or removed when empty, and
 * changed in rec for the output
 */

static int
apikey_update_extra(apikey_cli_t *cli, apikey_tx_t *tx, apikey_record_t *rec)
{
    char    *p, **field;
    size_t   i;

    if (cli->options & APIKEY_O(CIDRS)) {
        p = NULL;

        if (cli->extra.cidrs[0]) {
            apikey_store_queue_field(&cli->store, tx, rec, "cidrs",
                                     cli->extra.cidrs);
            p = strdup(cli->extra.cidrs);
            if (p == NULL) {
                return -1;
            }

        } else {
            apikey_store_queue_hdel(&cli->store, tx, rec, "cidrs");
        }

        free(rec->cidrs);
        rec->cidrs = p;
    }

    field = cli->extra.fields;

    for (i = 0; i < cli->extra.nfields; i++) {

        if (field[2 * i + 1][0]) {
            apikey_store_queue_field(&cli->store, tx, rec, field[2 * i],
                                     field[2 * i + 1]);
        } else {
            apikey_store_queue_hdel(&cli->store, tx, rec, field[2 * i]);
        }

        if (ngx_http_apikey_object_set_extra(rec, field[2 * i],
                                             strlen(field[2 * i]),
                                             field[2 * i + 1])
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


/*
 * Makes a key with the name, org, scopes and expiry of "like", its hash,
 * a free id and its index entries; the record itself is for the caller
 * to write.
 */

static int
apikey_new_key(apikey_cli_t *cli, const char *prefix, apikey_record_t *like,
    unsigned char *key, apikey_record_t *rec)
{
    int     failed;
    size_t  i, n;

    memset(rec, 0, sizeof(apikey_record_t));
    failed = 0;

    if (prefix == NULL) {
        prefix = NGX_HTTP_APIKEY_KEY_DEFAULT_PREFIX;
    }

    n = ngx_http_apikey_key_generate((const unsigned char *) prefix,
                                     strlen(prefix), key);

    if (n == 0) {
        return apikey_fail("cannot generate a key: RAND_bytes() failed");
    }

    key[n] = '\0';

    if (ngx_http_apikey_key_hash(cli->md, (unsigned char *) cli->secret,
                                 cli->secret_len, key, n,
                                 (unsigned char *) rec->hash)
        != 0)
    {
        OPENSSL_cleanse(key, n);
        return apikey_fail("cannot hash the key");
    }

    rec->hash[NGX_HTTP_APIKEY_HASH_HEX_LEN] = '\0';

    rec->hint = strndup((char *) key + n - NGX_HTTP_APIKEY_KEY_HINT_LEN,
                        NGX_HTTP_APIKEY_KEY_HINT_LEN);
    rec->prefix = strdup(prefix);
    rec->created_at = cli->now;

    rec->name = like->name ? strdup(like->name) : NULL;
    rec->org = like->org ? strdup(like->org) : NULL;
    rec->scopes = strdup(like->scopes ? like->scopes : "");
    rec->expires_at = like->expires_at;

    /* a rotated key keeps its rate limit */

    rec->rate = (like->rate && like->rate[0]) ? strdup(like->rate) : NULL;
    rec->burst = (like->burst && like->burst[0]) ? strdup(like->burst)
                                                 : NULL;

    /* rotate keeps the allowlist and the other fields: the key's policy */

    rec->cidrs = like->cidrs ? strdup(like->cidrs) : NULL;

    for (i = 0; i < like->nfields; i++) {
        if (ngx_http_apikey_object_set_extra(rec, like->fields[2 * i],
                                             strlen(like->fields[2 * i]),
                                             like->fields[2 * i + 1])
            != 0)
        {
            failed = 1;
        }
    }

    if (rec->hint == NULL || rec->prefix == NULL
        || (like->name && rec->name == NULL)
        || (like->org && rec->org == NULL) || rec->scopes == NULL
        || (like->rate && like->rate[0] && rec->rate == NULL)
        || (like->burst && like->burst[0] && rec->burst == NULL)
        || (like->cidrs && rec->cidrs == NULL) || failed)
    {
        OPENSSL_cleanse(key, n);
        ngx_http_apikey_object_free(rec);
        return apikey_fail("out of memory");
    }

    /* the indexes first: without the record they make nothing usable */

    if (apikey_store_index(&cli->store, rec) != 0) {
        OPENSSL_cleanse(key, n);
        ngx_http_apikey_object_free(rec);
        return apikey_fail("%s", cli->store.err);
    }

    return APIKEY_OK;
}


static int
apikey_list_print(apikey_cli_t *cli, apikey_store_list_t *list)
{
    int             rc;
    size_t          i;
    apikey_table_t  table;

    qsort(list->recs, list->nrecs, sizeof(apikey_record_t),
          apikey_record_compare);

    if (cli->options & APIKEY_O(JSON)) {
        putchar('[');

        for (i = 0; i < list->nrecs; i++) {
            if (i) {
                putchar(',');
            }

            apikey_record_json(stdout, &list->recs[i], NULL, cli->now);
        }

        puts("]");

        return APIKEY_OK;
    }

    apikey_table_init(&table, 9);

    rc = apikey_record_list_header(&table);

    for (i = 0; rc == 0 && i < list->nrecs; i++) {
        rc = apikey_record_list_row(&table, &list->recs[i], cli->now);
    }

    if (rc == 0) {
        apikey_table_print(stdout, &table);
    }

    apikey_table_free(&table);

    return (rc == 0) ? APIKEY_OK : apikey_fail("out of memory");
}


static int
apikey_record_compare(const void *one, const void *two)
{
    const apikey_record_t  *a, *b;

    a = one;
    b = two;

    if (a->created_at != b->created_at) {
        return a->created_at < b->created_at ? -1 : 1;
    }

    return strcmp(a->id, b->id);
}


/*
 * The first line of standard input, without its line end, whole: the
 * policy decides on every byte of it, as the module would.
 */

static unsigned char *
apikey_read_key(size_t *len)
{
    char    *line;
    size_t   size;
    ssize_t  n;

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


static void
apikey_print_record(apikey_cli_t *cli, apikey_record_t *rec, const char *key)
{
    const char     *row[2];
    apikey_table_t  table;

    if (cli->options & APIKEY_O(JSON)) {
        apikey_record_json(stdout, rec, key, cli->now);
        putchar('\n');
        return;
    }

    apikey_table_init(&table, 2);

    if (key) {
        row[0] = "key";
        row[1] = key;

        if (apikey_table_add(&table, row) != 0) {
            goto failed;
        }
    }

    if (apikey_record_rows(&table, rec, cli->now) != 0) {
        goto failed;
    }

    apikey_table_print(stdout, &table);
    apikey_table_free(&table);

    if (key) {
        fprintf(stderr, "Store the key now: it is not kept anywhere and "
                "cannot be shown again.\n");
    }

    return;

failed:

    apikey_table_free(&table);
    apikey_fail("out of memory");
}
