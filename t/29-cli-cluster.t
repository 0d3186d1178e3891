# The apikey tool on a Redis Cluster (--cluster host:port,...): three
# primaries with a replica each.  Keys spread over every primary; create,
# list, show, update, rotate, revoke and verify work through any seed; a
# stale slot map is corrected by -MOVED, a slot being migrated is followed
# through -ASK, a dead first seed is passed over, TLS and an ACL user
# reach every node; a create whose record write is refused leaves no
# usable key, and list still works; hostile replies are bounded.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Test::ClusterCLI;
use ApiKey::Test::Proc qw(free_port);
use ApiKey::Test::RESP qw(resp_array resp_bulk resp_int resp_error);
use ApiKey::Test::TLS;

my $dir = test_dir();

sub write_file {
    my ($name, $content) = @_;
    open(my $fh, '>', "$dir/$name") or die "$name: $!";
    print {$fh} $content;
    close $fh;
    return "$dir/$name";
}

my $pki = ApiKey::Test::TLS->new;
my $c = ApiKey::Test::ClusterCLI->start(tls => $pki,
    users => ['nohset on >hpw ~* &* +@all -hset -del -srem',
        'apikey on >apw ~apikey:* &* +@all']);

sub apikey { return run_cli('--cluster', $c->seed, @_) }

sub apikey_json { return run_cli_json('--cluster', $c->seed, @_) }

sub is_record { return $_[0] =~ /^apikey:[0-9a-f]{64}$/ }

my $N = 200;
my (@keys, %by_id);

subtest "$N keys made through one seed" => sub {
    for my $i (1 .. $N) {
        my $k = apikey_json('create', '--name', "Key $i",
            ($i % 4 == 0 ? ('--org', 'acme') : ()),
            ($i % 5 == 0 ? ('--expires-in', '30d') : ()),
            '--scope', 'read:people');
        push @keys, $k;
        $by_id{ $k->{id} } = $k;
    }
    is(scalar(keys %by_id), $N, "$N distinct ids");

    my @records = grep { is_record($_) } $c->keys;
    is(scalar(@records), $N, "$N records in the cluster");
    for my $p ($c->primaries) {
        my $n = grep { is_record($_) } @{ $p->cmd('KEYS', '*') };
        ok($n > 0, 'primary ' . $p->addr . " holds records ($n)");
    }
};

subtest 'list reads every key from every node' => sub {
    my $list = apikey_json('list');
    is(scalar(@$list), $N, "all $N listed");
    is_deeply([sort map { $_->{id} } @$list], [sort keys %by_id],
        'the ids made');
    my $acme = apikey_json('list', '--org', 'acme');
    is(scalar(@$acme), $N / 4, 'list --org: the organisation\'s keys');
};

subtest 'show, verify, update, rotate, revoke' => sub {
    my $k = $keys[4];
    my $show = apikey_json('show', $k->{id});
    is($show->{name}, 'Key 5', 'show');
    is($show->{expires_at}, $k->{expires_at}, 'with its expiry');
    is(apikey_json('verify', $k->{key})->{result}, 'ok', 'verify');

    my $u = apikey_json('update', $k->{id}, '--name', 'Renamed',
        '--expires-in', '60d');
    is($u->{name}, 'Renamed', 'update');
    my $hash = key_hash($k->{key});
    my $ttl = $c->owner($c->slot($hash))->cmd('TTL', $hash);
    my $id_ttl = $c->owner($c->slot("apikey:id:$k->{id}"))
        ->cmd('TTL', "apikey:id:$k->{id}");
    ok($ttl > 60 * 86400 && $id_ttl >= $ttl,
        "the record's TTL follows, the id index's no shorter ($ttl, $id_ttl)");

    my $r = apikey_json('rotate', $k->{id}, '--grace', '0');
    push @keys, $r;
    like($r->{key}, qr/^ak_/, 'rotate prints the new key');
    is(apikey_json('verify', $r->{key})->{result}, 'ok', 'which verifies');
    is(apikey_json('verify', $k->{key})->{result}, 'revoked',
        'the old one is revoked');
    is(apikey_json('show', $k->{id})->{replaced_by}, $r->{id},
        'and points to the new one');

    my $v = $keys[5];
    is(apikey_json('revoke', $v->{id})->{state}, 'revoked', 'revoke');
    is(apikey_json('verify', $v->{key})->{result}, 'revoked',
        'verify: revoked');
    $ttl = $c->owner($c->slot("apikey:id:$v->{id}"))
        ->cmd('TTL', "apikey:id:$v->{id}");
    ok($ttl > 0 && $ttl <= 7 * 86400, "the id index expires with it ($ttl)");
};

