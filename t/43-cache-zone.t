# The apikey_cache zone itself: kept across reloads (the cache works again
# once the new workers subscribed, and a revocation during the reload is
# obeyed); a zone far too small for the keys in use evicts the least
# recently used entries and keeps answering every request right; keys
# whose hashes share the tree's 32-bit key stay apart; after a reload to
# another Redis database, an old worker still answering cannot fill the
# zone with records of the old one.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;

my $WORKERS = 2;
my $BOUND = 0.1;

my $redis = start_redis();

my @tokens;

sub hmgets { return $redis->calls('hmget') }

sub valid_key {
    my ($id) = @_;
    my $t = new_token();
    push @tokens, $t;
    seed_key($redis, $t, id => $id);
    return $t;
}

# Every command sent at once, then every reply read: thousands of writes
# in one round trip.
sub pipeline {
    my (@cmds) = @_;
    my $c = $redis->connect;
    $c->send_raw(join '', map { resp_command(@$_) } @cmds);
    my @r = map { $c->read_reply } @cmds;
    $c->close;
    return @r;
}

# One request for each [path, token] in turn, on 16 connections at once.
sub each_once {
    my ($nginx, @reqs) = @_;
    my $next = 0;
    my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
    my @rows = $b->run(timeout => 30,
        request => sub {
            return () if $next >= @reqs;
            my $r = $reqs[ $next++ ];
            return ($r->[0], Authorization => "Bearer $r->[1]");
        },
        until => sub { @{ $_[0] } >= @reqs });
    $b->close;
    return @rows;
}

