# The test harness itself, against plain nginx (no module) and a real
# redis-server: if these fail, no other result in t/ means anything.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Test::Redis;

my $redis = start_redis(unixsocket => 1);

subtest 'redis-server answers on TCP and on its unix socket' => sub {
    is($redis->cmd('PING'), 'PONG', 'PING over TCP');
    my $c = ApiKey::Test::Redis::Client->new(path => $redis->socket);
    is($c->cmd('PING'), 'PONG', 'PING over the unix socket');
    $c->close;
};

subtest 'seed_key writes the record under the SHA-256 of the token' => sub {
    my $token = new_token();
    like($token, qr/^ak_[0-9A-Za-z]{36}$/, 'token has the product format');
    my $key = seed_key($redis, $token, id => 'k_1', name => 'CI export');
    is($key, 'apikey:' . Digest::SHA::sha256_hex($token), 'key name');
    is_deeply($redis->cmd('HMGET', $key, qw(id name org)),
        ['k_1', 'CI export', undef], 'fields as written, missing is nil');
    my $hkey = seed_key($redis, $token, id => 'k_2', -prefix => 'p:',
        -secret => 's3cret');
    is($hkey, 'p:' . Digest::SHA::hmac_sha256_hex($token, 's3cret'),
        'HMAC key name with prefix');
};

subtest 'redis counters: clients, connections, commandstats' => sub {
    # The unix-socket client above is closed, but redis-server may not
    # have read that close yet on a loaded machine.
    ok(wait_until(sub { $redis->connected_clients == 0 }, slack(5)),
        'no client left from the subtest before');
    my $before = $redis->total_connections;
    my @c = map { $redis->connect } 1 .. 3;
    # connect() returns once the kernel accepted; a PING answered proves
    # redis-server did too, before the admin connection asks INFO
    $_->cmd('PING') for @c;
    is($redis->connected_clients, 3, 'three more clients connected');
    is(scalar($redis->client_list), 3, 'CLIENT LIST shows them');
    is($redis->total_connections - $before, 3, 'total_connections_received');
    $_->cmd('HMGET', 'x', 'id') for @c;
    ok($redis->calls('hmget') >= 3, 'commandstats counts HMGET');
    $_->close for @c;
};

subtest 'redis with a password and an ACL user' => sub {
    my $r = start_redis(password => 'adm',
        users => ['nginx on >npw ~apikey:* +hmget']);
    is($r->cmd('PING'), 'PONG', 'admin connection authenticated');
    my $c = $r->connect(noauth => 1);
    like($c->try_cmd('HMGET', 'apikey:x', 'id'), qr/^NOAUTH/,
        'no AUTH: refused');
    is($c->cmd('AUTH', 'nginx', 'npw'), 'OK', 'ACL user logs in');
    is_deeply($c->cmd('HMGET', 'apikey:x', 'id'), [undef], 'and reads');
    $r->stop;
};

subtest 'redis pause, kill -9 and restart on the same port' => sub {
    my $r = start_redis();
    my $port = $r->port;
    $r->pause;
    my $c = ApiKey::Test::Redis::Client->new(port => $port, timeout => 0.3);
    my $t0 = time;
    ok(!eval { $c->cmd('PING'); 1 }, 'a stopped redis does not answer');
    $r->resume;
    is($c->read_reply, 'PONG', 'after SIGCONT the answer comes');
    $r->kill9;
    ok(!eval { ApiKey::Test::Redis::Client->new(port => $port)->cmd('PING');
        1 }, 'killed: connection refused');
    $r->restart;
    is($r->port, $port, 'same port');
    is($r->cmd('PING'), 'PONG', 'restarted');
    $r->stop;
};

