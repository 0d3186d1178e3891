# Organisations: apikey_org takes a value with variables, typically a named
# capture from the location; the key's org must equal it.

use lib 't/lib';
use ApiKey::Test;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        add_header X-Status $apikey_status always;

        location ~ ^/api/w/(?<ws>[^/]+)/ {
            apikey on;
            apikey_org $ws;
            proxy_pass http://%%ECHO%%;
        }

        location /by-arg/ {
            apikey on;
            apikey_org $arg_org;
            proxy_pass http://%%ECHO%%;
        }

        location /fixed/ {
            apikey on;
            apikey_org acme;
            apikey_scopes read:people;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my $acme = new_token();
seed_key($redis, $acme, id => 'k_acme', org => 'acme',
    scopes => 'read:people');
my $globex = new_token();
seed_key($redis, $globex, id => 'k_globex', org => 'globex');
my $no_org = new_token();
seed_key($redis, $no_org, id => 'k_no_org');
my $empty_org = new_token();
seed_key($redis, $empty_org, id => 'k_empty_org', org => '');
my $prefix_org = new_token();
seed_key($redis, $prefix_org, id => 'k_acm', org => 'acm');

subtest 'a key works in its own organisation' => sub {
    my $res = $nginx->get('/api/w/acme/people',
        Authorization => "Bearer $acme");
    is($res->status, 200, 'status 200');
    is($res->header('x-status'), 'ok', '$apikey_status = ok');
    is($res->upstream->header('x-apikey-org'), 'acme',
        'the upstream sees the org');
};

for my $c (
    ['another organisation\'s key', $globex, '/api/w/acme/people'],
    ['a key of acme in globex', $acme, '/api/w/globex/people'],
    ['a key without org', $no_org, '/api/w/acme/people'],
    ['a key with an empty org', $empty_org, '/api/w/acme/people'],
    ['a key whose org is a prefix of the path\'s', $prefix_org,
        '/api/w/acme/people'],
    ['a case difference', $acme, '/api/w/ACME/people'],
    )
{
    my ($what, $token, $path) = @$c;
    subtest "$what: 403 org_mismatch" => sub {
        my $res = $nginx->get($path, Authorization => "Bearer $token");
        answer_is($res, 'org_mismatch');
        is($res->header('x-status'), 'org_mismatch',
            '$apikey_status = org_mismatch');
    };
}

subtest 'an empty apikey_org value matches no key, not even one without '
    . 'org' => sub {
    answer_is($nginx->get('/by-arg/x', Authorization => "Bearer $no_org"),
        'org_mismatch', name => 'key without org');
    answer_is($nginx->get('/by-arg/x?org=',
        Authorization => "Bearer $empty_org"),
        'org_mismatch', name => 'key with an empty org');
    is($nginx->get('/by-arg/x?org=globex',
        Authorization => "Bearer $globex")->status, 200,
        'the value from the argument matches');
};

subtest 'a fixed org with scopes' => sub {
    my $globex_reader = new_token();
    seed_key($redis, $globex_reader, id => 'k_globex_reader', org => 'globex',
        scopes => 'read:people');
    is($nginx->get('/fixed/x', Authorization => "Bearer $acme")->status, 200,
        'right org and scope: 200');
    answer_is($nginx->get('/fixed/x',
        Authorization => "Bearer $globex_reader"),
        'org_mismatch', name => 'right scope, wrong org');
};

subtest 'an unknown key in an org location is still just invalid' => sub {
    my $res = $nginx->get('/api/w/acme/people',
        Authorization => 'Bearer unknownkey');
    answer_is($res, 'invalid');
    is($res->header('x-status'), 'invalid', '$apikey_status = invalid');
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, $acme, $globex, $no_org, $empty_org, $prefix_org);
};

done_testing;
