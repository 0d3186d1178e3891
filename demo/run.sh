#!/usr/bin/env bash
#
# make run: a private Redis and nginx on 127.0.0.1, in ./.run, protecting a
# small demo API with the apikey module; two demo keys made with the apikey
# tool, curl commands that show 200, 401 and 403, and the key console
# (console/) over the module's admin API.  Ctrl-C stops it all.
#
# Ports: APIKEY_DEMO_PORT (nginx, default 8080 or the next free one),
# APIKEY_DEMO_REDIS_PORT (default 6390 or the next free one).  Nothing
# outside ./.run is touched.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=$ROOT/.run
MODULE=$ROOT/build/ngx_http_apikey_module.so
APIKEY=$ROOT/build/apikey
NGINX=${NGINX:-nginx}

redis_pid=
nginx_pid=
watchdog_pid=


say() {
    printf '%s\n' "$*"
}

die() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}

# the first port from $1 on that nothing on 127.0.0.1 listens on
free_port() {
    local port=$1 i

    for (( i = 0; i < 100; i++, port++ )); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done

    die "no free port from $1 to $port on 127.0.0.1"
}

stop_pid() {
    local pid=$1 signal=$2 i

    [ -n "$pid" ] || return 0
    kill "-$signal" "$pid" 2>/dev/null || return 0

    for (( i = 0; i < 50; i++ )); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done

    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    trap - INT TERM EXIT

    if [ -n "$nginx_pid$redis_pid" ]; then
        say ""
        say "Stopping nginx and Redis..."
    fi

    # QUIT: nginx finishes the requests in flight, then exits
    stop_pid "$nginx_pid" QUIT
    stop_pid "$redis_pid" TERM
    [ -z "$watchdog_pid" ] || kill "$watchdog_pid" 2>/dev/null || true

    nginx_pid=
    redis_pid=
    say "Stopped. Logs are in $RUN/."
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


[ -f "$MODULE" ] || die "$MODULE is missing: run make first"
[ -x "$APIKEY" ] || die "$APIKEY is missing: run make first"
command -v redis-server >/dev/null || die "redis-server is not installed"
command -v "$NGINX" >/dev/null || die "nginx is not installed"

PORT=${APIKEY_DEMO_PORT:-$(free_port 8080)}
REDIS_PORT=${APIKEY_DEMO_REDIS_PORT:-$(free_port 6390)}
UP_PORT=$(free_port $((PORT + 1)))
REDIS=127.0.0.1:$REDIS_PORT
BASE=http://127.0.0.1:$PORT

rm -rf "$RUN"
mkdir -p "$RUN/tmp"
chmod 0755 "$RUN"


# Redis: private, in memory only

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$RUN" --logfile "$RUN/redis.log" \
    --daemonize no &
redis_pid=$!

for (( i = 0; i < 100; i++ )); do
    if [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
        break
    fi

    kill -0 "$redis_pid" 2>/dev/null \
        || die "redis-server did not start, see $RUN/redis.log"
    sleep 0.05
done

[ "$i" -lt 100 ] || die "redis-server did not answer on $REDIS"


# nginx: the demo API on UP_PORT, protected by the module on PORT

cat > "$RUN/nginx.conf" <<EOF
# written by demo/run.sh
load_module $MODULE;

daemon off;
master_process on;
worker_processes 1;
pid $RUN/nginx.pid;
error_log $RUN/error.log info;

events {
    worker_connections 256;
}

http {
    log_format apikey '\$remote_addr "\$request" \$status '
                      'key=\$apikey_id status=\$apikey_status';

    access_log $RUN/access.log apikey;
    client_body_temp_path $RUN/tmp/client_body;
    proxy_temp_path $RUN/tmp/proxy;
    fastcgi_temp_path $RUN/tmp/fastcgi;
    uwsgi_temp_path $RUN/tmp/uwsgi;
    scgi_temp_path $RUN/tmp/scgi;

    # every API key lookup goes to the private Redis
    apikey_redis $REDIS;
    apikey_realm demo;

    # keys made by the apikey tool carry a checksum: a mistyped key is
    # refused without a Redis round trip
    apikey_key_checksum on;
    apikey_key_prefix ak_;

    server {
        listen 127.0.0.1:$PORT;

        location /api/people {
            apikey on;
            apikey_scopes read:people;

            limit_except GET HEAD {
                apikey_scopes write:people;
            }

            proxy_pass http://127.0.0.1:$UP_PORT;
        }

        location ~ ^/api/w/(?<ws>[^/]+)/ {
            apikey on;
            apikey_org \$ws;

            proxy_pass http://127.0.0.1:$UP_PORT;
        }

        # the admin API the console calls; a real site protects it as it
        # protects its other staff pages (auth_request to its session
        # check, auth_basic, mTLS): here, only this machine may use it
        location /admin/keys/ {
            allow 127.0.0.1;
            deny all;

            apikey_admin on;
            apikey_admin_scopes read:people write:people;
        }

        location /admin/console/ {
            allow 127.0.0.1;
            deny all;

            alias $ROOT/console/;

            types {
                text/html               html;
                text/css                css;
                application/javascript  js;
            }
        }

        location = / {
            default_type text/plain;
            return 200 "apikey demo: try /api/people and /api/w/acme/projects, or the console at /admin/console/\n";
        }
    }

    # the demo upstream: it trusts the X-ApiKey-* headers set by nginx
    server {
        listen 127.0.0.1:$UP_PORT;
        default_type application/json;

        location /api/people {
            if (\$request_method = POST) {
                return 201 '{"created":true,"by":"\$http_x_apikey_id"}\n';
            }

            return 200 '{"people":[{"id":1,"name":"Ada Lovelace"},{"id":2,"name":"Alan Turing"}],"key":"\$http_x_apikey_id","key_name":"\$http_x_apikey_name"}\n';
        }

        location ~ ^/api/w/(?<ws>[^/]+)/ {
            return 200 '{"workspace":"\$ws","projects":["apollo","gemini"],"key":"\$http_x_apikey_id","org":"\$http_x_apikey_org"}\n';
        }
    }
}
EOF

"$NGINX" -t -q -e "$RUN/error.log" -p "$RUN/" -c "$RUN/nginx.conf" \
    || die "the demo configuration does not load, see $RUN/error.log"

"$NGINX" -e "$RUN/error.log" -p "$RUN/" -c "$RUN/nginx.conf" &
nginx_pid=$!

for (( i = 0; i < 100; i++ )); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        break
    fi

    kill -0 "$nginx_pid" 2>/dev/null \
        || die "nginx did not start, see $RUN/error.log"
    sleep 0.05
done

[ "$i" -lt 100 ] || die "nginx did not listen on 127.0.0.1:$PORT"

# if this script is killed without a chance to clean up, stop them anyway
(
    trap '' INT
    while kill -0 $$ 2>/dev/null; do
        sleep 1
    done
    kill -QUIT "$nginx_pid" 2>/dev/null
    kill -TERM "$redis_pid" 2>/dev/null
) >/dev/null 2>&1 &
watchdog_pid=$!


# two demo keys, made as a user would

export APIKEY_REDIS=$REDIS

key_of() {
    sed -n 's/^key  *//p'
}

READER=$("$APIKEY" create --name "Demo reader" --scope read:people \
             --org acme --expires-in 30d 2>/dev/null | key_of)
WRITER=$("$APIKEY" create --name "Demo writer" \
             --scope "read:people write:people" --org globex \
             2>/dev/null | key_of)

[ -n "$READER" ] && [ -n "$WRITER" ] || die "the apikey tool made no keys"


# try WANT WHAT CURL-ARGS...: prints the curl command as a user would type
# it (with $READER / $WRITER), runs it with the keys, shows the status

try() {
    local want=$1 what=$2 arg shown="curl -i" code
    local -a args=()
    shift 2

    for arg in "$@"; do
        case $arg in
        *" "*) shown+=" \"$arg\"" ;;
        *)     shown+=" $arg" ;;
        esac

        arg=${arg//\$READER/$READER}
        args+=("${arg//\$WRITER/$WRITER}")
    done

    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
               "${args[@]}" || true)

    printf '  %s\n      # %s: %s (got %s)\n\n' "$shown" "$what" "$want" \
        "${code:-no answer}"
}

