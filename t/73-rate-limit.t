# A key's own rate limit (apikey_rate_limit_zone, apikey_rate_limit): the
# record's rate, or default= for a key without one, counted per node in
# one zone by every worker, with limit_req's burst, nodelay and delay;
# over it a 429 with Retry-After and the RateLimit fields, which the 2xx
# answers of a limited location carry too; a request another check
# refuses is not counted; limit_except limits some methods only; a reload
# keeps the counts; a malformed rate is an invalid key, never no limit.
# Rates are slow (1r/m, 6r/m): nothing drains while a test runs.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest qw(worker_of wait_live);
use IO::Socket::INET;

my $WORKERS = 2;

my $www = test_dir() . '/www';
for my $d ('', qw(/api /burst /default /delay /free /scoped /cached)) {
    mkdir "$www$d" or die "mkdir $www$d: $!";
    next unless $d;
    open(my $fh, '>', "$www$d/x") or die "$www$d/x: $!";
    print {$fh} "ok\n";
    close $fh;
}

my $HTTP = <<'EOF';
    apikey_rate_limit_zone keys:1m;
    apikey_cache_zone zone=apikeys:1m ttl=60s;

    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        apikey_redis %%REDIS%%;
        apikey_redis_timeout 2s;
        add_header X-Worker $pid always;
        add_header X-Status $apikey_status always;
        root %%WWW%%;

        location /api/ {
            apikey on;
            apikey_rate_limit zone=keys nodelay;
        }

        location /cached/ {
            apikey on;
            apikey_cache apikeys;
            apikey_rate_limit zone=keys nodelay;
        }

        location /burst/ {
            apikey on;
            apikey_rate_limit zone=keys burst=5 nodelay;
        }

        location /default/ {
            apikey on;
            apikey_rate_limit zone=keys default=1r/m nodelay;
        }

        location /delay/ {
            apikey on;
            apikey_rate_limit zone=keys burst=1;
        }

        location /scoped/ {
            apikey on;
            apikey_scopes write;
            apikey_rate_limit zone=keys nodelay;
        }

        location /free/ {
            apikey on;
        }

        location /except/ {
            apikey on;
            proxy_pass http://%%ECHO%%;

            limit_except GET {
                apikey_rate_limit zone=keys nodelay;
            }
        }
    }
EOF

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, workers => $WORKERS,
    vars => { WWW => $www }, http => $HTTP);
wait_live($nginx);

sub key_with {
    my (%f) = @_;
    my $t = new_token();
    seed_key($redis, $t, %f);
    return $t;
}

sub get {
    my ($path, $t, @h) = @_;
    return $nginx->get($path, Authorization => "Bearer $t", @h);
}

sub seq {
    my ($path, $t, $n) = @_;
    return join ' ', map { get($path, $t)->status } 1 .. $n;
}


subtest 'over the limit: 429, Retry-After, the RateLimit fields, exactly' => sub {
    my $t = key_with(id => 'k_six', rate => '6r/m');

    my $ok = get('/api/x', $t);
    is($ok->status, 200, 'the first request passes');
    is($ok->header('ratelimit-policy'), '"default";q=6;w=60',
        'RateLimit-Policy: the key\'s rate on the 200');
    is($ok->header('ratelimit'), '"default";r=0;t=0',
        'RateLimit: none left, nothing to wait for yet');
    ok(!defined $ok->header('retry-after'), 'no Retry-After on the 200');

    my $res = get('/api/x', $t);
    is($res->status, 429, 'the second, at once: 429');
    is($res->header('content-type'), 'application/json',
        'Content-Type: application/json');
    is($res->body, '{"error":"rate_limited",'
        . '"error_description":"API key rate limit exceeded"}' . "\n",
        'the JSON body');
    is_deeply([$res->headers('retry-after')], ['10'],
        'one Retry-After: 10 (one request of 6r/m)');
    is_deeply([$res->headers('ratelimit-policy')], ['"default";q=6;w=60'],
        'one RateLimit-Policy');
    is_deeply([$res->headers('ratelimit')], ['"default";r=0;t=10'],
        'one RateLimit: r=0, t as Retry-After');
    is_deeply([$res->headers('www-authenticate')], [],
        'no WWW-Authenticate: the key is good');
    is($res->header('x-status'), 'rate_limited',
        '$apikey_status = rate_limited');
    like($nginx->error_log,
        qr/\[info\].*apikey: key "k_six" refused: rate_limited/,
        'the refusal logged at info');
};

