package ApiKey::Test::Proc;

# Child processes of a test, and the guarantees that none outlives it:
#
# - every child runs in its own process group, and external programs run
#   under coreutils `timeout`, so each has a bounded lifetime even if the
#   whole test process tree is killed with SIGKILL;
# - a watchdog process learns every process group through a pipe; when the
#   test process ends in any way (the pipe reaches EOF) or its lifetime is
#   over, it kills the groups still registered;
# - an END block stops everything in reverse order of creation, gracefully
#   first (each child may have its own stop code), then with SIGKILL.

use strict;
use warnings;

use Exporter 'import';
use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path ();
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(free_port listen_free test_dir spawn fork_child
    stop_child
    child_alive wait_until children_of project_root lifetime slack);

our $LIFETIME = $ENV{APIKEY_TEST_LIFETIME} || 300;

my $owner = $$;         # only this process cleans up
my @children;           # { pid, pgid, name, stop }
my ($watchdog_fh, $watchdog_pid);
my %ports_used;
my $dir;

sub lifetime { return $LIFETIME }

# A timing tolerance, scaled by APIKEY_TEST_TIME_FACTOR for slow runs
# (sanitizers, valgrind): slack(0.1) is 100 ms on a normal run.
sub slack ($) { return $_[0] * ($ENV{APIKEY_TEST_TIME_FACTOR} || 1) }

sub project_root {
    return abs_path(dirname(__FILE__) . '/../../../..');
}


# One temporary directory per test file, removed at the end unless
# APIKEY_TEST_KEEP is set or the test failed (its logs and screenshots are
# what a reader of the failure needs; see stop_all).  World-readable so
# that nginx workers running as nobody can reach sockets and temp paths
# inside it.
sub test_dir {
    return $dir if defined $dir;
    $dir = tempdir('apikey-t-XXXXXX', TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $dir;
    _watchdog();
    print {$watchdog_fh} "D$dir\n" unless $ENV{APIKEY_TEST_KEEP};
    print STDERR "# test dir kept: $dir\n" if $ENV{APIKEY_TEST_KEEP};
    return $dir;
}


# A free TCP port on 127.0.0.1, below the ephemeral range so that outgoing
# connections (nginx to Redis) never take it between the check and the use,
# and never handed out twice by one test process.
sub free_port {
    for (1 .. 500) {
        my $port = 20000 + int(rand(12000));
        next if $ports_used{$port};
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => $port, Proto => 'tcp', Listen => 1, ReuseAddr => 1)
            or next;
        close $s;
        $ports_used{$port} = 1;
        return $port;
    }
    croak "no free port found on 127.0.0.1";
}


# ($socket, $port): a socket listening on 127.0.0.1, at a free port or at
# the one given; a fake server forks with it (fork_child), and the parent
# closes its copy.
sub listen_free {
    my (%o) = @_;
    for (1 .. 20) {
        my $port = $o{port} // free_port();
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => $port, Proto => 'tcp', Listen => $o{backlog} // 128,
            ReuseAddr => 1);
        return ($s, $port) if $s;
        croak "listen on 127.0.0.1:$port: $!" if $o{port};
    }
    croak "no port to listen on";
}


sub _watchdog {
    return if $watchdog_fh;
    pipe(my $r, my $w) or croak "pipe: $!";
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $w;
        setpgrp(0, 0);
        $SIG{$_} = 'IGNORE' for qw(INT TERM HUP QUIT PIPE);
        my (%groups, $rmdir);
        my $kill = sub {
            kill 'CONT', -$_ for keys %groups;
            kill 'KILL', -$_ for keys %groups;
            # the test process died before File::Temp could clean up
            system('rm', '-rf', '--', $rmdir)
                if $rmdir && $rmdir =~ m{/apikey-t-\w+$} && -d $rmdir;
            POSIX::_exit(0);
        };
        $SIG{ALRM} = $kill;
        alarm($LIFETIME + 30);
        while (defined(my $line = <$r>)) {
            if ($line =~ /^\+(\d+)$/) {
                $groups{$1} = 1;
            } elsif ($line =~ /^-(\d+)$/) {
                delete $groups{$1};
            } elsif ($line =~ /^D(.+)$/) {
                $rmdir = $1;
            } elsif ($line =~ /^d$/) {
                undef $rmdir;
            }
        }
        $kill->();
    }
    close $r;
    $w->autoflush(1);
    ($watchdog_fh, $watchdog_pid) = ($w, $pid);
}

sub _register {
    my ($pgid) = @_;
    _watchdog();
    print {$watchdog_fh} "+$pgid\n";
}

sub _unregister {
    my ($pgid) = @_;
    print {$watchdog_fh} "-$pgid\n" if $watchdog_fh;
}


