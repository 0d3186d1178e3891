
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Durations and RFC 3339 times; expected values from date -u -d ... +%s.
 */


#include <stdint.h>

#include "ngx_http_apikey_time.h"
#include "apikey_unit.h"


static void ngx_http_apikey_unit_duration(void);
static void ngx_http_apikey_unit_rfc3339(void);
static void ngx_http_apikey_unit_format(void);


void
ngx_http_apikey_unit_time(void)
{
    ngx_http_apikey_unit_duration();
    ngx_http_apikey_unit_rfc3339();
    ngx_http_apikey_unit_format();
}


static void
ngx_http_apikey_unit_duration(void)
{
    size_t   i;
    int64_t  sec;
    char     name[128];

    static const struct {
        const char  *s;
        int64_t      sec;
    } good[] = {
        { "2s", 2 },
        { "90m", 5400 },
        { "12h", 43200 },
        { "30d", 2592000 },
        { "1w", 604800 },
        { "0", 0 },
        { "0s", 0 },
        { "45", 45 },
        { "1d12h", 129600 },
        { "1h30m15s", 5415 },
        { "365d", 31536000 }
    };

    static const char  *bad[] = {
        "", "s", "-1s", "+1s", "1.5h", "1x", "1 h", " 1h", "1h ", "1H",
        "h1", "1h30", "1hh", "99999999999999999999s", "999999999999d"
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        sec = -1;
        snprintf(name, sizeof(name), "duration \"%s\"", good[i].s);

        if (ngx_http_apikey_unit_ok(
                ngx_http_apikey_duration_parse(good[i].s, &sec) == 0,
                name))
        {
            ngx_http_apikey_unit_is_int(sec, good[i].sec, name);
        }
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(name, sizeof(name), "duration \"%s\" is refused", bad[i]);
        ngx_http_apikey_unit_ok(
            ngx_http_apikey_duration_parse(bad[i], &sec) == -1, name);
    }
}


static void
ngx_http_apikey_unit_rfc3339(void)
{
    size_t   i;
    int64_t  t;
    char     name[128];

    static const struct {
        const char  *s;
        int64_t      t;
    } good[] = {
        { "1970-01-01T00:00:00Z", 0 },
        { "2025-06-01T12:00:00Z", 1748779200 },
        { "2025-06-01t12:00:00z", 1748779200 },
        { "2025-06-01 12:00:00Z", 1748779200 },
        { "2025-06-01T14:00:00+02:00", 1748779200 },
        { "2025-06-01T12:00:00.999Z", 1748779200 },
        { "2025-06-01T12:00:00-00:00", 1748779200 },
        { "2025-06-01T00:30:00-05:30", 1748757600 },
        { "2025-06-01", 1748736000 },
        { "2000-02-29T23:59:59Z", 951868799 },
        { "2024-12-31T23:59:59Z", 1735689599 },
        { "2016-12-31T23:59:60Z", 1483228800 },
        { "2038-01-19T03:14:08Z", 2147483648LL },
        { "9999-12-31T23:59:59Z", 253402300799LL }
    };

    static const char  *bad[] = {
        "", "2025", "2025-06", "2025-6-1", "25-06-01T12:00:00Z",
        "2025-13-01T00:00:00Z", "2025-00-01T00:00:00Z",
        "2025-06-31T00:00:00Z", "2025-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z", "1969-12-31T23:59:59Z",
        "2025-06-01T24:00:00Z", "2025-06-01T12:60:00Z",
        "2025-06-01T12:00:61Z", "2025-06-01T12:00:00",
        "2025-06-01T12:00Z", "2025-06-01T12:00:00.Z",
        "2025-06-01T12:00:00+0200", "2025-06-01T12:00:00+24:00",
        "2025-06-01T12:00:00Zjunk", "2025-06-01X12:00:00Z",
        "2025-06-01T", "1970-01-01T00:00:00+00:01", "yesterday"
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        t = -1;
        snprintf(name, sizeof(name), "time \"%s\"", good[i].s);

        if (ngx_http_apikey_unit_ok(
                ngx_http_apikey_time_parse(good[i].s, &t) == 0, name))
        {
            ngx_http_apikey_unit_is_int(t, good[i].t, name);
        }
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(name, sizeof(name), "time \"%s\" is refused", bad[i]);
        ngx_http_apikey_unit_ok(
            ngx_http_apikey_time_parse(bad[i], &t) == -1, name);
    }
}


static void
ngx_http_apikey_unit_format(void)
{
    int64_t  t, back;
    char     buf[NGX_HTTP_APIKEY_TIME_LEN];
    int      ok;

    ngx_http_apikey_time_format(0, buf);
    ngx_http_apikey_unit_is_str(buf, "1970-01-01T00:00:00Z", "format 0");

    ngx_http_apikey_time_format(1748779200, buf);
    ngx_http_apikey_unit_is_str(buf, "2025-06-01T12:00:00Z",
                                "format a time in 2025");

    ngx_http_apikey_time_format(951868799, buf);
    ngx_http_apikey_unit_is_str(buf, "2000-02-29T23:59:59Z",
                                "format a leap day");

    ngx_http_apikey_time_format(253402300799LL, buf);
    ngx_http_apikey_unit_is_str(buf, "9999-12-31T23:59:59Z",
                                "format the last second of 9999");

    /* format and parse agree over 400 years, one step of ~11.6 days */

    ok = 1;

    for (t = 0; t < 12622780800LL; t += 1000003) {
        ngx_http_apikey_time_format(t, buf);

        if (ngx_http_apikey_time_parse(buf, &back) != 0 || back != t) {
            ok = 0;
            printf("     round trip failed at %lld (%s)\n", (long long) t,
                   buf);
            break;
        }
    }

    ngx_http_apikey_unit_ok(ok, "format and parse round-trip");
}
