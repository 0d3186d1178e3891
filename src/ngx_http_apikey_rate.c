
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The rate and burst fields: plain C, no nginx header.
 */


#include "ngx_http_apikey_rate.h"


static int ngx_http_apikey_rate_number(const unsigned char *p,
    const unsigned char *last, uint32_t max, uint32_t *n);


int
ngx_http_apikey_rate_parse(const unsigned char *value, size_t len,
    ngx_http_apikey_rate_t *rate)
{
    uint32_t  n, period;

    /* the shortest rate is "1r/s" */

    if (len < sizeof("1r/s") - 1
        || value[len - 3] != 'r'
        || value[len - 2] != '/')
    {
        return -1;
    }

    switch (value[len - 1]) {

    case 's':
        period = 1;
        break;

    case 'm':
        period = 60;
        break;

    default:
        return -1;
    }

    if (ngx_http_apikey_rate_number(value, value + len - 3,
                                    NGX_HTTP_APIKEY_RATE_MAX, &n)
        != 0
        || n == 0)
    {
        return -1;
    }

    /* a refused value leaves *rate as it was */

    rate->requests = n;
    rate->period = period;

    return 0;
}


int
ngx_http_apikey_rate_burst(const unsigned char *value, size_t len,
    uint32_t *burst)
{
    return ngx_http_apikey_rate_number(value, value + len,
                                       NGX_HTTP_APIKEY_BURST_MAX, burst);
}


/* digits only: no sign, no spaces, nothing a reader would guess at */

static int
ngx_http_apikey_rate_number(const unsigned char *p,
    const unsigned char *last, uint32_t max, uint32_t *n)
{
    uint32_t  value;

    if (p == last) {
        return -1;
    }

    value = 0;

    for ( /* void */ ; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        value = value * 10 + (*p - '0');

        if (value > max) {
            return -1;
        }
    }

    *n = value;

    return 0;
}
