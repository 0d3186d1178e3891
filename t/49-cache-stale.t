# apikey_cache_stale: while Redis cannot answer, a key Redis confirmed
# within the grace is answered from the cache ($apikey_cache_status
# STALE), a remembered unknown key too (401); nothing else is, and nothing
# past the grace, counted from when the subscription was lost for keys
# cached before.  A key revoked while Redis was reachable stays refused;
# once Redis answers again it is used at once, and an entry from before
# the outage is never served again unless Redis confirms it since: not by
# a subscription that comes back, not by an outage that starts again.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

use File::Copy qw(copy);

my $WORKERS = 2;
my $GRACE = 5;

my @tokens;

sub token {
    my $t = new_token();
    push @tokens, $t;
    return $t;
}

# "200 STALE": the status and $apikey_cache_status of one request
sub ask {
    my ($nginx, $token, $path) = @_;
    my $r = $nginx->get($path // '/api/x',
        $token ? (Authorization => "Bearer $token") : ());
    return $r->status . ' ' . ($r->header('x-cache') // '');
}

my $SERVER = <<'EOF';
        add_header X-Cache $apikey_cache_status always;

        location /nostale/ {
            apikey on;
            apikey_cache_stale off;
            alias %%WWW%%/api/;
        }
EOF

sub start_stale_nginx {
    my ($redis, %o) = @_;
    return start_cached_nginx(redis => $redis, workers => $WORKERS,
        quiet => 1, timeout => '500ms',
        cache => 'zone=apikeys:1m ttl=60s negative_ttl=60s',
        http => $o{http} // "apikey_cache_stale ${GRACE}s;",
        server => $SERVER);
}

# asks until the answer is a HIT: the key's entry is in the zone
sub cached {
    my ($nginx, $token, $want) = @_;
    my $got = '';
    wait_until(sub { ($got = ask($nginx, $token)) eq "$want HIT" },
        slack(5), 0.01);
    return $got;
}

# A Redis and a stale nginx of their own, with the key $t cached; redis
# and nginx are the options of each.
sub cached_pair {
    my ($t, $fields, %o) = @_;
    my $redis = start_redis(%{ $o{redis} // {} });
    my $n = start_stale_nginx($redis, %{ $o{nginx} // {} });
    seed_key($redis, $t, @$fields);
    settle($n, $redis);
    is(cached($n, $t, 200), '200 HIT', 'the key is cached');
    return ($redis, $n);
}

# Redis killed: the answer for $t once the workers saw their
# subscriptions closed (a HIT until then)
sub kill_redis {
    my ($redis, $n, $t) = @_;
    $redis->kill9;
    my $got;
    wait_until(sub { ($got = ask($n, $t)) ne '200 HIT' }, slack(2), 0.005);
    return $got;
}

# the data a Redis started with --dbfilename $name.rdb comes back with
my $serial = 0;
sub redis_data {
    my ($name, %records) = @_;
    my $dir = test_dir() . '/prep' . ++$serial;
    mkdir $dir or die "mkdir $dir: $!";
    my $prep = start_redis(dir => $dir);
    seed_key($prep, $_, @{ $records{$_} }) for keys %records;
    $prep->cmd('SAVE');
    $prep->stop;
    copy("$dir/dump.rdb", test_dir() . "/$name.rdb")
        or die "copy dump.rdb: $!";
}

# asks for the key until the answer is not a 200 STALE (but for the HITs
# before); [sent, got, "status cache"] of each, from $t0 on
sub poll_stale {
    my ($nginx, $token, $t0, $until) = @_;
    my @rows;
    my $c = $nginx->client;
    while (time < $until) {
        my $sent = time;
        my $r = $c->get('/api/x', Authorization => "Bearer $token");
        push @rows, [$sent - $t0, time - $t0,
            $r->status . ' ' . ($r->header('x-cache') // '')];
        last unless $rows[-1][2] =~ /^200 (?:HIT|STALE)$/;
        sleep 0.01;
    }
    $c->close;
    return @rows;
}


subtest 'nginx -t: apikey_cache_stale values' => sub {
    my $conf = sub {
        my ($http, $loc) = @_;
        return <<"EOF";
    apikey_cache_zone zone=z:1m;
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis 127.0.0.1:6379;
        apikey_cache z;
        location / { apikey on; $loc }
    }
EOF
    };
    for (['apikey_cache_stale 30s;', ''], ['apikey_cache_stale off;', ''],
        ['apikey_cache_stale 1m;', 'apikey_cache_stale off;'],
        ['', 'apikey_cache_stale 500ms;'])
    {
        my ($rc, $out) = nginx_check(http => $conf->(@$_));
        is($rc, 0, "accepted: @$_") or diag $out;
    }
    my $wrong = qr/"apikey_cache_stale" directive must be "off" or a time /
        . qr/greater than 0 in /;
    for (['apikey_cache_stale 0;', qr/$wrong/],
        ['apikey_cache_stale soon;', qr/$wrong/],
        ['apikey_cache_stale -5s;', qr/$wrong/],
        ['apikey_cache_stale 5s 6s;',
            qr/invalid number of arguments in "apikey_cache_stale"/],
        ['apikey_cache_stale 5s; apikey_cache_stale 6s;',
            qr/"apikey_cache_stale" directive is duplicate/])
    {
        my ($http, $re) = @$_;
        my ($rc, $out) = nginx_check(http => $conf->($http, ''));
        isnt($rc, 0, "refused: $http");
        like($out, $re, '... with a clear message');
    }
};


subtest '$apikey_cache_status without an outage: HIT, MISS, BYPASS, '
    . 'empty' => sub {
    my $redis = start_redis();
    my $nginx = start_stale_nginx($redis);
    my $t = token();
    seed_key($redis, $t, id => 'k_status');
    settle($nginx, $redis);
    is(ask($nginx, $t), '200 MISS', 'first lookup: MISS');
    is(ask($nginx, $t), '200 HIT', 'then: HIT');
    is(ask($nginx, $t, '/nocache/x'), '200 BYPASS', 'apikey_cache off: '
        . 'BYPASS');
    is(ask($nginx, undef), '401 ', 'no token, no lookup: empty');
    $nginx->stop;
    $redis->stop;
};


subtest 'off (the default): a cached key is 503 as soon as Redis is gone'
    => sub {
    my $t = token();
    my ($redis, $nginx) = cached_pair($t, [id => 'k_off'],
        nginx => { http => '' });
    $redis->kill9;
    my @got;
    wait_until(sub { push @got, ask($nginx, $t); $got[-1] ne '200 HIT' },
        slack(3), 0.01);
    is($got[-1], '503 BYPASS', 'then 503, the cache bypassed') or diag
        "@got";
    my @stale = grep { /STALE/ } @got;
    is(scalar(@stale), 0, 'never STALE');
    $nginx->stop;
    $redis->stop;
};


my $redis = start_redis(args => ['--dbfilename', 'stale.rdb']);
my $nginx = start_stale_nginx($redis);

my %key = map { $_ => token() }
    qw(valid revoked remembered unknown cut);

subtest "apikey_cache_stale ${GRACE}s, Redis killed: cached keys answer "
    . "for ${GRACE}s from the last PONG, then 503" => sub {
    seed_key($redis, $key{valid}, id => 'k_valid');
    seed_key($redis, $key{revoked}, id => 'k_revoked');
    seed_key($redis, $key{cut}, id => 'k_cut');
    settle($nginx, $redis);
    is(cached($nginx, $key{valid}, 200), '200 HIT', 'a valid key cached');
    my $read = time;
    is(cached($nginx, $key{cut}, 200), '200 HIT', 'another one cached');
    is(cached($nginx, $key{revoked}, 200), '200 HIT', 'a third one cached');
    $redis->cmd('HSET', key_hash($key{revoked}), 'revoked', 1);
    ok(wait_until(sub { ask($nginx, $key{revoked}) =~ /^401/ }, slack(2),
        0.005), '... and revoked while Redis is reachable: 401');
    is(cached($nginx, $key{revoked}, 401), '401 HIT', '... and cached so');
    is(ask($nginx, $key{remembered}), '401 MISS', 'an unknown key ...');
    is(ask($nginx, $key{remembered}), '401 HIT', '... remembered');

    # Redis's own clock of each command: the subscriptions' last PING
    # (bare, where a lookup's carries a nonce) is when they last heard all
    my $monitor = $redis->connect;
    $monitor->cmd('MONITOR');

    # the grace counts from the loss of the subscription, not the read
    sleep($GRACE + 0.5 - (time - $read)) if time - $read < $GRACE + 0.5;

    my $t_kill = time;
    is(kill_redis($redis, $nginx, $key{valid}), '200 STALE', 'the valid '
        . sprintf('key read %.1fs before: 200, STALE', $t_kill - $read));
    is(ask($nginx, $key{revoked}), '401 STALE', 'the key revoked before: '
        . '401');
    is(ask($nginx, $key{remembered}), '401 STALE', 'the remembered unknown '
        . 'key: 401');
    is(ask($nginx, $key{unknown}), '503 BYPASS', 'a key not in the cache: '
        . '503');
    is(ask($nginx, $key{valid}, '/nostale/x'), '503 BYPASS',
        'apikey_cache_stale off in a location: 503 there');

    my $ping;
    while (defined(my $line = eval { $monitor->read_reply })) {
        $ping = $1 if $line =~ /^(\d+\.\d+) \[\d+ [^\]]+\] "PING"$/;
    }
    $monitor->close;
    ok($ping, sprintf('the last PONG %.3fs before the kill',
        $t_kill - ($ping // 0))) or return;

    # every answer is 200 STALE until the first 503
    my @rows = poll_stale($nginx, $key{valid}, $ping,
        $t_kill + $GRACE + slack(2));
    my $first = $rows[-1][2] =~ /^200/ ? undef : $rows[-1];
    ok($first, 'the valid key stops being served') or return;
    is(scalar(grep { $_->[2] ne '200 STALE' } @rows[0 .. $#rows - 1]), 0,
        'STALE until then');
    is($first->[2], '503 BYPASS', '... with a 503');
    my $last = @rows > 1 ? $rows[-2] : [0, 0, ''];
    note sprintf '%d answers; from the last PONG, the last STALE at '
        . '+%.3fs, the first 503 at +%.3fs', scalar(@rows), $last->[1],
        $first->[1];
    # a worker stamps the PONG with its cached clock, which a slow run
    # (valgrind) leaves behind: the grace may end that much early
    cmp_ok($first->[1], '>=', $GRACE - slack(0.15) + 0.14, "not before "
        . "${GRACE}s from the last PONG");
    cmp_ok($first->[0], '<=', $GRACE + slack(0.3), "... and not past it");
    cmp_ok(scalar(@rows), '>', 50, scalar(@rows) . ' answers');

    is(ask($nginx, $key{remembered}), '503 BYPASS', 'past the grace, the '
        . 'remembered unknown key: 503');
    is(ask($nginx, $key{revoked}), '503 BYPASS', '... the revoked one: '
        . '503');
};

subtest 'Redis back with a key revoked while nginx was cut off: refused, '
    . 'entries from before the outage never HIT again' => sub {
    # the data Redis comes back with: k_cut revoked meanwhile
    redis_data('stale', $key{valid} => [id => 'k_valid'],
        $key{revoked} => [id => 'k_revoked', revoked => 1],
        $key{cut} => [id => 'k_cut', revoked => 1]);

    my $mark = $nginx->mark;
    $redis->restart;
    my $t_back = time;
    is($redis->cmd('HGET', key_hash($key{cut}), 'revoked'), 1,
        'Redis is back, k_cut revoked in its data');

    my $t200;
    wait_until(sub {
        ask($nginx, $key{valid}) =~ /^200 (?:BYPASS|MISS|HIT)/
            and $t200 = time }, slack(3), 0.01);
    ok($t200, 'the valid key is answered by Redis again ...');
    cmp_ok(($t200 // time) - $t_back, '<', slack(1), sprintf('... within '
        . '1 s (%.3fs)', ($t200 // time) - $t_back));

    wait_live($nginx, $mark, slack(5), $WORKERS);
    my $cut = ask($nginx, $key{cut});
    is($cut, '401 MISS', 'once the subscription is back, the key revoked '
        . 'while it was down is looked up and refused');
    is(ask($nginx, $key{revoked}), '401 MISS', 'the key revoked before: '
        . '401');
    is(cached($nginx, $key{valid}, 200), '200 HIT', 'the valid key is '
        . 'cached again');
};

subtest 'Redis answers between two outages: an entry it contradicted is '
    . 'not served stale in the second' => sub {
    # the subscription refused: the outage stays open for the cache
    my $t = token();
    my ($own, $n) = cached_pair($t, [id => 'k_flap']);
    is(kill_redis($own, $n, $t), '200 STALE', 'Redis killed: STALE');
    $own->{users} = ['default on nopass ~* &* +@all -client -subscribe'];
    $own->restart;
    is(ask($n, $t), '401 BYPASS', 'Redis back with the key deleted, no '
        . 'subscription: Redis answers 401');
    $own->kill9;
    is(ask($n, $t), '503 BYPASS', 'killed again within the grace: 503, not '
        . 'the entry from before');
    $n->stop;
    $own->stop;
};

subtest 'Redis restarted within the grace, a key revoked in its data '
    . 'meanwhile: refused from the first answer on' => sub {
    my ($gone, $kept) = (token(), token());
    my ($own, $n) = cached_pair($gone, [id => 'k_gone'],
        redis => { args => ['--dbfilename', 'within.rdb'] });
    seed_key($own, $kept, id => 'k_kept');
    is(cached($n, $kept, 200), '200 HIT', 'another one cached');

    redis_data('within', $gone => [id => 'k_gone', revoked => 1],
        $kept => [id => 'k_kept']);

    my $t_kill = time;
    is(kill_redis($own, $n, $gone), '200 STALE', 'Redis killed: STALE');
    my $mark = $n->mark;
    $own->restart;
    my $t_back = time;
    cmp_ok($t_back - $t_kill, '<', $GRACE - 1, sprintf('Redis back %.2fs '
        . 'after the kill, within the grace', $t_back - $t_kill));
    my (@gone, $live);
    while (time < $t_back + slack(5)) {
        push @gone, ask($n, $gone);
        last if $live && time > $live + 0.5;
        $live //= time if $n->error_log_since($mark) =~ /are live/;
        sleep 0.01;
    }
    ok($live, 'the subscription is back');
    my @bad = grep { !/^401 / } @gone;
    is(scalar(@bad), 0, 'the key revoked meanwhile: ' . scalar(@gone)
        . ' answers, all 401') or diag "@gone";
    wait_live($n, $mark, slack(5), $WORKERS);
    is(ask($n, $kept), '200 MISS', 'the other key is asked again once the '
        . 'subscription is back ...');
    is(ask($n, $kept), '200 HIT', '... and cached');
    $n->stop;
    $own->stop;
};

subtest 'Redis stopped (SIGSTOP): STALE once the lookup times out, and '
    . 'not past the grace counted from the last PONG' => sub {
    my $t = token();
    my ($own, $n) = cached_pair($t, [id => 'k_paused']);
    my $t_stop = time;
    $own->pause;
    my @rows = poll_stale($n, $t, $t_stop, $t_stop + $GRACE + slack(3));
    $own->resume;
    my @seen;
    for (map { $_->[2] } @rows) {
        push @seen, $_ unless @seen && $seen[-1] eq $_;
    }
    is(join(', ', @seen), '200 HIT, 200 STALE, 503 BYPASS', 'HIT while the '
        . 'subscription may still be live, then STALE, then 503');
    note sprintf 'the first 503 at +%.3fs', $rows[-1][1];
    # the last PONG came at most 1 s before the stop; a lookup waits for
    # apikey_redis_timeout (500ms) before the cache is asked
    cmp_ok($rows[-1][1], '>', $GRACE - 1 - 0.1, 'not before the grace from '
        . 'the last PONG');
    cmp_ok($rows[-1][1], '<=', $GRACE + 0.5 + slack(0.5), '... and not '
        . 'past it');
    $n->stop;
    $own->stop;
};

subtest 'a key served stale still expires when its record says' => sub {
    my $t = token();
    # the set-up must finish before the expiry, and the expiry come within
    # the grace: both scaled on a slow run (valgrind)
    my $expires = now() + slack(4);
    my ($own, $n) = cached_pair($t, [id => 'k_expiring',
        expires_at => $expires], nginx => { http => 'apikey_cache_stale '
        . int($GRACE + slack(4)) . 's;' });
    is(kill_redis($own, $n, $t), '200 STALE', 'Redis killed: STALE');
    sleep(0.2) while time < $expires + 0.1;
    is(ask($n, $t), '401 STALE', 'past its expiry, within the grace: 401');
    $n->stop;
    $own->stop;
};

subtest 'no token in the error log' => sub {
    error_log_clean($nginx, @tokens);
};

done_testing;
