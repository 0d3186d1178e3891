
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ngx_http_apikey_object.h"
#include "apikey_text.h"


static void apikey_json_out(void *data, const char *p, size_t len);
static size_t apikey_text_width(const char *s);


int
apikey_text_valid(const char *s)
{
    return ngx_http_apikey_object_text_valid(s, strlen(s));
}


int
apikey_word_valid(const char *s)
{
    return ngx_http_apikey_object_word_valid(s, strlen(s));
}


void
apikey_json_string(FILE *f, const char *s)
{
    if (s == NULL) {
        fputs("null", f);
        return;
    }

    ngx_http_apikey_json_string(s, strlen(s), apikey_json_out, f);
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


static void
apikey_json_out(void *data, const char *p, size_t len)
{
    fwrite(p, 1, len, data);
}
