
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * apikey: manage the API keys of ngx_http_apikey_module in Redis.
 * (work in progress)
 */


#include <stdio.h>


int
main(void)
{
    fprintf(stderr, "apikey: not implemented yet\n");
    return 1;
}
