# One table of (key record, location requirements) -> status, run through
# nginx (real requests, $apikey_status) and through `apikey verify --json`:
# the module and the tool share one policy and must never disagree.  The
# same rows, on the shared function alone, are in t/unit/apikey_unit_policy.c.

use lib 't/lib';
use ApiKey::Test;


my $redis = start_redis();

my $nginx = start_nginx(redis => $redis, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        add_header X-Status $apikey_status always;

        location /plain/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /read/ {
            apikey on;
            apikey_scopes read:people;
            proxy_pass http://%%ECHO%%;
        }

        location /read-write/ {
            apikey on;
            apikey_scopes read:people write:people;
            proxy_pass http://%%ECHO%%;
        }

        location ~ ^/org/(?<o1>[^/]+)/ {
            apikey on;
            apikey_org $o1;
            proxy_pass http://%%ECHO%%;
        }

        location ~ ^/org-write/(?<o2>[^/]+)/ {
            apikey on;
            apikey_org $o2;
            apikey_scopes write:people;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

# a location's requirements, as nginx reads them and as verify takes them
my %NEED = (
    none               => ['/plain/x'],
    'read'             => ['/read/x', '--scope', 'read:people'],
    'read write'       => ['/read-write/x', '--scope',
                           'read:people write:people'],
    'org acme'         => ['/org/acme/x', '--org', 'acme'],
    'org globex'       => ['/org/globex/x', '--org', 'globex'],
    'org acme, write'  => ['/org-write/acme/x', '--org', 'acme', '--scope',
                           'write:people'],
    'org globex, write' => ['/org-write/globex/x', '--org', 'globex',
                            '--scope', 'write:people'],
);

my %CODE = (ok => 200, malformed => 400, invalid => 401, expired => 401,
    revoked => 401, insufficient_scope => 403, org_mismatch => 403);

my $now = now();

# [record fields, requirements, status]
my @TABLE = (
    [{ scopes => 'read:people', org => 'acme' }, 'none', 'ok'],
    [{ scopes => 'read:people', org => 'acme' }, 'read', 'ok'],
    [{ scopes => 'read:people', org => 'acme' }, 'read write',
        'insufficient_scope'],
    [{ scopes => 'read:*', org => 'acme' }, 'read', 'ok'],
    [{ scopes => '*', org => 'acme' }, 'read write', 'ok'],
    [{ scopes => '', org => 'acme' }, 'read', 'insufficient_scope'],
    [{ scopes => 'read:people', org => 'acme' }, 'org acme', 'ok'],
    [{ scopes => 'read:people', org => 'acme' }, 'org globex',
        'org_mismatch'],
    [{ scopes => 'read:people' }, 'org acme', 'org_mismatch'],
    [{ scopes => 'write:people', org => 'acme' }, 'org acme, write', 'ok'],
    [{ scopes => 'read:people', org => 'acme' }, 'org acme, write',
        'insufficient_scope'],

    # the organisation before the scopes (defect 13)
    [{ scopes => 'read:people', org => 'acme' }, 'org globex, write',
        'org_mismatch'],

    [{ scopes => '*', org => 'acme', expires_at => $now - 60 }, 'none',
        'expired'],
    [{ scopes => '*', org => 'acme', expires_at => $now + 3600 }, 'none',
        'ok'],
    [{ scopes => '', org => 'acme', expires_at => $now - 60 },
        'org globex, write', 'expired'],
    [{ scopes => '*', org => 'acme', revoked => '1' }, 'none', 'revoked'],
    [{ scopes => '', org => 'acme', revoked => '1',
        expires_at => $now - 60 }, 'org globex, write', 'revoked'],
    [{ scopes => '*', org => 'acme', expires_at => 'soon' }, 'none',
        'invalid'],

    # any non-empty revoked other than "0" revokes (defect 10)
    (map { [{ scopes => '*', revoked => $_ }, 'none', 'revoked'] }
        'true', 'yes', '2', 'no', '00'),
    (map { [{ scopes => '*', revoked => $_ }, 'none', 'ok'] } '0', ''),
    [{ scopes => '*' }, 'none', 'ok'],
);

my $n = 0;
my @keys;

for my $row (@TABLE) {
    my ($fields, $need, $want) = @$row;
    my ($path, @args) = @{ $NEED{$need} };
    my $token = new_token();
    push @keys, $token;
    seed_key($redis, $token, id => 'k_row' . ++$n, name => "row $n",
        %$fields);
    my $what = join(', ', map { "$_=$fields->{$_}" } sort keys %$fields)
        . "; $need";

    subtest "$what: $want" => sub {
        my $res = $nginx->get($path, Authorization => "Bearer $token");
        is($res->status . ' ' . $res->header('x-status'),
            "$CODE{$want} $want", "nginx on $path: $CODE{$want} $want");
        my $v = run_cli_json({ redis => $redis }, 'verify', @args, $token);
        is($v->{result}, $want, "apikey verify @args: $want");
    };
}

subtest 'list and show call a key revoked as the module does' => sub {
    my %state;
    for my $r (['true', 'revoked'], ['yes', 'revoked'], ['0', 'active'],
        ['', 'active'])
    {
        my ($value, $want) = @$r;
        my $id = 'k_state' . ++$n;
        my $token = new_token();
        my $hash = substr(key_hash($token), length 'apikey:');
        seed_key($redis, $token, id => $id, name => 'state', org => 'st',
            revoked => $value);
        $redis->cmd('SET', "apikey:id:$id", $hash);
        $redis->cmd('SADD', 'apikey:ids', $id);
        $redis->cmd('SADD', 'apikey:org:st', $id);
        is(run_cli_json({ redis => $redis }, 'show', $id)->{state}, $want,
            "show: revoked \"$value\" is $want");
        $state{$id} = $want;
    }
    my $list = run_cli_json({ redis => $redis }, 'list', '--org', 'st');
    is_deeply({ map { $_->{id} => $_->{state} } @$list }, \%state,
        'list: the same states');
};

subtest 'no record: invalid for both' => sub {
    my $token = new_token();
    my $res = $nginx->get('/plain/x', Authorization => "Bearer $token");
    is($res->header('x-status'), 'invalid', 'nginx: invalid');
    is(run_cli_json({ redis => $redis }, 'verify', $token)->{result},
        'invalid', 'verify: invalid');
};

subtest 'token syntax and length: the same for both' => sub {
    for my $c (['ak_abc=', 'invalid'], ['ak_a=b', 'malformed'],
        ['=ak', 'malformed'], ['a' x 513, 'invalid'], ['a' x 512, 'invalid'],
        [('a' x 600) . '!', 'malformed'])
    {
        my ($token, $want) = @$c;
        my $res = $nginx->get('/plain/x', Authorization => "Bearer $token");
        is($res->header('x-status'), $want,
            'nginx: ' . length($token) . " bytes: $want");
        is(run_cli_json({ redis => $redis }, 'verify', $token)->{result},
            $want, 'verify: ' . length($token) . " bytes: $want");
        is(run_cli_json({ redis => $redis, stdin => "$token\n" }, 'verify',
            '-')->{result}, $want, 'verify -: ' . length($token)
            . " bytes: $want");
    }
};

error_log_clean($nginx, @keys);

done_testing();
