
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_apikey_object.h"
#include "ngx_http_apikey_policy.h"
#include "ngx_http_apikey_rate.h"
#include "ngx_http_apikey_time.h"


typedef enum {
    NGX_HTTP_APIKEY_FIELD_STRING = 0,  /* NULL when absent or empty */
    NGX_HTTP_APIKEY_FIELD_NAME,        /* a string, "" in JSON when absent */
    NGX_HTTP_APIKEY_FIELD_SCOPES,      /* a JSON array of the words */
    NGX_HTTP_APIKEY_FIELD_TIME,        /* unix seconds; RFC 3339 or null */
    NGX_HTTP_APIKEY_FIELD_EXPIRY,      /* a time the policy must trust */
    NGX_HTTP_APIKEY_FIELD_REVOKED,     /* the policy's flag, not shown */
    NGX_HTTP_APIKEY_FIELD_STATE,       /* shown, not stored: the policy's */
    NGX_HTTP_APIKEY_FIELD_HIDDEN,      /* stored, not shown */
    NGX_HTTP_APIKEY_FIELD_BURST,       /* a string, a number in JSON */
    NGX_HTTP_APIKEY_FIELD_WORDS,       /* space-separated: a JSON array */
    NGX_HTTP_APIKEY_FIELD_EXTRA        /* the other fields: a JSON object */
} ngx_http_apikey_field_type_e;


/*
 * Every field of a record, in the order of the JSON object: a new field
 * of the record is one more row here (and one in docs/redis-schema.md).
 */

typedef struct {
    const char                    *name;
    ngx_http_apikey_field_type_e   type;
    size_t                         offset;
    unsigned                       created:1;   /* written by a creator */
    unsigned                       optional:1;  /* ... only when set */
} ngx_http_apikey_field_t;


#define ngx_http_apikey_field(name, type, created)                           \
    { #name, NGX_HTTP_APIKEY_FIELD_##type,                                   \
      offsetof(ngx_http_apikey_object_t, name), created, 0 }

#define ngx_http_apikey_field_optional(name, type)                           \
    { #name, NGX_HTTP_APIKEY_FIELD_##type,                                   \
      offsetof(ngx_http_apikey_object_t, name), 1, 1 }

static const ngx_http_apikey_field_t  ngx_http_apikey_fields[] = {
    ngx_http_apikey_field(id, STRING, 1),
    ngx_http_apikey_field(name, NAME, 1),
    ngx_http_apikey_field(org, STRING, 1),
    ngx_http_apikey_field(hint, STRING, 1),
    ngx_http_apikey_field(scopes, SCOPES, 1),
    ngx_http_apikey_field_optional(cidrs, WORDS),
    { "fields", NGX_HTTP_APIKEY_FIELD_EXTRA, 0, 0, 0 },
    ngx_http_apikey_field(created_at, TIME, 1),
    ngx_http_apikey_field(expires_at, EXPIRY, 1),
    ngx_http_apikey_field(last_used_at, TIME, 0),
    { "state", NGX_HTTP_APIKEY_FIELD_STATE, 0, 0, 0 },
    ngx_http_apikey_field(replaced_by, STRING, 0),
    ngx_http_apikey_field_optional(rate, STRING),
    ngx_http_apikey_field_optional(burst, BURST),
    ngx_http_apikey_field(prefix, HIDDEN, 1),
    { "revoked", NGX_HTTP_APIKEY_FIELD_REVOKED, 0, 0, 0 }
};

#define NGX_HTTP_APIKEY_NFIELDS                                              \
    (sizeof(ngx_http_apikey_fields) / sizeof(ngx_http_apikey_fields[0]))


static int ngx_http_apikey_object_set(ngx_http_apikey_object_t *obj,
    const ngx_http_apikey_field_t *f, const char *value, size_t len);
static void ngx_http_apikey_json_time(int64_t t,
    ngx_http_apikey_json_out_pt out, void *data);
