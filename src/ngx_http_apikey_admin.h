
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The admin API: a location that lists, creates, changes, revokes and
 * rotates keys over HTTP, writing the records and indexes of
 * docs/redis-schema.md through the module's own Redis client.
 */


#ifndef _NGX_HTTP_APIKEY_ADMIN_H_INCLUDED_
#define _NGX_HTTP_APIKEY_ADMIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


extern ngx_module_t  ngx_http_apikey_admin_module;


#endif /* _NGX_HTTP_APIKEY_ADMIN_H_INCLUDED_ */
