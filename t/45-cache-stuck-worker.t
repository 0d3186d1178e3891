# A revocation is obeyed within 100 ms by every live worker, whichever
# worker is stopped (SIGSTOP: a worker stuck in a long operation looks
# the same) or killed at that moment: every worker holds its own
# invalidation subscription, and any one that runs drops the entry from
# the shared zone.  Requests come on fresh connections, as new clients:
# those the kernel hands to the stopped worker wait for it, and must be
# refused too once it runs again.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;
use ApiKey::Load;

my $BOUND = slack(0.1);
my $redis = start_redis();
my @tokens;

sub hmgets { return $redis->calls('hmget') }

# A new key, let in from the cache by every worker: a round of requests
# in which every worker answers and Redis saw at most one lookup per worker
# (a busy machine may need a second round).
sub cached_key {
    my ($nginx, $workers, $id) = @_;
    my $t = new_token();
    push @tokens, $t;
    seed_key($redis, $t, id => $id);
    settle($nginx, $redis);
    my $what = '';
    for my $round (1 .. 3) {
        my $h0 = hmgets();
        my $b = ApiKey::Burst->new(port => $nginx->port,
            conns => 4 * $workers);
        my @rows = $b->run(timeout => 5,
            request => sub { ('/api/x', Authorization => "Bearer $t") },
            until => sub {
                my %w;
                $w{ worker_of($_) }++ for @{ $_[0] };
                @{ $_[0] } >= 20 * $workers && keys(%w) == $workers;
            });
        $b->close;
        my %w = map { worker_of($_) => 1 } @rows;
        my @bad = grep { $_->{status} != 200 } @rows;
        my $h = hmgets() - $h0;
        return ($t, 1) if keys(%w) == $workers && !@bad && $h <= $workers;
        $what .= sprintf ' (round %d: %d workers, %d not 200, %d HMGET)',
            $round, scalar(keys %w), scalar(@bad), $h;
    }
    diag "cached_key $id:$what";
    return ($t, 0);
}

# Revokes $t and polls on fresh connections every 10 ms until 21 requests
# sent after the bound are answered (by the running workers).
sub revoke_and_poll {
    my ($nginx, $t, $between) = @_;
    my $f = ApiKey::Fresh->new(port => $nginx->port);
    $redis->cmd('HSET', key_hash($t), 'revoked', 1);
    my $done = time;
    my @rows = $f->run(every => 0.01, timeout => 2 + slack(1),
        request => sub { ('/api/x', Authorization => "Bearer $t") },
        until => sub {
            21 <= grep { $_->{sent} >= $done + $BOUND } @{ $_[0] };
        });
    $between->() if $between;
    push @rows, $f->finish(timeout => 5 + slack(2));
    return ($done, $f->pending, @rows);
}

sub verdict {
    my ($done, $pending, @rows) = @_;
    my @after = sort { $a->{sent} <=> $b->{sent} }
        grep { $_->{sent} >= $done + $BOUND } @rows;
    my @first = sort { $a->{got} <=> $b->{got} }
        grep { $_->{status} == 401 } @rows;
    my @stale = grep { $_->{status} != 401 } @after;
    return (\@after, \@stale, @first ? $first[0]{got} - $done : undef,
        sprintf('%d answers, %d sent from %d ms on, %d of them not 401, '
            . '%d unanswered; first 401 %s ms after the revocation',
            scalar(@rows), scalar(@after), $BOUND * 1000, scalar(@stale),
            $pending, @first
                ? sprintf('%.1f', ($first[0]{got} - $done) * 1000) : '-'));
}