say ""
say "apikey demo: nginx on $BASE, Redis on $REDIS, logs in .run/"
say ""
say "Two demo keys, shown once as \`apikey create\` shows them:"
say ""
say "  export READER=$READER   # read:people, org acme"
say "  export WRITER=$WRITER   # read:people write:people, org globex"
say ""
say "Each command below has just been run; paste the two exports above"
say "into another shell to try them yourself."
say ""

try 200 "a key with read:people" \
    -H 'Authorization: Bearer $READER' "$BASE/api/people"
try 401 "no key" \
    "$BASE/api/people"
try 401 "a mistyped key (checksum), Redis not asked" \
    -H 'Authorization: Bearer ak_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ' \
    "$BASE/api/people"
try 403 "a write needs write:people" \
    -X POST -H 'Authorization: Bearer $READER' "$BASE/api/people"
try 201 "the writer may write" \
    -X POST -H 'Authorization: Bearer $WRITER' "$BASE/api/people"
try 200 "its own organisation" \
    -H 'Authorization: Bearer $READER' "$BASE/api/w/acme/projects"
try 403 "another organisation" \
    -H 'Authorization: Bearer $READER' "$BASE/api/w/globex/projects"

say "Manage the keys in the console, in a browser on this machine:"
say ""
say "  $BASE/admin/console/"
say ""
say "or with the tool (APIKEY_REDIS=$REDIS):"
say ""
say "  APIKEY_REDIS=$REDIS build/apikey list"
say "  APIKEY_REDIS=$REDIS build/apikey revoke <id>    # next request: 401"
say "  APIKEY_REDIS=$REDIS build/apikey create --name \"My key\" --scope read:people"
say ""
say "Or over HTTP, with the admin API (the console's API):"
say ""
say "  curl $BASE/admin/keys/"
say "  curl -X POST -H 'Content-Type: application/json' \\"
say "       -d '{\"name\": \"My key\", \"scopes\": [\"read:people\"], \"expires_in_days\": 30}' \\"
say "       $BASE/admin/keys/"
say "  curl -X DELETE $BASE/admin/keys/<id>                  # next request: 401"
say ""
say "Press Ctrl-C to stop nginx and Redis."

# until Ctrl-C or SIGTERM, or until nginx or Redis goes away
while kill -0 "$nginx_pid" 2>/dev/null && kill -0 "$redis_pid" 2>/dev/null
do
    sleep 1 &
    wait $! || true
done

say "nginx or Redis stopped by itself, see $RUN/."
