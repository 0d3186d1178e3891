
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apikey_text.h"


static size_t apikey_utf8_len(const unsigned char *p);
static size_t apikey_text_width(const char *s);


int
apikey_text_valid(const char *s)
{
    size_t                n;
    const unsigned char  *p;

    p = (const unsigned char *) s;

    while (*p) {

        if (*p < 0x20 || *p == 0x7f) {
            return 0;
        }

        n = apikey_utf8_len(p);

        if (n == 0) {
            return 0;
        }

        p += n;
    }

    return 1;
}


int
apikey_word_valid(const char *s)
{
    size_t  i;

    for (i = 0; s[i]; i++) {
        if (s[i] <= 0x20 || s[i] >= 0x7f) {
            return 0;
        }
    }

    return i > 0 && i < 256;
}


void
apikey_json_string(FILE *f, const char *s)
{
    if (s == NULL) {
        fputs("null", f);
        return;
    }

    apikey_json_string_n(f, s, strlen(s));
}


void
apikey_json_string_n(FILE *f, const char *s, size_t len)
{
    size_t                n;
    const unsigned char  *p, *last;

    p = (const unsigned char *) s;
    last = p + len;

    putc('"', f);

    while (p < last) {

        switch (*p) {

        case '"':
            fputs("\\\"", f);
            p++;
            continue;

        case '\\':
            fputs("\\\\", f);
            p++;
            continue;

        case '\n':
            fputs("\\n", f);
            p++;
            continue;

        case '\r':
            fputs("\\r", f);
            p++;
            continue;

        case '\t':
            fputs("\\t", f);
            p++;
            continue;
        }

        if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\u%04x", *p++);
            continue;
        }

        n = apikey_utf8_len(p);

        if (n == 0 || n > (size_t) (last - p)) {
            fputs("\\ufffd", f);
            p++;
            continue;
        }

        fwrite(p, 1, n, f);
        p += n;
    }

    putc('"', f);
}


void
apikey_table_init(apikey_table_t *t, size_t ncols)
{
    t->ncols = ncols;
    t->nrows = 0;
    t->nalloc = 0;
    t->cells = NULL;
}


int
apikey_table_add(apikey_table_t *t, const char *const *row)
{
    size_t  i, n;
    char  **cells, *s;

    if (t->nrows == t->nalloc) {
        n = t->nalloc ? t->nalloc * 2 : 16;

        cells = realloc(t->cells, n * t->ncols * sizeof(char *));
        if (cells == NULL) {
            return -1;
        }

        t->cells = cells;
        t->nalloc = n;
    }

    for (i = 0; i < t->ncols; i++) {
        s = strdup((row[i] && row[i][0]) ? row[i] : "-");

        if (s == NULL) {
            while (i--) {
                free(t->cells[t->nrows * t->ncols + i]);
            }

            return -1;
        }

        t->cells[t->nrows * t->ncols + i] = s;
    }

    t->nrows++;

    return 0;
}


void
apikey_table_print(FILE *f, apikey_table_t *t)
{
    size_t          r, c, w, *width;
    unsigned char  *p;

    width = calloc(t->ncols, sizeof(size_t));
    if (width == NULL) {
        return;
    }

    for (r = 0; r < t->nrows; r++) {
        for (c = 0; c < t->ncols; c++) {
            w = apikey_text_width(t->cells[r * t->ncols + c]);

            if (w > width[c]) {
                width[c] = w;
            }
        }
    }

    for (r = 0; r < t->nrows; r++) {
        for (c = 0; c < t->ncols; c++) {
            p = (unsigned char *) t->cells[r * t->ncols + c];

            /* a record written by another program may hold anything */

            for ( /* void */ ; *p; p++) {
                putc((*p < 0x20 || *p == 0x7f) ? '?' : *p, f);
            }

            if (c == t->ncols - 1) {
                break;
            }

            w = apikey_text_width(t->cells[r * t->ncols + c]);

            fprintf(f, "%*s", (int) (width[c] - w + 2), "");
        }

        putc('\n', f);
    }

    free(width);
}


void
apikey_table_free(apikey_table_t *t)
{
    size_t  i;

    /* a cell may hold a new key */

    for (i = 0; i < t->nrows * t->ncols; i++) {
        OPENSSL_cleanse(t->cells[i], strlen(t->cells[i]));
        free(t->cells[i]);
    }

    free(t->cells);

    t->cells = NULL;
    t->nrows = 0;
    t->nalloc = 0;
}


/* the length of the valid UTF-8 sequence at p, or 0 */

static size_t
apikey_utf8_len(const unsigned char *p)
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


static size_t
apikey_text_width(const char *s)
{
    size_t  w;

    for (w = 0; *s; s++) {
        if (((unsigned char) *s & 0xc0) != 0x80) {
            w++;
        }
    }

    return w;
}
