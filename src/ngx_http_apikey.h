
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#ifndef _NGX_HTTP_APIKEY_H_INCLUDED_
#define _NGX_HTTP_APIKEY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "ngx_http_apikey_key.h"
#include "ngx_http_apikey_policy.h"
#include "ngx_http_apikey_rate.h"
#include "ngx_http_apikey_redis.h"


typedef struct {
    ngx_str_t                        id;
    ngx_str_t                        name;
    ngx_str_t                        org;
    ngx_str_t                        scopes;
    time_t                           expires_at;
    unsigned                         revoked:1;

    /* the key's own rate limit: read only where apikey_rate_limit applies */
    ngx_http_apikey_rate_t           rate;        /* requests 0: none */
    uint32_t                         burst;
    unsigned                         has_burst:1;
    unsigned                         rate_invalid:1;

    /*
     * The IP allowlist, parsed once when the record is read: the bytes of
     * an ngx_http_apikey_cidr_t array; empty: any address.
     */
    ngx_str_t                        nets;
    unsigned                         cidrs_invalid:1;

    /* the values of apikey_record_fields, in the http block's order */
    ngx_str_t                       *fields;
    ngx_uint_t                       nfields;
} ngx_http_apikey_record_t;


/* apikey_rate_limit's settings: ngx_http_apikey_ratelimit.h */
typedef struct ngx_http_apikey_rate_conf_s  ngx_http_apikey_rate_conf_t;


/* apikey_key_from: where a request may carry its token */

typedef enum {
    NGX_HTTP_APIKEY_FROM_BEARER = 0,
    NGX_HTTP_APIKEY_FROM_HEADER,
    NGX_HTTP_APIKEY_FROM_QUERY
} ngx_http_apikey_from_e;


typedef struct {
    ngx_http_apikey_from_e           type;
    ngx_str_t                        name;        /* header or argument */
    ngx_str_t                        lowcase;     /* of a header name */
    ngx_uint_t                       hash;        /* of lowcase */
} ngx_http_apikey_key_from_t;


/*
 * Where records come from: a Redis server and a key prefix.  Locations
 * with the same pair share the lookup command, in-flight lookups and, in
 * the cache, entries and invalidations.
 */

typedef struct {
    ngx_http_apikey_redis_server_t  *server;
    ngx_str_t                        prefix;
    ngx_uint_t                       index;

    /*
     * HMGET and PING, with placeholders where a lookup writes its hash and
     * a nonce
     */
    ngx_str_t                        command;
    size_t                           command_hash;
    size_t                           command_nonce;

    /* the fields of apikey_record_fields the command asks for */
    ngx_uint_t                       nfields;

    unsigned                         cached:1;
} ngx_http_apikey_source_t;


typedef struct {
    ngx_array_t                      servers;     /* of redis server * */
    ngx_array_t                      sources;     /* of source * */
    ngx_array_t                      secrets;     /* of ngx_str_t */

    ngx_shm_zone_t                  *cache;
    ngx_msec_t                       cache_ttl;
    ngx_msec_t                       cache_negative_ttl;

    ngx_shm_zone_t                  *metrics;
    ngx_flag_t                       metrics_used;

    /* every apikey_record_fields name of the http block: each lookup's */
    ngx_array_t                      record_fields;  /* of ngx_str_t */
} ngx_http_apikey_main_conf_t;


typedef struct {
    ngx_flag_t                       enable;
    ngx_str_t                        realm;

    ngx_http_apikey_redis_server_t  *redis;
    ngx_msec_t                       timeout;
    ngx_int_t                        keepalive;
    ngx_int_t                        pipeline;

    ngx_str_t                        prefix;
    ngx_str_t                        secret;
    ngx_uint_t                       hasher;      /* index of the secret */

    ngx_flag_t                       key_checksum;
    ngx_array_t                     *key_prefixes; /* of ngx_str_t */
    ngx_msec_t                       last_used_interval;

    ngx_array_t                     *scopes;       /* of ngx_str_t */
    ngx_str_t                        scope_list;   /* space-separated */
    ngx_http_complex_value_t        *org;

    /* where a token may come from, in order */
    ngx_array_t                     *key_from;     /* of key source */

    /* the apikey_record_fields of the location: its $apikey_field_* */
    ngx_array_t                     *record_fields; /* of ngx_uint_t */

    ngx_flag_t                       upstream_headers;
    ngx_flag_t                       hide_credentials;
    ngx_shm_zone_t                  *cache;        /* NULL: off */
    ngx_msec_t                       cache_stale;  /* 0: off */

    ngx_http_apikey_rate_conf_t     *rate_limit;   /* NULL: none */

    ngx_http_apikey_source_t        *source;

    /* WWW-Authenticate by status, made at configuration time */
    ngx_str_t                       *challenges;
} ngx_http_apikey_loc_conf_t;


extern ngx_module_t  ngx_http_apikey_module;


#endif /* _NGX_HTTP_APIKEY_H_INCLUDED_ */
