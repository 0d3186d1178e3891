
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_wait.h"


void
ngx_http_apikey_wait_init(ngx_http_apikey_wait_t *wait)
{
    ngx_queue_init(&wait->waiters);
    wait->completing = 0;
}


void
ngx_http_apikey_wait_add(ngx_http_apikey_wait_t *wait, ngx_queue_t *waiter)
{
    ngx_queue_insert_tail(&wait->waiters, waiter);
}


/*
 * NGX_OK: others still wait, the first of them is the list's head;
 * NGX_DONE: it was the last one, the lookup is the caller's to end;
 * NGX_BUSY: the list is being completed, the completer ends the lookup.
 */

ngx_int_t
ngx_http_apikey_wait_leave(ngx_http_apikey_wait_t *wait, ngx_queue_t *waiter)
{
    ngx_queue_remove(waiter);

    if (wait->completing) {
        return NGX_BUSY;
    }

    return ngx_queue_empty(&wait->waiters) ? NGX_DONE : NGX_OK;
}


/*
 * Each waiter leaves the list before it is woken, and the head is taken
 * again after every wake-up: a wake-up may make any other waiter leave.
 */

void
ngx_http_apikey_wait_complete(ngx_http_apikey_wait_t *wait,
    ngx_http_apikey_wake_pt wake)
{
    ngx_queue_t  *waiter;

    wait->completing = 1;

    while (!ngx_queue_empty(&wait->waiters)) {
        waiter = ngx_queue_head(&wait->waiters);
        ngx_queue_remove(waiter);

        wake(waiter);
    }
}
