
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The apikey tool's helpers: verify's verdict on a record (the shared
 * policy's rows are in apikey_unit_policy.c), text checks, JSON strings,
 * Redis addresses and record parsing.
 */


#include <stdlib.h>

#include "apikey_record.h"
#include "apikey_redis.h"
#include "apikey_text.h"
#include "apikey_unit.h"


static void ngx_http_apikey_unit_verdict(void);
static const char *ngx_http_apikey_unit_verdict_of(
    apikey_record_t *rec, int64_t now, const char *scopes,
    const char *org);
static void ngx_http_apikey_unit_text(void);
static void ngx_http_apikey_unit_json(void);
static const char *ngx_http_apikey_unit_json_of(const char *s);
static void ngx_http_apikey_unit_addr(void);
static void ngx_http_apikey_unit_parse(void);


void
ngx_http_apikey_unit_cli(void)
{
    ngx_http_apikey_unit_verdict();
    ngx_http_apikey_unit_text();
    ngx_http_apikey_unit_json();
    ngx_http_apikey_unit_addr();
    ngx_http_apikey_unit_parse();
}


static void
ngx_http_apikey_unit_verdict(void)
{
    apikey_record_t  rec;

    memset(&rec, 0, sizeof(rec));

    rec.id = "k_test";
    rec.org = "acme";
    rec.scopes = "read:people";

    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(NULL, 1000, NULL, NULL),
        "invalid", "no record is invalid");
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(&rec, 1000, NULL, NULL),
        "ok", "a plain record is ok");
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(&rec, 1000, "read:people", "acme"),
        "ok", "the right scope and org are ok");
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(&rec, 1000,
                                        "read:people write:people", "acme"),
        "insufficient_scope", "a missing scope is insufficient_scope");
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(&rec, 1000, "read:people", "other"),
        "org_mismatch", "another org is org_mismatch");
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(&rec, 1000, "read:people", ""),
        "org_mismatch", "an empty org matches nothing");
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(&rec, 1000,
                                        "read:people write:people", "other"),
        "org_mismatch",
        "the org is checked before the scopes, as in the module");

    rec.expires_at = 1000;
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(&rec, 1000, NULL, NULL),
        "expired", "expires_at == now is expired");
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_object_state(&rec, 1000), "expired",
        "the state of an expired key");
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(&rec, 999, NULL, NULL),
        "ok", "expires_at in the future is ok");

    rec.revoked = 1;
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(&rec, 1000, NULL, NULL),
        "revoked", "revoked wins over expired");
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_object_state(&rec, 1000), "revoked",
        "the state of a revoked key");

    rec.revoked = 0;
    rec.expires_at = 0;
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_object_state(&rec, 1000), "active",
        "the state of a plain key");

    rec.bad_expiry = 1;
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_verdict_of(&rec, 1000, NULL, NULL),
        "invalid", "an unreadable expires_at is invalid, as in the module");
}


static const char *
ngx_http_apikey_unit_verdict_of(apikey_record_t *rec,
    int64_t now, const char *scopes, const char *org)
{
    return ngx_http_apikey_policy_status_name(
               apikey_record_verdict(rec, now, scopes, org));
}


static void
ngx_http_apikey_unit_text(void)
{
    ngx_http_apikey_unit_ok(apikey_text_valid("Nightly Export"),
                            "a name with spaces is valid");
    ngx_http_apikey_unit_ok(
        apikey_text_valid("Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94"
                          "\x91"),
        "a UTF-8 name is valid");
    ngx_http_apikey_unit_ok(!apikey_text_valid("a\nb"),
                            "a newline in a name is refused");
    ngx_http_apikey_unit_ok(!apikey_text_valid("a\rb"),
                            "a carriage return in a name is refused");
    ngx_http_apikey_unit_ok(!apikey_text_valid("a\x7f"),
                            "DEL in a name is refused");
    ngx_http_apikey_unit_ok(!apikey_text_valid("\xc3"),
                            "a truncated UTF-8 sequence is refused");
    ngx_http_apikey_unit_ok(!apikey_text_valid("\xc0\xaf"),
                            "an overlong UTF-8 form is refused");
    ngx_http_apikey_unit_ok(!apikey_text_valid("\xed\xa0\x80"),
                            "a UTF-8 surrogate is refused");

    ngx_http_apikey_unit_ok(apikey_word_valid("read:people"),
                            "a scope is a word");
    ngx_http_apikey_unit_ok(!apikey_word_valid(""),
                            "an empty word is refused");
    ngx_http_apikey_unit_ok(!apikey_word_valid("a b"),
                            "a word has no space");
    ngx_http_apikey_unit_ok(!apikey_word_valid("caf\xc3\xa9"),
                            "a word is ASCII");
}


