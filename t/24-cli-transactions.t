# What the apikey tool leaves in Redis when a write fails: nothing usable
# half-made.  An index key of the wrong type or a Redis user without a
# command makes Redis refuse one write: the tool takes a new key back; a
# transaction of one record's fields gets DISCARD then, never EXEC.  A new
# key that was stored is printed.

use lib 't/lib';
use ApiKey::Test;


my $redis = start_redis(password => 'adm', users => [
    'noexpire on >npw ~* &* +@all -expireat',
    'nohset on >hpw ~* &* +@all -hset -del -srem']);

sub write_file {
    my ($path, $content) = @_;
    open(my $fh, '>', $path) or die "$path: $!";
    print {$fh} $content;
    close $fh;
    return $path;
}

my $pwfile = write_file(test_dir() . '/admin.pw', "adm\n");

my $nginx = start_nginx(redis => $redis, http => <<"EOF");
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%% password=adm;
        add_header X-Status \$apikey_status always;

        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

sub apikey {
    return run_cli({ redis => $redis }, '--password-file', $pwfile, @_);
}

sub apikey_json {
    my $r = apikey(@_, '--json');
    die "apikey @_ failed ($r->{code}): $r->{err}" if $r->{code};
    return JSON::PP->new->decode($r->{out});
}

