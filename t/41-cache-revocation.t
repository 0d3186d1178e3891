# apikey_cache does not make revocations slow: with two workers serving a
# key from the cache, `apikey revoke`, `apikey update --scope`, `apikey
# rotate` and any other program's write to the record are obeyed by every
# worker within 100 ms of the write, measured over many keys; a write
# that crosses a lookup in flight is not lost.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

use IO::Socket::INET;
use JSON::PP ();
use ApiKey::Test::SlowProxy;

my $WORKERS = 2;
my $BOUND = 0.1;       # seconds, the product's promise

my $redis = start_redis();
my $nginx = start_cached_nginx(redis => $redis, workers => $WORKERS,
    cache => 'zone=apikeys:1m ttl=60s', quiet => 1);

my @tokens;

sub create_key {
    my (@args) = @_;
    my $r = apikey('create', '--name', 'Revocation test', @args, '--json',
        redis => $redis);
    die "apikey create failed ($r->{code}): $r->{err}" if $r->{code};
    my $k = JSON::PP->new->decode($r->{out});
    push @tokens, $k->{key};
    return $k;
}

sub hmgets { return $redis->calls('hmget') }


# One try: many connections ask with the key until every worker has
# answered `ok` from the cache, then the write runs (in the background,
# or as a code ref) while they go on asking; returns what was seen.
sub try_write {
    my (%o) = @_;
    my ($path, $token, $ok, $refused) = @o{qw(path token ok refused)};
    my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
    my $req = sub { ($path, Authorization => "Bearer $token") };
    my %t = (path => $path);

    settle($nginx, $redis);
    my $h0 = hmgets();
    my @warm = $b->run(request => $req, timeout => 3, until => sub {
        my %w;
        $w{ worker_of($_) }++ for @{ $_[0] };
        return @{ $_[0] } >= 48
            && $WORKERS == grep { $_ >= 3 } values %w;
    });
    $t{warm_hmget} = hmgets() - $h0;
    $t{warm_end} = time;
    $t{warm_bad} = grep { $_->{status} != $ok } @warm;
    $t{warm_workers} = keys %{{ map { worker_of($_) => 1 } @warm }};

    my ($cli, $done);
    if (ref $o{write} eq 'CODE') {
        $t{start} = time;
        $o{write}->();
        $done = time;
    } else {
        $cli = apikey_start(@{ $o{write} }, redis => $redis);
        $t{start} = $cli->{started};
    }
    # until every worker answered a few requests sent after the bound
    my %seen;
    my @rows = $b->run(request => $req, timeout => 5,
        tick => sub { $done //= $cli->done if $cli },
        until => sub {
            return 0 unless $done;
            my $rows = $_[0];
            for (my $i = $#$rows; $i >= 0 && !$rows->[$i]{counted}; $i--) {
                $rows->[$i]{counted} = 1;
                $seen{ worker_of($rows->[$i]) }++
                    if $rows->[$i]{sent} >= $done + $BOUND;
            }
            return $WORKERS == grep { $_ >= 5 } values %seen;
        });
    $b->close;
    $t{code} = $cli ? $cli->wait->{code} : 0;
    $t{done} = $done // time;

    # the last request let through: how long after the write returned
    my @allowed = grep { $_->{status} == $ok } @rows;
    my $last = @allowed ? $allowed[-1]{sent} : $t{start};
    for (@allowed) { $last = $_->{sent} if $_->{sent} > $last }
    $t{lag} = $last - $t{done};
    $t{lag} = 0 if $t{lag} < 0;

    my @late = grep { $_->{sent} >= $t{done} + $BOUND } @rows;
    $t{late} = scalar @late;
    $t{late_bad} = grep { $_->{status} != $refused } @late;
    $t{other} = grep { $_->{status} != $ok && $_->{status} != $refused }
        @rows;
    my %st;
    $st{ $_->{status} . ' ' . worker_of($_) }++ for @rows;
    $t{answers} = join ', ', map { "$_ x$st{$_}" } sort keys %st;
    $t{refused_workers} = keys %{{ map { worker_of($_) => 1 }
        grep { $_->{status} == $refused } @late }};
    return \%t;
}

# Runs tries and checks them: every one warmed the cache on every
# worker, the write succeeded, nothing but the two answers was seen,
# every worker refused afterwards; the worst lag is under the bound
# (in one of two attempts: a loaded machine may stall a process once).
sub check_tries {
    my ($name, $n, $make) = @_;
    my @all;
    timing_ok("$name: every worker refuses the key within "
        . $BOUND * 1000 . " ms of the write, worst of $n keys", sub {
        my @t = map { $make->($_) } 1 .. $n;
        push @all, @t;
        my @lag = sort { $a <=> $b } map { $_->{lag} } @t;
        my $worst = $lag[-1];
        return ($worst < slack($BOUND), sprintf('worst %.1f ms, median '
            . '%.1f ms, %d of %d keys answered ok after the write '
            . 'returned', $worst * 1000, $lag[$#lag / 2] * 1000,
            scalar(grep { $_ > 0 } @lag), $n));
    }, 2);

    my @bad = grep { $_->{warm_bad} } @all;
    is(scalar(@bad), 0, "$name: before the write, the key is let in");
    @bad = grep { $_->{warm_workers} != $WORKERS } @all;
    is(scalar(@bad), 0, "$name: ... by all $WORKERS workers");
    # a subscription whose PING is answered late on a loaded machine (a
    # valgrind run) makes the zone flush the source once in a while: one
    # key in ten may have needed one more lookup
    @bad = grep { $_->{warm_hmget} > $WORKERS } @all;
    cmp_ok(scalar(@bad), '<=', 1 + int(@all / 10), "$name: ... from the "
        . 'cache (at most one HMGET per worker, but for one key in ten)')
        or diag join ', ', map { $_->{warm_hmget} } @bad;
    @bad = grep { $_->{code} } @all;
    is(scalar(@bad), 0, "$name: the write succeeded");
    @bad = grep { $_->{other} } @all;
    is(scalar(@bad), 0, "$name: no other answer than before and after")
        or diag explain [@bad[0 .. ($#bad < 2 ? $#bad : 2)]];
    @bad = grep { $_->{late_bad} || !$_->{late} } @all;
    is(scalar(@bad), 0, "$name: from " . $BOUND * 1000 . ' ms after the '
        . 'write on, every answer refuses the key')
        or diag explain [@bad[0 .. ($#bad < 2 ? $#bad : 2)]];
    @bad = grep { $_->{refused_workers} != $WORKERS } @all;
    is(scalar(@bad), 0, "$name: ... on all $WORKERS workers");
}


subtest 'apikey revoke: 401 on every worker within 100 ms' => sub {
    check_tries('revoke', 30, sub {
        my $k = create_key();
        return try_write(path => '/api/x', token => $k->{key}, ok => 200,
            refused => 401, write => ['revoke', $k->{id}]);
    });
};

subtest 'apikey update --scope: 403 on every worker within 100 ms' => sub {
    check_tries('update --scope', 20, sub {
        my $k = create_key('--scope', 'read:people');
        return try_write(path => '/people/x', token => $k->{key}, ok => 200,
            refused => 403, write => ['update', $k->{id}, '--scope',
            'write:people']);
    });
};

subtest 'apikey rotate: the old key gets 401 on every worker within '
    . '100 ms' => sub {
    check_tries('rotate', 5, sub {
        my $k = create_key();
        return try_write(path => '/api/x', token => $k->{key}, ok => 200,
            refused => 401, write => ['rotate', $k->{id}]);
    });
};

subtest 'another program deletes the record: 401 on every worker within '
    . '100 ms' => sub {
    check_tries('DEL', 5, sub {
        my $t = new_token();
        push @tokens, $t;
        seed_key($redis, $t, id => 'k_deleted');
        return try_write(path => '/api/x', token => $t, ok => 200,
            refused => 401,
            write => sub { $redis->cmd('DEL', key_hash($t)) });
    });
};

subtest 'FLUSHALL: 401 on every worker within 100 ms' => sub {
    check_tries('FLUSHALL', 3, sub {
        my $t = new_token();
        push @tokens, $t;
        seed_key($redis, $t, id => 'k_flushed');
        return try_write(path => '/api/x', token => $t, ok => 200,
            refused => 401, write => sub { $redis->cmd('FLUSHALL') });
    });
};

# A key that ends at a time of its own (a Redis TTL, the end of a grace):
# one try warms the cache, then asks on past the end.  A try whose warm-up
# ran past the end (a loaded machine: valgrind under prove -j2), or whose
# warm-up needed more than one lookup per worker (a subscription flushed
# the source), shows nothing and is made again with a new key, at most
# three times; every try must still have seen no wrong answer.
sub ending_tries {
    my ($name, $bound, $make) = @_;
    my (@tries, $good);
    for (1 .. 3) {
        my ($r, $end) = $make->();
        $r->{end} = $end;
        push @tries, $r;
        if ($r->{warm_end} < $end && $r->{warm_hmget} <= $WORKERS) {
            $good = $r;
            last;
        }
    }
    ok($good, "$name: a try warmed every worker's cache before the end, "
        . 'with at most one HMGET per worker (' . scalar(@tries)
        . ' of at most 3)')
        or diag explain \@tries;
    is(scalar(grep { $_->{other} || $_->{late_bad} || !$_->{late} }
        @tries), 0, "$name: from the end on, every answer refuses the key")
        or diag explain \@tries;
    return unless $good;
    is($good->{warm_bad}, 0, "$name: let in before the end")
        or diag explain $good;
    cmp_ok($good->{lag}, '<', slack($bound), sprintf('%s: let in until '
        . '%.1f ms after the end', $name, $good->{lag} * 1000));
    is($good->{refused_workers}, $WORKERS, "$name: refused on all "
        . "$WORKERS workers");
}

subtest 'a record dropped by its Redis TTL is refused soon after' => sub {
    ending_tries('TTL', 0.2, sub {
        my $t = new_token();
        push @tokens, $t;
        seed_key($redis, $t, id => 'k_ttl');
        $redis->cmd('PEXPIRE', key_hash($t), 600);
        my $gone = time + 0.6;
        # Redis finds expired keys on its own by sampling, which a loaded
        # machine can delay by far more than the bound; a read of the key
        # once it is due makes Redis drop it (and tell the trackers) then
        my $r = try_write(path => '/api/x', token => $t, ok => 200,
            refused => 401, write => sub {
                sleep($gone - time) if time < $gone;
                $redis->cmd('EXISTS', key_hash($t));
            });
        return ($r, $gone);
    });
};

subtest 'apikey rotate --grace: the old key works until the grace ends, '
    . 'then every worker refuses it' => sub {
    my $new;
    ending_tries('grace', $BOUND, sub {
        my $k = create_key();
        my $r = apikey('rotate', $k->{id}, '--grace', '2s', '--json',
            redis => $redis);
        die "apikey rotate --grace failed ($r->{code}): $r->{err}"
            if $r->{code};
        $new = JSON::PP->new->decode($r->{out});
        push @tokens, $new->{key};
        my $end = $redis->cmd('HGET', key_hash($k->{key}), 'expires_at');
        die "the old key's grace ends at $end, not in the future"
            unless $end > time;
        my $try = try_write(path => '/api/x', token => $k->{key}, ok => 200,
            refused => 401, write => sub {
                sleep($end - time) if time < $end;
            });
        return ($try, $end);
    });
    is($nginx->get('/api/x', Authorization => "Bearer $new->{key}")->status,
        200, 'the new key is let in');
};

subtest 'a revocation that crosses a lookup in flight is not lost' => sub {
    my (@bad, $n);
    for my $try (1 .. 10) {
        my $t = new_token();
        push @tokens, $t;
        seed_key($redis, $t, id => "k_crossing$try");
        my $writer = $redis->connect;
        my $b = ApiKey::Burst->new(port => $nginx->port, conns => 8);
        my %asked;
        # Redis holds the lookups; the revocation queues behind them
        $redis->pause;
        my $t0 = time;
        my ($sent, $resumed, $revoked);
        my @rows = $b->run(timeout => 5,
            request => sub { $asked{ $_[0] }++ ? ()
                : ('/api/x', Authorization => "Bearer $t") },
            tick => sub {
                if (!$sent && time > $t0 + 0.03) {
                    $writer->send_raw(resp_command('HSET', key_hash($t),
                        'revoked', 1));
                    $sent = 1;
                } elsif ($sent && !$resumed && time > $t0 + 0.05) {
                    $redis->resume;
                    $resumed = 1;
                }
            },
            until => sub { @{ $_[0] } >= 8 });
        $redis->resume unless $resumed;
        $writer->read_reply;
        $revoked = time;
        $writer->close;
        $b->close;
        # whatever the lookups in flight saw, the cache must not keep it
        $b = ApiKey::Burst->new(port => $nginx->port, conns => 8);
        my @after = $b->run(timeout => 0.25,
            request => sub { ('/api/x', Authorization => "Bearer $t") });
        $b->close;
        $n += @after;
        push @bad, grep { $_->{status} != 401
            && $_->{sent} >= $revoked + $BOUND } @after;
    }
    ok($n > 100, "$n requests after the revocations");
    is(scalar(@bad), 0, 'none let in from ' . $BOUND * 1000 . ' ms after '
        . 'the revocation on')
        or diag join ', ', map { $_->{status} } @bad[0 .. 9];
};

subtest 'a request after a revocation does not join a lookup sent before '
    . 'it' => sub {
    # lookups are answered 0.6 s late, with the record as Redis read it
    my $slow = ApiKey::Test::SlowProxy->start(redis => $redis, delay => 0.6);
    my $late = start_cached_nginx(redis => $slow, workers => 1,
        timeout => '5s');
    my $t = new_token();
    push @tokens, $t;
    my $key = seed_key($redis, $t, id => 'k_joined');
    my $hex8 = substr($key, length('apikey:'), 8);

    my $h0 = hmgets();
    my $first = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $late->port, Proto => 'tcp') or die "connect: $!";
    print {$first} "GET /api/x HTTP/1.0\r\nHost: localhost\r\n"
        . "Authorization: Bearer $t\r\n\r\n";
    ok(wait_until(sub { hmgets() > $h0 }, 3, 0.001),
        'the first request\'s lookup has read the record');

    $redis->cmd('HSET', $key, 'revoked', 1);
    ok(wait_until(sub { $late->error_log =~ /invalidated \Q$hex8\E/ }, 3,
        0.001), 'nginx has taken the invalidation');

    my $res = $late->get('/api/x', Authorization => "Bearer $t");
    is($res->status, 401, 'a request after it is refused');
    is($res->header('x-status'), 'revoked', '$apikey_status = revoked');

    local $/;
    my $answer = <$first> // '';
    like($answer, qr{^HTTP/1\.\d 200}, 'the first request (sent before the '
        . 'revocation) was let through');
    $late->stop;
    $slow->stop;
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, @tokens);
    my @errors = $nginx->log_lines('error');
    is(scalar(@errors), 0, 'no [error]') or diag join "\n", @errors;
};

done_testing;
