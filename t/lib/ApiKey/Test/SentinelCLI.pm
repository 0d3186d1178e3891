package ApiKey::Test::SentinelCLI;

# A Redis deployment behind Sentinel for the apikey tool's tests: a
# primary, one replica and sentinels (redis-server --sentinel with a
# config file in the test directory) on free loopback ports, optionally
# all over TLS and with passwords.
#
#   my $d = ApiKey::Test::SentinelCLI->start(
#       sentinels => 2,                   # default 2, quorum 1
#       tls       => $pki,                # an ApiKey::Test::TLS: TLS only
#       password  => 'pw',                # the data nodes' requirepass
#       sentinel_password => 'spw');      # the sentinels' requirepass
#   $d->sentinel_list;       # "127.0.0.1:P1,127.0.0.1:P2" (TLS ports)
#   $d->master_port;         # what the sentinels name now
#   $d->node_by_port($p);    # the ApiKey::Test::Redis (plain port to ask)
#   $d->failover;            # SENTINEL FAILOVER, waits for the new name
#   $d->stop_sentinel(0);
#
# The data nodes keep a plain port for the test's own client; with tls the
# sentinels, replication and the tool use the TLS ports.

use strict;
use warnings;

use Carp qw(croak);
use Time::HiRes qw(sleep time);

use ApiKey::Test::Proc qw(free_port test_dir spawn stop_child wait_until);
use ApiKey::Test::Redis ();

our $MASTER = 'mymaster';

