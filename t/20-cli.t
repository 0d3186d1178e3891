# The apikey tool on its own, against a real Redis: what each command
# prints (table and JSON), its exit codes, the records and indexes it
# writes, and that no plaintext key ever reaches Redis.

use lib 't/lib';
use ApiKey::Test;

use Digest::SHA qw(sha256_hex);
use JSON::PP ();

my $redis = start_redis();
my $json = JSON::PP->new;

# apikey(@args) or apikey({ stdin => $text, env => {...}, no_redis => 1 },
# @args): { code, out, err } of one run of build/apikey against $redis.
sub apikey {
    my $o = ref $_[0] eq 'HASH' ? shift : {};
    return run_cli({ %$o, $o->{no_redis} ? () : (redis => $redis) }, @_);
}

sub apikey_json {
    my $o = ref $_[0] eq 'HASH' ? shift : {};
    return run_cli_json({ %$o, redis => $redis }, @_);
}

my $RFC3339 = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;


subtest 'create prints the key once, with id, hint, scopes and expiry' => sub {
    my $r = apikey('create', '--name', 'Nightly Score Export',
        '--scope', 'read:people', '--scope', 'write:people',
        '--org', 'acme', '--expires-in', '30d');
    is($r->{code}, 0, 'exit 0');
    my %f = map { /^(\S+(?: \S+)?)\s{2,}(.*)$/ ? ($1, $2) : () }
        split /\n/, $r->{out};
    like($f{key}, qr/^ak_[0-9A-Za-z]{36}$/, 'the key, default prefix ak_');
    like($f{id}, qr/^k_[0-9A-Za-z]{12}$/, 'an id k_ + 12 base62');
    is($f{name}, 'Nightly Score Export', 'the name');
    is($f{org}, 'acme', 'the org');
    is($f{hint}, substr($f{key}, -4), 'the hint is the last 4 characters');
    is($f{scopes}, 'read:people write:people', 'the scopes');
    like($f{expires}, $RFC3339, 'the expiry as RFC 3339');
    is($f{state}, 'active', 'active');
    like($r->{err}, qr/shown again/, 'a reminder on stderr to store it');
};

subtest 'create --json' => sub {
    my $k = apikey_json('create', '--name', 'CI', '--scope', 'read:people',
        '--expires-at', '2099-01-31T12:00:00Z', '--prefix', 'gai_');
    is_deeply([sort keys %$k],
        [sort qw(id key name org hint scopes cidrs fields created_at
                 expires_at last_used_at state replaced_by rate burst)],
        'the documented fields');
    like($k->{key}, qr/^gai_[0-9A-Za-z]{36}$/, '--prefix gai_');
    is($k->{name}, 'CI', 'name');
    is($k->{org}, undef, 'no org is null');
    is_deeply($k->{scopes}, ['read:people'], 'scopes is an array');
    is($k->{expires_at}, '2099-01-31T12:00:00Z', 'expires_at');
    like($k->{created_at}, $RFC3339, 'created_at');
    is($k->{last_used_at}, undef, 'never used: null');
    is($k->{state}, 'active', 'state');
    is($k->{hint}, substr($k->{key}, -4), 'hint');
};

subtest 'the record is the module contract, and the indexes point to it'
    => sub {
    my $k = apikey_json('create', '--name', 'Contract', '--org', 'acme',
        '--scope', 'read:people admin:workspace', '--expires-in', '1h');
    my $rkey = 'apikey:' . sha256_hex($k->{key});
    my %h = @{ $redis->cmd('HGETALL', $rkey) };
    is($h{id}, $k->{id}, 'id');
    is($h{name}, 'Contract', 'name');
    is($h{org}, 'acme', 'org');
    is($h{scopes}, 'read:people admin:workspace', 'scopes, space separated');
    cmp_ok(abs($h{expires_at} - (time + 3600)), '<=', 2,
        'expires_at in unix seconds');
    like($h{created_at}, qr/^\d+$/, 'created_at in unix seconds');
    is($h{hint}, substr($k->{key}, -4), 'hint');
    ok(!exists $h{revoked}, 'not revoked');
    is($redis->cmd('GET', "apikey:id:$k->{id}"), sha256_hex($k->{key}),
        'apikey:id:<id> holds the hash');
    ok($redis->cmd('SISMEMBER', 'apikey:ids', $k->{id}), 'in apikey:ids');
    ok($redis->cmd('SISMEMBER', 'apikey:org:acme', $k->{id}),
        'in apikey:org:acme');
    my $ttl = $redis->cmd('TTL', $rkey);
    cmp_ok(abs($ttl - (3600 + 7 * 86400)), '<=', 3,
        'the record vanishes a week after its expiry');
    cmp_ok(abs($redis->cmd('TTL', "apikey:id:$k->{id}") - $ttl), '<=', 1,
        'and its id index with it');

    my $never = apikey_json('create', '--name', 'Forever');
    is($redis->cmd('TTL', 'apikey:' . sha256_hex($never->{key})), -1,
        'a key without expiry has no TTL');
};

