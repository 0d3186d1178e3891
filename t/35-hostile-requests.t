# Hostile requests, sent as raw bytes, each with the answer documented for
# it (notes/behaviour.md, RFC 6750, or nginx's own 400/494/414 when nginx
# refuses the request before any module runs).  None of them reaches the
# upstream and no worker dies.
#
# The answers: missing (401, no error attribute), malformed (400,
# invalid_request), invalid (401, invalid_token: the same for unknown,
# revoked and over-long keys), core400 / core494 / core414 (nginx's plain
# pages, no WWW-Authenticate).

use lib 't/lib';
use ApiKey::Test;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, workers => 2, http => <<'EOF');
    log_format trust '$status $apikey_status "$upstream_addr" "$request"';

    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        # not what this test is about: a busy machine must not fail it
        apikey_redis_timeout 2s;
        access_log %%DIR%%/trust.log trust;

        location /open/ {
            proxy_pass http://%%ECHO%%;
        }

        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my $V = new_token();        # a valid key
my $U = new_token();        # unknown
my $R = new_token();        # revoked
seed_key($redis, $V, id => 'k_valid', scopes => '*');
seed_key($redis, $R, id => 'k_revoked', revoked => 1);

sub req {
    my ($headers, %o) = @_;
    my $line = $o{line} // 'GET /api/x HTTP/1.1';
    my $host = exists $o{host} ? $o{host} : "Host: localhost\r\n";
    return "$line\r\n" . ($host // '') . "Connection: close\r\n"
        . ($headers // '') . "\r\n" . ($o{body} // '');
}

sub auth { return req("Authorization: $_[0]\r\n", @_[1 .. $#_]) }

# [ what is sent, raw request, the answer (or [acceptable answers]) ]
my @cases = (
    ['no Authorization header', req()            => 'missing'],
    ['an empty Authorization header', req("Authorization:\r\n")
        => 'missing'],
    ['an Authorization header of spaces', req("Authorization:    \r\n")
        => 'missing'],
    ['Bearer with no token', auth('Bearer')      => 'malformed'],
    ['Bearer and trailing spaces', auth('Bearer   ') => 'malformed'],
    ['lowercase bearer with no token', auth('bearer') => 'malformed'],
    ['two spaces before an unknown key', auth("Bearer  $U") => 'invalid'],
    ['a tab instead of the space', auth("Bearer\t$V") => 'malformed'],
    ['a tab after the key', auth("Bearer $V\t")  => 'malformed'],
    # nginx 1.22 keeps a leading tab in the value: no Bearer scheme then
    ['a tab before the scheme', auth("\tBearer $U") => ['missing',
        'invalid']],
    ['lowercase scheme, unknown key', auth("bearer $U") => 'invalid'],
    ['uppercase scheme, revoked key', auth("BEARER $R") => 'invalid'],
    ['a valid key and trailing garbage', auth("Bearer $V garbage")
        => 'malformed'],
    ['two keys, comma-separated', auth("Bearer $V,Bearer $V")
        => 'malformed'],
    ['two keys, comma and space', auth("Bearer $V, $V") => 'malformed'],
    ['a quoted key', auth(qq{Bearer "$V"})       => 'malformed'],
    ['a single-quoted key', auth("Bearer '$V'")  => 'malformed'],
    ['a key and a semicolon', auth("Bearer $V;") => 'malformed'],
    ['a control byte after the key', auth("Bearer $V\x01") => 'malformed'],
    ['DEL before the key', auth("Bearer \x7f$V") => 'malformed'],
    ['an escape sequence in the key', auth("Bearer \e[31m$V")
        => 'malformed'],
    ['a NUL after the key', auth("Bearer $V\x00") => 'core400'],
    ['a byte 0xff after the key', auth("Bearer $V\xff") => 'malformed'],
    ['invalid UTF-8 in the key', auth("Bearer $V\xc3\x28") => 'malformed'],
    ['valid UTF-8 (e acute) in the key', auth("Bearer $V\xc3\xa9")
        => 'malformed'],
    ['a byte-order mark before the key', auth("Bearer \xef\xbb\xbf$V")
        => 'malformed'],
    ['a no-break space after the scheme', auth("Bearer\xc2\xa0$V")
        => ['missing', 'malformed']],
    ['a percent-encoded key', auth('Bearer %61' . substr($V, 1))
        => 'malformed'],
    ['a key that starts with =', auth("Bearer =$V") => 'malformed'],
    ['a token of = only', auth('Bearer ==')      => 'malformed'],
    ['= inside the token', auth('Bearer ab=cd')  => 'malformed'],
    ['a valid key with = padding (another token)', auth("Bearer $V==")
        => 'invalid'],
    ['every b64token character', auth('Bearer aZ09-._~+/')
        => 'invalid'],
    ['a 513-byte token', auth('Bearer ' . ('A' x 513)) => 'invalid'],
    ['a 4000-byte token', auth('Bearer ' . ('A' x 4000)) => 'invalid'],
    ['an 8 KB token', auth('Bearer ' . ('A' x 8192)) => 'core494'],
    ['a header larger than the buffers', auth("Bearer $V",
        host => "Host: localhost\r\nX-Pad: " . ('p' x 9000) . "\r\n")
        => 'core494'],
    ['headers larger than all the buffers together', auth("Bearer $V",
        host => "Host: localhost\r\n"
            . join('', map { "X-Pad$_: " . ('p' x 7000) . "\r\n" } 1 .. 6))
        => 'core494'],
    ['two Authorization headers', req("Authorization: Bearer $V\r\n"
        . "Authorization: Bearer $V\r\n") => 'core400'],
    ['an unknown key, then a valid one', req("Authorization: Bearer $U\r\n"
        . "authorization: Bearer $V\r\n") => 'core400'],
    ['a key in the header and in the query string',
        auth("Bearer $V", line => "GET /api/x?access_token=$V HTTP/1.1")
        => 'malformed'],
    ['a key in the query string only',
        req(undef, line => "GET /api/x?access_token=$V HTTP/1.1")
        => 'malformed'],
    ['ACCESS_TOKEN in the query string',
        req(undef, line => "GET /api/x?a=1&ACCESS_TOKEN=$V HTTP/1.1")
        => 'malformed'],
    ['an empty access_token argument',
        req(undef, line => 'GET /api/x?a=1&access_token= HTTP/1.1')
        => 'malformed'],
    ['an over-long query string', req(undef,
        line => 'GET /api/x?access_token=' . ('A' x 10000) . ' HTTP/1.1')
        => 'core414'],
    ['Basic credentials', auth('Basic dXNlcjpwYXNz') => 'missing'],
    ['the Token scheme', auth("Token $V")        => 'missing'],
    ['the Digest scheme', auth('Digest username="k", response="x"')
        => 'missing'],
    ['Bearerxyz', auth('Bearerxyz')              => 'missing'],
    ['no space between scheme and key', auth("Bearer$V") => 'missing'],
    ['a colon between scheme and key', auth("Bearer:$V")
        => ['missing', 'malformed']],
    ['a control byte between scheme and key', auth("Bearer\x01$V")
        => ['missing', 'malformed']],
    ['Proxy-Authorization instead', req("Proxy-Authorization: Bearer $V\r\n")
        => 'missing'],
    ['a spoofed X-ApiKey-Id and no key', req("X-ApiKey-Id: k_valid\r\n")
        => 'missing'],
    ['a folded Authorization header', req("Authorization: Bearer\r\n $V\r\n")
        => 'core400'],
    ['a space before the colon', req("Authorization : Bearer $V\r\n")
        => 'core400'],
    ['a CR inside the value', auth("Bearer $V\rX") => 'core400'],
    ['a request without Host', auth("Bearer $V", host => undef)
        => 'core400'],
    ['Content-Length and Transfer-Encoding', auth("Bearer $V",
        host => "Host: localhost\r\nContent-Length: 5\r\n"
            . "Transfer-Encoding: chunked\r\n", body => "0\r\n\r\n")
        => 'core400'],
    ['a key only in a chunked trailer',
        req(undef, line => 'POST /api/x HTTP/1.1',
            host => "Host: localhost\r\nTransfer-Encoding: chunked\r\n")
            . "3\r\nabc\r\n0\r\nAuthorization: Bearer $V\r\n\r\n"
        => 'missing'],
    ['a body and no key', req("Content-Length: 11\r\n",
        line => 'POST /api/x HTTP/1.1', body => 'hello world') => 'missing'],
    ['dot segments from an open location', req(undef,
        line => 'GET /open/../api/x HTTP/1.1') => 'missing'],
    ['encoded dot segments', req(undef,
        line => 'GET /open/%2e%2e/api/x HTTP/1.1') => 'missing'],
    ['encoded dot segments and slash', req(undef,
        line => 'GET /open/%2E%2E%2Fapi/x HTTP/1.1') => 'missing'],
    ['a double slash', req(undef, line => 'GET //api/x HTTP/1.1')
        => 'missing'],
    ['an absolute URI', req(undef, line => 'GET http://evil/api/x HTTP/1.1')
        => 'missing'],
    ['HTTP/1.0 without Host', req(undef, line => 'GET /api/x HTTP/1.0',
        host => undef) => 'missing'],
    ['a method with a bad character', auth("Bearer $V",
        line => 'G@T /api/x HTTP/1.1') => 'core400'],
);

cmp_ok(scalar(@cases), '>=', 40, scalar(@cases) . ' hostile requests');

my $echo = $nginx->echo_upstream;
my @workers = $nginx->worker_pids;
my $hits = $echo->hits;

sub core_page_is {
    my ($res, $what, $label) = @_;
    my %page = (core400 => [400, qr{<title>400 Bad Request</title>}],
        core494 => [400, qr{400 Request Header Or Cookie Too Large}],
        core414 => [414, qr{414 Request-URI Too Large}]);
    my ($status, $re) = @{ $page{$what} };
    if (defined $res->error) {
        fail("$label: no complete answer (" . $res->error . ')');
        return;
    }
    is($res->status, $status, "$label: status $status (nginx core)");
    like($res->body, $re, "$label: nginx's own page");
    is_deeply([$res->headers('www-authenticate')], [],
        "$label: no WWW-Authenticate");
    ok(!defined $res->header('x-echo'), "$label: the upstream did not "
        . 'answer');
}

sub answer_of {
    my ($res) = @_;
    return undef if defined $res->error;
    for my $name (qw(missing malformed invalid)) {
        return $name if $res->body eq answer_body($name)
            && $res->status == ($name eq 'malformed' ? 400 : 401);
    }
    return undef;
}

for my $c (@cases) {
    my ($label, $raw, $want) = @$c;
    subtest $label => sub {
        my $res = $nginx->raw($raw);
        my @ok = ref $want ? @$want : ($want);
        my $got = answer_of($res) // '';
        my $expect = (grep { $_ eq $got } @ok) ? $got : $ok[0];
        if ($expect =~ /^core/) {
            core_page_is($res, $expect, $label);
        } else {
            answer_is($res, $expect, name => $label);
        }
        is($echo->hits, $hits, "$label: nothing reached the upstream");
        $hits = $echo->hits;
    };
}

subtest 'keep-alive: a key is not remembered for the next request on the '
    . 'connection' => sub {
    my $c = $nginx->client;
    my $res = $c->get('/api/x', Authorization => "Bearer $V");
    is($res->status, 200, 'first request, with the key: 200');
    is($res->upstream && $res->upstream->header('x-apikey-id'), 'k_valid',
        'the upstream saw the key id');
    $res = $c->get('/api/x');
    answer_is($res, 'missing', name => 'second request, no key');
    $res = $c->get('/api/x', Authorization => "Bearer $U");
    answer_is($res, 'invalid', name => 'third request, unknown key');
    is($c->connections, 1, 'all on one connection');
    is($echo->hits, $hits + 1, 'only the first reached the upstream');
    $c->close;
    $hits = $echo->hits;
};

subtest 'the access log agrees: no refused request went upstream' => sub {
    my $log = do {
        open(my $fh, '<', $nginx->dir . '/trust.log') or die $!;
        local $/;
        <$fh>;
    };
    my @lines = split /\n/, $log;
    my @upstream = grep { !/ "-" "/ } @lines;
    is(scalar(@upstream), 1, 'one request had an upstream address: the '
        . 'valid keep-alive one');
    like($upstream[0] // '', qr/^200 ok /, 'and it was allowed');
};

is_deeply([$nginx->worker_pids], \@workers, 'the same workers as before');
unlike($nginx->error_log, qr/exited on signal/, 'no worker crashed');

# nginx core itself logs a refused header line at [info], and appends the
# request line (query string included) to every line logged about a
# request, the module's too (see docs/security.md); what the module writes
# itself never holds a key
my @leaks = grep {
    my $own = $_ =~ s/, request: ".*?"(?=, host: |, upstream: |$)//sr;
    $own =~ /apikey/ && grep { index($own, $_) >= 0 } $V, $U, $R
} grep { !/http (?:proxy )?header:/ } $nginx->log_entries;
is(scalar(@leaks), 0, "no key in the module's own words")
    or diag join "\n", map { s{\Q$V\E|\Q$U\E|\Q$R\E}{<KEY>}gr } @leaks;

done_testing;
