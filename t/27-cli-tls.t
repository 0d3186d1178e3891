# The apikey tool over TLS (--redis rediss://host:port[/db]): the server's
# certificate is checked against --tls-ca and against --tls-name or the
# host as written (an IP address against the certificate's IP entries),
# mutual TLS with --tls-cert and --tls-key, and a connection that fails
# verification writes nothing.  The CA and certificates are made here.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Test::TLS;

my $pki = ApiKey::Test::TLS->new;
my $dir = $pki->dir;

my $redis = $pki->redis;
my $mtls = $pki->redis(mtls => 1);

my $url = "rediss://127.0.0.1:$redis->{tls_port}";
my @ca = ('--tls-ca', "$dir/ca.crt");

sub apikey { return run_cli(@_) }

sub apikey_json { return run_cli_json(@_) }

# one line on stderr, exit 1, nothing on stdout
sub refused {
    my ($r, $re, $name) = @_;
    is($r->{code}, 1, "$name: exit 1");
    like($r->{err}, qr/^apikey: [^\n]*$re[^\n]*\n\z/, "$name: one clear line");
    is($r->{out}, '', "$name: nothing on stdout");
}


subtest 'create, list, update, revoke and verify over rediss://' => sub {
    my $k = apikey_json('--redis', $url, @ca, 'create', '--name', 'Over TLS',
        '--scope', 'read:people');
    is($redis->cmd('HGET', key_hash($k->{key}), 'id'), $k->{id},
        'create wrote the record');

    my $list = apikey_json('--redis', $url, @ca, 'list');
    is_deeply([map { $_->{id} } @$list], [$k->{id}], 'list reads it');

    is(apikey_json('--redis', $url, @ca, 'update', $k->{id}, '--scope',
        'write:people')->{scopes}[0], 'write:people', 'update');
    is(apikey_json('--redis', $url, @ca, 'verify', '--scope', 'write:people',
        $k->{key})->{result}, 'ok', 'verify: ok');
    is(apikey_json('--redis', $url, @ca, 'revoke', $k->{id})->{state},
        'revoked', 'revoke');
    ok($redis->cmd('HGET', key_hash($k->{key}), 'revoked'),
        'the record is revoked in Redis');
    isnt(apikey_json('--redis', $url, @ca, 'verify', $k->{key})->{result},
        'ok', 'verify: no longer ok');
};

subtest 'the database after the address: rediss://host:port/db' => sub {
    my $k = apikey_json('--redis', "$url/4", @ca, 'create', '--name', 'Db 4');
    my $c = $redis->connect;
    $c->cmd('SELECT', 4);
    is($c->cmd('HGET', key_hash($k->{key}), 'id'), $k->{id},
        'the record is in database 4');
    is($redis->cmd('EXISTS', key_hash($k->{key})), 0, 'not in database 0');

    my $r = apikey('--redis', "$url/4", '--db', '4', @ca, 'list');
    is($r->{code}, 2, '--db as well: a usage error');
    like($r->{err}, qr/^apikey: --db and a database in the address/,
        'saying so');
};

subtest '$APIKEY_REDIS may be a rediss:// address' => sub {
    my $r = run_cli({ env => { APIKEY_REDIS => $url } }, @ca, 'list');
    is($r->{code}, 0, 'list over TLS from the environment');
};

subtest '--tls: TLS with an address of any form' => sub {
    for my $addr ("127.0.0.1:$redis->{tls_port}",
        "redis://127.0.0.1:$redis->{tls_port}")
    {
        is(apikey('--redis', $addr, '--tls', @ca, 'list')->{code}, 0,
            "--tls --redis $addr");
    }
};

subtest 'a wrong CA: a clear error, exit 1, nothing written' => sub {
    my $before = $redis->cmd('DBSIZE');
    my $r = apikey('--redis', $url, '--tls-ca', "$dir/other.crt", 'create',
        '--name', 'Never');
    refused($r, qr/cannot connect to Redis at \Q$url\E: TLS /,
        'the other CA');
    like($r->{err}, qr/handshake: certificate verify failed/, 'it says why');
    is($redis->cmd('DBSIZE'), $before, 'nothing was written');

    $r = apikey('--redis', $url, 'list');
    refused($r, qr/certificate verify failed/,
        'no --tls-ca: the system CAs do not know the test CA');
};

