
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The admin API's request bodies: JSON (parsed by libjansson) to the
 * change they ask for, every field checked, and that change to the record
 * fields it writes.  This file pair includes no nginx header, so that a
 * fuzzer can drive it alone.
 */


#ifndef _NGX_HTTP_APIKEY_ADMIN_BODY_H_INCLUDED_
#define _NGX_HTTP_APIKEY_ADMIN_BODY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ngx_http_apikey_object.h"


/* bodies beyond this are refused (413) before they are parsed */
#define NGX_HTTP_APIKEY_ADMIN_BODY_MAX      65536

#define NGX_HTTP_APIKEY_ADMIN_ERR_LEN       256

/* what the body is for */
#define NGX_HTTP_APIKEY_ADMIN_CREATE        0
#define NGX_HTTP_APIKEY_ADMIN_UPDATE        1
#define NGX_HTTP_APIKEY_ADMIN_ROTATE        2


typedef struct {
    char      *name;                     /* malloc()ed, or NULL */
    char      *scopes;                   /* space-separated, or NULL */
    char      *org;
    char      *rate;                     /* NULL: removed */
    char      *burst;
    char      *cidrs;                    /* space-separated; NULL: removed */
    char     **fields;       /* other fields: name, value ("": removed)... */
    size_t     nfields;
    int64_t    expires_at;               /* 0: never */
    int64_t    grace;

    unsigned   has_name:1;
    unsigned   has_scopes:1;
    unsigned   has_org:1;
    unsigned   has_expiry:1;
    unsigned   has_rate:1;
    unsigned   has_burst:1;
    unsigned   has_cidrs:1;

    char       err[NGX_HTTP_APIKEY_ADMIN_ERR_LEN];
} ngx_http_apikey_admin_edit_t;


/*
 * Reads a body of the kind given; now is for the expiry.  Returns 0, or
 * -1 with a description for the client in edit->err (never the body's
 * content).  len 0 is an empty object for a rotation.
 */
int ngx_http_apikey_admin_body_parse(const char *body, size_t len,
    int kind, int64_t now, ngx_http_apikey_admin_edit_t *edit);

void ngx_http_apikey_admin_body_free(ngx_http_apikey_admin_edit_t *edit);

/*
 * Applies the change to obj (whose strings become the edit's; the edit
 * gives them up) and lists the record fields it changed.
 */
void ngx_http_apikey_admin_body_apply(ngx_http_apikey_admin_edit_t *edit,
    ngx_http_apikey_object_t *obj, ngx_http_apikey_object_fields_t *fields);

/*
 * The first of the space-separated scopes that cap does not grant, its
 * length in *len; NULL if all are granted.
 */
const char *ngx_http_apikey_admin_body_beyond(const char *scopes,
    const char *cap, size_t cap_len, size_t *len);


#endif /* _NGX_HTTP_APIKEY_ADMIN_BODY_H_INCLUDED_ */