static void
ngx_http_apikey_unit_json(void)
{
    ngx_http_apikey_unit_is_str(ngx_http_apikey_unit_json_of(NULL), "null",
                                "NULL is null");
    ngx_http_apikey_unit_is_str(ngx_http_apikey_unit_json_of("abc"),
                                "\"abc\"", "a plain string");
    ngx_http_apikey_unit_is_str(ngx_http_apikey_unit_json_of("a\"b\\c"),
                                "\"a\\\"b\\\\c\"",
                                "quotes and backslashes are escaped");
    ngx_http_apikey_unit_is_str(ngx_http_apikey_unit_json_of("a\nb\tc\x01"),
                                "\"a\\nb\\tc\\u0001\"",
                                "control characters are escaped");
    ngx_http_apikey_unit_is_str(ngx_http_apikey_unit_json_of("caf\xc3\xa9"),
                                "\"caf\xc3\xa9\"", "UTF-8 passes as is");
    ngx_http_apikey_unit_is_str(ngx_http_apikey_unit_json_of("a\xff" "b"),
                                "\"a\\ufffdb\"",
                                "invalid UTF-8 becomes U+FFFD");
}


static const char *
ngx_http_apikey_unit_json_of(const char *s)
{
    FILE        *f;
    static char  buf[256];

    memset(buf, 0, sizeof(buf));

    f = fmemopen(buf, sizeof(buf) - 1, "w");
    if (f == NULL) {
        return "(fmemopen failed)";
    }

    apikey_json_string(f, s);
    fclose(f);

    return buf;
}


static void
ngx_http_apikey_unit_addr(void)
{
    char                 err[APIKEY_ERR_LEN];
    apikey_redis_conf_t  rc;

    memset(&rc, 0, sizeof(rc));

    if (ngx_http_apikey_unit_ok(
            apikey_redis_addr(&rc, "127.0.0.1:6380", err) == 0,
            "host:port"))
    {
        ngx_http_apikey_unit_is_str(rc.host, "127.0.0.1", "host:port host");
        ngx_http_apikey_unit_is_int(rc.port, 6380, "host:port port");
        free(rc.host);
    }

    if (ngx_http_apikey_unit_ok(
            apikey_redis_addr(&rc, "redis.local", err) == 0,
            "a host alone"))
    {
        ngx_http_apikey_unit_is_int(rc.port, 6379, "the default port");
        free(rc.host);
    }

    if (ngx_http_apikey_unit_ok(
            apikey_redis_addr(&rc, "[::1]:7000", err) == 0,
            "[v6]:port"))
    {
        ngx_http_apikey_unit_is_str(rc.host, "::1", "[v6]:port host");
        ngx_http_apikey_unit_is_int(rc.port, 7000, "[v6]:port port");
        free(rc.host);
    }

    if (ngx_http_apikey_unit_ok(
            apikey_redis_addr(&rc, "unix:/run/redis.sock", err)
            == 0, "unix:/path"))
    {
        ngx_http_apikey_unit_ok(rc.host == NULL, "unix: has no host");
        ngx_http_apikey_unit_is_str(rc.path, "/run/redis.sock",
                                    "unix: path");
        free(rc.path);
    }

    ngx_http_apikey_unit_ok(
        apikey_redis_addr(&rc, "host:0", err) == -1,
        "port 0 is refused");
    ngx_http_apikey_unit_ok(
        apikey_redis_addr(&rc, "host:65536", err) == -1,
        "port 65536 is refused");
    ngx_http_apikey_unit_ok(
        apikey_redis_addr(&rc, "host:x", err) == -1,
        "a port must be a number");
    ngx_http_apikey_unit_ok(
        apikey_redis_addr(&rc, ":6379", err) == -1,
        "a host is required");
    ngx_http_apikey_unit_ok(
        apikey_redis_addr(&rc, "::1", err) == -1,
        "a bare IPv6 address is refused");
    ngx_http_apikey_unit_ok(
        apikey_redis_addr(&rc, "unix:", err) == -1,
        "unix: needs a path");

    memset(&rc, 0, sizeof(rc));

    if (ngx_http_apikey_unit_ok(
            apikey_redis_addr(&rc, "rediss://redis.local:6380/2", err) == 0,
            "rediss://host:port/db"))
    {
        ngx_http_apikey_unit_ok(rc.tls, "rediss: is TLS");
        ngx_http_apikey_unit_is_str(rc.host, "redis.local", "rediss: host");
        ngx_http_apikey_unit_is_int(rc.port, 6380, "rediss: port");
        ngx_http_apikey_unit_is_int(rc.db, 2, "rediss: db");
        ngx_http_apikey_unit_ok(rc.db_in_addr, "rediss: the db is told");
        free(rc.host);
    }

    memset(&rc, 0, sizeof(rc));

    if (ngx_http_apikey_unit_ok(
            apikey_redis_addr(&rc, "rediss://[::1]", err) == 0,
            "rediss://[v6]"))
    {
        ngx_http_apikey_unit_is_str(rc.host, "::1", "rediss://[v6] host");
        ngx_http_apikey_unit_is_int(rc.port, 6379, "the default port");
        ngx_http_apikey_unit_ok(!rc.db_in_addr, "no db");
        free(rc.host);
    }

    memset(&rc, 0, sizeof(rc));

    if (ngx_http_apikey_unit_ok(
            apikey_redis_addr(&rc, "redis://h:7000", err) == 0,
            "redis://host:port"))
    {
        ngx_http_apikey_unit_ok(!rc.tls, "redis: is not TLS");
        free(rc.host);
    }

    ngx_http_apikey_unit_ok(
        apikey_redis_addr(&rc, "rediss://h:1/x", err) == -1,
        "a db must be a number");
    ngx_http_apikey_unit_ok(
        apikey_redis_addr(&rc, "rediss://h:1/65536", err) == -1,
        "db 65536 is refused");
    ngx_http_apikey_unit_ok(
        apikey_redis_addr(&rc, "rediss:///0", err) == -1,
        "rediss: needs a host");

    ngx_http_apikey_unit_ok(
        apikey_redis_sentinels(&rc, "10.0.0.1:26379,s2,[::1]:5000", err)
        == 0, "a list of sentinels");
    ngx_http_apikey_unit_ok(
        apikey_redis_sentinels(&rc, "10.0.0.1:26379,", err) == -1,
        "an empty sentinel is refused");
    ngx_http_apikey_unit_ok(
        apikey_redis_sentinels(&rc, "s1:0", err) == -1,
        "a sentinel's port 0 is refused");
}


