
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * libFuzzer target: the admin API's request body to the record fields it
 * writes (src/ngx_http_apikey_admin_body.c), and the key object written
 * back as JSON (src/ngx_http_apikey_object.c).  The first byte chooses
 * the kind of body (create, update, rotate), the rest is the body.
 * Besides memory errors, it checks what the parser promises: an accepted
 * body gives a name of 1 to 1,024 bytes without control characters,
 * valid scopes, no expiry in the past, an even list of fields of which
 * none is NULL; a refused one leaves a description and no memory behind;
 * and the JSON written for the result is JSON, whatever the body held.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_apikey_admin_body.h"
#include "ngx_http_apikey_object.h"


/* a fixed clock: the expiry checks must not depend on when it runs */
#define NGX_HTTP_APIKEY_FUZZ_NOW  1750000000


typedef struct {
    char    *data;
    size_t   len;
    size_t   size;
} ngx_http_apikey_fuzz_buf_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
ngx_http_apikey_fuzz_out(void *data, const char *p, size_t len)
{
    ngx_http_apikey_fuzz_buf_t  *b = data;

    if (b->len + len > b->size) {
        b->size = 2 * (b->len + len);
        b->data = realloc(b->data, b->size);

        if (b->data == NULL) {
            abort();
        }
    }

    memcpy(b->data + b->len, p, len);
    b->len += len;
}


static void
ngx_http_apikey_fuzz_check_scopes(const char *scopes)
{
    const char  *p, *space;

    if (scopes == NULL) {
        return;
    }

    for (p = scopes; *p; p = space + 1) {
        space = strchr(p, ' ');

        if (space == NULL) {
            space = p + strlen(p);
        }

        if (!ngx_http_apikey_object_word_valid(p, space - p)) {
            abort();
        }

        if (*space == '\0') {
            break;
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                              kind;
    char                            *body;
    size_t                           i;
    json_t                          *back;
    json_error_t                     error;
    ngx_http_apikey_object_t         obj;
    ngx_http_apikey_fuzz_buf_t       out;
    ngx_http_apikey_admin_edit_t     edit;
    ngx_http_apikey_object_fields_t  fields;

    if (size == 0) {
        return 0;
    }

    kind = data[0] % 3;

    /* an exact-size copy: a read past the body is caught */
    body = malloc(size - 1 ? size - 1 : 1);
    if (body == NULL) {
        return 0;
    }

    memcpy(body, data + 1, size - 1);

    if (ngx_http_apikey_admin_body_parse(body, size - 1, kind,
                                         NGX_HTTP_APIKEY_FUZZ_NOW, &edit)
        != 0)
    {
        if (edit.err[0] == '\0' || edit.name || edit.scopes || edit.org) {
            abort();
        }

        free(body);
        return 0;
    }

    if (kind == NGX_HTTP_APIKEY_ADMIN_CREATE && !edit.has_name) {
        abort();
    }

    if (edit.has_name
        && (strlen(edit.name) == 0
            || strlen(edit.name) > NGX_HTTP_APIKEY_OBJECT_NAME_MAX
            || !ngx_http_apikey_object_text_valid(edit.name,
                                                  strlen(edit.name))))
    {
        abort();
    }

    if (edit.has_expiry && edit.expires_at != 0
        && edit.expires_at <= NGX_HTTP_APIKEY_FUZZ_NOW)
    {
        abort();
    }

    ngx_http_apikey_fuzz_check_scopes(edit.scopes);

    memset(&obj, 0, sizeof(ngx_http_apikey_object_t));
    obj.id = strdup("k_fuzzfuzzfuzz");
    obj.hint = strdup("fuzz");
    obj.prefix = strdup("ak_");
    obj.org = edit.org ? strdup(edit.org) : NULL;
    obj.created_at = NGX_HTTP_APIKEY_FUZZ_NOW;

    ngx_http_apikey_admin_body_apply(&edit, &obj, &fields);

    if (kind == NGX_HTTP_APIKEY_ADMIN_CREATE) {
        ngx_http_apikey_object_fields(&obj, &fields);
    }

    if (fields.n % 2 || fields.n > 2 * NGX_HTTP_APIKEY_OBJECT_FIELDS_MAX) {
        abort();
    }

    for (i = 0; i < fields.n; i++) {
        if (fields.argv[i] == NULL
            || strlen(fields.argv[i]) != fields.argvlen[i])
        {
            abort();
        }
    }

    memset(&out, 0, sizeof(ngx_http_apikey_fuzz_buf_t));

    ngx_http_apikey_object_json(&obj, "ak_key", NGX_HTTP_APIKEY_FUZZ_NOW,
                                ngx_http_apikey_fuzz_out, &out);

    back = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, &error);
    if (back == NULL || !json_is_object(back)) {
        abort();
    }

    json_decref(back);
    free(out.data);

    ngx_http_apikey_object_free(&obj);
    ngx_http_apikey_admin_body_free(&edit);
    free(body);

    return 0;
}
