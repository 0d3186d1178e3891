# A Redis Cluster of three primaries and three replicas made by the test:
# every lookup goes to the primary that owns its key's slot, and never to
# a replica; keys spread over the cluster all answer.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Test::Cluster;

my $cl = ApiKey::Test::Cluster->start(primaries => 3, replicas => 1);

my $nginx = start_nginx(workers => 2,
    vars => { SEEDS => $cl->conf(2) }, http => <<'EOF');
    apikey_redis_upstream shards {
        %%SEEDS%%
    }

    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis shards;

        location /api/ {
            apikey on;
            add_header X-Status $apikey_status always;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my $c = $nginx->client;
sub verdict {
    my ($token) = @_;
    return $c->get('/api/x', Authorization => "Bearer $token")->verdict;
}

# the 1,000 keys made by the apikey tool through one seed of the cluster
my $seed = ($cl->nodes)[0]->addr;
my (@tokens, @ids);
for my $i (0 .. 999) {
    my $k = run_cli_json('--cluster', $seed, 'create', '--name', "bench $i");
    push @tokens, $k->{key};
    push @ids, $k->{id};
}

my $revoked = new_token();
$cl->seed_key($revoked, id => 'k_revoked', revoked => 1);

subtest 'every one of 1,000 keys the CLI made answers 200 through the cluster' => sub {
    my %before = map { $_->port => $_->calls('hmget') } $cl->nodes;
    my @wrong = grep { verdict($tokens[$_]) ne "200 $ids[$_]" }
        0 .. $#tokens;
    is(scalar(@wrong), 0, 'all 200 with their own id')
        or diag "wrong: @wrong[0 .. ($#wrong < 5 ? $#wrong : 5)]";
    for my $p ($cl->primaries) {
        cmp_ok($p->calls('hmget') - $before{ $p->port }, '>', 200,
            'primary ' . $p->port . ' answered its share of lookups');
    }
    for my $r ($cl->replicas) {
        is($r->calls('hmget') - $before{ $r->port }, 0,
            'replica ' . $r->port . ' got no lookup');
    }
    unlike($nginx->error_log, qr/MOVED|ASK /,
        'no lookup was redirected: the slots were computed right');
};

subtest 'last use is written to the primary that owns its slot' => sub {
    my $owner = $cl->owner('apikey:last_used');
    ok(wait_until(sub { ($owner->cmd('HLEN', 'apikey:last_used') // 0)
        >= 900 }, slack(5), 0.05), 'apikey:last_used holds the keys used')
        or diag $owner->cmd('HLEN', 'apikey:last_used');
    ok($owner->cmd('HGET', 'apikey:last_used', $ids[0]) > 0,
        'with a time');
};

subtest 'unknown and revoked keys answer 401 on a cluster' => sub {
    is(verdict(new_token()), '401 invalid', 'an unknown key');
    is(verdict($revoked), '401 revoked', 'a revoked key');
};

subtest 'slots moved by hand: ASK and MOVED followed, no 503' => sub {
    my %by_slot;
    push @{ $by_slot{ $cl->slot(key_hash($tokens[$_])) } }, $_ for 0 .. 99;
    my @slots = (sort { $a <=> $b } keys %by_slot)[0 .. 9];
    my @moved = map { @{ $by_slot{$_} } } @slots;
    my $map = $cl->map;
    my $mark = $nginx->mark;
    my $t0 = time;
    my @wrong;
    my $check = sub {
        push @wrong, grep { verdict($tokens[$_]) ne "200 $ids[$_]" } @moved;
    };
    for my $slot (@slots) {
        my ($to) = grep { $_->port != $map->{$slot} } $cl->primaries;
        $cl->move_slot($slot, $to, batch => 1, between => $check);
        $check->();
    }
    my $elapsed = time - $t0;
    is(scalar(@wrong), 0, 'every key of the moving slots answered 200 all '
        . 'along') or diag "wrong: @wrong[0 .. ($#wrong < 5 ? $#wrong : 5)]";
    my $log = $nginx->error_log_since($mark);
    like($log, qr/apikey redis: ask slot/, 'an -ASK was followed');
    like($log, qr/apikey redis: moved slot/, 'a -MOVED was followed');
    my $refreshes = () = $log =~ /slot map from/g;
    my $bound = 2 * (int($elapsed / 0.2) + 2);
    cmp_ok($refreshes, '<=', $bound, "$refreshes slot map refreshes in "
        . sprintf('%.1fs', $elapsed) . ': at most one per worker and 200ms');
    cmp_ok($refreshes, '>=', 1, 'the slot map was refreshed');
    is(verdict($tokens[$_]), "200 $ids[$_]", 'a moved key answers after the '
        . 'move') for @moved[0 .. 2];
};

done_testing;
