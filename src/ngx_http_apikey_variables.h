
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * $apikey_id, $apikey_name, $apikey_org, $apikey_scopes,
 * $apikey_expires_at, $apikey_status, and $apikey_field_<name> for each
 * apikey_record_fields name.
 */


#ifndef _NGX_HTTP_APIKEY_VARIABLES_H_INCLUDED_
#define _NGX_HTTP_APIKEY_VARIABLES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


ngx_int_t ngx_http_apikey_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_apikey_add_field_variable(ngx_conf_t *cf, ngx_str_t *name,
    ngx_uint_t index);


#endif /* _NGX_HTTP_APIKEY_VARIABLES_H_INCLUDED_ */
