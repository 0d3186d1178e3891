
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdio.h>

#include "ngx_http_apikey_time.h"


static int ngx_http_apikey_time_digits(const char **pp, int n);
static int64_t ngx_http_apikey_time_days(int64_t y, int m, int d);


int
ngx_http_apikey_duration_parse(const char *s, int64_t *sec)
{
    int64_t  n, total, unit;

    if (*s == '\0') {
        return -1;
    }

    total = 0;

    while (*s) {

        if (*s < '0' || *s > '9') {
            return -1;
        }

        n = 0;

        while (*s >= '0' && *s <= '9') {
            n = n * 10 + (*s++ - '0');

            if (n > NGX_HTTP_APIKEY_TIME_MAX) {
                return -1;
            }
        }

        switch (*s) {

        case '\0':
            if (total != 0) {
                /* "1h30" is ambiguous */
                return -1;
            }

            unit = 1;
            break;

        case 's':
            unit = 1;
            s++;
            break;

        case 'm':
            unit = 60;
            s++;
            break;

        case 'h':
            unit = 3600;
            s++;
            break;

        case 'd':
            unit = 86400;
            s++;
            break;

        case 'w':
            unit = 7 * 86400;
            s++;
            break;

        default:
            return -1;
        }

        if (n > (NGX_HTTP_APIKEY_TIME_MAX - total) / unit) {
            return -1;
        }

        total += n * unit;
    }

    *sec = total;

    return 0;
}


int
ngx_http_apikey_time_parse(const char *s, int64_t *t)
{
    int      year, month, day, hour, min, sec, mday, off, sign;
    int64_t  v;

    static const int  days[] = { 31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31 };

    year = ngx_http_apikey_time_digits(&s, 4);

    if (year < 1970 || *s++ != '-') {
        return -1;
    }

    month = ngx_http_apikey_time_digits(&s, 2);

    if (month < 1 || month > 12 || *s++ != '-') {
        return -1;
    }

    day = ngx_http_apikey_time_digits(&s, 2);

    mday = days[month - 1];

    if (month == 2
        && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
    {
        mday = 29;
    }

    if (day < 1 || day > mday) {
        return -1;
    }

    hour = 0;
    min = 0;
    sec = 0;
    off = 0;

    if (*s == '\0') {
        goto done;
    }

    /* RFC 3339, section 5.6: "T", or "t", or a space */

    if (*s != 'T' && *s != 't' && *s != ' ') {
        return -1;
    }

    s++;

    hour = ngx_http_apikey_time_digits(&s, 2);

    if (hour < 0 || hour > 23 || *s++ != ':') {
        return -1;
    }

    min = ngx_http_apikey_time_digits(&s, 2);

    if (min < 0 || min > 59 || *s++ != ':') {
        return -1;
    }

    /* 60 is a leap second */

    sec = ngx_http_apikey_time_digits(&s, 2);

    if (sec < 0 || sec > 60) {
        return -1;
    }

    if (*s == '.') {
        s++;

        if (*s < '0' || *s > '9') {
            return -1;
        }

        while (*s >= '0' && *s <= '9') {
            s++;
        }
    }

    switch (*s) {

    case 'Z':
    case 'z':
        s++;
        break;

    case '+':
    case '-':
        sign = (*s++ == '-') ? -1 : 1;

        off = ngx_http_apikey_time_digits(&s, 2);

        if (off < 0 || off > 23 || *s++ != ':') {
            return -1;
        }

        v = ngx_http_apikey_time_digits(&s, 2);

        if (v < 0 || v > 59) {
            return -1;
        }

        off = sign * (off * 3600 + (int) v * 60);
        break;

    default:
        return -1;
    }

    if (*s != '\0') {
        return -1;
    }

done:

    v = ngx_http_apikey_time_days(year, month, day) * 86400
        + hour * 3600 + min * 60 + sec - off;

    if (v < 0 || v > NGX_HTTP_APIKEY_TIME_MAX) {
        return -1;
    }

    *t = v;

    return 0;
}


void
ngx_http_apikey_time_format(int64_t t, char *buf)
{
    int64_t  days, secs, z, era, doe, yoe, doy, mp, y, m, d;

    if (t < 0) {
        t = 0;
    }

    if (t > NGX_HTTP_APIKEY_TIME_MAX) {
        t = NGX_HTTP_APIKEY_TIME_MAX;
    }

    days = t / 86400;
    secs = t % 86400;

    /* civil_from_days() by Howard Hinnant, for days since 1970-01-01 */

    z = days + 719468;
    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    /* the remainders only tell the compiler the widths */

    snprintf(buf, NGX_HTTP_APIKEY_TIME_LEN,
             "%04u-%02u-%02uT%02u:%02u:%02uZ",
             (unsigned) (y % 10000), (unsigned) (m % 100),
             (unsigned) (d % 100), (unsigned) (secs / 3600 % 100),
             (unsigned) (secs / 60 % 60), (unsigned) (secs % 60));
}


static int
ngx_http_apikey_time_digits(const char **pp, int n)
{
    int          v;
    const char  *p;

    p = *pp;
    v = 0;

    while (n--) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        v = v * 10 + (*p++ - '0');
    }

    *pp = p;

    return v;
}


/* days_from_civil() by Howard Hinnant: days since 1970-01-01 */

static int64_t
ngx_http_apikey_time_days(int64_t y, int m, int d)
{
    int64_t  era, yoe, doy, doe;

    y -= (m <= 2);
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}
