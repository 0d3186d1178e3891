
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Durations ("90m", "12h", "30d", "1d12h") and RFC 3339 times in UTC,
 * shared by the apikey tool and the module's admin API.  This file pair
 * includes no nginx header.
 */


#ifndef _NGX_HTTP_APIKEY_TIME_H_INCLUDED_
#define _NGX_HTTP_APIKEY_TIME_H_INCLUDED_


#include <stdint.h>


/* "2025-06-01T12:00:00Z" and its NUL */
#define NGX_HTTP_APIKEY_TIME_LEN       21

/* no duration or time beyond the year 9999 */
#define NGX_HTTP_APIKEY_TIME_MAX       253402300799LL


/*
 * Parses one or more <number><unit> pairs, unit s, m, h, d or w, or a bare
 * number of seconds.  Returns 0 and the seconds in *sec, or -1.
 */
int ngx_http_apikey_duration_parse(const char *s, int64_t *sec);

/*
 * Parses an RFC 3339 date-time ("2025-06-01T12:00:00Z",
 * "2025-06-01T14:00:00.5+02:00") or a full-date ("2025-06-01", midnight
 * UTC).  Returns 0 and unix seconds in *t, or -1.
 */
int ngx_http_apikey_time_parse(const char *s, int64_t *t);

/*
 * Writes t as "YYYY-MM-DDTHH:MM:SSZ" and a NUL into buf, which must hold
 * NGX_HTTP_APIKEY_TIME_LEN bytes.
 */
void ngx_http_apikey_time_format(int64_t t, char *buf);


#endif /* _NGX_HTTP_APIKEY_TIME_H_INCLUDED_ */
