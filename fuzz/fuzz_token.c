
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * libFuzzer target: the Authorization header parser of the shared policy,
 * ngx_http_apikey_policy_bearer(), fed the header value as nginx hands it
 * over.  Besides memory errors, it checks what the parser promises
 * (notes/behaviour.md): a token it accepts lies inside the value, runs to
 * its end, is 1*b64token *"=", is at most NGX_HTTP_APIKEY_TOKEN_MAX long
 * and follows "Bearer" and one or more spaces; a value that does not start
 * with the Bearer scheme is "missing"; a longer token is "invalid".
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_apikey_policy.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
ngx_http_apikey_fuzz_b64token(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~' || c == '+'
           || c == '/';
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                     i, start, len;
    unsigned char             *copy, *p, *token;
    ngx_http_apikey_status_e   rc;

    /* an exact-size copy: a read past the value is caught */
    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    start = 0;

    rc = ngx_http_apikey_policy_bearer(copy, size, &start);

    token = copy + start;
    len = size - start;

    if (size < 6 || strncasecmp((char *) copy, "bearer", 6) != 0) {
        if (rc != NGX_HTTP_APIKEY_MISSING) {
            abort();
        }
    }

    switch (rc) {

    case NGX_HTTP_APIKEY_OK:
    case NGX_HTTP_APIKEY_INVALID:
        if ((rc == NGX_HTTP_APIKEY_OK)
            != (len <= NGX_HTTP_APIKEY_TOKEN_MAX))
        {
            abort();
        }

        if (len == 0
            || token < copy + 7
            || token + len != copy + size
            || copy[6] != ' '
            || token[0] == '=')
        {
            abort();
        }

        for (p = copy + 6; p < token; p++) {
            if (*p != ' ') {
                abort();
            }
        }

        for (i = 0; i < len; i++) {
            if (!ngx_http_apikey_fuzz_b64token(token[i])) {
                break;
            }
        }

        for ( /* void */ ; i < len; i++) {
            if (token[i] != '=') {
                abort();
            }
        }

        break;

    case NGX_HTTP_APIKEY_MISSING:
    case NGX_HTTP_APIKEY_MALFORMED:
        break;

    default:
        abort();
    }

    free(copy);

    return 0;
}
