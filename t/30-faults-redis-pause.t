# Redis stops answering (SIGSTOP) for 2 s under load, on nginx with two
# workers: protected requests get 503 within the Redis timeout, an open
# location keeps answering at once, everything recovers within 1 s of
# SIGCONT, nothing is let through that should not be, and no descriptor
# or Redis connection is left behind.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Load;

# a subtest bound to timing (see ApiKey::Load); on slow runs the phases
# and the timeout scale with slack()
sub timed {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ApiKey::Load->timed_subtest(@_);
}

my $TIMEOUT = slack(0.3);

my $redis = start_redis();
my $scene = ApiKey::Load->scene(redis => $redis,
    timeout => int($TIMEOUT * 1000) . 'ms');
my $nginx = $scene->{nginx};

my %token = %{ $scene->{token} };
my @mix = @{ $scene->{mix} };

my @workers = $nginx->worker_pids;
is(scalar(@workers), 2, 'nginx runs two workers');

# what nginx and Redis hold once a first load is over: the reference
sub census { return ApiKey::Load->census($redis, @workers) }

my $before = ApiKey::Load->warm_up(nginx => $nginx, mix => \@mix,
    redis => $redis, workers => \@workers);

my $load = ApiKey::Load->start(port => $nginx->port, mix => \@mix,
    clients => 4);
sleep slack(1);
my $t_stop = time;
$redis->pause;
sleep slack(2);
my $t_cont = time;
$redis->resume;
sleep slack(2);
my $r = $load->stop;
note $r->summary;

is($r->wrong_allows, 0, 'no wrong allow');
is($r->errors, 0, 'every request got an answer')
    or diag $r->describe($r->rows(error => 1));

timed 'before the stop: every answer as usual' => sub {
    # a request in flight when Redis stops may time out
    my %w = (to => $t_stop - $TIMEOUT - slack(0.1));
    ok($r->count(%w) >= 5, 'requests were sent');
    for ([valid => 200], [unknown => 401], [revoked => 401], [open => 200]) {
        my ($class, $status) = @$_;
        my @bad = $r->other_than([$status], %w, class => $class);
        is(scalar(@bad), 0, "$class: $status") or diag $r->describe(@bad);
    }
};

timed 'while Redis is stopped: protected requests get 503 within the '
    . 'timeout' => sub {
    my %w = (from => $t_stop + 0.05, to => $t_cont - $TIMEOUT - slack(0.1));
    my $n = $r->count(%w, protected => 1);
    ok($n >= 4, "$n protected requests started while Redis was stopped");
    my @bad = $r->other_than([503], %w, protected => 1);
    is(scalar(@bad), 0, 'all of them 503') or diag $r->describe(@bad);
    my $max = $r->max_elapsed(%w, protected => 1);
    # well before SIGCONT: the answer did not wait for Redis
    cmp_ok($max, '<=', $TIMEOUT + slack(0.6),
        sprintf('slowest answer %.3fs: the timeout (%.1fs) and no more',
            $max, $TIMEOUT));
};

timed 'while Redis is stopped: the open location answers at once'
    => sub {
    my %w = (from => $t_stop + 0.05, to => $t_cont, class => 'open');
    ok($r->count(%w) >= 2, $r->count(%w) . ' open requests meanwhile');
    my @bad = $r->other_than([200], %w);
    is(scalar(@bad), 0, 'all 200') or diag $r->describe(@bad);
    my $max = $r->max_elapsed(%w);
    cmp_ok($max, '<', $TIMEOUT * 0.8,
        sprintf('slowest %.3fs: never waits on Redis', $max));
};

timed sprintf('within %g s of SIGCONT everything is back', slack(1)) => sub {
    my %w = (from => $t_cont + slack(1));
    ok($r->count(%w, protected => 1) >= 5, 'requests were sent');
    for ([valid => 200], [unknown => 401], [revoked => 401], [open => 200]) {
        my ($class, $status) = @$_;
        my @bad = $r->other_than([$status], %w, class => $class);
        is(scalar(@bad), 0, "$class: $status") or diag $r->describe(@bad);
    }
};

subtest 'no worker died, no descriptor or Redis connection leaked' => sub {
    is_deeply([$nginx->worker_pids], \@workers, 'the same two workers');
    my $after;
    my $ok = wait_until(sub {
        $after = census();
        return $after->{redis_clients} == $after->{nginx_redis}
            && join(',', map { $after->{other}{$_} } @workers)
               eq join(',', map { $before->{other}{$_} } @workers);
    }, slack(5));
    note explain { after => $after };
    is_deeply($after->{other}, $before->{other},
        'each worker holds the same descriptors besides Redis connections');
    is($after->{redis_clients}, $after->{nginx_redis},
        "Redis counts exactly the workers' connections "
        . "($after->{redis_clients})");
    for my $pid (@workers) {
        cmp_ok($after->{redis}{$pid}, '<=', 16,
            "worker $pid keeps at most apikey_redis_keepalive connections");
    }
};

error_log_clean($nginx, values %token);
unlike($nginx->error_log, qr/exited on signal/, 'no worker crashed');

done_testing;