static size_t ngx_http_apikey_utf8_len(const unsigned char *p,
    const unsigned char *last);


#define ngx_http_apikey_json_literal(s, out, data)                           \
    out(data, s, sizeof(s) - 1)


int
ngx_http_apikey_object_parse(ngx_http_apikey_object_t *obj,
    redisReply *reply)
{
    size_t                          i, k;
    redisReply                     *name, *value;
    const ngx_http_apikey_field_t  *f;

    memset(obj, 0, sizeof(ngx_http_apikey_object_t));

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        return -1;
    }

    for (i = 0; i < reply->elements; i += 2) {
        name = reply->element[i];
        value = reply->element[i + 1];

        if (name->type != REDIS_REPLY_STRING
            || value->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        for (k = 0; k < NGX_HTTP_APIKEY_NFIELDS; k++) {
            f = &ngx_http_apikey_fields[k];

            if (strlen(f->name) == name->len
                && memcmp(f->name, name->str, name->len) == 0)
            {
                break;
            }
        }

        if (k == NGX_HTTP_APIKEY_NFIELDS) {

            /* another field, kept as written (an empty one is absent) */

            if (value->len && value->len == strlen(value->str)
                && ngx_http_apikey_object_extra_name(name->str, name->len)
                && ngx_http_apikey_object_set_extra(obj, name->str,
                                                    name->len, value->str)
                   != 0)
            {
                ngx_http_apikey_object_free(obj);
                return -1;
            }

            continue;
        }

        if (ngx_http_apikey_object_set(obj, f, value->str, value->len) != 0)
        {
            ngx_http_apikey_object_free(obj);
            return -1;
        }
    }

    if (obj->id == NULL) {
        ngx_http_apikey_object_free(obj);
        return -1;
    }

    return 0;
}


void
ngx_http_apikey_object_free(ngx_http_apikey_object_t *obj)
{
    size_t                          i, k;
    char                          **s;
    const ngx_http_apikey_field_t  *f;

    for (k = 0; k < NGX_HTTP_APIKEY_NFIELDS; k++) {
        f = &ngx_http_apikey_fields[k];

        switch (f->type) {

        case NGX_HTTP_APIKEY_FIELD_STRING:
        case NGX_HTTP_APIKEY_FIELD_NAME:
        case NGX_HTTP_APIKEY_FIELD_SCOPES:
        case NGX_HTTP_APIKEY_FIELD_HIDDEN:
        case NGX_HTTP_APIKEY_FIELD_BURST:
        case NGX_HTTP_APIKEY_FIELD_WORDS:
            s = (char **) ((char *) obj + f->offset);
            free(*s);
            *s = NULL;
            break;

        case NGX_HTTP_APIKEY_FIELD_EXTRA:
            for (i = 0; i < 2 * obj->nfields; i++) {
                free(obj->fields[i]);
            }

            free(obj->fields);
            obj->fields = NULL;
            obj->nfields = 0;
            break;

        default:
            break;
        }
    }
}


void
ngx_http_apikey_object_fields(const ngx_http_apikey_object_t *obj,
    ngx_http_apikey_object_fields_t *fields)
{
    size_t                          i, k;
    const char                     *value;
    const ngx_http_apikey_field_t  *f;

    fields->n = 0;

    for (k = 0; k < NGX_HTTP_APIKEY_NFIELDS; k++) {
        f = &ngx_http_apikey_fields[k];

        if (f->type == NGX_HTTP_APIKEY_FIELD_EXTRA) {

            /* in the same HSET: a key is never usable without them */

            for (i = 0; i < obj->nfields; i++) {
                ngx_http_apikey_object_field(fields, obj->fields[2 * i],
                                             obj->fields[2 * i + 1]);
            }

            continue;
        }

        if (!f->created) {
            continue;
        }

        if (f->type == NGX_HTTP_APIKEY_FIELD_TIME
            || f->type == NGX_HTTP_APIKEY_FIELD_EXPIRY)
        {
            ngx_http_apikey_object_field_number(fields, f->name,
                *(const int64_t *) ((const char *) obj + f->offset));
            continue;
        }

        value = *(char *const *) ((const char *) obj + f->offset);

        if (f->optional && (value == NULL || value[0] == '\0')) {
            continue;
        }

        ngx_http_apikey_object_field(fields, f->name, value);
    }
}


