
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * What each status means to a client and to the logs: its $apikey_status
 * name, its HTTP status, its RFC 6750 error, description and challenge.
 */


#ifndef _NGX_HTTP_APIKEY_ANSWER_H_INCLUDED_
#define _NGX_HTTP_APIKEY_ANSWER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


void ngx_http_apikey_answer_init(void);
ngx_str_t *ngx_http_apikey_answer_name(ngx_http_apikey_status_e status);
ngx_int_t ngx_http_apikey_answer_challenges(ngx_conf_t *cf,
    ngx_http_apikey_loc_conf_t *alcf);
ngx_int_t ngx_http_apikey_answer(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_status_e status);


#endif /* _NGX_HTTP_APIKEY_ANSWER_H_INCLUDED_ */
