# What a client gets back: every answer of the module with its exact
# status, WWW-Authenticate challenge and JSON body (RFC 6750), and
# $apikey_status for each.

use lib 't/lib';
use ApiKey::Test;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;

        location /open/ {
            proxy_pass http://%%ECHO%%;
        }

        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /status/ {
            apikey on;
            add_header X-Status $apikey_status always;
            proxy_pass http://%%ECHO%%;
        }

        location /realm/ {
            apikey on;
            apikey_realm "my api";
            proxy_pass http://%%ECHO%%;
        }

        location /errpage/ {
            apikey on;
            error_page 401 /custom401;
            proxy_pass http://%%ECHO%%;
        }

        location = /custom401 {
            internal;
            return 200 "custom page\n";
        }
    }
EOF

my $token = new_token();
seed_key($redis, $token, id => 'k_good', name => 'CI export');

my $echo = $nginx->echo_upstream;

sub status_of {
    my ($res) = @_;
    return $res->header('x-status') // '(none)';
}


subtest 'a valid key passes to the upstream' => sub {
    my $res = $nginx->get('/api/x', Authorization => "Bearer $token");
    is($res->status, 200, 'status 200');
    ok($res->upstream, 'the upstream answered');
    is($res->upstream->header('x-apikey-id'), 'k_good', 'with the key id');
    is($nginx->get('/status/x', Authorization => "Bearer $token")
        ->header('x-status'), 'ok', '$apikey_status = ok');
};

subtest 'the scheme is case-insensitive and may be followed by several '
    . 'spaces' => sub {
    for my $auth ("bearer $token", "BEARER $token", "BeArEr $token",
        "Bearer   $token")
    {
        (my $shown = $auth) =~ s/\Q$token\E/<key>/;
        my $res = $nginx->get('/api/x', Authorization => $auth);
        is($res->status, 200, "'$shown': 200");
        is($res->upstream && $res->upstream->header('x-apikey-id'),
            'k_good', "'$shown': upstream sees the key id");
    }
};

my @missing = (
    ['no Authorization header' => []],
    ['an empty Authorization header' => [Authorization => '']],
    ['Basic credentials' => [Authorization => 'Basic dXNlcjpwYXNz']],
    ['the Token scheme' => [Authorization => "Token $token"]],
    ['"Bearer" glued to the key (Bearerxyz)' =>
        [Authorization => "Bearer$token"]],
);

for my $case (@missing) {
    my ($what, $headers) = @$case;
    subtest "$what: 401 asking for credentials" => sub {
        answer_is($nginx->get('/api/x', @$headers), 'missing');
        is(status_of($nginx->get('/status/x', @$headers)), 'missing',
            '$apikey_status = missing');
    };
}

my @malformed = (
    ['"Bearer" alone' => 'Bearer'],
    ['"Bearer " with nothing after it' => 'Bearer '],
    ['a "$" in the token' => 'Bearer ab$cd'],
    ['"=" inside the token' => 'Bearer ab=cd'],
    ['a tab between scheme and token' => "Bearer\t$token"],
    ['a tab inside the token' => "Bearer ab\tcd"],
    ['a comma-separated pair' => "Bearer $token,$token"],
    ['a comma and a space' => "Bearer $token, $token"],
    ['a quoted token' => qq{Bearer "$token"}],
    ['two tokens' => "Bearer $token $token"],
    ['a byte above 0x7f' => "Bearer ab\xc3\xa9cd"],
);

for my $case (@malformed) {
    my ($what, $auth) = @$case;
    subtest "$what: 400 invalid_request" => sub {
        answer_is($nginx->get('/api/x', Authorization => $auth),
            'malformed');
        is(status_of($nginx->get('/status/x', Authorization => $auth)),
            'malformed', '$apikey_status = malformed');
    };
}

subtest 'a token in the query string is refused, with or without a header'
    => sub {
    answer_is($nginx->get('/api/x?access_token=abc'), 'malformed',
        name => 'access_token alone');
    answer_is($nginx->get('/api/x?a=1&access_token=abc',
        Authorization => "Bearer $token"), 'malformed',
        name => 'access_token and a valid header');
    is(status_of($nginx->get('/status/x?access_token=abc')), 'malformed',
        '$apikey_status = malformed');
    is($nginx->get('/api/x?my_access_token=1',
        Authorization => "Bearer $token")->status, 200,
        'an argument that only ends in access_token is not one');
};

subtest 'two Authorization headers are refused by nginx itself' => sub {
    my $hits = $echo->hits;
    # nginx logs both values at info level: these are not real keys
    my $res = $nginx->raw("GET /api/x HTTP/1.1\r\nHost: a\r\n"
        . "Authorization: Bearer dup1\r\nAuthorization: Bearer dup2\r\n"
        . "Connection: close\r\n\r\n");
    is($res->status, 400, 'status 400');
    is_deeply([$res->headers('www-authenticate')], [],
        'no WWW-Authenticate (nginx core answered)');
    is($echo->hits, $hits, 'the upstream saw nothing');
};

