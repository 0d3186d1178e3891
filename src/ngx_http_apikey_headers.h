
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * What the upstream sees of a protected request: the identity headers,
 * never a client's forgery of them, and no credentials unless asked.
 */


#ifndef _NGX_HTTP_APIKEY_HEADERS_H_INCLUDED_
#define _NGX_HTTP_APIKEY_HEADERS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


ngx_int_t ngx_http_apikey_headers_clean(ngx_http_request_t *r);

/* X-ApiKey-*, the module's own: removed from every protected request */
ngx_uint_t ngx_http_apikey_headers_identity_name(ngx_str_t *name);
ngx_int_t ngx_http_apikey_headers_identity(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_key_from_t *from,
    ngx_http_apikey_record_t *record);


#endif /* _NGX_HTTP_APIKEY_HEADERS_H_INCLUDED_ */
