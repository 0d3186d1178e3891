package ApiKey::Test::Sentinel;

# A Redis deployment as operators run it, on 127.0.0.1: a primary,
# replicas and sentinels (redis-server --sentinel, with a configuration
# file of their own that they rewrite in the test directory), with short
# down-after-milliseconds and failover-timeout, so that a failover takes
# a few seconds.
#
#   my $set = ApiKey::Test::Sentinel->start(replicas => 1, sentinels => 3);
#   $set->primary;            # the ApiKey::Test::Redis the sentinels name
#   $set->named;              # "127.0.0.1:PORT" as a live sentinel names it
#   $set->sentinels;          # ApiKey::Test::Sentinel::Node (kill9, pause..)
#   $set->wait_named($addr, $timeout);   # until a sentinel names another
#   $set->wait_ready;         # replicas in sync, sentinels know each other
#   $set->failover;           # SENTINEL FAILOVER through a live sentinel
#   $set->rejoin($redis);     # a killed node back, as a replica
#
# With tls => ApiKey::Test::TLS->new, data nodes and sentinels listen on
# TLS ports beside the plain ones the tests use; replication, the sentinels
# and $set->conf use the TLS ones (tls-replication yes).

use strict;
use warnings;

use Carp qw(croak);
use Time::HiRes qw(time sleep);

use ApiKey::Test::Proc qw(free_port test_dir wait_until slack);
use ApiKey::Test::Redis;

our $MASTER = 'mymaster';