subtest 'b64token characters and trailing "=" reach the key lookup' => sub {
    for my $t ('a+b/c~d.e_f-g', 'abc==', 'x=') {
        my $res = $nginx->get('/status/x', Authorization => "Bearer $t");
        is($res->status, 401, "'$t' is well-formed and unknown: 401");
        is($res->header('x-status'), 'invalid', "'$t': invalid");
    }
};

subtest 'a token of 512 bytes is looked up, one of 513 is refused' => sub {
    my @c = ('A' .. 'Z', 'a' .. 'z', 0 .. 9);
    my $long = join '', map { $c[rand @c] } 1 .. 512;
    seed_key($redis, $long, id => 'k_512');
    my $longer = $long . 'x';
    seed_key($redis, $longer, id => 'k_513');

    my $res = $nginx->get('/api/x', Authorization => "Bearer $long");
    is($res->status, 200, '512 bytes: 200');
    answer_is($nginx->get('/api/x', Authorization => "Bearer $longer"),
        'invalid', name => '513 bytes');
    is(status_of($nginx->get('/status/x', Authorization => "Bearer $longer")),
        'invalid', '513 bytes: $apikey_status = invalid');
};

subtest 'unknown, expired and revoked keys get the same 401' => sub {
    my $unknown = new_token();
    my $expired = new_token();
    my $revoked = new_token();
    my $no_id = new_token();
    my $empty_id = new_token();
    my $too_long = 'a' x 600;
    seed_key($redis, $expired, id => 'k_exp', expires_at => now - 60);
    seed_key($redis, $revoked, id => 'k_rev', revoked => 1);
    seed_key($redis, $no_id, name => 'no id field');
    seed_key($redis, $empty_id, id => '', name => 'empty id');

    my %res;
    for ([unknown => $unknown], [expired => $expired],
        [revoked => $revoked], [no_id => $no_id], [empty_id => $empty_id],
        [too_long => $too_long])
    {
        my ($what, $t) = @$_;
        $res{$what} = $nginx->get('/api/x', Authorization => "Bearer $t");
        answer_is($res{$what}, 'invalid', name => $what);
    }
    my $ref = $res{unknown}->raw_without_date;
    for my $what (qw(expired revoked no_id empty_id too_long)) {
        is($res{$what}->raw_without_date, $ref,
            "$what: byte-identical to unknown (Date aside)");
    }

    is(status_of($nginx->get('/status/x', Authorization => "Bearer $unknown")),
        'invalid', '$apikey_status = invalid');
    is(status_of($nginx->get('/status/x', Authorization => "Bearer $expired")),
        'expired', '$apikey_status = expired');
    is(status_of($nginx->get('/status/x', Authorization => "Bearer $revoked")),
        'revoked', '$apikey_status = revoked');
    is(status_of($nginx->get('/status/x', Authorization => "Bearer $no_id")),
        'invalid', 'a record without id: $apikey_status = invalid');
};

subtest 'the reason for a refused key is logged at info level' => sub {
    my $expired = new_token();
    seed_key($redis, $expired, id => 'k_exp2', expires_at => now - 60);
    my $mark = $nginx->mark;
    $nginx->get('/api/x', Authorization => "Bearer $expired");
    my @info = grep { /\[info\]/ && /expired/ }
        split /\n/, $nginx->error_log_since($mark);
    ok(@info >= 1, 'an [info] line says "expired"');
    unlike(join("\n", @info), qr/\Q$expired\E/, 'without the key');
};

subtest 'the realm comes from apikey_realm' => sub {
    answer_is($nginx->get('/realm/x'), 'missing', realm => 'my api');
    answer_is($nginx->get('/realm/x', Authorization => 'Bearer'),
        'malformed', realm => 'my api');
    answer_is($nginx->get('/realm/x', Authorization => 'Bearer nope'),
        'invalid', realm => 'my api');
};

subtest 'error_page takes over the body, the challenge stays' => sub {
    my $res = $nginx->get('/errpage/x');
    is($res->status, 401, 'status 401');
    is($res->body, "custom page\n", 'body from error_page');
    is($res->header('www-authenticate'), 'Bearer realm="api"',
        'WWW-Authenticate still set');
    is($nginx->get('/errpage/x', Authorization => "Bearer $token")->status,
        200, 'a valid key still passes');
};

subtest 'an unprotected location is untouched' => sub {
    my $res = $nginx->get('/open/x');
    is($res->status, 200, 'no key needed');
    is_deeply([$res->headers('www-authenticate')], [], 'no challenge');
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, $token);
};

done_testing;
