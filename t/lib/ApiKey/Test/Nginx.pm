package ApiKey::Test::Nginx;

# A real nginx (master + workers, not daemonised) in its own directory,
# loading the built module.
#
#   my $nginx = ApiKey::Test::Nginx->start(http => <<'EOF', redis => $redis);
#   server {
#       listen 127.0.0.1:%%PORT%%;
#       location /api/ {
#           apikey on;
#           apikey_redis %%REDIS%%;
#           proxy_pass http://%%ECHO%%;
#       }
#   }
#   EOF
#
# Placeholders in http (and main): %%PORT%% the main port, %%PORT2%% a
# second free port, %%ECHO%% the echo upstream's address (started on
# first use), %%REDIS%% the redis option's address, %%DIR%% the nginx
# directory, and %%NAME%% for every key of the vars option.
#
# Options: workers (1), module (1: load build/ngx_http_apikey_module.so,
# dying loudly when missing), main (text for the main context), redis
# (an object with addr()), vars ({}), echo (an ApiKey::Test::Echo),
# log_level (debug: the error log's level).
#
# $nginx->get($path, %headers), ->request($method, $path, %headers),
# ->raw($bytes), ->client (keep-alive), ->reload(http => ...),
# ->stop, ->error_log, ->error_log_since($mark), ->mark,
# ->worker_pids, ->expect_log(qr/.../).  ApiKey::Test::Nginx->check(http =>
# ...) runs nginx -t.
#
# When the test file ends (done_testing), every nginx it started is
# stopped and its error log checked for [alert], [crit] and [emerg] (but
# those expect_log() names) and for sanitizer reports: see check_logs.

use strict;
use warnings;

use Carp qw(croak);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

use ApiKey::Test::Proc qw(free_port test_dir spawn stop_child child_alive
    wait_until children_of project_root slack);
use ApiKey::Test::HTTP qw(http_raw http_request);
use ApiKey::Test::Echo;

our $NGINX = $ENV{APIKEY_TEST_NGINX} || 'nginx';

# A command that nginx runs under, e.g. "valgrind --error-exitcode=99"
# (split on spaces); an environment such as LD_PRELOAD passes through.
our @WRAPPER = split ' ', $ENV{APIKEY_TEST_NGINX_WRAPPER} // '';

my $serial = 0;

# every nginx a test started, for the check at its end (check_logs)
my @started;

sub module_path {
    return $ENV{APIKEY_TEST_MODULE}
        || project_root() . '/build/ngx_http_apikey_module.so';
}

sub _module_line {
    my ($o) = @_;
    return '' if defined $o->{module} && !$o->{module};
    my $so = module_path();
    croak "\n\n*** $so is missing: run `make module` first ***\n\n"
        unless -f $so;
    return "load_module $so;\n";
}

my $echo;     # one echo upstream per test file, shared

sub echo {
    return $echo //= ApiKey::Test::Echo->start;
}

sub _new {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;
    $self->{workers} //= 1;
    $self->{vars} //= {};
    $self->{dir} = test_dir() . '/nginx' . ++$serial;
    mkdir $self->{dir} or croak "mkdir $self->{dir}: $!";
    chmod 0755, $self->{dir};
    # Debian's module snippets say "load_module modules/...", relative to
    # the prefix (/usr/share/nginx, where this link is Debian's own)
    symlink('/usr/share/nginx/modules', "$self->{dir}/modules")
        or croak "symlink $self->{dir}/modules: $!";
    $self->{port} //= free_port();
    $self->{port2} //= free_port();
    return $self;
}

sub _subst {
    my ($self, $text) = @_;
    my %v = (PORT => $self->{port}, PORT2 => $self->{port2},
        DIR => $self->{dir}, %{ $self->{vars} });
    $v{REDIS} = $self->{redis}->addr if $self->{redis};
    $text =~ s{%%(\w+)%%}{
        my $k = $1;
        if ($k eq 'ECHO') {
            $self->{echo} //= echo();
            $self->{echo}->addr;
        } else {
            croak "nginx config: no value for %%$k%%" unless exists $v{$k};
            $v{$k};
        }
    }ge;
    return $text;
}