subtest 'list and show' => sub {
    $redis->cmd('FLUSHALL');
    my $a = apikey_json('create', '--name', 'First', '--org', 'acme',
        '--scope', 'read:people');
    my $b = apikey_json('create', '--name', 'Second', '--org', 'globex');
    my $c = apikey_json('create', '--name', 'Third');

    my $r = apikey('list');
    is($r->{code}, 0, 'list: exit 0');
    my @lines = split /\n/, $r->{out};
    like($lines[0], qr/^ID\s+NAME\s+ORG\s+HINT\s+SCOPES\s+CREATED\s+EXPIRES\s+LAST USED\s+STATE$/,
        'list: a header');
    is(scalar(@lines), 4, 'list: one line per key');
    like($r->{out}, qr/^\Q$a->{id}\E\s+First\s+acme\s+\Q$a->{hint}\E\s+read:people\s+\S+\s+never\s+never\s+active$/m,
        'list: a row with every column');
    for my $k ($a, $b, $c) {
        unlike($r->{out}, qr/\Q$k->{key}\E/, "list never shows the key");
        unlike($r->{out}, qr/\Q@{[sha256_hex($k->{key})]}\E/,
            'list never shows the hash');
    }

    my $list = apikey_json('list');
    is(ref $list, 'ARRAY', 'list --json: an array');
    is_deeply([sort map { $_->{id} } @$list],
        [sort map { $_->{id} } $a, $b, $c], 'every key');
    my @created = map { $_->{created_at} } @$list;
    is_deeply(\@created, [sort @created], 'oldest first');
    ok(!grep({ exists $_->{key} } @$list), 'no key field');

    is_deeply([map { $_->{id} } @{ apikey_json('list', '--org', 'acme') }],
        [$a->{id}], 'list --org acme');
    is_deeply(apikey_json('list', '--org', 'nobody'), [],
        'list --org of an unknown org: []');

    my $show = apikey_json('show', $b->{id});
    is($show->{name}, 'Second', 'show --json');
    is($show->{org}, 'globex', 'show --json org');
    ok(!exists $show->{key}, 'show has no key field');

    $r = apikey('show', $a->{id});
    is($r->{code}, 0, 'show: exit 0');
    like($r->{out}, qr/^name\s+First$/m, 'show: aligned fields');
    unlike($r->{out}, qr/\Q$a->{key}\E/, 'show never shows the key');

    $r = apikey('show', 'k_doesnotexist');
    is($r->{code}, 1, 'show of an unknown id: exit 1');
    is($r->{err}, "apikey: no key with id k_doesnotexist\n",
        'show of an unknown id: one line');
};

