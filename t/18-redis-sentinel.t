# Redis Sentinel (apikey_redis_upstream ... { sentinel ...;
# sentinel_master ...; }): a primary, one replica and three sentinels on
# loopback, nginx with two workers and the cache on.  The module asks the
# sentinels for the primary, confirms it with ROLE and follows it: under
# load, a SIGKILL of the primary lets no wrong key in, answers 503 only
# within the failover window (measured and reported here), and 200 again
# within 2 s after the sentinels name the new primary, without a reload;
# a key revoked on the new primary is refused within 100 ms.  Also a
# SIGSTOP of the primary, the subscribed sentinel killed, and a
# SENTINEL FAILOVER by hand.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;
use ApiKey::Load;
use ApiKey::Test::Sentinel;
use ApiKey::Test::TLS;

# nginx -t: what a block with sentinels must and must not hold
sub block_check {
    my ($what, $block, $re) = @_;
    my ($rc, $out) = nginx_check(http => "$block\n    server {\n"
        . "        listen 127.0.0.1:%%PORT%%;\n"
        . "        location / { apikey on; apikey_redis k; }\n    }\n");
    if (!defined $re) {
        is($rc, 0, "nginx -t accepts $what") or diag $out;
        return;
    }
    subtest "nginx -t refuses $what" => sub {
        isnt($rc, 0, 'nginx -t fails');
        like($out, $re, "saying $re") or diag $out;
        like($out, qr/ in \S+nginx\.conf:\d+/, 'with the file and line');
    };
}

block_check('a block with sentinels and every setting',
    "apikey_redis_upstream k { sentinel 127.0.0.1:26379;\n"
    . " sentinel 127.0.0.1:26380; sentinel_master mymaster;\n"
    . " sentinel_auth user=s password=spw; auth password=pw; db 2; }");
block_check('both server and sentinel',
    "apikey_redis_upstream k { server 127.0.0.1:6379;\n"
    . " sentinel 127.0.0.1:26379; sentinel_master m; }",
    qr/\[emerg\].*both "server" and "sentinel" in apikey_redis_upstream "k"/);
block_check('sentinel without sentinel_master',
    "apikey_redis_upstream k { sentinel 127.0.0.1:26379; }",
    qr/\[emerg\].*"sentinel" without "sentinel_master" in apikey_redis_ups/);
block_check('sentinel_master without sentinel',
    "apikey_redis_upstream k { server 127.0.0.1:6379; sentinel_master m; }",
    qr/\[emerg\].*"sentinel_master" without "sentinel" in apikey_redis_ups/);
block_check('sentinel_auth without sentinel',
    "apikey_redis_upstream k { server 127.0.0.1:6379;\n"
    . " sentinel_auth password=x; }",
    qr/\[emerg\].*"sentinel_auth" without "sentinel" in /);
block_check('sentinel_master twice',
    "apikey_redis_upstream k { sentinel 127.0.0.1:26379;\n"
    . " sentinel_master a; sentinel_master b; }",
    qr/\[emerg\].*duplicate "sentinel_master" in apikey_redis_upstream/);
block_check('sentinel_auth without a password',
    "apikey_redis_upstream k { sentinel 127.0.0.1:26379;\n"
    . " sentinel_master m; sentinel_auth user=x; }",
    qr/\[emerg\].*"sentinel_auth" needs password=/);
block_check('a sentinel address that is not one',
    "apikey_redis_upstream k { sentinel 127.0.0.1:99999;\n"
    . " sentinel_master m; }",
    qr/\[emerg\].*invalid port in "apikey_redis" address/);

