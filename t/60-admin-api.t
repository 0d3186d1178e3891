# The admin API (apikey_admin): every route of docs/directives.md with its
# exact status, headers and body; confinement to an organisation; the
# scope cap; API keys as actors; each bad input; Redis refusing writes or
# gone (503, nothing written); keys made over HTTP are keys of the CLI and
# the other way round; the audit line; no key in any log line.

use lib 't/lib';
use ApiKey::Test;

use JSON::PP ();

my $JSON = JSON::PP->new->canonical;

my $redis = start_redis();
my $dead = free_port();

my $nginx = start_nginx(redis => $redis, http => <<"EOF");
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;

        location /admin/keys/ {
            apikey_admin on;
            apikey_admin_prefix ck_;
        }

        location /acme/keys/ {
            apikey_admin on;
            apikey_admin_org acme;
            apikey_admin_actor \$http_x_actor;
        }

        location /beta/keys/ {
            apikey_admin on;
            apikey_admin_org beta;
        }

        location /session/keys/ {
            apikey_admin on;
            apikey_admin_org \$http_x_org;
        }

        location /capped/keys/ {
            apikey_admin on;
            apikey_admin_scopes read:people write:people \$http_x_scope;
        }

        location /bykey/keys/ {
            apikey on;
            apikey_admin on;
        }

        location /keyadmin/keys/ {
            apikey on;
            apikey_admin on;
            apikey_admin_keys_with admin:keys;
        }

        location /down/keys/ {
            apikey_redis 127.0.0.1:$dead;
            apikey_admin on;
        }

        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my @keys;    # every key made here, for the log check

