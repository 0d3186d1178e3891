
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A key record as the apikey tool sees it (docs/redis-schema.md), its
 * state, the module's decision for verify, and its JSON and table forms.
 */


#ifndef _APIKEY_RECORD_H_INCLUDED_
#define _APIKEY_RECORD_H_INCLUDED_


#include <stdint.h>
#include <stdio.h>

#include <hiredis/hiredis.h>

#include "ngx_http_apikey_key.h"
#include "ngx_http_apikey_policy.h"
#include "apikey_text.h"


/* --field: at most as many as apikey_record_fields reads */
#define APIKEY_FIELDS_MAX     32

/* a record stays readable this long past its expiry or revocation */
#define APIKEY_KEEP           (7 * 86400)

#define APIKEY_ID_PREFIX      "k_"
#define APIKEY_ID_RANDOM_LEN  12
#define APIKEY_ID_LEN                                                        \
    (sizeof(APIKEY_ID_PREFIX) - 1 + APIKEY_ID_RANDOM_LEN)


typedef struct {
    char      hash[NGX_HTTP_APIKEY_HASH_HEX_LEN + 1];
    char     *id;
    char     *name;
    char     *org;
    char     *scopes;
    char     *hint;
    char     *prefix;
    char     *replaced_by;
    char     *cidrs;        /* the IP allowlist, as written */
    char    **fields;       /* other fields: name, value, name, value... */
    size_t    nfields;      /* pairs */
    int64_t   created_at;
    int64_t   expires_at;
    int64_t   last_used_at;
    unsigned  revoked:1;
    unsigned  bad_expiry:1;
} apikey_record_t;


/*
 * Fills rec from an HGETALL reply.  Returns 0, or -1 if the reply is not
 * a key record (empty, or without an id) or memory ran out.
 */
int apikey_record_parse(apikey_record_t *rec, redisReply *reply);

void apikey_record_free(apikey_record_t *rec);

/*
 * 1 if name may be written with --field: a name apikey_record_fields can
 * read, and none the tool or the module reads itself
 */
int apikey_record_field_name(const char *name, size_t len);

/*
 * Sets a field of rec->fields (a copy of value), or removes it if value is
 * "": 0, or -1 when out of memory
 */
int apikey_record_set_field(apikey_record_t *rec, const char *name,
    size_t len, const char *value);

/* a new random id, "k_" and 12 base62 characters, malloc()ed; NULL on error */
char *apikey_record_id(void);

/* "active", "expired" or "revoked" */
const char *apikey_record_state(
    apikey_record_t *rec, int64_t now);

/*
 * What the module answers for this record, by the shared policy:
 * rec == NULL is a missing record; scopes are the location's, space-
 * separated; org NULL means the location has no apikey_org.
 */
ngx_http_apikey_status_e apikey_record_verdict(
    apikey_record_t *rec, int64_t now, const char *scopes,
    const char *org);

/* an unsigned decimal, or -1 */
int64_t apikey_number(const char *s);

/* one JSON object; key is printed only when not NULL (create, rotate) */
void apikey_record_json(FILE *f,
    apikey_record_t *rec, const char *key, int64_t now);

/* "key: value" rows of one record for an aligned two-column table */
int apikey_record_rows(apikey_table_t *t, apikey_record_t *rec, int64_t now);

/* the header and one row per record of "apikey list" */
int apikey_record_list_header(apikey_table_t *t);
int apikey_record_list_row(apikey_table_t *t,
    apikey_record_t *rec, int64_t now);


#endif /* _APIKEY_RECORD_H_INCLUDED_ */
