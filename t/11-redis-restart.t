# A real Redis goes away and comes back: requests fail closed (503) while
# it is gone and recover by themselves, without reloading nginx.

use lib 't/lib';
use ApiKey::Test;

# 200ms on a normal run; a slow run (valgrind) scales it with the bounds
my $TIMEOUT = slack(0.2);

my $redis = start_redis();
my $nginx = start_nginx(workers => 1, redis => $redis,
    vars => { TIMEOUT => int($TIMEOUT * 1000) }, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        add_header X-Status $apikey_status always;

        location /open/ {
            return 200 "open\n";
        }

        location /api/ {
            apikey on;
            apikey_redis %%REDIS%%;
            apikey_redis_timeout %%TIMEOUT%%ms;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my $token = new_token();
my $unknown = new_token();
seed_key($redis, $token, id => 'k_1');
my @workers = $nginx->worker_pids;

sub outcome {
    my $res = $nginx->get('/api/x', Authorization => "Bearer $token");
    return $res->status . ' ' . ($res->header('x-status') // '(none)');
}

is(outcome(), '200 ok', 'Redis up: 200');

subtest 'Redis stopped: 503 at once' => sub {
    $redis->stop;
    answer_is($nginx->get('/api/x', Authorization => "Bearer $token"),
        'error');
    timing_ok('within the timeout', sub {
        my $res = $nginx->get('/api/x', Authorization => "Bearer $token");
        return ($res->status == 503 && $res->elapsed < $TIMEOUT + slack(0.1),
            sprintf('%d after %.3fs', $res->status, $res->elapsed));
    });
    is($nginx->get('/open/x')->status, 200, 'unprotected location works');
};

subtest 'Redis restarted: the very next request succeeds' => sub {
    $redis->restart;
    seed_key($redis, $token, id => 'k_1');
    is(outcome(), '200 ok', 'first request after the restart: 200');
    is(outcome(), '200 ok', 'and the next');
};

subtest 'Redis killed with SIGKILL and restarted' => sub {
    is(outcome(), '200 ok', 'before: 200 (an idle connection is pooled)');
    $redis->kill9;
    is(outcome(), '503 error', 'while it is gone: 503');
    $redis->restart;
    seed_key($redis, $token, id => 'k_1');
    is(outcome(), '200 ok', 'after the restart: 200');
};

subtest 'Redis closing idle connections does not fail a request' => sub {
    is(outcome(), '200 ok', 'before: 200');
    $redis->cmd('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    sleep 0.05;
    is(outcome(), '200 ok', 'after CLIENT KILL: 200');
};

subtest 'Redis stopped with SIGSTOP for a second, then SIGCONT' => sub {
    is(outcome(), '200 ok', 'before: 200');
    $redis->pause;
    my $t = time;
    answer_is($nginx->get('/api/x', Authorization => "Bearer $token"),
        'error');
    timing_ok('503 within the timeout + 100 ms, the open location at once',
        sub {
        my $res = $nginx->get('/api/x', Authorization => "Bearer $token");
        my $open = $nginx->get('/open/x');
        return ($res->status == 503 && $res->elapsed <= $TIMEOUT + slack(0.1)
            && $open->status == 200 && $open->elapsed < slack(0.1),
            sprintf('%d after %.3fs, open %d after %.3fs', $res->status,
                $res->elapsed, $open->status, $open->elapsed));
    });
    sleep(1 - (time - $t)) if time - $t < 1;
    $redis->resume;
    my $ok = wait_until(sub { outcome() eq '200 ok' }, slack(1), 0.01);
    ok($ok, 'recovered within a second of SIGCONT');
    is($nginx->get('/api/x', Authorization => "Bearer $unknown")->status, 401,
        'an unknown key is refused (no stale reply taken for it)');
};

subtest 'no leak and no reload' => sub {
    is_deeply([$nginx->worker_pids], \@workers, 'same worker all along');
    ok($redis->connected_clients <= 16,
        'Redis holds no more connections than the keepalive allows')
        or diag 'clients: ' . $redis->connected_clients;
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, $token, $unknown);
};

done_testing;
