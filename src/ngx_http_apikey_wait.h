
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The requests waiting for one lookup, and the rule that makes completing
 * it safe: while the completer wakes them one by one, a waiter that goes
 * away (even one finalised by another's wake-up) only leaves the list,
 * and the completer alone ends the lookup.
 */


#ifndef _NGX_HTTP_APIKEY_WAIT_H_INCLUDED_
#define _NGX_HTTP_APIKEY_WAIT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct {
    ngx_queue_t                      waiters;
    unsigned                         completing:1;
} ngx_http_apikey_wait_t;


typedef void (*ngx_http_apikey_wake_pt)(ngx_queue_t *waiter);


void ngx_http_apikey_wait_init(ngx_http_apikey_wait_t *wait);
void ngx_http_apikey_wait_add(ngx_http_apikey_wait_t *wait,
    ngx_queue_t *waiter);
ngx_int_t ngx_http_apikey_wait_leave(ngx_http_apikey_wait_t *wait,
    ngx_queue_t *waiter);
void ngx_http_apikey_wait_complete(ngx_http_apikey_wait_t *wait,
    ngx_http_apikey_wake_pt wake);


#endif /* _NGX_HTTP_APIKEY_WAIT_H_INCLUDED_ */
