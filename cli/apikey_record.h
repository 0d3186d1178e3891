
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
#include "ngx_http_apikey_object.h"
#include "apikey_text.h"


#define APIKEY_KEEP           NGX_HTTP_APIKEY_OBJECT_KEEP
#define APIKEY_ID_LEN         NGX_HTTP_APIKEY_OBJECT_ID_LEN

/* --field: at most as many as apikey_record_fields reads */
#define APIKEY_FIELDS_MAX     NGX_HTTP_APIKEY_OBJECT_EXTRA_MAX


/* the record is the shared key object (ngx_http_apikey_object.h) */
typedef ngx_http_apikey_object_t  apikey_record_t;


/* a new random id, "k_" and 12 base62 characters, malloc()ed; NULL on error */
char *apikey_record_id(void);

/*
 * What the module answers for this record, by the shared policy:
 * rec == NULL is a missing record; scopes are the location's, space-
 * separated; org NULL means the location has no apikey_org.
 */
ngx_http_apikey_status_e apikey_record_verdict(
    apikey_record_t *rec, int64_t now, const char *scopes,
    const char *org);

/* the key object as JSON; key is printed only when not NULL (create, rotate) */
void apikey_record_json(FILE *f,
    apikey_record_t *rec, const char *key, int64_t now);

/* "key: value" rows of one record for an aligned two-column table */
int apikey_record_rows(apikey_table_t *t, apikey_record_t *rec, int64_t now);

/* the header and one row per record of "apikey list" */
int apikey_record_list_header(apikey_table_t *t);
int apikey_record_list_row(apikey_table_t *t,
    apikey_record_t *rec, int64_t now);


#endif /* _APIKEY_RECORD_H_INCLUDED_ */
