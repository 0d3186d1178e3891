# apikey_cache: a known key costs no Redis round trip, on any worker, and
# answers exactly as a fresh lookup would; unknown keys are remembered for
# negative_ttl; nothing is served past ttl, and a key's expiry is checked
# on cached entries; requests for one key in flight at once share one
# lookup; `apikey_cache off` asks Redis every time; the zone declared by
# apikey_cache_zone is used where `apikey_cache NAME` says, and only there.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

my $WORKERS = 2;

my $redis = start_redis();
my $nginx = start_cached_nginx(redis => $redis, workers => $WORKERS,
    cache => 'zone=apikeys:1m ttl=60s negative_ttl=10s');

my @tokens;
sub key_with {
    my ($id, %f) = @_;
    my $t = new_token();
    push @tokens, $t;
    seed_key($redis, $t, id => $id, %f);
    return $t;
}

sub hmgets { return $redis->calls('hmget') }

# $n answers for one token on many connections at once
sub burst {
    my ($path, $token, $n) = @_;
    my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
    my @rows = $b->run(
        request => sub { ($path, Authorization => "Bearer $token") },
        until => sub { @{ $_[0] } >= $n }, timeout => 10);
    $b->close;
    return @rows;
}

sub statuses {
    my %s;
    $s{"$_->{status} " . ($_->{header}{'x-status'} // '-')}++ for @_;
    return join ', ', map { "$_ x$s{$_}" } sort keys %s;
}


subtest 'a cached key costs no Redis round trip, on every worker' => sub {
    my $t = key_with('k_hot');
    settle($nginx, $redis);
    my $before = hmgets();
    my @rows = burst('/api/x', $t, 400);
    my $n = hmgets() - $before;
    is(statuses(@rows), '200 ok x' . scalar(@rows), 'every answer 200');
    is(scalar(grep { ($_->{header}{'x-id'} // '') ne 'k_hot' } @rows), 0,
        'every answer for k_hot');
    my %workers = map { $_->{header}{'x-worker'} => 1 } @rows;
    is(scalar(keys %workers), $WORKERS, "all $WORKERS workers answered");
    cmp_ok($n, '<=', $WORKERS, scalar(@rows) . " requests, $n HMGET "
        . "(at most one per worker)");
};

subtest 'apikey_cache off: every request asks Redis' => sub {
    my $t = key_with('k_uncached');
    my $c = $nginx->client;
    is($c->get('/api/x', Authorization => "Bearer $t")->status, 200,
        'the key is in the cache');
    my $before = hmgets();
    my @s = map { $c->get('/nocache/x', Authorization => "Bearer $t")
        ->status } 1 .. 50;
    is(join(',', @s), join(',', (200) x 50), '50 answers 200');
    is(hmgets() - $before, 50, '50 HMGET');
};

subtest 'apikey_cache_zone, then apikey_cache NAME: cached where named, '
    . 'not elsewhere' => sub {
    # the zone used (http level) before it is declared
    my $n2 = start_cached_nginx(redis => $redis, workers => 1,
        cache => 'split', http => 'apikey_cache_zone zone=split:1m;');
    my $t = key_with('k_split');
    my $c = $n2->client;
    my $ids = sub { join ' ', map { $c->get($_, Authorization =>
        "Bearer $t")->header('x-id') // '-' } @_ };
    is($ids->('/api/x'), 'k_split', 'let in');
    my $before = hmgets();
    is($ids->(('/api/x') x 20), join(' ', ('k_split') x 20), '20 times ...');
    is(hmgets() - $before, 0, '... from the zone');
    $before = hmgets();
    $ids->(('/nocache/x') x 5);
    is(hmgets() - $before, 5, 'apikey_cache off: 5 HMGET for 5 requests');
    $n2->stop;

    # declared, named nowhere: nothing cached
    my $n3 = start_nginx(redis => $redis, http => <<'EOF');
    apikey_cache_zone zone=unused:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        location / { apikey on; try_files $uri =204; }
    }
EOF
    $before = hmgets();
    my @s = map { $n3->get('/x', Authorization => "Bearer $t")->status }
        1 .. 5;
    is("@s", '204 204 204 204 204', 'a zone no apikey_cache names: let in');
    is(hmgets() - $before, 5, '... from Redis every time');
    $n3->stop;
};

subtest 'a cached record reaches the upstream as a fresh one does' => sub {
    my $name = "Nightly \x{c3}\x{a9}xport " . ('n' x 1000);
    my $t = key_with('k_ident', name => $name, org => 'acme',
        scopes => 'read:people write:*', expires_at => now + 3600);
    settle($nginx, $redis);
    my $before = hmgets();
    my @res = map { $nginx->get($_, Authorization => "Bearer $t") }
        qw(/echo/1 /echo/2 /echo/3 /echo-nocache/4);
    is(hmgets() - $before, 2, 'one HMGET for three cached requests, one '
        . 'for the uncached one');
    my @seen;
    for my $res (@res) {
        my $up = $res->upstream;
        push @seen, $up ? join("\n", map { $up->header("x-apikey-$_")
            // '(none)' } qw(id name org scopes)) : 'status ' . $res->status;
    }
    my $want = join "\n", 'k_ident', $name, 'acme', 'read:people write:*';
    is($seen[$_], $want, "request $_: X-ApiKey-Id, -Name, -Org, -Scopes")
        for 0 .. $#seen;
    ok(!grep({ $_->upstream && $_->upstream->has('authorization') } @res),
        'the Authorization header is removed from cached requests too');
};

subtest 'an unknown key is remembered: no Redis round trip within '
    . 'negative_ttl' => sub {
    my $t = new_token();
    push @tokens, $t;
    settle($nginx, $redis);
    my $before = hmgets();
    answer_is($nginx->get('/api/x', Authorization => "Bearer $t"),
        'invalid', name => 'first request');
    my @rows = burst('/api/x', $t, 200);
    is(statuses(@rows), '401 invalid x' . scalar(@rows),
        'every later answer 401');
    cmp_ok(hmgets() - $before, '<=', $WORKERS, scalar(@rows) + 1
        . ' requests, ' . (hmgets() - $before) . ' HMGET');
    answer_is($nginx->get('/api/x', Authorization => "Bearer $t"),
        'invalid', name => 'a remembered unknown key');

    # written by another program: no apikey tool, a token of its choosing
    seed_key($redis, $t, id => 'k_late');
    my $t0 = time;
    my $c = $nginx->client;
    my ($res, $waited);
    wait_until(sub {
        $res = $c->get('/api/x', Authorization => "Bearer $t");
        $waited = time - $t0;
        return $res->status == 200;
    }, 2, 0.001);
    is($res->status . ' ' . ($res->header('x-id') // '-'), '200 k_late',
        'once the record is written, the key is let in');
    cmp_ok($waited, '<', slack(0.1),
        sprintf('after %.1f ms', $waited * 1000));
    my @after = burst('/api/x', $t, 100);
    is(statuses(@after), '200 ok x' . scalar(@after),
        'and on every worker from then on');
};

subtest 'a key that expires while cached is refused from its expiry on'
    => sub {
    my $at = now + 2;
    my $t = key_with('k_expiring', expires_at => $at);
    settle($nginx, $redis);
    my $c = $nginx->client;
    is($c->get('/api/x', Authorization => "Bearer $t")->status, 200,
        'before its expiry: 200');
    my $before = hmgets();
    my @rows = burst('/api/x', $t, 50);
    is(statuses(@rows), '200 ok x' . scalar(@rows), 'served ...');
    is(hmgets() - $before, 0, '... from the cache');
    sleep($at + 1.05 - time) if time < $at + 1.05;
    my $res = $c->get('/api/x', Authorization => "Bearer $t");
    is($res->status . ' ' . $res->header('x-status'), '401 expired',
        'after its expiry: 401 expired');
    @rows = burst('/api/x', $t, 50);
    is(statuses(@rows), '401 expired x' . scalar(@rows),
        'on every worker');
};

subtest 'requests for one key in flight at once share one lookup' => sub {
    for my $path ('/api/x', '/nocache/x') {
        my $t = key_with('k_burst');
        settle($nginx, $redis);
        my $before = hmgets();
        # Redis holds the first lookup until every request has arrived
        $redis->pause;
        my $resumed;
        my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
        my %asked;
        my $t0 = time;
        my @rows = $b->run(
            request => sub { $asked{ $_[0] }++ ? ()
                : ($path, Authorization => "Bearer $t") },
            tick => sub {
                $redis->resume, $resumed = 1
                    if !$resumed && time > $t0 + 0.1;
            },
            until => sub { @{ $_[0] } >= 16 }, timeout => 5);
        $redis->resume unless $resumed;
        $b->close;
        my @first = grep { $_->{sent} < $t0 + 0.1 } @rows;
        is(scalar(@first), 16, "$path: 16 requests, sent while Redis "
            . 'waited');
        is(statuses(@rows), '200 ok x' . scalar(@rows), "$path: all 200");
        cmp_ok(hmgets() - $before, '<=', $WORKERS, "$path: "
            . (hmgets() - $before) . ' HMGET (at most one per worker)');
    }
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, @tokens);
    my @errors = $nginx->log_lines('error');
    is(scalar(@errors), 0, 'no [error]') or diag join "\n", @errors;
};


# A second nginx with short lifetimes: ttl bounds how long an entry is
# served even when Redis says nothing; negative_ttl=0 remembers nothing.
for my $case (['ttl=1s negative_ttl=1s', 1], ['negative_ttl=0', 0]) {
    my ($params, $neg) = @$case;
    my $short = start_cached_nginx(redis => $redis, workers => 1,
        cache => "zone=short:1m $params");
    my $c = $short->client;
    my $valid = key_with('k_short');
    my $unknown = new_token();
    settle($short, $redis);

    if ($neg) {
        subtest "$params: an entry is not served past its ttl" => sub {
            my $before = hmgets();
            for my $t ($valid, $unknown) {
                $c->get('/api/x', Authorization => "Bearer $t") for 1 .. 5;
            }
            is(hmgets() - $before, 2, 'within the ttl: one HMGET per key');
            sleep 1.1;
            $before = hmgets();
            my @s = map { $c->get('/api/x', Authorization => "Bearer $_")
                ->status } $valid, $unknown;
            is("@s", '200 401', 'after the ttl: the same answers');
            is(hmgets() - $before, 2, '... from Redis again');
        };
    } else {
        subtest "$params: unknown keys are not remembered" => sub {
            my $before = hmgets();
            my @s = map { $c->get('/api/x', Authorization => "Bearer $unknown")
                ->status } 1 .. 10;
            is("@s", join(' ', (401) x 10), '401 each time');
            is(hmgets() - $before, 10, 'one HMGET each');
            $c->get('/api/x', Authorization => "Bearer $valid") for 1 .. 5;
            is(hmgets() - $before, 11, 'known keys are still cached');
        };
    }
    $short->stop;
}

done_testing;
