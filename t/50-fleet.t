# A fleet: three nginx instances (separate masters, each with its own
# cache zone and two workers) in front of one Redis behave as one.  Under
# a steady load of valid, unknown and revoked keys on every instance, a
# key is revoked (apikey revoke), its scopes changed (apikey update) or its
# record deleted, and every worker of every instance refuses it within
# 100 ms of the write; the delays measured per instance are reported, and
# no answer anywhere lets a wrong key in.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;
use ApiKey::Load;

use JSON::PP ();
use List::Util qw(max);

my $INSTANCES = 3;
my $WORKERS = 2;
my $BOUND = 0.1;       # seconds, the product's promise

my $redis = start_redis();
my @nginx = map {
    start_cached_nginx(redis => $redis, workers => $WORKERS,
        cache => "zone=fleet$_:1m ttl=60s", quiet => 1)
} 1 .. $INSTANCES;

my @tokens;

sub create_key {
    my (@args) = @_;
    my $r = apikey('create', '--name', 'Fleet test', @args, '--json',
        redis => $redis);
    die "apikey create failed ($r->{code}): $r->{err}" if $r->{code};
    my $k = JSON::PP->new->decode($r->{out});
    push @tokens, $k->{key};
    return $k;
}


# Many keep-alive connections spread over the instances: connection i
# goes to instance i % $INSTANCES (and, by reuseport, to either worker).
package ApiKey::FleetBurst {
    use parent -norequire, 'ApiKey::Burst';

    sub new {
        my ($class, %o) = @_;
        my $self = ApiKey::Burst::new($class, port => $o{ports}[0],
            conns => $o{conns});
        $self->{ports} = $o{ports};
        return $self;
    }

    sub _open {
        my ($self, $c) = @_;
        local $self->{port} = $self->{ports}[ $c->{i} % @{ $self->{ports} } ];
        return $self->SUPER::_open($c);
    }
}

sub instance_of { return $_[0]{conn} % $INSTANCES }

# instance and worker: the six places a cache lives
sub place_of { return instance_of($_[0]) . '/' . worker_of($_[0]) }