sub start {
    my ($class, %o) = @_;
    my $self = bless {
        master    => $o{master} // $MASTER,
        down      => $o{down_after} // 500,
        failover  => $o{failover_timeout} // 3000,
        dir       => test_dir(),
    }, $class;
    # a replica syncs at once, not after diskless sync's 5 s delay
    my @args = ('--replica-announce-ip', '127.0.0.1',
        '--repl-diskless-sync-delay', 0);
    $self->{args} = \@args;
    $self->{tls} = $o{tls};
    my $primary = $self->_node(@args);
    $self->{nodes} = [ $primary ];
    for (1 .. ($o{replicas} // 1)) {
        push @{ $self->{nodes} }, $self->_node('--replicaof', '127.0.0.1',
            $self->port_of($primary), @args);
    }
    for my $n (1 .. ($o{sentinels} // 3)) {
        push @{ $self->{sentinels} }, ApiKey::Test::Sentinel::Node->start(
            dir => $self->{dir}, n => $n, master => $self->{master},
            monitor => $self->port_of($primary), down => $self->{down},
            failover => $self->{failover}, tls => $o{tls});
    }
    $self->wait_ready;
    return $self;
}

# a data node; with TLS, a TLS port beside the plain one (the tests'), and
# replication, the sentinels and the module on the TLS one
sub _node {
    my ($self, @args) = @_;
    return ApiKey::Test::Redis->start(args => [ @args ]) unless $self->{tls};
    my $port = free_port();
    my $r = ApiKey::Test::Redis->start(args => [
        $self->{tls}->redis_args($port), '--tls-replication', 'yes', @args ]);
    $r->{tls_port} = $port;
    return $r;
}

# the port the sentinels and the module know a node by
sub port_of { return $_[1]{tls_port} // $_[1]->port }

sub master    { $_[0]{master} }
sub nodes     { @{ $_[0]{nodes} } }
sub sentinels { @{ $_[0]{sentinels} } }

# "sentinel 127.0.0.1:P1; sentinel 127.0.0.1:P2; ..." for a block
sub conf {
    my ($self) = @_;
    return join '', map { "sentinel 127.0.0.1:" . $self->port_of($_)
        . ";\n" } $self->sentinels;
}

# The address a live sentinel names for the master, or ''.
sub named {
    my ($self) = @_;
    for my $s ($self->sentinels) {
        next if $s->{dead} || $s->{paused};
        my $r = eval { $s->cmd('SENTINEL', 'get-master-addr-by-name',
            $self->{master}) };
        return "$r->[0]:$r->[1]" if ref $r eq 'ARRAY';
    }
    return '';
}

# The data node the sentinels name.
sub primary {
    my ($self) = @_;
    my $named = $self->named;
    my ($node) = grep { "127.0.0.1:" . $self->port_of($_) eq $named }
        $self->nodes;
    croak "the sentinels name $named, not one of ours" unless $node;
    # a failover closes the clients of the promoted replica
    delete $node->{client};
    return $node;
}

sub replicas {
    my ($self) = @_;
    my $named = $self->named;
    return grep { "127.0.0.1:" . $self->port_of($_) ne $named
        && !$_->{dead} } $self->nodes;
}

# Until a live sentinel names another address than $old; the time it did,
# or undef after $timeout seconds.
sub wait_named {
    my ($self, $old, $timeout) = @_;
    my $at;
    wait_until(sub {
        my $now = $self->named;
        $at = time if $now && $now ne $old;
        return defined $at;
    }, $timeout // slack(30), 0.01);
    return $at;
}

# Every replica in sync with the primary, and every live sentinel knowing
# the replicas and the other sentinels: a failover can be agreed on.
sub wait_ready {
    my ($self, $timeout) = @_;
    my @live = grep { !$_->{dead} } $self->sentinels;
    my $why = '';
    my $ok = wait_until(sub {
        my $primary = eval { $self->primary }
            or return !($why = 'no primary named');
        for my $r ($self->replicas) {
            # a failover closes the clients of the replicas too
            my $info = eval { $r->info('replication') }
                or return !($why = 'replica ' . $r->addr . ' silent')
                    + !delete $r->{client};
            return !($why = 'replica ' . $r->addr . ' not in sync')
                unless ($info->{master_link_status} // '') eq 'up'
                && $info->{master_port} == $self->port_of($primary);
        }
        for my $s (@live) {
            my %m = eval { @{ $s->cmd('SENTINEL', 'master',
                $self->{master}) } }
                or return !($why = 'sentinel ' . $s->port . ' silent');
            return !($why = 'sentinel ' . $s->port . ': '
                . join ' ', map { "$_=$m{$_}" }
                    qw(num-slaves num-other-sentinels flags))
                unless $m{'num-slaves'} >= scalar($self->replicas)
                && $m{'num-other-sentinels'} >= @{ $self->{sentinels} } - 1
                && $m{flags} eq 'master';
            # the replicas as the sentinels see them: none still down
            my @r = eval { @{ $s->cmd('SENTINEL', 'replicas',
                $self->{master}) } };
            for my $r (@r) {
                my %r = @$r;
                return !($why = "sentinel $s->{port}: replica $r{name} "
                    . $r{flags}) if $r{flags} =~ /down|disconnected/;
            }
        }
        return 1;
    }, $timeout // slack(30), 0.05);
    croak "the sentinels did not agree on the set: $why" unless $ok;
    return 1;
}

# SENTINEL FAILOVER through a live sentinel (a graceful switch).
sub failover {
    my ($self) = @_;
    my ($s) = grep { !$_->{dead} && !$_->{paused} } $self->sentinels;
    return $s->cmd('SENTINEL', 'FAILOVER', $self->{master});
}

# A data node that was killed starts again, as a replica of the primary.
sub rejoin {
    my ($self, $node) = @_;
    my $primary = $self->primary;
    my $tls = $node->{tls_port}
        ? [ $self->{tls}->redis_args($node->{tls_port}), '--tls-replication',
            'yes' ] : [];
    $node->{args} = [ @$tls, '--replicaof', '127.0.0.1',
        $self->port_of($primary), @{ $self->{args} } ];
    $node->restart;
    delete $node->{dead};
    return $node;
}

# A node that was stopped and resumed: made a replica of the primary now,
# as the sentinels would do within ten seconds.
sub demote {
    my ($self, $node) = @_;
    my $primary = $self->primary;
    delete $node->{client};
    wait_until(sub {
        eval { $node->cmd('REPLICAOF', '127.0.0.1',
            $self->port_of($primary)); 1 };
    }, slack(5), 0.05);
    return $node;
}

sub kill9 {
    my ($self, $node) = @_;
    $node->{dead} = 1;
    $node->kill9;
}

sub stop {
    my ($self) = @_;
    for ($self->sentinels, $self->nodes) {
        eval { $_->resume } if $_->{paused};
        $_->stop;
    }
}


package ApiKey::Test::Sentinel::Node;

# One sentinel: an ApiKey::Test::Redis started with --sentinel and a
# configuration file it owns.

use strict;
use warnings;

use Carp qw(croak);

use ApiKey::Test::Proc qw(free_port spawn child_alive wait_until);

our @ISA = ('ApiKey::Test::Redis');

sub start {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;
    $self->{port} = free_port();
    $self->{name} = "sentinel$o{n}";
    my $conf = "$o{dir}/$self->{name}.conf";
    open(my $fh, '>', $conf) or croak "$conf: $!";
    print {$fh} <<"EOF";
port $self->{port}
bind 127.0.0.1
daemonize no
protected-mode no
dir $o{dir}
logfile $o{dir}/$self->{name}.log
sentinel monitor $o{master} 127.0.0.1 $o{monitor} 2
sentinel down-after-milliseconds $o{master} $o{down}
sentinel failover-timeout $o{master} $o{failover}
sentinel parallel-syncs $o{master} 1
EOF
    if (my $pki = $o{tls}) {
        # TLS beside the plain port (the tests'), and to the data nodes
        my $d = $pki->dir;
        $self->{tls_port} = free_port();
        print {$fh} "tls-port $self->{tls_port}\n"
            . "tls-cert-file $d/server.crt\ntls-key-file $d/server.key\n"
            . "tls-ca-cert-file $d/ca.crt\ntls-auth-clients no\n"
            . "tls-replication yes\n";
    }
    close $fh;
    $self->{conf} = $conf;
    $self->_run;
    return $self;
}

sub _run {
    my ($self) = @_;
    $self->{child} = spawn(name => $self->{name},
        cmd => [ 'redis-server', $self->{conf}, '--sentinel' ],
        out => "$self->{dir}/$self->{name}.out");
    delete $self->{client};
    my $up = wait_until(sub {
        return -1 unless child_alive($self->{child}{wrapper});
        my $c = eval { $self->client } or return 0;
        return ((eval { $c->cmd('PING') } // '') eq 'PONG') ? 1 : 0;
    }, 10, 0.01);
    croak "sentinel did not start on port $self->{port}:\n" . $self->log
        if !$up || $up == -1;
    return $self;
}

sub pause  { $_[0]{paused} = 1; $_[0]->SUPER::pause }
sub resume { delete $_[0]{paused}; $_[0]->SUPER::resume }
sub kill9  { $_[0]{dead} = 1; $_[0]->SUPER::kill9 }


package ApiKey::Test::Sentinel::Fake;

# A sentinel the test steers, for what real ones do not let a test time:
# it names the primary it is told to, for any master name, and announces
# +switch-master to its subscribers when told to name another.
#
#   my $f = ApiKey::Test::Sentinel::Fake->start(primary => $redis->port);
#   $f->port;
#   $f->announce($other->port);   # names it from now on, and publishes
#   $f->asked;                    # get-master-addr-by-name asked so far

use strict;
use warnings;

use Carp qw(croak);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

use ApiKey::Test::Proc qw(test_dir fork_child stop_child wait_until);
use ApiKey::Test::RESP qw(resp_parse resp_command resp_bulk resp_array
    resp_status resp_int resp_error);

my $serial = 0;

sub start {
    my ($class, %o) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Listen => 64, ReuseAddr => 1)
        or croak "listen: $!";
    my $self = bless { port => $listen->sockport,
        state => test_dir() . '/fake-sentinel' . ++$serial }, $class;
    $self->_write($o{primary}, 0);
    $self->{child} = fork_child(name => "fake-sentinel$serial",
        code => sub { $self->_serve($listen) });
    close $listen;
    return $self;
}

sub port { $_[0]{port} }

sub _write {
    my ($self, $port, $n) = @_;
    open(my $fh, '>', "$self->{state}.tmp") or croak "$self->{state}: $!";
    print {$fh} "$port $n\n";
    close $fh;
    rename "$self->{state}.tmp", $self->{state} or croak "rename: $!";
}

sub _read {
    my ($self) = @_;
    open(my $fh, '<', $self->{state}) or return;
    my ($port, $n, $asked) = split ' ', scalar(<$fh>) // '';
    return ($port, $n);
}

sub announce {
    my ($self, $port) = @_;
    my (undef, $n) = $self->_read;
    $self->_write($port, $n + 1);
}

sub asked {
    my ($self) = @_;
    open(my $fh, '<', "$self->{state}.asked") or return 0;
    return -s $fh;
}

sub stop { stop_child($_[0]{child}) if $_[0]{child} }

sub _serve {
    my ($self, $listen) = @_;
    $SIG{PIPE} = 'IGNORE';
    my $sel = IO::Select->new($listen);
    my (%buf, %sub);
    my ($port, $n) = $self->_read;
    for ( ;; ) {
        for my $s ($sel->can_read(0.005)) {
            if ($s == $listen) {
                my $c = $listen->accept or next;
                $sel->add($c);
                $buf{$c} = '';
                next;
            }
            my $got = sysread($s, my $chunk, 4096);
            if (!$got) {
                $sel->remove($s);
                delete $buf{$s};
                delete $sub{$s};
                close $s;
                next;
            }
            $buf{$s} .= $chunk;
            while (my ($ok, $cmd) = resp_parse(\$buf{$s})) {
                my $name = lc($cmd->[0] // '');
                my $out;
                if ($name eq 'subscribe') {
                    $sub{$s} = $s;
                    $out = resp_array(resp_bulk('subscribe'),
                        resp_bulk($cmd->[1]), resp_int(1));
                } elsif ($name eq 'ping') {
                    $out = $sub{$s} ? resp_array(resp_bulk('pong'),
                        resp_bulk('')) : resp_status('PONG');
                } elsif ($name eq 'sentinel') {
                    open(my $fh, '>>', "$self->{state}.asked");
                    print {$fh} 'x';
                    close $fh;
                    $out = resp_array(resp_bulk('127.0.0.1'),
                        resp_bulk($port));
                } else {
                    $out = resp_error('ERR unknown command');
                }
                syswrite($s, $out);
            }
        }
        my ($p, $m) = $self->_read;
        next unless defined $m && $m != $n;
        my $msg = resp_array(resp_bulk('message'),
            resp_bulk('+switch-master'),
            resp_bulk("mymaster 127.0.0.1 $port 127.0.0.1 $p"));
        ($port, $n) = ($p, $m);
        syswrite($_, $msg) for values %sub;
    }
}

1;
