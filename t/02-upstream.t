# What the upstream receives for an accepted key: identity headers it can
# trust, never a client's forged ones, and no credentials unless asked for;
# and the $apikey_* variables.

use lib 't/lib';
use ApiKey::Test;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, http => <<'EOF');
    log_format keys '$apikey_status $apikey_id "$apikey_name" '
                    '"$apikey_org" "$apikey_scopes" "$apikey_expires_at"';

    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;

        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /quiet/ {
            apikey on;
            apikey_upstream_headers off;
            proxy_pass http://%%ECHO%%;
        }

        location /pass-credentials/ {
            apikey on;
            apikey_hide_credentials off;
            proxy_pass http://%%ECHO%%;
        }

        location /vars/ {
            apikey on;
            access_log %%DIR%%/keys.log keys;
            add_header X-Id $apikey_id always;
            add_header X-Name $apikey_name always;
            add_header X-Org $apikey_org always;
            add_header X-Scopes $apikey_scopes always;
            add_header X-Expires $apikey_expires_at always;
            add_header X-Status $apikey_status always;
            proxy_pass http://%%ECHO%%;
        }

        location /open/ {
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my $expires = now + 86400;
my $full = new_token();
seed_key($redis, $full, id => 'k_full', name => 'Nightly Score Export',
    org => 'acme', scopes => 'read:people write:people',
    expires_at => $expires);
my $bare = new_token();
seed_key($redis, $bare, id => 'k_bare');

my @forged = ('X-ApiKey-Id' => 'evil', 'x-apikey-name' => 'evil',
    'X-APIKEY-ORG' => 'evil', 'X-Apikey-Scopes' => '*');

sub apikey_headers {
    my ($res) = @_;
    my $up = $res->upstream or return ['(no upstream)'];
    return [map { lc($_->[0]) . ": $_->[1]" } $up->with_prefix('x-apikey-')];
}


subtest 'the upstream gets the key identity, once each' => sub {
    my $res = $nginx->get('/api/x', Authorization => "Bearer $full");
    is($res->status, 200, 'status 200');
    is_deeply([sort @{ apikey_headers($res) }], [sort
        'x-apikey-id: k_full',
        'x-apikey-name: Nightly Score Export',
        'x-apikey-org: acme',
        'x-apikey-scopes: read:people write:people'],
        'X-ApiKey-Id, -Name, -Org and -Scopes');
};

subtest 'an empty identity field is not sent at all' => sub {
    my $res = $nginx->get('/api/x', Authorization => "Bearer $bare");
    is($res->status, 200, 'status 200');
    is_deeply(apikey_headers($res), ['x-apikey-id: k_bare'],
        'only X-ApiKey-Id');
};

subtest 'identity headers sent by the client never reach the upstream'
    => sub {
    my $res = $nginx->get('/api/x', @forged, Authorization => "Bearer $full");
    is($res->status, 200, 'status 200');
    is_deeply([sort @{ apikey_headers($res) }], [sort
        'x-apikey-id: k_full',
        'x-apikey-name: Nightly Score Export',
        'x-apikey-org: acme',
        'x-apikey-scopes: read:people write:people'],
        'the real values only, whatever case the client used');

    $res = $nginx->get('/api/x', @forged, Authorization => "Bearer $bare");
    is_deeply(apikey_headers($res), ['x-apikey-id: k_bare'],
        'a forged header is not left where the key has no value');
};

subtest 'any client header starting with X-ApiKey- is removed' => sub {
    my $res = $nginx->get('/api/x', 'X-ApiKey-Expires-At' => '9999999999',
        'x-apikey-whatever' => 'evil', Authorization => "Bearer $bare");
    is_deeply(apikey_headers($res), ['x-apikey-id: k_bare'],
        'no X-ApiKey-* from the client');
};

subtest 'with apikey_upstream_headers off, no identity headers, forged or '
    . 'real' => sub {
    my $res = $nginx->get('/quiet/x', @forged,
        Authorization => "Bearer $full");
    is($res->status, 200, 'status 200');
    is_deeply(apikey_headers($res), [], 'no X-ApiKey-* at all');
};

subtest 'the Authorization header is not passed upstream' => sub {
    my $res = $nginx->get('/api/x', Authorization => "Bearer $full");
    ok($res->upstream && !$res->upstream->has('authorization'),
        'no Authorization upstream');
    $res = $nginx->get('/quiet/x', Authorization => "Bearer $full");
    ok($res->upstream && !$res->upstream->has('authorization'),
        'nor with upstream headers off');
};

subtest 'with apikey_hide_credentials off, the upstream gets Authorization'
    => sub {
    my $res = $nginx->get('/pass-credentials/x',
        Authorization => "Bearer $full");
    is($res->status, 200, 'status 200');
    is_deeply([$res->upstream->headers('authorization')], ["Bearer $full"],
        'Authorization as the client sent it');
    is($res->upstream->header('x-apikey-id'), 'k_full',
        'and the identity headers');
};

subtest 'an unprotected location does not touch X-ApiKey-* headers' => sub {
    my $res = $nginx->get('/open/x', 'X-ApiKey-Id' => 'whatever');
    is($res->upstream->header('x-apikey-id'), 'whatever',
        'passed as sent (the module is off here)');
};

subtest 'the $apikey_* variables hold the record' => sub {
    my $res = $nginx->get('/vars/x', Authorization => "Bearer $full");
    is($res->status, 200, 'status 200');
    is($res->header('x-id'), 'k_full', '$apikey_id');
    is($res->header('x-name'), 'Nightly Score Export', '$apikey_name');
    is($res->header('x-org'), 'acme', '$apikey_org');
    is($res->header('x-scopes'), 'read:people write:people',
        '$apikey_scopes');
    is($res->header('x-expires'), $expires, '$apikey_expires_at');
    is($res->header('x-status'), 'ok', '$apikey_status');
};

subtest 'an unknown key sets no identity variables' => sub {
    my $res = $nginx->get('/vars/x', Authorization => 'Bearer unknownkey');
    is($res->status, 401, 'status 401');
    is($res->header('x-status'), 'invalid', '$apikey_status = invalid');
    is($res->header('x-id'), undef, 'no $apikey_id');
    is($res->header('x-name'), undef, 'no $apikey_name');
    is($res->header('x-org'), undef, 'no $apikey_org');
    is($res->header('x-scopes'), undef, 'no $apikey_scopes');
};

subtest 'the variables work in log_format' => sub {
    my $read = sub {
        open(my $fh, '<', $nginx->dir . '/keys.log') or return '';
        local $/;
        return <$fh> // '';
    };
    # earlier subtests logged too (two requests): nginx writes a line once
    # the answer is sent, and a slow run (valgrind) may not have written
    # theirs yet; then wait for these two lines
    wait_until(sub { ($read->() =~ tr/\n//) >= 2 }, slack(2));
    my $before = ($read->() =~ tr/\n//);
    $nginx->get('/vars/x', Authorization => "Bearer $full");
    $nginx->get('/vars/x');
    my $log = '';
    wait_until(sub {
        $log = $read->();
        return ($log =~ tr/\n//) >= $before + 2;
    }, slack(2));
    my @lines = split /\n/, $log;
    is($lines[-2], qq{ok k_full "Nightly Score Export" "acme" }
        . qq{"read:people write:people" "$expires"}, 'an accepted key');
    like($lines[-1], qr/^missing - /, 'no key: status missing, no id');
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, $full, $bare);
};

done_testing;
