# The invalidation subscription runs on the module's one Redis client,
# with its caps: a hostile or broken server that sends an invalidation
# message too large, or with too many keys, costs the subscription (closed,
# logged, the cache bypassed until it is back), never the worker's memory.

use lib 't/lib';
use ApiKey::Test;

my $HUGE = 'x' x (2 << 20);
my $mode = 'huge';

sub tracking_fake {
    my ($what) = @_;
    return start_fake_redis(handler => sub {
        my ($cmd) = @_;
        my $name = uc $cmd->[0];
        if ($name eq 'CLIENT') {
            return uc($cmd->[1]) eq 'ID' ? resp_int(7) : resp_status('OK');
        }
        if ($name eq 'SUBSCRIBE') {
            my $msg = $what eq 'huge'
                ? resp_array(map { resp_bulk($_) } 'message',
                    '__redis__:invalidate', $HUGE)
                : resp_array(resp_bulk('message'),
                    resp_bulk('__redis__:invalidate'),
                    resp_array(map { resp_bulk("apikey:$_") } 1 .. 5000));
            return [send => resp_array(resp_bulk('subscribe'),
                    resp_bulk('__redis__:invalidate'), resp_int(1)),
                sleep => 0.2, send => $msg];
        }
        return undef;
    });
}

for my $c (['an invalidation message of 2 MB', 'huge',
        qr/sent a reply too large/],
    ['an invalidation message with 5000 keys', 'many',
        qr/sent an invalid reply/])
{
    my ($what, $kind, $why) = @$c;
    subtest "$what: the subscription is closed and logged, the worker "
        . 'lives, keys are still checked' => sub {
        my $fake = tracking_fake($kind);
        my $t = new_token();
        seed_key($fake, $t, id => 'k_ok');
        my $nginx = start_nginx(redis => $fake, http => <<'EOF');
    apikey_cache zone=apikeys:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /api/ {
            apikey on;
            apikey_redis %%REDIS%%;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF
        my @pids = $nginx->worker_pids;
        ok(wait_until(sub { $nginx->error_log =~ $why }, 3),
            "logged: $why");
        like($nginx->error_log, qr/\[error\].*apikey cache: redis "[^"]+"/,
            'as the subscription\'s error');
        my $res = $nginx->get('/api/x', Authorization => "Bearer $t");
        is($res->status, 200, 'a key is still let in');
        is(join(',', $nginx->worker_pids), join(',', @pids),
            'the same worker');
        $nginx->stop;
        $fake->stop;
    };
}

done_testing;
