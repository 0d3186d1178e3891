
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A key's own rate limit as its record writes it (docs/redis-schema.md):
 * the "rate" and "burst" fields.  No nginx header: the module, the apikey
 * tool and the unit tests read them with this one parser.
 */


#ifndef _NGX_HTTP_APIKEY_RATE_H_INCLUDED_
#define _NGX_HTTP_APIKEY_RATE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * Bounds that keep the leaky bucket's milli-request arithmetic far from
 * overflow; no API sells more.
 */
#define NGX_HTTP_APIKEY_RATE_MAX   1000000
#define NGX_HTTP_APIKEY_BURST_MAX  1000000


typedef struct {
    uint32_t  requests;        /* 0: no limit */
    uint32_t  period;          /* seconds: 1 or 60 */
} ngx_http_apikey_rate_t;


/*
 * "Nr/s" or "Nr/m" as limit_req writes a rate, N a whole number from 1 to
 * NGX_HTTP_APIKEY_RATE_MAX: 0 and the rate in *rate, or -1.
 */
int ngx_http_apikey_rate_parse(const unsigned char *value, size_t len,
    ngx_http_apikey_rate_t *rate);

/*
 * A burst: a whole number of requests from 0 to NGX_HTTP_APIKEY_BURST_MAX;
 * 0 and the number in *burst, or -1.
 */
int ngx_http_apikey_rate_burst(const unsigned char *value, size_t len,
    uint32_t *burst);


#endif /* _NGX_HTTP_APIKEY_RATE_H_INCLUDED_ */
