# The cache is only as good as the subscriptions that keep it right (one
# per worker): when Redis drops the tracking connections (CLIENT KILL) or
# stops answering their PINGs (SIGSTOP), no key revoked meanwhile is let
# in from the cache, answers come from Redis (or are 503 while it cannot
# answer), and caching resumes once a subscription is back; losing one
# worker's subscription costs nothing while another's is live.  Stopped
# and killed workers: t/45-cache-stuck-worker.t.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

use IO::Select;
use POSIX ();
use JSON::PP ();

my $WORKERS = 2;
my $BOUND = 0.1;      # a write is obeyed within this, as in 41-*.t

my $redis = start_redis();
my $nginx = start_cached_nginx(redis => $redis, workers => $WORKERS,
    cache => 'zone=apikeys:1m ttl=60s', quiet => 1,
    # the PING deadline is measured against short lookups
    timeout => '200ms');

my @tokens;

sub hmgets { return $redis->calls('hmget') }

sub valid_key {
    my ($id) = @_;
    my $t = new_token();
    push @tokens, $t;
    seed_key($redis, $t, id => $id);
    return $t;
}

sub cli_key {
    my $r = apikey('create', '--name', 'Subscription test', '--json',
        redis => $redis);
    die "apikey create failed ($r->{code}): $r->{err}" if $r->{code};
    my $k = JSON::PP->new->decode($r->{out});
    push @tokens, $k->{key};
    return $k;
}

# Requests with one token per connection until every worker answered
# and there are $n answers: the key is in the cache (or the cache is
# bypassed, when hmgets say so).
sub warm {
    my ($token, $n) = @_;
    settle($nginx, $redis);
    my $burst = ApiKey::Burst->new(port => $nginx->port, conns => 16);
    my $h0 = hmgets();
    my @rows = $burst->run(timeout => 3,
        request => sub { ('/api/x', Authorization => "Bearer $token") },
        until => sub {
            my %w;
            $w{ worker_of($_) }++ for @{ $_[0] };
            @{ $_[0] } >= $n && keys(%w) == $WORKERS;
        });
    $burst->close;
    return { rows => \@rows, hmget => hmgets() - $h0,
        statuses => join(',', sort { $a <=> $b } keys %{{
            map { $_->{status} => 1 } @rows }}),
        workers => scalar(keys %{{ map { worker_of($_) => 1 } @rows }}) };
}

