# apikey_metrics: a location that answers the module's counters in
# Prometheus text format (promtool accepts it) or, with ?format=json, as
# one JSON object with the same numbers.  The counters move with traffic
# of each kind, summed over all workers: requests by $apikey_status, cache
# hits, misses and bypasses, invalidations, Redis lookups by result and
# their round trips, and whether the invalidation subscription is live.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;
use ApiKey::Test::Proc qw(test_dir wait_until project_root);
use JSON::PP;

my $WORKERS = 2;

my $redis = start_redis();
my $nginx = start_cached_nginx(redis => $redis, workers => $WORKERS,
    cache => 'zone=apikeys:1m ttl=60s negative_ttl=10s', timeout => '300ms',
    server => <<'EOF');
        location = /metrics {
            apikey_metrics;
        }

        location /org/ {
            apikey on;
            apikey_org acme;
        }

        # a prefix whose label must be escaped: a quote and a backslash
        location /odd/ {
            apikey on;
            apikey_redis_prefix 'q"x\\y:';
        }
EOF

# name{labels} => value, from the text format
sub metrics {
    my $res = $nginx->get('/metrics');
    die "GET /metrics: " . ($res->error // $res->status)
        unless ($res->status // 0) == 200;
    my %m;
    for (split /\n/, $res->body) {
        next if /^#/;
        my ($k, $v) = /^(\S+(?:\{.*\})?) (\S+)$/ or die "bad line: $_";
        $m{$k} = $v;
    }
    return \%m;
}

my $server = $redis->addr;

sub req   { "apikey_requests_total{status=\"$_[0]\"}" }
sub cache { "apikey_cache_lookups_total{result=\"$_[0]\"}" }
sub cmd   { "apikey_redis_commands_total{server=\"$server\",result=\"$_[0]\"}" }
my $UP = "apikey_subscription_up{server=\"$server\",prefix=\"apikey:\"}";
my $RECONNECTS = "apikey_subscription_reconnects_total{server=\"$server\","
    . "prefix=\"apikey:\"}";
my $COUNT = "apikey_redis_lookup_seconds_count{server=\"$server\"}";

# what changed between two snapshots, only where it did
sub delta {
    my ($a, $b) = @_;
    my %d;
    for (keys %$b) {
        next if /^apikey_redis_lookup_seconds|_connections|_entries/;
        my $n = $b->{$_} - ($a->{$_} // 0);
        $d{$_} = $n if $n;
    }
    return \%d;
}

sub get_as {
    my ($path, $auth) = @_;
    return $nginx->get($path, defined $auth ? (Authorization => $auth) : ());
}

sub key_with {
    my ($id, %f) = @_;
    my $t = new_token();
    seed_key($redis, $t, id => $id, %f);
    return $t;
}

my $text_file = test_dir() . '/metrics.txt';

sub promtool_ok {
    my ($name) = @_;
    my $res = $nginx->get('/metrics');
    open(my $fh, '>', $text_file) or die "$text_file: $!";
    print {$fh} $res->body;
    close $fh;
    my $out = `promtool check metrics < $text_file 2>&1`;
    is($?, 0, "$name: promtool check metrics passes") or diag($out);
}


subtest 'every status is there from the start, with 0' => sub {
    my $res = $nginx->get('/metrics');
    is($res->status, 200, 'status 200');
    is($res->header('content-type'),
        'text/plain; version=0.0.4; charset=utf-8', 'Content-Type');
    my $m = metrics();
    for my $s (qw(ok missing malformed invalid expired revoked
                  insufficient_scope org_mismatch rate_limited ip_not_allowed
                  error)) {
        ok(exists $m->{req($s)}, "apikey_requests_total{status=\"$s\"}");
    }
    is($m->{req('missing')}, 0, 'no request yet: missing 0');
    is($m->{$UP}, 1, 'the subscription is up');
    is($m->{"apikey_subscription_up{server=\"$server\","
        . "prefix=\"q\\\"x\\\\y:\"}"}, 1,
        'a prefix with a quote and a backslash, escaped');
    promtool_ok('at the start');
};

subtest 'only GET and HEAD' => sub {
    is($nginx->request('POST', '/metrics')->status, 405, 'POST: 405');
    is($nginx->request('HEAD', '/metrics')->status, 200, 'HEAD: 200');
    is($nginx->get('/metrics?format=xml')->status, 400, 'format=xml: 400');
};

subtest 'each kind of answer counts once under its status' => sub {
    my $ok = key_with('k_ok', scopes => 'read:people', org => 'acme');
    my $expired = key_with('k_expired', expires_at => now - 60);
    my $revoked = key_with('k_revoked', revoked => 1);
    my $noscope = key_with('k_noscope');
    my @cases = (
        [ok => '/nocache/x', "Bearer $ok"],
        [missing => '/nocache/x', undef],
        [malformed => '/nocache/x', 'Bearer ab$cd'],
        [invalid => '/nocache/x', 'Bearer ' . new_token()],
        [expired => '/nocache/x', "Bearer $expired"],
        [revoked => '/nocache/x', "Bearer $revoked"],
        [insufficient_scope => '/people/x', "Bearer $noscope"],
        [org_mismatch => '/org/x', "Bearer $noscope"],
    );
    for my $c (@cases) {
        my ($status, $path, $auth) = @$c;
        my $before = metrics();
        my $res = get_as($path, $auth);
        is($res->header('x-status') // '', $status, "a request: $status");
        my $d = delta($before, metrics());
        is($d->{req($status)}, 1, "apikey_requests_total{status=\"$status\"} "
            . "+1");
        my @other = grep { /^apikey_requests_total/ && $_ ne req($status) }
            keys %$d;
        is("@other", '', 'no other status moved');
    }
};

subtest 'a miss, then a hit; Redis lookups and their round trips' => sub {
    my $t = key_with('k_cached');
    settle($nginx, $redis);
    my $before = metrics();
    is(get_as('/api/x', "Bearer $t")->header('x-status'), 'ok', 'first: ok');
    my $mid = metrics();
    is(get_as('/api/x', "Bearer $t")->header('x-status'), 'ok', 'second: ok');
    my $after = metrics();
    my $d1 = delta($before, $mid);
    my $d2 = delta($mid, $after);
    is($d1->{cache('miss')}, 1, 'first: a miss');
    is($d1->{cmd('ok')}, 1, 'first: one Redis lookup, ok');
    is($mid->{$COUNT} - $before->{$COUNT}, 1,
        'first: one round trip in the histogram');
    is($d2->{cache('hit')}, 1, 'second: a hit');
    is($d2->{cmd('ok')}, undef, 'second: no Redis lookup');
    cmp_ok($after->{"apikey_redis_connections{server=\"$server\","
        . "state=\"idle\"}"}, '>=', 1, 'an idle connection is kept');
    cmp_ok($after->{"apikey_cache_entries"}, '>=', 1, 'entries >= 1');
    my $inf = $after->{"apikey_redis_lookup_seconds_bucket{server=\"$server\","
        . "le=\"+Inf\"}"};
    is($inf, $after->{$COUNT}, 'le="+Inf" equals _count');
    cmp_ok($after->{"apikey_redis_lookup_seconds_bucket{server=\"$server\","
        . "le=\"1\"}"}, '<=', $inf, 'buckets are cumulative');
};

subtest 'a revocation bumps invalidations' => sub {
    my $t = key_with('k_to_revoke');
    settle($nginx, $redis);
    is(get_as('/api/x', "Bearer $t")->header('x-status'), 'ok', 'cached');
    my $before = metrics();
    $redis->cmd('HSET', key_hash($t), revoked => 1);
    ok(wait_until(sub {
        (get_as('/api/x', "Bearer $t")->header('x-status') // '') eq 'revoked'
    }, 5, 0.01), 'the next requests see the revocation');
    my $d = delta($before, metrics());
    is($d->{apikey_cache_invalidations_total}, 1,
        'apikey_cache_invalidations_total +1');
};

subtest 'two workers: the counts of both are summed' => sub {
    my $t = key_with('k_both');
    my $before = metrics();
    my (%seen, $n);
    wait_until(sub {
        my $res = get_as('/nocache/x', "Bearer $t");
        $n++;
        $seen{$res->header('x-worker') // '?'}++;
        keys(%seen) == $WORKERS;
    }, 10, 0);
    is(scalar(keys %seen), $WORKERS, "all $WORKERS workers answered");
    my $d = delta($before, metrics());
    is($d->{req('ok')}, $n, "$n requests, apikey_requests_total ok +$n");
    is($d->{cmd('ok')}, $n, "$n Redis lookups");
};

subtest 'JSON: the same numbers' => sub {
    my $m = metrics();
    my $res = $nginx->get('/metrics?format=json');
    is($res->header('content-type'), 'application/json', 'Content-Type');
    my $j = eval { decode_json($res->body) };
    ok($j, 'the body parses') or return diag($@);
    is($j->{requests}{$_}, $m->{req($_)}, "requests.$_") for
        qw(ok missing invalid revoked);
    is($j->{cache}{lookups}{$_}, $m->{cache($_)}, "cache.lookups.$_") for
        qw(hit miss bypass);
    is($j->{cache}{invalidations}, $m->{apikey_cache_invalidations_total},
        'cache.invalidations');
    my ($r) = grep { $_->{server} eq $server } @{ $j->{redis} };
    is($r->{commands}{ok}, $m->{cmd('ok')}, 'redis[].commands.ok');
    is($r->{lookup_seconds}{count}, $m->{$COUNT}, 'lookup_seconds.count');
    my ($s) = grep { $_->{prefix} eq 'apikey:' } @{ $j->{subscriptions} };
    is($s->{subscription}, 'up', 'subscriptions[].subscription: up');
    my ($odd) = grep { $_->{prefix} ne 'apikey:' } @{ $j->{subscriptions} };
    is($odd->{prefix}, 'q"x\\y:', 'an odd prefix comes back as it is');
};

subtest 'Redis too slow: a timeout, and an error status' => sub {
    my $t = key_with('k_slow');
    my $before = metrics();
    $redis->pause;
    my $res = get_as('/nocache/x', "Bearer $t");
    $redis->resume;
    is($res->status, 503, 'the request is answered 503');
    my $d = delta($before, metrics());
    is($d->{cmd('timeout')}, 1, 'commands{result="timeout"} +1');
    is($d->{req('error')}, 1, 'requests{status="error"} +1');
    wait_until(sub { metrics()->{$UP} == 1 }, 5, 0.05);
};

subtest 'Redis stopped: errors, a bypassed cache, the subscription down, '
    . 'then up again' => sub {
    my $t = key_with('k_down');
    my $before = metrics();
    $redis->stop;
    is(get_as('/nocache/x', "Bearer $t")->status, 503, 'a request: 503');
    my $d = delta($before, metrics());
    is($d->{cmd('error')}, 1, 'commands{result="error"} +1');
    is($d->{req('error')}, 1, 'requests{status="error"} +1');
    ok(wait_until(sub { metrics()->{$UP} == 0 }, slack(6), 0.1),
        'apikey_subscription_up 0 once no worker has heard from Redis');
    $before = metrics();
    get_as('/api/x', "Bearer $t");
    $d = delta($before, metrics());
    is($d->{cache('bypass')}, 1, 'the cache is bypassed');
    $redis->restart;
    ok(wait_until(sub { metrics()->{$UP} == 1 }, slack(6), 0.1),
        'apikey_subscription_up 1 again');
    ok(wait_until(sub { metrics()->{$RECONNECTS} >= 1 }, slack(6), 0.1),
        'apikey_subscription_reconnects_total moved');
    promtool_ok('after all this');
};

subtest 'a zone full of unknown keys: evictions' => sub {
    # 32 KB: room for 64 unknown keys, the older ones make room
    my $n2 = start_cached_nginx(redis => $redis, workers => 1,
        cache => 'zone=tiny:32k negative_ttl=60s',
        server => 'location = /metrics { apikey_metrics; }');
    my $c = $n2->client;
    for (1 .. 100) {
        $c->get('/api/x', Authorization => 'Bearer ' . new_token());
    }
    my $res = $c->get('/metrics');
    my ($evictions) = $res->body =~ /^apikey_cache_evictions_total (\d+)$/m;
    my ($entries) = $res->body =~ /^apikey_cache_entries (\d+)$/m;
    cmp_ok($evictions, '>=', 100 - 64, "$evictions evictions");
    cmp_ok($entries, '<=', 64 + 1, "$entries entries");
    $c->close;
};

subtest '$apikey_cache_status in a log_format' => sub {
    my $n2 = start_cached_nginx(redis => $redis, workers => 1,
        cache => 'zone=logged:1m',
        http => 'log_format ak "$apikey_id $apikey_status '
            . '$apikey_cache_status";',
        server => 'access_log %%DIR%%/ak.log ak;');
    my $t = key_with('k_logged');
    settle($n2, $redis);
    get_as2($n2, '/api/x', "Bearer $t") for 1 .. 2;
    get_as2($n2, '/nocache/x', "Bearer $t");
    get_as2($n2, '/api/x', undef);
    my @lines;
    wait_until(sub {
        open(my $fh, '<', $n2->dir . '/ak.log') or return 0;
        # the settling requests may be logged a moment late
        @lines = grep { !/^k_settle/ } <$fh>;
        chomp @lines;
        @lines >= 4;
    }, 5, 0.05);
    is_deeply(\@lines, ['k_logged ok MISS', 'k_logged ok HIT',
        'k_logged ok BYPASS', '- missing -'], 'MISS, HIT, BYPASS where the '
        . 'location has no cache, nothing without a lookup');
};

subtest 'the alerts of docs/operations.md are valid Prometheus rules' => sub {
    open(my $fh, '<', project_root() . '/docs/operations.md') or die $!;
    my $doc = do { local $/; <$fh> };
    my ($rules) = $doc =~ /^(    groups:\n.*?)\n\n(?!     )/ms;
    ok($rules, 'docs/operations.md has a rules block') or return;
    $rules =~ s/^    //mg;
    my $file = test_dir() . '/rules.yml';
    open(my $out, '>', $file) or die "$file: $!";
    print {$out} $rules;
    close $out;
    my $res = `promtool check rules $file 2>&1`;
    is($?, 0, 'promtool check rules passes') or diag($res);
    like($res, qr/3 rules found/, 'three alerts');
};

sub get_as2 {
    my ($n, $path, $auth) = @_;
    return $n->get($path, defined $auth ? (Authorization => $auth) : ());
}

done_testing;
