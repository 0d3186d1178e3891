
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The policy: what a token must look like and what a key record allows,
 * shared by the nginx module and the apikey command-line tool so that
 * "apikey verify" and nginx can never disagree.  This file pair includes
 * no nginx header; the module's glue hands it bytes and lengths.
 */


#ifndef _NGX_HTTP_APIKEY_POLICY_H_INCLUDED_
#define _NGX_HTTP_APIKEY_POLICY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ngx_http_apikey_cidr.h"


/* longer tokens cannot be keys of ours: refused without a lookup */
#define NGX_HTTP_APIKEY_TOKEN_MAX  512


/* the order is that of $apikey_status and of the answers table */
typedef enum {
    NGX_HTTP_APIKEY_OK = 0,
    NGX_HTTP_APIKEY_MISSING,
    NGX_HTTP_APIKEY_MALFORMED,
    NGX_HTTP_APIKEY_INVALID,
    NGX_HTTP_APIKEY_EXPIRED,
    NGX_HTTP_APIKEY_REVOKED,
    NGX_HTTP_APIKEY_INSUFFICIENT_SCOPE,
    NGX_HTTP_APIKEY_ORG_MISMATCH,
    NGX_HTTP_APIKEY_RATE_LIMITED,
    NGX_HTTP_APIKEY_IP_NOT_ALLOWED,
    NGX_HTTP_APIKEY_ERROR
} ngx_http_apikey_status_e;

#define NGX_HTTP_APIKEY_NSTATUS  (NGX_HTTP_APIKEY_ERROR + 1)


/* what of a key record the policy reads */
typedef struct {
    const unsigned char           *org;
    size_t                         org_len;
    const unsigned char           *scopes;       /* space-separated */
    size_t                         scopes_len;
    int64_t                        expires_at;   /* 0: never */
    unsigned                       revoked:1;

    /*
     * The allowlist, as text (the tool) or parsed once (the module's
     * records: nnets networks, -1 if the list is malformed); neither: any
     * address.
     */
    const unsigned char           *cidrs;
    size_t                         cidrs_len;
    const ngx_http_apikey_cidr_t  *nets;
    int                            nnets;
} ngx_http_apikey_policy_key_t;


/* what a location requires */
typedef struct {
    const unsigned char           *org;         /* NULL: no apikey_org */
    size_t                         org_len;
    const unsigned char           *scopes;      /* space-separated, all */
    size_t                         scopes_len;

    /* the client address; NULL: none to check ("apikey verify") */
    const ngx_http_apikey_cidr_t  *client;
} ngx_http_apikey_policy_need_t;


/*
 * The decision on a found record, in this order: revoked, expired, client
 * address, organisation, scopes (a key of another organisation learns
 * nothing of the scopes here).  An empty organisation on either side
 * matches nothing.  A malformed "cidrs" makes the record invalid
 * (NGX_HTTP_APIKEY_INVALID) whoever asks: never "any address".
 */
ngx_http_apikey_status_e ngx_http_apikey_policy_check(
    const ngx_http_apikey_policy_key_t *key,
    const ngx_http_apikey_policy_need_t *need, int64_t now);

/*
 * 1 if the space-separated scopes grant required: "*" grants everything,
 * "read:*" every scope that starts with "read:".
 */
int ngx_http_apikey_policy_scope_granted(const unsigned char *scopes,
    size_t len, const unsigned char *required, size_t required_len);

/*
 * The next scope of a space-separated list from *p up to last: returns
 * its start and length, and moves *p past it; NULL when none is left.
 */
const unsigned char *ngx_http_apikey_policy_scope_next(
    const unsigned char **p, const unsigned char *last, size_t *len);

/*
 * The value of a record's "revoked" field: any non-empty value other
 * than "0" revokes, so that "true" or "yes" from another writer fails
 * closed.
 */
int ngx_http_apikey_policy_revoked(const unsigned char *value, size_t len);

/*
 * A bare token (RFC 6750 b64token: 1*b64token-char *"="):
 * NGX_HTTP_APIKEY_MALFORMED if it is not one, NGX_HTTP_APIKEY_INVALID if
 * longer than NGX_HTTP_APIKEY_TOKEN_MAX, else NGX_HTTP_APIKEY_OK.
 */
ngx_http_apikey_status_e ngx_http_apikey_policy_token(
    const unsigned char *token, size_t len);

/*
 * An Authorization header value, RFC 6750 section 2.1: "Bearer", one or
 * more spaces, a token running to the end.  NGX_HTTP_APIKEY_MISSING if the
 * scheme is another one; otherwise what ngx_http_apikey_policy_token()
 * says of the token, which starts at *start.
 */
ngx_http_apikey_status_e ngx_http_apikey_policy_bearer(
    const unsigned char *value, size_t len, size_t *start);

/*
 * 1 if name may name an extra record field (apikey_record_fields, the
 * tool's --field): 1 to NGX_HTTP_APIKEY_POLICY_FIELD_MAX lowercase letters,
 * digits or underscores, as it becomes part of a variable name, which
 * nginx reads case-insensitively.  Whether it is a field the module or the
 * tool reads itself is for each of them to say.
 */
#define NGX_HTTP_APIKEY_POLICY_FIELD_MAX  64

int ngx_http_apikey_policy_field_name(const unsigned char *name, size_t len);

/* the $apikey_status value of a status: "ok", "missing", ... */
const char *ngx_http_apikey_policy_status_name(
    ngx_http_apikey_status_e status);


#endif /* _NGX_HTTP_APIKEY_POLICY_H_INCLUDED_ */
