# ngx_http_apikey_module: build, test and demo against Debian's nginx.
#
#   make          the dynamic module (build/ngx_http_apikey_module.so)
#                 and the CLI (build/apikey)
#   make test     unit tests and the t/ suite
#   make run      a private Redis + nginx on loopback with demo keys
#   make bench    the module against its peers (docs/benchmarks.md;
#                 BENCH_SECONDS=600, see bench/bench.pl)
#   make install  module, modules-available snippet and CLI
#   make test-asan, make test-valgrind, make fuzz: see fuzz/sanitizers.mk

SHELL        := /bin/bash
NGINX_SRC    ?= /usr/share/nginx/src
BUILD        ?= build
NGX_BUILD    := $(BUILD)/nginx
CC           ?= cc
CFLAGS       ?= -g -O2 -Wall -Wextra -Werror -fstack-protector-strong \
                -D_FORTIFY_SOURCE=2
NGX_CC_OPT   ?= -g -O2 -fPIC -fstack-protector-strong -Wformat \
                -Werror=format-security -D_FORTIFY_SOURCE=2
NGX_LD_OPT   ?= -Wl,-z,relro -Wl,-z,now -fPIC
PROVE_FLAGS  ?= -j2

PREFIX       ?= /usr/local
MODULES_DIR  ?= /usr/lib/nginx/modules

# Debian 12 packages the build, the tests and the demo need (prometheus for
# promtool, which checks the apikey_metrics output in t/47-metrics.t).
DEPS         := gcc make perl nginx nginx-dev libhiredis-dev libssl-dev \
                libpcre2-dev zlib1g-dev redis-server prometheus

MODULE       := $(BUILD)/ngx_http_apikey_module.so
CLI          := $(BUILD)/apikey
UNIT         := $(BUILD)/apikey_unit
MODULE_SRCS  := ngx_http_apikey_module.c $(filter-out src/apikey%, \
                $(wildcard src/ngx_http_apikey*.c src/ngx_http_apikey*.h))
KEY_SRCS     := src/ngx_http_apikey_key.c
HASH_SRCS    := src/ngx_http_apikey_siphash.c
CLI_SRCS     := $(wildcard src/apikey*.c)
CLI_HDRS     := $(wildcard src/apikey*.h) src/ngx_http_apikey_key.h
UNIT_SRCS    := $(wildcard t/unit/*.c)
# unit tests of module code, built against the configured nginx's headers
UNIT_NGX     := $(BUILD)/apikey_unit_wait
UNIT_NGX_SRCS := t/unit/ngx/apikey_unit_wait.c src/ngx_http_apikey_wait.c

.PHONY: all module cli deps test unit prove run bench install clean

all: module cli

deps:
	@missing=""; \
	for p in $(DEPS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    if [ "$$(id -u)" != 0 ]; then \
	        echo "error: missing Debian packages:$$missing (run as root" \
	             "or install them)" >&2; exit 1; \
	    fi; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -q && apt-get install -y -q --no-install-recommends \
	        $$missing; \
	fi

module: $(MODULE)
cli: $(CLI)

$(NGX_BUILD)/objs/Makefile: config | deps
	rm -rf $(NGX_BUILD)
	mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(NGX_BUILD)
	cd $(NGX_BUILD) && source ./conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="$(NGX_CC_OPT)" --with-ld-opt="$(NGX_LD_OPT)" \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -n 20 configure.log; exit 1; }

$(MODULE): $(NGX_BUILD)/objs/Makefile $(MODULE_SRCS)
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_apikey_module.so $@.tmp
	mv -f $@.tmp $@

$(CLI): $(CLI_SRCS) $(CLI_HDRS) $(KEY_SRCS) | deps
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -Isrc -o $@ $(CLI_SRCS) $(KEY_SRCS) -lhiredis -lcrypto

$(UNIT): $(UNIT_SRCS) $(CLI_HDRS) $(KEY_SRCS) $(CLI_SRCS) $(HASH_SRCS) | deps
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -DAPIKEY_UNIT_TEST -Isrc -o $@ $(UNIT_SRCS) \
	    $(filter-out src/apikey.c, $(CLI_SRCS)) $(KEY_SRCS) $(HASH_SRCS) \
	    -lhiredis -lcrypto

$(UNIT_NGX): $(UNIT_NGX_SRCS) src/ngx_http_apikey_wait.h \
    | $(NGX_BUILD)/objs/Makefile
	$(CC) $(CFLAGS) -Wno-unused-parameter $(FUZZ_INCS) -o $@ $(UNIT_NGX_SRCS)

unit: $(UNIT) $(UNIT_NGX)
	$(UNIT)
	$(UNIT_NGX)

prove: all
	prove $(PROVE_FLAGS) -I t/lib t/

test: deps all unit prove

run: deps all
	bash demo/run.sh

bench: deps module
	bash bench/run.sh

install: all
	install -D -m 0644 $(MODULE) $(DESTDIR)$(MODULES_DIR)/ngx_http_apikey_module.so
	install -d $(DESTDIR)/usr/share/nginx/modules-available
	echo "load_module modules/ngx_http_apikey_module.so;" \
	    > $(DESTDIR)/usr/share/nginx/modules-available/mod-http-apikey.conf
	install -d $(DESTDIR)/etc/nginx/modules-enabled
	ln -sf /usr/share/nginx/modules-available/mod-http-apikey.conf \
	    $(DESTDIR)/etc/nginx/modules-enabled/50-mod-http-apikey.conf
	install -D -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/apikey

clean:
	rm -rf $(BUILD)


include fuzz/sanitizers.mk
