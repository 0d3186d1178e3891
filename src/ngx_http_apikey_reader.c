
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The hiredis reader every Redis connection of the module parses with,
 * and its cap on arrays; a file of its own so that the reply fuzzer links
 * it alone.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_redis.h"


static void *ngx_http_apikey_redis_create_array(const redisReadTask *task,
    int elements);


static redisReplyObjectFunctions    ngx_http_apikey_redis_functions;
static void                      *(*ngx_http_apikey_redis_array)(
                                       const redisReadTask *task,
                                       int elements);


/*
 * hiredis allocates the element table of an array as soon as it reads
 * its header: "*2147483647\r\n" alone would cost gigabytes and seconds of
 * a blocked worker.  Arrays larger than the reader was made for are
 * refused before that (the reader reports it as out of memory).
 */

redisReader *
ngx_http_apikey_redis_reader(ngx_uint_t elements)
{
    redisReader  *reader;

    reader = redisReaderCreate();
    if (reader == NULL) {
        return NULL;
    }

    if (ngx_http_apikey_redis_array == NULL) {
        ngx_http_apikey_redis_functions = *reader->fn;
        ngx_http_apikey_redis_array = reader->fn->createArray;
        ngx_http_apikey_redis_functions.createArray =
                                           ngx_http_apikey_redis_create_array;
    }

    reader->fn = &ngx_http_apikey_redis_functions;
    reader->privdata = (void *) elements;

    return reader;
}


static void *
ngx_http_apikey_redis_create_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || (ngx_uint_t) elements > (ngx_uint_t) task->privdata) {
        return NULL;
    }

    return ngx_http_apikey_redis_array(task, elements);
}
