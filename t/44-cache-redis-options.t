# apikey_cache with the ways nginx reaches Redis: a password and a
# database, an ACL user, HMAC-hashed keys, a unix socket, two servers
# and two prefixes in one zone.  In each, a key is served from the cache
# and a revocation lands; a user not allowed to subscribe still gets keys
# checked (from Redis every time); losing one server's subscription
# bypasses only that server's keys.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

my $BOUND = 0.1;

my $redis = start_redis(password => 'admin-pw', unixsocket => 1,
    users => [
        # what the module needs, cache included
        'tracker on >tracker-pw ~apikey:* &__redis__:invalidate +hmget '
            . '+hset +ping +select +client|id +client|tracking +subscribe',
        # enough for lookups, not for the subscription
        'plain on >plain-pw ~apikey:* +hmget +hset +ping +select',
    ]);
my $other = start_redis();

my @tokens;

sub hmgets { return $_[0]->calls('hmget') }

# A record in database $db of $r (written on a connection of its own).
sub seed_in {
    my ($r, $db, $token, %f) = @_;
    push @tokens, $token;
    my $c = $r->connect;
    $c->cmd('SELECT', $db);
    $c->cmd('HSET', key_hash($token, prefix => delete $f{prefix}), %f);
    $c->close;
}

# Polls until the answer for $token on $path is $status; returns how long
# that took after the call.
sub until_status {
    my ($nginx, $path, $token, $status) = @_;
    my $c = $nginx->client;
    my $t0 = time;
    my $got;
    wait_until(sub {
        $got = $c->get($path, Authorization => "Bearer $token")->status;
        $got == $status;
    }, 2, 0.001);
    return ($got, time - $t0);
}

my @started;

sub nginx_with {
    my ($server, %o) = @_;
    push @started, start_cached_nginx(redis => $redis, workers => 1,
        redis_args => '%%REDIS%% password=admin-pw', server => $server, %o);
    return $started[-1];
}

# The common check: cached, then revoked within the bound.
sub cached_then_revoked {
    my ($name, $nginx, $path, $db, $prefix, $source) = @_;
    $source //= $redis;
    my $t = new_token();
    seed_in($source, $db, $t, id => 'k_opt', prefix => $prefix);
    settle($nginx, $source, path => $path, db => $db, prefix => $prefix);
    my $c = $nginx->client;
    is($c->get($path, Authorization => "Bearer $t")->status, 200,
        "$name: the key is let in");
    my $h0 = hmgets($source);
    my @s = map { $c->get($path, Authorization => "Bearer $t")->status }
        1 .. 20;
    is("@s", join(' ', (200) x 20), "$name: 20 more times");
    is(hmgets($source) - $h0, 0, "$name: from the cache");
    seed_in($source, $db, $t, revoked => 1, prefix => $prefix);
    my ($got, $took) = until_status($nginx, $path, $t, 401);
    is($got, 401, "$name: revoked");
    cmp_ok($took, '<', slack($BOUND), sprintf("$name: refused after %.1f "
        . 'ms', $took * 1000));
}


subtest 'password and db=3' => sub {
    my $nginx = nginx_with(<<'EOF');
        location /db3/ {
            apikey on;
            apikey_redis %%REDIS%% db=3 password=admin-pw;
            alias %%WWW%%/api/;
        }
EOF
    cached_then_revoked('db=3', $nginx, '/db3/x', 3);
    $nginx->stop;
};

