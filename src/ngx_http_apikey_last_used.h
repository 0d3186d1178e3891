
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Last use of a key, written to Redis at most once per interval per key
 * per worker, without waiting for the answer.
 */


#ifndef _NGX_HTTP_APIKEY_LAST_USED_H_INCLUDED_
#define _NGX_HTTP_APIKEY_LAST_USED_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


ngx_int_t ngx_http_apikey_last_used_init(ngx_cycle_t *cycle);
void ngx_http_apikey_last_used(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_record_t *record);


#endif /* _NGX_HTTP_APIKEY_LAST_USED_H_INCLUDED_ */
