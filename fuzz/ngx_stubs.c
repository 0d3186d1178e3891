
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Just enough of nginx's core for the module's pure functions to run in a
 * fuzzer: nginx-dev ships headers only.  Compiled against the headers of
 * the configured tree (build/nginx) so that every type is nginx's own.
 *
 * Pools hand out one malloc() block per allocation, so that AddressSanitizer
 * sees the exact bounds of each; the log formats the arguments the module
 * passes (%V, %*s, %s read their bytes) and throws the text away.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


static u_char *ngx_http_apikey_fuzz_format(u_char *buf, u_char *last,
    const char *fmt, va_list args);


volatile ngx_cycle_t  *ngx_cycle;
ngx_uint_t             ngx_pagesize = 4096;

/* what the module's headers declare and the targets may reach */
volatile ngx_msec_t    ngx_current_msec;
ngx_rbtree_t           ngx_event_timer_rbtree;
ngx_queue_t            ngx_posted_events;
ngx_uint_t             ngx_exiting;
sig_atomic_t           ngx_terminate;


ngx_pool_t *
ngx_create_pool(size_t size, ngx_log_t *log)
{
    ngx_pool_t  *pool;

    pool = calloc(1, sizeof(ngx_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->log = log;

    return pool;
}


void
ngx_destroy_pool(ngx_pool_t *pool)
{
    ngx_pool_large_t  *l, *next;

    for (l = pool->large; l; l = next) {
        next = l->next;
        free(l->alloc);
        free(l);
    }

    free(pool);
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    ngx_pool_large_t  *l;

    l = malloc(sizeof(ngx_pool_large_t));
    if (l == NULL) {
        return NULL;
    }

    /* malloc(0) may return NULL: nginx's pools never do */
    l->alloc = malloc(size ? size : 1);
    if (l->alloc == NULL) {
        free(l);
        return NULL;
    }

    l->next = pool->large;
    pool->large = l;

    return l->alloc;
}


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    return ngx_pnalloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_pnalloc(pool, size);
    if (p) {
        ngx_memzero(p, size);
    }

    return p;
}


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    return malloc(size);
}


void *
ngx_calloc(size_t size, ngx_log_t *log)
{
    return calloc(1, size);
}


/* as nginx's src/core/ngx_string.c */

ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    ngx_uint_t  c1, c2;

    while (n) {
        c1 = (ngx_uint_t) *s1++;
        c2 = (ngx_uint_t) *s2++;

        c1 = (c1 >= 'A' && c1 <= 'Z') ? (c1 | 0x20) : c1;
        c2 = (c2 >= 'A' && c2 <= 'Z') ? (c2 | 0x20) : c2;

        if (c1 == c2) {

            if (c1) {
                n--;
                continue;
            }

            return 0;
        }

        return c1 - c2;
    }

    return 0;
}


/* as nginx's src/core/ngx_string.c */

time_t
ngx_atotm(u_char *line, size_t n)
{
    time_t  value, cutoff, cutlim;

    if (n == 0) {
        return NGX_ERROR;
    }

    cutoff = NGX_MAX_TIME_T_VALUE / 10;
    cutlim = NGX_MAX_TIME_T_VALUE % 10;

    for (value = 0; n--; line++) {
        if (*line < '0' || *line > '9') {
            return NGX_ERROR;
        }

        if (value >= cutoff && (value > cutoff || *line - '0' > cutlim)) {
            return NGX_ERROR;
        }

        value = value * 10 + (*line - '0');
    }

    return value;
}


/*
 * Linked, never called: the fuzzers reach no connection, configuration
 * or timer code.  A call would be a fuzzer bug.
 */

#define ngx_http_apikey_fuzz_unreachable()                                  \
    fprintf(stderr, "fuzz stub: %s called\n", __func__);                  \
    abort()

ngx_int_t
ngx_event_connect_peer(ngx_peer_connection_t *pc)
{
    ngx_http_apikey_fuzz_unreachable();
}


ngx_int_t
ngx_event_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_apikey_fuzz_unreachable();
}


void
ngx_close_connection(ngx_connection_t *c)
{
    ngx_http_apikey_fuzz_unreachable();
}


ngx_int_t
ngx_handle_read_event(ngx_event_t *rev, ngx_uint_t flags)
{
    ngx_http_apikey_fuzz_unreachable();
}


ngx_int_t
ngx_handle_write_event(ngx_event_t *wev, size_t lowat)
{
    ngx_http_apikey_fuzz_unreachable();
}


ngx_int_t
ngx_parse_url(ngx_pool_t *pool, ngx_url_t *u)
{
    ngx_http_apikey_fuzz_unreachable();
}


void
ngx_conf_log_error(ngx_uint_t level, ngx_conf_t *cf, ngx_err_t err,
    const char *fmt, ...)
{
    ngx_http_apikey_fuzz_unreachable();
}


void *
ngx_array_push(ngx_array_t *a)
{
    ngx_http_apikey_fuzz_unreachable();
}


ngx_int_t
ngx_atoi(u_char *line, size_t n)
{
    ngx_http_apikey_fuzz_unreachable();
}


