
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The apikey tool's commands: create, list, show, update, revoke, rotate
 * and verify (docs/cli.md).
 */


#ifndef _APIKEY_COMMANDS_H_INCLUDED_
#define _APIKEY_COMMANDS_H_INCLUDED_


#include "apikey.h"


/* the commands and the options each takes; ends with a NULL name */
extern apikey_command_t  apikey_commands[];


int apikey_create(apikey_cli_t *cli);
int apikey_list(apikey_cli_t *cli);
int apikey_show(apikey_cli_t *cli);
int apikey_update(apikey_cli_t *cli);
int apikey_revoke(apikey_cli_t *cli);
int apikey_rotate(apikey_cli_t *cli);
int apikey_verify(apikey_cli_t *cli);


#endif /* _APIKEY_COMMANDS_H_INCLUDED_ */
