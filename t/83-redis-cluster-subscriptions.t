# The cache on a cluster is trusted only while every primary's
# invalidation subscription is live: a primary that cannot be reached
# keeps the cache bypassed, even when the other primaries' subscriptions
# come back.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;
use ApiKey::Test::Cluster;

my $cl = ApiKey::Test::Cluster->start(primaries => 3, replicas => 1);
my ($a, $b) = $cl->primaries;

my $token;
do { $token = new_token() } until $cl->owner(key_hash($token))->port
    == $b->port;
$cl->seed_key($token, id => 'k_b');

my $nginx = start_cached_nginx(workers => 1, quiet => 1,
    cache => 'zone=apikeys:1m', timeout => '500ms',
    vars => { SEEDS => $cl->conf(3) },
    http => "apikey_redis_upstream shards {\n%%SEEDS%%}\n",
    redis_args => 'shards');

my $c = $nginx->client;
sub verdict {
    my $r = $c->get('/api/x', Authorization => "Bearer $token");
    return $r->status . ' ' . ($r->header('x-id') || $r->header('x-status'));
}

# lookups of the key that reach its primary, over $n requests
sub lookups {
    my ($n) = @_;
    my $before = $b->calls('hmget');
    is(verdict(), '200 k_b', 'the key answers 200') for 1 .. $n;
    return $b->calls('hmget') - $before;
}

subtest 'with every subscription live, the key is served from the cache'
    => sub {
    wait_until(sub { tracking_clients($a) && tracking_clients($b) },
        slack(5), 0.02);
    verdict() for 1 .. 2;
    is(lookups(4), 0, 'no lookup reached Redis');
};

subtest 'a primary gone (its replica first, so that it keeps its slots) '
    . 'and another\'s subscription lost and back: still bypassed' => sub {
    my ($replica) = grep { ($_->info('replication')->{master_port} // 0)
        == $a->port } $cl->replicas;
    $replica->kill9;
    $replica->{dead} = 1;
    $a->kill9;
    $a->{dead} = 1;
    sleep slack(0.3);
    $b->cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
    ok(wait_until(sub { tracking_clients($b) >= 1 }, slack(3), 0.02),
        'the subscription to the live primary came back');
    sleep slack(0.5);
    is(lookups(4), 4, 'every request looked the key up: the cache is '
        . 'bypassed while a primary has no subscription');
};

done_testing;
