
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The shared policy (src/ngx_http_apikey_policy.c): the decision table
 * that the module and "apikey verify" both run, scope matching, the
 * revoked field, the token and Bearer syntax.  t/23-cli-policy.t runs the
 * same decision table through nginx and the tool.
 */


#include "ngx_http_apikey_policy.h"
#include "apikey_unit.h"


#define S(s)  (const unsigned char *) (s), sizeof(s) - 1


static void ngx_http_apikey_unit_policy_check(void);
static void ngx_http_apikey_unit_policy_cidrs(void);
static void ngx_http_apikey_unit_policy_scopes(void);
static void ngx_http_apikey_unit_policy_revoked(void);
static void ngx_http_apikey_unit_policy_token(void);
static void ngx_http_apikey_unit_policy_bearer(void);


void
ngx_http_apikey_unit_policy(void)
{
    ngx_http_apikey_unit_policy_check();
    ngx_http_apikey_unit_policy_cidrs();
    ngx_http_apikey_unit_policy_scopes();
    ngx_http_apikey_unit_policy_revoked();
    ngx_http_apikey_unit_policy_token();
    ngx_http_apikey_unit_policy_bearer();
}


static void
ngx_http_apikey_unit_policy_check(void)
{
    size_t                         i;
    char                           name[256];
    ngx_http_apikey_policy_key_t   key;
    ngx_http_apikey_policy_need_t  need;

    /* expires_at is relative to now = 1000; need_org NULL: no apikey_org */

    static const struct {
        int                        revoked;
        int64_t                    expires_at;
        const char                *org;
        const char                *scopes;
        const char                *need_org;
        const char                *need_scopes;
        ngx_http_apikey_status_e   status;
    } rows[] = {
        { 0, 0, "acme", "read:people", NULL, "", NGX_HTTP_APIKEY_OK },
        { 0, 0, "acme", "read:people", "acme", "read:people",
          NGX_HTTP_APIKEY_OK },
        { 0, 0, "acme", "read:people", "acme", "read:people write:people",
          NGX_HTTP_APIKEY_INSUFFICIENT_SCOPE },
        { 0, 0, "acme", "read:people", "other", "read:people",
          NGX_HTTP_APIKEY_ORG_MISMATCH },
        { 0, 0, "acme", "read:people", "", "", NGX_HTTP_APIKEY_ORG_MISMATCH },
        { 0, 0, "", "read:people", "", "", NGX_HTTP_APIKEY_ORG_MISMATCH },
        { 0, 0, NULL, "*", "acme", "", NGX_HTTP_APIKEY_ORG_MISMATCH },

        /* the organisation is checked before the scopes (defect 13) */
        { 0, 0, "acme", "read:people", "other", "write:people",
          NGX_HTTP_APIKEY_ORG_MISMATCH },

        { 0, 1000, "acme", "*", NULL, "", NGX_HTTP_APIKEY_EXPIRED },
        { 0, 999, "acme", "*", NULL, "", NGX_HTTP_APIKEY_EXPIRED },
        { 0, 1001, "acme", "*", NULL, "", NGX_HTTP_APIKEY_OK },
        { 0, 999, "acme", "", "other", "admin", NGX_HTTP_APIKEY_EXPIRED },
        { 1, 0, "acme", "*", NULL, "", NGX_HTTP_APIKEY_REVOKED },
        { 1, 999, "acme", "", "other", "admin", NGX_HTTP_APIKEY_REVOKED },
        { 0, 0, "acme", "*", "acme", "admin:workspace read:x",
          NGX_HTTP_APIKEY_OK },
        { 0, 0, "acme", "read:*", "acme", "read:x write:x",
          NGX_HTTP_APIKEY_INSUFFICIENT_SCOPE },
        { 0, 0, "acme", NULL, NULL, "read:x",
          NGX_HTTP_APIKEY_INSUFFICIENT_SCOPE }
    };

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        key.revoked = rows[i].revoked;
        key.expires_at = rows[i].expires_at;
        key.org = (const unsigned char *) rows[i].org;
        key.org_len = rows[i].org ? strlen(rows[i].org) : 0;
        key.scopes = (const unsigned char *) rows[i].scopes;
        key.scopes_len = rows[i].scopes ? strlen(rows[i].scopes) : 0;
        key.cidrs = NULL;
        key.cidrs_len = 0;
        key.nets = NULL;
        key.nnets = 0;

        need.client = NULL;
        need.org = (const unsigned char *) rows[i].need_org;
        need.org_len = rows[i].need_org ? strlen(rows[i].need_org) : 0;
        need.scopes = (const unsigned char *) rows[i].need_scopes;
        need.scopes_len = strlen(rows[i].need_scopes);

        snprintf(name, sizeof(name),
                 "revoked %d, expires_at %lld, org \"%s\", scopes \"%s\"; "
                 "location org \"%s\", scopes \"%s\": %s",
                 rows[i].revoked, (long long) rows[i].expires_at,
                 rows[i].org ? rows[i].org : "(none)",
                 rows[i].scopes ? rows[i].scopes : "(none)",
                 rows[i].need_org ? rows[i].need_org : "(none)",
                 rows[i].need_scopes,
                 ngx_http_apikey_policy_status_name(rows[i].status));

        ngx_http_apikey_unit_is_str(
            ngx_http_apikey_policy_status_name(
                ngx_http_apikey_policy_check(&key, &need, 1000)),
            ngx_http_apikey_policy_status_name(rows[i].status), name);
    }

    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_policy_status_name(NGX_HTTP_APIKEY_ERROR), "error",
        "the last status has a name");
}