subtest 'TLS files that cannot be read or used: told before connecting'
    => sub {
    my $r = apikey('--redis', $url, '--tls-ca', "$dir/none.crt", 'list');
    refused($r, qr/--tls-ca: cannot read "\Q$dir\E\/none\.crt": /,
        'a missing CA file');
    $r = apikey('--redis', $url, '--tls-ca', "$dir/client.ext", 'list');
    refused($r, qr/--tls-ca: cannot load the CA certificates: /,
        'a file without certificates');
};

subtest 'the name: --tls-name, else the host as written' => sub {
    my $r = apikey('--redis', $url, @ca, '--tls-name', 'other.test', 'list');
    refused($r, qr/\(hostname mismatch, checked against "other\.test"\)/,
        'a name the certificate does not hold');

    is(apikey('--redis', $url, @ca, '--tls-name', 'redis.test', 'list')
        ->{code}, 0, 'the DNS name the certificate holds');

    $r = apikey('--redis', "rediss://localhost:$redis->{tls_port}", @ca,
        'list');
    refused($r, qr/hostname mismatch, checked against "localhost"/,
        'a host name as written, not what it resolves to');
};

subtest 'an IP address is checked against the IP entries' => sub {
    is(apikey('--redis', $url, @ca, 'list')->{code}, 0,
        '127.0.0.1 is among the certificate\'s IP addresses');

    my $r = apikey('--redis', $url, @ca, '--tls-name', '127.0.0.2', 'list');
    refused($r, qr/\(IP address mismatch, checked against "127\.0\.0\.2"\)/,
        'an IP address it does not hold');

    $r = apikey('--redis', "rediss://redis.test:$redis->{tls_port}", @ca,
        '--tls-name', '127.0.0.1', 'list');
    isnt($r->{code}, 2, '--tls-name may be an IP address');
};

subtest 'mutual TLS: --tls-cert and --tls-key' => sub {
    my $murl = "rediss://127.0.0.1:$mtls->{tls_port}";
    my @cert = ('--tls-cert', "$dir/client.crt", '--tls-key',
        "$dir/client.key");

    my $k = apikey_json('--redis', $murl, @ca, @cert, 'create', '--name',
        'Mutual');
    is($mtls->cmd('HGET', key_hash($k->{key}), 'id'), $k->{id},
        'with the client certificate: written');

    my $r = apikey('--redis', $murl, @ca, 'create', '--name', 'Anonymous');
    refused($r, qr/certificate required|require a client certificate\?/,
        'without one');
    is($mtls->cmd('DBSIZE'), 3, 'nothing more was written');

    $r = apikey('--redis', $murl, @ca, '--tls-cert', "$dir/client.crt",
        '--tls-key', "$dir/server.key", 'list');
    refused($r, qr/--tls-key: cannot load the key: .*key values mismatch/,
        'a key of another');
};

subtest 'usage errors' => sub {
    for my $c (
        [['--redis', $redis->addr, @ca, 'list'],
            qr/the --tls-\* options need rediss:\/\/ or --tls/],
        [['--redis', $url, '--tls-cert', "$dir/client.crt", 'list'],
            qr/--tls-cert and --tls-key go together/],
        [['--redis', "rediss://127.0.0.1:$redis->{tls_port}/x", 'list'],
            qr/invalid Redis address/],
        [['--redis', "unix:/tmp/x.sock", '--tls', 'list'],
            qr/TLS needs a host/])
    {
        my $r = apikey(@{ $c->[0] });
        is($r->{code}, 2, "@{ $c->[0] }: exit 2");
        like($r->{err}, qr/^apikey: $c->[1]/, "@{ $c->[0] }: why");
    }
};

subtest 'a plain port spoken to in TLS: an error within the timeout' => sub {
    my $t0 = Time::HiRes::time();
    my $r = apikey('--redis', 'rediss://' . $redis->addr, @ca, 'list');
    is($r->{code}, 1, 'exit 1');
    like($r->{err}, qr/^apikey: cannot connect to Redis at .*TLS handshake/,
        'the handshake failed');
    ok(Time::HiRes::time() - $t0 < 8, 'within the connect timeout');
};

done_testing();