sub describe {
    my ($t0, @rows) = @_;
    my @d = map { sprintf '+%.3fs %s worker %s', $_->{sent} - $t0,
        $_->{status}, worker_of($_) } @rows[0 .. ($#rows < 9 ? $#rows : 9)];
    push @d, '... ' . (@rows - 10) . ' more' if @rows > 10;
    return join "\n", @d;
}


subtest 'each worker\'s tracking connection is a subscriber in BCAST mode'
    => sub {
    ok(wait_subscribed($redis, $WORKERS), 'every worker subscribed');
    my @t = tracking_clients($redis);
    is(scalar(@t), $WORKERS, 'one tracking connection per worker');
    for my $t (@t) {
        like($t->{flags} // '', qr/t/, 'tracking enabled (flag t)');
        like($t->{flags} // '', qr/B/, 'in BCAST mode (flag B)');
        is($t->{sub}, 1, 'subscribed to one channel');
    }
};

subtest 'CLIENT KILL of one worker\'s tracking connection: the other '
    . 'worker\'s vouches, the cache stays in use, a revocation lands'
    => sub {
    ok(wait_subscribed($redis, $WORKERS), 'every worker subscribed');
    my $k = cli_key();
    my $w = warm($k->{key}, 48);
    is("$w->{statuses} $w->{workers}", "200 $WORKERS",
        'the key is let in by every worker');
    my ($one) = tracking_clients($redis);
    my $mark = $nginx->mark;
    $redis->cmd('CLIENT', 'KILL', 'ID', $one->{id});
    ok(wait_until(sub { $nginx->error_log_since($mark) =~ /closed the/ },
        2), 'the loss is noticed');
    my $h0 = hmgets();
    my $again = warm($k->{key}, 48);
    is($again->{statuses}, 200, 'the key is still let in ...');
    cmp_ok(hmgets() - $h0, '<=', $WORKERS, '... from the cache ('
        . (hmgets() - $h0) . ' HMGET)');
    is(apikey('revoke', $k->{id}, redis => $redis)->{code}, 0, 'revoked');
    my $t0 = time;
    my $after = warm($k->{key}, 48);
    is($after->{statuses}, 401, 'refused by every worker at once')
        or diag describe($t0, @{ $after->{rows} });
    ok(wait_subscribed($redis, $WORKERS), 'the lost subscription is back');
};

subtest 'CLIENT KILL of every tracking connection: no stale allow '
    . 'afterwards, the cache is bypassed, then back' => sub {
    for my $try (1 .. 3) {
        my $k = cli_key();
        my $other = valid_key("k_other$try");
        my $w = warm($k->{key}, 48);
        is("$w->{statuses} $w->{workers}", "200 $WORKERS",
            "try $try: the key is let in by every worker");
        cmp_ok($w->{hmget}, '<=', $WORKERS, "try $try: from the cache");
        warm($other, 16);

        ok(wait_subscribed($redis, $WORKERS),
            "try $try: every worker subscribed") or last;
        my @t = tracking_clients($redis);
        my $mark = $nginx->mark;
        my $h0 = hmgets();
        $redis->cmd('CLIENT', 'KILL', 'ID', $_->{id}) for @t;
        my $cli = apikey_start('revoke', $k->{id}, redis => $redis);
        my ($done, $live);
        my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
        my $t0 = time;
        my @rows = $b->run(timeout => 5,
            request => sub { ('/api/x', Authorization => 'Bearer '
                . ($_[0] % 2 ? $other : $k->{key})) },
            tick => sub {
                $done //= $cli->done;
                $live //= time if $done && $nginx->error_log_since($mark)
                    =~ /are live/;
            },
            until => sub { $live && time > $live + 0.3 });
        $b->close;
        my $code = $cli->wait->{code};
        is($code, 0, "try $try: apikey revoke succeeded");
        ok($live, sprintf("try $try: the subscription is back after "
            . '%.2fs', ($live // time) - $t0));
        like($nginx->error_log_since($mark), qr/\[error\].*apikey\ cache:
            \ redis\ "[^"]+"\ closed\ the\ connection;\ this\ worker
            \ subscribes\ again,\ the\ cache\ is\ bypassed\ while\ no
            \ worker\ is\ subscribed/x, "try $try: the loss is logged");

        my @revoked = grep { $_->{conn} % 2 == 0 } @rows;
        my @stale = grep { $_->{status} != 401
            && $_->{sent} >= ($done // $t0) + $BOUND } @revoked;
        is(scalar(@stale), 0, "try $try: the revoked key is refused from "
            . $BOUND * 1000 . ' ms after the revocation on')
            or diag describe($t0, @stale);
        my @gap = grep { $_->{conn} % 2 && $_->{sent} < ($live // 0) }
            @rows;
        my @bad = grep { $_->{status} != 200 } grep { $_->{conn} % 2 }
            @rows;
        ok(@gap > 0, "try $try: " . scalar(@gap) . ' requests for another '
            . 'key while the subscription was down ...');
        is(scalar(@bad), 0, "try $try: ... and after, all let in")
            or diag describe($t0, @bad);
        cmp_ok(hmgets() - $h0, '>', 2 * $WORKERS, "try $try: "
            . (hmgets() - $h0) . ' HMGET meanwhile: the cache was bypassed');

        # each worker flushes the zone's entries of this source when its
        # own subscription is live again: wait for both, or the flush of
        # the slower one may drop the entry warmed below
        ok(wait_until(sub { my @l = $nginx->error_log_since($mark)
                =~ /are live/g; @l >= $WORKERS }, slack(5)),
            "try $try: every worker is subscribed again");
        my $again = warm(valid_key("k_again$try"), 100);
        is($again->{statuses}, 200, "try $try: after the subscription is "
            . 'back, a new key is let in ...');
        cmp_ok($again->{hmget}, '<=', $WORKERS, "try $try: ... from the "
            . "cache ($again->{hmget} HMGET for "
            . scalar(@{ $again->{rows} }) . ' requests)');
    }
};

subtest 'Redis stops answering: cached keys are not served past the PING '
    . 'deadline, a revocation queued meanwhile is obeyed, and all '
    . 'recovers' => sub {
    my $valid = valid_key('k_valid');
    my $doomed = valid_key('k_doomed');
    warm($_, 48) for $valid, $doomed;
    my $writer = $redis->connect;
    my $mark = $nginx->mark;
    my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
    my $t0 = time;
    my ($stop, $queued, $cont, $acked, $live);
    my ($counted, $recovered) = (0, 0);
    my $wsel = IO::Select->new($writer->{sock});
    my @rows = $b->run(timeout => 12,
        request => sub { ('/api/x', Authorization => 'Bearer '
            . ($_[0] % 2 ? $doomed : $valid)) },
        tick => sub {
            my $now = time;
            if (!$stop && $now > $t0 + 0.2) {
                $redis->pause;
                $stop = time;
            } elsif ($stop && !$queued && $now > $stop + 0.3) {
                $writer->send_raw(resp_command('HSET', key_hash($doomed),
                    'revoked', 1));
                $queued = $now;
            } elsif ($queued && !$cont
                && $now > $stop + 2.7 + slack(0.25) + slack(0.05))
            {
                $redis->resume;
                $cont = time;
            } elsif ($cont && !$acked && $wsel->can_read(0)) {
                $writer->read_reply;
                $acked = time;
            } elsif ($acked && !$live
                && $nginx->error_log_since($mark) =~ /are live/)
            {
                $live = time;
            }
        },
        until => sub {
            my ($rows) = @_;
            return 0 unless $live;
            while ($counted < @$rows) {
                $recovered++ if $rows->[ $counted++ ]{sent} >= $cont + 0.5;
            }
            return time > $live + 0.3 && $recovered >= 50;
        });
    $redis->resume unless $cont;
    $b->close;
    $writer->close;

    ok($live, sprintf('the subscription is back %.2fs after SIGCONT',
        ($live // time) - ($cont // 0)));
    like($nginx->error_log_since($mark), qr/\[error\].*apikey\ cache:
        \ redis\ "[^"]+"\ did\ not\ answer\ PING\ in\ time;\ this
        \ worker\ subscribes\ again/x, 'the unanswered PING is logged');

    # the last PING before the stop was sent at most 1 s before it, the
    # next one goes unanswered, its deadline is a second later
    # next one goes unanswered, its deadline is a second later; a lookup
    # sent less than apikey_redis_timeout before SIGCONT may be answered
    my $deadline = $stop + 2 + slack(0.25);
    my @during = grep { $_->{sent} >= $deadline
        && $_->{sent} < $cont - 0.2 - slack(0.05) } @rows;
    ok(@during > 4, scalar(@during) . ' requests between the PING '
        . 'deadline and SIGCONT ...');
    my @bad = grep { $_->{status} != 503 } @during;
    is(scalar(@bad), 0, '... all 503: nothing served from a cache that '
        . 'cannot be trusted') or diag describe($t0, @bad);

    @bad = grep { $_->{conn} % 2 && $_->{status} == 200
        && $_->{sent} >= ($acked // 0) + $BOUND } @rows;
    is(scalar(@bad), 0, 'the key revoked while Redis was stopped is never '
        . 'let in once Redis took the revocation') or diag describe($t0,
        @bad);

    my @after = grep { $_->{sent} >= $cont + 0.5 } @rows;
    ok(@after > 10, scalar(@after) . ' requests from 0.5 s after SIGCONT');
    @bad = grep { $_->{status} != ($_->{conn} % 2 ? 401 : 200) } @after;
    is(scalar(@bad), 0, 'the valid key is let in, the revoked one refused')
        or diag describe($t0, @bad);

    my $again = warm($valid, 100);
    is($again->{statuses}, 200, 'afterwards the valid key is let in ...');
    cmp_ok($again->{hmget}, '<=', $WORKERS, '... from the cache again '
        . "($again->{hmget} HMGET)");
};

subtest 'nginx slow to read its configuration (1.5 s): each worker '
    . 'subscribes at its first attempt' => sub {
    # a FIFO holds nginx at the include until the writer comes: the
    # master's clock, read as the configuration is, is 1.5 s behind when
    # the workers start, and the handshake's deadline must not count that
    my $fifo = test_dir() . '/slow.conf';
    POSIX::mkfifo($fifo, 0600) or die "mkfifo $fifo: $!";
    my $writer = fork // die "fork: $!";
    if ($writer == 0) {
        sleep 1.5;
        close $_ for grep { open($_, '>', $fifo) } my $fh;
        POSIX::_exit(0);
    }
    my $own = start_redis();
    my $slow = start_cached_nginx(redis => $own, workers => $WORKERS,
        cache => 'zone=apikeys:1m', quiet => 1, main => "include $fifo;");
    waitpid($writer, 0);
    ok(wait_subscribed($own, $WORKERS), "$WORKERS workers subscribed");
    my @late = grep { /did not complete the subscription/ }
        $slow->log_lines('error');
    is(scalar(@late), 0, 'no subscription given up as late')
        or diag join "\n", @late;
    $slow->stop;
    $own->stop;
};

subtest 'no token in the debug log' => sub {
    error_log_clean($nginx, @tokens);
};

done_testing;
