# Where and how the module reads keys: prefix, HMAC secret, unix socket,
# AUTH with a password or an ACL user, and db=.

use lib 't/lib';
use ApiKey::Test;

my $dir = test_dir();

sub write_file {
    my ($name, $content) = @_;
    open(my $fh, '>', "$dir/$name") or die "$dir/$name: $!";
    print {$fh} $content;
    close $fh;
    return "$dir/$name";
}

my $secret_file = write_file('secret', "s3cret-value\n");
my $secret_nl_file = write_file('secret-nl', "nl-secret\n\n");

my $redis = start_redis(unixsocket => 1, password => 'admin-pw',
    users => ['nginx on >nginx-pw ~apikey:* ~other:* +hmget +hset +ping +select '
        . '+ping']);

my $nginx = start_nginx(redis => $redis,
    vars => { SOCK => $redis->socket, SECRET => $secret_file,
        SECRET_NL => $secret_nl_file, RPORT => $redis->port },
    http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        add_header X-Status $apikey_status always;
        apikey on;

        location /password/ {
            apikey_redis 127.0.0.1:%%RPORT%% password=admin-pw;
            proxy_pass http://%%ECHO%%;
        }

        location /acl/ {
            apikey_redis 127.0.0.1:%%RPORT%% user=nginx password=nginx-pw;
            proxy_pass http://%%ECHO%%;
        }

        location /localhost/ {
            apikey_redis localhost:%%RPORT%% password=admin-pw;
            proxy_pass http://%%ECHO%%;
        }

        location /unix/ {
            apikey_redis unix:%%SOCK%% password=admin-pw;
            proxy_pass http://%%ECHO%%;
        }

        location /db3/ {
            apikey_redis 127.0.0.1:%%RPORT%% db=3 password=admin-pw;
            proxy_pass http://%%ECHO%%;
        }

        location /acl-db3/ {
            apikey_redis 127.0.0.1:%%RPORT%% db=3 user=nginx
                         password=nginx-pw;
            proxy_pass http://%%ECHO%%;
        }

        location /prefix/ {
            apikey_redis 127.0.0.1:%%RPORT%% password=admin-pw;
            apikey_redis_prefix other:;
            proxy_pass http://%%ECHO%%;
        }

        location /hmac/ {
            apikey_redis 127.0.0.1:%%RPORT%% password=admin-pw;
            apikey_hash_secret_file %%SECRET%%;
            proxy_pass http://%%ECHO%%;
        }

        location /hmac-nl/ {
            apikey_redis 127.0.0.1:%%RPORT%% password=admin-pw;
            apikey_hash_secret_file %%SECRET_NL%%;
            proxy_pass http://%%ECHO%%;
        }

        location /no-password/ {
            apikey_redis 127.0.0.1:%%RPORT%%;
            proxy_pass http://%%ECHO%%;
        }

        location /wrong-password/ {
            apikey_redis 127.0.0.1:%%RPORT%% password=nope;
            proxy_pass http://%%ECHO%%;
        }

        location /wrong-user/ {
            apikey_redis 127.0.0.1:%%RPORT%% user=nobody password=nope;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my $token = new_token();
seed_key($redis, $token, id => 'k_db0');
my $token3 = new_token();
seed_key($redis, $token3, id => 'k_db3', -db => 3);
my $hmac = new_token();
seed_key($redis, $hmac, id => 'k_hmac', -secret => 's3cret-value');
my $hmac_nl = new_token();
seed_key($redis, $hmac_nl, id => 'k_hmac_nl', -secret => "nl-secret\n");
my $prefixed = new_token();
seed_key($redis, $prefixed, id => 'k_prefixed', -prefix => 'other:');

sub id_at {
    my ($path, $t) = @_;
    return $nginx->get($path, Authorization => "Bearer $t")->verdict;
}

is(id_at('/password/x', $token), '200 k_db0',
    'AUTH with a password: the key is found');

subtest 'AUTH as an ACL user' => sub {
    is(id_at('/acl/x', $token), '200 k_db0', 'the key is found');
    my @users = map { $_->{user} } $redis->client_list;
    ok((grep { $_ eq 'nginx' } @users),
        'Redis sees a connection logged in as "nginx"')
        or diag "users: @users";
};

is(id_at('/unix/x', $token), '200 k_db0', 'over a unix socket');
is(id_at('/localhost/x', $token), '200 k_db0',
    'a host name (resolved when the configuration is read)');

subtest 'db= selects the database' => sub {
    is(id_at('/db3/x', $token3), '200 k_db3', 'a key in db 3 is found');
    is(id_at('/db3/x', $token), '401 invalid', 'a key in db 0 is not');
    is(id_at('/password/x', $token3), '401 invalid',
        'and without db= the db 3 key is not found');
    is(id_at('/acl-db3/x', $token3), '200 k_db3',
        'db= together with an ACL user');
};

subtest 'apikey_redis_prefix' => sub {
    is(id_at('/prefix/x', $prefixed), '200 k_prefixed',
        'a key under the configured prefix is found');
    is(id_at('/prefix/x', $token), '401 invalid',
        'a key under the default prefix is not');
};

subtest 'apikey_hash_secret_file: records are keyed by HMAC-SHA256' => sub {
    is(id_at('/hmac/x', $hmac), '200 k_hmac', 'HMAC record found');
    is(id_at('/hmac/x', $token), '401 invalid',
        'a plain SHA-256 record is not used');
    is(id_at('/password/x', $hmac), '401 invalid',
        'and the HMAC record means nothing without the secret');
    is(id_at('/hmac-nl/x', $hmac_nl), '200 k_hmac_nl',
        'only one trailing newline is stripped from the file');
};

for my $c (['no password configured', '/no-password/x'],
    ['a wrong password', '/wrong-password/x'],
    ['an unknown ACL user', '/wrong-user/x'])
{
    my ($what, $path) = @$c;
    subtest "$what: 503, logged at error level" => sub {
        my $mark = $nginx->mark;
        my $res = $nginx->get($path, Authorization => "Bearer $token");
        answer_is($res, 'error');
        is($res->header('x-status'), 'error', '$apikey_status = error');
        my @err = grep { /\[error\]/ } $nginx->log_entries(
            $nginx->error_log_since($mark));
        ok(@err >= 1, 'an [error] line explains it') or diag(
            join "\n", grep { !/\[debug\]/ }
            $nginx->log_entries($nginx->error_log_since($mark)));
    };
}

subtest 'passwords do not appear in the error log' => sub {
    my @leaks = grep { /admin-pw|nginx-pw/ } $nginx->log_entries;
    is(scalar(@leaks), 0, 'no Redis password in the log')
        or diag(join "\n", map { s/admin-pw|nginx-pw/<PW>/gr } @leaks);
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, $token, $token3, $hmac, $hmac_nl, $prefixed);
};

done_testing;
