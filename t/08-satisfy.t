# The module is an access-phase module like nginx's own: under
# `satisfy any`, allow or auth_basic can grant what the key does not, and
# under `satisfy all` (the default) every module must agree.

use lib 't/lib';
use ApiKey::Test;
use MIME::Base64 qw(encode_base64);

my $dir = test_dir();
open(my $fh, '>', "$dir/htpasswd") or die $!;
print {$fh} "alice:{PLAIN}wonderland\n";
close $fh;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, vars => { HTPASSWD => "$dir/htpasswd" },
    http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;

        location /any-allow/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /any-deny/ {
            satisfy any;
            deny all;
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /any-basic/ {
            satisfy any;
            auth_basic "staff";
            auth_basic_user_file %%HTPASSWD%%;
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /all-deny/ {
            deny all;
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /all-allow/ {
            allow 127.0.0.1;
            deny all;
            apikey on;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my $token = new_token();
seed_key($redis, $token, id => 'k_1');
my $basic = 'Basic ' . encode_base64('alice:wonderland', '');
my $bad_basic = 'Basic ' . encode_base64('alice:wrong', '');

subtest 'satisfy any: an allowed address needs no key' => sub {
    my $res = $nginx->get('/any-allow/x');
    is($res->status, 200, 'no key: 200');
    is($res->header('x-echo'), '1', 'reached the upstream');
    is($nginx->get('/any-allow/x', Authorization => 'Bearer unknown')
        ->status, 200, 'an unknown key: 200 as well');
};

subtest 'satisfy any: a valid key grants what deny refuses' => sub {
    my $res = $nginx->get('/any-deny/x', Authorization => "Bearer $token");
    is($res->status, 200, 'status 200');
    is($res->upstream && $res->upstream->header('x-apikey-id'), 'k_1',
        'with the identity headers');
};

subtest 'satisfy any: when nothing grants, nginx answers 401 with the '
    . 'challenge' => sub {
    for my $c (['no key', []],
        ['an unknown key', [Authorization => 'Bearer unknown']])
    {
        my ($what, $h) = @$c;
        my $res = $nginx->get('/any-deny/x', @$h);
        is($res->status, 401, "$what: 401");
        like($res->header('www-authenticate') // '', qr/^Bearer realm="api"/,
            "$what: Bearer challenge");
        like($res->body, qr/401 Authorization Required/,
            "$what: nginx's standard page");
        ok(!$res->header('x-echo'), "$what: not passed upstream");
    }
};

subtest 'satisfy any with auth_basic: either credential works' => sub {
    is($nginx->get('/any-basic/x', Authorization => $basic)->status, 200,
        'Basic credentials: 200');
    is($nginx->get('/any-basic/x', Authorization => "Bearer $token")->status,
        200, 'a valid key: 200');
    is($nginx->get('/any-basic/x', Authorization => $bad_basic)->status, 401,
        'a wrong password: 401');
    is($nginx->get('/any-basic/x', Authorization => 'Bearer unknown')
        ->status, 401, 'an unknown key: 401');
};

subtest 'satisfy all: a valid key does not beat deny' => sub {
    my $res = $nginx->get('/all-deny/x', Authorization => "Bearer $token");
    is($res->status, 403, 'status 403');
    ok(!$res->header('x-echo'), 'not passed upstream');
};

subtest 'satisfy all: an allowed address still needs a key' => sub {
    answer_is($nginx->get('/all-allow/x'), 'missing');
    is($nginx->get('/all-allow/x', Authorization => "Bearer $token")->status,
        200, 'with a key: 200');
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, $token);
};

done_testing;
