# The apikey tool's global options mean what the module's directives mean:
# a key made with --hash-secret-file, --redis-prefix, --db, --user and
# --password-file, or over a unix socket, works through nginx configured
# the same way.

use lib 't/lib';
use ApiKey::Test;

use Digest::SHA qw(hmac_sha256_hex sha256_hex);

my $dir = test_dir();

my $redis = start_redis(
    password   => 'adminpw',
    unixsocket => 1,
    users      => ['default on >adminpw ~* &* +@all',
                   'tool on >toolpw ~* &* +@all',
                   'nginx on >nginxpw ~* +hmget +hset +ping +select']);

sub write_file {
    my ($name, $content) = @_;
    open(my $fh, '>', "$dir/$name") or die "$name: $!";
    print {$fh} $content;
    close $fh;
    chmod 0644, "$dir/$name";
    return "$dir/$name";
}

my $secret = write_file('hash.secret', "s3cret-pepper\n");
my $toolpw = write_file('tool.pw', "toolpw\n");
my $adminpw = write_file('admin.pw', "adminpw");

my $nginx = start_nginx(redis => $redis, vars => { SECRET => $secret,
    SOCK => $redis->socket }, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        add_header X-Status $apikey_status always;

        location /hmac/ {
            apikey on;
            apikey_redis %%REDIS%% user=nginx password=nginxpw;
            apikey_hash_secret_file %%SECRET%%;
            proxy_pass http://%%ECHO%%;
        }

        location /tenant/ {
            apikey on;
            apikey_redis unix:%%SOCK%% db=3 user=nginx password=nginxpw;
            apikey_redis_prefix myapp:keys:;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

sub apikey { return run_cli(@_) }

sub apikey_json { return run_cli_json(@_) }

sub status {
    my ($key, $path) = @_;
    my $res = $nginx->get($path, Authorization => "Bearer $key");
    return $res->status . ' ' . ($res->header('x-status') // '(none)');
}

my @hmac = ('--redis', $redis->addr, '--user', 'tool',
    '--password-file', $toolpw, '--hash-secret-file', $secret);
my @tenant = ('--redis', 'unix:' . $redis->socket, '--db', '3',
    '--password-file', $adminpw, '--redis-prefix', 'myapp:keys:');


subtest '--hash-secret-file: HMAC-SHA256 as apikey_hash_secret_file' => sub {
    my $k = apikey_json(@hmac, 'create', '--name', 'Peppered');
    my $hmac = hmac_sha256_hex($k->{key}, 's3cret-pepper');
    is($redis->cmd('HGET', "apikey:$hmac", 'id'), $k->{id},
        'the record is named by the HMAC (one trailing newline stripped)');
    is($redis->cmd('EXISTS', 'apikey:' . sha256_hex($k->{key})), 0,
        'not by the plain SHA-256');
    is(status($k->{key}, '/hmac/x'), '200 ok', 'nginx accepts it');
    is(apikey_json(@hmac, 'verify', $k->{key})->{result}, 'ok',
        'verify with the secret: ok');
    my @plain = grep { $_ ne '--hash-secret-file' && $_ ne $secret } @hmac;
    is(apikey_json(@plain, 'verify', $k->{key})->{result}, 'invalid',
        'verify without the secret: invalid, as nginx without it');

    my $empty = write_file('empty.secret', "\n");
    my $r = apikey(@plain, '--hash-secret-file', $empty, 'create',
        '--name', 'x');
    is($r->{code}, 1, 'an empty secret file: exit 1');
    like($r->{err}, qr/^apikey: --hash-secret-file: .* is empty\n\z/,
        'an empty secret file: one line');
};

subtest '--user and --password-file: an ACL user' => sub {
    my $r = apikey('--redis', $redis->addr, '--user', 'tool',
        '--password-file', $adminpw, 'list');
    is($r->{code}, 1, 'the wrong password for the user: exit 1');
    like($r->{err}, qr/^apikey: Redis: WRONGPASS/, 'WRONGPASS');
    is(apikey(@hmac, 'list')->{code}, 0, 'the right one: exit 0');
};

subtest '--redis unix:, --db and --redis-prefix as the module' => sub {
    my $k = apikey_json(@tenant, 'create', '--name', 'Tenant',
        '--org', 'acme', '--scope', 'read:people');
    my $c = $redis->connect;
    $c->cmd('SELECT', 3);
    is($c->cmd('HGET', 'myapp:keys:' . sha256_hex($k->{key}), 'id'),
        $k->{id}, 'the record in db 3 under the prefix');
    ok($c->cmd('SISMEMBER', 'myapp:keys:org:acme', $k->{id}),
        'the org index under the prefix');
    $c->close;
    is(status($k->{key}, '/tenant/x'), '200 ok', 'nginx accepts it');
    my $res = $nginx->get('/tenant/x', Authorization => "Bearer $k->{key}");
    is($res->upstream->header('x-apikey-id'), $k->{id}, 'X-ApiKey-Id');

    is(apikey(@tenant, 'revoke', $k->{id})->{code}, 0, 'revoke');
    is(status($k->{key}, '/tenant/x'), '401 revoked', 'nginx refuses it');

    is_deeply([map { $_->{id} } @{ apikey_json(@tenant, 'list') }],
        [$k->{id}], 'list sees only this prefix and db');
};

done_testing();
