
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The apikey tool's command line: options, their checks, and the usage.
 */


#ifndef _APIKEY_OPTIONS_H_INCLUDED_
#define _APIKEY_OPTIONS_H_INCLUDED_


#include <stdio.h>

#include "apikey.h"


/*
 * Reads the options and the command into cli.  Returns APIKEY_OK with the
 * command in *command (NULL after --help), or APIKEY_USAGE or APIKEY_ERROR
 * after saying why on stderr.
 */
int apikey_options(apikey_cli_t *cli, int argc, char **argv,
    apikey_command_t **command);

/* "apikey: <message>" and the usage on stderr; returns APIKEY_USAGE */
int apikey_usage_error(const char *fmt, ...);

void apikey_usage(FILE *f);


#endif /* _APIKEY_OPTIONS_H_INCLUDED_ */
