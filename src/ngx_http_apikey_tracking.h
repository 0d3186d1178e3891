
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The invalidation subscription that keeps the cache right: on each
 * cached source, every worker holds its own connection in Redis
 * client-side tracking BCAST mode, subscribed to __redis__:invalidate,
 * and drops an entry from the shared zone as soon as its record is
 * written.  Any one live worker is enough: a stopped or killed worker
 * costs no revocation its milliseconds.
 */


#ifndef _NGX_HTTP_APIKEY_TRACKING_H_INCLUDED_
#define _NGX_HTTP_APIKEY_TRACKING_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey.h"


ngx_int_t ngx_http_apikey_tracking_init_process(ngx_cycle_t *cycle,
    ngx_http_apikey_main_conf_t *amcf);


#endif /* _NGX_HTTP_APIKEY_TRACKING_H_INCLUDED_ */
