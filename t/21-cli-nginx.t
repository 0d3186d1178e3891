# Keys managed with the apikey tool, used through nginx: what a customer's
# script sees after create, update, revoke, rotate and expiry, the checksum
# check that spares Redis, and last use in `apikey list`.

use lib 't/lib';
use ApiKey::Test;


my $redis = start_redis();

my $nginx = start_nginx(redis => $redis, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        add_header X-Status $apikey_status always;

        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /people/ {
            apikey on;
            apikey_scopes read:people;

            limit_except GET HEAD {
                apikey_scopes write:people;
            }

            proxy_pass http://%%ECHO%%;
        }

        location ~ ^/w/(?<ws>[^/]+)/ {
            apikey on;
            apikey_org $ws;
            proxy_pass http://%%ECHO%%;
        }

        location /checked/ {
            apikey on;
            apikey_key_checksum on;
            apikey_key_prefix ak_ gai_;
            proxy_pass http://%%ECHO%%;
        }

        location /used/ {
            apikey on;
            apikey_last_used_interval 1s;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

sub apikey { return run_cli({ redis => $redis }, @_) }

sub apikey_json { return run_cli_json({ redis => $redis }, @_) }

# "200 ok", "401 revoked", ... for one request with the key
sub status {
    my ($key, $path, $method) = @_;
    my $res = $nginx->request($method // 'GET', $path // '/api/x',
        Authorization => "Bearer $key");
    return $res->status . ' ' . ($res->header('x-status') // '(none)');
}

my @keys;    # every key made here, for the error log check


subtest 'a created key is accepted, and the upstream learns its id' => sub {
    my $k = apikey_json('create', '--name', 'Nightly Score Export',
        '--scope', 'read:people', '--org', 'acme');
    push @keys, $k->{key};
    my $res = $nginx->get('/api/x', Authorization => "Bearer $k->{key}");
    is($res->status, 200, 'accepted: 200');
    is($res->upstream->header('x-apikey-id'), $k->{id}, 'X-ApiKey-Id');
    is($res->upstream->header('x-apikey-name'), 'Nightly Score Export',
        'X-ApiKey-Name');
    is($res->upstream->header('x-apikey-org'), 'acme', 'X-ApiKey-Org');
    is($res->upstream->header('x-apikey-scopes'), 'read:people',
        'X-ApiKey-Scopes');
};

subtest 'a key made with --prefix works' => sub {
    my $k = apikey_json('create', '--name', 'Prefixed', '--prefix', 'gai_');
    push @keys, $k->{key};
    is(status($k->{key}), '200 ok', 'gai_ key accepted');
};

subtest '--org with apikey_org' => sub {
    my $k = apikey_json('create', '--name', 'Acme CI', '--org', 'acme');
    my $none = apikey_json('create', '--name', 'No org');
    push @keys, $k->{key}, $none->{key};
    is(status($k->{key}, '/w/acme/people'), '200 ok', 'its own org: 200');
    is(status($k->{key}, '/w/globex/people'), '403 org_mismatch',
        'another org: 403');
    is(status($none->{key}, '/w/acme/people'), '403 org_mismatch',
        'a key without org: 403');
};

subtest 'update --scope takes effect on the next request' => sub {
    my $k = apikey_json('create', '--name', 'Reader', '--scope',
        'read:people');
    push @keys, $k->{key};
    is(status($k->{key}, '/people/1'), '200 ok', 'GET with read:people');
    is(status($k->{key}, '/people/1', 'POST'), '403 insufficient_scope',
        'POST needs write:people');
    is(apikey('update', $k->{id}, '--scope', 'read:people write:people')
        ->{code}, 0, 'apikey update --scope');
    is(status($k->{key}, '/people/1', 'POST'), '200 ok',
        'POST now accepted');
    apikey('update', $k->{id}, '--scope', '');
    is(status($k->{key}, '/people/1'), '403 insufficient_scope',
        'scopes removed: GET refused');
    apikey('update', $k->{id}, '--name', 'Renamed');
    my $res = $nginx->get('/api/x', Authorization => "Bearer $k->{key}");
    is($res->upstream->header('x-apikey-name'), 'Renamed',
        'update --name: the upstream sees the new name');
};

subtest 'revoke: the next request is refused' => sub {
    my $k = apikey_json('create', '--name', 'Short-lived');
    push @keys, $k->{key};
    is(status($k->{key}), '200 ok', 'before: 200');
    is(apikey('revoke', $k->{id})->{code}, 0, 'apikey revoke');
    is(status($k->{key}), '401 revoked', 'after: 401');
    answer_is($nginx->get('/api/x', Authorization => "Bearer $k->{key}"),
        'revoked');
};

subtest 'rotate with a grace period, and an expiring key' => sub {
    my $old = apikey_json('create', '--name', 'Rotating', '--scope',
        'read:people');
    my $exp = apikey_json('create', '--name', 'Two seconds',
        '--expires-in', '2s');
    my $new = apikey_json('rotate', $old->{id}, '--grace', '2s');
    push @keys, $old->{key}, $exp->{key}, $new->{key};
    is(status($old->{key}), '200 ok', 'during the grace: the old key works');
    is(status($new->{key}), '200 ok', 'during the grace: the new key works');
    is(status($exp->{key}), '200 ok', 'the expiring key works at first');

    my $res = $nginx->get('/api/x', Authorization => "Bearer $new->{key}");
    is($res->upstream->header('x-apikey-id'), $new->{id},
        'the new key has the new id');

    # both end at most 2 seconds after they were made
    sleep 2.5;
    is(status($old->{key}), '401 expired', 'after the grace: the old key 401');
    is(status($new->{key}), '200 ok', 'after the grace: the new key works');
    is(status($exp->{key}), '401 expired', '--expires-in 2s: 401 after');
    my %state = map { $_->{id} => $_->{state} } @{ apikey_json('list') };
    is($state{$old->{id}}, 'expired', 'list: the old key expired');
    is($state{$exp->{id}}, 'expired', 'list: the 2s key expired');
};

subtest 'rotate without grace: the old key is refused at once' => sub {
    my $old = apikey_json('create', '--name', 'Leaked');
    push @keys, $old->{key};
    my $new = apikey_json('rotate', $old->{id});
    push @keys, $new->{key};
    is(status($old->{key}), '401 revoked', 'the old key: 401');
    is(status($new->{key}), '200 ok', 'the new key: 200');
};

subtest 'checksum on: a mangled key is refused without asking Redis' => sub {
    my $k = apikey_json('create', '--name', 'Checked');
    push @keys, $k->{key};
    is(status($k->{key}, '/checked/x'), '200 ok', 'the key itself: 200');

    my @mangled;
    for my $pos (3, 10, 20, length($k->{key}) - 1) {
        my $m = $k->{key};
        my $c = substr($m, $pos, 1);
        substr($m, $pos, 1) = $c eq 'x' ? 'y' : 'x';
        push @mangled, $m;
    }
    (my $other = $k->{key}) =~ s/^ak_/ck_/;
    push @mangled, $other;

    my $before = $redis->calls('hmget');
    for my $m (@mangled) {
        answer_is($nginx->get('/checked/x', Authorization => "Bearer $m"),
            'invalid', name => 'a mangled key');
    }
    is($redis->calls('hmget'), $before,
        'Redis saw no lookup for them (INFO commandstats)');

    my $res = $nginx->get('/api/x', Authorization => "Bearer $mangled[0]");
    is($res->status, 401, 'checksum off: a mangled key is refused too');
    is($redis->calls('hmget'), $before + 1, '... after a lookup');
};

subtest 'list shows the last use after traffic' => sub {
    my $k = apikey_json('create', '--name', 'Busy');
    my $idle = apikey_json('create', '--name', 'Idle');
    push @keys, $k->{key}, $idle->{key};
    is(apikey_json('show', $k->{id})->{last_used_at}, undef,
        'never used: null');
    my $t0 = int(time);
    is(status($k->{key}, '/used/x'), '200 ok', 'one request');
    my $used;
    wait_until(sub {
        $used = apikey_json('show', $k->{id})->{last_used_at};
        return defined $used;
    }, 5, 0.1);
    ok(defined $used, 'last_used_at is set') or return;
    like($used, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'RFC 3339');
    my %list = map { $_->{id} => $_ } @{ apikey_json('list') };
    is($list{$k->{id}}{last_used_at}, $used, 'list --json shows it');
    is($list{$idle->{id}}{last_used_at}, undef, 'an idle key: null');
    like(apikey('list')->{out}, qr/^\Q$k->{id}\E\s.*\Q$used\E\s+active$/m,
        'the table shows it');
};

subtest 'verify agrees with nginx' => sub {
    my $k = apikey_json('create', '--name', 'Agree', '--scope', 'read:*',
        '--org', 'acme');
    push @keys, $k->{key};
    my @cases = (
        [[], '/api/x', 'ok'],
        [['--scope', 'read:people'], '/people/1', 'ok'],
        [['--scope', 'write:people'], '/people/1', 'insufficient_scope',
            'POST'],
        [['--org', 'acme'], '/w/acme/x', 'ok'],
        [['--org', 'globex'], '/w/globex/x', 'org_mismatch'],
    );
    for my $c (@cases) {
        my ($args, $path, $want, $method) = @$c;
        my $v = apikey_json('verify', @$args, $k->{key});
        is($v->{result}, $want, "verify @$args: $want");
        like(status($k->{key}, $path, $method), qr/ \Q$want\E$/,
            "nginx on $path agrees");
    }
    apikey('revoke', $k->{id});
    is(apikey_json('verify', $k->{key})->{result}, 'revoked',
        'verify: revoked');
    is(status($k->{key}), '401 revoked', 'nginx: revoked');
};

error_log_clean($nginx, @keys);

done_testing();