subtest 'update, revoke and rotate change the record' => sub {
    my $k = apikey_json('create', '--name', 'Old', '--scope', 'read:people',
        '--org', 'acme', '--expires-in', '1d');
    my $rkey = 'apikey:' . sha256_hex($k->{key});

    my $u = apikey_json('update', $k->{id}, '--name', 'New',
        '--scope', 'read:people', '--scope', 'write:people', '--no-expiry');
    is($u->{name}, 'New', 'update: name');
    is_deeply($u->{scopes}, ['read:people', 'write:people'], 'update: scopes');
    is($u->{expires_at}, undef, 'update --no-expiry');
    is($redis->cmd('HGET', $rkey, 'scopes'), 'read:people write:people',
        'update: the record changed');
    is($redis->cmd('HGET', $rkey, 'expires_at'), '0',
        'update --no-expiry: expires_at 0');
    is($redis->cmd('TTL', $rkey), -1, 'update --no-expiry: no TTL');

    $u = apikey_json('update', $k->{id}, '--expires-at',
        '2099-06-01T00:00:00+02:00');
    is($u->{expires_at}, '2099-05-31T22:00:00Z',
        'update --expires-at with an offset, shown in UTC');

    my $r = apikey('update', $k->{id});
    is($r->{code}, 2, 'update without a change: exit 2');

    my $rot = apikey_json('rotate', $k->{id}, '--grace', '1h');
    isnt($rot->{id}, $k->{id}, 'rotate: a new id');
    isnt($rot->{key}, $k->{key}, 'rotate: a new key');
    is($rot->{name}, 'New', 'rotate: same name');
    is($rot->{org}, 'acme', 'rotate: same org');
    is_deeply($rot->{scopes}, ['read:people', 'write:people'],
        'rotate: same scopes');
    is($rot->{expires_at}, '2099-05-31T22:00:00Z', 'rotate: same expiry');
    my $old = apikey_json('show', $k->{id});
    is($old->{replaced_by}, $rot->{id}, 'the old key: replaced_by');
    is($old->{state}, 'active', 'the old key works during the grace');
    my $left = $redis->cmd('HGET', $rkey, 'expires_at') - time;
    ok($left > 3500 && $left <= 3600, 'the old key expires after the grace');

    $r = apikey('rotate', $k->{id});
    is($r->{code}, 1, 'rotating a rotated key: exit 1');
    like($r->{err}, qr/^apikey: .*replaced by \Q$rot->{id}\E\n\z/,
        'rotating a rotated key: says by what');

    my $now = apikey_json('rotate', $rot->{id});
    my $prev = apikey_json('show', $rot->{id});
    is($prev->{state}, 'revoked', 'rotate without grace: old key revoked');
    is($prev->{replaced_by}, $now->{id}, 'and replaced');

    $r = apikey('revoke', $now->{id});
    is($r->{code}, 0, 'revoke: exit 0');
    is($r->{out}, "$now->{id} revoked\n", 'revoke: says so');
    is(apikey_json('show', $now->{id})->{state}, 'revoked',
        'revoke: state revoked');
    my $ttl = $redis->cmd('TTL', 'apikey:' . sha256_hex($now->{key}));
    ok($ttl > 7 * 86400 - 10 && $ttl <= 7 * 86400,
        'a revoked record vanishes a week later');
    $r = apikey('revoke', $now->{id});
    is($r->{code}, 0, 'revoking twice is fine');
    like($r->{out}, qr/already revoked/, 'and says so');

    $r = apikey('revoke', 'k_nope');
    is($r->{code}, 1, 'revoke of an unknown id: exit 1');
};

subtest 'verify tells what the module would answer' => sub {
    my $k = apikey_json('create', '--name', 'V', '--scope', 'read:*',
        '--org', 'acme');
    my $v = apikey_json('verify', $k->{key});
    is($v->{result}, 'ok', 'ok');
    is($v->{checksum}, 'ok', 'checksum ok');
    is($v->{record}{id}, $k->{id}, 'the record');
    is(apikey_json('verify', '--scope', 'read:people', '--org', 'acme',
        $k->{key})->{result}, 'ok', 'ok with a granted scope and the org');
    is(apikey_json('verify', '--scope', 'write:people',
        $k->{key})->{result}, 'insufficient_scope', 'insufficient_scope');
    is(apikey_json('verify', '--org', 'globex', $k->{key})->{result},
        'org_mismatch', 'org_mismatch');

    $v = apikey_json({ stdin => "$k->{key}\n" }, 'verify', '-');
    is($v->{result}, 'ok', 'verify - reads the key from stdin');

    (my $bad = $k->{key}) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;
    $v = apikey_json('verify', $bad);
    is($v->{result}, 'invalid', 'a mangled key: invalid');
    is($v->{checksum}, 'bad', 'a mangled key: checksum bad');
    is($v->{record}, undef, 'a mangled key: no record');

    $v = apikey_json('verify', 'some-foreign-token');
    is($v->{checksum}, undef, 'a foreign token: no checksum verdict');
    is(apikey_json('verify', 'a,b')->{result}, 'malformed',
        'a token the module refuses as malformed');

    apikey('revoke', $k->{id});
    is(apikey_json('verify', $k->{key})->{result}, 'revoked', 'revoked');

    my $e = apikey_json('create', '--name', 'E');
    $redis->cmd('HSET', 'apikey:' . sha256_hex($e->{key}), 'expires_at',
        int(time) - 10);
    is(apikey_json('verify', $e->{key})->{result}, 'expired', 'expired');
    is(apikey_json('show', $e->{id})->{state}, 'expired',
        'show: state expired');

    my $r = apikey('verify', $e->{key});
    like($r->{out}, qr/^result\s+expired$/m, 'human output: the result');
    unlike($r->{out} . $r->{err}, qr/\Q$e->{key}\E/,
        'verify never prints the key');
};