/*
 * The client address comes after revoked and expired, before the
 * organisation; a malformed list is an invalid key, client or not.
 */

static void
ngx_http_apikey_unit_policy_cidrs(void)
{
    size_t                         i;
    unsigned char                  bytes[4] = { 203, 0, 113, 9 };
    ngx_http_apikey_cidr_t         client, nets[4];
    ngx_http_apikey_policy_key_t   key;
    ngx_http_apikey_policy_need_t  need;

    static const struct {
        int                        revoked;
        int64_t                    expires_at;
        const char                *cidrs;
        const char                *need_org;
        int                        with_client;
        ngx_http_apikey_status_e   status;
    } rows[] = {
        { 0, 0, "203.0.113.0/24", NULL, 1, NGX_HTTP_APIKEY_OK },
        { 0, 0, "198.51.100.0/24", NULL, 1, NGX_HTTP_APIKEY_IP_NOT_ALLOWED },
        { 1, 0, "198.51.100.0/24", NULL, 1, NGX_HTTP_APIKEY_REVOKED },
        { 0, 999, "198.51.100.0/24", NULL, 1, NGX_HTTP_APIKEY_EXPIRED },
        { 0, 0, "198.51.100.0/24", "other", 1,
          NGX_HTTP_APIKEY_IP_NOT_ALLOWED },
        { 0, 0, "203.0.113.0/24", "other", 1, NGX_HTTP_APIKEY_ORG_MISMATCH },
        { 0, 0, "203.0.113.0/24 bogus", NULL, 1, NGX_HTTP_APIKEY_INVALID },
        { 1, 0, "bogus", NULL, 1, NGX_HTTP_APIKEY_REVOKED },
        { 0, 0, "bogus", NULL, 0, NGX_HTTP_APIKEY_INVALID },
        { 0, 0, "198.51.100.0/24", NULL, 0, NGX_HTTP_APIKEY_OK },
        { 0, 0, "", NULL, 1, NGX_HTTP_APIKEY_OK },
    };

    ngx_http_apikey_cidr_address(&client, 4, bytes);

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        memset(&key, 0, sizeof(ngx_http_apikey_policy_key_t));
        memset(&need, 0, sizeof(ngx_http_apikey_policy_need_t));

        key.org = (const unsigned char *) "acme";
        key.org_len = 4;
        key.revoked = rows[i].revoked;
        key.expires_at = rows[i].expires_at;
        key.cidrs = (const unsigned char *) rows[i].cidrs;
        key.cidrs_len = strlen(rows[i].cidrs);

        need.org = (const unsigned char *) rows[i].need_org;
        need.org_len = rows[i].need_org ? strlen(rows[i].need_org) : 0;
        need.client = rows[i].with_client ? &client : NULL;

        ngx_http_apikey_unit_is_str(
            ngx_http_apikey_policy_status_name(
                ngx_http_apikey_policy_check(&key, &need, 1000)),
            ngx_http_apikey_policy_status_name(rows[i].status),
            rows[i].cidrs);

        /* the same list parsed once, as the module's records hold it */

        key.cidrs = NULL;
        key.cidrs_len = 0;
        key.nets = nets;
        key.nnets = (ngx_http_apikey_cidr_count(
                         (const unsigned char *) rows[i].cidrs,
                         strlen(rows[i].cidrs))
                     <= 4)
                    ? ngx_http_apikey_cidr_list(
                          (const unsigned char *) rows[i].cidrs,
                          strlen(rows[i].cidrs), nets)
                    : -1;

        if (rows[i].cidrs[0] == '\0') {
            key.nnets = 0;      /* no field: no list */
        }

        ngx_http_apikey_unit_is_str(
            ngx_http_apikey_policy_status_name(
                ngx_http_apikey_policy_check(&key, &need, 1000)),
            ngx_http_apikey_policy_status_name(rows[i].status),
            rows[i].cidrs);
    }
}


