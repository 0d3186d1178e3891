# TLS to Redis (apikey_redis_upstream ... { tls on; }): lookups and the
# cache's subscription go through nginx's own OpenSSL layer, the server's
# certificate is checked against the CA and the name, mutual TLS works, and
# a handshake that never ends answers 503 within the timeout while an open
# location answers at once.  The CA and certificates are made here.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;
use IO::Socket::INET;
use ApiKey::Test::TLS;

my $pki = ApiKey::Test::TLS->new;
my $dir = $pki->dir;

sub tls_redis { return $pki->redis(@_) }

my $redis = tls_redis();
my $mtls = tls_redis(mtls => 1);
my $hold = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Listen => 16, ReuseAddr => 1) or die "listen: $!";

my $nginx = start_cached_nginx(redis => $redis, workers => 2,
    cache => 'zone=apikeys:1m',
    vars => { TLS => $redis->{tls_port}, MTLS => $mtls->{tls_port},
        DIR => $dir, HOLD => $hold->sockport },
    http => <<'EOF',
    apikey_redis_upstream tls {
        server                   127.0.0.1:%%TLS%%;
        tls                      on;
        tls_trusted_certificate  %%DIR%%/ca.crt;
    }
    apikey_redis_upstream byname {
        server                   127.0.0.1:%%TLS%%;
        tls                      on;
        tls_name                 redis.test;
        tls_trusted_certificate  %%DIR%%/ca.crt;
    }
    apikey_redis_upstream wrongca {
        server                   127.0.0.1:%%TLS%%;
        tls                      on;
        tls_trusted_certificate  %%DIR%%/other.crt;
    }
    apikey_redis_upstream wrongname {
        server                   127.0.0.1:%%TLS%%;
        tls                      on;
        tls_name                 other.test;
        tls_trusted_certificate  %%DIR%%/ca.crt;
    }
    apikey_redis_upstream mtls {
        server                   127.0.0.1:%%MTLS%%;
        tls                      on;
        tls_trusted_certificate  %%DIR%%/ca.crt;
        tls_certificate          %%DIR%%/client.crt;
        tls_certificate_key      %%DIR%%/client.key;
    }
    apikey_redis_upstream nocert {
        server                   127.0.0.1:%%MTLS%%;
        tls                      on;
        tls_trusted_certificate  %%DIR%%/ca.crt;
    }
    apikey_redis_upstream stalled {
        server                   127.0.0.1:%%HOLD%%;
        tls                      on;
        tls_verify               off;
    }
EOF
    server => join('', map { location($_) }
        qw(byname wrongca wrongname mtls nocert stalled)),
    # /api/ and the cache go over TLS too
    redis_args => 'tls');

sub location {
    return <<"EOF";
        location /$_/ {
            apikey on;
            apikey_redis $_;
            apikey_redis_timeout 500ms;
            alias %%WWW%%/api/;
        }
EOF
}

my $t = new_token();
seed_key($_, $t, id => 'k_tls') for $redis, $mtls;
my $c = $nginx->client;

sub status_of {
    my ($path, $token) = @_;
    my $res = $c->get($path, $token ? (Authorization => "Bearer $token")
        : ());
    return $res->status . ' ' . ($res->header('x-status') // '-');
}

subtest 'lookups and the subscription over TLS' => sub {
    is(status_of('/api/x', $t), '200 ok', 'a key is let in');
    is(status_of('/api/x', new_token()), '401 invalid', 'an unknown key: 401');
    is(status_of('/byname/x', $t), '200 ok', 'verified against tls_name');
    my @conns = grep { ($_->{laddr} // '') =~ /:$redis->{tls_port}$/ }
        $redis->client_list;
    ok(scalar(@conns) >= 3, scalar(@conns) . ' connections on the TLS port');
    cmp_ok(scalar(grep { ($_->{flags} // '') =~ /t/ } @conns), '>=', 2,
        'the workers\' tracking connections are on the TLS port');
    settle($nginx, $redis);
    my $h0 = $redis->calls('hmget');
    is(status_of('/api/x', $t), '200 ok', 'cached ...') for 1 .. 3;
    cmp_ok($redis->calls('hmget') - $h0, '<=', 2, '... from the cache');
    $redis->cmd('HSET', key_hash($t), 'revoked', 1);
    ok(wait_until(sub { status_of('/api/x', $t) eq '401 revoked' }, 1),
        'a revocation arrives over the TLS subscription');
    $redis->cmd('HSET', key_hash($t), 'revoked', 0);
};

subtest 'a certificate of another CA, or for another name: 503 and one '
    . 'clear error line' => sub {
    my $mark = $nginx->mark;
    is(status_of('/wrongca/x', $t), '503 error', 'another CA: 503');
    ok(wait_until(sub { $nginx->error_log_since($mark) =~ /\[error\].*
        apikey:\ redis\ "[^"]+"\ TLS\ certificate\ verify\ error:
        \ \(\d+:[^)]+\)/x }, 2),
        'the verification error is logged with OpenSSL\'s reason');
    $mark = $nginx->mark;
    is(status_of('/wrongname/x', $t), '503 error', 'another name: 503');
    ok(wait_until(sub { $nginx->error_log_since($mark) =~ /\[error\].*TLS
        \ certificate\ does\ not\ match\ "other.test"/x }, 2),
        'the name mismatch is logged');
};

subtest 'mutual TLS' => sub {
    # with TLS 1.3 the refusal comes as an alert after the handshake, which
    # nginx's OpenSSL layer logs at crit
    $nginx->expect_log(qr/alert certificate required/);
    is(status_of('/mtls/x', $t), '200 ok', 'with a client certificate: 200');
    is(status_of('/nocert/x', $t), '503 error',
        'without one, Redis refuses the handshake: 503');
};

subtest 'a handshake that never ends: 503 within the timeout, an open '
    . 'location at once' => sub {
    my $slow = ApiKey::Test::HTTP->new(port => $nginx->port, timeout => 5)
        ->send_raw(build_request('GET', '/stalled/x',
            Authorization => "Bearer $t"));
    my $t0 = time;
    my $open = $c->get('/nocache/none');
    cmp_ok(time - $t0, '<', slack(0.3), 'another location answers at once');
    my $res = $slow->read_response;
    is($res->status, 503, 'the stalled one: 503');
    cmp_ok($res->elapsed, '<', 0.5 + slack(0.5), sprintf('after %.2fs',
        $res->elapsed));
};

done_testing;