my $nginx = start_nginx(module => 0, workers => 2, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location /plain { return 200 "hello\n"; }
        location /chunked { proxy_pass http://%%ECHO%%; proxy_buffering off;
                            chunked_transfer_encoding on; }
        location /up/ { proxy_pass http://%%ECHO%%; }
        location /json { default_type application/json;
                         return 401 '{"a":1}\n'; }
    }
EOF

subtest 'nginx runs with the asked number of workers' => sub {
    is(scalar($nginx->worker_pids), 2, 'two workers');
    my $res = $nginx->get('/plain');
    is($res->status, 200, 'status');
    is($res->body, "hello\n", 'body');
    ok(defined $res->header('date'), 'Date header parsed');
    is($res->header('content-type'), 'text/plain', 'content type');
};

subtest 'the echo upstream shows the request as received' => sub {
    my $hits = $nginx->echo_upstream->hits;
    my $res = $nginx->get('/up/a?b=1', 'X-ApiKey-Id' => 'evil',
        'x-apikey-id' => 'evil2', Authorization => 'Bearer abc');
    is($res->status, 200, 'status');
    my $up = $res->upstream;
    ok($up, 'answer came from the echo upstream');
    like($up->request_line, qr{^GET /up/a\?b=1 HTTP/1\.[01]$}, 'request line');
    is_deeply([$up->headers('x-apikey-id')], ['evil', 'evil2'],
        'repeated headers kept in order, names case-insensitive');
    is(scalar($up->with_prefix('X-ApiKey-')), 2, 'with_prefix');
    is($up->header('authorization'), 'Bearer abc', 'authorization');
    is($nginx->echo_upstream->hits, $hits + 1, 'hit counted');
};

subtest 'keep-alive client reuses its connection' => sub {
    my $c = $nginx->client;
    for (1 .. 5) {
        my $res = $c->get('/plain');
        is($res->status, 200, "request $_");
    }
    is($c->connections, 1, 'one TCP connection for five requests');
    $c->close;
};

subtest 'raw requests and chunked bodies' => sub {
    my $res = $nginx->raw("GET /plain HTTP/1.0\r\n\r\n");
    is($res->status, 200, 'HTTP/1.0 request');
    $res = $nginx->raw("GET /plain HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    is($res->status, 400, 'two Host headers refused by nginx core');
    $res = $nginx->get('/json');
    is($res->status, 401, 'status');
    is($res->body, "{\"a\":1}\n", 'body');
    is($res->header('content-type'), 'application/json', 'type');
    my $t = time;
    $res = ApiKey::Test::HTTP->new(port => $nginx->port, timeout => 0.3)
        ->request_raw("GET /plain HTTP/1.1\r\nHost: a\r\n");
    is($res->error, 'timeout', 'incomplete request: client times out');
    ok(time - $t < 1, 'within the timeout');
};

subtest 'reload replaces the workers' => sub {
    my @old = $nginx->worker_pids;
    $nginx->reload(http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location /plain { return 200 "reloaded\n"; }
    }
EOF
    my @new = $nginx->worker_pids;
    is(scalar(@new), 2, 'two new workers');
    ok(!(grep { my $o = $_; grep { $_ == $o } @new } @old), 'all new');
    is($nginx->get('/plain')->body, "reloaded\n", 'new configuration');
};

subtest 'nginx -t reports errors' => sub {
    my ($rc, $out) = nginx_check(module => 0,
        http => "server { listen 127.0.0.1:%%PORT%%; bogus_directive; }");
    isnt($rc, 0, 'exit code');
    like($out, qr/\[emerg\] .*unknown directive "bogus_directive"/, 'message');
    ($rc, $out) = nginx_check(module => 0,
        http => "server { listen 127.0.0.1:%%PORT%%; }");
    is($rc, 0, 'a good configuration passes') or diag $out;
};

subtest 'fake redis: default answers, counters, faults' => sub {
    my $token = new_token();
    my $fake = start_fake_redis(handler => sub {
        my ($cmd, $ctx) = @_;
        my $k = $cmd->[1] // '';
        return resp_error('ERR boom') if $k eq 'err';
        return [stall => 1] if $k eq 'stall';
        return [sleep => 0.2, send => $ctx->{default}->()] if $k eq 'slow';
        if ($k eq 'split') {
            my $r = $ctx->{default}->();
            return [send => substr($r, 0, 7), sleep => 0.05,
                send => substr($r, 7, 5), sleep => 0.05,
                send => substr($r, 12)];
        }
        return [send => "*2\r\n\$3\r\nab", close => 1] if $k eq 'cut';
        return undef;
    });
    seed_key($fake, $token, id => 'k_9', name => 'n');
    my $key = key_hash($token);
    my $c = ApiKey::Test::Redis::Client->new(port => $fake->port,
        timeout => 0.5);
    is($c->cmd('AUTH', 'x'), 'OK', 'AUTH');
    is_deeply($c->cmd('HMGET', $key, qw(id name org)), ['k_9', 'n', undef],
        'HMGET of a seeded key');
    like($c->try_cmd('HMGET', 'err', 'id'), qr/^ERR boom/, 'error reply');
    my $t = time;
    is_deeply($c->cmd('HMGET', 'slow', 'id'), [undef], 'slow reply');
    ok(time - $t >= 0.2, 'came after the delay');
    is_deeply($c->cmd('HMGET', 'split', 'id', 'x'), [undef, undef],
        'split reply reassembled');
    ok(!eval { $c->cmd('HMGET', 'stall', 'id'); 1 }, 'stall: no answer');
    $c->close;

    my $d = ApiKey::Test::Redis::Client->new(port => $fake->port);
    ok(!eval { $d->cmd('HMGET', 'cut', 'id'); 1 }, 'cut: connection closed');
    like($@, qr/closed/, 'closed mid-reply');

    ok(wait_until(sub { $fake->connections == 2 }, 2), 'two connections');
    my @h = $fake->commands_named('HMGET');
    is(scalar(@h), 6, "six HMGETs recorded");
    is_deeply($h[0], ['HMGET', $key, qw(id name org)], 'with arguments');
    $fake->stop;
};

subtest 'children are gone after stop' => sub {
    my $r = start_redis();
    my $pid = $r->pid;
    $r->stop;
    ok(!kill(0, $pid), 'redis-server gone');
    my $master = $nginx->master;
    my @w = $nginx->worker_pids;
    $nginx->stop;
    ok(!kill(0, $_), "nginx process $_ gone") for $master, @w;
};

done_testing;
