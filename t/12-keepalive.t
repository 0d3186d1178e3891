# Redis connections are kept and reused per worker: AUTH and SELECT go only
# on a new connection, each lookup is one HMGET, and many requests need
# only a handful of connections.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Test::HTTP;

my $redis = start_redis();
my $r4 = start_redis();       # for apikey_redis_keepalive 4
my $r0 = start_redis();       # for apikey_redis_keepalive 0
my $plain = start_fake_redis();
my $authdb = start_fake_redis(password => 'pw');
my $acl = start_fake_redis(password => 'npw');

my $nginx = start_nginx(workers => 1, redis => $redis,
    vars => { R4 => $r4->addr, R0 => $r0->addr, PLAIN => $plain->addr, AUTHDB => $authdb->addr,
        ACL => $acl->addr },
    http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;

        location /api/ {
            apikey on;
            apikey_redis %%REDIS%%;
            proxy_pass http://%%ECHO%%;
        }

        location /four/ {
            apikey on;
            apikey_redis %%R4%%;
            apikey_redis_keepalive 4;
            proxy_pass http://%%ECHO%%;
        }

        location /none/ {
            apikey on;
            apikey_redis %%R0%%;
            apikey_redis_keepalive 0;
            proxy_pass http://%%ECHO%%;
        }

        location /fake-plain/ {
            apikey on;
            apikey_redis %%PLAIN%%;
            proxy_pass http://%%ECHO%%;
        }

        location /fake-authdb/ {
            apikey on;
            apikey_redis %%AUTHDB%% db=2 password=pw;
            proxy_pass http://%%ECHO%%;
        }

        location /fake-acl/ {
            apikey on;
            apikey_redis %%ACL%% user=nginx password=npw;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my $token = new_token();
seed_key($redis, $token, id => 'k_1');
seed_key($_, $token, id => 'k_1') for $r4, $r0, $plain, $authdb, $acl;
my $hash_key = key_hash($token);
my @hmget = ('HMGET', $hash_key,
    qw(id name org scopes expires_at revoked cidrs rate burst));
# every lookup ends with PING <nonce>, whose echo vouches for the reply
my @ping = ('PING', '<nonce>');

# lookups and the commands that open a connection; an HSET of last_used_at
# (issue 3) is allowed and left out
sub lookup_commands {
    my ($fake) = @_;
    my $by = $fake->commands_by_connection;
    return { map {
        $_ => [map {
            uc $_->[0] eq 'PING' && @$_ == 2 && $_->[1] =~ /^[0-9a-f]{16}$/
                ? \@ping : $_
        } grep { uc $_->[0] ne 'HSET' } @{ $by->{$_} }]
    } keys %$by };
}

subtest '300 requests use a handful of Redis connections' => sub {
    my $before = $redis->total_connections;
    my $calls = $redis->calls('hmget');
    my $c = $nginx->client;
    my $ok = 0;
    for (1 .. 300) {
        my $res = $c->get('/api/x', Authorization => "Bearer $token");
        $ok++ if $res->status == 200;
    }
    $c->close;
    is($ok, 300, 'all 300 answered 200');
    my $opened = $redis->total_connections - $before;
    cmp_ok($opened, '<=', 3, "Redis connections opened: $opened");
    is($redis->calls('hmget') - $calls, 300, 'one HMGET per request');
};

subtest 'parallel requests, then idle connections down to '
    . 'apikey_redis_keepalive' => sub {
    my @c = map {
        ApiKey::Test::HTTP->new(port => $nginx->port)->send_raw(
            build_request('GET', '/four/x', Authorization => "Bearer $token"))
    } 1 .. 20;
    my @status = map { $_->read_response->status } @c;
    is_deeply(\@status, [(200) x 20], 'all 20 answered 200');
    my $idle;
    ok(wait_until(sub { ($idle = $r4->connected_clients) <= 4 }, 1),
        'Redis soon holds at most 4 connections') or diag "held: $idle";
};

subtest 'apikey_redis_keepalive 0: a connection per lookup, none kept' => sub {
    my $before = $r0->total_connections;
    for (1 .. 10) {
        is($nginx->get('/none/x', Authorization => "Bearer $token")->status,
            200, "request $_: 200");
    }
    is($r0->total_connections - $before, 10, 'ten connections opened');
    ok(wait_until(sub { $r0->connected_clients == 0 }, 1),
        'and all closed again');
};

subtest 'no AUTH or SELECT when none is configured' => sub {
    for (1 .. 3) {
        is($nginx->get('/fake-plain/x', Authorization => "Bearer $token")
            ->status, 200, "request $_: 200");
    }
    is_deeply(lookup_commands($plain), { 1 => [(\@hmget, \@ping) x 3] },
        'one connection, three HMGETs, each with its PING, nothing else');
};

subtest 'AUTH and SELECT once, on the new connection' => sub {
    for (1 .. 3) {
        is($nginx->get('/fake-authdb/x', Authorization => "Bearer $token")
            ->status, 200, "request $_: 200");
    }
    is_deeply(lookup_commands($authdb), { 1 => [
        ['AUTH', 'pw'], ['SELECT', '2'], (\@hmget, \@ping) x 3] },
        'AUTH pw, SELECT 2, then only HMGETs and their PINGs');
};

subtest 'AUTH with an ACL user' => sub {
    is($nginx->get('/fake-acl/x', Authorization => "Bearer $token")->status,
        200, 'status 200');
    is_deeply(lookup_commands($acl), { 1 => [
        ['AUTH', 'nginx', 'npw'], \@hmget, \@ping] },
        'AUTH nginx npw, HMGET, PING');
};

subtest 'refused requests do not touch Redis' => sub {
    my $calls = $redis->calls('hmget');
    $nginx->get('/api/x');
    $nginx->get('/api/x', Authorization => 'Bearer');
    $nginx->get('/api/x', Authorization => 'Basic abc');
    $nginx->get('/api/x', Authorization => 'Bearer a,b');
    is($redis->calls('hmget'), $calls, 'no HMGET for missing or malformed');
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, $token);
};

done_testing;
