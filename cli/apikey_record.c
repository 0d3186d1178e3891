
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdlib.h>
#include <string.h>

#include "apikey_record.h"
#include "apikey_time.h"


static void apikey_record_key(apikey_record_t *rec,
    ngx_http_apikey_policy_key_t *key);
static char **apikey_record_field(
    apikey_record_t *rec, const char *name, size_t len);
static int apikey_record_known(const char *name, size_t len);
static void apikey_record_json_words(FILE *f, const char *name,
    const char *s);
static void apikey_record_json_time(FILE *f, const char *name, int64_t t);
static const char *apikey_record_time(int64_t t, const char *none, char *buf);


int
apikey_record_parse(apikey_record_t *rec, redisReply *reply)
{
    size_t       i;
    char       **field, *value_copy;
    int64_t      n;
    redisReply  *name, *value;

    memset(rec, 0, sizeof(apikey_record_t));

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

        if (name->len == sizeof("revoked") - 1
            && memcmp(name->str, "revoked", name->len) == 0)
        {
            rec->revoked = ngx_http_apikey_policy_revoked(
                               (const unsigned char *) value->str,
                               value->len);
            continue;
        }

        if (name->len == sizeof("expires_at") - 1
            && memcmp(name->str, "expires_at", name->len) == 0)
        {
            n = value->len ? apikey_number(value->str) : 0;

            if (n < 0) {
                /* the module refuses such a key; show it as "invalid" */
                rec->bad_expiry = 1;
                n = 0;
            }

            rec->expires_at = n;
            continue;
        }

        if (name->len == sizeof("created_at") - 1
            && memcmp(name->str, "created_at", name->len) == 0)
        {
            n = apikey_number(value->str);
            rec->created_at = n > 0 ? n : 0;
            continue;
        }

        if (name->len == sizeof("last_used_at") - 1
            && memcmp(name->str, "last_used_at", name->len) == 0)
        {
            n = apikey_number(value->str);
            rec->last_used_at = n > 0 ? n : 0;
            continue;
        }

        field = apikey_record_field(rec, name->str, name->len);

        if (field == NULL && value->len
            && apikey_record_field_name(name->str, name->len))
        {
            value_copy = strndup(value->str, value->len);

            if (value_copy == NULL
                || apikey_record_set_field(rec, name->str, name->len,
                                           value_copy)
                   != 0)
            {
                free(value_copy);
                apikey_record_free(rec);
                return -1;
            }

            free(value_copy);
            continue;
        }

        if (field == NULL || value->len == 0) {
            continue;
        }

        free(*field);

        *field = strndup(value->str, value->len);
        if (*field == NULL) {
            apikey_record_free(rec);
            return -1;
        }
    }

    if (rec->id == NULL) {
        apikey_record_free(rec);
        return -1;
    }

    return 0;
}


void
apikey_record_free(apikey_record_t *rec)
{
    size_t  i;

    free(rec->id);
    free(rec->name);
    free(rec->org);
    free(rec->scopes);
    free(rec->hint);
    free(rec->prefix);
    free(rec->replaced_by);
    free(rec->cidrs);

    for (i = 0; i < 2 * rec->nfields; i++) {
        free(rec->fields[i]);
    }

    free(rec->fields);

    rec->id = NULL;
    rec->name = NULL;
    rec->org = NULL;
    rec->scopes = NULL;
    rec->hint = NULL;
    rec->prefix = NULL;
    rec->replaced_by = NULL;
    rec->cidrs = NULL;
    rec->fields = NULL;
    rec->nfields = 0;
}


int
apikey_record_field_name(const char *name, size_t len)
{
    return ngx_http_apikey_policy_field_name((const unsigned char *) name,
                                             len)
           && !apikey_record_known(name, len);
}


int
apikey_record_set_field(apikey_record_t *rec, const char *name, size_t len,
    const char *value)
{
    size_t   i;
    char    *v, **fields;

    for (i = 0; i < rec->nfields; i++) {
        if (strlen(rec->fields[2 * i]) == len
            && memcmp(rec->fields[2 * i], name, len) == 0)
        {
            break;
        }
    }

    if (value[0] == '\0') {
        if (i < rec->nfields) {
            free(rec->fields[2 * i]);
            free(rec->fields[2 * i + 1]);
            memmove(&rec->fields[2 * i], &rec->fields[2 * i + 2],
                    (rec->nfields - i - 1) * 2 * sizeof(char *));
            rec->nfields--;
        }

        return 0;
    }

    v = strdup(value);
    if (v == NULL) {
        return -1;
    }

    if (i < rec->nfields) {
        free(rec->fields[2 * i + 1]);
        rec->fields[2 * i + 1] = v;
        return 0;
    }

    fields = realloc(rec->fields, (rec->nfields + 1) * 2 * sizeof(char *));
    if (fields == NULL) {
        free(v);
        return -1;
    }

    rec->fields = fields;

    fields[2 * i] = strndup(name, len);
    if (fields[2 * i] == NULL) {
        free(v);
        return -1;
    }

    fields[2 * i + 1] = v;
    rec->nfields++;

    return 0;
}