# Pids whose parent is $pid.
sub children_of {
    my ($ppid) = @_;
    my @kids;
    opendir(my $dh, '/proc') or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open(my $fh, '<', "/proc/$p/stat") or next;
        my $stat = <$fh> // next;
        close $fh;
        # "pid (comm) state ppid ..."; comm may hold spaces and parentheses
        my $rest = substr($stat, rindex($stat, ')') + 2);
        my (undef, $pp) = split / /, $rest;
        push @kids, $p + 0 if defined $pp && $pp == $ppid;
    }
    closedir $dh;
    @kids = sort { $a <=> $b } @kids;
    return @kids;
}

sub wait_until {
    my ($cond, $timeout, $step) = @_;
    $timeout //= 5;
    $step //= 0.02;
    my $end = time + $timeout;
    for (;;) {
        my $v = $cond->();
        return $v if $v;
        return undef if time >= $end;
        sleep $step;
    }
}

sub child_alive {
    my ($pid) = @_;
    return 0 unless $pid;
    return 0 if waitpid($pid, WNOHANG) == $pid;
    return kill(0, $pid) ? 1 : 0;
}


# spawn(name => ..., cmd => [...], out => file, err => file, stop => sub)
# Runs cmd under `timeout` in a new process group.  Returns a hash with
# pid (the program itself, not timeout), wrapper (timeout's pid, also the
# process group id) and name.
sub spawn {
    my (%o) = @_;
    my $cmd = $o{cmd} or croak "spawn: cmd required";
    _watchdog();
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $watchdog_fh;
        setpgrp(0, 0);
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', $o{out} // '/dev/null');
        open(STDERR, '>>', $o{err} // $o{out} // '/dev/null');
        exec('timeout', '-k', '5', $o{lifetime} // $LIFETIME, @$cmd)
            or POSIX::_exit(127);
    }
    my $c = { name => $o{name} // $cmd->[0], wrapper => $pid, pgid => $pid,
        stop => $o{stop} };
    _register($pid);
    push @children, $c;

    # timeout forks the program at once
    my ($real) = wait_until(sub {
        return (children_of($pid))[0] if child_alive($pid);
        return -1;
    }, 5, 0.005);
    croak "spawn $c->{name}: could not find the process" unless $real;
    croak "spawn $c->{name}: exited at once" if $real == -1;
    $c->{pid} = $real;
    return $c;
}


# fork_child(name => ..., code => sub { ... }, stop => sub)
# Runs Perl code in a forked process with its own process group and an
# alarm at the end of its lifetime; it never returns into the test.
sub fork_child {
    my (%o) = @_;
    _watchdog();
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $watchdog_fh;
        @children = ();
        setpgrp(0, 0);
        $SIG{ALRM} = sub { POSIX::_exit(0) };
        $SIG{TERM} = sub { POSIX::_exit(0) };
        $SIG{INT} = 'DEFAULT';
        alarm($o{lifetime} // $LIFETIME);
        open(STDIN, '<', '/dev/null');
        eval { $o{code}->() };
        print STDERR "# child $o{name}: $@" if $@;
        POSIX::_exit($@ ? 1 : 0);
    }
    my $c = { name => $o{name} // 'child', pid => $pid, pgid => $pid,
        wrapper => $pid, stop => $o{stop} };
    _register($pid);
    push @children, $c;
    return $c;
}


# Stops one child: its own stop code first (bounded), then SIGKILL to the
# whole process group, and reaps the wrapper.
sub stop_child {
    my ($c, %o) = @_;
    return unless $c && !$c->{stopped};
    if ($c->{stop} && !$o{kill}) {
        eval { $c->{stop}->($c) };
    }
    if (child_alive($c->{wrapper})) {
        kill 'CONT', -$c->{pgid};
        kill 'TERM', -$c->{pgid};
        wait_until(sub { !child_alive($c->{wrapper}) }, 2);
    }
    kill 'CONT', -$c->{pgid};
    kill 'KILL', -$c->{pgid};
    waitpid($c->{wrapper}, 0);
    $c->{stopped} = 1;
    _unregister($c->{pgid});
    @children = grep { $_ != $c } @children;
}

sub stop_all {
    my ($failed) = @_;
    return unless $$ == $owner;
    stop_child($_) for reverse @{[ @children ]};
    if ($watchdog_fh) {
        # the directory is removed here, or kept, not by the watchdog
        print {$watchdog_fh} "d\n";
        close $watchdog_fh;
        waitpid($watchdog_pid, 0);
        undef $watchdog_fh;
    }
    return if !defined $dir || $ENV{APIKEY_TEST_KEEP};
    if ($failed) {
        print STDERR "# the test failed: its directory is kept: $dir\n";
    } else {
        File::Path::rmtree($dir);
    }
}


# A test that dies, or is interrupted, still cleans up.
$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub { exit 130 };

# Test::Builder's own END block, which turns failures into the exit
# status, runs after this one: a failure is seen as a test that died ($?)
# or one that is no longer passing.
END {
    my $failed = $? != 0
        || (Test::Builder->can('new') && !Test::Builder->new->is_passing);
    local $?;
    stop_all($failed);
}


1;
