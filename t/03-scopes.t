# Scopes: a location lists what it requires (apikey_scopes), a key lists
# what it grants; "*" grants everything, "read:*" every scope starting with
# "read:"; limit_except gives writes their own scope.

use lib 't/lib';
use ApiKey::Test;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        add_header X-Status $apikey_status always;

        location /people/ {
            apikey on;
            apikey_scopes read:people;
            limit_except GET HEAD {
                apikey_scopes write:people;
            }
            proxy_pass http://%%ECHO%%;
        }

        location /both/ {
            apikey on;
            apikey_scopes read:people write:people;
            proxy_pass http://%%ECHO%%;
        }

        location /any/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /admin/ {
            apikey on;
            apikey_scopes admin:workspace;
            proxy_pass http://%%ECHO%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT2%%;
        apikey_redis %%REDIS%%;
        apikey on;
        apikey_scopes read:people;

        location /inherited/ {
            proxy_pass http://%%ECHO%%;
        }

        location /public/ {
            apikey off;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my %key;
for my $grant ('read:people', 'write:people', 'read:people write:people',
    '*', 'read:*', '*:people', 'read:peo', 'read:peoplex', 'read',
    'admin:* read:*', '')
{
    $key{$grant} = new_token();
    seed_key($redis, $key{$grant}, id => "k[$grant]", scopes => $grant);
}
my $no_scopes = new_token();
seed_key($redis, $no_scopes, id => 'k_none');

sub req {
    my ($method, $path, $grant) = @_;
    my $token = defined $grant ? $key{$grant} : $no_scopes;
    return $nginx->request($method, $path, Authorization => "Bearer $token",
        ($method eq 'POST' || $method eq 'PUT'
            ? ('Content-Length' => 0) : ()));
}

# [method, path, key's scopes, expected: 200 or the missing-scope list]
my @cases = (
    [GET  => '/people/1', 'read:people'              => 200],
    [GET  => '/people/1', 'read:people write:people' => 200],
    [GET  => '/people/1', '*'                        => 200],
    [GET  => '/people/1', 'read:*'                   => 200],
    [GET  => '/people/1', 'admin:* read:*'           => 200],
    [HEAD => '/people/1', 'read:people'              => 200],
    [GET  => '/people/1', 'write:people'             => 'read:people'],
    [GET  => '/people/1', '*:people'                 => 'read:people'],
    [GET  => '/people/1', 'read:peo'                 => 'read:people'],
    [GET  => '/people/1', 'read:peoplex'             => 'read:people'],
    [GET  => '/people/1', 'read'                     => 'read:people'],
    [GET  => '/people/1', ''                         => 'read:people'],
    [GET  => '/people/1', undef,                       'read:people'],
    [POST => '/people/1', 'write:people'             => 200],
    [PUT  => '/people/1', 'read:people write:people' => 200],
    [POST => '/people/1', '*'                        => 200],
    [POST => '/people/1', 'read:people'              => 'write:people'],
    [POST => '/people/1', 'read:*'                   => 'write:people'],
    [GET  => '/both/1',   'read:people write:people' => 200],
    [GET  => '/both/1',   '*'                        => 200],
    [GET  => '/both/1',   'read:people'   => 'read:people write:people'],
    [GET  => '/both/1',   'read:*'        => 'read:people write:people'],
    [GET  => '/any/1',    undef,                       200],
    [GET  => '/any/1',    ''                         => 200],
    [GET  => '/admin/1',  'admin:* read:*'           => 200],
    [GET  => '/admin/1',  'read:*'                   => 'admin:workspace'],
);

for my $c (@cases) {
    my ($method, $path, $grant, $want) = @$c;
    my $who = defined $grant ? "key with scopes '$grant'" : 'key without '
        . 'scopes field';
    if ($want eq '200') {
        subtest "$method $path, $who: allowed" => sub {
            my $res = req($method, $path, $grant);
            is($res->status, 200, 'status 200');
            is($res->header('x-status'), 'ok', '$apikey_status = ok');
            is($res->header('x-echo'), '1', 'reached the upstream')
                unless $method eq 'HEAD';
        };
    } else {
        subtest "$method $path, $who: 403 needing '$want'" => sub {
            my $res = req($method, $path, $grant);
            answer_is($res, 'insufficient_scope', scope => $want)
                unless $method eq 'HEAD';
            is($res->header('x-status'), 'insufficient_scope',
                '$apikey_status = insufficient_scope');
        };
    }
}

subtest 'apikey and apikey_scopes are inherited from the server' => sub {
    my $port = $nginx->port2;
    my $res = http_get($port, '/inherited/1',
        Authorization => "Bearer $key{'read:people'}");
    is($res->status, 200, 'a key with the scope: 200');
    answer_is(http_get($port, '/inherited/1',
        Authorization => "Bearer $key{'write:people'}"),
        'insufficient_scope', scope => 'read:people',
        name => 'a key without it');
    answer_is(http_get($port, '/inherited/1'), 'missing',
        name => 'no key');
    is(http_get($port, '/public/1')->status, 200,
        'apikey off in a location opens it');
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, values %key, $no_scopes);
};

done_testing;
