
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_apikey_admin_body.h"
#include "ngx_http_apikey_rate.h"
#include "ngx_http_apikey_cidr.h"
#include "ngx_http_apikey_policy.h"
#include "ngx_http_apikey_time.h"


/* the fields a body may hold, and for which kinds of body */
#define NGX_HTTP_APIKEY_ADMIN_ON_CREATE  (1 << NGX_HTTP_APIKEY_ADMIN_CREATE)
#define NGX_HTTP_APIKEY_ADMIN_ON_UPDATE  (1 << NGX_HTTP_APIKEY_ADMIN_UPDATE)
#define NGX_HTTP_APIKEY_ADMIN_ON_ROTATE  (1 << NGX_HTTP_APIKEY_ADMIN_ROTATE)


typedef int (*ngx_http_apikey_admin_field_pt)(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);


typedef struct {
    const char                      *name;
    int                              kinds;
    ngx_http_apikey_admin_field_pt   parse;
} ngx_http_apikey_admin_field_t;


static int ngx_http_apikey_admin_name(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);
static int ngx_http_apikey_admin_scopes(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);
static int ngx_http_apikey_admin_org(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);
static int ngx_http_apikey_admin_expires_at(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);
static int ngx_http_apikey_admin_expires_in_days(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);
static int ngx_http_apikey_admin_grace(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);
static int ngx_http_apikey_admin_rate(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);
static int ngx_http_apikey_admin_burst(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);
static int ngx_http_apikey_admin_cidrs(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);
static int ngx_http_apikey_admin_extra(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit);
static int ngx_http_apikey_admin_fail(ngx_http_apikey_admin_edit_t *edit,
    const char *fmt, const char *field);
static void ngx_http_apikey_admin_move(
    ngx_http_apikey_object_fields_t *fields, const char *name, char **to,
    char **from);


/* a new field of the admin API is one more row here */

static const ngx_http_apikey_admin_field_t  ngx_http_apikey_admin_fields[] = {

    { "name",
      NGX_HTTP_APIKEY_ADMIN_ON_CREATE | NGX_HTTP_APIKEY_ADMIN_ON_UPDATE,
      ngx_http_apikey_admin_name },

    { "scopes",
      NGX_HTTP_APIKEY_ADMIN_ON_CREATE | NGX_HTTP_APIKEY_ADMIN_ON_UPDATE,
      ngx_http_apikey_admin_scopes },

    { "org",
      NGX_HTTP_APIKEY_ADMIN_ON_CREATE,
      ngx_http_apikey_admin_org },

    { "expires_at",
      NGX_HTTP_APIKEY_ADMIN_ON_CREATE | NGX_HTTP_APIKEY_ADMIN_ON_UPDATE,
      ngx_http_apikey_admin_expires_at },

    { "expires_in_days",
      NGX_HTTP_APIKEY_ADMIN_ON_CREATE | NGX_HTTP_APIKEY_ADMIN_ON_UPDATE,
      ngx_http_apikey_admin_expires_in_days },

    { "grace_seconds",
      NGX_HTTP_APIKEY_ADMIN_ON_ROTATE,
      ngx_http_apikey_admin_grace },

    { "rate",
      NGX_HTTP_APIKEY_ADMIN_ON_CREATE | NGX_HTTP_APIKEY_ADMIN_ON_UPDATE,
      ngx_http_apikey_admin_rate },

    { "burst",
      NGX_HTTP_APIKEY_ADMIN_ON_CREATE | NGX_HTTP_APIKEY_ADMIN_ON_UPDATE,
      ngx_http_apikey_admin_burst },

    { "cidrs",
      NGX_HTTP_APIKEY_ADMIN_ON_CREATE | NGX_HTTP_APIKEY_ADMIN_ON_UPDATE,
      ngx_http_apikey_admin_cidrs },

    { "fields",
      NGX_HTTP_APIKEY_ADMIN_ON_CREATE | NGX_HTTP_APIKEY_ADMIN_ON_UPDATE,
      ngx_http_apikey_admin_extra }
};

