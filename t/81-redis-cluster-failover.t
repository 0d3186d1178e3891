# A Redis Cluster with the cache on: one invalidation subscription per
# primary and worker, a revocation on any shard heard within 100 ms; a
# primary killed under load: 503s only for that shard's keys, 200s again
# within 2 s of its replica's promotion, and a revocation on the promoted
# node heard too.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;
use ApiKey::Load;
use ApiKey::Test::Cluster;

my $cl = ApiKey::Test::Cluster->start(primaries => 3, replicas => 1);
my @primaries = $cl->primaries;
my %shard = map { $primaries[$_]->port => $_ } 0 .. $#primaries;

# per shard: a valid key, a second valid key to revoke, an unknown key
my (%valid, %victim, %unknown);
while (keys(%valid) < 3 || keys(%victim) < 3 || keys(%unknown) < 3) {
    my $t = new_token();
    my $s = $shard{ $cl->owner(key_hash($t))->port };
    if (!$valid{$s}) {
        $valid{$s} = $t;
        $cl->seed_key($t, id => "k_valid$s");
    } elsif (!$victim{$s}) {
        $victim{$s} = $t;
        $cl->seed_key($t, id => "k_victim$s");
    } elsif (!$unknown{$s}) {
        $unknown{$s} = $t;
    }
}

my $nginx = start_cached_nginx(workers => 2, quiet => 1,
    cache => 'zone=apikeys:1m', timeout => '500ms',
    vars => { SEEDS => $cl->conf(3) },
    http => "apikey_redis_upstream shards {\n%%SEEDS%%}\n",
    redis_args => 'shards');
wait_live($nginx, 0, slack(5), 2);

my $c = $nginx->client;
sub verdict {
    my ($path, $token) = @_;
    my $r = $c->get($path, Authorization => "Bearer $token");
    return $r->status . ' ' . ($r->header('x-id') || $r->header('x-status'));
}

subtest 'one subscription per primary and worker, none on replicas' => sub {
    wait_until(sub { 3 == grep { tracking_clients($_) >= 2 } @primaries },
        slack(5), 0.05);
    for my $p (@primaries) {
        is(scalar(tracking_clients($p)), 2, 'primary ' . $p->port
            . ': one per worker');
    }
    is(scalar(map { tracking_clients($_) } $cl->replicas), 0,
        'no replica is subscribed to');
};

# The key is cached valid, revoked on its primary, and refused within
# 100 ms: the subscription to that primary heard it.
sub revocation_heard {
    my ($token, $id) = @_;
    my $key = key_hash($token);
    timing_ok("$id: refused within 100 ms of its revocation", sub {
        my $owner = $cl->owner($key);
        $owner->cmd('HDEL', $key, 'revoked');
        wait_until(sub { verdict('/api/x', $token) eq "200 $id" },
            slack(2), 0.01);
        verdict('/api/x', $token) for 1 .. 2;
        my $n = $owner->calls('hmget');
        verdict('/api/x', $token) for 1 .. 4;
        my $cached = $owner->calls('hmget') == $n;
        $owner->cmd('HSET', $key, 'revoked', 1);
        my $t0 = time;
        my $ok = wait_until(sub { verdict('/api/x', $token) =~ /^401/ },
            slack(2), 0.002);
        my $took = time - $t0;
        return ($ok && $cached && $took < 0.1, sprintf('%s, %.3fs',
            $cached ? 'served from the cache' : 'NOT cached', $took));
    });
}

subtest 'a revocation on any shard is refused within 100 ms' => sub {
    revocation_heard($victim{$_}, "k_victim$_") for 0 .. 2;
};

sub load_mix {
    my @mix;
    for my $s (0 .. 2) {
        push @mix, { class => "valid$s", path => '/echo/x',
            token => $valid{$s}, id => "k_valid$s" },
            { class => "valid$s", path => '/echo-nocache/x',
            token => $valid{$s}, id => "k_valid$s" },
            { class => "unknown$s", path => '/echo/x',
            token => $unknown{$s} };
    }
    return \@mix;
}

