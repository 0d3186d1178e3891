# Lookups of one worker to one Redis share a connection and are
# pipelined: commands queued during one pass of the event loop go out in
# one send, replies are matched to lookups in order (the PING <nonce> echo
# after each record vouches for it), and each lookup keeps its own timer.
# A fault anywhere in a pipeline answers 503 to the lookups it touches,
# never another key's record.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Test::HTTP;
use ApiKey::Load;

my $redis = start_redis();

my (%token, %fault);
for my $i (1 .. 200) {
    $token{"p$i"} = new_token();
}
for my $what (qw(cut stall extra badnonce)) {
    $token{$what} = new_token();
    $fault{ key_hash($token{$what}) } = $what;
}

# The fake answers the record of every other lookup with the next one's
# in one packet, sends some byte by byte and splits others across
# packets; and for the fault keys does what their name says.
# the fake forks per connection: $last is the connection's last record
my $last = '';
my $fake = start_fake_redis(handler => sub {
    my ($cmd, $ctx) = @_;
    my $name = uc $cmd->[0];
    my $reply = $ctx->{default}->();
    if ($name eq 'HMGET') {
        my $what = $fault{ $cmd->[1] } // '';
        $last = $what;
        return [close => 1] if $what eq 'cut';
        return [stall => 1] if $what eq 'stall';
        return [send => $reply . $reply] if $what eq 'extra';
        my $mode = $ctx->{n} % 3;
        return [defer => $reply] if $mode == 0;
        return [map { (send => $_) } split //, $reply] if $mode == 1;
        return [send => substr($reply, 0, 7), sleep => 0.005,
            send => substr($reply, 7)];
    }
    if ($name eq 'PING' && $last eq 'badnonce') {
        return resp_bulk('0' x 16);
    }
    return [defer => $reply] if $name eq 'PING' && $ctx->{n} % 4 == 0;
    return undef;
});

for my $k (keys %token) {
    seed_key($redis, $token{$k}, id => "k_$k");
    seed_key($fake, $token{$k}, id => "k_$k") unless $k =~ /^p(\d+)$/
        && $1 > 40;
}

my $nginx = start_nginx(workers => 1, redis => $redis,
    vars => { FAKE => $fake->addr }, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        add_header X-Status $apikey_status always;
        apikey_last_used_interval off;

        location /open/ {
            return 200 "open\n";
        }

        location /api/ {
            apikey on;
            apikey_redis %%REDIS%%;
            proxy_pass http://%%ECHO%%;
        }

        location /fake/ {
            apikey on;
            apikey_redis %%FAKE%%;
            # the fake answers slowly, one command after the other
            apikey_redis_timeout 2s;
            proxy_pass http://%%ECHO%%;
        }

        location /small/ {
            apikey on;
            apikey_redis %%FAKE%%;
            apikey_redis_timeout 2s;
            apikey_redis_pipeline 2;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

sub id_of {
    my ($res) = @_;
    return $res->status . ' ' . ($res->upstream
        ? $res->upstream->header('x-apikey-id') // '-'
        : $res->header('x-status') // '(none)');
}

# Sends every request at once, then reads every answer.
sub concurrently {
    my (@req) = @_;
    my @c = map {
        my ($path, $key) = @$_;
        ApiKey::Test::HTTP->new(port => $nginx->port, timeout => 5)
            ->send_raw(build_request('GET', $path,
                Authorization => "Bearer $token{$key}"))
    } @req;
    return map { $_->read_response } @c;
}

subtest '200 concurrent lookups of distinct keys: at most 2 Redis '
    . 'connections, every one answered with its own record' => sub {
    my @keys = map { "p$_" } 1 .. 200;
    my $conns = $redis->total_connections;
    my $calls = $redis->calls('hmget');
    my @res = concurrently(map { ['/api/x', $_] } @keys);
    my @wrong = grep { id_of($res[$_]) ne "200 k_$keys[$_]" } 0 .. $#res;
    is(scalar(@wrong), 0, 'every request got its own key\'s record')
        or diag join ', ', map { "$keys[$_]: " . id_of($res[$_]) } @wrong;
    my $opened = $redis->total_connections - $conns;
    cmp_ok($opened, '<=', 2, "Redis connections opened: $opened");
    is($redis->calls('hmget') - $calls, 200, 'Redis answered 200 HMGET');
};

subtest 'a Redis that answers a pipeline in pieces (replies of several '
    . 'lookups in one packet, byte by byte, split across packets): every '
    . 'request gets its own key\'s record' => sub {
    for my $round (1 .. 3) {
        my @keys = map { "p$_" } 1 .. 40;
        my @res = concurrently(map { ['/fake/x', $_] } @keys);
        my @wrong = grep { id_of($res[$_]) ne "200 k_$keys[$_]" }
            0 .. $#res;
        is(scalar(@wrong), 0, "round $round: 40 requests, each its own "
            . 'record') or diag join ', ',
            map { "$keys[$_]: " . id_of($res[$_]) } @wrong;
    }
};

for my $c (['the connection is closed in the middle of the pipeline', 'cut'],
    ['an extra reply comes', 'extra'],
    ['a reply with a wrong nonce', 'badnonce'],
    ['Redis stalls in the middle of the pipeline', 'stall'])
{
    my ($what, $fault) = @$c;
    subtest "$what: the lookups it touches get 503, none another key's "
        . 'record; the open location answers; then recovery' => sub {
        my @keys = ((map { "p$_" } 1 .. 10), $fault,
            map { "p$_" } 11 .. 20);
        my $t0 = time;
        my @res = concurrently(map { ['/fake/x', $_] } @keys);
        my $open = $nginx->get('/open/x');
        is($open->status, 200, 'the open location answers');
        my @bad = grep {
            my $id = id_of($res[$_]);
            $id ne "200 k_$keys[$_]" && $id !~ /^503 /
        } 0 .. $#res;
        is(scalar(@bad), 0, 'each answer is its own record or 503')
            or diag join ', ', map { "$keys[$_]: " . id_of($res[$_]) } @bad;
        my ($f) = grep { $keys[$_] eq $fault } 0 .. $#keys;
        like(id_of($res[$f]), qr/^503 /, 'the faulty lookup: 503');
        cmp_ok(time - $t0, '<', slack(4), 'all answered in time');
        is(id_of($nginx->get('/fake/x',
            Authorization => "Bearer $token{p1}")), '200 k_p1',
            'the next request is fine');
    };
}

subtest 'apikey_redis_pipeline 2: past two lookups in flight, another '
    . 'connection opens' => sub {
    my $before = scalar(grep { $_->{ev} eq 'connect' } $fake->events);
    my @keys = map { "p$_" } 1 .. 12;
    my @res = concurrently(map { ['/small/x', $_] } @keys);
    my @wrong = grep { id_of($res[$_]) ne "200 k_$keys[$_]" } 0 .. $#res;
    is(scalar(@wrong), 0, 'every request got its own record');
    my $opened = grep { $_->{ev} eq 'connect' } $fake->events;
    cmp_ok($opened - $before, '>=', 2, 'connections opened: '
        . ($opened - $before));
};

subtest 'clients that leave in the middle of a pipeline: no wrong answer '
    . 'for the others, no leak' => sub {
    my ($worker) = $nginx->worker_pids;
    my $before = ApiKey::Load->fd_census($worker, $fake->port);
    for my $round (1 .. 5) {
        my @keys = map { "p$_" } 1 .. 30;
        my @c = map {
            ApiKey::Test::HTTP->new(port => $nginx->port, timeout => 5)
                ->send_raw(build_request('GET', '/fake/x',
                    Authorization => "Bearer $token{$_}"))
        } @keys;
        # every third client goes before its answer
        $c[$_]->close for grep { $_ % 3 == 0 } 0 .. $#c;
        my @wrong = grep {
            $_ % 3 && id_of($c[$_]->read_response) ne "200 k_$keys[$_]"
        } 0 .. $#c;
        is(scalar(@wrong), 0, "round $round: the clients that stayed got "
            . 'their own records');
    }
    is(id_of($nginx->get('/fake/x', Authorization => "Bearer $token{p2}")),
        '200 k_p2', 'the next request is fine');
    my $fds = ApiKey::Load->fd_census($worker, $fake->port);
    cmp_ok($fds->{redis}, '<=', $before->{redis} + 1, 'connections to the '
        . "fake Redis held: $fds->{redis} (before: $before->{redis})");
    cmp_ok($fds->{other}, '<=', $before->{other}, 'other descriptors: '
        . "$fds->{other} (before: $before->{other})");
};

done_testing;
