package ApiKey::CacheTest;

# What the cache tests (t/4*-cache*.t) share, on top of ApiKey::Test:
#
#   my $nginx = start_cached_nginx(redis => $redis, workers => 2,
#       cache => 'zone=apikeys:1m ttl=60s', server => '...more...');
#   wait_live($nginx);            # the invalidation subscription is up
#   settle($nginx, $redis);       # every invalidation sent so far is in
#   settle($nginx, $redis, path => '/db3/x', db => 3, prefix => 't:');
#   my $r = apikey('revoke', $id, redis => $redis);       # the CLI, waited
#   my $p = apikey_start('revoke', $id, redis => $redis); # in background
#   $p->done;                     # undef while running, else when it ended
#   my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
#
# The nginx of start_cached_nginx serves static files, so that thousands
# of requests cost little, and tells in headers which worker answered
# (X-Worker: $pid), the module's verdict (X-Status) and the key's id
# (X-Id).  Locations: /api/ (apikey on), /nocache/ (apikey_cache off),
# /people/ (apikey_scopes read:people), /echo/ and /echo-nocache/
# (proxied to the echo upstream, to see the identity headers); the
# server's apikey_redis is %%REDIS%%, or redis_args => '... password=x'.  With
# quiet => 1 nginx logs at the info level (requests from notice on) and
# keeps no access log: many thousand requests would otherwise write
# gigabytes of debug lines.

use strict;
use warnings;

use Exporter 'import';
use Carp qw(croak);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

use ApiKey::Test ();
use ApiKey::Test::Proc qw(test_dir wait_until project_root slack);

our @EXPORT = qw(start_cached_nginx wait_live settle apikey apikey_start
    cached_http worker_of tracking_clients wait_subscribed);

my $www;

sub _www {
    return $www if $www;
    $www = test_dir() . '/www';
    for my $d ('', qw(/api /nocache /people)) {
        mkdir "$www$d" or croak "mkdir $www$d: $!";
        chmod 0755, "$www$d";
        next unless $d;
        open(my $fh, '>', "$www$d/x") or croak "$www$d/x: $!";
        print {$fh} "ok\n";
        close $fh;
        chmod 0644, "$www$d/x";
    }
    return $www;
}

# The http{} text of a cached nginx; `cache` is what follows apikey_cache,
# `http` and `server` are added at those levels, `redis` is what follows
# the server's apikey_redis (%%REDIS%%).
sub cached_http {
    my (%o) = @_;
    my $cache = $o{cache} // 'zone=apikeys:1m';
    my $http = $o{http} // '';
    my $server = $o{server} // '';
    my $redis = $o{redis} // '%%REDIS%%';
    # timeouts are not the subject of most tests: a busy machine must not
    # fail them with a slow lookup
    my $timeout = $o{timeout} // '2s';
    # thousands of requests: their debug lines would fill the disk
    my $quiet = $o{quiet} ? "error_log %%DIR%%/error.log notice;\n"
        . "        access_log off;" : '';
    return <<"EOF";
    apikey_cache $cache;
    $http

    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        apikey_redis $redis;
        apikey_redis_timeout $timeout;
        add_header X-Worker \$pid always;
        add_header X-Status \$apikey_status always;
        add_header X-Id \$apikey_id always;
        root %%WWW%%;
        $quiet

        location /api/ {
            apikey on;
        }

        location /nocache/ {
            apikey on;
            apikey_cache off;
        }

        location /people/ {
            apikey on;
            apikey_scopes read:people;
        }

        location /echo/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }

        location /echo-nocache/ {
            apikey on;
            apikey_cache off;
            proxy_pass http://%%ECHO%%;
        }

        $server
    }
EOF
}