subtest 'a record written by another program shows up through verify' => sub {
    my $t = new_token();
    seed_key($redis, $t, id => 'k_foreign', scopes => 'read:people',
        expires_at => 0);
    my $v = apikey_json('verify', '--scope', 'read:people', $t);
    is($v->{result}, 'ok', 'ok');
    is($v->{record}{id}, 'k_foreign', 'its id');
};

subtest 'the last use comes from the module\'s apikey:last_used hash' => sub {
    my $k = apikey_json('create', '--name', 'Used');
    $redis->cmd('HSET', 'apikey:last_used', $k->{id}, 1893456000);
    is(apikey_json('show', $k->{id})->{last_used_at},
        '2030-01-01T00:00:00Z', 'show');
    my ($row) = grep { $_->{id} eq $k->{id} } @{ apikey_json('list') };
    is($row->{last_used_at}, '2030-01-01T00:00:00Z', 'list --json');
    like(apikey('list')->{out},
        qr/^\Q$k->{id}\E\s.*2030-01-01T00:00:00Z\s+active$/m, 'list');
    is(apikey_json('verify', $k->{key})->{record}{last_used_at},
        '2030-01-01T00:00:00Z', 'verify');
};

subtest 'list drops index entries whose record is gone' => sub {
    my $k = apikey_json('create', '--name', 'Gone', '--org', 'acme');
    $redis->cmd('HSET', 'apikey:last_used', $k->{id}, int(time));
    $redis->cmd('DEL', 'apikey:' . sha256_hex($k->{key}));
    ok(!grep({ $_->{id} eq $k->{id} } @{ apikey_json('list') }),
        'not listed');
    ok(!$redis->cmd('SISMEMBER', 'apikey:ids', $k->{id}),
        'removed from apikey:ids');
    is($redis->cmd('EXISTS', "apikey:id:$k->{id}"), 0,
        'apikey:id:<id> removed');
    ok(!$redis->cmd('HEXISTS', 'apikey:last_used', $k->{id}),
        'its last use removed');
    apikey_json('list', '--org', 'acme');
    ok(!$redis->cmd('SISMEMBER', 'apikey:org:acme', $k->{id}),
        'list --org removes it from the org set');
};

subtest 'no plaintext key anywhere in Redis' => sub {
    $redis->cmd('FLUSHALL');
    my @keys;
    for my $i (1 .. 5) {
        my $k = apikey_json('create', '--name', "K$i", '--org', 'acme',
            '--scope', 'read:people', '--expires-in', '1d');
        push @keys, $k->{key};
        my $rot = apikey_json('rotate', $k->{id}, '--grace', '1h');
        push @keys, $rot->{key};
        apikey('update', $rot->{id}, '--name', "K$i renamed");
    }
    apikey('revoke', apikey_json('list')->[0]{id});

    my @names = @{ $redis->cmd('KEYS', '*') };
    ok(@names >= 12, scalar(@names) . ' Redis keys to inspect');
    my $leaks = 0;
    for my $name (@names) {
        my $dump = $redis->cmd('DUMP', $name);
        my $type = $redis->cmd('TYPE', $name);
        my $plain = join "\n", $name, $dump,
            $type eq 'hash'   ? @{ $redis->cmd('HGETALL', $name) }
          : $type eq 'set'    ? @{ $redis->cmd('SMEMBERS', $name) }
          : $type eq 'string' ? $redis->cmd('GET', $name) : ();
        for my $key (@keys) {
            # the key, or its random part alone
            for my $s ($key, substr($key, 3, 30)) {
                $leaks++ if index($plain, $s) >= 0;
            }
        }
    }
    is($leaks, 0, 'no key in any Redis key name, DUMP or value');
};

