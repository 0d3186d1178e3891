
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * What a key record allows: not revoked, not expired, the location's
 * scopes, the location's organisation.
 */


#ifndef _NGX_HTTP_APIKEY_POLICY_H_INCLUDED_
#define _NGX_HTTP_APIKEY_POLICY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


ngx_http_apikey_status_e ngx_http_apikey_policy(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_record_t *record);
ngx_uint_t ngx_http_apikey_scope_granted(ngx_str_t *scopes,
    ngx_str_t *required);


#endif /* _NGX_HTTP_APIKEY_POLICY_H_INCLUDED_ */
