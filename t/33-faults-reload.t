# nginx reloads its configuration (SIGHUP) three times under load, with
# keep-alive clients and clients opening a connection per request: no
# request fails, every answer is the right one, nothing is let through
# that should not be, the old workers leave at once (their idle Redis
# connections do not hold them) and no Redis connection is left behind.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Load;

my $redis = start_redis();
my $scene = ApiKey::Load->scene(redis => $redis);
my $nginx = $scene->{nginx};

my %token = %{ $scene->{token} };
my @mix = @{ $scene->{mix} };

my @first = $nginx->worker_pids;
my $keep = ApiKey::Load->start(port => $nginx->port, mix => \@mix,
    clients => 2);
my $close = ApiKey::Load->start(port => $nginx->port, mix => \@mix,
    clients => 2, keepalive => 0);
sleep slack(1);

my (@took, %seen);
$seen{$_} = 1 for @first;
for my $n (1 .. 3) {
    my $t0 = time;
    $nginx->reload;
    push @took, time - $t0;
    $seen{$_}++ for $nginx->worker_pids;
    sleep slack(0.7);
}
sleep slack(0.5);
my $rk = $keep->stop;
my $rc = $close->stop;
note "keep-alive clients:\n" . $rk->summary;
note "a connection per request:\n" . $rc->summary;

for (['keep-alive' => $rk], ['connection per request' => $rc]) {
    my ($what, $r) = @$_;
    is($r->wrong_allows, 0, "$what: no wrong allow");
    ApiKey::Load->timed_subtest("$what: no failed request, every answer "
        . 'right' => sub {
        ok($r->total > 50, $r->total . ' requests');
        is($r->errors, 0, 'no request failed')
            or diag $r->describe($r->rows(error => 1));
        for ([valid => 200], [unknown => 401], [revoked => 401],
            [open => 200])
        {
            my ($class, $status) = @$_;
            my @bad = $r->other_than([$status], class => $class);
            is(scalar(@bad), 0, "$class: $status")
                or diag $r->describe(@bad);
        }
    });
}
note $rk->retries . ' keep-alive requests sent again on a new connection '
    . 'after nginx closed an idle one';

is(scalar(keys %seen), 8, 'three reloads: four generations of two workers');
for my $i (0 .. $#took) {
    cmp_ok($took[$i], '<', slack(2), sprintf('reload %d: the old workers '
        . 'were gone after %.2fs', $i + 1, $took[$i]));
}

my $after;
my @workers = $nginx->worker_pids;
wait_until(sub {
    my $n = 0;
    $n += ApiKey::Load->fd_census($_, $redis->port)->{redis} for @workers;
    $after = { nginx => $n, redis => $redis->connected_clients };
    return $after->{nginx} == $after->{redis};
}, slack(5));
is($after->{redis}, $after->{nginx}, 'Redis counts only the connections '
    . "of the current workers ($after->{redis})");

unlike($nginx->error_log, qr/open socket #\d+ left in connection/,
    'no connection left open at worker exit');
unlike($nginx->error_log, qr/exited on signal/, 'no worker crashed');
error_log_clean($nginx, values %token);

done_testing;
