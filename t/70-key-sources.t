# apikey_key_from: a key sent in a header of its own (X-API-Key) or a query
# argument, besides or instead of "Authorization: Bearer"; the same token
# syntax, answers and hashing whatever the source; exactly one token per
# request; apikey_hide_credentials takes it out wherever it came from.

use lib 't/lib';
use ApiKey::Test;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, http => <<'EOF');
    log_format keys "$request_uri|$args|$request";

    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        add_header X-Status $apikey_status always;

        location /default/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /header/ {
            apikey on;
            apikey_key_from header:X-API-Key;
            proxy_pass http://%%ECHO%%;
        }

        location /any/ {
            apikey on;
            apikey_key_from header:X-API-Key bearer query:api_key;
            proxy_pass http://%%ECHO%%;
        }

        location /query/ {
            apikey on;
            apikey_key_from query:api_key;
            access_log %%DIR%%/keys.log keys;
            proxy_pass http://%%ECHO%%;
        }

        location /access-token/ {
            apikey on;
            apikey_key_from query:access_token;
            proxy_pass http://%%ECHO%%;
        }

        location /shown/ {
            apikey on;
            apikey_key_from header:X-API-Key query:api_key;
            apikey_hide_credentials off;
            proxy_pass http://%%ECHO%%;
        }

        # the first location lets the request through (and hides the key),
        # its upstream redirects to a location that reads staff: records
        location /accel/ {
            apikey on;
            apikey_key_from header:X-API-Key query:api_key;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }

        location @staff {
            apikey on;
            apikey_key_from query:api_key header:X-API-Key;
            apikey_redis_prefix staff:;
            proxy_pass http://%%ECHO%%;
        }

        location @staff_bearer {
            apikey on;
            apikey_redis_prefix staff:;
            proxy_pass http://%%ECHO%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT2%%;

        location / {
            add_header X-Accel-Redirect $arg_to;
            return 204;
        }
    }
EOF

my $token = new_token();
seed_key($redis, $token, id => 'k_src');
my $other = new_token();
seed_key($redis, $other, id => 'k_other');
my $unknown = new_token();

sub get { return $nginx->get(@_) }

subtest 'the default is bearer alone' => sub {
    is(get('/default/x', Authorization => "Bearer $token")->verdict,
        '200 k_src', 'Bearer');
    answer_is(get('/default/x', 'X-API-Key' => $token), 'missing',
        name => 'X-API-Key is not looked at');
};

subtest 'header:X-API-Key takes the whole value as the token' => sub {
    my $res = get('/header/x', 'X-API-Key' => $token);
    is($res->verdict, '200 k_src', 'the same record as through Bearer');
    ok(!$res->upstream->has('x-api-key'), 'hidden from the upstream');
    is(get('/header/x', 'x-api-key' => $token)->verdict, '200 k_src',
        'the header name is case-insensitive');
    answer_is(get('/header/x', Authorization => "Bearer $token"),
        'missing', name => 'Bearer is not a source here');
    answer_is(get('/header/x', 'X-API-Key' => $unknown), 'invalid',
        name => 'an unknown key');
    answer_is(get('/header/x', 'X-API-Key' => "Bearer $token"),
        'malformed', name => 'a scheme before the token');
    answer_is(get('/header/x', 'X-API-Key' => "$token x"), 'malformed',
        name => 'two words');
    answer_is(get('/header/x', 'X-API-Key' => 'a"b'), 'malformed',
        name => 'a character outside b64token');
    answer_is(get('/header/x', 'X-API-Key' => 'x' x 513), 'invalid',
        name => 'too long to be a key');
};

subtest 'the challenge stays Bearer' => sub {
    answer_is(get('/header/x'), 'missing', name => 'no key at all');
};

subtest 'each source of a list' => sub {
    is(get('/any/x', 'X-API-Key' => $token)->verdict, '200 k_src',
        'the header');
    is(get('/any/x', Authorization => "Bearer $token")->verdict,
        '200 k_src', 'Bearer');
    is(get("/any/x?api_key=$token")->verdict, '200 k_src', 'the query');
    my $res = get('/any/x', Authorization => 'Basic dTpw',
        'X-API-Key' => $token);
    is($res->verdict, '200 k_src', 'another scheme is no token');
    is($res->upstream->header('authorization'), 'Basic dTpw',
        'and reaches the upstream');
};

subtest 'two tokens are refused, even one and the same' => sub {
    for my $c (
        ['header and Bearer, same token', '/any/x',
            'X-API-Key' => $token, Authorization => "Bearer $token"],
        ['header and Bearer, two tokens', '/any/x',
            'X-API-Key' => $token, Authorization => "Bearer $other"],
        ['header and query', "/any/x?api_key=$token",
            'X-API-Key' => $token],
        ['Bearer and query', "/any/x?api_key=$token",
            Authorization => "Bearer $token"],
        ['the header twice', '/any/x',
            'X-API-Key' => $token, 'X-API-Key' => $token],
        ['the header twice, in two cases', '/header/x',
            'X-API-Key' => $token, 'x-api-key' => $other],
        ['the argument twice', "/query/x?api_key=$token&api_key=$token"],
        ['the argument twice, in two cases',
            "/query/x?api_key=$token&API_KEY=$other"])
    {
        my ($what, $path, @h) = @$c;
        my $res = get($path, @h);
        answer_is($res, 'malformed', name => $what);
        is($res->header('x-status'), 'malformed', "$what: \$apikey_status");
    }
};

