# The admin API's directives at `nginx -t`: what is accepted, and each
# mistake refused with a clear [emerg] line.

use lib 't/lib';
use ApiKey::Test;


sub conf {
    my ($location, $server) = @_;
    $server //= 'apikey_redis 127.0.0.1:6379;';
    return <<"EOF";
    server {
        listen 127.0.0.1:%%PORT%%;
        $server
        location /admin/keys/ {
            $location
        }
    }
EOF
}

sub accepted {
    my ($what, @conf) = @_;
    my ($rc, $out) = nginx_check(http => conf(@conf));
    is($rc, 0, "accepted: $what") or diag $out;
}

sub rejected {
    my ($what, $re, @conf) = @_;
    subtest "rejected: $what" => sub {
        my ($rc, $out) = nginx_check(http => conf(@conf));
        isnt($rc, 0, 'nginx -t fails');
        like($out, qr/\[emerg\]/, 'with an [emerg] line');
        like($out, $re, "saying $re") or diag $out;
    };
}


accepted('apikey_admin on', 'apikey_admin on;');
accepted('every directive', 'apikey_admin on; apikey_admin_org $http_x_org;
    apikey_admin_scopes read:people $http_x_scopes; apikey_admin_prefix ck_;
    apikey_admin_keys_with admin:keys; apikey_admin_actor $remote_user;');
accepted('apikey_redis in the location', 'apikey_redis 127.0.0.1:6379;
    apikey_admin on;', '');
accepted('apikey_admin off needs no Redis', 'apikey_admin off;', '');

rejected('apikey_admin without apikey_redis',
    qr/"apikey_admin" requires "apikey_redis"/, 'apikey_admin on;', '');
rejected('an invalid prefix', qr/invalid key prefix "ck-"/,
    'apikey_admin on; apikey_admin_prefix ck-;');
rejected('an invalid scope in the cap', qr/invalid scope "read\x7fx"/,
    "apikey_admin on; apikey_admin_scopes read:people \"read\x7fx\";");
rejected('an invalid scope for keys', qr/invalid scope "a b"/,
    'apikey_admin on; apikey_admin_keys_with "a b";');
rejected('apikey_admin_scopes twice', qr/is duplicate/,
    'apikey_admin on; apikey_admin_scopes a; apikey_admin_scopes b;');
rejected('apikey_admin in server{}',
    qr/"apikey_admin" directive is not allowed here/, '',
    'apikey_redis 127.0.0.1:6379; apikey_admin on;');
rejected('apikey_admin with a bad value', qr/invalid value "yes"/,
    'apikey_admin yes;');

subtest 'rejected: apikey_admin on a Redis Cluster block' => sub {
    my ($rc, $out) = nginx_check(http => "    apikey_redis_upstream shards {
        cluster 127.0.0.1:7000;
    }\n" . conf('apikey_admin on;', 'apikey_redis shards;'));
    isnt($rc, 0, 'nginx -t fails');
    like($out, qr/\[emerg\].*"apikey_admin" cannot write to the Redis (?#
        )Cluster of "shards" yet/, 'saying that it cannot write there yet')
        or diag $out;
};

done_testing();
