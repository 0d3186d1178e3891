package ApiKey::Test::ClusterCLI;

# A Redis Cluster for the apikey tool's tests: six redis-server
# --cluster-enabled yes on free loopback ports in the test directory,
# joined by redis-cli --cluster create into three primaries with a replica
# each, and slots moved by hand as redis-cli --cluster reshard does.
#
#   my $c = ApiKey::Test::ClusterCLI->start(
#       users => ['nohset on >pw ~* &* +@all -hset'],    # on every node
#       tls   => $pki);       # an ApiKey::Test::TLS: a TLS port beside
#                             # the plain one, the bus over TLS
#   $c->seed;                 # "127.0.0.1:PORT" of the first node
#   $c->tls_seed;             # its TLS port, where CLUSTER SLOTS names
#                             # every node's TLS port
#   $c->primaries;            # the ApiKey::Test::Redis that are primaries
#   $c->slot($key);           # CLUSTER KEYSLOT
#   $c->owner($slot);         # the primary serving a slot
#   $c->keys;                 # every key on the primaries
#   $c->migrate($slot, $to, start => 1);   # MIGRATING/IMPORTING, keys moved
#   $c->migrate($slot, $to);               # and the slot given to $to

use strict;
use warnings;

use Carp qw(croak);

use ApiKey::Test::Proc qw(free_port test_dir wait_until);
use ApiKey::Test::Redis ();

sub start {
    my ($class, %o) = @_;
    my $dir = test_dir();
    my $self = bless { dir => $dir }, $class;

    for my $i (0 .. 5) {
        my $tls = $o{tls} ? free_port() : undef;
        my @tls = $o{tls} ? ($o{tls}->redis_args($tls),
            '--tls-cluster', 'yes', '--tls-replication', 'yes') : ();
        push @{ $self->{nodes} }, ApiKey::Test::Redis->start(
            users => $o{users} // [],
            args => [@tls, '--cluster-enabled', 'yes',
                '--cluster-config-file', "$dir/nodes-$i.conf",
                '--cluster-port', free_port(),
                '--cluster-node-timeout', 1000,
                '--cluster-require-full-coverage', 'no']);
        $self->{nodes}[-1]{tls_port} = $tls;
    }

    my @addr = map { $_->addr } @{ $self->{nodes} };
    my $out = `timeout 60 redis-cli --cluster create @addr --cluster-replicas 1 --cluster-yes 2>&1`;
    croak "redis-cli --cluster create failed:\n$out" if $?;

    for my $n (@{ $self->{nodes} }) {
        wait_until(sub {
            (eval { $n->cmd('CLUSTER', 'INFO') } // '')
                =~ /cluster_state:ok/
        }, 30) or croak 'the cluster is not ok on ' . $n->addr;
    }

    # the replicas know their primaries before anything is written
    wait_until(sub { scalar(grep { $_->cmd('ROLE')->[0] eq 'slave'
        && $_->info('replication')->{master_link_status} eq 'up' }
        @{ $self->{nodes} }) == 3 }, 30)
        or croak 'the replicas did not sync';

    return $self;
}

sub nodes { @{ $_[0]->{nodes} } }

sub seed { $_[0]->{nodes}[0]->addr }

sub tls_seed { "127.0.0.1:$_[0]->{nodes}[0]{tls_port}" }

sub primaries {
    my ($self) = @_;
    return grep { $_->cmd('ROLE')->[0] eq 'master' } @{ $self->{nodes} };
}

sub id {
    my ($self, $node) = @_;
    return $node->cmd('CLUSTER', 'MYID');
}

sub slot {
    my ($self, $key) = @_;
    return $self->{nodes}[0]->cmd('CLUSTER', 'KEYSLOT', $key);
}

sub owner {
    my ($self, $slot) = @_;
    for my $range (@{ $self->{nodes}[0]->cmd('CLUSTER', 'SLOTS') }) {
        next unless $range->[0] <= $slot && $slot <= $range->[1];
        my $port = $range->[2][1];
        my ($n) = grep { $_->port == $port } @{ $self->{nodes} };
        return $n;
    }
    croak "no node serves slot $slot";
}

sub keys {
    my ($self) = @_;
    return map { @{ $_->cmd('KEYS', '*') } } $self->primaries;
}

# Moves a slot to another primary with its keys, as redis-cli --cluster
# reshard does; with start => 1 it stops half-way: the keys moved, the
# slot still the source's, MIGRATING there and IMPORTING on $to, so that
# the source answers -ASK for them.
sub migrate {
    my ($self, $slot, $to, %o) = @_;
    my $from = $self->owner($slot);
    croak 'the slot is already there' if $from == $to;
    my ($fid, $tid) = ($self->id($from), $self->id($to));

    $to->cmd('CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $fid);
    $from->cmd('CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $tid);

    for (;;) {
        my $keys = $from->cmd('CLUSTER', 'GETKEYSINSLOT', $slot, 100);
        last unless @$keys;
        # between nodes, TLS when the bus is
        $from->cmd('MIGRATE', '127.0.0.1', $to->{tls_port} // $to->port, '',
            0, 5000,
            'KEYS', @$keys);
    }
    return if $o{start};

    $_->cmd('CLUSTER', 'SETSLOT', $slot, 'NODE', $tid)
        for $to, $from, grep { $_ != $to && $_ != $from } $self->primaries;

    # every node tells the new owner before the test goes on
    wait_until(sub {
        !grep { my $n = $_;
            !grep { $_->[0] <= $slot && $slot <= $_->[1]
                && $_->[2][1] == $to->port }
                @{ $n->cmd('CLUSTER', 'SLOTS') }
        } @{ $self->{nodes} }
    }, 15) or croak "slot $slot is not $tid\'s on every node";
}

1;
