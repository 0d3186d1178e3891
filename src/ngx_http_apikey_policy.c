
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The policy: plain C, no nginx header, so that the module and the apikey
 * tool share one implementation.
 */


#include <string.h>
#include <strings.h>

#include "ngx_http_apikey_policy.h"


static int ngx_http_apikey_policy_tchar(unsigned char c);


/*
 * b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
 */

static const uint32_t  ngx_http_apikey_policy_b64token[] = {
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */

                /* ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!  */
    0x03ffe800, /* 0000 0011 1111 1111  1110 1000 0000 0000 */

                /* _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@ */
    0x87fffffe, /* 1000 0111 1111 1111  1111 1111 1111 1110 */

                /*  ~}| {zyx wvut srqp  onml kjih gfed cba` */
    0x47fffffe, /* 0100 0111 1111 1111  1111 1111 1111 1110 */

    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */
};


static const char  *ngx_http_apikey_policy_names[] = {
    "ok",
    "missing",
    "malformed",
    "invalid",
    "expired",
    "revoked",
    "insufficient_scope",
    "org_mismatch",
    "rate_limited",
    "ip_not_allowed",
    "error"
};


ngx_http_apikey_status_e
ngx_http_apikey_policy_check(const ngx_http_apikey_policy_key_t *key,
    const ngx_http_apikey_policy_need_t *need, int64_t now)
{
    int                   inside;
    size_t                len;
    const unsigned char  *p, *last, *scope;

    if (key->revoked) {
        return NGX_HTTP_APIKEY_REVOKED;
    }

    if (key->expires_at && key->expires_at <= now) {
        return NGX_HTTP_APIKEY_EXPIRED;
    }

    /* without a list, any address */

    inside = 1;

    if (key->nnets > 0) {
        inside = ngx_http_apikey_cidr_find(key->nets, key->nnets,
                                           need->client);

    } else if (key->nnets < 0) {
        inside = -1;

    } else if (key->cidrs_len) {
        inside = ngx_http_apikey_cidr_match(key->cidrs, key->cidrs_len,
                                            need->client);
    }

    if (inside < 0) {
        return NGX_HTTP_APIKEY_INVALID;
    }

    if (!inside && need->client != NULL) {
        return NGX_HTTP_APIKEY_IP_NOT_ALLOWED;
    }

    /* a key of another organisation learns nothing of the scopes here */

    if (need->org
        && (need->org_len == 0
            || need->org_len != key->org_len
            || memcmp(need->org, key->org, need->org_len) != 0))
    {
        return NGX_HTTP_APIKEY_ORG_MISMATCH;
    }

    p = need->scopes;
    last = (p != NULL) ? p + need->scopes_len : NULL;

    while ((scope = ngx_http_apikey_policy_scope_next(&p, last, &len))
           != NULL)
    {
        if (!ngx_http_apikey_policy_scope_granted(key->scopes,
                                                  key->scopes_len,
                                                  scope, len))
        {
            return NGX_HTTP_APIKEY_INSUFFICIENT_SCOPE;
        }
    }

    return NGX_HTTP_APIKEY_OK;
}


int
ngx_http_apikey_policy_scope_granted(const unsigned char *scopes,
    size_t len, const unsigned char *required, size_t required_len)
{
    size_t                n;
    const unsigned char  *p, *last, *scope;

    p = scopes;
    last = (p != NULL) ? p + len : NULL;

    while ((scope = ngx_http_apikey_policy_scope_next(&p, last, &n)) != NULL)
    {
        if (scope[n - 1] == '*') {
            n--;

            if (n <= required_len && memcmp(scope, required, n) == 0) {
                return 1;
            }

            continue;
        }

        if (n == required_len && memcmp(scope, required, n) == 0) {
            return 1;
        }
    }

    return 0;
}


const unsigned char *
ngx_http_apikey_policy_scope_next(const unsigned char **p,
    const unsigned char *last, size_t *len)
{
    const unsigned char  *s, *start;

    s = *p;

    if (s == NULL) {
        return NULL;
    }

    while (s < last && *s == ' ') {
        s++;
    }

    start = s;

    while (s < last && *s != ' ') {
        s++;
    }

    *p = s;
    *len = s - start;

    return (s == start) ? NULL : start;
}


int
ngx_http_apikey_policy_revoked(const unsigned char *value, size_t len)
{
    return len > 0 && !(len == 1 && value[0] == '0');
}


ngx_http_apikey_status_e
ngx_http_apikey_policy_token(const unsigned char *token, size_t len)
{
    size_t  i;

    for (i = 0;
         i < len
         && (ngx_http_apikey_policy_b64token[token[i] >> 5]
             & (1U << (token[i] & 0x1f)));
         i++)
    {
        /* void */
    }

    if (i == 0) {
        return NGX_HTTP_APIKEY_MALFORMED;
    }

    while (i < len && token[i] == '=') {
        i++;
    }

    if (i != len) {
        return NGX_HTTP_APIKEY_MALFORMED;
    }

    if (len > NGX_HTTP_APIKEY_TOKEN_MAX) {
        return NGX_HTTP_APIKEY_INVALID;
    }

    return NGX_HTTP_APIKEY_OK;
}


ngx_http_apikey_status_e
ngx_http_apikey_policy_bearer(const unsigned char *value, size_t len,
    size_t *start)
{
    size_t  i;

    if (len < sizeof("Bearer") - 1
        || strncasecmp((const char *) value, "Bearer", sizeof("Bearer") - 1)
           != 0)
    {
        return NGX_HTTP_APIKEY_MISSING;
    }

    i = sizeof("Bearer") - 1;

    if (i == len) {
        return NGX_HTTP_APIKEY_MALFORMED;
    }

    if (value[i] != ' ') {
        /*
         * "Bearerxyz" is another scheme (RFC 7230 token characters);
         * "Bearer\tx" or "Bearer\x01x" is a broken Bearer
         */
        return ngx_http_apikey_policy_tchar(value[i])
               ? NGX_HTTP_APIKEY_MISSING : NGX_HTTP_APIKEY_MALFORMED;
    }

    while (i < len && value[i] == ' ') {
        i++;
    }

    *start = i;

    return ngx_http_apikey_policy_token(value + i, len - i);
}


int
ngx_http_apikey_policy_field_name(const unsigned char *name, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_APIKEY_POLICY_FIELD_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z')
              || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
        {
            return 0;
        }
    }

    return 1;
}


const char *
ngx_http_apikey_policy_status_name(ngx_http_apikey_status_e status)
{
    if ((size_t) status >= sizeof(ngx_http_apikey_policy_names)
                           / sizeof(ngx_http_apikey_policy_names[0]))
    {
        return "error";
    }

    return ngx_http_apikey_policy_names[status];
}


static int
ngx_http_apikey_policy_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }

    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}