sub start_cached_nginx {
    my (%o) = @_;
    my %http = map { $_ => delete $o{$_} } grep { exists $o{$_} }
        qw(cache http server quiet redis_args timeout);
    $http{redis} = delete $http{redis_args} if exists $http{redis_args};
    $o{log_level} //= 'info' if $http{quiet};
    my $nginx = ApiKey::Test::start_nginx(%o,
        vars => { WWW => _www(), %{ $o{vars} // {} } },
        http => cached_http(%http));
    wait_live($nginx);
    return $nginx;
}

# The worker that answered (the cached nginx adds X-Worker: $pid).
sub worker_of { return $_[0]{header}{'x-worker'} // '?' }

# Waits until the module says its invalidation subscription is up (after
# $mark in the error log, if given) in $workers workers (1); dies after
# $timeout seconds.
sub wait_live {
    my ($nginx, $mark, $timeout, $workers) = @_;
    my $live = qr/(\d+)#\d+: apikey cache: invalidations from redis /
        . qr/.* are live/;
    my $ok = wait_until(sub {
        my %pids = map { $_ => 1 }
            $nginx->error_log_since($mark // 0) =~ /$live/g;
        keys(%pids) >= ($workers // 1);
    }, $timeout // slack(5), 0.005);
    croak "the cache subscription did not come up:\n"
        . join("\n", grep { !/\[debug\]/ }
            split /\n/, $nginx->error_log_since($mark // 0))
        unless $ok;
    return 1;
}


# The connections of $redis in client-side tracking (flag t): every
# worker of a cached nginx holds one per cached source.
sub tracking_clients {
    my ($redis) = @_;
    return grep { ($_->{flags} // '') =~ /t/ } $redis->client_list;
}

# Waits until $n tracking connections are subscribed; false after
# slack(5) s.
sub wait_subscribed {
    my ($redis, $n, $timeout) = @_;
    return wait_until(sub {
        $n == grep { ($_->{sub} // 0) == 1 } tracking_clients($redis);
    }, $timeout // slack(5), 0.005);
}

# Waits until nginx has taken every invalidation Redis sent so far, so
# that counting HMGETs right after a write is not disturbed by it: a
# lookup whose answer comes after an invalidation of any key is not kept
# (it might be stale), and invalidations arrive when they arrive.  A
# sentinel key is cached, its record changed (one command, one
# invalidation, sent after every earlier one on the same connection), and
# once nginx answers with the change, the earlier ones were taken too.
sub settle {
    my ($nginx, $redis, %o) = @_;
    my $path = $o{path} // '/api/x';
    my $token = ApiKey::Test::new_token();
    my $key = ApiKey::Test::key_hash($token, prefix => $o{prefix});
    my $w = $redis->connect;
    $w->cmd('SELECT', $o{db}) if $o{db};
    my $c = $nginx->client;
    my $id = sub {
        return $c->get($path, Authorization => "Bearer $token")
            ->header('x-id') // '';
    };
    my $mark = $nginx->mark;
    $w->cmd('HSET', $key, id => 'k_settle1');
    my $cached = wait_until(sub {
        my $n = $redis->calls('hmget');
        return $id->() eq 'k_settle1' && $redis->calls('hmget') == $n;
    }, slack(5), 0);
    croak "settle: the sentinel key is not cached" unless $cached;
    $w->cmd('HSET', $key, id => 'k_settle2');
    wait_until(sub { $id->() eq 'k_settle2' }, slack(5), 0.001)
        or croak "settle: the write was not taken within 5 s";
    # the answer shows that one worker took the invalidations; another
    # kept off the CPU for long (valgrind) may take them later, and drop
    # what was cached meanwhile: where the debug log tells, every worker's
    # second invalidation of the sentinel is waited for
    my $hex8 = substr($key, length($o{prefix} // 'apikey:'), 8);
    my $taken = qr/(\d+)#\d+: apikey cache: invalidated \Q$hex8\E/;
    wait_until(sub {
        my %n;
        $n{$_}++ for $nginx->error_log_since($mark) =~ /$taken/g;
        return (grep { $_ >= 2 } values %n) >= $nginx->{workers};
    }, slack(5), 0.02)
        if $nginx->conf_text =~ /^error_log \S+ debug;/m;
    $w->close;
    $c->close;
    return 1;
}

# The apikey tool against the test's Redis.  apikey(@args, redis => $r)
# waits and returns { code, out, err }; apikey_start returns at once.
sub _cli_args {
    my (@args) = @_;
    my $redis;
    for (my $i = 0; $i < @args - 1; $i++) {
        next unless $args[$i] eq 'redis' && ref $args[$i + 1];
        $redis = $args[$i + 1];
        splice @args, $i, 2;
        last;
    }
    croak "apikey: redis => \$redis required" unless $redis;
    my $cli = project_root() . '/build/apikey';
    croak "\n\n*** $cli is missing: run `make cli` first ***\n\n"
        unless -x $cli;
    return ('timeout', '30', $cli, '--redis', $redis->addr, @args);
}

my $serial = 0;

sub apikey_start {
    my (@args) = @_;
    my @cmd = _cli_args(@args);
    my $base = test_dir() . '/cli' . ++$serial;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>', "$base.out");
        open(STDERR, '>', "$base.err");
        exec(@cmd) or POSIX::_exit(127);
    }
    return bless { pid => $pid, base => $base, started => time },
        'ApiKey::CacheTest::CLI';
}

sub apikey {
    my $p = apikey_start(@_);
    return $p->wait;
}


package ApiKey::CacheTest::CLI;

use Time::HiRes qw(time);
use POSIX qw(WNOHANG);

# When the command ended (undef while it runs).
sub done {
    my ($self) = @_;
    return $self->{ended} if $self->{ended};
    return undef unless waitpid($self->{pid}, WNOHANG) == $self->{pid};
    $self->{code} = $? >> 8;
    return $self->{ended} = time;
}

sub wait {
    my ($self) = @_;
    unless ($self->{ended}) {
        waitpid($self->{pid}, 0);
        $self->{code} = $? >> 8;
        $self->{ended} = time;
    }
    my %r = (code => $self->{code}, started => $self->{started},
        ended => $self->{ended});
    for my $f (qw(out err)) {
        open(my $fh, '<', "$self->{base}.$f") or next;
        local $/;
        $r{$f} = <$fh> // '';
    }
    return \%r;
}


package ApiKey::Burst;

# Many keep-alive connections to nginx driven from one process: each
# connection sends its next request as soon as the previous answer is in,
# so that every nginx worker serves a share of them (listen ... reuseport
# spreads connections over the workers), and every answer is recorded
# with when its request was sent.  Something else can happen meanwhile (a
# `tick` callback runs on every turn of the loop), so that a revocation
# lands while requests keep flowing.
#
#   my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
#   my @rows = $b->run(
#       request => sub { my ($i) = @_; return ('/api/x',
#                        Authorization => "Bearer $t") },   # () = none
#       until   => sub { my ($rows) = @_; return @$rows >= 100 },
#       tick    => sub { ... },           # optional, on every turn
#       timeout => 2);                    # a bound in any case
#   $_->{status}, $_->{sent}, $_->{got}, $_->{conn}, $_->{header}{x-worker}
#   $_->{request}                         # [$path, @headers] it answered
#
# Answers must carry a Content-Length (nginx's own pages and static files
# do).  A connection nginx closes is opened again.  Tokens stay in memory.

use Carp qw(croak);
use IO::Select;
use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);

sub new {
    my ($class, %o) = @_;
    croak "ApiKey::Burst: port required" unless $o{port};
    my $self = bless { port => $o{port}, conns => [] }, $class;
    $self->{conns}[$_] = { i => $_ } for 0 .. ($o{conns} // 8) - 1;
    return $self;
}

sub _open {
    my ($self, $c) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $self->{port}, Proto => 'tcp', Timeout => 2)
        or croak "connect 127.0.0.1:$self->{port}: $!";
    binmode $s;
    $s->blocking(0);
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    @$c{qw(sock buf sent)} = ($s, '', undef);
}

sub _close {
    my ($self, $c) = @_;
    close $c->{sock} if $c->{sock};
    @$c{qw(sock buf sent)} = (undef, '', undef);
}

sub close {
    my ($self) = @_;
    $self->_close($_) for @{ $self->{conns} };
}

# One answer taken out of $c->{buf}, or undef while it is incomplete.
sub _answer {
    my ($self, $c) = @_;
    my $end = index($c->{buf}, "\r\n\r\n");
    return undef if $end < 0;
    my @lines = split /\r\n/, substr($c->{buf}, 0, $end);
    my ($status) = (shift @lines) =~ m{^HTTP/\d\.\d (\d{3})}
        or croak "ApiKey::Burst: bad status line";
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $h{ lc $k } = $v;
    }
    my $len = $h{'content-length'} // 0;
    return undef if length($c->{buf}) < $end + 4 + $len;
    my $body = substr($c->{buf}, $end + 4, $len);
    substr($c->{buf}, 0, $end + 4 + $len, '');
    return { status => $status + 0, header => \%h, body => $body,
        close => lc($h{connection} // '') eq 'close' };
}

sub run {
    my ($self, %o) = @_;
    my $request = $o{request} or croak "ApiKey::Burst: request required";
    my $until = $o{until} // sub { 0 };
    my $end = time + ($o{timeout} // 5);
    my @rows;
    local $SIG{PIPE} = 'IGNORE';

    while (time < $end) {
        my $sel = IO::Select->new;
        for my $c (@{ $self->{conns} }) {
            $self->_open($c) unless $c->{sock};
            if (!defined $c->{sent}) {
                my ($path, @h) = $request->($c->{i});
                next unless defined $path;
                my $req = "GET $path HTTP/1.1\r\nHost: localhost\r\n";
                for (my $i = 0; $i < @h; $i += 2) {
                    $req .= "$h[$i]: $h[$i + 1]\r\n";
                }
                $req .= "\r\n";
                # a request fits in the empty send buffer of a new turn
                my $n = syswrite($c->{sock}, $req);
                if (!defined $n || $n != length $req) {
                    $self->_close($c);
                    next;
                }
                $c->{sent} = time;
                $c->{req} = [$path, @h];
            }
            $sel->add([$c->{sock}, $c]);
        }
        # nothing asked, nothing in flight: nothing more can come
        last unless grep { defined $_->{sent} } @{ $self->{conns} };
        $o{tick}->() if $o{tick};
        for my $ready ($sel->can_read(0.005)) {
            my $c = $ready->[1];
            my $n = sysread($c->{sock}, $c->{buf}, 65536, length $c->{buf});
            next if !defined $n && $!{EAGAIN};
            if (!$n) {
                # closed by nginx: the request goes again on a new one
                $self->_close($c);
                next;
            }
            while (defined(my $a = $self->_answer($c))) {
                @$a{qw(sent got conn request)}
                    = ($c->{sent}, time, $c->{i}, $c->{req});
                push @rows, $a;
                $c->{sent} = undef;
                if ($a->{close}) {
                    $self->_close($c);
                    last;
                }
            }
        }
        last if $until->(\@rows);
    }
    return @rows;
}



package ApiKey::Fresh;

# A request on a fresh connection every `every` seconds, as a new client
# would send it: with `listen ... reuseport` the kernel spreads the
# connections over the workers' sockets, so that those hashed to a
# stopped worker wait for it while the others are answered at once.
# Every answer is recorded with when its request was sent; `finish` waits
# for the connections still open (a worker continued, or respawned).
#
#   my $f = ApiKey::Fresh->new(port => $nginx->port);
#   my @rows = $f->run(every => 0.01, timeout => 3,
#       request => sub { ('/api/x', Authorization => "Bearer $t") },
#       until => sub { my ($rows) = @_; ... });
#   push @rows, $f->finish(timeout => 5);
#   $f->pending;                          # connections still unanswered
#
# Rows are as ApiKey::Burst's: status, sent, got, header.

use Carp qw(croak);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

sub new {
    my ($class, %o) = @_;
    croak "ApiKey::Fresh: port required" unless $o{port};
    return bless { port => $o{port}, open => [] }, $class;
}

sub pending { return scalar @{ $_[0]->{open} } }

sub _send {
    my ($self, $path, @h) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $self->{port}, Proto => 'tcp', Timeout => 2)
        or croak "connect 127.0.0.1:$self->{port}: $!";
    binmode $s;
    my $req = "GET $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    for (my $i = 0; $i < @h; $i += 2) {
        $req .= "$h[$i]: $h[$i + 1]\r\n";
    }
    syswrite($s, "$req\r\n") or croak "send: $!";
    $s->blocking(0);
    push @{ $self->{open} }, { sock => $s, buf => '', sent => time };
}

# Reads what came; returns the rows of connections answered whole.
sub _collect {
    my ($self, $wait) = @_;
    my $sel = IO::Select->new(map { [$_->{sock}, $_] } @{ $self->{open} });
    my @rows;
    for my $ready ($sel->can_read($wait)) {
        my $c = $ready->[1];
        my $n = sysread($c->{sock}, $c->{buf}, 65536, length $c->{buf});
        next if !defined $n && $!{EAGAIN};
        next if $n;
        # closed: the whole answer is in
        close $c->{sock};
        $c->{done} = 1;
        my ($head) = split /\r\n\r\n/, $c->{buf}, 2;
        my @lines = split /\r\n/, $head // '';
        my ($status) = (shift(@lines) // '') =~ m{^HTTP/\d\.\d (\d{3})};
        my %h;
        for (@lines) {
            my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
            $h{ lc $k } = $v;
        }
        push @rows, { status => ($status // 0) + 0, header => \%h,
            sent => $c->{sent}, got => time };
    }
    $self->{open} = [ grep { !$_->{done} } @{ $self->{open} } ];
    return @rows;
}

sub run {
    my ($self, %o) = @_;
    my $request = $o{request} or croak "ApiKey::Fresh: request required";
    my $every = $o{every} // 0.01;
    my $until = $o{until} // sub { 0 };
    my $end = time + ($o{timeout} // 5);
    my ($next, @rows) = (0);
    local $SIG{PIPE} = 'IGNORE';
    while (time < $end) {
        if (time >= $next) {
            $self->_send($request->());
            $next = time + $every;
        }
        my $wait = $next - time;
        push @rows, $self->_collect($wait > 0 ? $wait : 0);
        last if $until->(\@rows);
    }
    return @rows;
}

sub finish {
    my ($self, %o) = @_;
    my $end = time + ($o{timeout} // 5);
    my @rows;
    push @rows, $self->_collect(0.01) while @{ $self->{open} } && time < $end;
    close $_->{sock} for @{ $self->{open} };
    return @rows;
}

1;