sub status {
    my ($key) = @_;
    my $res = $nginx->get('/api/x', Authorization => "Bearer $key");
    return $res->status . ' ' . ($res->header('x-status') // '(none)');
}

# every key and its content, to compare before and after a failure
sub snapshot {
    my %s;
    for my $k (sort @{ $redis->cmd('KEYS', 'apikey:*') }) {
        my $type = $redis->cmd('TYPE', $k);
        $s{$k} = $type eq 'string' ? $redis->cmd('GET', $k)
            : $type eq 'set' ? join(' ', sort @{ $redis->cmd('SMEMBERS', $k) })
            : $type eq 'hash' ? { @{ $redis->cmd('HGETALL', $k) } }
            : $type;
    }
    return \%s;
}

# breaks one index key for the duration of a block
sub with_broken_index {
    my ($name, $code) = @_;
    my $saved = $redis->cmd('TYPE', $name) eq 'set'
        ? $redis->cmd('SMEMBERS', $name) : [];
    $redis->cmd('DEL', $name);
    $redis->cmd('SET', $name, 'not a set');
    $code->();
    $redis->cmd('DEL', $name);
    $redis->cmd('SADD', $name, @$saved) if @$saved;
}

my @keys;

my $old = apikey_json('create', '--name', 'Old', '--org', 'acme',
    '--scope', 'read:people');
push @keys, $old->{key};
is(status($old->{key}), '200 ok', 'a key to rotate works');


for my $index ('apikey:ids', 'apikey:org:acme') {

    subtest "create with $index of the wrong type leaves nothing" => sub {
        with_broken_index($index, sub {
            my $before = snapshot();
            my $r = apikey('create', '--name', 'New', '--org', 'acme');
            is($r->{code}, 1, 'create fails: exit 1');
            like($r->{err}, qr/WRONGTYPE/, 'and says why');
            unlike($r->{out}, qr/ak_/, 'no key printed');
            is_deeply(snapshot(), $before, 'Redis holds what it held');
        });
    };

    subtest "rotate --grace 0 with $index of the wrong type leaves the "
        . 'old key working' => sub {
        with_broken_index($index, sub {
            my $before = snapshot();
            my $r = apikey('rotate', $old->{id}, '--grace', '0');
            is($r->{code}, 1, 'rotate fails: exit 1');
            like($r->{err}, qr/WRONGTYPE/, 'and says why');
            unlike($r->{out}, qr/ak_/, 'no key printed');
            is_deeply(snapshot(), $before, 'Redis holds what it held');
            is(status($old->{key}), '200 ok', 'the old key still works');
            my $show = apikey_json('show', $old->{id});
            is($show->{state}, 'active', 'show: active');
            is($show->{replaced_by}, undef, 'show: not replaced');
        });
    };
}

subtest 'create with a command refused takes the new key back' => sub {
    my $before = snapshot();
    my $r = run_cli({ redis => $redis }, '--user', 'noexpire',
        '--password-file', write_file(test_dir() . '/user.pw', "npw\n"),
        'create', '--name', 'Refused', '--org', 'acme', '--expires-in', '1d');
    is($r->{code}, 1, 'create fails: exit 1');
    like($r->{err}, qr/NOPERM/, 'and says why');
    unlike($r->{out}, qr/ak_/, 'no key printed');
    is_deeply(snapshot(), $before, 'Redis holds what it held');
};

subtest 'a command refused while queueing: DISCARD, not EXEC' => sub {
    my $before = snapshot();
    my $stats = $redis->commandstats;
    my $r = run_cli({ redis => $redis }, '--user', 'noexpire',
        '--password-file', write_file(test_dir() . '/user.pw', "npw\n"),
        'revoke', $old->{id});
    is($r->{code}, 1, 'revoke fails: exit 1');
    like($r->{err}, qr/NOPERM/, 'and says why');
    my $after = $redis->commandstats;
    is(($after->{discard}{calls} // 0) - ($stats->{discard}{calls} // 0), 1,
        'DISCARD was sent');
    is(($after->{exec}{calls} // 0) + ($after->{exec}{rejected_calls} // 0)
        + ($after->{exec}{failed_calls} // 0),
        ($stats->{exec}{calls} // 0) + ($stats->{exec}{rejected_calls} // 0)
        + ($stats->{exec}{failed_calls} // 0), 'EXEC was not');
    is_deeply(snapshot(), $before, 'Redis holds what it held');
    is(status($old->{key}), '200 ok', 'the key still works');
};

# the record is the last write of a create: refused, with the indexes
# left behind (taking them back is refused too), no key is usable, and
# list leaves the entry out, as the user who cannot prune it or another
subtest 'create whose record is refused leaves no usable key; list works'
    => sub {
    my $pw = write_file(test_dir() . '/nohset.pw', "hpw\n");
    my @user = ('--user', 'nohset', '--password-file', $pw);
    my $records = grep { /^apikey:[0-9a-f]{64}$/ }
        @{ $redis->cmd('KEYS', 'apikey:*') };
    my $r = run_cli({ redis => $redis }, @user, 'create', '--name', 'Half',
        '--org', 'half', '--json');
    is($r->{code}, 1, 'create fails: exit 1');
    like($r->{err}, qr/NOPERM/, 'and says why');
    unlike($r->{out}, qr/ak_/, 'no key printed');
    is(scalar(grep { /^apikey:[0-9a-f]{64}$/ }
        @{ $redis->cmd('KEYS', 'apikey:*') }), $records, 'no record written');
    my ($id) = @{ $redis->cmd('SMEMBERS', 'apikey:org:half') };
    ok(defined $id && $redis->cmd('EXISTS', "apikey:id:$id"),
        'its index entries are left');

    $r = run_cli({ redis => $redis }, @user, 'list', '--org', 'half',
        '--json');
    is($r->{code}, 0, 'list by the same user works');
    is($r->{out}, "[]\n", 'and leaves it out');
    $r = run_cli({ redis => $redis }, @user, 'show', $id);
    is($r->{code}, 1, 'show fails');
    like($r->{err}, qr/no key with id/, 'no key with that id');
    is_deeply(apikey_json('list', '--org', 'half'), [],
        'list by another user leaves it out');
    is($redis->cmd('EXISTS', "apikey:id:$id"), 0, 'and drops it');
    ok(!grep({ $_->{id} eq $id } @{ apikey_json('list') }),
        'it is in no list');
};

subtest 'rotate --grace 0 prints the new key it stored' => sub {
    my $r = apikey_json('rotate', $old->{id}, '--grace', '0');
    push @keys, $r->{key};
    like($r->{key}, qr/^ak_/, 'the new key is printed');
    is(status($r->{key}), '200 ok', 'the new key works');
    is(status($old->{key}), '401 revoked', 'the old key is revoked');
    is(apikey_json('show', $old->{id})->{replaced_by}, $r->{id},
        'the old key points to the new one');
};

error_log_clean($nginx, @keys);

done_testing();