void
ngx_http_apikey_object_field(ngx_http_apikey_object_fields_t *fields,
    const char *name, const char *value)
{
    if (fields->n == 2 * NGX_HTTP_APIKEY_OBJECT_FIELDS_MAX) {
        return;
    }

    if (value == NULL) {
        value = "";
    }

    fields->argv[fields->n] = name;
    fields->argvlen[fields->n] = strlen(name);
    fields->argv[fields->n + 1] = value;
    fields->argvlen[fields->n + 1] = strlen(value);

    fields->n += 2;
}


void
ngx_http_apikey_object_field_number(ngx_http_apikey_object_fields_t *fields,
    const char *name, int64_t n)
{
    char  *buf;

    buf = fields->buf[fields->n / 2 % NGX_HTTP_APIKEY_OBJECT_FIELDS_MAX];

    snprintf(buf, sizeof(fields->buf[0]), "%lld", (long long) n);

    ngx_http_apikey_object_field(fields, name, buf);
}


int
ngx_http_apikey_object_id(char *buf)
{
    size_t  n;

    n = sizeof(NGX_HTTP_APIKEY_OBJECT_ID_PREFIX) - 1;

    memcpy(buf, NGX_HTTP_APIKEY_OBJECT_ID_PREFIX, n);

    if (ngx_http_apikey_key_random((unsigned char *) buf + n,
                                   NGX_HTTP_APIKEY_OBJECT_ID_RANDOM_LEN)
        != 0)
    {
        return -1;
    }

    buf[NGX_HTTP_APIKEY_OBJECT_ID_LEN] = '\0';

    return 0;
}


void
ngx_http_apikey_object_last_used(ngx_http_apikey_object_t *obj,
    redisReply *reply)
{
    char     buf[32];
    int64_t  t;

    if (reply->type != REDIS_REPLY_STRING || reply->len >= sizeof(buf)) {
        return;
    }

    memcpy(buf, reply->str, reply->len);
    buf[reply->len] = '\0';

    t = ngx_http_apikey_object_number(buf);

    /* a last_used_at field in the record, from older writers, may be newer */

    if (t > obj->last_used_at) {
        obj->last_used_at = t;
    }
}


const char *
ngx_http_apikey_object_state(const ngx_http_apikey_object_t *obj,
    int64_t now)
{
    ngx_http_apikey_policy_key_t   key;
    ngx_http_apikey_policy_need_t  none;

    ngx_http_apikey_object_policy_key(obj, &key);
    memset(&none, 0, sizeof(ngx_http_apikey_policy_need_t));

    switch (ngx_http_apikey_policy_check(&key, &none, now)) {

    case NGX_HTTP_APIKEY_REVOKED:
        return "revoked";

    case NGX_HTTP_APIKEY_EXPIRED:
        return "expired";

    default:
        return "active";
    }
}


