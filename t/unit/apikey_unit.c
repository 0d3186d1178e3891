
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include "apikey_unit.h"


unsigned  ngx_http_apikey_unit_passed;
unsigned  ngx_http_apikey_unit_failed;


int
main(void)
{
    ngx_http_apikey_unit_key();
    ngx_http_apikey_unit_policy();
    ngx_http_apikey_unit_time();
    ngx_http_apikey_unit_cli();
    ngx_http_apikey_unit_siphash();
    ngx_http_apikey_unit_tx();
    ngx_http_apikey_unit_slot();

    printf("%u passed, %u failed\n",
           ngx_http_apikey_unit_passed, ngx_http_apikey_unit_failed);

    return ngx_http_apikey_unit_failed ? 1 : 0;
}


int
ngx_http_apikey_unit_result(int ok, const char *file, int line,
    const char *name)
{
    if (ok) {
        ngx_http_apikey_unit_passed++;
        return 1;
    }

    ngx_http_apikey_unit_failed++;
    printf("FAIL %s:%d: %s\n", file, line, name);

    return 0;
}


int
ngx_http_apikey_unit_int(long long got, long long expected, const char *file,
    int line, const char *name)
{
    if (ngx_http_apikey_unit_result(got == expected, file, line, name)) {
        return 1;
    }

    printf("     got %lld, expected %lld\n", got, expected);

    return 0;
}


int
ngx_http_apikey_unit_str(const char *got, const char *expected,
    const char *file, int line, const char *name)
{
    int  ok;

    ok = got != NULL && strcmp(got, expected) == 0;

    if (ngx_http_apikey_unit_result(ok, file, line, name)) {
        return 1;
    }

    printf("     got \"%s\", expected \"%s\"\n", got ? got : "(null)",
           expected);

    return 0;
}
