
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_policy.h"


ngx_http_apikey_status_e
ngx_http_apikey_policy(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_record_t *record)
{
    ngx_str_t   org, *scope;
    ngx_uint_t  i;

    if (record->revoked) {
        return NGX_HTTP_APIKEY_REVOKED;
    }

    if (record->expires_at && record->expires_at <= ngx_time()) {
        return NGX_HTTP_APIKEY_EXPIRED;
    }

    /* a key of another organisation learns nothing of the scopes here */

    if (alcf->org) {
        if (ngx_http_complex_value(r, alcf->org, &org) != NGX_OK) {
            return NGX_HTTP_APIKEY_ERROR;
        }

        /* an empty organisation on either side matches nothing */

        if (org.len == 0
            || org.len != record->org.len
            || ngx_strncmp(org.data, record->org.data, org.len) != 0)
        {
            return NGX_HTTP_APIKEY_ORG_MISMATCH;
        }
    }

    if (alcf->scopes) {
        scope = alcf->scopes->elts;

        for (i = 0; i < alcf->scopes->nelts; i++) {
            if (!ngx_http_apikey_scope_granted(&record->scopes, &scope[i])) {
                return NGX_HTTP_APIKEY_INSUFFICIENT_SCOPE;
            }
        }
    }

    return NGX_HTTP_APIKEY_OK;
}


/*
 * scopes is the key's space-separated list: "*" grants everything,
 * "read:*" every scope that starts with "read:".
 */

ngx_uint_t
ngx_http_apikey_scope_granted(ngx_str_t *scopes, ngx_str_t *required)
{
    u_char  *p, *last, *start;
    size_t   len;

    p = scopes->data;
    last = p + scopes->len;

    while (p < last) {

        while (p < last && *p == ' ') {
            p++;
        }

        start = p;

        while (p < last && *p != ' ') {
            p++;
        }

        len = p - start;

        if (len == 0) {
            break;
        }

        if (start[len - 1] == '*') {
            len--;

            if (len <= required->len
                && ngx_strncmp(start, required->data, len) == 0)
            {
                return 1;
            }

            continue;
        }

        if (len == required->len
            && ngx_strncmp(start, required->data, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}
