# ngx_http_apikey_module: build, test and demo against Debian's nginx.
#
#   make          the dynamic module (build/ngx_http_apikey_module.so)
#                 and the CLI (build/apikey)
#   make test     unit tests and the t/ suite
#   make run      a private Redis + nginx on loopback with demo keys
#   make bench    the module against its peers (docs/benchmarks.md;
#                 BENCH_SECONDS=600, see bench/bench.pl)
#   make install  module, modules-available snippet, CLI and its man page
#   make deb      Debian packages in build/deb (docs/packaging.md);
#                 make test-deb installs, uses and purges them
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

# and those make deb needs besides: debian/control's Build-Depends, and
# build-essential, which dpkg-buildpackage checks too
DEB_DEPS     := $(DEPS) build-essential debhelper dpkg-dev fakeroot lintian
DEB_DIR      := $(BUILD)/deb

MODULE       := $(BUILD)/ngx_http_apikey_module.so
CLI          := $(BUILD)/apikey
UNIT         := $(BUILD)/apikey_unit
MODULE_SRCS  := ngx_http_apikey_module.c $(wildcard src/*.c src/*.h)

# the nginx-free pairs that the module and the CLI share
SHARED_SRCS  := src/ngx_http_apikey_key.c src/ngx_http_apikey_policy.c
SHARED_HDRS  := src/ngx_http_apikey_key.h src/ngx_http_apikey_policy.h
HASH_SRCS    := src/ngx_http_apikey_siphash.c src/ngx_http_apikey_slot.c

# the CLI but its main(), which the unit tests replace
CLI_LIB_SRCS := cli/apikey_options.c cli/apikey_commands.c \
                cli/apikey_store.c cli/apikey_tx.c cli/apikey_redis.c \
                cli/apikey_record.c cli/apikey_text.c cli/apikey_time.c
CLI_HDRS     := cli/apikey.h cli/apikey_options.h cli/apikey_commands.h \
                cli/apikey_store.h cli/apikey_tx.h cli/apikey_redis.h \
                cli/apikey_record.h cli/apikey_text.h cli/apikey_time.h
UNIT_SRCS    := $(wildcard t/unit/*.c)
# unit tests of module code, built against the configured nginx's headers
UNIT_NGX     := $(BUILD)/apikey_unit_wait
UNIT_NGX_SRCS := t/unit/ngx/apikey_unit_wait.c src/ngx_http_apikey_wait.c

.PHONY: all module cli deps test unit prove run bench install clean deb \
        test-deb

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

$(CLI): cli/apikey.c $(CLI_LIB_SRCS) $(CLI_HDRS) $(SHARED_SRCS) \
    $(SHARED_HDRS) | deps
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -Isrc -Icli -o $@ cli/apikey.c $(CLI_LIB_SRCS) \
	    $(SHARED_SRCS) -lhiredis -lcrypto

$(UNIT): $(UNIT_SRCS) t/unit/apikey_unit.h $(CLI_LIB_SRCS) $(CLI_HDRS) \
    $(SHARED_SRCS) $(SHARED_HDRS) $(HASH_SRCS) | deps
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -Isrc -Icli -o $@ $(UNIT_SRCS) $(CLI_LIB_SRCS) \
	    $(SHARED_SRCS) $(HASH_SRCS) -lhiredis -lcrypto

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
	install -D -m 0644 docs/apikey.1 \
	    $(DESTDIR)$(PREFIX)/share/man/man1/apikey.1

# Built from a copy of the tracked files (uncommitted changes included) in
# build/deb/src: dpkg-buildpackage writes into the parent directory and
# cleans the tree it builds in.
deb:
	@$(call apikey_need,$(DEB_DEPS))
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	set -o pipefail; \
	tree=$$(git -c user.name=make -c user.email=make@localhost \
	    stash create) && git archive "$${tree:-HEAD}" \
	    | tar -x -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc
	rm -rf $(DEB_DIR)/src
	lintian --fail-on error,warning --info $(DEB_DIR)/*.changes

test-deb:
	@$(call apikey_need,$(DEPS))
	prove -v -I t/lib t/deb/

clean:
	rm -rf $(BUILD)


include fuzz/sanitizers.mk
