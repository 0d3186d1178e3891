
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The key object: a key record as docs/redis-schema.md lays it out, read
 * from an HGETALL reply, and its one JSON form (docs/cli.md), written for
 * "apikey --json" and for the admin API alike.  This file pair includes no
 * nginx header; the fields of a record are listed in one table in the .c
 * file, which both the reader and the writer follow.
 */


#ifndef _NGX_HTTP_APIKEY_OBJECT_H_INCLUDED_
#define _NGX_HTTP_APIKEY_OBJECT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "ngx_http_apikey_key.h"
#include "ngx_http_apikey_policy.h"


/* an id: "k_" and 12 base62 characters */
#define NGX_HTTP_APIKEY_OBJECT_ID_PREFIX      "k_"
#define NGX_HTTP_APIKEY_OBJECT_ID_RANDOM_LEN  12
#define NGX_HTTP_APIKEY_OBJECT_ID_LEN                                        \
    (sizeof(NGX_HTTP_APIKEY_OBJECT_ID_PREFIX) - 1                            \
     + NGX_HTTP_APIKEY_OBJECT_ID_RANDOM_LEN)

/* a record stays readable this long past its expiry or revocation */
#define NGX_HTTP_APIKEY_OBJECT_KEEP           (7 * 86400)

/* what a name may be, in bytes */
#define NGX_HTTP_APIKEY_OBJECT_NAME_MAX  1024


typedef struct {
    char      hash[NGX_HTTP_APIKEY_HASH_HEX_LEN + 1];
    char     *id;
    char     *name;
    char     *org;
    char     *scopes;                    /* space-separated */
    char     *hint;
    char     *prefix;
    char     *replaced_by;
    char     *rate;                      /* as written: the module checks */
    char     *burst;
    char     *cidrs;                     /* the IP allowlist, as written */
    char    **fields;        /* other fields: name, value, name, value... */
    size_t    nfields;       /* pairs */
    int64_t   created_at;
    int64_t   expires_at;
    int64_t   last_used_at;
    unsigned  revoked:1;
    unsigned  bad_expiry:1;
} ngx_http_apikey_object_t;


/* other fields (apikey_record_fields, --field): at most so many */
#define NGX_HTTP_APIKEY_OBJECT_EXTRA_MAX      32

/* a record's fields one write sets at most */
#define NGX_HTTP_APIKEY_OBJECT_FIELDS_MAX                                    \
    (16 + NGX_HTTP_APIKEY_OBJECT_EXTRA_MAX)


/* field/value pairs of an HSET, pointing into an object and buf */
typedef struct {
    const char  *argv[2 * NGX_HTTP_APIKEY_OBJECT_FIELDS_MAX];
    size_t       argvlen[2 * NGX_HTTP_APIKEY_OBJECT_FIELDS_MAX];
    size_t       n;
    char         buf[NGX_HTTP_APIKEY_OBJECT_FIELDS_MAX][24];
} ngx_http_apikey_object_fields_t;


/* where JSON goes: a FILE for the tool, a buffer for the module */
typedef void (*ngx_http_apikey_json_out_pt)(void *data, const char *p,
    size_t len);


/*
 * Fills obj from an HGETALL reply (strings malloc()ed).  Returns 0, or -1
 * if the reply is not a key record (empty, or without an id) or memory
 * ran out.
 */
int ngx_http_apikey_object_parse(ngx_http_apikey_object_t *obj,
    redisReply *reply);

void ngx_http_apikey_object_free(ngx_http_apikey_object_t *obj);

/*
 * Writes a new random id and a NUL into buf (NGX_HTTP_APIKEY_OBJECT_ID_LEN
 * + 1 bytes).  Returns 0, or -1 if RAND_bytes() failed.
 */
int ngx_http_apikey_object_id(char *buf);

/*
 * The fields a new record is written with, by the tool and the admin API
 * alike: every field of the table that its creator writes (docs/redis-
 * schema.md); "revoked" and "replaced_by" come later, from other writes.
 */
void ngx_http_apikey_object_fields(const ngx_http_apikey_object_t *obj,
    ngx_http_apikey_object_fields_t *fields);

/*
 * 1 if name may be one of the other fields: a name apikey_record_fields
 * can read, and none of the table's (the tool or the module reads those)
 */
int ngx_http_apikey_object_extra_name(const char *name, size_t len);

/*
 * Sets one of the other fields to a copy of value, or removes it if value
 * is "": 0, or -1 when out of memory or past the most there may be
 */
int ngx_http_apikey_object_set_extra(ngx_http_apikey_object_t *obj,
    const char *name, size_t len, const char *value);

/* one more pair; value NULL is written "" */
void ngx_http_apikey_object_field(ngx_http_apikey_object_fields_t *fields,
    const char *name, const char *value);

/* one more pair of a number */
void ngx_http_apikey_object_field_number(
    ngx_http_apikey_object_fields_t *fields, const char *name, int64_t n);

/* the last use, kept apart from the record (an HGET reply) */
void ngx_http_apikey_object_last_used(ngx_http_apikey_object_t *obj,
    redisReply *reply);

/* what of the record the shared policy reads */
void ngx_http_apikey_object_policy_key(const ngx_http_apikey_object_t *obj,
    ngx_http_apikey_policy_key_t *key);

/* "active", "expired" or "revoked", by the shared policy */
const char *ngx_http_apikey_object_state(const ngx_http_apikey_object_t *obj,
    int64_t now);

/*
 * The key object as one JSON object; key (the plaintext, NUL-terminated)
 * is written only when not NULL: when a key is made.
 */
void ngx_http_apikey_object_json(const ngx_http_apikey_object_t *obj,
    const char *key, int64_t now, ngx_http_apikey_json_out_pt out,
    void *data);

/* space-separated words (scopes, networks) as a JSON array of strings */
void ngx_http_apikey_object_scopes_json(const char *scopes,
    ngx_http_apikey_json_out_pt out, void *data);

/* s as a JSON string with its quotes; invalid UTF-8 becomes U+FFFD */
void ngx_http_apikey_json_string(const char *s, size_t len,
    ngx_http_apikey_json_out_pt out, void *data);

/* an unsigned decimal, or -1 */
int64_t ngx_http_apikey_object_number(const char *s);

/*
 * 1 if the len bytes at s are valid UTF-8 without control characters
 * (C0, DEL, NUL), else 0: what a name may hold, since the module passes
 * it on in a header.
 */
int ngx_http_apikey_object_text_valid(const char *s, size_t len);

/*
 * 1 if s is 1 to 255 printable ASCII characters without spaces, else 0:
 * what an id, an org or a scope may hold.
 */
int ngx_http_apikey_object_word_valid(const char *s, size_t len);


#endif /* _NGX_HTTP_APIKEY_OBJECT_H_INCLUDED_ */
