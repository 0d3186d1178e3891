# Several "server" addresses in one apikey_redis_upstream block: they are
# tried in order, and a server that cannot be connected to makes way for
# the next one: a dead first server costs no lookup its answer, and a
# server killed under load hands over to the next without a wrong allow.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;
use ApiKey::Load;

my $dead = free_port();
my $a = start_redis();
my $b = start_redis();

my %token = map { $_ => new_token() } qw(valid unknown revoked);
for my $redis ($a, $b) {
    seed_key($redis, $token{valid}, id => 'k_valid');
    seed_key($redis, $token{revoked}, id => 'k_revoked', revoked => 1);
}

my $nginx = start_cached_nginx(redis => $a, workers => 2,
    cache => 'zone=apikeys:1m', quiet => 1, timeout => '500ms',
    vars => { DEAD => $dead, A => $a->port, B => $b->port },
    http => <<'EOF',
    apikey_redis_upstream deadfirst {
        server  127.0.0.1:%%DEAD%%;
        server  127.0.0.1:%%B%%;
    }
    apikey_redis_upstream two {
        server  127.0.0.1:%%A%%;
        server  127.0.0.1:%%B%%;
    }
EOF
    server => <<'EOF',
        location /deadfirst/ {
            apikey on;
            apikey_redis deadfirst;
            apikey_cache off;
            proxy_pass http://%%ECHO%%;
        }
EOF
    redis_args => 'two');

my $c = $nginx->client;
sub verdict {
    my ($path, $token) = @_;
    return $c->get($path, Authorization => "Bearer $token")->verdict;
}

subtest 'the first server dead: the second answers every lookup' => sub {
    my $h0 = $b->calls('hmget');
    for (1 .. 3) {
        is(verdict('/deadfirst/x', $token{valid}), '200 k_valid',
            'a valid key: 200');
        is(verdict('/deadfirst/x', $token{unknown}), '401 invalid',
            'an unknown key: 401');
        is(verdict('/deadfirst/x', $token{revoked}), '401 revoked',
            'a revoked key: 401');
    }
    cmp_ok($b->calls('hmget') - $h0, '>=', 9, 'the second server answered');
};

subtest 'servers in order: the first one while it works' => sub {
    my ($ha, $hb) = ($a->calls('hmget'), $b->calls('hmget'));
    is(verdict('/echo-nocache/x', $token{valid}), '200 k_valid',
        'a valid key') for 1 .. 5;
    cmp_ok($a->calls('hmget') - $ha, '>=', 5, 'the first server answered');
    is($b->calls('hmget') - $hb, 0, 'the second did not');
    ok(scalar(tracking_clients($a)), 'the cache\'s subscription is on the '
        . 'first');
};

subtest 'the first server killed under load: the next one takes over'
    => sub {
    my @mix = (
        { class => 'valid', path => '/echo/a', token => $token{valid},
          id => 'k_valid' },
        { class => 'unknown', path => '/echo/b', token => $token{unknown} },
        { class => 'revoked', path => '/echo/c', token => $token{revoked} },
        { class => 'valid', path => '/echo-nocache/d', token => $token{valid},
          id => 'k_valid' },
    );
    my $load = ApiKey::Load->start(port => $nginx->port, mix => \@mix,
        clients => 3, pause => 0.002);
    sleep slack(1);
    my $t_kill = time;
    $a->kill9;
    sleep slack(2);
    my $r = $load->stop;
    note $r->summary;
    is($r->wrong_allows, 0, 'no wrong allow');
    is($r->errors, 0, 'every request got an answer');
    my @e = grep { $_->{status} == 503 } $r->rows;
    my $last = @e ? $e[-1]{start} - $t_kill : 0;
    diag sprintf '%d answers, %d of them 503, the last %.2fs after the kill',
        $r->total, scalar(@e), $last;
    my %after = (from => $t_kill + slack(1));
    ok($r->count(%after) >= 10, 'requests from 1 s after the kill');
    for ([valid => 200], [unknown => 401], [revoked => 401]) {
        my ($class, $status) = @$_;
        my @bad = $r->other_than([$status], %after, class => $class);
        is(scalar(@bad), 0, "$class: $status from the second server within "
            . '1 s') or diag $r->describe(@bad[0 .. ($#bad < 5 ? $#bad : 5)]);
    }
    ok(wait_until(sub { scalar tracking_clients($b) }, slack(5), 0.05),
        'the cache\'s subscription moved to the second server');
    $b->cmd('HSET', key_hash($token{valid}), 'revoked', 1);
    ok(wait_until(sub { verdict('/echo/x', $token{valid}) eq '401 revoked' },
        slack(2), 0.01), 'a revocation on the second server is heard of');
};

done_testing;