subtest 'options: --redis-prefix, --db, APIKEY_REDIS, unix socket' => sub {
    my $k = apikey_json('--redis-prefix', 'myapp:', '--db', '2', 'create',
        '--name', 'P', '--org', 'o1');
    my $c = $redis->connect;
    $c->cmd('SELECT', 2);
    is($c->cmd('HGET', 'myapp:' . sha256_hex($k->{key}), 'id'), $k->{id},
        'the record under the prefix, in db 2');
    ok($c->cmd('SISMEMBER', 'myapp:ids', $k->{id}), 'the prefixed index');
    $c->close;
    is_deeply([map { $_->{id} } @{ apikey_json('--redis-prefix', 'myapp:',
        '--db', '2', 'list') }], [$k->{id}], 'list with the same options');

    my $r = apikey({ no_redis => 1, env => { APIKEY_REDIS => $redis->addr } },
        '--redis-prefix', 'myapp:', '--db', '2', 'show', $k->{id});
    is($r->{code}, 0, 'APIKEY_REDIS names the server');
};

subtest 'Redis unreachable: exit 1 with one line' => sub {
    my $port = free_port();
    my $r = apikey({ no_redis => 1 }, '--redis', "127.0.0.1:$port", 'list');
    is($r->{code}, 1, 'exit 1');
    is($r->{err}, "apikey: cannot connect to Redis at 127.0.0.1:$port: "
        . "Connection refused\n", 'one clear line on stderr');
    is($r->{out}, '', 'nothing on stdout');

    $r = apikey({ no_redis => 1 }, '--redis', 'unix:' . test_dir()
        . '/no.sock', 'create', '--name', 'x');
    is($r->{code}, 1, 'a missing unix socket: exit 1');
    is(scalar(() = $r->{err} =~ /\n/g), 1, 'one line');
    unlike($r->{out}, qr/ak_/, 'no key printed when nothing was stored');
};

subtest 'Redis errors: exit 1 with one line' => sub {
    my $locked = start_redis(password => 'adminpw');
    my $dir = test_dir();
    open(my $fh, '>', "$dir/wrong.pw") or die;
    print {$fh} "wrong\n";
    close $fh;
    my $r = apikey({ no_redis => 1 }, '--redis', $locked->addr,
        '--password-file', "$dir/wrong.pw", 'list');
    is($r->{code}, 1, 'a wrong password: exit 1');
    like($r->{err}, qr/^apikey: Redis: WRONGPASS[^\n]*\n\z/,
        'a wrong password: the Redis error in one line');

    $r = apikey({ no_redis => 1 }, '--redis', $locked->addr, 'list');
    is($r->{code}, 1, 'no password: exit 1');
    like($r->{err}, qr/^apikey: Redis: NOAUTH[^\n]*\n\z/, 'NOAUTH');

    $r = apikey('--password-file', "$dir/none.pw", 'list');
    is($r->{code}, 1, 'an unreadable password file: exit 1');
    like($r->{err}, qr/^apikey: --password-file: cannot open [^\n]*\n\z/,
        'an unreadable password file: one line');
};