void
ngx_http_apikey_object_json(const ngx_http_apikey_object_t *obj,
    const char *key, int64_t now, ngx_http_apikey_json_out_pt out,
    void *data)
{
    int                             n;
    char                            number[16];
    size_t                          i, k;
    uint32_t                        burst;
    const char                     *s, *state;
    const ngx_http_apikey_field_t  *f;

    for (k = 0; k < NGX_HTTP_APIKEY_NFIELDS; k++) {
        f = &ngx_http_apikey_fields[k];

        if (f->type == NGX_HTTP_APIKEY_FIELD_REVOKED
            || f->type == NGX_HTTP_APIKEY_FIELD_HIDDEN)
        {
            continue;
        }

        out(data, k ? ",\"" : "{\"", 2);
        out(data, f->name, strlen(f->name));
        out(data, "\":", 2);

        switch (f->type) {

        case NGX_HTTP_APIKEY_FIELD_SCOPES:
        case NGX_HTTP_APIKEY_FIELD_WORDS:
            ngx_http_apikey_object_scopes_json(
                *(char **) ((char *) obj + f->offset), out, data);
            break;

        case NGX_HTTP_APIKEY_FIELD_EXTRA:
            out(data, "{", 1);

            for (i = 0; i < obj->nfields; i++) {
                if (i) {
                    out(data, ",", 1);
                }

                s = obj->fields[2 * i];
                ngx_http_apikey_json_string(s, strlen(s), out, data);
                out(data, ":", 1);
                s = obj->fields[2 * i + 1];
                ngx_http_apikey_json_string(s, strlen(s), out, data);
            }

            out(data, "}", 1);
            break;

        case NGX_HTTP_APIKEY_FIELD_TIME:
        case NGX_HTTP_APIKEY_FIELD_EXPIRY:
            ngx_http_apikey_json_time(
                *(int64_t *) ((char *) obj + f->offset), out, data);
            break;

        case NGX_HTTP_APIKEY_FIELD_STATE:
            state = ngx_http_apikey_object_state(obj, now);
            ngx_http_apikey_json_string(state, strlen(state), out, data);
            break;

        case NGX_HTTP_APIKEY_FIELD_BURST:

            /* a number; another writer's malformed value as the string */

            s = *(char **) ((char *) obj + f->offset);

            if (s && ngx_http_apikey_rate_burst((const unsigned char *) s,
                                                strlen(s), &burst)
                     == 0)
            {
                n = snprintf(number, sizeof(number), "%u", (unsigned) burst);
                out(data, number, n);

            } else if (s) {
                ngx_http_apikey_json_string(s, strlen(s), out, data);

            } else {
                ngx_http_apikey_json_literal("null", out, data);
            }

            break;

        default:
            s = *(char **) ((char *) obj + f->offset);

            if (s == NULL && f->type == NGX_HTTP_APIKEY_FIELD_NAME) {
                s = "";
            }

            if (s == NULL) {
                ngx_http_apikey_json_literal("null", out, data);

            } else {
                ngx_http_apikey_json_string(s, strlen(s), out, data);
            }

            break;
        }

        /* the plaintext comes right after the id, where a reader sees it */

        if (k == 0 && key) {
            ngx_http_apikey_json_literal(",\"key\":", out, data);
            ngx_http_apikey_json_string(key, strlen(key), out, data);
        }
    }

    out(data, "}", 1);
}


void
ngx_http_apikey_json_string(const char *s, size_t len,
    ngx_http_apikey_json_out_pt out, void *data)
{
    size_t                n;
    char                  esc[8];
    const unsigned char  *p, *last;

    static const char     hex[] = "0123456789abcdef";

    p = (const unsigned char *) s;
    last = p + len;

    out(data, "\"", 1);

    while (p < last) {

        switch (*p) {

        case '"':
            ngx_http_apikey_json_literal("\\\"", out, data);
            p++;
            continue;

        case '\\':
            ngx_http_apikey_json_literal("\\\\", out, data);
            p++;
            continue;

        case '\n':
            ngx_http_apikey_json_literal("\\n", out, data);
            p++;
            continue;

        case '\r':
            ngx_http_apikey_json_literal("\\r", out, data);
            p++;
            continue;

        case '\t':
            ngx_http_apikey_json_literal("\\t", out, data);
            p++;
            continue;
        }

        if (*p < 0x20 || *p == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 0xf];
            out(data, esc, 6);
            p++;
            continue;
        }

        n = ngx_http_apikey_utf8_len(p, last);

        if (n == 0) {
            ngx_http_apikey_json_literal("\\ufffd", out, data);
            p++;
            continue;
        }

        out(data, (const char *) p, n);
        p += n;
    }

    out(data, "\"", 1);
}