subtest 'a slot moved to another primary is followed' => sub {
    my $k = $keys[10];
    my $hash = key_hash($k->{key});
    my $slot = $c->slot($hash);
    my $from = $c->owner($slot);
    my ($to) = grep { $_ != $from } $c->primaries;
    $c->migrate($slot, $to);
    is($c->owner($slot), $to, "slot $slot moved");
    is($to->cmd('HGET', $hash, 'id'), $k->{id}, 'with the record');

    is(apikey_json('show', $k->{id})->{name}, 'Key 11', 'show finds it');
    is(apikey_json('update', $k->{id}, '--scope', 'write:people')
        ->{scopes}[0], 'write:people', 'update writes it');
    is($to->cmd('HGET', $hash, 'scopes'), 'write:people',
        'on the new owner');
};

# a seed whose map is stale: every slot on one primary; the others answer
# -MOVED, which the tool follows and learns from
subtest '-MOVED is followed' => sub {
    my ($one, @other) = $c->primaries;
    my $fake = start_fake_redis(handler => sub {
        my ($cmd) = @_;
        return undef unless uc $cmd->[0] eq 'CLUSTER';
        return resp_array(resp_array(resp_int(0), resp_int(16383),
            resp_array(resp_bulk('127.0.0.1'), resp_int($one->port),
                resp_bulk('x' x 40))));
    });
    my $moved = sub { ($one->info('errorstats')->{errorstat_MOVED} // '')
        =~ /count=(\d+)/ ? $1 : 0 };
    my $before = $moved->();

    my $r = run_cli_json('--cluster', '127.0.0.1:' . $fake->port, 'list');
    is(scalar(@$r), scalar(@keys), 'list through the stale map: every key');
    ok($moved->() > $before, 'after -MOVED from ' . $one->addr . ' ('
        . ($moved->() - $before) . ')');

    my $k = run_cli_json('--cluster', '127.0.0.1:' . $fake->port, 'create',
        '--name', 'Via a stale map', '--org', 'acme');
    is(apikey_json('verify', $k->{key})->{result}, 'ok',
        'a key created through it verifies');
    push @keys, $k;
    $fake->stop;
};

# the slot half-way through a migration: the keys are on the target, the
# source answers -ASK
subtest '-ASK is followed' => sub {
    my $k = $keys[20];
    my $hash = key_hash($k->{key});
    my $slot = $c->slot($hash);
    my $from = $c->owner($slot);
    my ($to) = grep { $_ != $from } $c->primaries;
    $c->migrate($slot, $to, start => 1);
    is_deeply($from->cmd('KEYS', $hash), [], 'the record left the source');
    is($c->owner($slot), $from, 'which still owns the slot');

    is(apikey_json('show', $k->{id})->{name}, 'Key 21', 'show finds it');
    is(apikey_json('verify', $k->{key})->{result}, 'ok', 'verify too');

    my $ask = ($from->info('errorstats')->{errorstat_ASK} // '')
        =~ /count=(\d+)/ ? $1 : 0;
    ok($ask > 0, "after -ASK ($ask)");

    # a transaction cannot follow -ASK: it fails whole, nothing changed
    my $r = apikey('revoke', $k->{id});
    if ($r->{code}) {
        like($r->{err}, qr/ASK|TRYAGAIN/, 'a write in the migrating slot '
            . 'fails, saying why');
        is(apikey_json('verify', $k->{key})->{result}, 'ok',
            'and the key is unchanged');
    } else {
        pass('a write in the migrating slot succeeded');
        pass('(Redis ran it on the source)');
    }

    $c->migrate($slot, $to);
    is(apikey_json('revoke', $k->{id})->{state}, 'revoked',
        'revoke, the migration done');
};

subtest 'a dead first seed is passed over' => sub {
    my $dead = '127.0.0.1:' . free_port();
    my $r = run_cli('--cluster', "$dead," . $c->seed, 'list', '--org',
        'acme');
    is($r->{code}, 0, 'the next seed answers');

    $r = run_cli('--cluster', $dead, 'list');
    is($r->{code}, 1, 'none alive: exit 1');
    like($r->{err}, qr/^apikey: cannot read the slot map of the Redis Cluster at \Q$dead\E: cluster node \Q$dead\E: /,
        'saying which');
};

subtest 'over TLS, with an ACL user' => sub {
    my @tls = ('--cluster', $c->tls_seed, '--tls', '--tls-ca',
        $pki->dir . '/ca.crt', '--user', 'apikey', '--password-file',
        write_file('apikey.pw', "apw\n"));
    my $r = run_cli_json(@tls, 'list');
    is(scalar(@$r), scalar(@keys), 'list: every key, from every node');
    my $k = run_cli_json(@tls, 'create', '--name', 'Over TLS', '--org',
        'acme');
    push @keys, $k;
    is(run_cli_json(@tls, 'revoke', $k->{id})->{state}, 'revoked',
        'create and revoke');
    is(apikey_json('verify', $k->{key})->{result}, 'revoked',
        'as the plain port sees it');

    $r = run_cli('--cluster', $c->tls_seed, '--tls', '--tls-ca',
        $pki->dir . '/other.crt', 'list');
    is($r->{code}, 1, 'a certificate the CA did not sign: exit 1');
    like($r->{err}, qr/certificate verify failed/, 'saying so');
};

# the record is the last write of a create: refused (and the index entries
# not taken back, DEL and SREM refused too), no key is usable, and list
# leaves the entry out
subtest 'a half-failed create leaves no usable key; list works' => sub {
    my @user = ('--user', 'nohset', '--password-file',
        write_file('nohset.pw', "hpw\n"));
    my $records = grep { is_record($_) } $c->keys;

    my $r = apikey(@user, 'create', '--name', 'Half', '--org', 'half');
    is($r->{code}, 1, 'create fails: exit 1');
    like($r->{err}, qr/NOPERM/, 'and says why');
    unlike($r->{out}, qr/ak_/, 'no key printed');
    is(scalar(grep { is_record($_) } $c->keys), $records,
        'no record written');

    my $org = 'apikey:org:half';
    my ($id) = @{ $c->owner($c->slot($org))->cmd('SMEMBERS', $org) };
    my $iname = "apikey:id:$id";
    ok(defined $id && $c->owner($c->slot($iname))->cmd('EXISTS', $iname),
        'its index entries are left');

    $r = apikey(@user, 'list', '--org', 'half', '--json');
    is($r->{code}, 0, 'list by the same user works');
    is($r->{out}, "[]\n", 'and leaves it out');
    $r = apikey(@user, 'show', $id);
    like($r->{err}, qr/no key with id/, 'show: no key with that id');

    is_deeply(apikey_json('list', '--org', 'half'), [],
        'list by another user leaves it out');
    is($c->owner($c->slot($iname))->cmd('EXISTS', $iname), 0,
        'and drops it');
    is(scalar(@{ apikey_json('list') }), scalar(@keys),
        'the others are all there');
};

# fake nodes: each sends every command to the other, or a map that is none
subtest 'hostile cluster replies are bounded' => sub {
    my %port = (a => free_port(), b => free_port());
    my $map = sub {
        resp_array(resp_array(resp_int(0), resp_int(16383),
            resp_array(resp_bulk('127.0.0.1'), resp_int($port{a}))));
    };
    my $moving = sub {
        my ($to) = @_;
        return sub {
            my ($cmd) = @_;
            return $map->() if uc $cmd->[0] eq 'CLUSTER';
            return resp_error("MOVED 1 127.0.0.1:$port{$to}");
        };
    };
    my $a = start_fake_redis(port => $port{a}, handler => $moving->('b'));
    my $b = start_fake_redis(port => $port{b}, handler => $moving->('a'));

    my $r = run_cli('--cluster', '127.0.0.1:' . $a->port, 'show', 'k_x');
    is($r->{code}, 1, 'a -MOVED loop: exit 1');
    like($r->{err}, qr/too many redirections/, 'saying so')
        or diag $r->{err};
    my $sent = grep { uc $_->[0] ne 'CLUSTER' } $a->commands, $b->commands;
    ok($sent <= 6, "the command was sent a bounded number of times ($sent)");
    $a->stop;
    $b->stop;

    for my $bad (resp_array(), resp_array(resp_array(resp_int(5),
            resp_int(1))), resp_bulk('no'),
        resp_array(resp_array(resp_int(0), resp_int(99999),
            resp_array(resp_bulk('127.0.0.1'), resp_int(1)))))
    {
        my $f = start_fake_redis(handler => sub {
            uc $_[0][0] eq 'CLUSTER' ? $bad : undef });
        $r = run_cli('--cluster', '127.0.0.1:' . $f->port, 'list');
        is($r->{code}, 1, 'a CLUSTER SLOTS reply that is no map: exit 1');
        like($r->{err}, qr/no slot map in its CLUSTER SLOTS reply/,
            'saying so');
        $f->stop;
    }
};

subtest 'usage errors' => sub {
    my $r = run_cli('--cluster', $c->seed, '--redis', $c->seed, 'list');
    is($r->{code}, 2, '--cluster with --redis: exit 2');
    like($r->{err}, qr/--cluster excludes --redis and --sentinel/, 'says so');
    $r = run_cli('--cluster', $c->seed, '--db', 1, 'list');
    is($r->{code}, 2, '--cluster with --db: exit 2');
    like($r->{err}, qr/only database 0/, 'says so');
    $r = run_cli('--cluster', 'a:b:c', 'list');
    is($r->{code}, 2, 'a bad seed: exit 2');
    like($r->{err}, qr/invalid --cluster "a:b:c"/, 'says so');
    $r = run_cli('--cluster', $c->seed, '--tls-ca', '/x', 'list');
    is($r->{code}, 2, '--tls-ca without --tls: exit 2');
};

done_testing();