#define NGX_HTTP_APIKEY_ADMIN_NFIELDS                                        \
    (sizeof(ngx_http_apikey_admin_fields)                                    \
     / sizeof(ngx_http_apikey_admin_fields[0]))


int
ngx_http_apikey_admin_body_parse(const char *body, size_t len, int kind,
    int64_t now, ngx_http_apikey_admin_edit_t *edit)
{
    int                                   rc, expiries;
    size_t                                i;
    json_t                               *root, *value;
    const char                           *key;
    json_error_t                          error;
    const ngx_http_apikey_admin_field_t  *f;

    memset(edit, 0, sizeof(ngx_http_apikey_admin_edit_t));

    if (len == 0 && kind == NGX_HTTP_APIKEY_ADMIN_ROTATE) {
        return 0;
    }

    if (len > NGX_HTTP_APIKEY_ADMIN_BODY_MAX) {
        return ngx_http_apikey_admin_fail(edit, "the body is too large%s",
                                          "");
    }

    /* what the parser says quotes the body: it is not passed on */

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL) {
        return ngx_http_apikey_admin_fail(edit, "the body is not valid "
                                          "JSON%s", "");
    }

    rc = -1;
    expiries = 0;

    if (!json_is_object(root)) {
        ngx_http_apikey_admin_fail(edit, "the body is not a JSON object%s",
                                   "");
        goto done;
    }

    json_object_foreach(root, key, value) {

        for (i = 0; i < NGX_HTTP_APIKEY_ADMIN_NFIELDS; i++) {
            f = &ngx_http_apikey_admin_fields[i];

            if (strcmp(f->name, key) == 0) {
                break;
            }
        }

        if (i == NGX_HTTP_APIKEY_ADMIN_NFIELDS) {
            ngx_http_apikey_admin_fail(edit, "unknown field%s", "");
            goto done;
        }

        if (!(f->kinds & (1 << kind))) {
            ngx_http_apikey_admin_fail(edit, "\"%s\" cannot be given here",
                                       f->name);
            goto done;
        }

        if (f->parse(value, now, edit) != 0) {
            goto done;
        }

        expiries += (f->parse == ngx_http_apikey_admin_expires_at
                     || f->parse == ngx_http_apikey_admin_expires_in_days);
    }

    if (expiries > 1) {
        ngx_http_apikey_admin_fail(edit, "give \"expires_at\" or "
                                   "\"expires_in_days\", not both%s", "");
        goto done;
    }

    if (kind == NGX_HTTP_APIKEY_ADMIN_CREATE && !edit->has_name) {
        ngx_http_apikey_admin_fail(edit, "\"%s\" is required", "name");
        goto done;
    }

    rc = 0;

done:

    json_decref(root);

    if (rc != 0) {
        ngx_http_apikey_admin_body_free(edit);
    }

    return rc;
}


void
ngx_http_apikey_admin_body_free(ngx_http_apikey_admin_edit_t *edit)
{
    free(edit->name);
    free(edit->scopes);
    free(edit->org);
    size_t  i;

    free(edit->rate);
    free(edit->burst);
    free(edit->cidrs);

    for (i = 0; i < 2 * edit->nfields; i++) {
        free(edit->fields[i]);
    }

    free(edit->fields);

    edit->name = NULL;
    edit->scopes = NULL;
    edit->org = NULL;
    edit->rate = NULL;
    edit->burst = NULL;
    edit->cidrs = NULL;
    edit->fields = NULL;
    edit->nfields = 0;
}


