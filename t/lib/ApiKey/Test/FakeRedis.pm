package ApiKey::Test::FakeRedis;

# A fake Redis for faults: a forked server on 127.0.0.1 that forks again
# per connection, parses RESP commands (pipelined or not) and answers each
# through a handler.  By default it behaves like a tiny Redis holding hashes
# (AUTH, SELECT, PING, HMGET, HGETALL, HSET, DEL), so seed_key() works on it.
#
#   my $fake = ApiKey::Test::FakeRedis->start(handler => sub {
#       my ($cmd, $ctx) = @_;      # $cmd = ['HMGET', key, fields...]
#       return undef;                           # the default answer
#       return resp_error('ERR boom');          # these bytes
#       return [send => "*6\r\n\$3\r\nk_1", sleep => 0.05, send => $rest];
#       return [stall => 1];                    # never answer
#       return [sleep => 0.3, send => $ctx->{default}->()];
#       return [send => substr($reply, 0, 9), close => 1];
#       return [defer => $reply];   # sent with the next bytes, or after
#                                   # 50 ms without a command: replies
#                                   # of a pipeline in one packet
#   });
#
# $ctx: conn (connection number from 1), n (command number within the
# connection), seq (command number across all connections), default (a
# code ref giving the default reply bytes).
#
# $fake->connections; $fake->commands (['HMGET', ...] lists, in order);
# $fake->commands_named('HMGET'); $fake->stop.

use strict;
use warnings;

use Carp qw(croak);
use Fcntl qw(:flock O_RDWR O_CREAT);
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use POSIX qw(WNOHANG);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);

use parent 'ApiKey::Test::Server';
use ApiKey::Test::Proc qw(test_dir);
use ApiKey::Test::RESP qw(:all);

my $serial = 0;