# A sentinel the test steers: what the module does with what it is told,
# timed by the test rather than by real sentinels
subtest 'a node is used only once the sentinels name it and it says ROLE '
    . 'master, and no more once they name another' => sub {
    my $a = start_redis();
    my $b = start_redis();
    my $replica = start_redis(args => [ '--replicaof', '127.0.0.1',
        $a->port ]);
    my $t = new_token();
    seed_key($a, $t, id => 'k_a');
    seed_key($b, $t, id => 'k_b');
    ok(wait_until(sub {
        ($replica->info('replication')->{master_link_status} // '') eq 'up'
    }, slack(10), 0.05), 'the replica is in sync');
    my $fake = ApiKey::Test::Sentinel::Fake->start(primary => $replica->port);
    my $n = start_nginx(workers => 2, redis => $a,
        vars => { FAKE => $fake->port }, http => <<'EOF');
    apikey_redis_upstream steered {
        sentinel         127.0.0.1:%%FAKE%%;
        sentinel_master  mymaster;
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis steered;
        apikey_redis_timeout 300ms;
        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF
    my $fc = $n->client;
    my $v = sub { $fc->get('/api/x', Authorization => "Bearer $t")->verdict };
    my $h0 = $replica->calls('hmget');
    like($v->(), qr/^503 /, 'a replica named as the primary: 503 at the '
        . 'timeout') for 1 .. 2;
    is($replica->calls('hmget') - $h0, 0, '... and no lookup went to it');
    $fake->announce($a->port);
    ok(wait_until(sub { $v->() eq '200 k_a' }, slack(2), 0.01),
        'a switch to the primary: its answers');
    $fake->announce($b->port);
    my $t0 = time;
    ok(wait_until(sub { $v->() eq '200 k_b' }, slack(1), 0.001),
        'a switch to another node, while the old one still says master: '
        . 'the new one answers');
    note sprintf 'the new node answered %.3fs after the switch was '
        . 'announced', time - $t0;
    my $ha = $a->calls('hmget');
    my @v = map { $v->() } 1 .. 40;
    is(scalar(grep { $_ ne '200 k_b' } @v), 0, 'every answer from then on '
        . 'is the new node\'s, on both workers') or diag "@v";
    is($a->calls('hmget') - $ha, 0, 'the old node gets no lookup');
    $n->stop;
    $fake->stop;
    $_->stop for $a, $b, $replica;
};

my $set = ApiKey::Test::Sentinel->start(replicas => 1, sentinels => 3);
my $first = $set->primary;

my $nginx = start_cached_nginx(redis => $first, workers => 2,
    cache => 'zone=apikeys:1m', quiet => 1, timeout => '500ms',
    http => "    apikey_redis_upstream keys {\n" . $set->conf
        . "        sentinel_master " . $set->master . ";\n    }\n",
    redis_args => 'keys');

my @workers = $nginx->worker_pids;
is(scalar(@workers), 2, 'nginx runs two workers');

# the keys are written to the primary and reach the replica
my %token = map { $_ => new_token() } qw(valid unknown revoked late);
sub seed {
    my ($redis) = @_;
    seed_key($redis, $token{valid}, id => 'k_valid');
    seed_key($redis, $token{revoked}, id => 'k_revoked', revoked => 1);
    seed_key($redis, $token{late}, id => 'k_late');
}
seed($first);

my @mix = (
    { class => 'valid', path => '/echo/a', token => $token{valid},
      id => 'k_valid' },
    { class => 'unknown', path => '/echo/b', token => $token{unknown} },
    { class => 'revoked', path => '/echo/c', token => $token{revoked} },
);

my $c = $nginx->client;
sub verdict {
    my ($token) = @_;
    return $c->get('/echo/x', Authorization => "Bearer $token")->verdict;
}

# what the load saw while a fault happened at $t_fault and the sentinels
# named the new primary at $t_named: no wrong allow, 503 only between,
# every answer right from 2 s after the naming on
sub check_failover {
    my ($name, $r, $t_fault, $t_named) = @_;
    my $bound = slack(2);
    is($r->wrong_allows, 0, "$name: no wrong allow");
    is($r->errors, 0, "$name: every request got an answer")
        or diag $r->describe($r->rows(error => 1));
    my @bad = grep { $_->{status} == 503
        && ($_->{start} < $t_fault - 0.05
            || $_->{start} > $t_named + $bound) } $r->rows;
    is(scalar(@bad), 0, "$name: 503 only inside the failover window")
        or diag $r->describe(@bad[0 .. ($#bad < 5 ? $#bad : 5)]);
    my %after = (from => $t_named + $bound);
    ok($r->count(%after) >= 5, "$name: requests 2 s after the naming");
    for ([valid => 200], [unknown => 401], [revoked => 401]) {
        my ($class, $status) = @$_;
        my @b = $r->other_than([$status], %after, class => $class);
        is(scalar(@b), 0, "$name: $class answers $status again within 2 s "
            . 'of the naming') or diag $r->describe(@b[0 .. ($#b < 5
                ? $#b : 5)]);
    }
    my @e = sort { $a->{start} <=> $b->{start} }
        grep { $_->{status} == 503 } $r->rows;
    my $window = @e ? $e[-1]{start} + $e[-1]{elapsed} - $e[0]{start} : 0;
    my $end = @e ? $e[-1]{start} : $t_fault;
    my ($back) = sort { $a <=> $b } map { $_->{start} + $_->{elapsed} }
        grep { $_->{status} == 200 && $_->{start} > $end } $r->rows;
    my $what = !@e ? ''
        : sprintf('; 503s from %.2fs to %.2fs after it (%.2fs); 200s again '
            . '%s', $e[0]{start} - $t_fault, $e[-1]{start} - $t_fault,
            $window, defined $back ? sprintf('%.2fs after the naming',
            $back - $t_named) : 'never');
    diag sprintf "%s: %d answers, %d of them 503; the sentinels named the "
        . "new primary %.2fs after the fault%s", $name, $r->total,
        scalar(@e), $t_named - $t_fault, $what;
}

subtest 'lookups go to the primary the sentinels name' => sub {
    is(verdict($token{valid}), '200 k_valid', 'a valid key: 200');
    is(verdict($token{unknown}), '401 invalid', 'an unknown key: 401');
    is(verdict($token{revoked}), '401 revoked', 'a revoked key: 401');
    cmp_ok($first->calls('hmget'), '>=', 1, 'the primary answered');
    is(scalar(grep { $_->calls('hmget') } $set->replicas), 0,
        'the replica did not');
    cmp_ok(scalar(tracking_clients($first)), '>=', 1,
        'the cache\'s subscription is on the primary');
};

# a key cached from the new primary, then revoked there: refused from
# 100 ms after the write on (in one of two tries: a loaded machine may
# stall a worker once)
sub revoked_within_100ms {
    my ($redis, $name) = @_;
    # the subscription is on the new primary once a write is heard of
    settle($nginx, $redis, path => '/api/x');
    timing_ok("$name: a key revoked on the new primary is refused within "
        . '100 ms, the cache on', sub {
        my $t = new_token();
        seed_key($redis, $t, id => 'k_soon');
        my $get = sub {
            $c->get('/api/x', Authorization => "Bearer $t")->status;
        };
        my @warm = map { $get->() } 1 .. 6;
        my $h0 = $redis->calls('hmget');
        push @warm, map { $get->() } 1 .. 4;
        my $hmget = $redis->calls('hmget') - $h0;
        $redis->cmd('HSET', key_hash($t), 'revoked', 1);
        my $done = time;
        my (@late, $n);
        while (time < $done + slack(0.6)) {
            my $sent = time;
            my $s = $get->();
            next if $sent < $done + slack(0.1);
            $n++;
            push @late, $s if $s != 401;
        }
        my $ok = !grep({ $_ != 200 } @warm) && $hmget <= 2 && $n >= 5
            && !@late;
        return ($ok, sprintf 'before: %s, %d HMGETs for 4 cached answers; '
            . 'from 100 ms after: %d requests, %d not refused (%s)',
            join(',', @warm), $hmget, $n // 0, scalar(@late), "@late");
    }, 2);
}

# the lookups a node served; the sentinels close its clients when they
# make it a replica, the test's own as well
sub calls {
    my ($node) = @_;
    for (1 .. 3) {
        my $n = eval { $node->calls('hmget') };
        return $n if defined $n;
        delete $node->{client};
    }
    die "no answer from " . $node->addr;
}

# Load for a second, then $fault->($old) at the fault's time; waits for
# the sentinels to name another primary, loads on for 3 s and checks what
# the load saw.  Returns the old primary, or nothing if no new one came.
sub failover_under_load {
    my ($name, $fault, %o) = @_;
    my $old = $set->primary;
    my $old_addr = $old->addr;
    # a moderate load: the suite runs files in parallel
    my $load = ApiKey::Load->start(port => $nginx->port, mix => \@mix,
        clients => 3, pause => 0.002);
    sleep slack(1);
    my $t_fault = time;
    $fault->($old);
    my $t_named = $set->wait_named($old_addr);
    ok($t_named, "$name: the sentinels name a new primary") or do {
        $load->stop;
        return;
    };
    sleep slack(0.5);
    my $h0 = $o{alive} ? calls($old) : 0;
    sleep slack(2.5);
    my $r = $load->stop;
    note $r->summary;
    check_failover($name, $r, $t_fault, $t_named);
    isnt($set->primary->addr, $old_addr, "$name: a replica is the primary");
    is(calls($old) - $h0, 0, "$name: the old primary gets no lookup "
        . 'once the sentinels named another, even while it still says master')
        if $o{alive};
    return $old;
}

timed_subtest('SIGKILL of the primary under load', sub {
    my $old = failover_under_load('SIGKILL', sub { $set->kill9($_[0]) })
        or return;
    revoked_within_100ms($set->primary, 'SIGKILL');
    # back as a replica, for the next test
    $set->rejoin($old);
    $set->wait_ready;
});

# the workers' subscriptions to +switch-master, per live sentinel
sub subscribed {
    my %n;
    for my $s (grep { !$_->{dead} } $set->sentinels) {
        $n{ $s->port } = grep { ($_->{sub} // 0) >= 1 } $s->client_list;
    }
    return \%n;
}

timed_subtest('SIGSTOP of the primary under load', sub {
    my $stopped;
    my $old = failover_under_load('SIGSTOP',
        sub { ($stopped = $_[0])->pause });
    $stopped->resume if $stopped;
    return unless $old;
    $set->demote($old);
    $set->wait_ready;
    is(verdict($token{valid}), '200 k_valid', 'a valid key: 200 after the '
        . 'old primary is back as a replica');
});

timed_subtest('SENTINEL FAILOVER by hand: a graceful switch', sub {
    failover_under_load('SENTINEL FAILOVER', sub { $set->failover },
        alive => 1) or return;
    $set->wait_ready;
});

timed_subtest('the subscribed sentinel killed: the next one, and a failover '
    . 'is still followed', sub {
    my $before = subscribed();
    my ($port) = grep { $before->{$_} } sort keys %$before;
    ok($port, 'a sentinel holds a worker\'s subscription') or return;
    my ($victim) = grep { $_->port == $port } $set->sentinels;
    $victim->kill9;
    ok(wait_until(sub {
        my $n = 0;
        $n += $_ for values %{ subscribed() };
        $n >= 2;
    }, slack(5), 0.05), 'both workers subscribe on the live sentinels');
    failover_under_load('a sentinel down, then SENTINEL FAILOVER',
        sub { $set->failover }, alive => 1);
});

# sentinels and data nodes over TLS: the module asks the sentinels, checks
# ROLE and looks keys up over TLS, the names verified against the
# addresses (the certificate's IP entry), and follows a failover
timed_subtest('sentinels and data nodes over TLS', sub {
    my $pki = ApiKey::Test::TLS->new;
    my $tls = ApiKey::Test::Sentinel->start(replicas => 1, sentinels => 3,
        tls => $pki);
    my $primary = $tls->primary;
    my $t = new_token();
    seed_key($primary, $t, id => 'k_tls');
    my $n = start_cached_nginx(redis => $primary, workers => 2,
        cache => 'zone=tlskeys:1m', quiet => 1,
        vars => { CA => $pki->dir . '/ca.crt' },
        http => "    apikey_redis_upstream tkeys {\n" . $tls->conf
            . "        sentinel_master " . $tls->master . ";\n"
            . "        tls on;\n"
            . "        tls_trusted_certificate %%CA%%;\n    }\n",
        redis_args => 'tkeys');
    my $tc = $n->client;
    my $v = sub {
        $tc->get('/echo/x', Authorization => "Bearer $_[0]")->verdict;
    };
    is($v->($t), '200 k_tls', 'a valid key: 200');
    is($v->(new_token()), '401 invalid', 'an unknown key: 401');
    my @conns = grep { ($_->{laddr} // '') =~ /:$primary->{tls_port}$/ }
        $primary->client_list;
    cmp_ok(scalar(@conns), '>=', 3, scalar(@conns) . ' connections of '
        . 'nginx on the primary\'s TLS port (lookups, subscriptions)');
    my $old = $tls->named;
    $tls->failover;
    ok($tls->wait_named($old), 'SENTINEL FAILOVER names a new primary');
    ok(wait_until(sub { $v->($t) eq '200 k_tls'
        && $tls->primary->calls('hmget') > 0 }, slack(3), 0.02),
        'lookups follow it over TLS');
    $tls->primary->cmd('HSET', key_hash($t), 'revoked', 1);
    ok(wait_until(sub { $v->($t) eq '401 revoked' }, slack(2), 0.01),
        'a revocation on the new primary is heard of');
    $n->stop;
    $tls->stop;
});

sub timed_subtest {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ApiKey::Load->timed_subtest(@_);
}

$nginx->stop;
$set->stop;
done_testing;