void
ngx_explicit_memzero(void *buf, size_t n)
{
    ngx_http_apikey_fuzz_unreachable();
}


void
ngx_rbtree_insert(ngx_rbtree_t *tree, ngx_rbtree_node_t *node)
{
    ngx_http_apikey_fuzz_unreachable();
}


void
ngx_rbtree_delete(ngx_rbtree_t *tree, ngx_rbtree_node_t *node)
{
    ngx_http_apikey_fuzz_unreachable();
}


/* the request-level entry points are not fuzzed: no query string here */

ngx_int_t
ngx_http_arg(ngx_http_request_t *r, u_char *name, size_t len,
    ngx_str_t *value)
{
    return NGX_DECLINED;
}


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
    u_char   buf[NGX_MAX_ERROR_STR];
    va_list  args;

    va_start(args, fmt);
    (void) ngx_http_apikey_fuzz_format(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    if (getenv("APIKEY_FUZZ_LOG")) {
        fprintf(stderr, "[log %u] %s\n", (unsigned) level, buf);
    }
}


u_char *
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_http_apikey_fuzz_format(buf, (u_char *) -1, fmt, args);
    va_end(args);

    return p;
}


u_char *
ngx_snprintf(u_char *buf, size_t max, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_http_apikey_fuzz_format(buf, buf + max, fmt, args);
    va_end(args);

    return p;
}


/*
 * The subset of ngx_vslprintf() the module uses: %V, %*s, %s, %c, %%, and
 * integers with the z, u, i, d, T, p and x flags.  Strings are copied
 * byte by byte, so that a wrong length is caught where it is read.
 */

static u_char *
ngx_http_apikey_fuzz_format(u_char *buf, u_char *last, const char *fmt,
    va_list args)
{
    int         n;
    char        num[32];
    u_char     *s;
    size_t      len, i;
    ngx_str_t  *v;
    ngx_uint_t  star, sz, usign;

    while (*fmt && buf < last - 1) {

        if (*fmt != '%') {
            *buf++ = *fmt++;
            continue;
        }

        fmt++;
        star = 0;
        sz = 0;
        usign = 0;
        len = 0;

        for ( ;; ) {
            if (*fmt == '*') {
                star = 1;
                len = va_arg(args, size_t);
                fmt++;

            } else if (*fmt == 'z') {
                sz = 1;
                fmt++;

            } else if (*fmt == 'u') {
                usign = 1;
                fmt++;

            } else if (*fmt == 'x' || *fmt == 'X' || *fmt == '0'
                       || (*fmt >= '1' && *fmt <= '9'))
            {
                fmt++;

            } else {
                break;
            }
        }

        switch (*fmt) {

        case 'V':
            v = va_arg(args, ngx_str_t *);
            for (i = 0; i < v->len && buf < last - 1; i++) {
                *buf++ = v->data[i];
            }
            break;

        case 's':
            s = va_arg(args, u_char *);
            if (star) {
                for (i = 0; i < len && buf < last - 1; i++) {
                    *buf++ = s[i];
                }

            } else {
                while (*s && buf < last - 1) {
                    *buf++ = *s++;
                }
            }
            break;

        case 'c':
            *buf++ = (u_char) va_arg(args, int);
            break;

        case 'p':
            n = snprintf(num, sizeof(num), "%p", va_arg(args, void *));
            goto number;

        case 'T':
            n = snprintf(num, sizeof(num), "%lld",
                         (long long) va_arg(args, time_t));
            goto number;

        case 'O':
            n = snprintf(num, sizeof(num), "%lld",
                         (long long) va_arg(args, off_t));
            goto number;

        case 'M':
            n = snprintf(num, sizeof(num), "%llu",
                         (unsigned long long) va_arg(args, ngx_msec_t));
            goto number;

        case 'd':
            n = usign ? snprintf(num, sizeof(num), "%u",
                                 va_arg(args, unsigned int))
                      : snprintf(num, sizeof(num), "%d", va_arg(args, int));
            goto number;

        case 'i':
            n = usign ? snprintf(num, sizeof(num), "%llu",
                           (unsigned long long) va_arg(args, ngx_uint_t))
                      : snprintf(num, sizeof(num), "%lld",
                           (long long) va_arg(args, ngx_int_t));
            goto number;

        case 'l':
        case 'D':
            n = snprintf(num, sizeof(num), "%ld", va_arg(args, long));
            goto number;

        default:
            if (sz) {
                n = usign ? snprintf(num, sizeof(num), "%zu",
                                     va_arg(args, size_t))
                          : snprintf(num, sizeof(num), "%zd",
                                     va_arg(args, ssize_t));
                fmt--;
                goto number;
            }

            *buf++ = *fmt;
            break;

        number:
            for (i = 0; i < (size_t) n && buf < last - 1; i++) {
                *buf++ = num[i];
            }
        }

        if (*fmt) {
            fmt++;
        }
    }

    if (last != (u_char *) -1) {
        *buf = '\0';
    }

    return buf;
}
