# Cluster nodes that lie (fake Redis): a -MOVED loop between two nodes, an
# -ASK loop, a -MOVED to an address where nothing listens, malformed and
# empty CLUSTER SLOTS replies, a map naming more nodes than a worker
# keeps, -CLUSTERDOWN.  Each lookup answers 503 within its timeout, the
# cause is logged, redirections and refreshes stay bounded, nothing
# crashes.

use lib 't/lib';
use ApiKey::Test;

my $TIMEOUT = slack(0.5);
my $TIMEOUT_MS = int($TIMEOUT * 1000);

sub slots_of {
    my (@ranges) = @_;
    return resp_array(map {
        my ($start, $end, $port) = @$_;
        resp_array(resp_int($start), resp_int($end),
            resp_array(resp_bulk('127.0.0.1'), resp_int($port),
                resp_bulk('id')));
    } @ranges);
}

# a fake node on $port serving every slot itself (or what $o{slots} says),
# its lookups answered by $o{lookup}
sub fake_node {
    my ($port, %o) = @_;
    return start_fake_redis(port => $port, handler => sub {
        my ($cmd, $ctx) = @_;
        my $name = uc $cmd->[0];
        if ($name eq 'CLUSTER') {
            return $o{slots} // slots_of([0, 16383, $port]);
        }
        return $o{lookup} if $name eq 'HMGET' && $o{lookup};
        return undef;
    });
}

my ($pa, $pb, $pc, $pd, $dead) = map { free_port() } 1 .. 5;
my $a = fake_node($pa, lookup => resp_error("MOVED 0 127.0.0.1:$pb"));
my $b = fake_node($pb, lookup => resp_error("MOVED 0 127.0.0.1:$pa"));
my $c = fake_node($pc, lookup => resp_error("ASK 0 127.0.0.1:$pd"));
my $d = fake_node($pd, lookup => resp_error("ASK 0 127.0.0.1:$pc"));
my $todead = fake_node(free_port(),
    lookup => resp_error("MOVED 0 127.0.0.1:$dead"));
my $down = fake_node(free_port(),
    lookup => resp_error('CLUSTERDOWN The cluster is down'));

my %malformed = (
    'a string for a map' => resp_bulk('slots'),
    'a range of two elements' => resp_array(resp_array(resp_int(0),
        resp_int(16383))),
    'a range past the last slot' => slots_of([0, 16384, 1]),
    'a range backwards' => slots_of([10, 5, 1]),
    'port 0' => slots_of([0, 16383, 0]),
    'a host name' => resp_array(resp_array(resp_int(0), resp_int(16383),
        resp_array(resp_bulk('redis.example'), resp_int(7000)))),
    'an error' => resp_error('ERR This instance has cluster support '
        . 'disabled'),
    'an empty map' => resp_array(),
    'only unknown endpoints' => resp_array(resp_array(resp_int(0),
        resp_int(16383), resp_array(resp_bulk('?'), resp_int(7000)))),
    'more nodes than a worker keeps' => slots_of(map { [$_, $_, 1000 + $_] }
        0 .. 299),
);
my %fake_of;
for my $what (sort keys %malformed) {
    $fake_of{$what} = fake_node(free_port(), slots => $malformed{$what});
}

my (@blocks, @locations);
my %loc = (loop => $a, ask => $c, dead => $todead, down => $down);
my $n = 0;
$loc{ 'm' . ++$n } = $fake_of{$_} for sort keys %malformed;
for my $name (sort keys %loc) {
    push @blocks, "    apikey_redis_upstream $name {\n        cluster "
        . $loc{$name}->addr . ";\n    }\n";
    push @locations, "        location /$name/ {\n            apikey_redis "
        . "$name;\n            proxy_pass http://%%ECHO%%;\n        }\n";
}

my $http = join('', @blocks) . <<"EOF" . join('', @locations) . "    }\n";
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey on;
        apikey_redis_timeout ${TIMEOUT_MS}ms;
        add_header X-Status \$apikey_status always;
EOF
my $nginx = start_nginx(http => $http);
my $started = time;