static void
ngx_http_apikey_unit_parse(void)
{
    size_t           i;
    redisReply       reply, elements[16], *element[16];
    apikey_record_t  rec;

    static const char  *fields[] = {
        "id", "k_abc", "name", "CI export", "scopes", "read:people",
        "expires_at", "2000000000", "revoked", "1", "last_used_at", "",
        "unknown", "x", "created_at", "1700000000"
    };

    memset(&reply, 0, sizeof(reply));
    memset(elements, 0, sizeof(elements));

    for (i = 0; i < 16; i++) {
        elements[i].type = REDIS_REPLY_STRING;
        elements[i].str = (char *) fields[i];
        elements[i].len = strlen(fields[i]);
        element[i] = &elements[i];
    }

    reply.type = REDIS_REPLY_ARRAY;
    reply.elements = 16;
    reply.element = element;

    if (ngx_http_apikey_unit_ok(
            ngx_http_apikey_object_parse(&rec, &reply) == 0,
            "an HGETALL reply is a record"))
    {
        ngx_http_apikey_unit_is_str(rec.id, "k_abc", "record id");
        ngx_http_apikey_unit_is_str(rec.name, "CI export", "record name");
        ngx_http_apikey_unit_ok(rec.org == NULL, "no org field is no org");
        ngx_http_apikey_unit_is_int(rec.expires_at, 2000000000,
                                    "record expires_at");
        ngx_http_apikey_unit_is_int(rec.created_at, 1700000000,
                                    "record created_at");
        ngx_http_apikey_unit_is_int(rec.last_used_at, 0,
                                    "an empty last_used_at is never");
        ngx_http_apikey_unit_ok(rec.revoked, "revoked \"1\" is revoked");
        ngx_http_apikey_object_free(&rec);
    }

    elements[9].str = "yes";
    elements[9].len = 3;
    elements[7].str = "soon";
    elements[7].len = 4;

    if (ngx_http_apikey_unit_ok(
            ngx_http_apikey_object_parse(&rec, &reply) == 0,
            "a record with odd values still parses"))
    {
        ngx_http_apikey_unit_ok(rec.revoked,
                                "revoked \"yes\" is revoked, as in the "
                                "module");
        ngx_http_apikey_unit_ok(rec.bad_expiry,
                                "a non-numeric expires_at is noticed");
        ngx_http_apikey_object_free(&rec);
    }

    elements[1].len = 0;

    ngx_http_apikey_unit_ok(
        ngx_http_apikey_object_parse(&rec, &reply) == -1,
        "a record with an empty id is not a key");

    reply.elements = 0;

    ngx_http_apikey_unit_ok(
        ngx_http_apikey_object_parse(&rec, &reply) == -1,
        "an empty reply is not a key");
}