char *
apikey_record_id(void)
{
    char  *id;

    id = malloc(APIKEY_ID_LEN + 1);
    if (id == NULL) {
        return NULL;
    }

    memcpy(id, APIKEY_ID_PREFIX, sizeof(APIKEY_ID_PREFIX) - 1);

    if (ngx_http_apikey_key_random((unsigned char *) id
                                   + sizeof(APIKEY_ID_PREFIX) - 1,
                                   APIKEY_ID_RANDOM_LEN)
        != 0)
    {
        free(id);
        return NULL;
    }

    id[APIKEY_ID_LEN] = '\0';

    return id;
}


const char *
apikey_record_state(apikey_record_t *rec, int64_t now)
{
    ngx_http_apikey_policy_key_t   key;
    ngx_http_apikey_policy_need_t  none;

    apikey_record_key(rec, &key);
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


ngx_http_apikey_status_e
apikey_record_verdict(apikey_record_t *rec,
    int64_t now, const char *scopes, const char *org)
{
    ngx_http_apikey_policy_key_t   key;
    ngx_http_apikey_policy_need_t  need;

    /* the module takes a record with a broken expiry for no key at all */

    if (rec == NULL || rec->id == NULL || rec->bad_expiry) {
        return NGX_HTTP_APIKEY_INVALID;
    }

    apikey_record_key(rec, &key);

    need.org = (const unsigned char *) org;
    need.org_len = org ? strlen(org) : 0;
    need.scopes = (const unsigned char *) scopes;
    need.scopes_len = scopes ? strlen(scopes) : 0;
    need.client = NULL;

    return ngx_http_apikey_policy_check(&key, &need, now);
}


int64_t
apikey_number(const char *s)
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


void
apikey_record_json(FILE *f, apikey_record_t *rec, const char *key, int64_t now)
{
    size_t  i;

    fputs("{\"id\":", f);
    apikey_json_string(f, rec->id);

    if (key) {
        fputs(",\"key\":", f);
        apikey_json_string(f, key);
    }

    fputs(",\"name\":", f);
    apikey_json_string(f, rec->name ? rec->name : "");
    fputs(",\"org\":", f);
    apikey_json_string(f, rec->org);
    fputs(",\"hint\":", f);
    apikey_json_string(f, rec->hint);

    apikey_record_json_words(f, "scopes", rec->scopes);
    apikey_record_json_words(f, "cidrs", rec->cidrs);

    fputs(",\"fields\":{", f);

    for (i = 0; i < rec->nfields; i++) {
        if (i) {
            putc(',', f);
        }

        apikey_json_string(f, rec->fields[2 * i]);
        putc(':', f);
        apikey_json_string(f, rec->fields[2 * i + 1]);
    }

    putc('}', f);

    apikey_record_json_time(f, "created_at", rec->created_at);
    apikey_record_json_time(f, "expires_at", rec->expires_at);
    apikey_record_json_time(f, "last_used_at", rec->last_used_at);

    fputs(",\"state\":", f);
    apikey_json_string(f, apikey_record_state(rec, now));
    fputs(",\"replaced_by\":", f);
    apikey_json_string(f, rec->replaced_by);

    putc('}', f);
}


int
apikey_record_rows(apikey_table_t *t, apikey_record_t *rec, int64_t now)
{
    size_t       i;
    char         created[APIKEY_TIME_LEN];
    char         expires[APIKEY_TIME_LEN];
    char         used[APIKEY_TIME_LEN];
    const char  *rows[][2] = {
        { "id", rec->id },
        { "name", rec->name },
        { "org", rec->org },
        { "hint", rec->hint },
        { "scopes", rec->scopes },
        { "created", apikey_record_time(rec->created_at, "-",
                                        created) },
        { "expires", apikey_record_time(rec->expires_at,
                                        "never", expires) },
        { "last used", apikey_record_time(rec->last_used_at,
                                          "never", used) },
        { "state", apikey_record_state(rec, now) },
        { "replaced by", rec->replaced_by },
        { "cidrs", rec->cidrs }
    };
    const char  *row[2];

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {

        if (rows[i][1] == NULL
            && (strcmp(rows[i][0], "replaced by") == 0
                || strcmp(rows[i][0], "cidrs") == 0))
        {
            continue;
        }

        if (apikey_table_add(t, rows[i]) != 0) {
            return -1;
        }
    }

    /* the other fields under their own names, after the known ones */

    for (i = 0; i < rec->nfields; i++) {
        row[0] = rec->fields[2 * i];
        row[1] = rec->fields[2 * i + 1];

        if (apikey_table_add(t, row) != 0) {
            return -1;
        }
    }

    return 0;
}


int
apikey_record_list_header(apikey_table_t *t)
{
    static const char  *header[] = {
        "ID", "NAME", "ORG", "HINT", "SCOPES", "CREATED", "EXPIRES",
        "LAST USED", "STATE"
    };

    return apikey_table_add(t, header);
}


int
apikey_record_list_row(apikey_table_t *t, apikey_record_t *rec, int64_t now)
{
    char         created[APIKEY_TIME_LEN];
    char         expires[APIKEY_TIME_LEN];
    char         used[APIKEY_TIME_LEN];
    const char  *row[9];

    row[0] = rec->id;
    row[1] = rec->name;
    row[2] = rec->org;
    row[3] = rec->hint;
    row[4] = rec->scopes;
    row[5] = apikey_record_time(rec->created_at, "-", created);
    row[6] = apikey_record_time(rec->expires_at, "never", expires);
    row[7] = apikey_record_time(rec->last_used_at, "never", used);
    row[8] = apikey_record_state(rec, now);

    return apikey_table_add(t, row);
}


/* what of the record the shared policy reads */

static void
apikey_record_key(apikey_record_t *rec, ngx_http_apikey_policy_key_t *key)
{
    key->org = (const unsigned char *) rec->org;
    key->org_len = rec->org ? strlen(rec->org) : 0;
    key->scopes = (const unsigned char *) rec->scopes;
    key->scopes_len = rec->scopes ? strlen(rec->scopes) : 0;
    key->expires_at = rec->expires_at;
    key->revoked = rec->revoked;
    key->cidrs = (const unsigned char *) rec->cidrs;
    key->cidrs_len = rec->cidrs ? strlen(rec->cidrs) : 0;
}


static char **
apikey_record_field(apikey_record_t *rec, const char *name, size_t len)
{
    size_t  i;
    struct {
        const char   *name;
        char        **field;
    } fields[] = {
        { "id", &rec->id },
        { "name", &rec->name },
        { "org", &rec->org },
        { "scopes", &rec->scopes },
        { "hint", &rec->hint },
        { "prefix", &rec->prefix },
        { "replaced_by", &rec->replaced_by },
        { "cidrs", &rec->cidrs }
    };

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strlen(fields[i].name) == len
            && memcmp(fields[i].name, name, len) == 0)
        {
            return fields[i].field;
        }
    }

    return NULL;
}


