
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * libFuzzer target: the Authorization header parser,
 * ngx_http_apikey_token_parse(), fed the header value as nginx hands it
 * over.  Besides memory errors, it checks what the parser promises
 * (notes/behaviour.md): a token it accepts lies inside the value, runs to
 * its end, is 1*b64token *"=" and follows "Bearer" and one or more spaces;
 * a value that does not start with the Bearer scheme is "missing".
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"
#include "ngx_http_apikey_token.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
ngx_http_apikey_fuzz_b64token(u_char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~' || c == '+'
           || c == '/';
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                    *copy, *p;
    size_t                     i;
    ngx_str_t                  value, token;
    ngx_http_apikey_status_e   rc;

    /* an exact-size copy: a read past the value is caught */
    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    value.data = copy;
    value.len = size;
    token.data = NULL;
    token.len = 0;

    rc = ngx_http_apikey_token_parse(&value, &token);

    if (size < 6 || ngx_strncasecmp(copy, (u_char *) "bearer", 6) != 0) {
        if (rc != NGX_HTTP_APIKEY_MISSING) {
            abort();
        }
    }

    switch (rc) {

    case NGX_HTTP_APIKEY_OK:
        if (token.len == 0
            || token.data < copy + 7
            || token.data + token.len != copy + size
            || copy[6] != ' '
            || token.data[0] == '=')
        {
            abort();
        }

        for (p = copy + 6; p < token.data; p++) {
            if (*p != ' ') {
                abort();
            }
        }

        for (i = 0; i < token.len; i++) {
            if (!ngx_http_apikey_fuzz_b64token(token.data[i])) {
                break;
            }
        }

        for ( /* void */ ; i < token.len; i++) {
            if (token.data[i] != '=') {
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
