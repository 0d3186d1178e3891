# When Redis misbehaves the module fails closed with 503 and never blocks
# the worker: a fake Redis stalls, answers late, answers errors, splits its
# replies across packets or closes in the middle of one.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Test::HTTP;

# one key per behaviour; the fake picks its behaviour by the key looked up
my (%token, %fault);
for my $what (qw(ok err wrongtype noauth split bytewise cut close_now stall
    slow_ok late unknown gone huge integer nested short))
{
    $token{$what} = new_token();
    $fault{ key_hash($token{$what}) } = $what;
}

my $fake = start_fake_redis(handler => sub {
    my ($cmd, $ctx) = @_;
    return undef unless uc $cmd->[0] eq 'HMGET';
    my $what = $fault{ $cmd->[1] } // 'default';
    my $reply = $ctx->{default}->();
    return resp_error('ERR something went wrong') if $what eq 'err';
    return resp_error('WRONGTYPE Operation against a key holding the wrong '
        . 'kind of value') if $what eq 'wrongtype';
    return resp_error('NOAUTH Authentication required.') if $what eq 'noauth';
    if ($what eq 'split') {
        return [send => substr($reply, 0, 3), sleep => 0.02,
            send => substr($reply, 3, 20), sleep => 0.02,
            send => substr($reply, 23)];
    }
    if ($what eq 'bytewise') {
        return [map { (send => $_, sleep => 0.001) } split //, $reply];
    }
    return [send => substr($reply, 0, int(length($reply) / 2)), close => 1]
        if $what eq 'cut';
    return [close => 1] if $what eq 'close_now';
    return [stall => 1] if $what eq 'stall' || $what eq 'gone';
    return [sleep => 0.1, send => $reply] if $what eq 'slow_ok';
    return [sleep => 0.6, send => $reply] if $what eq 'late';
    if ($what eq 'huge') {
        return resp_array(resp_bulk('k_huge'), resp_bulk('x' x (2 << 20)),
            (resp_nil()) x 4);
    }
    return resp_int(1) if $what eq 'integer';
    return resp_array(resp_array(resp_bulk('k_nested')), (resp_nil()) x 5)
        if $what eq 'nested';
    return resp_array(resp_bulk('k_short')) if $what eq 'short';
    return undef;
});

for my $what (grep { $_ ne 'unknown' } keys %token) {
    seed_key($fake, $token{$what}, id => "k_$what", name => "key $what",
        scopes => 'read:people');
}

my $closed_port = free_port();

my $nginx = start_nginx(workers => 1, redis => $fake,
    vars => { CLOSED => $closed_port }, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        add_header X-Status $apikey_status always;

        location /open/ {
            return 200 "open\n";
        }

        location /api/ {
            apikey on;
            apikey_redis %%REDIS%%;
            apikey_redis_timeout 300ms;
            proxy_pass http://%%ECHO%%;
        }

        location /isolated/ {
            apikey on;
            apikey_redis %%REDIS%%;
            apikey_redis_timeout 300ms;
            apikey_redis_pipeline 1;
            proxy_pass http://%%ECHO%%;
        }

        location /refused/ {
            apikey on;
            apikey_redis 127.0.0.1:%%CLOSED%%;
            apikey_redis_timeout 300ms;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my @workers = $nginx->worker_pids;

sub get_with {
    my ($what, $path) = @_;
    return $nginx->get($path // '/api/x',
        Authorization => "Bearer $token{$what}");
}

sub id_of { return $_[0]->verdict }

is(id_of(get_with('ok')), '200 k_ok', 'a well-behaved Redis: 200');

for my $c (['an error reply (-ERR)', 'err'],
    ['a -WRONGTYPE reply', 'wrongtype'],
    ['a -NOAUTH reply', 'noauth'],
    ['a connection closed in the middle of the reply', 'cut'],
    ['a connection closed without a reply', 'close_now'])
{
    my ($what, $fault) = @$c;
    subtest "$what: 503, logged at error level, then recovery" => sub {
        my $mark = $nginx->mark;
        my $res = get_with($fault);
        answer_is($res, 'error');
        is($res->header('x-status'), 'error', '$apikey_status = error');
        ok((grep { /\[error\]/ }
            $nginx->log_entries($nginx->error_log_since($mark))),
            'an [error] line in the log');
        is(id_of(get_with('ok')), '200 k_ok', 'the next request is fine');
        is(id_of(get_with('unknown')), '401 invalid',
            'and an unknown key is still refused');
    };
}

for my $c (['a 2 MB reply', 'huge'], ['an integer instead of an array',
    'integer'], ['a nested array', 'nested'], ['an array of one element',
    'short'])
{
    my ($what, $fault) = @$c;
    subtest "$what: refused (503 or 401), never let through" => sub {
        my $res = get_with($fault);
        like($res->status, qr/^(?:503|401)$/, 'status 503 or 401')
            or diag 'status ' . $res->status;
        ok(!$res->header('x-echo'), 'not passed upstream');
        is(id_of(get_with('ok')), '200 k_ok', 'the next request is fine');
    };
}

subtest 'a reply split across packets is put back together' => sub {
    is(id_of(get_with('split')), '200 k_split', 'in three parts');
    is(id_of(get_with('bytewise')), '200 k_bytewise', 'one byte at a time');
    is(id_of(get_with('ok')), '200 k_ok', 'the next request is fine');
};

subtest 'a reply slower than usual but within the timeout is used' => sub {
    my $res = get_with('slow_ok');
    is(id_of($res), '200 k_slow_ok', 'status 200 with the right key');
    cmp_ok($res->elapsed, '>=', 0.1, 'it waited for the reply');
};

subtest 'a reply after the timeout: 503, and it never answers a later '
    . 'request' => sub {
    my $res = get_with('late');
    answer_is($res, 'error');
    timing_ok('within the timeout + 100 ms', sub {
        my $r = $res // get_with('late');
        undef $res;
        return ($r->status == 503 && $r->elapsed < 0.3 + slack(0.1),
            sprintf('%d after %.3fs', $r->status, $r->elapsed));
    });
    # the late reply (a valid key) must not be taken for this one
    is(id_of(get_with('unknown')), '401 invalid',
        'an unknown key right after is refused');
    sleep 0.6;
    is(id_of(get_with('unknown')), '401 invalid',
        'and again once the late reply has arrived');
    is(id_of(get_with('ok')), '200 k_ok', 'a good key works');
};

subtest 'a stalled Redis: 503 within the timeout while the worker keeps '
    . 'serving' => sub {
    my $first;
    timing_ok('the open location at once, the stalled one in 300-400 ms',
        sub {
        my $slow = ApiKey::Test::HTTP->new(port => $nginx->port,
            timeout => 3);
        $slow->send_raw(build_request('GET', '/api/x',
            Authorization => "Bearer $token{stall}"));
        sleep 0.05;
        my $open = $nginx->get('/open/x');
        my $res = $slow->read_response;
        $first //= [$open, $res];
        return ($open->status == 200 && $open->elapsed < slack(0.1)
            && $res->status == 503 && $res->elapsed >= 0.25
            && $res->elapsed <= 0.3 + slack(0.1),
            sprintf('open %d after %.3fs, stalled %s after %.3fs',
                $open->status, $open->elapsed, $res->status // '-',
                $res->elapsed));
    });
    is($first->[0]->status, 200, 'an unprotected location answers');
    answer_is($first->[1], 'error');
    is(id_of(get_with('ok')), '200 k_ok', 'the next request is fine');
};

subtest 'apikey_redis_pipeline 1: a stalled lookup does not hold up '
    . 'other protected requests' => sub {
    timing_ok('a good key during five stalled lookups, answered at once',
        sub {
        my @slow = map {
            ApiKey::Test::HTTP->new(port => $nginx->port, timeout => 3)
                ->send_raw(build_request('GET', '/isolated/x',
                    Authorization => "Bearer $token{stall}"))
        } 1 .. 5;
        sleep 0.05;
        my $res = get_with('ok', '/isolated/x');
        my @st = map { $_->read_response->status } @slow;
        return (id_of($res) eq '200 k_ok' && $res->elapsed < slack(0.2)
            && "@st" eq '503 503 503 503 503',
            sprintf('%s after %.3fs; stalled: %s', id_of($res),
                $res->elapsed, "@st"));
    });
};

subtest 'pipelined (the default): lookups queued behind a stalled one get '
    . '503 at the timeout, none another key\'s record; an unprotected '
    . 'location answers at once; then a fresh connection' => sub {
    my $stalled = ApiKey::Test::HTTP->new(port => $nginx->port, timeout => 3)
        ->send_raw(build_request('GET', '/api/x',
            Authorization => "Bearer $token{stall}"));
    sleep 0.05;
    my @behind = map {
        ApiKey::Test::HTTP->new(port => $nginx->port, timeout => 3)
            ->send_raw(build_request('GET', '/api/x',
                Authorization => "Bearer $token{$_}"))
    } qw(ok slow_ok);
    my $open = $nginx->get('/open/x');
    ok($open->status == 200 && $open->elapsed < slack(0.2),
        sprintf('the unprotected location answered after %.3fs',
            $open->elapsed));
    my @st = map { $_->read_response->status } $stalled, @behind;
    is("@st", '503 503 503', 'the stalled lookup and those behind it: 503');
    is(id_of(get_with('ok')), '200 k_ok', 'the next request is fine');
};

subtest 'a client that leaves while Redis stalls releases the connection'
    => sub {
    my $c = ApiKey::Test::HTTP->new(port => $nginx->port);
    $c->send_raw(build_request('GET', '/api/x',
        Authorization => "Bearer $token{gone}"));
    my $conn;
    ok(wait_until(sub {
        my $by = $fake->commands_by_connection;
        ($conn) = grep {
            grep { ($fault{ $_->[1] // '' } // '') eq 'gone' } @{ $by->{$_} }
        } keys %$by;
        return $conn;
    }, 1), 'the lookup reached Redis');
    $c->close;
    ok(wait_until(sub {
        grep { $_->{ev} eq 'close' && $_->{conn} == $conn } $fake->events
    }, slack(1)), 'nginx closed that Redis connection within a second');
    is(id_of(get_with('ok')), '200 k_ok', 'the next request is fine');
};

subtest 'Redis not listening: 503 at once' => sub {
    answer_is(get_with('ok', '/refused/x'), 'error');
    timing_ok('no wait for a refused connection', sub {
        my $res = get_with('ok', '/refused/x');
        return ($res->status == 503 && $res->elapsed < slack(0.2),
            sprintf('%d after %.3fs', $res->status, $res->elapsed));
    });
};

subtest 'no worker died' => sub {
    is_deeply([$nginx->worker_pids], \@workers, 'same worker as at start');
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, values %token);
};

done_testing;