/* the fields the tool or the module reads: never an extra field */

static int
apikey_record_known(const char *name, size_t len)
{
    size_t              i;
    apikey_record_t     rec;
    static const char  *special[] = {
        "revoked", "expires_at", "created_at", "last_used_at"
    };

    if (apikey_record_field(&rec, name, len) != NULL) {
        return 1;
    }

    for (i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        if (strlen(special[i]) == len && memcmp(special[i], name, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* a space-separated list as a JSON array, [] for none */

static void
apikey_record_json_words(FILE *f, const char *name, const char *s)
{
    int                   first;
    size_t                len;
    const unsigned char  *p, *last, *word;

    fprintf(f, ",\"%s\":[", name);

    p = (const unsigned char *) s;
    last = p ? p + strlen(s) : NULL;

    for (first = 1;
         (word = ngx_http_apikey_policy_scope_next(&p, last, &len)) != NULL;
         first = 0)
    {
        if (!first) {
            putc(',', f);
        }

        apikey_json_string_n(f, (const char *) word, len);
    }

    putc(']', f);
}


static void
apikey_record_json_time(FILE *f, const char *name, int64_t t)
{
    char  buf[APIKEY_TIME_LEN];

    fprintf(f, ",\"%s\":", name);

    if (t == 0) {
        fputs("null", f);
        return;
    }

    apikey_time_format(t, buf);
    fprintf(f, "\"%s\"", buf);
}


static const char *
apikey_record_time(int64_t t, const char *none, char *buf)
{
    if (t == 0) {
        return none;
    }

    apikey_time_format(t, buf);

    return buf;
}
