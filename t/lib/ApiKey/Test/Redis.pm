package ApiKey::Test::Redis;

# A real redis-server on 127.0.0.1 (and optionally a unix socket) in the
# test directory, without persistence, and a small synchronous RESP client.
#
#   my $redis = ApiKey::Test::Redis->start(
#       password   => 'admin-secret',          # requirepass
#       users      => ['nginx on >pw ~apikey:* +hmget'],   # ACL lines
#       unixsocket => 1,
#       args       => ['--maxclients', 100]);
#   $redis->cmd('HSET', 'k', 'f', 'v');       # decoded reply; dies on -ERR
#   $redis->try_cmd('AUTH', 'x');             # errors returned as objects
#   $redis->addr;   # "127.0.0.1:PORT"       $redis->socket  # path
#   $redis->pause; $redis->resume; $redis->kill9; $redis->restart;
#   $redis->connected_clients; $redis->total_connections;
#   $redis->commandstats->{hmget}{calls};

use strict;
use warnings;

use Carp qw(croak);
use IO::Socket::INET;
use IO::Socket::UNIX;
use IO::Select;
use Time::HiRes qw(sleep time);

use ApiKey::Test::Proc qw(free_port test_dir spawn stop_child child_alive
    wait_until);
use ApiKey::Test::RESP qw(resp_command resp_parse is_resp_error);

my $serial = 0;

sub start {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;
    $self->{dir} //= test_dir();
    $self->{port} //= free_port();
    $self->{name} = 'redis' . ++$serial;
    if ($o{unixsocket}) {
        $self->{socket} = "$self->{dir}/$self->{name}.sock";
    }
    $self->_run;
    return $self;
}