subtest 'two workers share one count' => sub {
    # every worker has served this path before the count: under valgrind a
    # worker's first requests are slow (its code not yet translated), and
    # the other one could answer all 80 before it answers one
    my $warm = key_with(id => 'k_warm', rate => '1000r/s', burst => 100);
    my %up;
    wait_until(sub {
        $up{ get('/api/x', $warm)->header('x-worker') // '?' } = 1;
        keys(%up) >= $WORKERS;
    }, slack(10), 0.01);

    my $t = key_with(id => 'k_shared', rate => '1r/m', burst => 9);
    my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
    my @rows = $b->run(
        request => sub { ('/api/x', Authorization => "Bearer $t") },
        until => sub { @{ $_[0] } >= 80 }, timeout => slack(20));
    $b->close;
    @rows = @rows[0 .. 79] if @rows > 80;
    is(scalar(@rows), 80, '80 answers');
    my %workers = map { worker_of($_) => 1 } @rows;
    is(scalar(keys %workers), $WORKERS, "all $WORKERS workers answered");
    my %by;
    $by{ $_->{status} }++ for @rows;
    is($by{200}, 10, '1 + burst 9 passed in all, not that many per worker');
    is($by{429}, 70, 'the others: 429');
};

subtest 'nodelay: 1 + burst at once; the record\'s burst wins' => sub {
    my $own = key_with(id => 'k_own_burst', rate => '1r/m', burst => 2);
    my @r = map { get('/burst/x', $own) } 1 .. 4;
    is(join(' ', map { $_->status } @r), '200 200 200 429',
        'burst=2 of the record over burst=5 of the directive: 3 pass');
    is(join(' ', map { ($_->header('ratelimit') // '') =~ /r=(\d+)/
        ? $1 : '-' } @r[0 .. 2]), '2 1 0',
        'RateLimit r= counts down on the 200s');
    like($r[2]->header('ratelimit'), qr/^"default";r=0;t=1[12]\d$/,
        't= is the time until the bucket is empty (~120s)');

    my $zero = key_with(id => 'k_zero_burst', rate => '1r/m', burst => 0);
    is(seq('/burst/x', $zero, 2), '200 429', 'a record\'s burst 0 wins too');

    my $dir = key_with(id => 'k_dir_burst', rate => '1r/m');
    is(seq('/burst/x', $dir, 7), '200 200 200 200 200 200 429',
        'no burst in the record: the directive\'s burst=5');
};

subtest 'default= for keys without a rate; keys with neither are free' => sub {
    my $none = key_with(id => 'k_no_rate');
    my $res = get('/default/x', $none);
    is($res->status, 200, 'default=1r/m: the first passes');
    is($res->header('ratelimit-policy'), '"default";q=1;w=60',
        'the policy is default=\'s');
    is(get('/default/x', $none)->status, 429, 'the second is limited');

    my $own = key_with(id => 'k_own_rate', rate => '6r/m');
    $res = get('/default/x', $own);
    is($res->header('ratelimit-policy'), '"default";q=6;w=60',
        'a key\'s own rate wins over default=');

    my $free = key_with(id => 'k_free');
    is(seq('/burst/x', $free, 8), join(' ', ('200') x 8),
        'no rate, no default=: not limited');
    ok(!defined get('/burst/x', $free)->header('ratelimit'),
        'and no RateLimit fields');

    my $limited = key_with(id => 'k_elsewhere', rate => '1r/m');
    is(seq('/free/x', $limited, 3), '200 200 200',
        'a location without apikey_rate_limit ignores the rate');
    ok(!defined get('/free/x', $limited)->header('ratelimit'),
        'and sends no RateLimit fields');
};

subtest 'a refused request does not count' => sub {
    my $t = key_with(id => 'k_noscope', rate => '1r/m');
    is(seq('/scoped/x', $t, 3), '403 403 403',
        'insufficient_scope, not rate_limited');
    my $w = key_with(id => 'k_noscope', rate => '1r/m', scopes => 'write');
    is(seq('/scoped/x', $w, 2), '200 429',
        'the same key id still has its one request');

    my $revoked = key_with(id => 'k_revoked_rate', rate => '1r/m',
        revoked => 1);
    is(get('/api/x', $revoked)->header('x-status'), 'revoked',
        'revoked before rate');
};

subtest 'without nodelay the excess waits its turn' => sub {
    my $t = key_with(id => 'k_delay', rate => '1r/s');
    my $burst = ApiKey::Burst->new(port => $nginx->port, conns => 3);
    my $sent = 0;
    my @rows = $burst->run(
        request => sub { $sent++ < 3 ? ('/delay/x',
            Authorization => "Bearer $t") : () },
        until => sub { @{ $_[0] } >= 3 }, timeout => slack(10));
    $burst->close;
    is(join(' ', sort map { $_->{status} } @rows), '200 200 429',
        'burst=1: two pass, the third is refused');
    my @ok = sort { $a <=> $b } map { $_->{got} - $_->{sent} }
        grep { $_->{status} == 200 } @rows;
    cmp_ok($ok[1] // 0, '>=', 0.8,
        sprintf('the second waited a request\'s time (%.2fs)',
            $ok[1] // 0));
};

subtest 'a client that leaves while its request waits' => sub {
    my $t = key_with(id => 'k_leaves', rate => '1r/s');
    is(get('/delay/x', $t)->status, 200, 'the first passes at once');
    my $mark = $nginx->mark;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $nginx->port, Proto => 'tcp') or die "connect: $!";
    print {$s} "GET /delay/x HTTP/1.1\r\nHost: x\r\n"
        . "Authorization: Bearer $t\r\n\r\n";
    sleep 0.2;
    close $s;
    ok(wait_until(sub { $nginx->error_log_since($mark)
        =~ /client prematurely closed connection/ }, slack(2)),
        'the waiting request ends when its client leaves');
    sleep 1.2;
    is(get('/delay/x', $t)->status, 200,
        'nginx goes on; the bucket drained meanwhile');
};

subtest 'limit_except: the limit of the methods it names' => sub {
    my $t = key_with(id => 'k_except', rate => '1r/m');
    is(seq('/except/x', $t, 3), '200 200 200', 'GET: not limited');
    ok(!defined get('/except/x', $t)->header('ratelimit'),
        'GET: no RateLimit fields');
    my @post = map { $nginx->request('POST', '/except/x',
        Authorization => "Bearer $t", 'Content-Length' => 0) } 1 .. 2;
    is(join(' ', map { $_->status } @post), '200 429',
        'POST: limited by limit_except\'s apikey_rate_limit');
    is($post[0]->header('ratelimit-policy'), '"default";q=1;w=60',
        'POST 200: RateLimit-Policy');
};

subtest 'a malformed rate or burst: an invalid key, not no limit' => sub {
    for my $case (['1r/h', undef], ['0r/s', undef], ['ten', undef],
                  [' 1r/s', undef], ['6r/m', '-1'], ['6r/m', 'x'])
    {
        my ($rate, $burst) = @$case;
        my %f = (id => 'k_bad', rate => $rate);
        $f{burst} = $burst if defined $burst;
        my $t = key_with(%f);
        my $what = "rate \"$rate\"" . (defined $burst
            ? ", burst \"$burst\"" : '');
        my $mark = $nginx->mark;
        my $res = get('/api/x', $t);
        answer_is($res, 'invalid', name => $what);
        is($res->header('x-status'), 'invalid', "$what: status invalid");
        like($nginx->error_log_since($mark),
            qr/\[warn\].*apikey: key "k_bad" has an invalid rate or burst/,
            "$what: the reason logged at warn");
    }
    my $t = key_with(id => 'k_bad_free', rate => 'lots');
    is(get('/free/x', $t)->status, 200,
        'where no apikey_rate_limit applies it is not read');
};

subtest 'the record\'s rate is cached with it' => sub {
    my $t = key_with(id => 'k_cached', rate => '1r/m', burst => 1);
    my $n = $redis->calls('hmget');
    my $c = $nginx->client;
    my @s = map { $c->get('/cached/x', Authorization => "Bearer $t")->status }
        1 .. 4;
    $c->close;
    cmp_ok($redis->calls('hmget') - $n, '<', 4, 'answered from the cache');
    is("@s", '200 200 429 429', 'the limit holds on cached records');
};

subtest 'a reload keeps the zone and its counts' => sub {
    my $t = key_with(id => 'k_reload', rate => '1r/m');
    is(get('/api/x', $t)->status, 200, 'before the reload: 200');
    $nginx->reload;
    my $res = get('/api/x', $t);
    is($res->status, 429, 'after: the count is still there, 429');
    cmp_ok($res->header('retry-after') // 0, '>', 50,
        'Retry-After close to a minute');
};

subtest 'the apikey tool writes rate and burst, nginx enforces them' => sub {
    my $k = run_cli_json({ redis => $redis }, 'create', '--name', 'Plan',
        '--rate', '1r/m', '--burst', '1');
    is($k->{rate}, '1r/m', 'create --json: rate');
    is($k->{burst}, 1, 'create --json: burst, a number');
    is(seq('/api/x', $k->{key}, 3), '200 200 429', 'nginx: 1 + burst 1');

    my $show = run_cli_json({ redis => $redis }, 'show', $k->{id});
    is_deeply([@$show{qw(rate burst)}], ['1r/m', 1], 'show --json');
    my $table = run_cli({ redis => $redis }, 'show', $k->{id});
    like($table->{out}, qr/^rate\s+1r\/m$/m, 'show: a rate row');

    my $rot = run_cli_json({ redis => $redis }, 'rotate', $k->{id});
    is_deeply([@$rot{qw(rate burst)}], ['1r/m', 1],
        'rotate: the new key keeps the limit');

    my $up = run_cli_json({ redis => $redis }, 'update', $rot->{id},
        '--rate', '6000r/m', '--burst', '');
    is_deeply([@$up{qw(rate burst)}], ['6000r/m', undef],
        'update --rate, --burst "" removes the burst');
    my $res = get('/api/x', $rot->{key});
    is($res->header('ratelimit-policy'), '"default";q=6000;w=60',
        'nginx reads the updated rate');

    my $r = run_cli({ redis => $redis }, 'update', $rot->{id},
        '--rate', '5r/h');
    is($r->{code}, 2, 'update --rate 5r/h: a usage error');
    like($r->{err}, qr/invalid --rate "5r\/h"/, 'says why');

    my $none = run_cli_json({ redis => $redis }, 'create', '--name', 'Free');
    is_deeply([@$none{qw(rate burst)}], [undef, undef],
        'no --rate: null in --json');
    my $hgetall = { @{ $redis->cmd('HGETALL',
        key_hash($none->{key})) } };
    ok(!exists $hgetall->{rate} && !exists $hgetall->{burst},
        'and no field in the record');
};

subtest 'nginx -t: the directives\' checks' => sub {
    my @bad = (
        ['apikey_rate_limit_zone keys;', qr/invalid zone "keys"/],
        ['apikey_rate_limit_zone keys:1k;', qr/zone "keys:1k" is too small/],
        ['apikey_rate_limit_zone keys:1m; apikey_rate_limit zone=keys '
            . 'default=10r/h;', qr/invalid rate "default=10r\/h"/],
        ['apikey_rate_limit_zone keys:1m; apikey_rate_limit zone=keys '
            . 'burst=-1;', qr/invalid burst "burst=-1"/],
        ['apikey_rate_limit_zone keys:1m; apikey_rate_limit zone=keys '
            . 'delay=1;', qr/invalid parameter "delay=1"/],
        ['apikey_rate_limit default=1r/s;', qr/needs zone=NAME/],
        ['apikey_rate_limit zone=nope;',
            qr/unknown apikey_rate_limit_zone "nope"|zero size shared/],
        ['apikey_rate_limit_zone keys:1m; apikey_rate_limit zone=keys; '
            . 'apikey_rate_limit zone=keys;', qr/is duplicate/],
        ['apikey_rate_limit_zone keys:1m; apikey_rate_limit_zone keys:1m;',
            qr/duplicate zone "keys"/],
        ['apikey_cache_zone zone=keys:1m; apikey_rate_limit_zone keys:1m;',
            qr/zone "keys" is already declared for a different use/],
        ['apikey_cache_zone zone=keys:1m; apikey_rate_limit zone=keys;',
            qr/zone "keys" is already declared for a different use/],
    );
    for my $case (@bad) {
        my ($http, $re) = @$case;
        my ($rc, $out) = nginx_check(http => "$http\n"
            . "server { listen 127.0.0.1:%%PORT%%; }");
        isnt($rc, 0, "refused: $http");
        like($out, $re, "says so: $re");
    }
    my ($rc, $out) = nginx_check(http => <<'EOF');
    apikey_rate_limit zone=later default=100r/s burst=20 nodelay;
    apikey_rate_limit_zone later:1m;
    server { listen 127.0.0.1:%%PORT%%; }
EOF
    is($rc, 0, 'a zone may be declared after its use') or diag($out);
};

done_testing;