my @usage = (
    [],
    ['frobnicate'],
    ['create'],
    ['create', '--name'],
    ['create', '--name', ''],
    ['create', '--name', "two\nlines"],
    ['create', '--name', 'x', '--expires-in', '5x'],
    ['create', '--name', 'x', '--expires-in', '0'],
    ['create', '--name', 'x', '--expires-at', 'tomorrow'],
    ['create', '--name', 'x', '--expires-at', '2001-01-01T00:00:00Z'],
    ['create', '--name', 'x', '--expires-in', '1h', '--expires-at',
        '2099-01-01T00:00:00Z'],
    ['create', '--name', 'x', '--prefix', 'ak'],
    ['create', '--name', 'x', '--prefix', 'abcdefghijklmnop_'],
    ['create', '--name', 'x', '--org', 'two words'],
    ['create', '--name', 'x', '--scope', "bad\tscope"],
    ['create', '--name', 'x', '--grace', '1h'],
    ['create', '--name', 'x', 'extra'],
    ['create', '--name', 'x', '--rate', '10r/h'],
    ['create', '--name', 'x', '--rate', '0r/s'],
    ['create', '--name', 'x', '--rate', '10'],
    ['create', '--name', 'x', '--burst', '-1'],
    ['create', '--name', 'x', '--burst', 'many'],
    ['revoke', 'k_x', '--rate', '1r/s'],
    ['list', '--name', 'x'],
    ['list', '--nope'],
    ['list', '--json=yes'],
    ['show'],
    ['show', 'a', 'b'],
    ['update', 'k_x'],
    ['update', 'k_x', '--org', 'o'],
    ['update', 'k_x', '--expires-in', '1h', '--no-expiry'],
    ['revoke'],
    ['rotate', 'k_x', '--grace', 'soon'],
    ['verify'],
    ['--db', 'x', 'list'],
    ['--db', '-1', 'list'],
    ['--redis', 'host:99999', 'list'],
    ['--user', 'u', 'list'],
    ['--name', 'x', '--name', 'y', 'create'],
);

for my $args (@usage) {
    my $r = apikey(@$args);
    my $what = "apikey @$args";
    $what =~ s/\n/\\n/g;
    is($r->{code}, 2, "$what: exit 2");
    like($r->{err}, qr/^apikey: [^\n]+\n\nusage: apikey /,
        "$what: one line, then the usage");
    is($r->{out}, '', "$what: nothing on stdout");
}

subtest '--help and help print the usage and exit 0' => sub {
    for my $args (['--help'], ['-h'], ['help'], ['create', '--help']) {
        my $r = apikey(@$args);
        is($r->{code}, 0, "@$args: exit 0");
        like($r->{out}, qr/^usage: apikey /, "@$args: usage on stdout");
    }
};

subtest 'a usage error never touches Redis' => sub {
    my $before = $redis->calls('hset');
    apikey('create', '--name', 'x', '--expires-in', 'never');
    is($redis->calls('hset'), $before, 'no HSET');
};

subtest 'list of 10,000 keys takes well under a second' => sub {
    $redis->cmd('FLUSHALL');
    my $c = $redis->connect;
    my $n = 10000;
    my $batch = '';
    for my $i (1 .. $n) {
        my $h = sha256_hex("bulk-token-$i");
        my $id = sprintf('k_bulk%07d', $i);
        $batch .= join '', map { resp_command(@$_) }
            ['HSET', "apikey:$h", id => $id, name => "Bulk $i",
                org => 'o' . ($i % 10), scopes => 'read:people',
                expires_at => 0, created_at => 1700000000 + $i,
                hint => 'abcd'],
            ['SET', "apikey:id:$id", $h],
            ['SADD', 'apikey:ids', $id];
        if ($i % 500 == 0 || $i == $n) {
            $c->send_raw($batch);
            $batch = '';
            $c->read_reply for 1 .. ($i % 500 == 0 ? 500 : $n % 500) * 3;
        }
    }
    $c->close;

    my $t0 = time;
    my $r = apikey('list');
    my $took = time - $t0;
    is($r->{code}, 0, 'exit 0');
    is(scalar(() = $r->{out} =~ /\n/g), $n + 1, "$n rows and a header");
    cmp_ok($took, '<', 1, sprintf('took %.3f s (table)', $took));

    $t0 = time;
    $r = apikey('list', '--json');
    $took = time - $t0;
    cmp_ok($took, '<', 1, sprintf('took %.3f s (JSON)', $took));
    is(scalar(@{ $json->decode($r->{out}) }), $n, "$n keys in JSON");
};

done_testing();
