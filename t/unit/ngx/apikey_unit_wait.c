
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The waiters of a lookup (src/ngx_http_apikey_wait.c), built against the
 * configured nginx tree's headers: the sequences where waking one request
 * makes others go away, as an HTTP/2 connection torn down by one stream's
 * answer finalises its other streams.  A lookup ended by anyone but its
 * completer while it completes would be used after it was freed.
 */


#include <stdio.h>
#include <stdlib.h>

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_apikey_wait.h"


typedef struct ngx_http_apikey_unit_waiter_s  ngx_http_apikey_unit_waiter_t;

typedef struct {
    ngx_http_apikey_wait_t           wait;
} ngx_http_apikey_unit_lookup_t;

struct ngx_http_apikey_unit_waiter_s {
    ngx_queue_t                      queue;
    ngx_http_apikey_unit_lookup_t   *in_flight;
    ngx_uint_t                       woken;

    /* the waiters this one's wake-up finalises */
    ngx_http_apikey_unit_waiter_t   *finalises[3];
};


static ngx_http_apikey_unit_lookup_t *ngx_http_apikey_unit_lookup(
    ngx_http_apikey_unit_waiter_t *w, ngx_uint_t n);
static void ngx_http_apikey_unit_cancel(ngx_http_apikey_unit_waiter_t *w);
static void ngx_http_apikey_unit_wake(ngx_queue_t *waiter);
static void ngx_http_apikey_unit_complete(ngx_http_apikey_unit_lookup_t *l);
static void ngx_http_apikey_unit_check(int ok, int line, const char *what);


static ngx_uint_t  ngx_http_apikey_unit_ended;
static ngx_uint_t  ngx_http_apikey_unit_failed;
static ngx_uint_t  ngx_http_apikey_unit_passed;


#define check(ok, what)  ngx_http_apikey_unit_check(ok, __LINE__, what)


int
main(void)
{
    ngx_http_apikey_unit_lookup_t  *l;
    ngx_http_apikey_unit_waiter_t   w[3];

    /* A's wake-up finalises B, the last one still waiting */

    l = ngx_http_apikey_unit_lookup(w, 2);
    w[0].finalises[0] = &w[1];
    ngx_http_apikey_unit_complete(l);

    check(w[0].woken == 1, "A woken once");
    check(w[1].woken == 0, "B, gone, not woken");
    check(ngx_http_apikey_unit_ended == 1, "the lookup ended once, by "
          "its completer");

    /* A's wake-up finalises C, B still waits: B is woken, C is not */

    l = ngx_http_apikey_unit_lookup(w, 3);
    w[0].finalises[0] = &w[2];
    ngx_http_apikey_unit_complete(l);

    check(w[0].woken == 1 && w[1].woken == 1 && w[2].woken == 0,
          "A and B woken, C not");
    check(ngx_http_apikey_unit_ended == 1, "the lookup ended once");

    /* A's wake-up finalises B and C, and A itself */

    l = ngx_http_apikey_unit_lookup(w, 3);
    w[0].finalises[0] = &w[1];
    w[0].finalises[1] = &w[2];
    w[0].finalises[2] = &w[0];
    ngx_http_apikey_unit_complete(l);

    check(w[0].woken == 1 && w[1].woken == 0 && w[2].woken == 0,
          "A woken, B and C not");
    check(ngx_http_apikey_unit_ended == 1, "the lookup ended once");

    /* B's wake-up finalises A, woken already */

    l = ngx_http_apikey_unit_lookup(w, 2);
    w[1].finalises[0] = &w[0];
    ngx_http_apikey_unit_complete(l);

    check(w[0].woken == 1 && w[1].woken == 1, "A and B woken");
    check(ngx_http_apikey_unit_ended == 1, "the lookup ended once");

    /* no completion: the last waiter to go ends the lookup */

    l = ngx_http_apikey_unit_lookup(w, 2);
    ngx_http_apikey_unit_cancel(&w[0]);
    check(ngx_http_apikey_unit_ended == 0, "B still waits: the lookup goes "
          "on");
    ngx_http_apikey_unit_cancel(&w[1]);
    check(ngx_http_apikey_unit_ended == 1, "the last one gone: it ends");

    printf("wait: %lu passed, %lu failed\n",
           (unsigned long) ngx_http_apikey_unit_passed,
           (unsigned long) ngx_http_apikey_unit_failed);

    return ngx_http_apikey_unit_failed ? 1 : 0;
}


/* a lookup on the heap, so that AddressSanitizer sees a use after free */

static ngx_http_apikey_unit_lookup_t *
ngx_http_apikey_unit_lookup(ngx_http_apikey_unit_waiter_t *w, ngx_uint_t n)
{
    ngx_uint_t                      i;
    ngx_http_apikey_unit_lookup_t  *l;

    l = malloc(sizeof(ngx_http_apikey_unit_lookup_t));
    if (l == NULL) {
        exit(2);
    }

    ngx_http_apikey_wait_init(&l->wait);
    ngx_http_apikey_unit_ended = 0;

    for (i = 0; i < 3; i++) {
        ngx_memzero(&w[i], sizeof(ngx_http_apikey_unit_waiter_t));
    }

    for (i = 0; i < n; i++) {
        w[i].in_flight = l;
        ngx_http_apikey_wait_add(&l->wait, &w[i].queue);
    }

    return l;
}


/* as ngx_http_apikey_lookup_cancel() does, from a request's cleanup */

static void
ngx_http_apikey_unit_cancel(ngx_http_apikey_unit_waiter_t *w)
{
    ngx_http_apikey_unit_lookup_t  *l;

    l = w->in_flight;

    if (l == NULL) {
        return;
    }

    w->in_flight = NULL;

    if (ngx_http_apikey_wait_leave(&l->wait, &w->queue) == NGX_DONE) {
        ngx_http_apikey_unit_ended++;
        free(l);
    }
}


static void
ngx_http_apikey_unit_wake(ngx_queue_t *waiter)
{
    ngx_uint_t                      i;
    ngx_http_apikey_unit_waiter_t  *w;

    w = ngx_queue_data(waiter, ngx_http_apikey_unit_waiter_t, queue);
    w->in_flight = NULL;
    w->woken++;

    for (i = 0; i < 3; i++) {
        if (w->finalises[i]) {
            ngx_http_apikey_unit_cancel(w->finalises[i]);
        }
    }
}


/* as ngx_http_apikey_lookup_done() does */

static void
ngx_http_apikey_unit_complete(ngx_http_apikey_unit_lookup_t *l)
{
    ngx_http_apikey_wait_complete(&l->wait, ngx_http_apikey_unit_wake);

    ngx_http_apikey_unit_ended++;
    free(l);
}


static void
ngx_http_apikey_unit_check(int ok, int line, const char *what)
{
    if (ok) {
        ngx_http_apikey_unit_passed++;
        return;
    }

    ngx_http_apikey_unit_failed++;
    printf("FAIL t/unit/ngx/apikey_unit_wait.c:%d: %s\n", line, what);
}