sub start {
    my ($class, %o) = @_;
    my $self = bless { dir => $o{dir} // test_dir(),
        handler => $o{handler}, password => $o{password} }, $class;
    my $listen = $self->listen_socket(port => $o{port});
    my $base = "$self->{dir}/fake-redis-$self->{port}-" . ++$serial;
    $self->{log} = "$base.log";
    $self->{data} = "$base.data";
    $self->{seq} = "$base.seq";
    for my $f (@$self{qw(log seq)}) {
        open(my $fh, '>', $f) or croak "$f: $!";
        close $fh;
    }
    $self->_save_data($o{data} // {});
    return $self->fork_serving('fake-redis', $listen,
        sub { $self->_serve($listen) });
}

# Everything that happened, in order: { ev => 'connect' | 'cmd' | 'close'
# | 'closed_by_fake' | 'protocol_error', conn => N, args => [...] }.
sub events {
    my ($self) = @_;
    open(my $fh, '<', $self->{log}) or return ();
    my $json = JSON::PP->new;
    my @e;
    while (my $line = <$fh>) {
        next unless $line =~ /\n\z/;
        push @e, $json->decode($line);
    }
    return @e;
}

# Connections accepted so far.
sub connections {
    my ($self) = @_;
    return scalar grep { $_->{ev} eq 'connect' } $self->events;
}

# Commands received so far, each an array reference ['HMGET', ...].
sub commands {
    my ($self) = @_;
    return map { $_->{args} } grep { $_->{ev} eq 'cmd' } $self->events;
}

sub commands_named {
    my ($self, $name) = @_;
    return grep { uc $_->[0] eq uc $name } $self->commands;
}

# Commands per connection: { conn => [ [...], ... ] }
sub commands_by_connection {
    my ($self) = @_;
    my %c;
    for my $e (grep { $_->{ev} eq 'cmd' } $self->events) {
        push @{ $c{ $e->{conn} } }, $e->{args};
    }
    return \%c;
}


# The data set lives in a file so that the test can change it at any time.
sub _load_data {
    my ($self) = @_;
    open(my $fh, '<', $self->{data}) or return {};
    local $/;
    my $s = <$fh>;
    return length($s) ? JSON::PP->new->decode($s) : {};
}

sub _save_data {
    my ($self, $data) = @_;
    my $tmp = "$self->{data}.tmp.$$";
    open(my $fh, '>', $tmp) or croak "$tmp: $!";
    print {$fh} JSON::PP->new->canonical->encode($data);
    close $fh;
    rename $tmp, $self->{data} or croak "rename $tmp: $!";
}

# The same interface as ApiKey::Test::Redis for seeding: runs the command
# on the data set directly, returns the decoded default reply.
sub cmd {
    my ($self, @args) = @_;
    my $bytes = $self->_default(\@args, 1);
    my @r = resp_parse(\$bytes);
    return $r[1];
}

sub _default {
    my ($self, $cmd, $write) = @_;
    my $name = uc($cmd->[0] // '');
    my @a = @$cmd[1 .. $#$cmd];
    if ($name eq 'AUTH') {
        return resp_status('OK') unless defined $self->{password};
        return resp_status('OK') if $a[-1] eq $self->{password};
        return resp_error('WRONGPASS invalid username-password pair or '
            . 'user is disabled.');
    }
    return resp_status('OK') if $name eq 'SELECT';
    if ($name eq 'PING') {
        # as Redis: PING with an argument echoes it as a bulk string
        return @a ? resp_bulk($a[0]) : resp_status('PONG');
    }
    if ($name eq 'HMGET') {
        my $h = $self->_load_data->{ $a[0] } // {};
        return resp_array(map { resp_bulk($h->{$_}) } @a[1 .. $#a]);
    }
    if ($name eq 'HGETALL') {
        my $h = $self->_load_data->{ $a[0] } // {};
        return resp_array(map { resp_bulk($_), resp_bulk($h->{$_}) }
            sort keys %$h);
    }
    if ($name eq 'HSET' || $name eq 'DEL') {
        my $fh = $self->_lock;
        my $data = $self->_load_data;
        my $n = 0;
        if ($name eq 'DEL') {
            $n += defined delete $data->{$_} ? 1 : 0 for @a;
        } else {
            my $key = shift @a;
            while (@a) {
                my ($f, $v) = splice @a, 0, 2;
                $n++ unless exists $data->{$key}{$f};
                $data->{$key}{$f} = $v;
            }
        }
        $self->_save_data($data);
        close $fh;
        return resp_int($n);
    }
    return resp_error("ERR unknown command '$cmd->[0]'");
}

sub _lock {
    my ($self) = @_;
    sysopen(my $fh, $self->{seq}, O_RDWR | O_CREAT) or die "$self->{seq}: $!";
    flock($fh, LOCK_EX) or die "flock: $!";
    return $fh;
}

sub _next_seq {
    my ($self) = @_;
    my $fh = $self->_lock;
    my $n = <$fh> // 0;
    chomp $n;
    $n = ($n || 0) + 1;
    seek($fh, 0, 0);
    truncate($fh, 0);
    syswrite($fh, "$n\n");
    close $fh;
    return $n;
}


sub _serve {
    my ($self, $listen) = @_;
    $SIG{PIPE} = 'IGNORE';
    $SIG{CHLD} = 'DEFAULT';
    open(my $log, '>>', $self->{log}) or die "$self->{log}: $!";
    $log->autoflush(1);
    $self->{logfh} = $log;
    my $conn = 0;
    my $sel = IO::Select->new($listen);
    for (;;) {
        1 while waitpid(-1, WNOHANG) > 0;
        next unless $sel->can_read(0.5);
        my $c = $listen->accept or next;
        $conn++;
        $self->_event(ev => 'connect', conn => $conn);
        my $pid = fork;
        if (!defined $pid) {
            close $c;
            next;
        }
        if ($pid == 0) {
            close $listen;
            eval { $self->_connection($c, $conn) };
            print STDERR "# fake redis connection $conn: $@" if $@;
            POSIX::_exit(0);
        }
        close $c;
    }
}

sub _event {
    my ($self, %e) = @_;
    print { $self->{logfh} } JSON::PP->new->canonical->encode(\%e), "\n";
}

sub _connection {
    my ($self, $sock, $conn) = @_;
    binmode $sock;
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    my $sel = IO::Select->new($sock);
    my $buf = '';
    my $n = 0;
    $self->{deferred} = '';
    for (;;) {
        unless ($sel->can_read(length $self->{deferred} ? 0.05 : 1)) {
            next unless length $self->{deferred};
            return unless $self->_act($sock, $sel, $conn, [send => '']);
            next;
        }
        my $r = sysread($sock, $buf, 65536, length $buf);
        if (!$r) {
            $self->_event(ev => 'close', conn => $conn);
            return;
        }
        for (;;) {
            my @v = eval { resp_parse(\$buf) };
            if ($@) {
                $self->_event(ev => 'protocol_error', conn => $conn,
                    error => "$@");
                return;
            }
            last unless @v;
            my $cmd = ref $v[1] eq 'ARRAY' ? $v[1] : [$v[1]];
            $n++;
            $self->_event(ev => 'cmd', conn => $conn, args => $cmd);
            my $ctx = { conn => $conn, n => $n, seq => $self->_next_seq,
                default => sub { $self->_default($cmd) } };
            my $action = $self->{handler} ? $self->{handler}->($cmd, $ctx)
                : undef;
            $action //= $self->_default($cmd);
            $action = [send => $action] unless ref $action;
            return unless $self->_act($sock, $sel, $conn, $action);
        }
    }
}

# Runs a list of steps; returns false when the connection is finished.
sub _act {
    my ($self, $sock, $sel, $conn, $steps) = @_;
    my @s = @$steps;
    while (@s) {
        my ($what, $arg) = splice @s, 0, 2;
        if ($what eq 'defer') {
            $self->{deferred} .= $arg;
        } elsif ($what eq 'send') {
            $arg = $self->{deferred} . $arg;
            $self->{deferred} = '';
            my $off = 0;
            while ($off < length $arg) {
                my $w = syswrite($sock, $arg, length($arg) - $off, $off);
                return 0 unless defined $w;
                $off += $w;
            }
        } elsif ($what eq 'sleep') {
            sleep $arg;
        } elsif ($what eq 'close') {
            $self->_event(ev => 'closed_by_fake', conn => $conn);
            close $sock;
            return 0;
        } elsif ($what eq 'stall') {
            # keep the connection open and silent until the peer leaves
            for (;;) {
                next unless $sel->can_read(1);
                my $junk;
                my $r = sysread($sock, $junk, 65536);
                if (!$r) {
                    $self->_event(ev => 'close', conn => $conn);
                    return 0;
                }
            }
        } else {
            die "fake redis: unknown step '$what'\n";
        }
    }
    return 1;
}


1;