void
ngx_http_apikey_admin_body_apply(ngx_http_apikey_admin_edit_t *edit,
    ngx_http_apikey_object_t *obj, ngx_http_apikey_object_fields_t *fields)
{
    size_t       i;
    const char  *name, *value;

    fields->n = 0;

    if (edit->has_name) {
        ngx_http_apikey_admin_move(fields, "name", &obj->name, &edit->name);
    }

    if (edit->has_scopes) {
        ngx_http_apikey_admin_move(fields, "scopes", &obj->scopes,
                                   &edit->scopes);
    }

    if (edit->has_expiry) {
        obj->expires_at = edit->expires_at;
        ngx_http_apikey_object_field_number(fields, "expires_at",
                                            obj->expires_at);
    }

    /* null removes a limit: the field is written empty, as the tool does */

    if (edit->has_rate) {
        ngx_http_apikey_admin_move(fields, "rate", &obj->rate, &edit->rate);
    }

    if (edit->has_burst) {
        ngx_http_apikey_admin_move(fields, "burst", &obj->burst, &edit->burst);
    }

    if (edit->has_cidrs) {
        ngx_http_apikey_admin_move(fields, "cidrs", &obj->cidrs, &edit->cidrs);
    }

    /* an empty value is an absent field, for the module and the tool */

    for (i = 0; i < edit->nfields; i++) {
        name = edit->fields[2 * i];
        value = edit->fields[2 * i + 1];

        if (ngx_http_apikey_object_set_extra(obj, name, strlen(name), value)
            == 0)
        {
            ngx_http_apikey_object_field(fields, name, value);
        }
    }
}


const char *
ngx_http_apikey_admin_body_beyond(const char *scopes, const char *cap,
    size_t cap_len, size_t *len)
{
    const unsigned char  *p, *last, *scope;

    p = (const unsigned char *) scopes;
    last = p ? p + strlen(scopes) : NULL;

    while ((scope = ngx_http_apikey_policy_scope_next(&p, last, len)) != NULL)
    {
        if (!ngx_http_apikey_policy_scope_granted(
                 (const unsigned char *) cap, cap_len, scope, *len))
        {
            return (const char *) scope;
        }
    }

    return NULL;
}


static int
ngx_http_apikey_admin_name(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit)
{
    size_t       len;
    const char  *s;

    if (!json_is_string(value)) {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be a string",
                                          "name");
    }

    s = json_string_value(value);
    len = json_string_length(value);

    if (len == 0 || len > NGX_HTTP_APIKEY_OBJECT_NAME_MAX) {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be 1 to 1024 "
                                          "bytes", "name");
    }

    if (!ngx_http_apikey_object_text_valid(s, len) || strlen(s) != len) {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must not hold "
                                          "control characters", "name");
    }

    edit->name = strdup(s);
    if (edit->name == NULL) {
        return ngx_http_apikey_admin_fail(edit, "out of memory%s", "");
    }

    edit->has_name = 1;

    return 0;
}


static int
ngx_http_apikey_admin_scopes(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit)
{
    char        *p;
    size_t       i, n, len;
    json_t      *scope;
    const char  *s;

    if (!json_is_array(value)) {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be an array "
                                          "of strings", "scopes");
    }

    n = 0;

    json_array_foreach(value, i, scope) {
        if (!json_is_string(scope)) {
            return ngx_http_apikey_admin_fail(edit, "\"%s\" must be an "
                                              "array of strings", "scopes");
        }

        s = json_string_value(scope);
        len = json_string_length(scope);

        if (!ngx_http_apikey_object_word_valid(s, len)) {
            return ngx_http_apikey_admin_fail(edit, "\"%s\" holds an invalid "
                                              "scope", "scopes");
        }

        n += len + 1;
    }

    edit->scopes = malloc(n + 1);
    if (edit->scopes == NULL) {
        return ngx_http_apikey_admin_fail(edit, "out of memory%s", "");
    }

    p = edit->scopes;

    json_array_foreach(value, i, scope) {
        if (i) {
            *p++ = ' ';
        }

        len = json_string_length(scope);
        memcpy(p, json_string_value(scope), len);
        p += len;
    }

    *p = '\0';

    edit->has_scopes = 1;

    return 0;
}