int64_t
ngx_http_apikey_object_number(const char *s)
{
    int64_t  n;

    if (s == NULL || *s == '\0') {
        return -1;
    }

    for (n = 0; *s; s++) {

        if (*s < '0' || *s > '9' || n > (INT64_MAX - 9) / 10) {
            return -1;
        }

        n = n * 10 + (*s - '0');
    }

    return n;
}


int
ngx_http_apikey_object_text_valid(const char *s, size_t len)
{
    size_t                n;
    const unsigned char  *p, *last;

    p = (const unsigned char *) s;
    last = p + len;

    while (p < last) {

        if (*p < 0x20 || *p == 0x7f) {
            return 0;
        }

        n = ngx_http_apikey_utf8_len(p, last);

        if (n == 0) {
            return 0;
        }

        p += n;
    }

    return 1;
}


int
ngx_http_apikey_object_word_valid(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (s[i] <= 0x20 || s[i] >= 0x7f) {
            return 0;
        }
    }

    return len > 0 && len < 256;
}


static int
ngx_http_apikey_object_set(ngx_http_apikey_object_t *obj,
    const ngx_http_apikey_field_t *f, const char *value, size_t len)
{
    char      buf[32], **s;
    int64_t   n, *t;

    switch (f->type) {

    case NGX_HTTP_APIKEY_FIELD_REVOKED:
        obj->revoked = ngx_http_apikey_policy_revoked(
                           (const unsigned char *) value, len);
        return 0;

    case NGX_HTTP_APIKEY_FIELD_STATE:
    case NGX_HTTP_APIKEY_FIELD_EXTRA:
        return 0;

    case NGX_HTTP_APIKEY_FIELD_TIME:
    case NGX_HTTP_APIKEY_FIELD_EXPIRY:
        n = -1;

        if (len < sizeof(buf)) {
            memcpy(buf, value, len);
            buf[len] = '\0';
            n = ngx_http_apikey_object_number(buf);
        }

        if (len == 0 && f->type == NGX_HTTP_APIKEY_FIELD_EXPIRY) {
            n = 0;
        }

        if (n < 0) {
            /* the module refuses a key with a broken expiry: "invalid" */
            obj->bad_expiry |= (f->type == NGX_HTTP_APIKEY_FIELD_EXPIRY);
            n = 0;
        }

        t = (int64_t *) ((char *) obj + f->offset);
        *t = n;
        return 0;

    default:
        if (len == 0) {
            return 0;
        }

        s = (char **) ((char *) obj + f->offset);
        free(*s);

        *s = strndup(value, len);

        return *s ? 0 : -1;
    }
}


void
ngx_http_apikey_object_policy_key(const ngx_http_apikey_object_t *obj,
    ngx_http_apikey_policy_key_t *key)
{
    key->org = (const unsigned char *) obj->org;
    key->org_len = obj->org ? strlen(obj->org) : 0;
    key->scopes = (const unsigned char *) obj->scopes;
    key->scopes_len = obj->scopes ? strlen(obj->scopes) : 0;
    key->expires_at = obj->expires_at;
    key->revoked = obj->revoked;
    key->cidrs = (const unsigned char *) obj->cidrs;
    key->cidrs_len = obj->cidrs ? strlen(obj->cidrs) : 0;
    key->nets = NULL;
    key->nnets = 0;
}


int
ngx_http_apikey_object_extra_name(const char *name, size_t len)
{
    size_t  k;

    if (!ngx_http_apikey_policy_field_name((const unsigned char *) name,
                                           len))
    {
        return 0;
    }

    for (k = 0; k < NGX_HTTP_APIKEY_NFIELDS; k++) {
        if (strlen(ngx_http_apikey_fields[k].name) == len
            && memcmp(ngx_http_apikey_fields[k].name, name, len) == 0)
        {
            return 0;
        }
    }

    return 1;
}