my $token = new_token();
sub answer {
    my ($path) = @_;
    my $t0 = time;
    my $r = $nginx->get($path, Authorization => "Bearer $token");
    return ($r->status, time - $t0);
}

subtest 'a -MOVED loop between two nodes: 503, at most 3 redirections'
    => sub {
    my $mark = $nginx->mark;
    my $before = $a->commands_named('HMGET') + $b->commands_named('HMGET');
    my ($status) = answer('/loop/x');
    is($status, 503, 'answered 503');
    my $sent = $a->commands_named('HMGET') + $b->commands_named('HMGET')
        - $before;
    cmp_ok($sent, '<=', 4, "$sent lookups sent: the first and 3 "
        . 'redirections at most');
    like($nginx->error_log_since($mark), qr/a lookup was redirected more than 3 times/,
        'logged');
    is((answer('/loop/x'))[0], 503, 'again 503') for 1 .. 3;
};

subtest 'an -ASK loop: 503, bounded' => sub {
    my $mark = $nginx->mark;
    my $before = $c->commands_named('HMGET') + $d->commands_named('HMGET');
    is((answer('/ask/x'))[0], 503, 'answered 503');
    my $sent = $c->commands_named('HMGET') + $d->commands_named('HMGET')
        - $before;
    cmp_ok($sent, '<=', 4, "$sent lookups sent");
    cmp_ok(scalar($d->commands_named('ASKING')), '>=', 1,
        'ASKING went before the redirected lookup');
    like($nginx->error_log_since($mark), qr/redirected more than/, 'logged');
};

subtest 'a -MOVED to an address where nothing listens: 503 at once'
    => sub {
    my $mark = $nginx->mark;
    my ($status, $took) = answer('/dead/x');
    is($status, 503, 'answered 503');
    cmp_ok($took, '<', $TIMEOUT, 'before the timeout');
    like($nginx->error_log_since($mark), qr/connect\(\) failed|refused/,
        'the failed connection is logged');
    is((answer('/dead/x'))[0], 503, 'again 503') for 1 .. 3;
};

subtest '-CLUSTERDOWN: 503, logged, the map asked for again' => sub {
    my $before = $down->commands_named('CLUSTER');
    my $mark = $nginx->mark;
    is((answer('/down/x'))[0], 503, 'answered 503');
    like($nginx->error_log_since($mark), qr/CLUSTERDOWN/, 'logged');
    ok(wait_until(sub { $down->commands_named('CLUSTER') > $before },
        slack(2), 0.02), 'CLUSTER SLOTS asked again');
    my $t0 = time;
    $before = $down->commands_named('CLUSTER');
    answer('/down/x') for 1 .. 20;
    my $took = time - $t0;
    my $asked = $down->commands_named('CLUSTER') - $before;
    cmp_ok($asked, '<=', int($took / 0.2) + 2, "$asked refreshes for 20 "
        . sprintf('refusals in %.2fs: at most one per 200 ms', $took));
};

$n = 0;
for my $what (sort keys %malformed) {
    my $path = '/m' . ++$n . '/x';
    subtest "CLUSTER SLOTS with $what: 503, logged" => sub {
        my $mark = $nginx->mark;
        my ($status) = answer($path);
        is($status, 503, 'answered 503');
        like($nginx->error_log_since($mark) . $nginx->error_log,
            qr/(malformed|empty|unusable address|no slot map|said: ERR)/,
            'the refusal of the map is logged');
    };
}

subtest 'every fake node asked a bounded number of times' => sub {
    # without a map the worker asks the seeds again once a second; on a
    # slow run (valgrind) the test lasts longer, and so may the asking
    my $bound = 30;
    my $secs = time - $started;
    $bound = 2 * int($secs) + 10 if 2 * $secs + 10 > $bound;
    for my $what (sort keys %malformed) {
        my $asked = $fake_of{$what}->commands_named('CLUSTER');
        cmp_ok($asked, '<=', $bound, "$what: asked $asked times in "
            . sprintf('%.1fs', $secs));
    }
};

done_testing;
