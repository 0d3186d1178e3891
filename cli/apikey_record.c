
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdlib.h>
#include <string.h>

#include "apikey_record.h"
#include "ngx_http_apikey_time.h"


static void apikey_record_json_out(void *data, const char *p, size_t len);
static const char *apikey_record_time(int64_t t, const char *none, char *buf);


char *
apikey_record_id(void)
{
    char  *id;

    id = malloc(APIKEY_ID_LEN + 1);
    if (id == NULL) {
        return NULL;
    }

    if (ngx_http_apikey_object_id(id) != 0) {
        free(id);
        return NULL;
    }

    return id;
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

    ngx_http_apikey_object_policy_key(rec, &key);

    need.org = (const unsigned char *) org;
    need.org_len = org ? strlen(org) : 0;
    need.scopes = (const unsigned char *) scopes;
    need.scopes_len = scopes ? strlen(scopes) : 0;

    return ngx_http_apikey_policy_check(&key, &need, now);
}


void
apikey_record_json(FILE *f, apikey_record_t *rec, const char *key, int64_t now)
{
    ngx_http_apikey_object_json(rec, key, now, apikey_record_json_out, f);
}


int
apikey_record_rows(apikey_table_t *t, apikey_record_t *rec, int64_t now)
{
    size_t       i;
    char         created[NGX_HTTP_APIKEY_TIME_LEN];
    char         expires[NGX_HTTP_APIKEY_TIME_LEN];
    char         used[NGX_HTTP_APIKEY_TIME_LEN];
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
        { "state", ngx_http_apikey_object_state(rec, now) },
        { "replaced by", rec->replaced_by },
        { "rate", rec->rate },
        { "burst", rec->burst },
        { "cidrs", rec->cidrs }
    };
    const char  *row[2];

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {

        /* the optional fields are shown when present */

        if (rows[i][1] == NULL
            && (strcmp(rows[i][0], "replaced by") == 0
                || strcmp(rows[i][0], "rate") == 0
                || strcmp(rows[i][0], "burst") == 0
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
    char         created[NGX_HTTP_APIKEY_TIME_LEN];
    char         expires[NGX_HTTP_APIKEY_TIME_LEN];
    char         used[NGX_HTTP_APIKEY_TIME_LEN];
    const char  *row[9];

    row[0] = rec->id;
    row[1] = rec->name;
    row[2] = rec->org;
    row[3] = rec->hint;
    row[4] = rec->scopes;
    row[5] = apikey_record_time(rec->created_at, "-", created);
    row[6] = apikey_record_time(rec->expires_at, "never", expires);
    row[7] = apikey_record_time(rec->last_used_at, "never", used);
    row[8] = ngx_http_apikey_object_state(rec, now);

    return apikey_table_add(t, row);
}


static const char *
apikey_record_time(int64_t t, const char *none, char *buf)
{
    if (t == 0) {
        return none;
    }

    ngx_http_apikey_time_format(t, buf);

    return buf;
}


static void
apikey_record_json_out(void *data, const char *p, size_t len)
{
    fwrite(p, 1, len, data);
}
