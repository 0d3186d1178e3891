package ApiKey::Test::Cluster;

# A Redis Cluster on 127.0.0.1 made by the test: redis-server
# --cluster-enabled yes on free ports (the bus port chosen too), joined by
# redis-cli --cluster create with one replica per primary, a small
# cluster-node-timeout, and cluster-require-full-coverage no (during a
# failover the other shards keep answering).
#
#   my $cl = ApiKey::Test::Cluster->start(primaries => 3, replicas => 1);
#   $cl->conf;                 # "cluster 127.0.0.1:P1;\ncluster ...;\n"
#   $cl->primaries;            # ApiKey::Test::Redis of each primary now
#   $cl->replicas;
#   $cl->owner($key);          # the primary whose slot holds $key
#   $cl->slot($key);           # CLUSTER KEYSLOT
#   $cl->seed_key($token, id => 'x', ...);   # written to the owner
#   $cl->wait_ok;              # every live node says cluster_state:ok
#   $cl->move_slot($slot, $to);   # MIGRATING/IMPORTING, MIGRATE, NODE

use strict;
use warnings;

use Carp qw(croak);
use Time::HiRes qw(time sleep);

use ApiKey::Test ();
use ApiKey::Test::Proc qw(free_port test_dir wait_until slack);
use ApiKey::Test::Redis;

sub start {
    my ($class, %o) = @_;
    my $self = bless { dir => test_dir(), timeout => $o{node_timeout}
        // 500 }, $class;
    my $n = ($o{primaries} // 3) * (1 + ($o{replicas} // 1));
    for my $i (1 .. $n) {
        my $port = free_port();
        push @{ $self->{nodes} }, ApiKey::Test::Redis->start(port => $port,
            args => [
                '--cluster-enabled', 'yes',
                '--cluster-port', free_port(),
                '--cluster-config-file', "$self->{dir}/nodes-$port.conf",
                '--cluster-node-timeout', $self->{timeout},
                '--cluster-require-full-coverage', 'no',
                '--cluster-replica-validity-factor', 0,
                '--repl-diskless-sync-delay', 0,
                @{ $o{args} // [] } ]);
    }
    my $out = "$self->{dir}/cluster-create.out";
    my $rc = system(join(' ', 'timeout', '60', 'redis-cli', '--cluster',
        'create', (map { $_->addr } @{ $self->{nodes} }),
        '--cluster-replicas', $o{replicas} // 1, '--cluster-yes',
        ">$out", '2>&1'));
    croak "redis-cli --cluster create failed:\n" . _read($out) if $rc;
    $self->wait_ok or croak 'the cluster did not come up';
    return $self;
}

sub _read {
    open(my $fh, '<', $_[0]) or return '';
    local $/;
    return scalar <$fh>;
}

sub nodes { grep { !$_->{dead} } @{ $_[0]{nodes} } }

sub node_at {
    my ($self, $port) = @_;
    my ($n) = grep { $_->port == $port } @{ $self->{nodes} };
    return $n;
}

# "cluster 127.0.0.1:P;" for the first $n nodes (all by default)
sub conf {
    my ($self, $n) = @_;
    my @nodes = $self->nodes;
    @nodes = @nodes[0 .. $n - 1] if $n;
    return join '', map { "cluster " . $_->addr . ";\n" } @nodes;
}

sub _role {
    my ($node) = @_;
    my $r = eval { $node->cmd('ROLE') } or return '';
    return $r->[0];
}

sub primaries { grep { _role($_) eq 'master' } $_[0]->nodes }
sub replicas  { grep { _role($_) eq 'slave' } $_[0]->nodes }

sub slot {
    my ($self, $key) = @_;
    return ($self->nodes)[0]->cmd('CLUSTER', 'KEYSLOT', $key);
}

# slot => port of its primary, from a live node's CLUSTER SLOTS
sub map {
    my ($self) = @_;
    for my $n ($self->nodes) {
        my $r = eval { $n->cmd('CLUSTER', 'SLOTS') } or next;
        my %m;
        for my $range (@$r) {
            $m{$_} = $range->[2][1] for $range->[0] .. $range->[1];
        }
        return \%m;
    }
    croak 'no node answered CLUSTER SLOTS';
}

sub owner {
    my ($self, $key) = @_;
    my $port = $self->map->{ $self->slot($key) }
        // croak "no primary serves the slot of $key";
    return $self->node_at($port);
}

# seed_key as ApiKey::Test's, on the primary that owns the record's slot
sub seed_key {
    my ($self, $token, %f) = @_;
    my %o = map { substr($_, 1) => $f{$_} } grep { /^-/ } keys %f;
    my $key = ApiKey::Test::key_hash($token, %o);
    return ApiKey::Test::seed_key($self->owner($key), $token, %f);
}

# every live node says cluster_state:ok, knows all live nodes, and agrees
# on who serves every slot
sub wait_ok {
    my ($self, $timeout) = @_;
    my $live = scalar $self->nodes;
    return wait_until(sub {
        my $sig;
        for my $n ($self->nodes) {
            my $info = eval { $n->cmd('CLUSTER', 'INFO') } or return 0;
            return 0 unless $info =~ /cluster_state:ok/
                && $info =~ /cluster_slots_assigned:16384/;
            my $slots = eval { $n->cmd('CLUSTER', 'SLOTS') } or return 0;
            my $s = join ',', sort map { "$_->[0]-$_->[1]:$_->[2][1]" }
                @$slots;
            $sig //= $s;
            return 0 unless $s eq $sig;
        }
        for my $r ($self->replicas) {
            my $i = $r->info('replication');
            return 0 unless ($i->{master_link_status} // '') eq 'up';
        }
        return 1;
    }, $timeout // slack(30), 0.05);
}

# Moves one slot and its keys to another primary, as redis-cli --cluster
# reshard does, step by step: IMPORTING on the target, MIGRATING on the
# source, MIGRATE of its keys (a few at a time, with $between run after
# each batch), then SETSLOT NODE everywhere.
sub move_slot {
    my ($self, $slot, $to, %o) = @_;
    my $from = $self->node_at($self->map->{$slot});
    croak "slot $slot is on " . $from->port . ' already'
        if $from->port == $to->port;
    my $to_id = $to->cmd('CLUSTER', 'MYID');
    my $from_id = $from->cmd('CLUSTER', 'MYID');
    $to->cmd('CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $from_id);
    $from->cmd('CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $to_id);
    for (;;) {
        my $keys = $from->cmd('CLUSTER', 'GETKEYSINSLOT', $slot,
            $o{batch} // 5);
        last unless @$keys;
        $from->cmd('MIGRATE', '127.0.0.1', $to->port, '', 0, 5000,
            'KEYS', @$keys);
        $o{between}->() if $o{between};
    }
    $_->cmd('CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id)
        for ($to, $from, grep { $_->port != $to->port
            && $_->port != $from->port } $self->primaries);
    return $from;
}

1;
