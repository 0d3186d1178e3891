# Redis is killed (SIGKILL) under load and started again on the same port,
# on nginx with two workers: 503 while it is down, full recovery without
# reloading nginx, nothing let through that should not be, and afterwards
# the workers hold the descriptors they held before and Redis counts
# exactly the connections nginx keeps (no leak on either side).

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Load;

# a subtest bound to timing (see ApiKey::Load); on slow runs the phases
# scale with slack()
sub timed {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ApiKey::Load->timed_subtest(@_);
}

my $redis = start_redis();
my $scene = ApiKey::Load->scene(redis => $redis);
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
my $t_kill = time;
$redis->kill9;
sleep slack(1.5);
my $t_restart = time;
$redis->restart;
# the new Redis starts empty: the keys come back as a restore would bring
# them; requests in between find no key (401), which is right
ApiKey::Load->seed_scene($redis, \%token);
my $t_back = time;
sleep slack(2);
my $r = $load->stop;
note $r->summary;
note sprintf 'down for %.2fs, restarted in %.2fs', $t_restart - $t_kill,
    $t_back - $t_restart;

is($r->wrong_allows, 0, 'no wrong allow');
is($r->errors, 0, 'every request got an answer')
    or diag $r->describe($r->rows(error => 1));

timed 'before the kill: every answer as usual' => sub {
    my %w = (to => $t_kill - slack(0.2));
    ok($r->count(%w) >= 5, 'requests were sent');
    for ([valid => 200], [unknown => 401], [revoked => 401], [open => 200]) {
        my ($class, $status) = @$_;
        my @bad = $r->other_than([$status], %w, class => $class);
        is(scalar(@bad), 0, "$class: $status") or diag $r->describe(@bad);
    }
};

timed 'while Redis is down: 503 at once, the open location answers'
    => sub {
    my %w = (from => $t_kill + 0.05, to => $t_restart);
    my $n = $r->count(%w, protected => 1);
    ok($n >= 10, "$n protected requests while Redis was down");
    my @bad = $r->other_than([503], %w, protected => 1);
    is(scalar(@bad), 0, 'all of them 503') or diag $r->describe(@bad);
    my $max = $r->max_elapsed(%w, protected => 1);
    cmp_ok($max, '<', slack(0.2),
        sprintf('slowest %.3fs: a refused connection is known at once',
            $max));
    @bad = $r->other_than([200], %w, class => 'open');
    ok($r->count(%w, class => 'open') >= 2, 'open requests meanwhile');
    is(scalar(@bad), 0, 'open location: all 200') or diag $r->describe(@bad);
};

timed 'after the restart: recovery without a reload' => sub {
    my %w = (from => $t_back + slack(1));
    ok($r->count(%w, protected => 1) >= 5, 'requests were sent');
    for ([valid => 200], [unknown => 401], [revoked => 401], [open => 200]) {
        my ($class, $status) = @$_;
        my @bad = $r->other_than([$status], %w, class => $class);
        is(scalar(@bad), 0, "$class: $status") or diag $r->describe(@bad);
    }
    my @late = $r->other_than([200], from => $t_back, class => 'valid');
    is(scalar(@late), 0, 'valid keys pass from the moment they are back')
        or diag $r->describe(@late);
};

subtest 'no worker died, no descriptor or Redis connection leaked' => sub {
    is_deeply([$nginx->worker_pids], \@workers, 'the same two workers');
    my $after;
    wait_until(sub {
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
