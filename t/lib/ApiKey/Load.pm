package ApiKey::Load;

# A load client for fault tests: forked clients send a mix of requests to
# nginx until told to stop, and record every answer.  Each mix entry is a
# class of request (a valid key, an unknown key, a revoked key, an open
# location...) with what the upstream must see when nginx lets it through.
#
#   my $load = ApiKey::Load->start(port => $nginx->port, clients => 4,
#       mix => [
#           { class => 'valid', path => '/api/x', token => $t, id => 'k_1' },
#           { class => 'unknown', path => '/api/x', token => $u },
#           { class => 'open', path => '/open/x', protected => 0 },
#       ]);
#   ... faults ...
#   my $r = $load->stop;                  # an ApiKey::Load::Result
#   $r->wrong_allows;                     # answers that let a wrong key in
#   $r->count(class => 'valid', status => 200, from => $t0, to => $t1);
#   $r->summary;                          # text for diag()
#
# A "wrong allow" is a 200 on a protected class whose upstream did not see
# the key id the class expects (unknown and revoked keys expect none, so
# any 200 for them is one).  Tokens stay in memory: result files hold the
# class names only.
#
# Keep-alive connections are used by default (keepalive => 0 opens one per
# request); as HTTP clients do, a request that fails on a reused
# connection before any byte of an answer came back is sent once more on
# a new connection (nginx closes idle keep-alive connections on reload),
# and counted in retries.

use strict;
use warnings;

use Carp qw(croak);
use POSIX ();
use Test::More ();
use Time::HiRes qw(time sleep);

use ApiKey::Test ();
use ApiKey::Test::Proc qw(test_dir fork_child stop_child child_alive
    wait_until);
use ApiKey::Test::HTTP;

my $serial = 0;

sub start {
    my ($class, %o) = @_;
    croak "ApiKey::Load: port and mix required" unless $o{port} && $o{mix};
    my $self = bless {
        port      => $o{port},
        clients   => $o{clients} // 4,
        mix       => $o{mix},
        keepalive => $o{keepalive} // 1,
        timeout   => $o{timeout}
            // 5 * ($ENV{APIKEY_TEST_TIME_FACTOR} || 1),
        # a bound on the whole run, whatever the test does
        duration  => $o{duration} // ApiKey::Test::slack(60),
        pause     => $o{pause} // 0,
        dir       => test_dir() . '/load' . ++$serial,
    }, $class;
    mkdir $self->{dir} or croak "mkdir $self->{dir}: $!";
    for my $m (@{ $self->{mix} }) {
        croak "ApiKey::Load: mix entry without class" unless $m->{class};
        $m->{protected} //= 1;
        $m->{method} //= 'GET';
    }
    for my $n (1 .. $self->{clients}) {
        push @{ $self->{children} }, fork_child(name => "load$serial.$n",
            lifetime => $self->{duration} + 30,
            code => sub { $self->_client($n) });
    }
    $self->{started} = time;
    return $self;
}

sub dir { $_[0]->{dir} }

# The fault tests' scene: nginx with two workers, an open location and a
# protected one on the given Redis (lookup timeout $o{timeout}, 2s by
# default: where the timeout is not the subject, a busy machine must not
# fail the test), four keys (two valid, one unknown, one revoked) and the
# mix of requests that uses them.
#
#   my $s = ApiKey::Load->scene(redis => $redis, timeout => '300ms');
#   $s->{nginx}, $s->{token}{valid1}, $s->{mix}
#   ApiKey::Load->seed_scene($redis, $s->{token});   # after a restart
sub scene {
    my ($class, %o) = @_;
    my $redis = $o{redis};
    my $timeout = $o{timeout} // '2s';
    my $nginx = ApiKey::Test::start_nginx(redis => $redis, workers => 2,
        http => <<"EOF");
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        apikey_redis_timeout $timeout;

        location /open/ {
            proxy_pass http://%%ECHO%%;
        }

        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF
    my %token = map { $_ => ApiKey::Test::new_token() }
        qw(valid1 valid2 unknown revoked);
    $class->seed_scene($redis, \%token);
    my @mix = (
        { class => 'valid', path => '/api/a', token => $token{valid1},
          id => 'k_valid1' },
        { class => 'unknown', path => '/api/b', token => $token{unknown} },
        { class => 'valid', path => '/api/c', token => $token{valid2},
          id => 'k_valid2' },
        { class => 'revoked', path => '/api/d', token => $token{revoked} },
        { class => 'open', path => '/open/e', protected => 0 },
    );
    return { nginx => $nginx, token => \%token, mix => \@mix };
}