static void
ngx_http_apikey_unit_policy_scopes(void)
{
    size_t                i, n, len;
    char                  name[160];
    const unsigned char  *p, *last;

    static const struct {
        const char  *scopes;
        const char  *required;
        int          granted;
    } vectors[] = {
        { "read:people", "read:people", 1 },
        { "read:people write:people", "write:people", 1 },
        { "  read:people   write:people ", "write:people", 1 },
        { "read:people", "write:people", 0 },
        { "read:people", "read:peoples", 0 },
        { "read:peoples", "read:people", 0 },
        { "read:people", "read", 0 },
        { "*", "admin:workspace", 1 },
        { "read:*", "read:people", 1 },
        { "read:*", "read:", 1 },
        { "read:*", "write:people", 0 },
        { "read:*", "read", 0 },
        { "", "read:people", 0 },
        { "   ", "read:people", 0 }
    };

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        snprintf(name, sizeof(name), "scopes \"%s\" %s \"%s\"",
                 vectors[i].scopes, vectors[i].granted ? "grant" : "deny",
                 vectors[i].required);

        ngx_http_apikey_unit_is_int(
            ngx_http_apikey_policy_scope_granted(
                (const unsigned char *) vectors[i].scopes,
                strlen(vectors[i].scopes),
                (const unsigned char *) vectors[i].required,
                strlen(vectors[i].required)),
            vectors[i].granted, name);
    }

    ngx_http_apikey_unit_ok(
        !ngx_http_apikey_policy_scope_granted(NULL, 0, S("read:people")),
        "a key without scopes is granted nothing");

    p = (const unsigned char *) "  a bb  ccc ";
    last = p + 12;
    n = 0;

    while (ngx_http_apikey_policy_scope_next(&p, last, &len) != NULL) {
        n = n * 10 + len;
    }

    ngx_http_apikey_unit_is_int(n, 123, "scopes split at spaces");
}


static void
ngx_http_apikey_unit_policy_revoked(void)
{
    ngx_http_apikey_unit_ok(ngx_http_apikey_policy_revoked(S("1")),
                            "revoked \"1\" is revoked");
    ngx_http_apikey_unit_ok(ngx_http_apikey_policy_revoked(S("true")),
                            "revoked \"true\" is revoked");
    ngx_http_apikey_unit_ok(ngx_http_apikey_policy_revoked(S("yes")),
                            "revoked \"yes\" is revoked");
    ngx_http_apikey_unit_ok(ngx_http_apikey_policy_revoked(S("2")),
                            "revoked \"2\" is revoked");
    ngx_http_apikey_unit_ok(ngx_http_apikey_policy_revoked(S("00")),
                            "revoked \"00\" is revoked");
    ngx_http_apikey_unit_ok(ngx_http_apikey_policy_revoked(S(" 0")),
                            "revoked \" 0\" is revoked");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_policy_revoked(S("0")),
                            "revoked \"0\" is not revoked");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_policy_revoked(S("")),
                            "an empty revoked is not revoked");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_policy_revoked(NULL, 0),
                            "no revoked field is not revoked");
}


