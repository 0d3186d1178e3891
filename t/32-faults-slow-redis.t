# A Redis that answers half of the lookups too late, under load, on nginx
# with two workers: exactly those get 503 (at the timeout), the others
# their usual answer, nothing is let through that should not be, no
# worker dies and no connection is left behind.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Load;

# a subtest bound to timing (see ApiKey::Load); on slow runs the load
# lasts longer, as the timeout does
sub timed {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ApiKey::Load->timed_subtest(@_);
}

# generous: the fake Redis is Perl, forking per connection, and may stall
# for a while on a busy machine (sanitizers: APIKEY_TEST_TIME_FACTOR); a
# timely lookup must never time out
my $TIMEOUT = slack(0.4);
my $TIMEOUT_MS = int($TIMEOUT * 1000);
my $LATE = $TIMEOUT + slack(0.3);

my %token = map { $_ => new_token() }
    qw(valid valid_late unknown unknown_late revoked revoked_late);
my %late = map { key_hash($token{$_}) => 1 } grep { /_late$/ } keys %token;

my $fake = start_fake_redis(handler => sub {
    my ($cmd, $ctx) = @_;
    return undef unless uc $cmd->[0] eq 'HMGET' && $late{ $cmd->[1] };
    return [sleep => $LATE, send => $ctx->{default}->()];
});

seed_key($fake, $token{$_}, id => "k_$_", scopes => 'read:x')
    for qw(valid valid_late);
seed_key($fake, $token{$_}, id => "k_$_", revoked => 1)
    for qw(revoked revoked_late);

my $nginx = start_nginx(redis => $fake, workers => 2,
    vars => { TIMEOUT => $TIMEOUT_MS }, http => <<'EOF2');
    log_format timing '$request_time $status $apikey_status $uri';

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/timing.log timing;
        apikey_redis %%REDIS%%;
        apikey_redis_timeout %%TIMEOUT%%ms;
        # a lookup per connection: one answered late holds up no other
        # (pipelined lookups share their connection's fate: t/16)
        apikey_redis_pipeline 1;

        location /open/ {
            proxy_pass http://%%ECHO%%;
        }

        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF2

my @mix = ((map {
    { class => $_, path => "/api/$_", token => $token{$_},
      /^valid/ ? (id => "k_$_") : () }
} qw(valid valid_late unknown unknown_late revoked revoked_late)),
    { class => 'open', path => '/open/x', protected => 0 });

my @workers = $nginx->worker_pids;
is(scalar(@workers), 2, 'nginx runs two workers');

sub slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or return '';
    local $/;
    return scalar <$fh>;
}

sub census {
    my %c = (fake_side => ApiKey::Load->server_connections($fake->port));
    for my $pid (@workers) {
        my $f = ApiKey::Load->fd_census($pid, $fake->port);
        $c{other}{$pid} = $f->{other};
        $c{redis}{$pid} = $f->{redis};
        $c{nginx_redis} += $f->{redis};
    }
    return \%c;
}

sub settled {
    my ($ref) = @_;
    my $c;
    wait_until(sub {
        $c = census();
        return $c->{fake_side} == $c->{nginx_redis}
            && (!$ref || join(',', map { $c->{other}{$_} } @workers)
                eq join(',', map { $ref->{other}{$_} } @workers));
    }, slack(5));
    return $c;
}

my $warm = ApiKey::Load->start(port => $nginx->port, mix => \@mix,
    clients => 4);
sleep 1;
my $w = $warm->stop;
is($w->wrong_allows, 0, 'warm-up: no wrong allow');
my $before = settled();
note explain { before => $before };

my $CLIENTS = 4;
my $mark = $nginx->mark;
my $load = ApiKey::Load->start(port => $nginx->port, mix => \@mix,
    clients => $CLIENTS);
sleep slack(4);
my $r = $load->stop;
note $r->summary;

is($r->wrong_allows, 0, 'no wrong allow');
is($r->errors, 0, 'every request got an answer')
    or diag $r->describe($r->rows(error => 1));

my @late = grep { /_late$/ } keys %token;
my $n_late = $r->count(class => \@late);
my $n_fast = $r->count(protected => 1) - $n_late;
note "$n_late late and $n_fast timely lookups were made";

timed 'the lookups answered too late, and only those, get 503' => sub {
    ok($n_late >= 5 && $n_fast >= 5, 'enough of both were made');
    # a worker kept off the CPU past the late reply finds both the reply
    # and its expired timer when it runs again: nginx reads first, and the
    # key gets its right answer, which is no fault
    my %right = (valid_late => 200, unknown_late => 401,
        revoked_late => 401);
    my @bad = grep {
        $_->{status} != 503 && !($_->{status} == $right{ $_->{class} }
            && $_->{elapsed} >= $LATE - 0.02)
    } $r->rows(class => \@late);
    is(scalar(@bad), 0, 'late lookups: 503') or diag $r->describe(@bad);
    my $max = $r->max_elapsed(class => \@late, status => 503);
    cmp_ok($max, '<=', $TIMEOUT + slack(0.35),
        sprintf('slowest 503 %.3fs: the timeout and no more', $max))
        or diag 'slowest in nginx\'s own $request_time: ' . join ', ',
            (sort { $b cmp $a } map { /^(\S+) 503 / ? $1 : () }
                split /\n/, slurp($nginx->dir . '/timing.log'))[0 .. 4];
    for ([valid => 200], [unknown => 401], [revoked => 401], [open => 200]) {
        my ($class, $status) = @$_;
        @bad = $r->other_than([$status], class => $class);
        is(scalar(@bad), 0, "timely $class: $status")
            or diag $r->describe(@bad);
    }
};

subtest 'no worker died, no connection or descriptor left behind' => sub {
    is_deeply([$nginx->worker_pids], \@workers, 'the same two workers');
    my $after = settled($before);
    note explain { after => $after };
    is_deeply($after->{other}, $before->{other},
        'each worker holds the same descriptors besides Redis connections');
    is($after->{fake_side}, $after->{nginx_redis},
        "the fake Redis holds exactly the workers' connections "
        . "($after->{fake_side})");
    for my $pid (@workers) {
        cmp_ok($after->{redis}{$pid}, '<=', 16,
            "worker $pid keeps at most apikey_redis_keepalive connections");
    }
};

# requests of one worker for the same key share a lookup: one timeout
# logged answers all of them
timed 'the timeouts are logged at [error]' => sub {
    my @timeouts = grep { /\[error\].*timed out reading/ }
        split /\n/, $nginx->error_log_since($mark);
    # a late request in flight when the load stopped is not counted, but
    # its lookup still times out: one per client at most
    ok(@timeouts >= 1 && @timeouts <= $n_late + $CLIENTS,
        scalar(@timeouts) . " timeouts logged for $n_late late requests");
};
error_log_clean($nginx, values %token);
unlike($nginx->error_log, qr/exited on signal/, 'no worker crashed');

done_testing;