static int
ngx_http_apikey_admin_org(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit)
{
    if (json_is_null(value)) {
        edit->has_org = 1;
        return 0;
    }

    if (!json_is_string(value)
        || !ngx_http_apikey_object_word_valid(json_string_value(value),
                                              json_string_length(value)))
    {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be a string of "
                                          "printable characters without "
                                          "spaces", "org");
    }

    edit->org = strdup(json_string_value(value));
    if (edit->org == NULL) {
        return ngx_http_apikey_admin_fail(edit, "out of memory%s", "");
    }

    edit->has_org = 1;

    return 0;
}


static int
ngx_http_apikey_admin_expires_at(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit)
{
    int64_t  t;

    edit->has_expiry = 1;

    if (json_is_null(value)) {
        edit->expires_at = 0;
        return 0;
    }

    if (!json_is_string(value)
        || strlen(json_string_value(value)) != json_string_length(value)
        || ngx_http_apikey_time_parse(json_string_value(value), &t) != 0)
    {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be an RFC 3339 "
                                          "time or null", "expires_at");
    }

    if (t <= now) {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" is in the past",
                                          "expires_at");
    }

    edit->expires_at = t;

    return 0;
}


static int
ngx_http_apikey_admin_expires_in_days(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit)
{
    json_int_t  days;

    if (!json_is_integer(value)
        || (days = json_integer_value(value)) < 0
        || days > (NGX_HTTP_APIKEY_TIME_MAX - now) / 86400)
    {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be a whole "
                                          "number of days, 0 for never",
                                          "expires_in_days");
    }

    edit->has_expiry = 1;
    edit->expires_at = days ? now + days * 86400 : 0;

    return 0;
}


static int
ngx_http_apikey_admin_grace(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit)
{
    json_int_t  grace;

    if (!json_is_integer(value)
        || (grace = json_integer_value(value)) < 0
        || grace > NGX_HTTP_APIKEY_TIME_MAX - now)
    {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be a whole "
                                          "number of seconds",
                                          "grace_seconds");
    }

    edit->grace = grace;

    return 0;
}


/* "Nr/s" or "Nr/m" as the module reads it, or null */

static int
ngx_http_apikey_admin_rate(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit)
{
    ngx_http_apikey_rate_t  rate;

    edit->has_rate = 1;

    if (json_is_null(value)) {
        return 0;
    }

    if (!json_is_string(value)
        || ngx_http_apikey_rate_parse(
               (const unsigned char *) json_string_value(value),
               json_string_length(value), &rate)
           != 0)
    {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be like "
                                          "100r/s or 6000r/m, or null",
                                          "rate");
    }

    edit->rate = strdup(json_string_value(value));
    if (edit->rate == NULL) {
        return ngx_http_apikey_admin_fail(edit, "out of memory%s", "");
    }

    return 0;
}


/* a whole number of requests, written as the tool writes it, or null */

static int
ngx_http_apikey_admin_burst(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit)
{
    char        buf[24];
    json_int_t  burst;

    edit->has_burst = 1;

    if (json_is_null(value)) {
        return 0;
    }

    if (!json_is_integer(value)
        || (burst = json_integer_value(value)) < 0
        || burst > NGX_HTTP_APIKEY_BURST_MAX)
    {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be a whole "
                                          "number of requests from 0 to "
                                          "1000000, or null", "burst");
    }

    snprintf(buf, sizeof(buf), "%d", (int) burst);

    edit->burst = strdup(buf);
    if (edit->burst == NULL) {
        return ngx_http_apikey_admin_fail(edit, "out of memory%s", "");
    }

    return 0;
}


/* an array of networks, each as the module reads it; null or [] for none */

