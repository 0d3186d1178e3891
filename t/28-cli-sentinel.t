# The apikey tool behind Redis Sentinel (--sentinel host:port,...
# --sentinel-master NAME): it asks the sentinels in order, writes to the
# node they name once that node says ROLE master, passes over a dead
# sentinel or one naming a replica, follows a failover, and runs the
# Sentinel + TLS example of docs/cli.md as printed.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Test::FakeRedis;
use ApiKey::Test::Proc qw(free_port);
use ApiKey::Test::RESP qw(resp_array resp_bulk resp_nil_array);
use ApiKey::Test::SentinelCLI;
use ApiKey::Test::TLS;

my $dir = test_dir();

sub write_file {
    my ($name, $content) = @_;
    open(my $fh, '>', "$dir/$name") or die "$name: $!";
    print {$fh} $content;
    close $fh;
    return "$dir/$name";
}

my $spw = write_file('sentinel.pw', "sentinel-pw\n");

my $d = ApiKey::Test::SentinelCLI->start(sentinel_password => 'sentinel-pw');

sub sentinel_args {
    my ($list) = @_;
    return ('--sentinel', $list // $d->sentinel_list, '--sentinel-master',
        'mymaster', '--sentinel-password-file', $spw);
}

sub apikey { return run_cli(sentinel_args(), @_) }

sub apikey_json { return run_cli_json(sentinel_args(), @_) }

sub record_id {
    my ($node, $key) = @_;
    return $d->node_cmd($node, 'HGET', key_hash($key), 'id');
}


subtest 'writes go to the primary the sentinels name' => sub {
    my $primary = $d->primary;
    is($d->role($primary), 'master', 'the named node is the primary');
    my $k = apikey_json('create', '--name', 'Via Sentinel');
    is(record_id($primary, $k->{key}), $k->{id}, 'the record is on it');
    is(apikey_json('verify', $k->{key})->{result}, 'ok', 'verify reads it');
    is(apikey_json('revoke', $k->{id})->{state}, 'revoked', 'revoke');
};

subtest 'a dead first sentinel is passed over' => sub {
    my $dead = '127.0.0.1:' . free_port();
    my $r = run_cli(sentinel_args("$dead," . $d->sentinel_list), 'list');
    is($r->{code}, 0, 'the next sentinel answers');

    $r = run_cli(sentinel_args($dead), 'list');
    is($r->{code}, 1, 'none alive: exit 1');
    like($r->{err}, qr/^apikey: cannot connect to sentinel \Q$dead\E: /,
        'saying which');
};

subtest 'the sentinels\' password' => sub {
    my $r = run_cli('--sentinel', $d->sentinel_list, '--sentinel-master',
        'mymaster', 'list');
    is($r->{code}, 1, 'without --sentinel-password-file: exit 1');
    like($r->{err}, qr/^apikey: sentinel [^\n]*: Redis: NOAUTH/,
        'the sentinel refuses');
};

subtest 'a node the sentinels name is used only if ROLE says master' => sub {
    my ($replica) = grep { $d->role($_) eq 'slave' } @{ $d->{nodes} };
    my $fake = ApiKey::Test::FakeRedis->start(handler => sub {
        my ($cmd) = @_;
        return undef unless uc $cmd->[0] eq 'SENTINEL';
        return resp_nil_array() if $cmd->[2] ne 'mymaster';
        return resp_array(resp_bulk('127.0.0.1'),
            resp_bulk($replica->{data_port}));
    });
    my $stale = '127.0.0.1:' . $fake->port;
    my $before = $d->node_cmd($replica, 'DBSIZE');

    my $r = run_cli(sentinel_args($stale), 'create', '--name', 'Never');
    is($r->{code}, 1, 'a sentinel naming a replica alone: exit 1');
    my $named = "127.0.0.1:$replica->{data_port} named by sentinel $stale";
    like($r->{err}, qr/^apikey: the primary \Q$named\E: it is not a primary/,
        'saying so');
    like($r->{err}, qr/\(ROLE slave\)$/, 'and what it is');
    is($d->node_cmd($replica, 'DBSIZE'), $before, 'nothing was written');

    my $k = run_cli_json(sentinel_args("$stale," . $d->sentinel_list),
        'create', '--name', 'Past the stale sentinel');
    is(record_id($d->primary, $k->{key}), $k->{id},
        'the next sentinel names the primary: written there');

    $r = run_cli('--sentinel', $stale, '--sentinel-master', 'other',
        'list');
    like($r->{err}, qr/^apikey: sentinel \Q$stale\E knows no master named /,
        'a name the sentinel does not monitor');
    $fake->stop;
};

subtest 'after SENTINEL FAILOVER, writes go to the new primary' => sub {
    my $old = $d->primary;
    my $k = apikey_json('create', '--name', 'Before the failover',
        '--scope', 'read:people');

    my $new = $d->node_by_port($d->failover);
    isnt($new, $old, 'the sentinels name the other node');

    my $n = apikey_json('create', '--name', 'After the failover');
    is(record_id($new, $n->{key}), $n->{id},
        'a new key is written to the new primary');
    is(apikey_json('update', $k->{id}, '--scope', 'write:people')
        ->{scopes}[0], 'write:people', 'an older key is updated there');
    is(apikey_json('revoke', $k->{id})->{state}, 'revoked', 'and revoked');
    ok($d->node_cmd($new, 'HGET', key_hash($k->{key}), 'revoked'),
        'the revocation is on the new primary');
};

