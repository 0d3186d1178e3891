# IP allowlists: a record's "cidrs" field lists the networks its key may
# be used from; $remote_addr (after the realip module) must be inside one.
# Outside: 403 ip_not_allowed; a list that cannot be read: the key is
# invalid (401), never "any address".

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, log_level => 'info', http => <<'EOF');
    apikey_cache_zone zone=keys:1m ttl=60s;

    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        add_header X-Status $apikey_status always;

        location /direct/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /real/ {
            set_real_ip_from 127.0.0.1;
            real_ip_header X-Forwarded-For;
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /cached/ {
            set_real_ip_from 127.0.0.1;
            real_ip_header X-Forwarded-For;
            apikey on;
            apikey_cache keys;
            add_header X-Cache $apikey_cache_status always;
            add_header X-Status $apikey_status always;
            proxy_pass http://%%ECHO%%;
        }

        location ~ ^/org/(?<o>[^/]+)/ {
            set_real_ip_from 127.0.0.1;
            real_ip_header X-Forwarded-For;
            apikey on;
            apikey_org $o;
            apikey_scopes admin;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

sub key_with {
    my ($id, %f) = @_;
    my $t = new_token();
    seed_key($redis, $t, id => $id, org => 'acme', scopes => 'read', %f);
    return $t;
}

sub from {
    my ($path, $token, $addr) = @_;
    return $nginx->get($path, Authorization => "Bearer $token",
        defined $addr ? ('X-Forwarded-For' => $addr) : ());
}

my $v4 = key_with('k_v4', cidrs => '203.0.113.0/24');
my $both = key_with('k_both', cidrs => '203.0.113.0/24 2001:db8::/32');
my $bare4 = key_with('k_bare4', cidrs => '203.0.113.7');
my $bare6 = key_with('k_bare6', cidrs => '2001:db8::1');
my $local = key_with('k_local', cidrs => '10.0.0.0/8 127.0.0.0/8');
my $far = key_with('k_far', cidrs => '10.0.0.0/8');
my $open = key_with('k_open');

subtest 'a key without cidrs is used from anywhere' => sub {
    is(from('/real/x', $open, '198.51.100.1')->verdict, '200 k_open',
        'IPv4');
    is(from('/real/x', $open, '2001:db8::1')->verdict, '200 k_open',
        'IPv6');
    is(from('/direct/x', $open)->verdict, '200 k_open', 'direct');
};

subtest 'the connection\'s address, without realip' => sub {
    is(from('/direct/x', $local)->verdict, '200 k_local',
        '127.0.0.1 is inside 127.0.0.0/8');
    my $res = from('/direct/x', $far);
    answer_is($res, 'ip_not_allowed', name => '127.0.0.1 outside 10/8');
    is($res->header('x-status'), 'ip_not_allowed',
        '$apikey_status = ip_not_allowed');
    is(from('/direct/x', $far, '10.1.2.3')->status, 403,
        'X-Forwarded-For means nothing without realip');
};

subtest 'IPv4 inside and outside, behind realip' => sub {
    is(from('/real/x', $v4, '203.0.113.9')->verdict, '200 k_v4', 'inside');
    is(from('/real/x', $v4, '203.0.113.255')->verdict, '200 k_v4',
        'the last address');
    answer_is(from('/real/x', $v4, '203.0.114.0'), 'ip_not_allowed',
        name => 'the next network');
    answer_is(from('/real/x', $v4, '2001:db8::1'), 'ip_not_allowed',
        name => 'an IPv6 client against an IPv4 list');
    is(from('/real/x', $v4, '10.0.0.1, 203.0.113.9')->verdict, '200 k_v4',
        'the last X-Forwarded-For address counts');
    is(from('/real/x', $v4, '203.0.113.9, 10.0.0.1')->status, 403,
        'an address the client wrote first does not');
};

subtest 'IPv6 inside and outside' => sub {
    is(from('/real/x', $both, '2001:db8:ffff::1')->verdict, '200 k_both',
        'inside 2001:db8::/32');
    answer_is(from('/real/x', $both, '2001:db9::1'), 'ip_not_allowed',
        name => 'outside');
    is(from('/real/x', $both, '203.0.113.1')->verdict, '200 k_both',
        'the IPv4 network of the same list');
};

subtest 'a bare address is a /32 or a /128' => sub {
    is(from('/real/x', $bare4, '203.0.113.7')->verdict, '200 k_bare4',
        'the address');
    is(from('/real/x', $bare4, '203.0.113.8')->status, 403,
        'its neighbour');
    is(from('/real/x', $bare6, '2001:db8::1')->verdict, '200 k_bare6',
        'the IPv6 address');
    is(from('/real/x', $bare6, '2001:db8::2')->status, 403,
        'its IPv6 neighbour');
};

subtest 'an IPv4-mapped IPv6 client counts as its IPv4 address' => sub {
    is(from('/real/x', $v4, '::ffff:203.0.113.9')->verdict, '200 k_v4',
        'inside');
    is(from('/real/x', $v4, '::ffff:203.0.114.9')->status, 403, 'outside');
    is(from('/real/x', $bare4, '::ffff:203.0.113.7')->verdict,
        '200 k_bare4', 'a bare address');
};

subtest 'a malformed list makes the key invalid, wherever the client' => sub {
    my $mark = $nginx->mark;
    for my $c (
        ['a word', '203.0.113.0/24 nonsense'],
        ['a prefix too long', '203.0.113.0/33'],
        ['commas', '203.0.113.0/24,10.0.0.0/8'],
        ['spaces only', '   '],
        ['a host name', 'localhost'])
    {
        my ($what, $cidrs) = @$c;
        my $t = key_with('k_bad', cidrs => $cidrs);
        my $res = from('/real/x', $t, '203.0.113.9');
        answer_is($res, 'invalid', name => $what);
        is($res->header('x-status'), 'invalid', "$what: \$apikey_status");
    }
    like($nginx->error_log_since($mark),
        qr/\[warn\].*apikey: key "k_bad" has an invalid cidrs field/,
        'the reason in the error log at warn');
};

subtest 'the order: revoked, expired, address, organisation, scopes' => sub {
    my $revoked = key_with('k_r', cidrs => '10.0.0.0/8', revoked => 1);
    my $expired = key_with('k_e', cidrs => '10.0.0.0/8',
        expires_at => now() - 10);
    is(from('/real/x', $revoked, '203.0.113.9')->header('x-status'),
        'revoked', 'revoked before the address');
    is(from('/real/x', $expired, '203.0.113.9')->header('x-status'),
        'expired', 'expired before the address');
    is(from('/org/globex/x', $v4, '198.51.100.1')->header('x-status'),
        'ip_not_allowed', 'the address before the organisation');
    is(from('/org/acme/x', $v4, '198.51.100.1')->header('x-status'),
        'ip_not_allowed', 'the address before the scopes');
    is(from('/org/globex/x', $v4, '203.0.113.9')->header('x-status'),
        'org_mismatch', 'inside: the organisation');
    is(from('/org/acme/x', $v4, '203.0.113.9')->header('x-status'),
        'insufficient_scope', 'inside, right organisation: the scopes');
};

subtest 'a refusal is logged at info' => sub {
    my $mark = $nginx->mark;
    from('/real/x', $v4, '198.51.100.1');
    like($nginx->error_log_since($mark),
        qr/\[info\].*apikey: key "k_v4" refused: ip_not_allowed/,
        'key id and reason');
};

subtest 'a cached record keeps its list' => sub {
    ApiKey::CacheTest::wait_live($nginx);
    my $t = key_with('k_cached', cidrs => '203.0.113.0/24');
    my @r = map { from('/cached/x', $t, $_) }
        qw(203.0.113.1 198.51.100.1 203.0.113.2 198.51.100.2);
    is(join(' ', map { $_->status } @r), '200 403 200 403',
        'inside and outside, fresh and cached');
    is(join(' ', map { $_->header('x-cache') // '-' } @r),
        'MISS HIT HIT HIT', 'from the cache after the first');
    my $bad = key_with('k_cached_bad', cidrs => 'nonsense');
    is(join(' ', map { from('/cached/x', $bad, '203.0.113.1')->status } 1, 2),
        '401 401', 'a malformed list, fresh and cached');
};

done_testing;
