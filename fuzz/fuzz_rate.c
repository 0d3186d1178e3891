
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * libFuzzer target: a record's "rate" and "burst" fields, read by
 * ngx_http_apikey_rate_parse() and ngx_http_apikey_rate_burst() of the
 * shared parser, fed the field value as Redis hands it over (bytes and a
 * length, no NUL).  Besides memory errors, it checks each answer against a
 * plain reading of the grammar (docs/redis-schema.md): a rate is digits,
 * then "r/s" or "r/m", its number from 1 to NGX_HTTP_APIKEY_RATE_MAX; a
 * burst is digits only, from 0 to NGX_HTTP_APIKEY_BURST_MAX; nothing else
 * is either, and a refused value leaves the output alone.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_apikey_rate.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* digits from p to last as a number, capped above max; -1 if none */

static int64_t
ngx_http_apikey_fuzz_digits(const uint8_t *p, const uint8_t *last,
    uint64_t max)
{
    uint64_t  n;

    if (p == last) {
        return -1;
    }

    for (n = 0; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        if (n <= max) {
            n = n * 10 + (*p - '0');
        }
    }

    return (int64_t) (n > max ? max + 1 : n);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     rc;
    int64_t                 n;
    uint8_t                *copy;
    uint32_t                burst, period;
    ngx_http_apikey_rate_t  rate;

    /* an exact-size copy: a read past the value is caught */
    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    /* the rate */

    rate.requests = 0xdeadbeef;
    rate.period = 0xdeadbeef;

    rc = ngx_http_apikey_rate_parse(copy, size, &rate);

    n = -1;
    period = 0;

    if (size >= 4 && copy[size - 3] == 'r' && copy[size - 2] == '/'
        && (copy[size - 1] == 's' || copy[size - 1] == 'm'))
    {
        n = ngx_http_apikey_fuzz_digits(copy, copy + size - 3,
                                        NGX_HTTP_APIKEY_RATE_MAX);
        period = (copy[size - 1] == 's') ? 1 : 60;
    }

    if (n >= 1 && n <= NGX_HTTP_APIKEY_RATE_MAX) {
        if (rc != 0 || rate.requests != n || rate.period != period) {
            abort();
        }

    } else if (rc != -1 || rate.requests != 0xdeadbeef
               || rate.period != 0xdeadbeef)
    {
        abort();
    }

    /* the burst */

    burst = 0xdeadbeef;

    rc = ngx_http_apikey_rate_burst(copy, size, &burst);

    n = ngx_http_apikey_fuzz_digits(copy, copy + size,
                                    NGX_HTTP_APIKEY_BURST_MAX);

    if (n >= 0 && n <= NGX_HTTP_APIKEY_BURST_MAX) {
        if (rc != 0 || burst != n) {
            abort();
        }

    } else if (rc != -1 || burst != 0xdeadbeef) {
        abort();
    }

    free(copy);

    return 0;
}