int
ngx_http_apikey_object_set_extra(ngx_http_apikey_object_t *obj,
    const char *name, size_t len, const char *value)
{
    size_t   i;
    char    *v, *n, **fields;

    for (i = 0; i < obj->nfields; i++) {
        if (strlen(obj->fields[2 * i]) == len
            && memcmp(obj->fields[2 * i], name, len) == 0)
        {
            break;
        }
    }

    if (value[0] == '\0') {
        if (i < obj->nfields) {
            free(obj->fields[2 * i]);
            free(obj->fields[2 * i + 1]);
            memmove(&obj->fields[2 * i], &obj->fields[2 * i + 2],
                    (obj->nfields - i - 1) * 2 * sizeof(char *));
            obj->nfields--;
        }

        return 0;
    }

    v = strdup(value);
    if (v == NULL) {
        return -1;
    }

    if (i < obj->nfields) {
        free(obj->fields[2 * i + 1]);
        obj->fields[2 * i + 1] = v;
        return 0;
    }

    n = strndup(name, len);

    if (n == NULL || obj->nfields == NGX_HTTP_APIKEY_OBJECT_EXTRA_MAX) {
        free(n);
        free(v);
        return -1;
    }

    fields = realloc(obj->fields, (obj->nfields + 1) * 2 * sizeof(char *));
    if (fields == NULL) {
        free(n);
        free(v);
        return -1;
    }

    obj->fields = fields;
    fields[2 * i] = n;
    fields[2 * i + 1] = v;
    obj->nfields++;

    return 0;
}


void
ngx_http_apikey_object_scopes_json(const char *scopes,
    ngx_http_apikey_json_out_pt out, void *data)
{
    int                   first;
    size_t                len;
    const unsigned char  *p, *last, *scope;

    out(data, "[", 1);

    p = (const unsigned char *) scopes;
    last = p ? p + strlen(scopes) : NULL;

    for (first = 1;
         (scope = ngx_http_apikey_policy_scope_next(&p, last, &len)) != NULL;
         first = 0)
    {
        if (!first) {
            out(data, ",", 1);
        }

        ngx_http_apikey_json_string((const char *) scope, len, out, data);
    }

    out(data, "]", 1);
}


static void
ngx_http_apikey_json_time(int64_t t, ngx_http_apikey_json_out_pt out,
    void *data)
{
    char  buf[NGX_HTTP_APIKEY_TIME_LEN];

    if (t == 0) {
        ngx_http_apikey_json_literal("null", out, data);
        return;
    }

    ngx_http_apikey_time_format(t, buf);

    out(data, "\"", 1);
    out(data, buf, strlen(buf));
    out(data, "\"", 1);
}


/* the length of one UTF-8 character at p, or 0 if it is not one */

static size_t
ngx_http_apikey_utf8_len(const unsigned char *p, const unsigned char *last)
{
    size_t    n, i;
    uint32_t  u;

    if (*p < 0x80) {
        return 1;
    }

    if (*p >= 0xc2 && *p <= 0xdf) {
        n = 2;
        u = *p & 0x1f;

    } else if (*p >= 0xe0 && *p <= 0xef) {
        n = 3;
        u = *p & 0x0f;

    } else if (*p >= 0xf0 && *p <= 0xf4) {
        n = 4;
        u = *p & 0x07;

    } else {
        return 0;
    }

    if (n > (size_t) (last - p)) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        u = (u << 6) | (p[i] & 0x3f);
    }

    /* overlong forms, surrogates, beyond U+10FFFF */

    if ((n == 3 && u < 0x800)
        || (n == 4 && u < 0x10000)
        || (u >= 0xd800 && u <= 0xdfff)
        || u > 0x10ffff)
    {
        return 0;
    }

    return n;
}