static int
ngx_http_apikey_admin_cidrs(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit)
{
    char                    *p;
    size_t                   i, n, len;
    json_t                  *net;
    const char              *s;
    ngx_http_apikey_cidr_t   cidr;

    edit->has_cidrs = 1;

    if (json_is_null(value)) {
        return 0;
    }

    if (!json_is_array(value)) {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be an array "
                                          "of networks", "cidrs");
    }

    n = 0;

    json_array_foreach(value, i, net) {
        if (!json_is_string(net)
            || ngx_http_apikey_cidr_parse(
                   (const unsigned char *) json_string_value(net),
                   json_string_length(net), &cidr)
               != 0)
        {
            return ngx_http_apikey_admin_fail(edit, "\"%s\" holds what is "
                                              "not an IPv4 or IPv6 network",
                                              "cidrs");
        }

        n += json_string_length(net) + 1;
    }

    if (n == 0) {
        return 0;
    }

    edit->cidrs = malloc(n);
    if (edit->cidrs == NULL) {
        return ngx_http_apikey_admin_fail(edit, "out of memory%s", "");
    }

    p = edit->cidrs;

    json_array_foreach(value, i, net) {
        if (i) {
            *p++ = ' ';
        }

        s = json_string_value(net);
        len = json_string_length(net);
        memcpy(p, s, len);
        p += len;
    }

    *p = '\0';

    return 0;
}


/* {"plan": "gold", "user": null}: other fields; null removes one */

static int
ngx_http_apikey_admin_extra(json_t *value, int64_t now,
    ngx_http_apikey_admin_edit_t *edit)
{
    size_t       i, len;
    json_t      *v;
    const char  *name, *s;

    if (!json_is_object(value)) {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" must be an object "
                                          "of strings", "fields");
    }

    if (json_object_size(value) > NGX_HTTP_APIKEY_OBJECT_EXTRA_MAX) {
        return ngx_http_apikey_admin_fail(edit, "\"%s\" holds more than 32 "
                                          "fields", "fields");
    }

    edit->fields = calloc(2 * json_object_size(value) + 1, sizeof(char *));
    if (edit->fields == NULL) {
        return ngx_http_apikey_admin_fail(edit, "out of memory%s", "");
    }

    i = 0;

    json_object_foreach(value, name, v) {

        if (!ngx_http_apikey_object_extra_name(name, strlen(name))) {
            return ngx_http_apikey_admin_fail(edit, "\"%s\" names a field "
                                              "that cannot be set: 1 to 64 "
                                              "lowercase letters, digits or "
                                              "underscores, and none the "
                                              "module reads itself",
                                              "fields");
        }

        if (json_is_null(v)) {
            s = "";
            len = 0;

        } else if (json_is_string(v)) {
            s = json_string_value(v);
            len = json_string_length(v);

            if (len > NGX_HTTP_APIKEY_OBJECT_NAME_MAX
                || strlen(s) != len
                || !ngx_http_apikey_object_text_valid(s, len))
            {
                return ngx_http_apikey_admin_fail(edit, "\"%s\" values must "
                                                  "be up to 1024 bytes "
                                                  "without control "
                                                  "characters", "fields");
            }

        } else {
            return ngx_http_apikey_admin_fail(edit, "\"%s\" must be an "
                                              "object of strings", "fields");
        }

        edit->fields[2 * i] = strdup(name);
        edit->fields[2 * i + 1] = strdup(s);
        edit->nfields = ++i;

        if (edit->fields[2 * i - 2] == NULL
            || edit->fields[2 * i - 1] == NULL)
        {
            return ngx_http_apikey_admin_fail(edit, "out of memory%s", "");
        }
    }

    return 0;
}


/* an edited string becomes the object's (the edit gives it up) */

static void
ngx_http_apikey_admin_move(ngx_http_apikey_object_fields_t *fields,
    const char *name, char **to, char **from)
{
    free(*to);
    *to = *from;
    *from = NULL;

    ngx_http_apikey_object_field(fields, name, *to);
}


static int
ngx_http_apikey_admin_fail(ngx_http_apikey_admin_edit_t *edit,
    const char *fmt, const char *field)
{
    snprintf(edit->err, sizeof(edit->err), fmt, field);

    return -1;
}