subtest 'query:NAME, hidden from the upstream' => sub {
    my $res = get("/query/x?a=1&api_key=$token&b=2&c");
    is($res->verdict, '200 k_src', 'the argument is the token');
    is($res->upstream->request_line, 'GET /query/x?a=1&b=2&c HTTP/1.0',
        'the other arguments in their order');
    $res = get("/query/x?api_key=$token");
    is($res->upstream->request_line, 'GET /query/x HTTP/1.0',
        'no "?" left when it was the only one');
    $res = get("/query/x?b=%2F&api_key=$token&a=x+y");
    is($res->upstream->request_line, 'GET /query/x?b=%2F&a=x+y HTTP/1.0',
        'the others byte for byte');
    (my $escaped = $token) =~ s/_/%5F/;
    is(get("/query/x?api_key=$escaped")->verdict, '200 k_src',
        'the value is percent-decoded');
    answer_is(get('/query/x?api_key='), 'malformed', name => 'empty');
    answer_is(get('/query/x?api_key'), 'malformed', name => 'no value');
    answer_is(get('/query/x?my_api_key=x'), 'missing',
        name => 'a longer name is another argument');
    answer_is(get("/query/x?access_token=$token"), 'malformed',
        name => 'access_token stays refused');
};

subtest 'the log: $request keeps the query, $request_uri does not' => sub {
    get("/query/logged?z=1&api_key=$token");
    my $line;
    wait_until(sub {
        ($line) = grep { /logged/ } split /\n/,
            $nginx->_read($nginx->dir . '/keys.log') // '';
        defined $line;
    }, slack(5));
    is($line, "/query/logged?z=1|z=1|GET /query/logged?z=1&api_key=$token"
        . ' HTTP/1.1', '$request_uri|$args|$request');
};

subtest 'a refusal is logged unless the URI holds the token' => sub {
    my $mark = $nginx->mark;
    get('/any/header-refused', 'X-API-Key' => $unknown);
    like($nginx->error_log_since($mark),
        qr/\[info\].*apikey: request refused: invalid/,
        'a header key of a location that also reads the query');
    $mark = $nginx->mark;
    get("/any/query-refused?api_key=$unknown");
    unlike($nginx->error_log_since($mark), qr/apikey: request refused/,
        'a query key: no refusal line, which would hold the request line');
};

subtest 'query:access_token accepts what is refused elsewhere' => sub {
    is(get("/access-token/x?access_token=$token")->verdict, '200 k_src',
        'accepted');
};

subtest 'apikey_hide_credentials off: the upstream sees the key' => sub {
    my $res = get('/shown/x', 'X-API-Key' => $token);
    is($res->upstream->header('x-api-key'), $token, 'the header');
    $res = get("/shown/x?api_key=$token&a=1");
    is($res->upstream->request_line, "GET /shown/x?api_key=$token&a=1 "
        . 'HTTP/1.0', 'the argument');
};

# nginx's own debug lines show the request line, and so a key sent in the
# query (docs/security.md); the module's lines, and every line at info and
# above, show no key from any source
subtest 'a key hidden by a first location is found after a redirect' => sub {
    my $staff = new_token();
    seed_key($redis, $staff, id => 'k_partner');
    seed_key($redis, $staff, id => 'k_staff', -prefix => 'staff:');
    my $res = get('/accel/x?to=@staff', 'X-API-Key' => $staff);
    is($res->verdict, '200 k_staff', 'from the header: the staff: record');
    ok(!$res->upstream->has('x-api-key'), 'and still hidden');
    $res = get("/accel/x?to=\@staff&api_key=$staff");
    is($res->verdict, '200 k_staff', 'from the query: the staff: record');
    unlike($res->upstream->request_line, qr/api_key/, 'and still hidden');
    answer_is(get('/accel/x?to=@staff_bearer', 'X-API-Key' => $staff),
        'missing', name => 'not where the new location does not look');
};

subtest 'no token in the error log above debug, nor in the module\'s' => sub {
    my @leaks = grep {
        my $e = $_;
        ($e !~ /\[debug\]/ || $e =~ /\bapikey\b/)
            && grep { index($e, $_) >= 0 } $token, $other, $unknown
    } $nginx->log_entries;
    is(scalar(@leaks), 0, 'none') or diag(join "\n", @leaks[0 .. 4]);
};

for my $c (['cookie:x', qr/invalid key source "cookie:x"/],
    ['header:', qr/key source "header:" needs a name/],
    ['query:', qr/key source "query:" needs a name/],
    ['header:Authorization', qr/the Authorization header is the "bearer"/],
    ['header:X-ApiKey-Token', qr/X-ApiKey-\* headers are the module's/],
    ['header:x_apikey_token', qr/X-ApiKey-\* headers are the module's/],
    ['query:a&b', qr/invalid name in key source "query:a&b"/],
    ['header:X-Key header:x-key', qr/duplicate key source "header:x-key"/],
    ['bearer bearer', qr/duplicate key source "bearer"/])
{
    my ($args, $re) = @$c;
    subtest "nginx -t refuses apikey_key_from $args" => sub {
        my ($rc, $out) = nginx_check(http => <<"EOF");
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            apikey on;
            apikey_key_from $args;
        }
    }
EOF
        isnt($rc, 0, 'nginx -t fails');
        like($out, $re, "saying $re") or diag $out;
    };
}

done_testing;