sub _conf {
    my ($self) = @_;
    my $d = $self->{dir};
    my $conf = "# written by ApiKey::Test::Nginx\n"
        . _module_line($self)
        . "worker_processes $self->{workers};\n"
        . "daemon off;\n"
        . "master_process on;\n"
        . "pid $d/nginx.pid;\n"
        . "error_log $d/error.log " . ($self->{log_level} // 'debug')
        . ";\n"
        . "worker_shutdown_timeout 3s;\n"
        . $self->_subst($self->{main} // '') . "\n"
        . "events {\n    worker_connections 1024;\n}\n\n"
        . "http {\n"
        . "    access_log $d/access.log;\n"
        . "    client_body_temp_path $d/client_body_temp;\n"
        . "    proxy_temp_path $d/proxy_temp;\n"
        . "    fastcgi_temp_path $d/fastcgi_temp;\n"
        . "    uwsgi_temp_path $d/uwsgi_temp;\n"
        . "    scgi_temp_path $d/scgi_temp;\n"
        . "    default_type text/plain;\n\n"
        . $self->_subst($self->{http} // '') . "\n"
        . $self->_slow_defaults
        . "}\n";
    return $conf;
}

# Under valgrind a worker's first lookups run code valgrind has not yet
# translated, and take longer than the default apikey_redis_timeout
# (200ms) on a loaded machine: where a test leaves the timeout to its
# default, the default is scaled as slack() scales time bounds.  It comes
# last in http{}, so that the line numbers nginx reports in the test's
# text stay the same; a server or location that sets the timeout keeps
# its own, and so does http{} when the test sets it there.
sub _slow_defaults {
    my ($self) = @_;
    return '' unless $ENV{APIKEY_TEST_VALGRIND} && _module_line($self);
    (my $text = $self->{http} // '') =~ s/#[^\n]*//g;
    my $depth = 0;
    for my $word ($text =~ /([{}]|apikey_redis_timeout)/g) {
        $depth += $word eq '{' ? 1 : $word eq '}' ? -1 : 0;
        return '' if $word eq 'apikey_redis_timeout' && $depth == 0;
    }
    return sprintf "    apikey_redis_timeout %dms;\n",
        slack(0.2) * 1000;
}

sub _write_conf {
    my ($self) = @_;
    my $f = "$self->{dir}/nginx.conf";
    open(my $fh, '>', $f) or croak "$f: $!";
    print {$fh} $self->_conf;
    close $fh;
    return $f;
}

sub conf_text {
    my ($self) = @_;
    open(my $fh, '<', "$self->{dir}/nginx.conf") or return '';
    local $/;
    return scalar <$fh>;
}


# ApiKey::Test::Nginx->check(%options): writes the configuration and runs
# `nginx -t`; returns (exit code, output).
sub check {
    my ($class, %o) = @_;
    my $self = ref $class ? $class : $class->_new(%o);
    $self->_write_conf;
    my @cmd = ('timeout', '-k', '5', '30', $NGINX, '-t',
        '-p', "$self->{dir}/", '-c', "$self->{dir}/nginx.conf");
    my $out = '';
    my $pid = open(my $fh, '-|') // croak "fork: $!";
    if ($pid == 0) {
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or POSIX::_exit(127);
    }
    { local $/; $out = <$fh> // ''; }
    close $fh;
    return ($? >> 8, $out);
}


sub start {
    my ($class, %o) = @_;
    my $self = $class->_new(%o);
    $self->_write_conf;
    my $d = $self->{dir};
    my $me = $self;
    $self->{child} = spawn(name => "nginx$serial",
        cmd => [@WRAPPER, $NGINX, '-p', "$d/", '-c', "$d/nginx.conf"],
        out => "$d/stderr.log",
        stop => sub { $me->_graceful_stop });
    $self->{master} = $self->{child}{pid};
    $self->{serial} = $serial;
    $self->{pids} = { $self->{master} => 1 };
    push @started, $self;

    my $ok = wait_until(sub {
        return -1 unless child_alive($self->{child}{wrapper});
        return 0 unless scalar($self->worker_pids) >= $self->{workers};
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $self->{port}, Proto => 'tcp', Timeout => 1);
        return $s ? 1 : 0;
    }, slack(10), 0.01);
    if (!$ok || $ok == -1) {
        my @log = grep { !/\[debug\]/ } split /\n/,
            $self->error_log . $self->_read("$d/stderr.log");
        my $log = join "\n", @log[($#log > 30 ? $#log - 30 : 0) .. $#log];
        stop_child($self->{child});
        croak "nginx did not start:\n$log";
    }
    return $self;
}

sub port   { $_[0]->{port} }
sub port2  { $_[0]->{port2} }
sub dir    { $_[0]->{dir} }
sub master { $_[0]->{master} }

sub echo_upstream {
    my ($self) = @_;
    return $self->{echo} //= echo();
}

sub worker_pids {
    my ($self) = @_;
    my @pids = children_of($self->{master});
    $self->{pids}{$_} = 1 for @pids;
    return @pids;
}

sub _read {
    my ($self, $f) = @_;
    open(my $fh, '<', $f) or return '';
    local $/;
    return scalar(<$fh>) // '';
}

sub error_log {
    my ($self) = @_;
    return $self->_read("$self->{dir}/error.log");
}

sub access_log {
    my ($self) = @_;
    return $self->_read("$self->{dir}/access.log");
}

# A position in the error log; error_log_since($mark) returns what came
# after it.
sub mark {
    my ($self) = @_;
    return -s "$self->{dir}/error.log" // 0;
}

sub error_log_since {
    my ($self, $mark) = @_;
    # a debug log grows large under load: read from the mark on only
    open(my $fh, '<', "$self->{dir}/error.log") or return '';
    seek($fh, $mark // 0, 0);
    local $/;
    return scalar(<$fh>) // '';
}

# The error log as entries: an entry starts with a time stamp and may span
# several lines (nginx dumps whole proxied request heads in one entry).
sub log_entries {
    my ($self, $text) = @_;
    $text //= $self->error_log;
    my @e = split /\n(?=\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[)/, $text;
    return grep { length } @e;
}

# Entries of the error log at the given levels ('alert', 'crit', ...).
sub log_lines {
    my ($self, @levels) = @_;
    my $re = join '|', @levels;
    return grep { /^\S+ \S+ \[(?:$re)\]/ } $self->log_entries;
}


sub request {
    my ($self, $method, $path, @h) = @_;
    return http_request($self->{port}, $method, $path, @h);
}

sub get {
    my ($self, $path, @h) = @_;
    return $self->request('GET', $path, @h);
}

sub raw {
    my ($self, $bytes, %o) = @_;
    return http_raw($self->{port}, $bytes, %o);
}

sub client {
    my ($self, %o) = @_;
    return ApiKey::Test::HTTP->new(port => $self->{port}, %o);
}


# Rewrites the configuration (when options are given), sends HUP and
# waits until a full set of new workers runs and the old ones are gone.
sub reload {
    my ($self, %o) = @_;
    @$self{ keys %o } = values %o;
    $self->_write_conf;
    my %old = map { $_ => 1 } $self->worker_pids;
    kill 'HUP', $self->{master} or croak "HUP nginx: $!";
    my $ok = wait_until(sub {
        my @now = $self->worker_pids;
        my @new = grep { !$old{$_} } @now;
        return @new >= $self->{workers} && @new == @now;
    }, slack(10), 0.02);
    croak "nginx reload: new workers did not take over\n"
        . $self->error_log_since(0) unless $ok;
    return $self;
}

sub _graceful_stop {
    my ($self) = @_;
    my $w = $self->{child}{wrapper};
    return unless child_alive($w);
    kill 'QUIT', $self->{master};
    # valgrind's leak check at exit takes a while: a worker killed before
    # it is done leaves no report
    return if wait_until(sub { !child_alive($w) }, slack(5));
    kill 'TERM', $self->{master};
    wait_until(sub { !child_alive($w) }, slack(2));
}

sub stop {
    my ($self) = @_;
    $self->worker_pids;
    stop_child($self->{child});
}


# $nginx->expect_log(qr/.../): an [alert], [crit] or [emerg] entry that
# matches is one the test causes on purpose, not a failure.
sub expect_log {
    my ($self, $re) = @_;
    push @{ $self->{expected} }, $re;
    return $self;
}

# What went wrong in this nginx: [alert], [crit] and [emerg] entries of its
# error log that no expect_log() foresaw, and sanitizer reports (in its
# stderr, or files of its processes in APIKEY_TEST_SANITIZER_DIR).
sub alarms {
    my ($self) = @_;
    my @bad = grep {
        my $e = $_;
        !grep { $e =~ $_ } @{ $self->{expected} // [] };
    } $self->log_lines(qw(alert crit emerg));
    my $re = qr/AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer
        |runtime\ error:/x;
    push @bad, grep { /$re/ } split /\n/,
        $self->_read("$self->{dir}/stderr.log");
    my $reports = $ENV{APIKEY_TEST_SANITIZER_DIR};
    if ($reports && -d $reports) {
        for my $pid (keys %{ $self->{pids} }) {
            push @bad, map { "sanitizer report $_" }
                grep { -s } glob("$reports/*.$pid");
        }
    }
    return @bad;
}

# At the end of a test file (ApiKey::Test's done_testing): every nginx it
# started is stopped, then its error log and sanitizer reports checked, as
# nginx-tests does, so that no test file has to remember to.
sub check_logs {
    my ($class) = @_;
    require Test::More;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $n (@started) {
        $n->stop;
        my @bad = $n->alarms;
        Test::More::is(scalar(@bad), 0, "nginx$n->{serial}: no [alert], "
            . '[crit], [emerg] or sanitizer report')
            or Test::More::diag(join "\n",
                @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
    }
    @started = ();
}


1;