# admin($method, $path, $body, @headers): one request, Content-Type
# application/json with a body unless the headers give another
sub admin {
    my ($method, $path, $body, @h) = @_;
    my %seen = map { lc($h[$_]) => 1 } grep { !($_ % 2) } 0 .. $#h;
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\n";
    for (my $i = 0; $i < @h; $i += 2) {
        $req .= "$h[$i]: $h[$i + 1]\r\n";
    }
    if (defined $body) {
        $req .= "Content-Type: application/json\r\n"
            unless $seen{'content-type'};
        $req .= 'Content-Length: ' . length($body) . "\r\n";
    }
    $req .= "\r\n" . ($body // '');
    my $res = http_raw($nginx->port, $req, head => $method eq 'HEAD');
    if ($res->status && $res->status == 201) {
        push @keys, $JSON->decode($res->body)->{key};
    }
    return $res;
}

sub json { return $JSON->decode($_[0]->body) }

sub create {
    my ($path, %f) = @_;
    my $res = admin('POST', $path // '/admin/keys/', $JSON->encode(\%f));
    die 'create: ' . $res->status . ' ' . $res->body
        unless $res->status == 201;
    return json($res);
}

sub apikey { return run_cli({ redis => $redis }, @_) }

sub apikey_json { return run_cli_json({ redis => $redis }, @_) }

# answered($res, $status, $body or a code ref for the decoded body, $name)
sub answered {
    my ($res, $status, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->status, $status, "$name: $status");
    is($res->header('content-type'), 'application/json',
        "$name: Content-Type: application/json");
    is($res->header('cache-control'), 'no-store',
        "$name: Cache-Control: no-store");
    if (ref $want eq 'CODE') {
        $want->(json($res));
    } elsif (defined $want) {
        is($res->body, $want, "$name: body");
    }
}

sub error_is {
    my ($res, $status, $code, $description, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    answered($res, $status, $JSON->encode({ error => $code,
        error_description => $description }), $name);
}

# Every Redis key with its type, value and absolute expiry.
sub keyspace {
    my %s;
    for my $k (@{ $redis->cmd('KEYS', '*') }) {
        my $type = $redis->cmd('TYPE', $k);
        my $v = $type eq 'set' ? [sort @{ $redis->cmd('SMEMBERS', $k) }]
            : $type eq 'hash' ? { @{ $redis->cmd('HGETALL', $k) } }
            : $redis->cmd('GET', $k);
        $s{$k} = [$type, $v, $redis->cmd('EXPIRETIME', $k)];
    }
    return \%s;
}

my @FIELDS = qw(id name org hint scopes cidrs fields created_at expires_at
    last_used_at state replaced_by rate burst);

sub rfc3339 {
    my @t = gmtime($_[0]);
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02dZ', $t[5] + 1900, $t[4] + 1,
        @t[3, 2, 1, 0];
}


subtest 'POST / makes a key: 201, the key object with the key, once' => sub {
    my $t0 = now();
    my $res = admin('POST', '/admin/keys/', $JSON->encode({
        name => 'Nightly Score Export', scopes => ['read:people'],
        org => 'acme', expires_in_days => 30 }));
    answered($res, 201, sub {
        my $k = shift;
        is_deeply([sort keys %$k], [sort @FIELDS, 'key'],
            'the CLI\'s fields and the key');
        like($k->{key}, qr/^ck_[0-9A-Za-z]{36}$/,
            'the key has the location\'s prefix');
        like($k->{id}, qr/^k_[0-9A-Za-z]{12}$/, 'an id as the CLI makes');
        is($k->{hint}, substr($k->{key}, -4), 'the hint: its last 4');
        is($k->{name}, 'Nightly Score Export', 'name');
        is($k->{org}, 'acme', 'org');
        is_deeply($k->{scopes}, ['read:people'], 'scopes');
        my $created = $redis->cmd('HGET', key_hash($k->{key}),
            'created_at');
        is($k->{expires_at}, rfc3339($created + 30 * 86400),
            'expires_at: created + 30 x 86400 s exactly');
        ok($created >= int($t0) && $created <= now() + 1, 'created now');
        is($k->{created_at}, rfc3339($created), 'created_at');
        is($k->{state}, 'active', 'active');
        ok(!defined $k->{last_used_at} && !defined $k->{replaced_by},
            'never used, not replaced');
    }, 'create');
    my $k = json($res);
    is_deeply([sort keys %{ json(admin('GET', "/admin/keys/$k->{id}")) }],
        [sort @FIELDS], 'GET /<id>: the same object without the key');
    unlike(admin('GET', '/admin/keys/')->body, qr/\Q$k->{key}\E/,
        'the list does not show it');
};

subtest 'a key made over HTTP works, and is a key of the CLI' => sub {
    my $k = create(undef, name => 'Works', scopes => ['read:people'],
        org => 'acme');
    my $res = $nginx->get('/api/x', Authorization => "Bearer $k->{key}");
    is($res->status, 200, 'apikey on lets it in');
    is($res->upstream->header('x-apikey-id'), $k->{id}, 'as its id');
    my $r = apikey('list', '--json');
    my ($row) = grep { $_->{id} eq $k->{id} }
        @{ JSON::PP->new->decode($r->{out}) };
    ok($row, 'apikey list lists it');
    is($row->{name}, 'Works', '... with its name');
    my $cli = apikey_json('show', $k->{id});
    delete $cli->{last_used_at};
    my $http = json(admin('GET', "/admin/keys/$k->{id}"));
    delete $http->{last_used_at};
    is_deeply($http, $cli, 'apikey show --json: the same object');
    is(apikey('verify', $k->{key})->{code}, 0, 'apikey verify: valid');
    is($redis->cmd('GET', "apikey:id:$k->{id}"),
        substr(key_hash($k->{key}), length 'apikey:'), 'the id index');
    ok($redis->cmd('SISMEMBER', 'apikey:ids', $k->{id}), 'in Pids');
    ok($redis->cmd('SISMEMBER', 'apikey:org:acme', $k->{id}),
        'in Porg:acme');
    is($redis->cmd('HGET', key_hash($k->{key}), 'prefix'), 'ck_',
        'the prefix field');
};

subtest 'a key made by the CLI is managed over HTTP' => sub {
    my $k = apikey_json('create', '--name', 'From the CLI', '--scope',
        'read:people', '--org', 'acme');
    push @keys, $k->{key};
    my $got = json(admin('GET', "/admin/keys/$k->{id}"));
    is($got->{name}, 'From the CLI', 'GET shows it');
    answered(admin('PATCH', "/admin/keys/$k->{id}",
        '{"name":"Renamed","scopes":["read:people","write:people"]}'), 200,
        sub {
            is($_[0]{name}, 'Renamed', 'the new name');
            is_deeply($_[0]{scopes}, ['read:people', 'write:people'],
                'the new scopes');
        }, 'PATCH');
    is(apikey_json('show', $k->{id})->{name}, 'Renamed', 'the CLI sees it');
    answered(admin('DELETE', "/admin/keys/$k->{id}"), 200, '{"ok":true}',
        'DELETE');
    is(apikey_json('show', $k->{id})->{state}, 'revoked',
        'the CLI sees it revoked');
    is($nginx->get('/api/x', Authorization => "Bearer $k->{key}")->status,
        401, 'and nginx refuses it');
};

subtest 'GET / lists, ?state= and ?org= filter' => sub {
    my $a = create(undef, name => 'List A', org => 'listorg');
    my $b = create(undef, name => 'List B', org => 'listorg');
    admin('DELETE', "/admin/keys/$b->{id}");
    my $res = admin('GET', '/admin/keys/?org=listorg');
    answered($res, 200, sub {
        is_deeply([sort map { $_->{id} } @{ $_[0] }],
            [sort $a->{id}, $b->{id}], 'both of the org');
    }, 'list ?org=');
    is_deeply([map { $_->{id} }
        @{ json(admin('GET', '/admin/keys/?org=listorg&state=revoked')) }],
        [$b->{id}], '?state=revoked');
    is_deeply([map { $_->{id} }
        @{ json(admin('GET', '/admin/keys/?org=listorg&state=active')) }],
        [$a->{id}], '?state=active');
    is_deeply(json(admin('GET', '/admin/keys/?org=listorg&state=expired')),
        [], '?state=expired: none');
    error_is(admin('GET', '/admin/keys/?state=gone'), 400, 'invalid_request',
        '"state" must be active, expired or revoked', 'an unknown state');
    my @many = map { create(undef, name => "Many $_", org => 'many') }
        1 .. 40;
    is(scalar @{ json(admin('GET', '/admin/keys/?org=many')) }, 40,
        'more keys than one page: all of them');
};

subtest 'PATCH changes name, scopes and expiry; org cannot change' => sub {
    my $k = create(undef, name => 'Patch me', org => 'acme',
        expires_in_days => 3);
    my $res = admin('PATCH', "/admin/keys/$k->{id}",
        '{"expires_in_days":0}');
    answered($res, 200, sub {
        ok(!defined $_[0]{expires_at}, 'expires_in_days 0: never');
    }, 'PATCH expiry');
    is($redis->cmd('TTL', key_hash($k->{key})), -1,
        'no housekeeping TTL for a key that never expires');
    my $at = rfc3339(now() + 86400 * 10);
    answered(admin('PATCH', "/admin/keys/$k->{id}",
        $JSON->encode({ expires_at => $at })), 200,
        sub { is($_[0]{expires_at}, $at, 'expires_at as given') },
        'PATCH expires_at');
    error_is(admin('PATCH', "/admin/keys/$k->{id}", '{"org":"beta"}'), 400,
        'invalid_request', '"org" cannot be given here', 'org in a PATCH');
    is(json(admin('GET', "/admin/keys/$k->{id}"))->{org}, 'acme',
        'the org is unchanged');
};

subtest 'POST /<id>/rotate: a new key; the old one for the grace' => sub {
    my $old = create(undef, name => 'Rotate me', scopes => ['read:people'],
        org => 'acme');
    my $res = admin('POST', "/admin/keys/$old->{id}/rotate",
        '{"grace_seconds":2}');
    answered($res, 201, sub {
        my $new = shift;
        isnt($new->{id}, $old->{id}, 'a new id');
        like($new->{key}, qr/^ck_/, 'a key, with the old one\'s prefix');
        is($new->{name}, 'Rotate me', 'the same name');
        is_deeply($new->{scopes}, ['read:people'], 'the same scopes');
    }, 'rotate');
    my $new = json($res);
    is(json(admin('GET', "/admin/keys/$old->{id}"))->{replaced_by},
        $new->{id}, 'the old object\'s replaced_by is the new id');
    is($nginx->get('/api/x', Authorization => "Bearer $old->{key}")->status,
        200, 'the old key works during the grace');
    is($nginx->get('/api/x', Authorization => "Bearer $new->{key}")->status,
        200, 'the new key works');
    ok(wait_until(sub { $nginx->get('/api/x',
        Authorization => "Bearer $old->{key}")->status == 401 }, 5, 0.2),
        'the old key stops after the grace');
    error_is(admin('POST', "/admin/keys/$old->{id}/rotate", ''), 400,
        'invalid_request', 'the key is no longer active: create a new key '
        . 'instead', 'rotating it again');

    my $now = create(undef, name => 'Rotate now');
    my $r2 = admin('POST', "/admin/keys/$now->{id}/rotate");
    is($r2->status, 201, 'no body: no grace');
    is($nginx->get('/api/x', Authorization => "Bearer $now->{key}")->status,
        401, 'the old key is refused at once');
};

subtest 'a key\'s own rate limit: rate and burst over HTTP' => sub {
    my $k = create(undef, name => 'Limited', rate => '100r/s', burst => 5);
    is($k->{rate}, '100r/s', 'created with its rate');
    is($k->{burst}, 5, 'and its burst, a number');
    my $h = key_hash($k->{key});
    is_deeply($redis->cmd('HMGET', $h, 'rate', 'burst'), ['100r/s', '5'],
        'the record holds them as the tool writes them');
    my $shown = run_cli_json({ redis => $redis }, 'show', $k->{id});
    is("$shown->{rate} $shown->{burst}", '100r/s 5', 'apikey show agrees');

    answered(admin('PATCH', "/admin/keys/$k->{id}",
        '{"rate":"6000r/m","burst":null}'), 200, sub {
        is($_[0]{rate}, '6000r/m', 'PATCH rate');
        ok(!defined $_[0]{burst}, 'PATCH burst null removes it');
    }, 'PATCH rate and burst');

    my $rot = json(admin('POST', "/admin/keys/$k->{id}/rotate"));
    is($rot->{rate}, '6000r/m', 'a rotated key keeps its rate');

    my $before = join ',', sort @{ $redis->cmd('KEYS', '*') };
    for my $bad (['{"name":"x","rate":"1r/h"}', 'rate',
            '"rate" must be like 100r/s or 6000r/m, or null'],
        ['{"name":"x","rate":"0r/s"}', 'rate',
            '"rate" must be like 100r/s or 6000r/m, or null'],
        ['{"name":"x","rate":100}', 'rate',
            '"rate" must be like 100r/s or 6000r/m, or null'],
        ['{"name":"x","burst":-1}', 'burst', '"burst" must be a whole '
            . 'number of requests from 0 to 1000000, or null'],
        ['{"name":"x","burst":"5"}', 'burst', '"burst" must be a whole '
            . 'number of requests from 0 to 1000000, or null'])
    {
        error_is(admin('POST', '/admin/keys/', $bad->[0]), 400,
            'invalid_request', $bad->[2], "bad $bad->[1]: $bad->[0]");
    }
    is(join(',', sort @{ $redis->cmd('KEYS', '*') }), $before,
        'nothing written for a bad rate or burst');
};

subtest 'an allowlist and other fields over HTTP' => sub {
    my $k = create(undef, name => 'Allowlisted',
        cidrs => ['203.0.113.0/24', '2001:db8::/32'],
        fields => { plan => 'gold', user_id => 'u_42' });
    is_deeply($k->{cidrs}, ['203.0.113.0/24', '2001:db8::/32'],
        'created with its networks');
    is_deeply($k->{fields}, { plan => 'gold', user_id => 'u_42' },
        'and its other fields');
    my $h = key_hash($k->{key});
    is_deeply($redis->cmd('HMGET', $h, qw(cidrs plan user_id)),
        ['203.0.113.0/24 2001:db8::/32', 'gold', 'u_42'],
        'the record holds them as the tool writes them');
    is($nginx->get('/api/x', Authorization => "Bearer $k->{key}")->status,
        403, 'the allowlist is obeyed: 127.0.0.1 is outside it');
    my $shown = run_cli_json({ redis => $redis }, 'show', $k->{id});
    is_deeply([$shown->{cidrs}, $shown->{fields}],
        [$k->{cidrs}, $k->{fields}], 'apikey show agrees');

    answered(admin('PATCH', "/admin/keys/$k->{id}",
        '{"cidrs":["127.0.0.1"],"fields":{"plan":"silver","user_id":null}}'),
        200, sub {
        is_deeply($_[0]{cidrs}, ['127.0.0.1'], 'PATCH cidrs');
        is_deeply($_[0]{fields}, { plan => 'silver' },
            'PATCH a field; null removes one');
    }, 'PATCH cidrs and fields');
    ok(wait_until(sub { $nginx->get('/api/x',
        Authorization => "Bearer $k->{key}")->status == 200 }, 5, 0.05),
        'the new allowlist holds the client');

    my $rot = json(admin('POST', "/admin/keys/$k->{id}/rotate",
        '{"grace_seconds":60}'));
    is_deeply([$rot->{cidrs}, $rot->{fields}],
        [['127.0.0.1'], { plan => 'silver' }],
        'a rotated key keeps its allowlist and fields');

    answered(admin('PATCH', "/admin/keys/$k->{id}", '{"cidrs":null}'), 200,
        sub { is_deeply($_[0]{cidrs}, [], 'null removes the allowlist') },
        'PATCH cidrs null');
    ok(wait_until(sub { $nginx->get('/api/x',
        Authorization => "Bearer $k->{key}")->status == 200 }, 5, 0.05),
        'without an allowlist the key is let in');

    my $before = keyspace();
    for my $bad (
        ['{"name":"x","cidrs":["10.0.0.0/33"]}', '"cidrs" holds what is '
            . 'not an IPv4 or IPv6 network'],
        ['{"name":"x","cidrs":["10.0.0.0/8 192.0.2.0/24"]}', '"cidrs" holds '
            . 'what is not an IPv4 or IPv6 network'],
        ['{"name":"x","cidrs":"10.0.0.0/8"}',
            '"cidrs" must be an array of networks'],
        ['{"name":"x","fields":{"org":"x"}}', '"fields" names a field that '
            . 'cannot be set: 1 to 64 lowercase letters, digits or '
            . 'underscores, and none the module reads itself'],
        ['{"name":"x","fields":{"Plan":"x"}}', '"fields" names a field that '
            . 'cannot be set: 1 to 64 lowercase letters, digits or '
            . 'underscores, and none the module reads itself'],
        ['{"name":"x","fields":{"plan":1}}',
            '"fields" must be an object of strings'],
        ['{"name":"x","fields":{"plan":"a\u0001b"}}', '"fields" values must '
            . 'be up to 1024 bytes without control characters'])
    {
        error_is(admin('POST', '/admin/keys/', $bad->[0]), 400,
            'invalid_request', $bad->[1], "bad input: $bad->[0]");
    }
    is_deeply(keyspace(), $before, 'nothing written for bad cidrs or fields');
};

subtest 'GET /scopes: what may be granted here' => sub {
    answered(admin('GET', '/admin/keys/scopes'), 200, '{"scopes":null}',
        'not capped');
    answered(admin('GET', '/capped/keys/scopes', undef,
        'X-Scope' => 'read:*'), 200,
        '{"scopes":["read:people","write:people","read:*"]}',
        'capped, a variable\'s scopes too');
};

subtest 'methods: 405 with Allow; unknown paths 404' => sub {
    my %allow = ('/admin/keys/' => 'GET, HEAD, POST',
        '/admin/keys/scopes' => 'GET, HEAD',
        '/admin/keys/k_x' => 'GET, HEAD, PATCH, DELETE',
        '/admin/keys/k_x/rotate' => 'POST');
    for my $path (sort keys %allow) {
        for my $m (qw(PUT DELETE POST PATCH GET)) {
            next if index($allow{$path}, $m) >= 0;
            my $res = admin($m, $path);
            error_is($res, 405, 'method_not_allowed',
                'the method is not allowed here', "$m $path");
            is($res->header('allow'), $allow{$path}, "$m $path: Allow");
        }
    }
    error_is(admin('GET', '/admin/keys/k_x/other'), 404, 'not_found',
        'no such resource', 'an unknown path');
    error_is(admin('GET', '/admin/keys/k_unknown1'), 404, 'not_found',
        'no key with this id: k_unknown1', 'an unknown id');
    error_is(admin('DELETE', '/admin/keys/k_unknown1'), 404, 'not_found',
        'no key with this id: k_unknown1', 'DELETE of an unknown id');
};

subtest 'bad input: 400, 413, 415, and nothing changes' => sub {
    my @made_here;
    my $k = create(undef, name => 'Untouched', org => 'acme');
    my $before = keyspace();
    my %bad = (
        'not JSON' => ['{"name":', 'the body is not valid JSON'],
        'not an object' => ['["name"]', 'the body is not a JSON object'],
        'an unknown field' => ['{"name":"x","admin":true}',
            'unknown field'],
        'a duplicate field' => ['{"name":"x","name":"y"}',
            'the body is not valid JSON'],
        'a name of the wrong type' => ['{"name":5}',
            '"name" must be a string'],
        'no name' => ['{"scopes":[]}', '"name" is required'],
        'an empty name' => ['{"name":""}', '"name" must be 1 to 1024 bytes'],
        'a name over 1024 bytes' => [$JSON->encode({ name => 'x' x 1025 }),
            '"name" must be 1 to 1024 bytes'],
        'a name with a control character' => ['{"name":"a\u0007b"}',
            '"name" must not hold control characters'],
        'a name with a NUL' => ['{"name":"a\u0000b"}',
            'the body is not valid JSON'],
        'scopes not an array' => ['{"name":"x","scopes":"read:people"}',
            '"scopes" must be an array of strings'],
        'an invalid scope' => ['{"name":"x","scopes":["read people"]}',
            '"scopes" holds an invalid scope'],
        'an expiry in the past' => ['{"name":"x","expires_at":'
            . '"2001-01-01T00:00:00Z"}', '"expires_at" is in the past'],
        'a malformed expiry' => ['{"name":"x","expires_at":"soon"}',
            '"expires_at" must be an RFC 3339 time or null'],
        'negative days' => ['{"name":"x","expires_in_days":-1}',
            '"expires_in_days" must be a whole number of days, 0 for never'],
        'both expiry fields' => ['{"name":"x","expires_in_days":1,'
            . '"expires_at":null}', 'give "expires_at" or '
            . '"expires_in_days", not both'],
        'grace on create' => ['{"name":"x","grace_seconds":1}',
            '"grace_seconds" cannot be given here'],
    );
    for my $case (sort keys %bad) {
        my ($body, $description) = @{ $bad{$case} };
        error_is(admin('POST', '/admin/keys/', $body), 400,
            'invalid_request', $description, $case);
    }
    error_is(admin('PATCH', "/admin/keys/$k->{id}", '{"name":""}'), 400,
        'invalid_request', '"name" must be 1 to 1024 bytes',
        'a bad PATCH');
    error_is(admin('POST', "/admin/keys/$k->{id}/rotate",
        '{"grace_seconds":"1"}'), 400, 'invalid_request',
        '"grace_seconds" must be a whole number of seconds', 'a bad grace');
    error_is(admin('POST', '/capped/keys/', '{"name":"x","scopes":["x y"]}'),
        400, 'invalid_request', '"scopes" holds an invalid scope',
        'an invalid scope is 400 first, capped or not');

    error_is(admin('POST', '/admin/keys/',
        $JSON->encode({ name => 'x' x 70000 })), 413, 'request_too_large',
        'the body is larger than 64 KB', 'a body over 64 KB');
    error_is(http_raw($nginx->port, "POST /admin/keys/ HTTP/1.1\r\n"
        . "Host: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n"
        . sprintf("%x\r\n", 70000) . ('x' x 70000) . "\r\n0\r\n\r\n"),
        413, 'request_too_large', 'the body is larger than 64 KB',
        'a chunked body over 64 KB');

    for my $type ('text/plain', 'application/jsonx',
        'application/x-www-form-urlencoded')
    {
        error_is(admin('POST', '/admin/keys/', '{"name":"x"}',
            'Content-Type' => $type), 415, 'unsupported_media_type',
            'the body must be application/json', "Content-Type: $type");
    }
    my $big = admin('POST', '/admin/keys/',
        '{"name":"Padded"' . (' ' x 40000) . '}');
    is($big->status, 201, 'a body nginx kept in a file (40 KB) is read');
    push @made_here, json($big);
    my $res = admin('POST', '/admin/keys/', '{"name":"charset"}',
        'Content-Type' => 'application/json; charset=utf-8');
    is($res->status, 201, 'application/json; charset=utf-8 is JSON');
    push @made_here, json($res);
    for my $made (@made_here) {
        $redis->cmd('DEL', key_hash($made->{key}), "apikey:id:$made->{id}");
        $redis->cmd('SREM', 'apikey:ids', $made->{id});
    }
    is_deeply(keyspace(), $before, 'nothing else changed in Redis');
};

subtest 'confinement: another org\'s key does not exist' => sub {
    my $a = create('/acme/keys/', name => 'Acme key', org => 'beta');
    is($a->{org}, 'acme', 'a key made here gets the org, whatever the body');
    my $b = create('/beta/keys/', name => 'Beta key');
    is($b->{org}, 'beta', 'beta\'s');
    my $unknown = admin('GET', '/acme/keys/k_nosuchkey1');
    for my $case (["GET", "/acme/keys/$b->{id}"],
        ["PATCH", "/acme/keys/$b->{id}", '{"name":"mine"}'],
        ["DELETE", "/acme/keys/$b->{id}"],
        ["POST", "/acme/keys/$b->{id}/rotate", '{}'])
    {
        my $res = admin(@$case);
        is($res->status, $unknown->status, "$case->[0]: as an unknown id");
        (my $body = $res->body) =~ s/\Q$b->{id}\E/k_nosuchkey1/;
        is($body, $unknown->body, "$case->[0]: the same body but the id");
    }
    my $list = json(admin('GET', '/acme/keys/?org=beta'));
    ok(!grep({ $_->{org} ne 'acme' } @$list), 'the list shows acme only');
    ok(scalar(grep { $_->{id} eq $a->{id} } @$list), '... and its key');
    is(json(admin('GET', "/beta/keys/$b->{id}"))->{name}, 'Beta key',
        'beta\'s key is untouched');
    is($nginx->get('/api/x', Authorization => "Bearer $b->{key}")->status,
        200, 'and still works');
    error_is(admin('GET', '/session/keys/'), 403, 'forbidden',
        'no organisation to manage', 'an empty org value: 403');
    error_is(admin('POST', '/session/keys/', '{"name":"x"}'), 403,
        'forbidden', 'no organisation to manage', 'for a create too');
    is(scalar @{ json(admin('GET', '/session/keys/', undef,
        'X-Org' => 'beta')) }, 1, 'the org from a variable');
};

subtest 'the scope cap: 403 naming the scope' => sub {
    my $before = keyspace();
    error_is(admin('POST', '/capped/keys/',
        '{"name":"x","scopes":["read:people","admin:keys"]}'), 403,
        'forbidden', 'this scope cannot be granted here: admin:keys',
        'a scope beyond the list');
    error_is(admin('POST', '/capped/keys/',
        '{"name":"x","scopes":["read:*"]}'), 403, 'forbidden',
        'this scope cannot be granted here: read:*',
        'a wildcard the list does not grant');
    is_deeply(keyspace(), $before, 'nothing written');
    my $k = create('/capped/keys/', name => 'Capped',
        scopes => ['read:people', 'write:people']);
    is_deeply($k->{scopes}, ['read:people', 'write:people'],
        'scopes of the list are granted');
    is(admin('POST', '/capped/keys/', '{"name":"w","scopes":["read:*"]}',
        'X-Scope' => 'read:*')->status, 201,
        'a wildcard the list grants (through a variable)');
    error_is(admin('PATCH', "/capped/keys/$k->{id}",
        '{"scopes":["delete:people"]}'), 403, 'forbidden',
        'this scope cannot be granted here: delete:people',
        'a PATCH is capped too');
};

subtest 'API keys: refused by default, confined when allowed' => sub {
    my $plain = create(undef, name => 'Plain', org => 'acme',
        scopes => ['read:people']);
    error_is(admin('GET', '/bykey/keys/', undef,
        Authorization => "Bearer $plain->{key}"), 403, 'forbidden',
        'API key operations cannot be performed using an API key',
        'a key in an admin location');
    error_is(admin('GET', '/keyadmin/keys/', undef,
        Authorization => "Bearer $plain->{key}"), 403, 'forbidden',
        'the key does not hold the scope: admin:keys',
        'a key without the scope');
    my $noorg = create(undef, name => 'No org', scopes => ['admin:keys']);
    error_is(admin('GET', '/keyadmin/keys/', undef,
        Authorization => "Bearer $noorg->{key}"), 403, 'forbidden',
        'a key without an organisation cannot manage keys',
        'a key without an org');

    my $adm = create(undef, name => 'Key admin', org => 'acme',
        scopes => ['admin:keys', 'read:people']);
    my @auth = (Authorization => "Bearer $adm->{key}");
    my $other = create(undef, name => 'Other org', org => 'beta');
    my $res = admin('POST', '/keyadmin/keys/',
        '{"name":"By a key","org":"beta","scopes":["read:people"]}', @auth);
    is($res->status, 201, 'it makes a key');
    is(json($res)->{org}, 'acme', '... of its own org');
    error_is(admin('POST', '/keyadmin/keys/',
        '{"name":"More","scopes":["write:people"]}', @auth), 403,
        'forbidden', 'this scope cannot be granted here: write:people',
        'never a scope it does not hold');
    is(admin('GET', "/keyadmin/keys/$other->{id}", undef, @auth)->status,
        404, 'another org\'s key does not exist');
    ok(!grep({ $_->{org} ne 'acme' }
        @{ json(admin('GET', '/keyadmin/keys/', undef, @auth)) }),
        'its list is its org\'s');
    my $self = create(undef, name => 'Rotates itself', org => 'acme',
        scopes => ['admin:keys']);
    my $res2 = admin('POST', "/keyadmin/keys/$self->{id}/rotate", '{}',
        Authorization => "Bearer $self->{key}");
    is($res2->status, 201, 'a key rotates itself');
    is(json($res2)->{org}, 'acme', '... the new key of its org');
    is(admin('GET', '/keyadmin/keys/', undef,
        Authorization => "Bearer $self->{key}")->status, 401,
        '... and without a grace its next request is refused');
    my $m = $nginx->mark;
    is(admin('DELETE', "/keyadmin/keys/$adm->{id}", undef, @auth)->status,
        200, 'it revokes itself');
    my $line = qq{apikey admin: revoke key "$adm->{id}" org "acme" }
        . qq{actor "$adm->{id}"};
    like($nginx->error_log_since($m), qr/\Q$line\E/,
        'the audit line names the key as the actor');
    is(admin('GET', '/keyadmin/keys/', undef, @auth)->status, 401,
        'from its next request on, it is refused');
};

subtest 'Redis refusing writes: 503, nothing written' => sub {
    my $k = create(undef, name => 'Before refusal', org => 'acme');
    $redis->cmd('CONFIG', 'SET', 'min-replicas-to-write', '1');
    my $before = keyspace();
    my $unavailable = ['temporarily_unavailable',
        'the key store is unavailable'];
    for my $case (['POST', '/admin/keys/', '{"name":"x","org":"acme"}'],
        ['PATCH', "/admin/keys/$k->{id}", '{"name":"y"}'],
        ['DELETE', "/admin/keys/$k->{id}"],
        ['POST', "/admin/keys/$k->{id}/rotate", '{}'])
    {
        error_is(admin(@$case), 503, @$unavailable, "$case->[0] $case->[1]");
    }
    is_deeply(keyspace(), $before, 'the keyspace is unchanged');
    $redis->cmd('CONFIG', 'SET', 'min-replicas-to-write', '0');

    for my $case (['GET', '/down/keys/'], ['GET', '/down/keys/k_x'],
        ['POST', '/down/keys/', '{"name":"x"}'],
        ['DELETE', '/down/keys/k_x'])
    {
        error_is(admin(@$case), 503, @$unavailable,
            "Redis down: $case->[0] $case->[1]");
    }
    is_deeply(keyspace(), $before, 'still unchanged');
};

subtest 'concurrent creates get distinct ids and keys' => sub {
    my @c = map {
        my $c = ApiKey::Test::HTTP->new(port => $nginx->port);
        my $body = $JSON->encode({ name => "Concurrent $_" });
        $c->send_raw("POST /admin/keys/ HTTP/1.1\r\nHost: x\r\n"
            . "Content-Type: application/json\r\nContent-Length: "
            . length($body) . "\r\n\r\n$body");
        $c;
    } 1 .. 20;
    my @made = map { my $r = $_->read_response; $_->close; $r } @c;
    is(scalar(grep { $_->status == 201 } @made), 20, 'all 201');
    my @k = map { json($_) } @made;
    push @keys, map { $_->{key} } @k;
    is(scalar(keys %{{ map { $_->{id} => 1 } @k }}), 20, 'distinct ids');
    is(scalar(keys %{{ map { $_->{key} => 1 } @k }}), 20, 'distinct keys');
};

subtest 'the audit line: action, id, org, actor; nothing of the body' => sub {
    my $m = $nginx->mark;
    my $k = create('/acme/keys/', name => 'Secret Project Name');
    admin('PATCH', "/acme/keys/$k->{id}", '{"name":"Other Secret"}',
        'X-Actor' => 'alice');
    admin('DELETE', "/acme/keys/$k->{id}", undef, 'X-Actor' => 'alice');
    my @lines = grep { /apikey admin:/ }
        $nginx->log_entries($nginx->error_log_since($m));
    is(scalar @lines, 3, 'one line per write');
    my $create = qq{apikey admin: create key "$k->{id}" org "acme" }
        . qq{actor "-",};
    my $update = qq{apikey admin: update key "$k->{id}" org "acme" }
        . qq{actor "alice",};
    like($lines[0], qr/\[notice\] .*\Q$create\E/, 'create, at notice');
    like($lines[1], qr/\Q$update\E/,
        'update, the actor of apikey_admin_actor');
    like($lines[2], qr/apikey admin: revoke key/, 'revoke');
    ok(!grep({ /Secret|name/ } @lines), 'no name, no field names');
};

subtest 'HEAD and the answers of GET' => sub {
    my $res = admin('HEAD', '/admin/keys/scopes');
    is($res->status, 200, 'HEAD /scopes: 200');
};

subtest 'no key in any log line' => sub {
    error_log_clean($nginx, @keys);
    my $log = $nginx->access_log;
    my @found = grep { defined && length && index($log, $_) >= 0 } @keys;
    is(scalar @found, 0, 'nor in the access log');
    is(scalar(grep { !defined } @keys), 0, 'every 201 had a key');
};

done_testing();