subtest 'slots resharded under load: no 503, no wrong allow, refreshes '
    . 'bounded' => sub {
    my $load = ApiKey::Load->start(port => $nginx->port, mix => load_mix(),
        clients => 2, pause => 0.002);
    sleep slack(0.5);
    my $mark = $nginx->mark;
    my $t0 = time;
    # the slots of shard 1's and shard 2's keys swap primaries (shard 0,
    # killed next, keeps its own), a key at a time with lookups in between
    # (ASK), then for good (MOVED)
    for my $s (1, 2) {
        for my $token ($valid{$s}, $unknown{$s}) {
            my $slot = $cl->slot(key_hash($token));
            my $to = $primaries[3 - $s];
            next if $cl->map->{$slot} == $to->port;
            $cl->move_slot($slot, $to, batch => 1,
                between => sub { sleep 0.2 });
            sleep 0.2;
        }
    }
    my $elapsed = time - $t0;
    sleep slack(0.5);
    my $r = $load->stop;
    note $r->summary;
    is($r->wrong_allows, 0, 'no wrong allow');
    is($r->errors, 0, 'every request got an answer');
    for my $s (0 .. 2) {
        my @bad = $r->other_than([200], class => "valid$s");
        is(scalar(@bad), 0, "valid$s: 200 all along")
            or diag $r->describe(@bad[0 .. ($#bad < 5 ? $#bad : 5)]);
        @bad = $r->other_than([401], class => "unknown$s");
        is(scalar(@bad), 0, "unknown$s: 401 all along")
            or diag $r->describe(@bad[0 .. ($#bad < 5 ? $#bad : 5)]);
    }
    my $log = $nginx->error_log_since($mark);
    my $refreshes = () = $log =~ /slot map from|for the slot map/g;
    my $bound = 2 * (int(($elapsed + slack(0.5)) / 0.2) + 2);
    cmp_ok($refreshes, '<=', $bound, sprintf('%d slot map refreshes by 2 '
        . 'workers in %.1fs: at most one per worker and 200 ms',
        $refreshes, $elapsed));
    cmp_ok($refreshes, '>=', 1, 'the map was refreshed');
    is(verdict('/nocache/x', $valid{$_}), "200 k_valid$_",
        "valid$_ answers from its new primary") for 1, 2;
};

subtest 'a primary killed under load: only its shard answers 503, for '
    . 'seconds' => sub {
    my $load = ApiKey::Load->start(port => $nginx->port, mix => load_mix(),
        clients => 2, pause => 0.002);
    sleep slack(1);
    my $dead = $primaries[0];
    my $slot = $cl->slot(key_hash($valid{0}));
    my $t_kill = time;
    $dead->kill9;
    $dead->{dead} = 1;
    my $t_prom;
    wait_until(sub {
        my $port = eval { $cl->map->{$slot} } // 0;
        $t_prom = time if $port && $port != $dead->port;
        return defined $t_prom;
    }, slack(20), 0.02);
    ok($t_prom, 'a replica was promoted');
    sleep slack(3);
    my $r = $load->stop;
    note $r->summary;
    diag sprintf 'promoted %.2fs after the kill', ($t_prom // time) - $t_kill;
    is($r->wrong_allows, 0, 'no wrong allow');
    is($r->errors, 0, 'every request got an answer');
    for my $class (qw(valid1 valid2)) {
        my @bad = $r->other_than([200], class => $class);
        is(scalar(@bad), 0, "$class: 200 all along (another shard)")
            or diag $r->describe(@bad[0 .. ($#bad < 5 ? $#bad : 5)]);
    }
    for my $class (qw(unknown1 unknown2)) {
        my @bad = $r->other_than([401], class => $class);
        is(scalar(@bad), 0, "$class: 401 all along (another shard)");
    }
    my %after = (from => ($t_prom // time) + slack(2));
    ok($r->count(%after, class => 'valid0') >= 10,
        'requests for the killed shard from 2 s after the promotion');
    my @bad = $r->other_than([200], %after, class => 'valid0');
    is(scalar(@bad), 0, 'the killed shard\'s key answers 200 again within '
        . '2 s of the promotion')
        or diag $r->describe(@bad[0 .. ($#bad < 5 ? $#bad : 5)]);
    @bad = $r->other_than([401], %after, class => 'unknown0');
    is(scalar(@bad), 0, 'and its unknown key 401');
};

subtest 'a revocation on the promoted primary is refused within 100 ms'
    => sub {
    my $owner = $cl->owner(key_hash($victim{0}));
    ok(wait_until(sub { 2 <= tracking_clients($owner) }, slack(5), 0.02),
        'the promoted primary has the workers\' subscriptions');
    revocation_heard($victim{0}, 'k_victim0');
};

subtest 'apikey revoke --cluster of a key on the promoted shard: refused '
    . 'within 100 ms' => sub {
    my $promoted = $cl->owner(key_hash($victim{0}));
    my $seed = $promoted->addr;
    my $k;
    for (1 .. 200) {
        my $made = run_cli_json('--cluster', $seed, 'create', '--name',
            'promoted shard');
        if ($cl->owner(key_hash($made->{key}))->port == $promoted->port) {
            $k = $made;
            last;
        }
    }
    ok($k, 'the tool made a key whose record is on the promoted primary')
        or return;
    ok(wait_until(sub { verdict('/api/x', $k->{key}) eq "200 $k->{id}" },
        slack(2), 0.01), 'the key is let in');
    verdict('/api/x', $k->{key}) for 1 .. 2;
    my $n = $promoted->calls('hmget');
    verdict('/api/x', $k->{key}) for 1 .. 4;
    is($promoted->calls('hmget'), $n, 'from the cache');
    timing_ok('refused within 100 ms of apikey revoke', sub {
        my $r = run_cli('--cluster', $seed, 'revoke', $k->{id});
        my $t0 = time;
        my $ok = $r->{code} == 0 && wait_until(sub {
            verdict('/api/x', $k->{key}) =~ /^401/ }, slack(2), 0.002);
        my $took = time - $t0;
        return ($ok && $took < 0.1, sprintf('exit %d, refused %.3fs after '
            . 'the tool returned', $r->{code}, $took));
    }, 1);
};

subtest 'lookups never went to a replica' => sub {
    for my $r ($cl->replicas) {
        is($r->calls('hmget'), 0, 'replica ' . $r->port . ': no HMGET');
    }
};

done_testing;