sub start {
    my ($class, %o) = @_;
    my $self = bless { %o, dir => test_dir() }, $class;
    my $pki = $o{tls};

    my @node;
    for my $i (0, 1) {
        my $tls = $pki ? free_port() : undef;
        my @args = $pki
            ? ($pki->redis_args($tls), '--tls-replication', 'yes') : ();
        push @args, '--masterauth', $o{password} if defined $o{password};
        push @args, '--replicaof', '127.0.0.1', $node[0]{data_port} if $i;
        my $r = ApiKey::Test::Redis->start(
            defined $o{password} ? (password => $o{password}) : (),
            args => \@args);
        $r->{data_port} = $tls // $r->port;
        push @node, $r;
    }
    $self->{nodes} = \@node;

    wait_until(sub {
        (eval { $node[1]->info('replication')->{master_link_status} } // '')
            eq 'up'
    }, 10) or croak "the replica did not sync:\n" . $node[1]->log;

    for my $i (1 .. ($o{sentinels} // 2)) {
        push @{ $self->{sentinels} }, $self->_sentinel($i);
    }

    wait_until(sub { ($self->master_port // 0) == $node[0]{data_port} }, 10)
        or croak 'the sentinels do not name the primary';

    # a failover needs the replica known to the sentinels, and linked
    for my $i (0 .. $#{ $self->{sentinels} }) {
        wait_until(sub {
            my $r = eval { $self->ask($i, 'SENTINEL', 'replicas', $MASTER) };
            my %h = $r && @$r ? @{ $r->[0] } : ();
            return ($h{flags} // '') eq 'slave'
                && ($h{'master-link-status'} // '') eq 'ok';
        }, 15) or croak "sentinel $i does not know the replica";
    }

    return $self;
}

sub _sentinel {
    my ($self, $i) = @_;
    my $dir = $self->{dir};
    my $pki = $self->{tls};
    my $port = free_port();
    my $conf = "$dir/sentinel$i.conf";
    my $master = $self->{nodes}[0]{data_port};

    # with TLS, a plain port beside it for the test to ask
    my $ask = $pki ? free_port() : $port;

    open(my $fh, '>', $conf) or croak "$conf: $!";
    print {$fh} "bind 127.0.0.1\n", "protected-mode no\n",
        "daemonize no\n", "dir $dir\n", "logfile $dir/sentinel$i.log\n",
        "port $ask\n";
    if ($pki) {
        my $d = $pki->dir;
        print {$fh} "tls-port $port\n",
            "tls-cert-file $d/server.crt\n", "tls-key-file $d/server.key\n",
            "tls-ca-cert-file $d/ca.crt\n", "tls-auth-clients no\n",
            "tls-replication yes\n";
    }
    print {$fh} "requirepass $self->{sentinel_password}\n",
        "sentinel sentinel-pass $self->{sentinel_password}\n"
        if defined $self->{sentinel_password};
    print {$fh} "sentinel monitor $MASTER 127.0.0.1 $master 1\n",
        "sentinel down-after-milliseconds $MASTER 1000\n",
        "sentinel failover-timeout $MASTER 4000\n",
        "sentinel parallel-syncs $MASTER 1\n";
    print {$fh} "sentinel auth-pass $MASTER $self->{password}\n"
        if defined $self->{password};
    close $fh;

    my $child = spawn(name => "sentinel$i",
        cmd => ['redis-server', $conf, '--sentinel'],
        out => "$dir/sentinel$i.out");
    my $s = { child => $child, port => $port, ask => $ask };
    wait_until(sub { eval { $self->_client($s)->cmd('PING') } }, 10)
        or croak "sentinel $i did not start";
    return $s;
}

sub _client {
    my ($self, $s) = @_;
    return $s->{client} //= do {
        my $c = ApiKey::Test::Redis::Client->new(port => $s->{ask});
        $c->cmd('AUTH', $self->{sentinel_password})
            if defined $self->{sentinel_password};
        $c;
    };
}

# a command to the i-th sentinel that is still up
sub ask {
    my ($self, $i, @cmd) = @_;
    return $self->_client($self->{sentinels}[$i])->cmd(@cmd);
}

sub sentinel_list {
    my ($self) = @_;
    return join ',', map { "127.0.0.1:$_->{port}" }
        grep { !$_->{stopped} } @{ $self->{sentinels} };
}

sub sentinel_ports {
    my ($self) = @_;
    return map { $_->{port} } @{ $self->{sentinels} };
}

# the data port of the primary as the first live sentinel names it
sub master_port {
    my ($self) = @_;
    my ($s) = grep { !$_->{stopped} } @{ $self->{sentinels} };
    my $r = eval { $self->_client($s)->cmd('SENTINEL',
        'get-master-addr-by-name', $MASTER) };
    return $r && ref $r eq 'ARRAY' ? $r->[1] : undef;
}

sub node_by_port {
    my ($self, $port) = @_;
    my ($n) = grep { $_->{data_port} == $port } @{ $self->{nodes} };
    return $n;
}

# ROLE on a new connection: a failover kills the clients of both nodes
sub role {
    my ($self, $node) = @_;
    delete $node->{client};
    my $r = eval { $node->cmd('ROLE') };
    return $r ? $r->[0] : '';
}

# a command to a data node on a new connection, for the same reason
sub node_cmd {
    my ($self, $node, @cmd) = @_;
    delete $node->{client};
    return $node->cmd(@cmd);
}

sub primary { return $_[0]->node_by_port($_[0]->master_port) }

# SENTINEL FAILOVER by hand; returns once every sentinel names the other
# node and it calls itself master
sub failover {
    my ($self) = @_;
    my $old = $self->master_port;
    my ($s) = grep { !$_->{stopped} } @{ $self->{sentinels} };
    $self->_client($s)->cmd('SENTINEL', 'FAILOVER', $MASTER);
    my $new;
    wait_until(sub {
        $new = $self->master_port;
        return $new && $new != $old
            && $self->role($self->node_by_port($new)) eq 'master';
    }, 20) or croak 'no failover within 20 s';

    # the others learn it from the new primary's hello channel
    for my $i (0 .. $#{ $self->{sentinels} }) {
        next if $self->{sentinels}[$i]{stopped};
        wait_until(sub {
            my $r = eval { $self->ask($i, 'SENTINEL',
                'get-master-addr-by-name', $MASTER) };
            return $r && $r->[1] == $new;
        }, 10) or croak "sentinel $i does not name the new primary";
    }
    return $new;
}

sub stop_sentinel {
    my ($self, $i) = @_;
    my $s = $self->{sentinels}[$i];
    stop_child($s->{child}, kill => 1);
    $s->{stopped} = 1;
}

1;