subtest 'an ACL user allowed to track and subscribe' => sub {
    my $nginx = nginx_with(<<'EOF');
        location /acl/ {
            apikey on;
            apikey_redis %%REDIS%% db=2 user=tracker password=tracker-pw;
            alias %%WWW%%/api/;
        }
EOF
    my @t = grep { ($_->{user} // '') eq 'tracker' && $_->{flags} =~ /t/ }
        $redis->client_list;
    is(scalar(@t), 1, 'the tracking connection is the user\'s');
    cached_then_revoked('ACL user', $nginx, '/acl/x', 2);
    $nginx->stop;
};

subtest 'an ACL user not allowed to subscribe: keys are still checked, '
    . 'from Redis each time' => sub {
    my $nginx = nginx_with(<<'EOF');
        location /plain/ {
            apikey on;
            apikey_redis %%REDIS%% user=plain password=plain-pw;
            alias %%WWW%%/api/;
        }
EOF
    my $t = new_token();
    seed_in($redis, 0, $t, id => 'k_plain');
    my $c = $nginx->client;
    my $h0 = hmgets($redis);
    my @s = map { $c->get('/plain/x', Authorization => "Bearer $t")->status }
        1 .. 10;
    is("@s", join(' ', (200) x 10), 'the key is let in');
    is(hmgets($redis) - $h0, 10, 'one HMGET each: the cache is bypassed');
    seed_in($redis, 0, $t, revoked => 1);
    is($c->get('/plain/x', Authorization => "Bearer $t")->status, 401,
        'a revocation lands on the next request');
    like($nginx->error_log, qr/\[error\].*apikey cache: redis "[^"]+" /,
        'the refused subscription is logged');
    $nginx->stop;
};

subtest 'keys hashed with apikey_hash_secret_file' => sub {
    my $file = test_dir() . '/hash-secret';
    open(my $fh, '>', $file) or die "$file: $!";
    print {$fh} "cache-secret\n";
    close $fh;
    my $nginx = nginx_with(<<'EOF', vars => { SECRET => $file });
        location /hmac/ {
            apikey on;
            apikey_hash_secret_file %%SECRET%%;
            alias %%WWW%%/api/;
        }
EOF
    my $t = new_token();
    push @tokens, $t;
    my $key = key_hash($t, secret => 'cache-secret');
    $redis->cmd('HSET', $key, id => 'k_hmac');
    my $c = $nginx->client;
    is($c->get('/hmac/x', Authorization => "Bearer $t")->header('x-id'),
        'k_hmac', 'the key is let in');
    settle($nginx, $redis);
    $c->get('/hmac/x', Authorization => "Bearer $t");
    my $h0 = hmgets($redis);
    my @s = map { $c->get('/hmac/x', Authorization => "Bearer $t")->status }
        1 .. 20;
    is("@s", join(' ', (200) x 20), '20 more times');
    is(hmgets($redis) - $h0, 0, 'from the cache');
    $redis->cmd('HSET', $key, revoked => 1);
    my ($got, $took) = until_status($nginx, '/hmac/x', $t, 401);
    is($got, 401, 'revoked');
    cmp_ok($took, '<', slack($BOUND), sprintf('refused after %.1f ms',
        $took * 1000));
    $nginx->stop;
};

subtest 'a unix socket' => sub {
    my $nginx = nginx_with(<<'EOF', vars => { SOCK => $redis->socket });
        location /unix/ {
            apikey on;
            apikey_redis unix:%%SOCK%% password=admin-pw;
            alias %%WWW%%/api/;
        }
EOF
    cached_then_revoked('unix socket', $nginx, '/unix/x', 0);
    $nginx->stop;
};

subtest 'two servers and two prefixes in one zone: each revocation '
    . 'lands, and losing one subscription bypasses only its keys' => sub {
    my $nginx = nginx_with(<<'EOF', vars => { OTHER => $other->addr });
        location /tenant/ {
            apikey on;
            apikey_redis %%REDIS%% password=admin-pw;
            apikey_redis_prefix tenant:;
            alias %%WWW%%/api/;
        }

        location /other/ {
            apikey on;
            apikey_redis %%OTHER%%;
            alias %%WWW%%/api/;
        }
EOF
    # every subscription is up
    wait_until(sub { my @l = $nginx->error_log =~ /are live/g; @l >= 3 },
        3);
    my @live = $nginx->error_log =~ /are live/g;
    is(scalar(@live), 3, 'three subscriptions: two prefixes, two servers');
    cached_then_revoked('main', $nginx, '/api/x', 0);
    cached_then_revoked('tenant: prefix', $nginx, '/tenant/x', 0, 'tenant:');
    cached_then_revoked('other server', $nginx, '/other/x', 0, undef,
        $other);

    my $tm = new_token();
    my $to = new_token();
    seed_in($redis, 0, $tm, id => 'k_main');
    seed_in($other, 0, $to, id => 'k_other');
    my $c = $nginx->client;
    my $both = sub {
        return join ' ', map { $c->get(@$_)->status } ['/api/x',
            Authorization => "Bearer $tm"], ['/other/x',
            Authorization => "Bearer $to"];
    };
    settle($nginx, $redis);
    settle($nginx, $other, path => '/other/x');
    is($both->(), '200 200', 'a key on each server, cached');
    my ($sub) = grep { $_->{flags} =~ /t/ } $other->client_list;
    my $mark = $nginx->mark;
    $other->cmd('CLIENT', 'KILL', 'ID', $sub->{id});
    wait_until(sub { $nginx->error_log_since($mark) =~ /closed the conn/ },
        2);
    my ($h_main, $h_other) = (hmgets($redis), hmgets($other));
    is($both->(), '200 200', 'the other server\'s subscription lost: both '
        . 'keys are still let in');
    is(hmgets($other) - $h_other, 1, '... the other server\'s key from '
        . 'Redis');
    is(hmgets($redis) - $h_main, 0, '... the main server\'s key from the '
        . 'cache');
    wait_live($nginx, $mark);
    $nginx->stop;
};

subtest 'no token in the debug logs' => sub {
    error_log_clean($_, @tokens) for @started;
};

done_testing;
