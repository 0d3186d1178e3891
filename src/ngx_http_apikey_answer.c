
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_apikey_answer.h"
#include "ngx_http_apikey_ctx.h"


typedef enum {
    NGX_HTTP_APIKEY_CHALLENGE_NONE = 0,
    NGX_HTTP_APIKEY_CHALLENGE_REALM,
    NGX_HTTP_APIKEY_CHALLENGE_ERROR,
    NGX_HTTP_APIKEY_CHALLENGE_SCOPE
} ngx_http_apikey_challenge_e;


typedef struct {
    ngx_str_t                        name;
    ngx_uint_t                       code;
    ngx_http_apikey_challenge_e      challenge;
    ngx_str_t                        error;
    ngx_str_t                        body;
} ngx_http_apikey_answer_t;


static ngx_uint_t ngx_http_apikey_answer_error_page(ngx_http_request_t *r,
    ngx_uint_t code);
static ngx_int_t ngx_http_apikey_answer_delay(ngx_http_request_t *r,
    ngx_http_core_loc_conf_t *clcf);
static void ngx_http_apikey_answer_delayed(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_answer_send(ngx_http_request_t *r,
    ngx_http_apikey_answer_t *answer);


#define ngx_http_apikey_answer_entry(name, code, challenge, error, text)     \
    { ngx_null_string, code, NGX_HTTP_APIKEY_CHALLENGE_##challenge,          \
      ngx_string(error),                                                     \
      ngx_string("{\"error\":\"" error "\","                                 \
                 "\"error_description\":\"" text "\"}\n") }

/*
 * Indexed by ngx_http_apikey_status_e.  Unknown, expired and revoked keys
 * get the very same answer: which of them it was is for the error log and
 * $apikey_status only.  The names ($apikey_status) are the policy's, which
 * the apikey tool prints too: ngx_http_apikey_answer_init() sets them; the
 * first argument of each entry says which it is.
 */

static ngx_http_apikey_answer_t  ngx_http_apikey_answers[] = {

    /* ok */
    { ngx_null_string, NGX_OK, NGX_HTTP_APIKEY_CHALLENGE_NONE,
      ngx_null_string, ngx_null_string },

    /* the challenge of a request without credentials names no error */
    ngx_http_apikey_answer_entry("missing", NGX_HTTP_UNAUTHORIZED, REALM,
                                 "unauthorized", "API key required"),

    ngx_http_apikey_answer_entry("malformed", NGX_HTTP_BAD_REQUEST, ERROR,
                                 "invalid_request",
                                 "malformed Authorization header"),

    ngx_http_apikey_answer_entry("invalid", NGX_HTTP_UNAUTHORIZED, ERROR,
                                 "invalid_token", "invalid API key"),

    ngx_http_apikey_answer_entry("expired", NGX_HTTP_UNAUTHORIZED, ERROR,
                                 "invalid_token", "invalid API key"),

    ngx_http_apikey_answer_entry("revoked", NGX_HTTP_UNAUTHORIZED, ERROR,
                                 "invalid_token", "invalid API key"),

    ngx_http_apikey_answer_entry("insufficient_scope", NGX_HTTP_FORBIDDEN,
                                 SCOPE, "insufficient_scope",
                                 "API key lacks a required scope"),

    /* a key of another organisation learns nothing of the scopes here */
    ngx_http_apikey_answer_entry("org_mismatch", NGX_HTTP_FORBIDDEN, ERROR,
                                 "insufficient_scope",
                                 "API key not valid for this organisation"),

    /* Retry-After and the RateLimit fields: ngx_http_apikey_ratelimit.c */
    ngx_http_apikey_answer_entry("rate_limited", NGX_HTTP_TOO_MANY_REQUESTS,
                                 NONE, "rate_limited",
                                 "API key rate limit exceeded"),

    /* the token is fine: no challenge, as no other token would do */
    ngx_http_apikey_answer_entry("ip_not_allowed", NGX_HTTP_FORBIDDEN, NONE,
                                 "ip_not_allowed",
                                 "client address not allowed for this "
                                 "API key"),

    /* not the client's fault: no challenge, but a hint to come back */
    ngx_http_apikey_answer_entry("error", NGX_HTTP_SERVICE_UNAVAILABLE, NONE,
                                 "temporarily_unavailable",
                                 "API key store unavailable")
};


void
ngx_http_apikey_answer_init(void)
{
    const char  *name;
    ngx_uint_t   i;

    for (i = 0; i < NGX_HTTP_APIKEY_NSTATUS; i++) {
        name = ngx_http_apikey_policy_status_name(i);

        ngx_http_apikey_answers[i].name.data = (u_char *) name;
        ngx_http_apikey_answers[i].name.len = ngx_strlen(name);
    }
}


ngx_str_t *
ngx_http_apikey_answer_name(ngx_http_apikey_status_e status)
{
    return &ngx_http_apikey_answers[status].name;
}


/* the WWW-Authenticate values of a location, made once at configuration */

ngx_int_t
ngx_http_apikey_answer_challenges(ngx_conf_t *cf,
    ngx_http_apikey_loc_conf_t *alcf)
{
    u_char                    *p;
    size_t                     len;
    ngx_str_t                 *challenge, *scope;
    ngx_uint_t                 i, s;
    ngx_http_apikey_answer_t  *answer;

    alcf->challenges = ngx_pcalloc(cf->pool,
                                   NGX_HTTP_APIKEY_NSTATUS * sizeof(ngx_str_t));
    if (alcf->challenges == NULL) {
        return NGX_ERROR;
    }

    for (s = 0; s < NGX_HTTP_APIKEY_NSTATUS; s++) {
        answer = &ngx_http_apikey_answers[s];
        challenge = &alcf->challenges[s];

        if (answer->challenge == NGX_HTTP_APIKEY_CHALLENGE_NONE) {
            continue;
        }

        len = sizeof("Bearer realm=\"\"") - 1 + alcf->realm.len
              + sizeof(", error=\"\"") - 1 + answer->error.len
              + sizeof(", scope=\"\"") - 1;

        if (answer->challenge == NGX_HTTP_APIKEY_CHALLENGE_SCOPE
            && alcf->scopes)
        {
            scope = alcf->scopes->elts;

            for (i = 0; i < alcf->scopes->nelts; i++) {
                len += scope[i].len + 1;
            }
        }

        challenge->data = ngx_pnalloc(cf->pool, len);
        if (challenge->data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(challenge->data, "Bearer realm=\"%V\"", &alcf->realm);

        if (answer->challenge != NGX_HTTP_APIKEY_CHALLENGE_REALM) {
            p = ngx_sprintf(p, ", error=\"%V\"", &answer->error);
        }

        if (answer->challenge == NGX_HTTP_APIKEY_CHALLENGE_SCOPE
            && alcf->scopes)
        {
            p = ngx_cpymem(p, ", scope=\"", sizeof(", scope=\"") - 1);
            scope = alcf->scopes->elts;

            for (i = 0; i < alcf->scopes->nelts; i++) {
                if (i) {
                    *p++ = ' ';
                }

                p = ngx_cpymem(p, scope[i].data, scope[i].len);
            }

            *p++ = '"';
        }

        challenge->len = p - challenge->data;
    }

    return NGX_OK;
}


/*
 * The refusal of a status other than ok: sent here, or left to the core
 * module (its "satisfy any" and error_page handling) by returning the
 * HTTP status.
 */

ngx_int_t
ngx_http_apikey_answer(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_status_e status)
{
    ngx_table_elt_t           *h;
    ngx_http_apikey_answer_t  *answer;
    ngx_http_core_loc_conf_t  *clcf;

    answer = &ngx_http_apikey_answers[status];

    if (answer->challenge != NGX_HTTP_APIKEY_CHALLENGE_NONE) {
        h = r->headers_out.www_authenticate;

        if (h == NULL) {
            h = ngx_list_push(&r->headers_out.headers);
            if (h == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_str_set(&h->key, "WWW-Authenticate");
#if (nginx_version >= 1023000)
            h->next = NULL;
#endif
            r->headers_out.www_authenticate = h;
        }

        h->hash = 1;
        h->value = alcf->challenges[status];
    }

    if (answer->code == NGX_HTTP_SERVICE_UNAVAILABLE) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "1");
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /*
     * Under "satisfy any" another access module may still let the request
     * through: the core module answers if none does.
     */

    if ((clcf->satisfy == NGX_HTTP_SATISFY_ANY
         && (answer->code == NGX_HTTP_UNAUTHORIZED
             || answer->code == NGX_HTTP_FORBIDDEN))
        || ngx_http_apikey_answer_error_page(r, answer->code))
    {
        return answer->code;
    }

    if (answer->code == NGX_HTTP_UNAUTHORIZED && clcf->auth_delay) {
        return ngx_http_apikey_answer_delay(r, clcf);
    }

    return ngx_http_apikey_answer_send(r, answer);
}


/*
 * auth_delay, as ngx_http_core_auth_delay() applies it to a 401 returned
 * to the core module: that one would answer with nginx's own page, so the
 * module delays its own answer the same way.
 */

static ngx_int_t
ngx_http_apikey_answer_delay(ngx_http_request_t *r,
    ngx_http_core_loc_conf_t *clcf)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "delaying unauthorized request");

    if (r->connection->read->ready) {
        ngx_post_event(r->connection->read, &ngx_posted_events);

    } else {
        if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_apikey_answer_delayed;

    r->connection->write->delayed = 1;
    ngx_add_timer(r->connection->write, clcf->auth_delay);

    /* one more turn of the event loop, for constant time, as nginx does */
    ngx_post_event(r->connection->write, &ngx_posted_next_events);

    return NGX_DONE;
}


static void
ngx_http_apikey_answer_delayed(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_event_t            *wev;
    ngx_http_apikey_ctx_t  *ctx;

    wev = r->connection->write;

    if (wev->delayed) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    ctx = ngx_http_apikey_ctx_get(r);

    rc = ngx_http_apikey_answer_send(r, &ngx_http_apikey_answers[ctx->status]);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/* as ngx_http_special_response_handler() would choose */

static ngx_uint_t
ngx_http_apikey_answer_error_page(ngx_http_request_t *r, ngx_uint_t code)
{
    ngx_uint_t                 i;
    ngx_http_err_page_t       *err_page;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->error_pages == NULL
        || r->uri_changes == 0
        || (r->error_page && !clcf->recursive_error_pages))
    {
        return 0;
    }

    err_page = clcf->error_pages->elts;

    for (i = 0; i < clcf->error_pages->nelts; i++) {
        if (err_page[i].status == (ngx_int_t) code) {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_apikey_answer_send(ngx_http_request_t *r,
    ngx_http_apikey_answer_t *answer)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = answer->body.data;
    b->last = answer->body.data + answer->body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    r->headers_out.status = answer->code;
    r->headers_out.content_length_n = answer->body.len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));

    return NGX_DONE;
}
