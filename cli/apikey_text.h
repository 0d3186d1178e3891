
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Text for the apikey tool: UTF-8 checks, JSON strings, aligned tables.
 */


#ifndef _APIKEY_TEXT_H_INCLUDED_
#define _APIKEY_TEXT_H_INCLUDED_


#include <stddef.h>
#include <stdio.h>


typedef struct {
    size_t    ncols;
    size_t    nrows;
    size_t    nalloc;
    char    **cells;
} apikey_table_t;


/*
 * 1 if s is valid UTF-8 without control characters (C0, DEL), else 0:
 * what a name may hold, since the module passes it on in a header.
 */
int apikey_text_valid(const char *s);

/*
 * 1 if s is 1 to 255 printable ASCII characters without spaces, else 0:
 * what an id, an org or a scope may hold.
 */
int apikey_word_valid(const char *s);

/*
 * Writes s as a JSON string with its quotes, or null if s is NULL;
 * invalid UTF-8 becomes U+FFFD.
 */
void apikey_json_string(FILE *f, const char *s);

void apikey_table_init(apikey_table_t *t, size_t ncols);
/* copies ncols strings; NULL or "" shows as "-"; returns 0 or -1 */
int apikey_table_add(apikey_table_t *t, const char *const *row);
/* columns two spaces apart, control characters shown as '?' */
void apikey_table_print(FILE *f, apikey_table_t *t);
void apikey_table_free(apikey_table_t *t);


#endif /* _APIKEY_TEXT_H_INCLUDED_ */