static void
ngx_http_apikey_unit_policy_token(void)
{
    size_t         i;
    unsigned char  big[NGX_HTTP_APIKEY_TOKEN_MAX + 1];

    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_policy_token(S("ak_abc-._~+/==")),
        NGX_HTTP_APIKEY_OK, "b64token characters and padding");
    ngx_http_apikey_unit_is_int(ngx_http_apikey_policy_token(S("")),
                                NGX_HTTP_APIKEY_MALFORMED,
                                "an empty token is malformed");
    ngx_http_apikey_unit_is_int(ngx_http_apikey_policy_token(S("=abc")),
                                NGX_HTTP_APIKEY_MALFORMED,
                                "a token starting with = is malformed");
    ngx_http_apikey_unit_is_int(ngx_http_apikey_policy_token(S("ab=c")),
                                NGX_HTTP_APIKEY_MALFORMED,
                                "= only at the end");
    ngx_http_apikey_unit_is_int(ngx_http_apikey_policy_token(S("ab c")),
                                NGX_HTTP_APIKEY_MALFORMED,
                                "a space is malformed");
    ngx_http_apikey_unit_is_int(ngx_http_apikey_policy_token(S("ab\"c")),
                                NGX_HTTP_APIKEY_MALFORMED,
                                "a quote is malformed");

    for (i = 0; i < sizeof(big); i++) {
        big[i] = 'a';
    }

    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_policy_token(big, NGX_HTTP_APIKEY_TOKEN_MAX),
        NGX_HTTP_APIKEY_OK, "a token of the longest length is ok");
    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_policy_token(big, sizeof(big)),
        NGX_HTTP_APIKEY_INVALID, "a longer token is invalid");

    big[1] = '!';

    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_policy_token(big, sizeof(big)),
        NGX_HTTP_APIKEY_MALFORMED, "a long broken token is malformed");
}


static void
ngx_http_apikey_unit_policy_bearer(void)
{
    size_t  i, start;

    static const struct {
        const char                *value;
        ngx_http_apikey_status_e   status;
        size_t                     start;
    } vectors[] = {
        { "Bearer ak_x", NGX_HTTP_APIKEY_OK, 7 },
        { "bearer   ak_x", NGX_HTTP_APIKEY_OK, 9 },
        { "BEARER ak_x=", NGX_HTTP_APIKEY_OK, 7 },
        { "Basic dXNlcjpwdw==", NGX_HTTP_APIKEY_MISSING, 0 },
        { "Bearerxyz", NGX_HTTP_APIKEY_MISSING, 0 },
        { "Bear", NGX_HTTP_APIKEY_MISSING, 0 },
        { "", NGX_HTTP_APIKEY_MISSING, 0 },
        { "Bearer", NGX_HTTP_APIKEY_MALFORMED, 0 },
        { "Bearer ", NGX_HTTP_APIKEY_MALFORMED, 0 },
        { "Bearer\tak_x", NGX_HTTP_APIKEY_MALFORMED, 0 },
        { "Bearer ak_x y", NGX_HTTP_APIKEY_MALFORMED, 0 },
        { "Bearer ak_x,Bearer ak_y", NGX_HTTP_APIKEY_MALFORMED, 0 },
        { "Bearer \"ak_x\"", NGX_HTTP_APIKEY_MALFORMED, 0 }
    };

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        start = 0;

        ngx_http_apikey_unit_is_int(
            ngx_http_apikey_policy_bearer(
                (const unsigned char *) vectors[i].value,
                strlen(vectors[i].value), &start),
            vectors[i].status, vectors[i].value);

        if (vectors[i].status == NGX_HTTP_APIKEY_OK) {
            ngx_http_apikey_unit_is_int(start, vectors[i].start,
                                        vectors[i].value);
        }
    }
}