subtest 'a sentinel down' => sub {
    my $list = $d->sentinel_list;
    $d->stop_sentinel(0);
    my $r = run_cli(sentinel_args($list), 'list');
    is($r->{code}, 0, 'the list with the dead sentinel first still works');
};

subtest 'usage errors' => sub {
    for my $c (
        [['--sentinel', '127.0.0.1:1', 'list'],
            qr/--sentinel and --sentinel-master go together/],
        [['--sentinel-master', 'm', 'list'],
            qr/--sentinel and --sentinel-master go together/],
        [['--sentinel', '127.0.0.1:1', '--sentinel-master', 'm',
          '--redis', '127.0.0.1:6379', 'list'],
            qr/--redis and --sentinel exclude each other/],
        [['--sentinel', '127.0.0.1:1,', '--sentinel-master', 'm', 'list'],
            qr/invalid --sentinel/],
        [['--sentinel', '127.0.0.1:1', '--sentinel-master', 'm',
          '--tls-ca', '/x', 'list'],
            qr/the --tls-\* options need --tls with --sentinel/],
        [['--sentinel', '127.0.0.1:1', '--sentinel-master', 'm',
          '--sentinel-user', 'u', 'list'],
            qr/--sentinel-user needs --sentinel-password-file/])
    {
        my $r = run_cli(@{ $c->[0] });
        is($r->{code}, 2, "@{ $c->[0] }: exit 2");
        like($r->{err}, qr/^apikey: $c->[1]/, "@{ $c->[0] }: why");
    }
};


# The example of docs/cli.md, with this test's addresses and files
sub docs_example {
    open(my $fh, '<', project_root() . '/docs/cli.md') or die $!;
    local $/;
    my $md = <$fh>;
    my $start = qr/apikey --sentinel 10\.0\.0\.1:/;
    my ($cmd) = $md =~ /^ {4}\$ ($start.*?\n)(?! {6})/ms
        or die 'docs/cli.md has no Sentinel + TLS example';
    $cmd =~ s/\\\n\s*/ /g;
    my @words;
    push @words, defined $1 ? $1 : $2 while $cmd =~ /"([^"]*)"|(\S+)/g;
    return @words;
}

subtest 'the Sentinel + TLS example of docs/cli.md works as printed' => sub {
    my $pki = ApiKey::Test::TLS->new;
    my $t = ApiKey::Test::SentinelCLI->start(tls => $pki, password => 'pw');
    my $pw = write_file('redis.password', "pw\n");
    my %local = ('10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379'
            => $t->sentinel_list,
        '/etc/ssl/redis-ca.pem' => $pki->dir . '/ca.crt',
        'redis.internal' => 'redis.test',
        '/etc/apikey/redis.password' => $pw);

    my @args = docs_example();
    is(shift @args, 'apikey', 'the example runs apikey');
    is(scalar(grep { exists $local{$_} } @args), 4,
        'with the addresses and files that this test replaces');
    @args = map { $local{$_} // $_ } @args;

    my $r = run_cli(@args);
    is($r->{code}, 0, 'it runs') or diag($r->{err});
    my ($key) = $r->{out} =~ /^key\s+(\S+)/m;
    my $primary = $t->primary;
    my $c = $primary->connect;
    $c->cmd('SELECT', 2);
    is($c->cmd('HGET', key_hash($key // ''), 'scopes'), 'read:people',
        'the key is in database 2 of the primary, over TLS');
    is($primary->cmd('EXISTS', key_hash($key // '')), 0,
        'not in database 0');

    # the block of docs/directives.md as printed, with the same swaps
    my ($block) = docs_block();
    ok($block, 'docs/directives.md has the Sentinel + TLS block');
    my $lines = join '', map { "        sentinel $_;\n" }
        split /,/, $t->sentinel_list;
    $block =~ s/^ *sentinel +10\.0\.0\.1:26379;\n(?: *sentinel +10\.0\.0\.\d:26379;\n)*/$lines/m;
    $block =~ s/password=secret/password=pw/;
    $block =~ s/\Q$_\E/$local{$_}/g for grep { m{^/|^redis\.} } keys %local;
    my $nginx = start_nginx(http => $block . <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location /api/ {
            apikey        on;
            apikey_redis  keys;
            add_header    X-Key-Id $apikey_id;
            proxy_pass    http://%%ECHO%%;
        }
    }
EOF
    my $res = $nginx->get('/api/x', Authorization => 'Bearer ' . ($key // ''));
    is($res->status . ' ' . ($res->header('x-key-id') // ''),
        '200 ' . ($r->{out} =~ /^id\s+(\S+)/m ? $1 : '?'),
        'nginx with the block lets the key in');
    is($nginx->get('/api/x', Authorization => 'Bearer ' . new_token())
        ->status, 401, 'and refuses an unknown one');
    $nginx->stop;
};

# The Sentinel + TLS block of docs/directives.md
sub docs_block {
    open(my $fh, '<', project_root() . '/docs/directives.md') or die $!;
    local $/;
    my $md = <$fh>;
    return $md =~ /^( {4}apikey_redis_upstream keys \{\n.*?^ {4}\}\n)/ms;
}

done_testing();