sub _run {
    my ($self) = @_;
    my @cmd = ('redis-server',
        '--port', $self->{port},
        '--bind', '127.0.0.1',
        '--save', '',
        '--appendonly', 'no',
        '--daemonize', 'no',
        '--dir', $self->{dir},
        '--logfile', "$self->{dir}/$self->{name}.log",
        '--protected-mode', 'no');
    push @cmd, '--unixsocket', $self->{socket}, '--unixsocketperm', '777'
        if $self->{socket};
    push @cmd, '--requirepass', $self->{password}
        if defined $self->{password};
    push @cmd, '--user', split(/ /, $_) for @{ $self->{users} // [] };
    push @cmd, @{ $self->{args} // [] };

    unlink $self->{socket} if $self->{socket};
    $self->{child} = spawn(name => $self->{name}, cmd => \@cmd,
        out => "$self->{dir}/$self->{name}.out");
    delete $self->{client};

    my $up = wait_until(sub {
        return -1 unless child_alive($self->{child}{wrapper});
        my $c = eval { $self->client };
        return 0 unless $c;
        my $pong = eval { $c->cmd('PING') } // '';
        return $pong eq 'PONG' ? 1 : 0;
    }, 10, 0.01);
    if (!$up || $up == -1) {
        my $log = $self->log;
        croak "redis-server did not start on port $self->{port}:\n$log";
    }
    return $self;
}

sub port   { $_[0]->{port} }
sub socket { $_[0]->{socket} }
sub pid    { $_[0]->{child}{pid} }
sub addr   { "127.0.0.1:$_[0]->{port}" }

sub log {
    my ($self) = @_;
    my $s = '';
    for my $f ("$self->{dir}/$self->{name}.log",
        "$self->{dir}/$self->{name}.out")
    {
        open(my $fh, '<', $f) or next;
        local $/;
        $s .= <$fh>;
    }
    return $s;
}

# A new connection, authenticated as the default user if requirepass is set.
sub connect {
    my ($self, %o) = @_;
    my $c = ApiKey::Test::Redis::Client->new(port => $self->{port}, %o);
    if (defined $self->{password} && !$o{noauth}) {
        $c->cmd('AUTH', $self->{password});
    }
    return $c;
}

# The cached admin connection used by cmd().
sub client {
    my ($self) = @_;
    return $self->{client} //= $self->connect;
}

sub cmd {
    my ($self, @args) = @_;
    return $self->client->cmd(@args);
}

sub try_cmd {
    my ($self, @args) = @_;
    return $self->client->try_cmd(@args);
}


# INFO section parsed into a hash.
sub info {
    my ($self, $section) = @_;
    my $text = $self->cmd('INFO', $section // 'default');
    my %h;
    for (split /\r?\n/, $text) {
        next if /^#/ || !/:/;
        my ($k, $v) = split /:/, $_, 2;
        $h{$k} = $v;
    }
    return \%h;
}

# Clients connected now, not counting the admin connection used to ask.
sub connected_clients {
    my ($self) = @_;
    return $self->info('clients')->{connected_clients} - 1;
}

sub total_connections {
    my ($self) = @_;
    return $self->info('stats')->{total_connections_received};
}

# CLIENT LIST as a list of hashes, without the admin connection.
sub client_list {
    my ($self) = @_;
    my $me = $self->cmd('CLIENT', 'ID');
    my @list;
    for my $line (split /\n/, $self->cmd('CLIENT', 'LIST')) {
        my %c = map { split /=/, $_, 2 } split / /, $line;
        push @list, \%c unless $c{id} == $me;
    }
    return @list;
}

# { hmget => { calls => N, ... }, ... }
sub commandstats {
    my ($self) = @_;
    my $info = $self->info('commandstats');
    my %s;
    for my $k (keys %$info) {
        next unless $k =~ /^cmdstat_(.+)$/;
        my $name = lc $1;
        $s{$name} = { map { split /=/, $_, 2 } split /,/, $info->{$k} };
    }
    return \%s;
}

sub calls {
    my ($self, $command) = @_;
    return $self->commandstats->{lc $command}{calls} // 0;
}


sub pause {
    my ($self) = @_;
    kill 'STOP', $self->pid or croak "SIGSTOP redis: $!";
}

sub resume {
    my ($self) = @_;
    kill 'CONT', $self->pid or croak "SIGCONT redis: $!";
}

sub stop {
    my ($self) = @_;
    delete $self->{client};
    stop_child($self->{child}) if $self->{child};
}

sub kill9 {
    my ($self) = @_;
    delete $self->{client};
    kill 'KILL', $self->pid;
    wait_until(sub { !child_alive($self->{child}{wrapper}) }, 5);
    stop_child($self->{child}, kill => 1);
}

# Starts again on the same port and socket, with an empty data set.
sub restart {
    my ($self) = @_;
    $self->stop;
    return $self->_run;
}


package ApiKey::Test::Redis::Client;

use Carp qw(croak);
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

use ApiKey::Test::RESP qw(resp_command resp_parse is_resp_error);

sub new {
    my ($class, %o) = @_;
    my $sock;
    if ($o{path}) {
        $sock = IO::Socket::UNIX->new(Peer => $o{path}, Type => SOCK_STREAM)
            or croak "connect $o{path}: $!";
    } else {
        $sock = IO::Socket::INET->new(PeerAddr => $o{host} // '127.0.0.1',
            PeerPort => $o{port}, Proto => 'tcp', Timeout => 2)
            or croak "connect 127.0.0.1:$o{port}: $!";
    }
    binmode $sock;
    return bless { sock => $sock, buf => '', timeout => $o{timeout} // 5 },
        $class;
}

sub send_raw {
    my ($self, $bytes) = @_;
    my $sock = $self->{sock};
    local $SIG{PIPE} = 'IGNORE';
    while (length $bytes) {
        my $n = syswrite($sock, $bytes);
        croak "redis write: $!" unless defined $n;
        substr($bytes, 0, $n, '');
    }
}

sub read_reply {
    my ($self) = @_;
    my $sel = IO::Select->new($self->{sock});
    my $end = time + $self->{timeout};
    for (;;) {
        my @r = resp_parse(\$self->{buf});
        return $r[1] if @r;
        my $left = $end - time;
        croak "redis: no reply within $self->{timeout}s" if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread($self->{sock}, $self->{buf}, 65536,
            length $self->{buf});
        croak "redis read: $!" unless defined $n;
        croak "redis closed the connection" if $n == 0;
    }
}

sub try_cmd {
    my ($self, @args) = @_;
    $self->send_raw(resp_command(@args));
    return $self->read_reply;
}

sub cmd {
    my ($self, @args) = @_;
    my $r = $self->try_cmd(@args);
    croak "redis $args[0]: $r" if is_resp_error($r);
    return $r;
}

sub close {
    my ($self) = @_;
    CORE::close($self->{sock}) if $self->{sock};
    delete $self->{sock};
}


1;
