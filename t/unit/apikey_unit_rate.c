
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A key's "rate" and "burst" fields (src/ngx_http_apikey_rate.c), which
 * the module enforces and "apikey create --rate" checks: what is a rate,
 * and what, failing closed, is not.
 */


#include "ngx_http_apikey_rate.h"
#include "apikey_unit.h"


static void ngx_http_apikey_unit_rate_parse(void);
static void ngx_http_apikey_unit_rate_burst(void);


void
ngx_http_apikey_unit_rate(void)
{
    ngx_http_apikey_unit_rate_parse();
    ngx_http_apikey_unit_rate_burst();
}


static void
ngx_http_apikey_unit_rate_parse(void)
{
    int                     rc;
    size_t                  i;
    char                    name[256];
    ngx_http_apikey_rate_t  rate;

    static const struct {
        const char  *value;
        int          rc;
        uint32_t     requests;
        uint32_t     period;
    } rows[] = {
        { "1r/s", 0, 1, 1 },
        { "100r/s", 0, 100, 1 },
        { "6000r/m", 0, 6000, 60 },
        { "1r/m", 0, 1, 60 },
        { "007r/s", 0, 7, 1 },
        { "1000000r/s", 0, 1000000, 1 },
        { "1000001r/s", -1, 0, 0 },
        { "99999999999999999999r/s", -1, 0, 0 },
        { "4294967297r/s", -1, 0, 0 },
        { "0r/s", -1, 0, 0 },
        { "r/s", -1, 0, 0 },
        { "", -1, 0, 0 },
        { "1", -1, 0, 0 },
        { "1r/", -1, 0, 0 },
        { "1r/h", -1, 0, 0 },
        { "1r/S", -1, 0, 0 },
        { "1R/s", -1, 0, 0 },
        { "1rs", -1, 0, 0 },
        { "10", -1, 0, 0 },
        { "-1r/s", -1, 0, 0 },
        { "+1r/s", -1, 0, 0 },
        { " 1r/s", -1, 0, 0 },
        { "1r/s ", -1, 0, 0 },
        { "1 r/s", -1, 0, 0 },
        { "1.5r/s", -1, 0, 0 },
        { "1r/s/s", -1, 0, 0 },
        { "1r/sr/s", -1, 0, 0 },
        { "100/s", -1, 0, 0 },
        { "0x10r/s", -1, 0, 0 },
    };

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        rate.requests = 0;
        rate.period = 0;

        rc = ngx_http_apikey_rate_parse((const unsigned char *) rows[i].value,
                                        strlen(rows[i].value), &rate);

        snprintf(name, sizeof(name), "rate \"%s\"", rows[i].value);
        ngx_http_apikey_unit_is_int(rc, rows[i].rc, name);

        if (rc != 0) {
            snprintf(name, sizeof(name), "rate \"%s\" refused: *rate as it "
                     "was", rows[i].value);
            ngx_http_apikey_unit_ok(rate.requests == 0 && rate.period == 0,
                                    name);
        }

        if (rc == 0) {
            snprintf(name, sizeof(name), "rate \"%s\": requests",
                     rows[i].value);
            ngx_http_apikey_unit_is_int(rate.requests, rows[i].requests,
                                        name);

            snprintf(name, sizeof(name), "rate \"%s\": period",
                     rows[i].value);
            ngx_http_apikey_unit_is_int(rate.period, rows[i].period, name);
        }
    }

    /* a value is bytes and a length, not a C string */

    rc = ngx_http_apikey_rate_parse((const unsigned char *) "5r/sXX", 4,
                                    &rate);
    ngx_http_apikey_unit_is_int(rc, 0, "rate reads its length only");
    ngx_http_apikey_unit_is_int(rate.requests, 5, "rate of a prefix");

    rc = ngx_http_apikey_rate_parse((const unsigned char *) "5\0/s", 4,
                                    &rate);
    ngx_http_apikey_unit_is_int(rc, -1, "rate with a NUL");
}


static void
ngx_http_apikey_unit_rate_burst(void)
{
    int       rc;
    size_t    i;
    char      name[256];
    uint32_t  burst;

    static const struct {
        const char  *value;
        int          rc;
        uint32_t     burst;
    } rows[] = {
        { "0", 0, 0 },
        { "5", 0, 5 },
        { "1000000", 0, 1000000 },
        { "1000001", -1, 0 },
        { "4294967296", -1, 0 },
        { "", -1, 0 },
        { "-1", -1, 0 },
        { "+1", -1, 0 },
        { " 1", -1, 0 },
        { "1 ", -1, 0 },
        { "1.0", -1, 0 },
        { "five", -1, 0 },
    };

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        burst = 12345;

        rc = ngx_http_apikey_rate_burst((const unsigned char *) rows[i].value,
                                        strlen(rows[i].value), &burst);

        snprintf(name, sizeof(name), "burst \"%s\"", rows[i].value);
        ngx_http_apikey_unit_is_int(rc, rows[i].rc, name);

        if (rc == 0) {
            ngx_http_apikey_unit_is_int(burst, rows[i].burst, name);

        } else {
            ngx_http_apikey_unit_is_int(burst, 12345,
                                        "a refused burst leaves *burst");
        }
    }
}
