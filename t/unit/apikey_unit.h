
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A minimal test harness for the C unit tests: every check counts as one
 * test, a failure prints where and what, main() prints "N passed, N failed".
 */


#ifndef _NGX_HTTP_APIKEY_UNIT_H_INCLUDED_
#define _NGX_HTTP_APIKEY_UNIT_H_INCLUDED_


#include <stdio.h>
#include <string.h>


extern unsigned  ngx_http_apikey_unit_passed;
extern unsigned  ngx_http_apikey_unit_failed;


#define ngx_http_apikey_unit_ok(cond, name)                                   \
    ngx_http_apikey_unit_result(!!(cond), __FILE__, __LINE__, name)

#define ngx_http_apikey_unit_is_int(got, expected, name)                      \
    ngx_http_apikey_unit_int(got, expected, __FILE__, __LINE__, name)

#define ngx_http_apikey_unit_is_str(got, expected, name)                      \
    ngx_http_apikey_unit_str(got, expected, __FILE__, __LINE__, name)


int ngx_http_apikey_unit_result(int ok, const char *file, int line,
    const char *name);
int ngx_http_apikey_unit_int(long long got, long long expected,
    const char *file, int line, const char *name);
int ngx_http_apikey_unit_str(const char *got, const char *expected,
    const char *file, int line, const char *name);

void ngx_http_apikey_unit_key(void);
void ngx_http_apikey_unit_time(void);
void ngx_http_apikey_unit_cli(void);
void ngx_http_apikey_unit_siphash(void);
void ngx_http_apikey_unit_policy(void);
void ngx_http_apikey_unit_tx(void);
void ngx_http_apikey_unit_slot(void);


#endif /* _NGX_HTTP_APIKEY_UNIT_H_INCLUDED_ */