# One try: every worker of every instance serves the key from its cache,
# then the write runs while all of them go on answering; returns, per
# instance, how long after the write returned the key was last let in.
sub try_write {
    my (%o) = @_;
    my ($path, $token, $ok, $refused) = @o{qw(path token ok refused)};
    my $places = $INSTANCES * $WORKERS;
    my $burst = ApiKey::FleetBurst->new(ports => [map { $_->port } @nginx],
        conns => 12 * $INSTANCES);
    my $req = sub { ($path, Authorization => "Bearer $token") };
    my %t;

    settle($_, $redis) for @nginx;
    my $h0 = $redis->calls('hmget');
    my @warm = $burst->run(request => $req, timeout => 5, until => sub {
        my %w;
        $w{ place_of($_) }++ for @{ $_[0] };
        return $places == grep { $_ >= 3 } values %w;
    });
    $t{warm_bad} = grep { $_->{status} != $ok } @warm;
    $t{warm_places} = keys %{{ map { place_of($_) => 1 } @warm }};
    $t{warm_hmget} = $redis->calls('hmget') - $h0;

    my ($cli, $done, $start);
    if (ref $o{write} eq 'CODE') {
        $start = time;
        $o{write}->();
        $done = time;
    } else {
        $cli = apikey_start(@{ $o{write} }, redis => $redis);
        $start = $cli->{started};
    }

    # until every place answered a few requests sent after the bound
    my %seen;
    my @rows = $burst->run(request => $req, timeout => 5,
        tick => sub { $done //= $cli->done if $cli },
        until => sub {
            return 0 unless $done;
            my $rows = $_[0];
            for (my $i = $#$rows; $i >= 0 && !$rows->[$i]{counted}; $i--) {
                $rows->[$i]{counted} = 1;
                $seen{ place_of($rows->[$i]) }++
                    if $rows->[$i]{sent} >= $done + $BOUND;
            }
            return $places == grep { $_ >= 5 } values %seen;
        });
    $burst->close;
    $t{code} = $cli ? $cli->wait->{code} : 0;
    $done //= time;

    for my $n (0 .. $INSTANCES - 1) {
        my @mine = grep { instance_of($_) == $n } @rows;
        my @allowed = grep { $_->{status} == $ok } @mine;
        my $last = max(map { $_->{sent} } @allowed) // $start;
        $t{lag}[$n] = $last > $done ? $last - $done : 0;

        # the write began at $start: from the first answer sent after the
        # last allow, everything is refused
        my $first = (sort { $a <=> $b } grep { $_ > $last }
            map { $_->{sent} } @mine)[0] // $last;
        $t{switch}[$n] = $first > $start ? $first - $start : 0;

        # once a worker refused the key, it never lets it in again
        my %refused;
        for my $r (sort { $a->{sent} <=> $b->{sent} } @mine) {
            my $w = worker_of($r);
            if ($r->{status} == $ok) {
                $t{flip}++
                    if defined $refused{$w} && $r->{sent} > $refused{$w};
            } elsif (!defined $refused{$w} || $r->{got} < $refused{$w}) {
                $refused{$w} = $r->{got};
            }
        }
        my @late = grep { $_->{sent} >= $done + $BOUND } @mine;
        $t{late}[$n] = scalar @late;
        $t{wrong}[$n] = grep { $_->{status} == $ok } @late;
        $t{late_places}[$n] = keys %{{ map { worker_of($_) => 1 }
            grep { $_->{status} == $refused } @late }};
    }
    $t{other} = grep { $_->{status} != $ok && $_->{status} != $refused }
        @rows;
    return \%t;
}

sub ms { return sprintf '%.1f', $_[0] * 1000 }

# Runs $n tries and checks them; the worst delay per instance is under
# the bound (in one of two attempts: a loaded machine may stall a
# process once), and the delays are reported.
sub check_tries {
    my ($name, $n, $make) = @_;
    my @all;
    timing_ok("$name: every instance refuses the key within "
        . ms($BOUND) . " ms of the write, worst of $n keys", sub {
        my @t = map { $make->($_) } 1 .. $n;
        push @all, @t;
        my @worst = map { my $i = $_; max(map { $_->{lag}[$i] } @t) }
            0 .. $INSTANCES - 1;
        my $what = join ', ', map { "nginx" . ($_ + 1) . ' worst '
            . ms($worst[$_]) . ' ms' } 0 .. $#worst;
        diag("$name, $n keys, last allow after the write returned: "
            . $what);
        diag("$name, $n keys, refused by all from (after the write "
            . 'began): ' . join ', ', map {
                my $i = $_;
                my @s = sort { $a <=> $b } map { $_->{switch}[$i] } @t;
                'nginx' . ($i + 1) . ' median ' . ms($s[$#s / 2])
                    . ' ms, worst ' . ms($s[-1]) . ' ms'
            } 0 .. $INSTANCES - 1);
        return (max(@worst) < slack($BOUND), $what);
    }, 2);

    my @bad = grep { $_->{warm_bad} } @all;
    is(scalar(@bad), 0, "$name: before the write, every instance lets the "
        . 'key in');
    @bad = grep { $_->{warm_places} != $INSTANCES * $WORKERS } @all;
    is(scalar(@bad), 0, "$name: ... on all $WORKERS workers of all "
        . "$INSTANCES instances");
    @bad = grep { $_->{warm_hmget} > $INSTANCES * $WORKERS } @all;
    is(scalar(@bad), 0, "$name: ... from their caches (at most one HMGET "
        . 'per worker)') or diag join ', ', map { $_->{warm_hmget} } @bad;
    @bad = grep { $_->{code} } @all;
    is(scalar(@bad), 0, "$name: the write succeeded");
    @bad = grep { $_->{flip} } @all;
    is(scalar(@bad), 0, "$name: once a worker refused the key, it never "
        . 'let it in again');
    @bad = grep { $_->{other} } @all;
    is(scalar(@bad), 0, "$name: no other answer than before and after");
    for my $i (0 .. $INSTANCES - 1) {
        my $nginx = 'nginx' . ($i + 1);
        @bad = grep { $_->{wrong}[$i] || !$_->{late}[$i] } @all;
        is(scalar(@bad), 0, "$name: $nginx: from " . ms($BOUND) . ' ms after '
            . 'the write on, no answer lets the key in')
            or diag explain [map { $_->{wrong}[$i] } @bad];
        @bad = grep { $_->{late_places}[$i] != $WORKERS } @all;
        is(scalar(@bad), 0, "$name: $nginx: ... on both workers");
    }
}


# the steady load: a valid key, an unknown one, one revoked long ago
my $valid = create_key('--scope', 'read:people');
my $revoked = create_key();
apikey('revoke', $revoked->{id}, redis => $redis)->{code} == 0
    or die 'apikey revoke failed';
my $unknown = new_token();
my @mix = (
    { class => 'valid', path => '/echo/a', token => $valid->{key},
      id => $valid->{id} },
    { class => 'unknown', path => '/echo/b', token => $unknown },
    { class => 'revoked', path => '/echo/c', token => $revoked->{key} },
);
my @load = map { ApiKey::Load->start(port => $_->port, clients => 1,
    mix => \@mix, pause => 0.002) } @nginx;


subtest 'apikey revoke: 401 from every instance within 100 ms' => sub {
    check_tries('revoke', 10, sub {
        my $k = create_key();
        return try_write(path => '/api/x', token => $k->{key}, ok => 200,
            refused => 401, write => ['revoke', $k->{id}]);
    });
};

subtest 'apikey update --scope: 403 from every instance within 100 ms'
    => sub {
    check_tries('update --scope', 10, sub {
        my $k = create_key('--scope', 'read:people');
        return try_write(path => '/people/x', token => $k->{key}, ok => 200,
            refused => 403, write => ['update', $k->{id}, '--scope',
            'write:people']);
    });
};

subtest 'the record deleted: 401 from every instance within 100 ms'
    => sub {
    check_tries('DEL', 5, sub {
        my $k = create_key();
        return try_write(path => '/api/x', token => $k->{key}, ok => 200,
            refused => 401,
            write => sub { $redis->cmd('DEL', key_hash($k->{key})) });
    });
};

subtest 'under the load meanwhile: no wrong allow on any instance' => sub {
    for my $i (0 .. $#load) {
        my $r = $load[$i]->stop;
        my $nginx = 'nginx' . ($i + 1);
        ok($r->count(class => 'valid', status => 200) > 0,
            "$nginx: the valid key was let in");
        is($r->wrong_allows, 0, "$nginx: no wrong allow")
            or diag $r->summary;
        is(scalar($r->other_than([200], class => 'valid')), 0,
            "$nginx: the valid key only ever got 200") or diag $r->summary;
        is(scalar($r->other_than([401], class => ['unknown', 'revoked'])),
            0, "$nginx: the unknown and revoked keys only ever got 401")
            or diag $r->summary;
        note("$nginx load: " . $r->summary);
    }
};

subtest 'the error logs stay clean' => sub {
    for my $nginx (@nginx) {
        error_log_clean($nginx, @tokens, $unknown);
        my @errors = $nginx->log_lines('error');
        is(scalar(@errors), 0, 'no [error]') or diag join "\n", @errors;
    }
};

done_testing;