for my $workers (2, 4) {
    my $nginx = start_cached_nginx(redis => $redis, workers => $workers,
        cache => 'zone=apikeys:1m ttl=60s', quiet => 1);

    subtest "$workers workers: each holds its own subscription" => sub {
        ok(wait_subscribed($redis, $workers), "$workers tracking "
            . 'connections, each subscribed');
        my @t = tracking_clients($redis);
        is(scalar(grep { $_->{flags} =~ /B/ } @t), $workers,
            'all in BCAST mode');
    };

    my $i = 0;
    for my $pid ($nginx->worker_pids) {
        $i++;
        subtest "$workers workers: worker $i stopped: a revocation is "
            . "obeyed within $BOUND s by the others, and by it once "
            . 'continued' => sub {
            ok(wait_subscribed($redis, $workers), 'every worker subscribed');
            my ($t, $cached) = cached_key($nginx, $workers, "k_stop$i");
            ok($cached, 'the key is let in by every worker, from the cache');
            kill 'STOP', $pid;
            my ($done, $pending, @rows) = revoke_and_poll($nginx, $t,
                sub { kill 'CONT', $pid });
            kill 'CONT', $pid;
            my ($after, $stale, $first, $what) = verdict($done, $pending,
                @rows);
            ok(defined $first && $first < $BOUND, "the first 401 within "
                . "the bound: $what");
            cmp_ok(scalar(@$after), '>=', 21, '21 or more requests sent '
                . 'from the bound on ...');
            is(scalar(@$stale), 0, '... all refused, by running and '
                . 'continued workers alike') or diag $what;
            my @cont = grep { worker_of($_) eq $pid } @rows;
            note scalar(@cont) . " answered by the stopped worker once "
                . 'continued';
            is(scalar(grep { $_->{status} != 401 } @cont), 0, 'the '
                . 'continued worker serves no stale entry');
            is($pending, 0, 'every request answered');
        };
    }

    subtest "$workers workers: under load, a worker stopped and continued "
        . 'twice: no wrong allow' => sub {
        my %tok = map { $_ => new_token() } qw(valid unknown revoked);
        push @tokens, values %tok;
        seed_key($redis, $tok{valid}, id => 'k_load_valid');
        seed_key($redis, $tok{revoked}, id => 'k_load_revoked',
            revoked => 1);
        my $load = ApiKey::Load->start(port => $nginx->port, clients => 4,
            timeout => 10, mix => [
                { class => 'valid', path => '/echo/a', token => $tok{valid},
                  id => 'k_load_valid' },
                { class => 'unknown', path => '/echo/b',
                  token => $tok{unknown} },
                { class => 'revoked', path => '/echo/c',
                  token => $tok{revoked} },
            ]);
        my @pids = $nginx->worker_pids;
        for my $pid (@pids[0, -1]) {
            sleep 0.5;
            kill 'STOP', $pid;
            sleep 1;
            kill 'CONT', $pid;
        }
        sleep 0.5;
        my $r = $load->stop;
        cmp_ok($r->total, '>', 100, $r->total . ' requests');
        is($r->wrong_allows, 0, 'no wrong allow') or diag $r->summary;
        cmp_ok($r->count(class => 'valid', status => 200), '>', 10,
            'the valid key is let in');
    };

    $nginx->stop;
}

subtest 'a worker killed 20 times in a row (the master respawns it): a '
    . "revocation right after is obeyed within $BOUND s every time" => sub {
    my $workers = 2;
    my $nginx = start_cached_nginx(redis => $redis, workers => $workers,
        cache => 'zone=apikeys:1m ttl=60s', quiet => 1);
    my ($mark, @bad) = (0);
    for my $try (1 .. 20) {
        # the new worker's subscription flushes the zone when it is live:
        # the key is cached after that
        wait_subscribed($redis, $workers)
            && eval { wait_live($nginx, $mark) }
            or do { push @bad, "try $try: not subscribed"; next };
        my ($t, $cached) = cached_key($nginx, $workers, "k_kill$try");
        push @bad, "try $try: the key was not cached by every worker"
            unless $cached;
        my @pids = $nginx->worker_pids;
        $mark = $nginx->mark;
        kill 'KILL', $pids[$try % @pids];
        my ($done, $pending, @rows) = revoke_and_poll($nginx, $t);
        my ($after, $stale, $first, $what) = verdict($done, $pending,
            @rows);
        note "try $try: $what";
        push @bad, "try $try: $what"
            if @$stale || !defined $first || $first >= $BOUND
            || @$after < 21 || $pending;
        wait_until(sub { $nginx->worker_pids == $workers }, 5);
    }
    is(scalar(@bad), 0, 'every try within the bound') or diag join "\n",
        @bad;
    $nginx->stop;
};

done_testing;