sub seed_scene {
    my ($class, $redis, $token) = @_;
    ApiKey::Test::seed_key($redis, $token->{valid1}, id => 'k_valid1',
        scopes => 'read:x');
    ApiKey::Test::seed_key($redis, $token->{valid2}, id => 'k_valid2',
        org => 'acme');
    ApiKey::Test::seed_key($redis, $token->{revoked}, id => 'k_revoked',
        revoked => 1);
}

# A second of load with no fault, then what the workers and Redis hold
# once it is over (every Redis connection accounted for): the reference
# a fault test compares with afterwards.
sub warm_up {
    my ($class, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $warm = $class->start(port => $o{nginx}->port, mix => $o{mix},
        clients => 4);
    sleep 1;
    my $w = $warm->stop;
    Test::More::is($w->wrong_allows, 0, 'warm-up: no wrong allow');
    Test::More::is($w->errors, 0, 'warm-up: every request answered');
    # the warm-up's clients are gone once the workers have read their
    # closes, which a slow run (valgrind) takes a while to do: the census
    # is taken when two in a row agree
    my ($before, $last) = (undef, '');
    wait_until(sub {
        $before = $class->census($o{redis}, @{ $o{workers} });
        my $now = join ',', map { "$_=$before->{other}{$_}" }
            sort keys %{ $before->{other} };
        my $same = $now eq $last;
        $last = $now;
        $same && $before->{redis_clients} == $before->{nginx_redis};
    }, ApiKey::Test::slack(3), 0.1);
    Test::More::note(Test::More::explain({ before => $before }));
    return $before;
}

# What the workers and Redis hold: per worker the descriptors other than
# Redis connections and the Redis connections, their sum, and the clients
# Redis counts.
sub census {
    my ($class, $redis, @workers) = @_;
    my %c = (redis_clients => $redis->connected_clients);
    for my $pid (@workers) {
        my $f = $class->fd_census($pid, $redis->port);
        $c{other}{$pid} = $f->{other};
        $c{redis}{$pid} = $f->{redis};
        $c{nginx_redis} += $f->{redis};
    }
    return \%c;
}

# A subtest whose assertions depend on speed (answers within a timeout,
# recovery within a second, a number of requests).  On slow runs
# (sanitizers, valgrind) the test scales its phases, timeouts and bounds
# with slack(), so that these run there too.
sub timed_subtest {
    my ($class, $name, $code) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::subtest($name, $code);
}

sub _stopfile { return "$_[0]->{dir}/stop" }

sub _client {
    my ($self, $n) = @_;
    $SIG{PIPE} = 'IGNORE';
    my $out = "$self->{dir}/client$n.log";
    open(my $log, '>', $out) or die "$out: $!";
    $log->autoflush(1);
    my $mix = $self->{mix};
    my $end = time + $self->{duration};
    my $http = ApiKey::Test::HTTP->new(port => $self->{port},
        timeout => $self->{timeout});
    my $i = $n - 1;
    while (time < $end && !-e $self->_stopfile) {
        my $m = $mix->[ $i++ % @$mix ];
        my @h;
        push @h, Authorization => "Bearer $m->{token}" if defined $m->{token};
        push @h, @{ $m->{headers} // [] };
        push @h, Connection => 'close' unless $self->{keepalive};
        my $start = time;
        my ($res, $retried) = (undef, 0);
        for my $try (1, 2) {
            # a socket is kept only after an answer that allowed it
            my $reused = defined $http->{sock};
            $res = eval { $http->request($m->{method}, $m->{path}, @h) };
            if (!$res) {
                (my $e = $@ || 'error') =~ s/\s+/ /g;
                $res = bless { error => "connect: $e" },
                    'ApiKey::Test::HTTP::Response';
                $http->close;
            }
            last unless $try == 1 && $reused && $res->error
                && !length($res->raw // '')
                && $res->error =~ /^(?:closed|read: )/;
            $retried = 1;
        }
        my $elapsed = time - $start;
        my $status = $res->error ? 0 : $res->status;
        my $up = $res->error ? undef : $res->upstream;
        my $seen = $up ? ($up->header('x-apikey-id') // '') : '';
        my $wrong = 0;
        if ($m->{protected} && $status == 200) {
            $wrong = 1 if !$up || !defined $m->{id} || $seen ne $m->{id};
        }
        (my $err = $res->error // '') =~ s/[\t\n]/ /g;
        printf {$log} "%.4f\t%s\t%d\t%.4f\t%d\t%d\t%s\n", $start,
            $m->{class}, $status, $elapsed, $wrong, $retried, $err;
        sleep $self->{pause} if $self->{pause};
    }
    $http->close;
    close $log;
}

# Stops the clients (each finishes the request it is on) and returns the
# results.
sub stop {
    my ($self) = @_;
    open(my $fh, '>', $self->_stopfile) or croak "stop file: $!";
    close $fh;
    for my $c (@{ $self->{children} }) {
        wait_until(sub { !child_alive($c->{wrapper}) },
            $self->{timeout} + 5, 0.01);
        stop_child($c);
    }
    $self->{stopped} = time;
    return $self->results;
}

sub results {
    my ($self) = @_;
    my @rows;
    for my $n (1 .. $self->{clients}) {
        open(my $fh, '<', "$self->{dir}/client$n.log") or next;
        while (my $line = <$fh>) {
            next unless $line =~ /\n\z/;
            chomp $line;
            my %r;
            @r{qw(start class status elapsed wrong retried error)}
                = split /\t/, $line, 7;
            $r{error} = undef unless length($r{error} // '');
            push @rows, \%r;
        }
    }
    @rows = sort { $a->{start} <=> $b->{start} } @rows;
    return ApiKey::Load::Result->new(\@rows,
        { map { $_->{class} => $_ } @{ $self->{mix} } });
}


# What a process holds open: { total => N, redis => N (TCP sockets to
# 127.0.0.1:$port), other => N (everything else) }.  A process nginx
# runs as another user is readable by root only.
sub fd_census {
    my ($class, $pid, $port) = @_;
    my %peer = _tcp_peers();
    my %c = (total => 0, redis => 0, other => 0);
    opendir(my $dh, "/proc/$pid/fd") or return undef;
    for my $fd (grep { /^\d+$/ } readdir $dh) {
        my $target = readlink("/proc/$pid/fd/$fd") // next;
        $c{total}++;
        my ($inode) = $target =~ /^socket:\[(\d+)\]$/;
        if (defined $inode && defined $port
            && ($peer{$inode} // '') eq "127.0.0.1:$port")
        {
            $c{redis}++;
        } else {
            $c{other}++;
        }
    }
    closedir $dh;
    return \%c;
}

# Established TCP connections whose local end is 127.0.0.1:$port: the
# server side of the connections a listener accepted and still holds.
sub server_connections {
    my ($class, $port) = @_;
    open(my $fh, '<', '/proc/net/tcp') or return undef;
    <$fh>;
    my $n = 0;
    while (my $line = <$fh>) {
        my @f = split ' ', $line;
        $n++ if uc($f[1]) eq sprintf('0100007F:%04X', $port)
            && $f[3] eq '01';
    }
    return $n;
}

# inode => "ip:port" of the remote end, for IPv4 TCP sockets.
sub _tcp_peers {
    my %peer;
    open(my $fh, '<', '/proc/net/tcp') or return ();
    <$fh>;
    while (my $line = <$fh>) {
        my @f = split ' ', $line;
        my ($ip, $port) = split /:/, $f[2];
        next unless defined $port && defined $f[9];
        my $addr = join '.', reverse map { hex } unpack '(A2)4', $ip;
        $peer{ $f[9] } = $addr . ':' . hex $port;
    }
    return %peer;
}


package ApiKey::Load::Result;

use List::Util qw(max sum0);

sub new {
    my ($class, $rows, $classes) = @_;
    return bless { rows => $rows, classes => $classes }, $class;
}

# Rows matching every criterion: class (name or array ref), status,
# protected (0/1), from / to (request start time, from inclusive, to
# exclusive), error (1: failed requests only).
sub rows {
    my ($self, %c) = @_;
    my @r = @{ $self->{rows} };
    if (defined $c{class}) {
        my %want = map { $_ => 1 }
            ref $c{class} ? @{ $c{class} } : ($c{class});
        @r = grep { $want{ $_->{class} } } @r;
    }
    if (defined $c{protected}) {
        @r = grep {
            ($self->{classes}{ $_->{class} }{protected} ? 1 : 0)
                == ($c{protected} ? 1 : 0)
        } @r;
    }
    @r = grep { $_->{status} == $c{status} } @r if defined $c{status};
    @r = grep { $_->{start} >= $c{from} } @r if defined $c{from};
    @r = grep { $_->{start} < $c{to} } @r if defined $c{to};
    @r = grep { defined $_->{error} } @r if $c{error};
    return @r;
}

sub count {
    my ($self, %c) = @_;
    return scalar $self->rows(%c);
}

sub total { return scalar @{ $_[0]->{rows} } }

sub wrong_allows {
    my ($self) = @_;
    return scalar grep { $_->{wrong} } @{ $self->{rows} };
}

sub errors {
    my ($self, %c) = @_;
    return $self->count(%c, error => 1);
}

sub retries {
    my ($self) = @_;
    return scalar grep { $_->{retried} } @{ $self->{rows} };
}

# { status => count } for the matching rows.
sub statuses {
    my ($self, %c) = @_;
    my %s;
    $s{ $_->{status} }++ for $self->rows(%c);
    return \%s;
}

sub max_elapsed {
    my ($self, %c) = @_;
    return max(0, map { $_->{elapsed} } $self->rows(%c));
}

# Rows whose status is not one of the given ones.
sub other_than {
    my ($self, $statuses, %c) = @_;
    my %ok = map { $_ => 1 } @$statuses;
    return grep { !$ok{ $_->{status} } } $self->rows(%c);
}

sub summary {
    my ($self, %c) = @_;
    my %by;
    for my $r ($self->rows(%c)) {
        $by{ $r->{class} }{ $r->{status} }++;
    }
    my @lines;
    for my $class (sort keys %by) {
        push @lines, sprintf "%-10s %s", $class, join ' ',
            map { ($_ || 'failed') . " x$by{$class}{$_}" }
            sort { $a <=> $b } keys %{ $by{$class} };
    }
    push @lines, sprintf "%d requests, %d wrong allows, %d retried",
        scalar($self->rows(%c)), $self->wrong_allows, $self->retries;
    return join "\n", @lines;
}

# A few failing rows, described for diag().
sub describe {
    my ($self, @rows) = @_;
    my $t0 = @{ $self->{rows} } ? $self->{rows}[0]{start} : 0;
    my @d = map {
        sprintf "+%.3fs %s -> %s in %.3fs%s", $_->{start} - $t0,
            $_->{class}, $_->{status} || 'failed', $_->{elapsed},
            defined $_->{error} ? " ($_->{error})" : ''
    } @rows[0 .. ($#rows < 9 ? $#rows : 9)];
    push @d, '... ' . (@rows - 10) . ' more' if @rows > 10;
    return join "\n", @d;
}


1;