sub describe {
    my (@rows) = @_;
    my @d = map { "$_->{status} " . ($_->{header}{'x-id'} // '-')
        . ' ' . ($_->{header}{'x-status'} // '-') }
        @rows[0 .. ($#rows < 9 ? $#rows : 9)];
    push @d, '... ' . (@rows - 10) . ' more' if @rows > 10;
    return join "\n", @d;
}


subtest 'reload: the cache works again once the new workers subscribed, '
    . 'and nothing is logged as an error' => sub {
    my $nginx = start_cached_nginx(redis => $redis, workers => $WORKERS,
        cache => 'zone=apikeys:1m', quiet => 1);
    my $t = valid_key('k_reload');
    my $doomed = valid_key('k_doomed');
    for my $n (1 .. 3) {
        my @rows = each_once($nginx, map { ['/api/x', $_] }
            ($t) x 50, ($doomed) x 50);
        is(scalar(grep { $_->{status} != 200 } @rows), 0,
            "reload $n: before, both keys let in");

        my $mark = $nginx->mark;
        my $h0 = hmgets();
        $nginx->reload;
        wait_live($nginx, $mark, undef, $WORKERS);
        @rows = each_once($nginx, map { ['/api/x', $t] } 1 .. 200);
        is(scalar(grep { $_->{status} != 200 } @rows), 0,
            "reload $n: after, the key is let in");
        cmp_ok(hmgets() - $h0, '<=', $WORKERS, "reload $n: from the cache "
            . '(' . (hmgets() - $h0) . ' HMGET for 200 requests)');
        my @bad = grep { /\[(?:error|crit|alert|emerg)\]/ }
            split /\n/, $nginx->error_log_since($mark);
        is(scalar(@bad), 0, "reload $n: no error logged")
            or diag join "\n", @bad;
    }

    # old workers may still answer when the record changes
    my $mark = $nginx->mark;
    my %old = map { $_ => 1 } $nginx->worker_pids;
    my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
    my ($hup, $done);
    my @rows = $b->run(timeout => 8,
        request => sub { ('/api/x', Authorization => "Bearer $doomed") },
        tick => sub {
            if (!$hup) {
                kill 'HUP', $nginx->master;
                $hup = time;
            } elsif (!$done && time > $hup + 0.01) {
                $redis->cmd('HSET', key_hash($doomed), 'revoked', 1);
                $done = time;
            }
        },
        until => sub { $done && time > $done + 1 });
    $b->close;
    wait_live($nginx, $mark);
    my @stale = grep { $_->{status} != 401 && $_->{sent} >= $done + $BOUND }
        @rows;
    is(scalar(@stale), 0, 'a key revoked during a reload is refused from '
        . $BOUND * 1000 . ' ms after on, by old and new workers')
        or diag describe(@stale);
    my %by = map { worker_of($_) => 1 } @rows;
    note 'answered by old workers: ' . scalar(grep { $old{$_} } keys %by)
        . ', new: ' . scalar(grep { !$old{$_} } keys %by);
    error_log_clean($nginx, @tokens);
    $nginx->stop;
};

subtest 'reload from db=1 to db=2: an old worker finishing a request does '
    . 'not fill the zone with a record of db 1' => sub {
    my $nginx = start_cached_nginx(redis => $redis, workers => 1,
        cache => 'zone=apikeys:1m', redis_args => '%%REDIS%% db=1');
    my $t = new_token();
    push @tokens, $t;
    seed_key($redis, $t, id => 'k_db1', -db => 1);
    seed_key($redis, $t, id => 'k_db2', -db => 2);
    is($nginx->get('/api/x', Authorization => "Bearer $t")->header('x-id'),
        'k_db1', 'before: the record of db 1');

    # a request whose head is still coming keeps its old worker alive
    my $slow = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $nginx->port, Proto => 'tcp', Timeout => 2)
        or die "connect: $!";
    print {$slow} "GET /api/x HTTP/1.1\r\nHost: localhost\r\n";
    $slow->flush;
    sleep 0.2;

    my %old = map { $_ => 1 } $nginx->worker_pids;
    my $mark = $nginx->mark;
    $nginx->{http} = cached_http(cache => 'zone=apikeys:1m',
        redis => '%%REDIS%% db=2');
    $nginx->_write_conf;
    kill 'HUP', $nginx->master or die "HUP: $!";
    wait_until(sub { grep { !$old{$_} } $nginx->worker_pids }, 5, 0.01)
        or die 'no new worker';
    wait_live($nginx, $mark);
    ok(scalar(grep { $old{$_} } $nginx->worker_pids), 'the old worker is '
        . 'still there');

    print {$slow} "Authorization: Bearer $t\r\n\r\n";
    $slow->flush;
    my $answer = '';
    while (sysread($slow, my $buf, 4096)) {
        $answer .= $buf;
        last if $answer =~ /\r\n\r\n/ && $answer =~ /^Connection: close/mi;
    }
    close $slow;
    my ($worker) = $answer =~ /^X-Worker: (\d+)/mi;
    my ($id) = $answer =~ /^X-Id: (\S+)/mi;
    ok($worker && $old{$worker}, 'the old worker answered it ...');
    is($id, 'k_db1', '... from db 1');

    my $c = $nginx->client;
    for my $n (1 .. 3) {
        my $r = $c->get('/api/x', Authorization => "Bearer $t");
        ok(!$old{ $r->header('x-worker') }, "request $n: a new worker "
            . 'answered ...');
        is($r->header('x-id'), 'k_db2', "... with the record of db 2");
    }
    error_log_clean($nginx, @tokens);
    $nginx->stop;
};

subtest 'keys whose hashes share the tree key stay apart' => sub {
    my $nginx = start_cached_nginx(redis => $redis, workers => 1,
        cache => 'zone=apikeys:1m');
    # found by hashing "cache-collision-N" for N up to 400000: each pair's
    # SHA-256 starts with the same 4 bytes, the rbtree key of the zone
    my @pairs = ([76465, 132970], [140574, 154977], [35872, 175423]);
    my @t = map { map { "cache-collision-$_" } @$_ } @pairs;
    for (my $i = 0; $i < @t; $i += 2) {
        is(substr(sha256_hex($t[$i]), 0, 8),
            substr(sha256_hex($t[$i + 1]), 0, 8),
            "$t[$i] and $t[$i + 1] share their first 32 bits");
    }
    push @tokens, @t;
    seed_key($redis, $t[$_], id => "k_collide$_") for 0 .. $#t;
    settle($nginx, $redis);
    my $c = $nginx->client;
    my $ids = sub {
        join ' ', map { $c->get('/api/x', Authorization => "Bearer $_")
            ->header('x-id') // '-' } @t;
    };
    my $want = join ' ', map { "k_collide$_" } 0 .. $#t;
    my $h0 = hmgets();
    is($ids->(), $want, 'each key has its own record');
    is(hmgets() - $h0, scalar(@t), 'one HMGET each');
    is($ids->(), $want, 'again, from the cache');
    is(hmgets() - $h0, scalar(@t), 'no more HMGET');
    $redis->cmd('HSET', key_hash($t[2]), 'revoked', 1);
    wait_until(sub {
        $c->get('/api/x', Authorization => "Bearer $t[2]")->status == 401
    }, 1, 0.002);
    my @s = map { $c->get('/api/x', Authorization => "Bearer $_")->status }
        @t;
    is("@s", '200 200 401 200 200 200', 'revoking one of a pair refuses '
        . 'it alone');
    is(hmgets() - $h0, scalar(@t) + 1, 'its partner is still cached');
    $nginx->stop;
};

subtest 'a full zone (32k) with 2000 keys: evicts the least recently used '
    . 'and answers every request right' => sub {
    my $nginx = start_cached_nginx(redis => $redis, workers => $WORKERS,
        cache => 'zone=tiny:32k', quiet => 1);
    my $N = 2000;
    my @keys = map { { token => new_token(), id => sprintf('k_full%04d', $_),
        name => "Key number $_ " . ('x' x ($_ % 50)) } } 1 .. $N;
    pipeline(map { ['HSET', key_hash($_->{token}), id => $_->{id},
        name => $_->{name}] } @keys);
    my @unknown = map { new_token() } 1 .. 100;
    my $hot = valid_key('k_hot');

    # requests: every key once, an unknown key every 20th, the hot key
    # every 5th
    my %want = map { $_->{token} => "200 $_->{id}" } @keys;
    $want{$_} = '401 -' for @unknown;
    $want{$hot} = '200 k_hot';
    my (@reqs, $u);
    for my $i (0 .. $#keys) {
        push @reqs, ['/api/x', $keys[$i]{token}];
        push @reqs, ['/api/x', $unknown[ $u++ % @unknown ]] if $i % 20 == 0;
        push @reqs, ['/api/x', $hot] if $i % 5 == 0;
    }
    for my $pass (1, 2) {
        my $h0 = hmgets();
        my @rows = each_once($nginx, @reqs);
        my @wrong = grep {
            my ($token) = $_->{request}[2] =~ /^Bearer (.+)$/;
            "$_->{status} " . ($_->{header}{'x-id'} || '-') ne $want{$token}
        } @rows;
        is(scalar(@rows), scalar(@reqs), "pass $pass: " . scalar(@rows)
            . ' answers');
        is(scalar(@wrong), 0, "pass $pass: each the right one") or diag
            describe(@wrong);
        my $n = hmgets() - $h0;
        cmp_ok($n, '>', $N * 0.9, "pass $pass: $n HMGET: the zone cannot "
            . 'hold them all ...');
        cmp_ok($n, '<=', $N + @unknown + $WORKERS, "pass $pass: ... but the "
            . 'hot key, used every 5th request, stays in it');
    }

    my $h0 = hmgets();
    my @recent = @keys[-20 .. -1];
    my @rows = each_once($nginx, map { ['/api/x', $_->{token}] } @recent,
        ({ token => $hot }) x 20);
    is(scalar(grep { $_->{status} != 200 } @rows), 0,
        'the last keys used and the hot key: let in ...');
    cmp_ok(hmgets() - $h0, '<=', 2, '... from the cache ('
        . (hmgets() - $h0) . ' HMGET for 40 requests): the least recently '
        . 'used were evicted');

    # revocations still land: the cached keys and evicted ones
    my @doomed = (@recent[0 .. 9], @keys[0 .. 9]);
    pipeline(map { ['HSET', key_hash($_->{token}), 'revoked', 1] } @doomed);
    my $done = time;
    my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
    @rows = $b->run(timeout => 3,
        request => sub { ('/api/x', Authorization => 'Bearer '
            . $doomed[ $_[0] % @doomed ]{token}) },
        until => sub { time > $done + 0.5 });
    $b->close;
    my @stale = grep { $_->{status} != 401 && $_->{sent} >= $done + $BOUND }
        @rows;
    ok(@rows > 40, scalar(@rows) . ' requests with 20 revoked keys');
    is(scalar(@stale), 0, 'refused from ' . $BOUND * 1000 . ' ms after the '
        . 'revocation on') or diag describe(@stale);

    @rows = each_once($nginx, map { ['/api/x', $_->{token}] }
        @keys[100 .. 199]);
    is(scalar(grep { $_->{status} != 200 } @rows), 0,
        'other keys are still let in');
    error_log_clean($nginx, @tokens, map { $_->{token} } @keys);
    my @errors = $nginx->log_lines('error');
    is(scalar(@errors), 0, 'no [error]') or diag join "\n", @errors;
};

done_testing;
