#!/usr/bin/perl

# The benchmark behind `make bench` (see docs/benchmarks.md).
#
# One redis-server and one nginx on loopback, in a temporary directory.  The
# nginx has one location per peer, all proxying to the same keepalive
# upstream (a second server block in the same nginx that answers 200 with the
# X-ApiKey-Id it got).  wrk runs against each location for the same time,
# the peers alternating, BENCH_ROUNDS rounds; the table shows the medians.
#
# Settings (environment):
#   BENCH_SECONDS      whole run, roughly (600)
#   BENCH_ROUNDS       rounds per peer and workload (3)
#   BENCH_VARIANTS     comma list of: none headers module module-policy
#                      module-nocache module-lastused lua lua-cache node
#                      (all of these), module-rate module-cidrs (asked
#                      for only)
#   BENCH_INSTRUCTIONS 1: also count the nginx worker's instructions per
#                      request under callgrind, the hot key, for none,
#                      headers, module, module-rate, module-cidrs and
#                      module-policy;
#                      0: don't (1)
#   BENCH_WORKLOADS    comma list of: hot random (both)
#   BENCH_KEYS         keys of the random workload (100000)
#   BENCH_CONNECTIONS  wrk connections (32)
#   BENCH_THREADS      wrk threads (1)
#   BENCH_WORKERS      nginx worker_processes (1)
#   BENCH_OUT          markdown report (docs/benchmarks.md; "" = none)
#   BENCH_MODULE       the module (build/ngx_http_apikey_module.so)
#   NGINX              the nginx binary (/usr/sbin/nginx)
#   BENCH_HOLD         seconds to keep Redis and nginx up after the checks,
#                      measuring nothing: for perf or wrk by hand (0)
#
# Everything listens on 127.0.0.1 and every process started here is bounded
# by timeout(1) as well as stopped on exit.

use strict;
use warnings;

use Compress::Zlib qw(crc32);
use Cwd qw(abs_path);
use Digest::SHA qw(sha256_hex);
use File::Basename qw(dirname);
use File::Path ();
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

$| = 1;

my $BENCH = dirname(abs_path($0));
my $ROOT = dirname($BENCH);

my %VARIANT = (
    'none'           => 'no authentication (baseline)',
    'headers'        => 'no authentication, the hot key\'s four identity'
                        . ' headers set by `proxy_set_header`',
    'module'         => 'apikey module, with its cache',
    'module-policy'  => 'apikey module, with its cache, a rate limit'
                        . ' (`apikey_rate_limit`, 1000000r/s, burst 1000)'
                        . ' and an IP allowlist (`cidrs`) per key',
    'module-rate'    => 'apikey module, with its cache and a rate limit'
                        . ' (`apikey_rate_limit`, 1000000r/s, burst 1000)',
    'module-cidrs'   => 'apikey module, with its cache and an IP allowlist'
                        . ' (`cidrs`, three networks, the client in the'
                        . ' second) per key',
    'module-nocache' => 'apikey module, `apikey_cache off`',
    'module-lastused' => 'apikey module, `apikey_cache off`, last use'
                         . ' written (`apikey_last_used_interval 60s`)',
    'lua'            => 'Lua + lua-resty-redis, HMGET per request',
    'lua-cache'      => 'Lua + lua_shared_dict cache',
    'node'           => 'auth_request to Node.js + node-redis',
);
my @ALL_VARIANTS = qw(none headers module module-policy module-nocache
                      module-lastused lua lua-cache node);
my @ASKED_VARIANTS = qw(module-rate module-cidrs);    # not in "all"
my @INSN_VARIANTS = qw(none headers module module-rate module-cidrs
                       module-policy);
my %WORKLOAD = (
    hot    => 'one hot key',
    random => 'keys picked at random',
);

my $seconds = env_num('BENCH_SECONDS', 600);
my $rounds = env_num('BENCH_ROUNDS', 3);
my $nkeys = env_num('BENCH_KEYS', 100000);
my $conns = env_num('BENCH_CONNECTIONS', 32);
my $threads = env_num('BENCH_THREADS', 1);
my $workers = env_num('BENCH_WORKERS', 1);
my $out = $ENV{BENCH_OUT} // "$ROOT/docs/benchmarks.md";
my $module = $ENV{BENCH_MODULE} // "$ROOT/build/ngx_http_apikey_module.so";
my $nginx = $ENV{NGINX} // '/usr/sbin/nginx';

my @variants = pick('BENCH_VARIANTS', \@ALL_VARIANTS, \@ASKED_VARIANTS);
my $count_insns = env_num('BENCH_INSTRUCTIONS', 1, 1);
my @workloads = pick('BENCH_WORKLOADS', [qw(hot random)]);

my $TTL = 60;
my $NEGATIVE_TTL = 10;
my $PREFIX = 'apikey:';
# the same keys with an allowlist, in a database of their own: Redis's
# database 0 holds only the BENCH_KEYS + 1 keys the other peers read
my $POLICY_PREFIX = 'apikeyp:';
my $POLICY_DB = 1;
my $SCOPE = 'read:people';
my $CLK_TCK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

my $has = sub { my $v = shift; grep { $_ eq $v } @variants };
my $with_module = grep { /^module/ } @variants;
$count_insns = 0 unless $with_module && grep { $_ eq 'hot' } @workloads;
# the locations of nginx.conf: those timed, and those counted
my %in_conf = map { $_ => 1 } @variants, $count_insns ? @INSN_VARIANTS : ();
my $conf_has = sub { $in_conf{ $_[0] } };
my $with_lua = $has->('lua') || $has->('lua-cache');

if ($with_module && !-f $module) {
    die "bench: $module not found: run `make module`, or leave the module"
        . " out with BENCH_VARIANTS=none,lua,lua-cache,node\n";
}

my $started = time;
my $dir = tempdir('apikey-bench-XXXXXX', TMPDIR => 1);
my $keep = 0;          # the temporary directory, after a failure
chmod 0755, $dir;      # the workers run as nobody

my %child;             # pid => name, all stopped by cleanup()

$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub { die "bench: interrupted\n" };
END {
    local $?;
    cleanup();
    File::Path::remove_tree($dir) if defined $dir && !$keep;
}

my %port = map { $_ => free_port() } qw(redis nginx backend node cg
                                        cgbackend);
my $limit = int($seconds * 2 + 600);    # hard stop for every process

# ---- Redis and the keys -----------------------------------------------------

spawn('redis', 'redis-server', '--bind', '127.0.0.1', '--port', $port{redis},
      '--save', '', '--appendonly', 'no', '--dir', $dir,
      '--logfile', "$dir/redis.log", '--protected-mode', 'yes');
wait_port($port{redis}, 'redis-server');

my %id_of;             # token => id, for the checks only
my ($hot, @keys) = seed($nkeys);
write_lines("$dir/hot.txt", $hot);
write_lines("$dir/keys.txt", @keys);
my $unknown = make_token();

# ---- the auth_request service -----------------------------------------------

my $node_stdin;
if ($has->('node')) {
    local $ENV{AUTH_MAX_SECONDS} = $limit;
    my $pid = open($node_stdin, '|-', 'timeout', '-k', '5', $limit, 'node',
                   "$BENCH/node/auth.js", $port{node}, $port{redis},
                   $PREFIX, $SCOPE)
        or die "bench: node: $!\n";
    $child{$pid} = 'node';
    wait_port($port{node}, 'node auth.js');
}

# ---- nginx ------------------------------------------------------------------

write_file("$dir/nginx.conf", nginx_conf());

my $t = `$nginx -t -p $dir/ -c $dir/nginx.conf -e $dir/error.log 2>&1`;
if ($? != 0) {
    print STDERR $t;
    if ($t =~ /unknown directive "apikey_cache"/) {
        die "bench: the module is built but has no apikey_cache directive"
            . " yet; run without the cached variant:"
            . " BENCH_VARIANTS=none,module-nocache,lua,lua-cache,node\n";
    }
    die "bench: nginx -t failed (config in $dir/nginx.conf)\n";
}

spawn('nginx', $nginx, '-p', "$dir/", '-c', "$dir/nginx.conf",
      '-e', "$dir/error.log");
wait_port($port{nginx}, 'nginx');
my $master = wait_pidfile("$dir/nginx.pid");

check_variants();

if (my $hold = env_num('BENCH_HOLD', 0, 1)) {
    print "bench: holding $hold s: nginx on 127.0.0.1:$port{nginx}"
          . " (worker pids: " . join(" ", nginx_workers()) . "),"
          . " redis on $port{redis}, keys in $dir/hot.txt and"
          . " $dir/keys.txt\n";
    sleep $hold;
    exit 0;
}

# ---- runs -------------------------------------------------------------------

# Warm-up before every measured run: JIT, connection pools and, for the
# random workload, one request per key so that the caches start full.
my %warmup = (hot => 2, random => $nkeys / 8000 + 1);
my $gap = 0.5;                    # process start, counters, per run
my $nruns = @variants * @workloads * $rounds;
my $overhead = 0;
$overhead += @variants * $rounds * ($warmup{$_} + $gap) for @workloads;
$overhead += 60 if $count_insns;    # valgrind's start, 2200 requests each
my $duration = int(($seconds - (time - $started) - 5 - $overhead) / $nruns);
$duration = 2 if $duration < 2;

printf "bench: %d peers x %d workloads x %d rounds, %d s each after a"
       . " warm-up; about %d s in all\n",
       scalar @variants, scalar @workloads, $rounds, $duration,
       $nruns * $duration + $overhead + (time - $started);

my %runs;    # workload => variant => [ result, ... ]
my $failed = 0;

for my $w (@workloads) {
    for my $r (1 .. $rounds) {
        # rotate the order so no peer always follows the same one
        my @order = @variants[map { ($_ + $r - 1) % @variants }
                              0 .. $#variants];
        for my $v (@order) {
            if ($w eq 'random') {
                wrk($w, $v, 60, 'once');
            } else {
                wrk($w, $v, $warmup{$w});
            }
            my $res = measure($w, $v, $duration);
            push @{ $runs{$w}{$v} }, $res;
            printf "  %-6s round %d %-15s %7.0f req/s  p50 %5d us"
                   . "  p99 %6d us  nginx %5.1f us/req  hmget/req %.2f"
                   . "  other load %.2f%s\n",
                   $w, $r, $v, $res->{rps}, $res->{p50}, $res->{p99},
                   $res->{cpu}, $res->{hmget}, $res->{other},
                   $res->{error} ? "  ERROR: $res->{error}" : '';
            # a few timeouts when the machine is starved are reported,
            # more than 0.1% of the requests fail the benchmark
            $failed++ if $res->{nerrors} > $res->{requests} / 1000;
        }
    }
}

my %insns = $count_insns ? count_instructions() : ();

my @log = grep { /\[(?:error|crit|alert|emerg)\]/ }
          split /\n/, read_file("$dir/error.log");
if (@log) {
    print STDERR "bench: the nginx error log has ", scalar @log,
                 " [error] or worse line(s), the first ones:\n",
                 map { "  $_\n" } @log[0 .. ($#log < 4 ? $#log : 4)];
    $failed += grep { !/\[error\]/ } @log;
}

my $report = report();
print "\n", $report;

if ($out ne '') {
    my $tpl = read_file("$BENCH/benchmarks.md.in");
    $tpl =~ s/\@RESULTS\@\n/$report/;
    write_file($out, $tpl);
    print "bench: wrote $out\n";
}

printf "bench: done in %d s\n", time - $started;

if ($failed) {
    unlink "$dir/hot.txt", "$dir/keys.txt";
    $keep = 1;
    print STDERR "bench: failed: $failed run(s) with more than 0.1% errors"
                 . " or a [crit] or worse log line; the nginx error log is"
                 . " kept in $dir/error.log\n";
    exit 1;
}

exit 0;


# ---- helpers ----------------------------------------------------------------

sub env_num {
    my ($name, $default, $zero_ok) = @_;
    my $v = $ENV{$name};
    return $default if !defined $v || $v eq '';
    die "bench: $name must be a " . ($zero_ok ? 'whole' : 'positive')
        . " number\n" if $v !~ /^\d+$/ || (!$v && !$zero_ok);
    return $v;
}

# what a comma list asks for, in the order of @$all then @$asked; by
# default @$all
sub pick {
    my ($name, $all, $asked) = @_;
    my @known = (@$all, @{ $asked // [] });
    my $v = $ENV{$name};
    return @$all if !defined $v || $v eq '';
    my %ok = map { $_ => 1 } @known;
    my @list = split /[\s,]+/, $v;
    for (@list) {
        die "bench: $name: unknown \"$_\" (one of: @known)\n" unless $ok{$_};
    }
    return grep { my $x = $_; grep { $_ eq $x } @list } @known;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or die "bench: no free port: $!\n";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub spawn {
    my ($name, @cmd) = @_;
    my $pid = fork // die "bench: fork: $!\n";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/$name.out";
        open STDERR, '>&', \*STDOUT;
        exec 'timeout', '-k', '5', $limit, @cmd
            or POSIX::_exit(127);
    }
    $child{$pid} = $name;
    return $pid;
}

sub cleanup {
    return unless %child;
    close $node_stdin if $node_stdin;
    kill 'TERM', keys %child;
    my $deadline = time + 10;
    while (%child && time < $deadline) {
        for my $pid (keys %child) {
            delete $child{$pid} if waitpid($pid, WNOHANG) != 0;
        }
        sleep 0.05 if %child;
    }
    kill 'KILL', keys %child;
    %child = ();
}

sub wait_port {
    my ($port, $what, $secs) = @_;
    for (1 .. ($secs // 10) * 20) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        if ($s) {
            close $s;
            return;
        }
        for my $pid (keys %child) {
            if (waitpid($pid, WNOHANG) > 0) {
                my $name = delete $child{$pid};
                die "bench: $name exited early:\n"
                    . (-f "$dir/$name.out" ? read_file("$dir/$name.out")
                                           : '')
                    . (-f "$dir/error.log" ? read_file("$dir/error.log")
                                           : '');
            }
        }
        sleep 0.05;
    }
    die "bench: $what did not listen on 127.0.0.1:$port\n";
}

sub wait_pidfile {
    my ($file) = @_;
    for (1 .. 100) {
        if (-s $file) {
            my $pid = read_file($file);
            chomp $pid;
            return $pid;
        }
        sleep 0.05;
    }
    die "bench: no $file\n";
}

sub read_file {
    my ($file) = @_;
    open my $fh, '<', $file or die "bench: $file: $!\n";
    local $/;
    return scalar <$fh>;
}

sub write_file {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "bench: $file: $!\n";
    print $fh $text;
    close $fh or die "bench: $file: $!\n";
}

sub write_lines {
    my ($file, @lines) = @_;
    write_file($file, join('', map { "$_\n" } @lines));
}

# ---- keys -------------------------------------------------------------------

my @B62;
BEGIN { @B62 = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z') }

# the product's key format: ak_ + 30 base62 + base62 CRC32 of what precedes
sub make_token {
    my $t = 'ak_' . join('', map { $B62[int rand 62] } 1 .. 30);
    my $crc = crc32($t);
    my $sum = '';
    for (1 .. 6) {
        $sum = $B62[$crc % 62] . $sum;
        $crc = int($crc / 62);
    }
    return $t . $sum;
}

sub resp {
    return '*' . @_ . "\r\n"
        . join('', map { '$' . length($_) . "\r\n$_\r\n" } @_);
}

# HSET records as docs/redis-schema.md says, through redis-cli --pipe
sub seed {
    my ($n) = @_;
    my $expires = int(time) + 365 * 86400;
    my @tokens;

    open my $pipe, '|-',
         "timeout 300 redis-cli -h 127.0.0.1 -p $port{redis} --pipe"
         . " > $dir/seed.out 2>&1"
        or die "bench: redis-cli: $!\n";

    my $policy = $conf_has->('module-cidrs') || $conf_has->('module-policy');

    for my $i (0 .. $n) {
        my $token = make_token();
        my $id = "k_$i";
        $id_of{$token} = $id;
        push @tokens, $token;
        print $pipe resp('HSET', $PREFIX . sha256_hex($token),
                         id => $id, name => "bench key $i", org => 'acme',
                         scopes => 'read:people write:people',
                         expires_at => $expires);
    }

    if ($policy) {
        print $pipe resp('SELECT', $POLICY_DB);
        for my $i (0 .. $n) {
            print $pipe resp('HSET', $POLICY_PREFIX . sha256_hex($tokens[$i]),
                             id => "k_$i", name => "bench key $i",
                             org => 'acme',
                             scopes => 'read:people write:people',
                             expires_at => $expires,
                             cidrs => '10.0.0.0/8 127.0.0.0/8 ::1');
        }
    }

    close $pipe
        or die "bench: seeding Redis failed:\n" . read_file("$dir/seed.out");

    my $info = redis_cmd('INFO', 'keyspace');
    for my $db (0, $policy ? $POLICY_DB : ()) {
        my ($size) = $info =~ /^db$db:keys=(\d+)/m;
        die "bench: Redis database $db holds " . ($size // 0) . " keys,"
            . " expected " . ($n + 1) . "\n"
            if ($size // 0) != $n + 1;
    }

    return @tokens;
}

# one command on a new connection; returns the raw reply
sub redis_cmd {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $port{redis}, Proto => 'tcp',
                                  Timeout => 5)
        or die "bench: redis: $!\n";
    print $s resp(@_);
    my $line = <$s>;
    die "bench: no reply from Redis\n" unless defined $line;
    if ($line =~ /^\$(\d+)/) {
        my $len = $1 + 2;
        my $body = '';
        while (length $body < $len) {
            my $n = read($s, $body, $len - length $body, length $body);
            die "bench: short Redis reply\n" unless $n;
        }
        $line .= $body;
    }
    close $s;
    return $line;
}

sub hmget_calls {
    my $info = redis_cmd('INFO', 'commandstats');
    return $info =~ /cmdstat_hmget:calls=(\d+)/ ? $1 : 0;
}

# ---- nginx configuration ----------------------------------------------------

# the nginx of the timed runs; with "callgrind", the one whose instructions
# are counted: one process, no Lua, only the locations counted
sub nginx_conf {
    my ($for) = @_;
    my $cg = defined $for && $for eq 'callgrind';
    my $in = $cg ? sub { my $v = shift; grep { $_ eq $v } @INSN_VARIANTS }
                 : $has;
    my ($listen, $backend) = $cg ? @port{qw(cg cgbackend)}
                                 : @port{qw(nginx backend)};
    my $name = $cg ? 'callgrind' : 'nginx';
    my $elog = $cg ? 'callgrind-error.log' : 'error.log';
    my $procs = $cg ? 'master_process off;' : "worker_processes $workers;";
    my $load = '';
    my $http = '';
    my $loc = '';

    if ($with_lua && !$cg) {
        $load .= "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
               . "load_module /usr/lib/nginx/modules/"
               . "ngx_http_lua_module.so;\n";
        $http .= <<"END";
    lua_package_path "$BENCH/lua/?.lua;;";
    lua_shared_dict apikey_bench 64m;
    init_by_lua_block {
        require("apikey_bench").init{
            redis_port = $port{redis}, pool_size = 32, prefix = "$PREFIX",
            scopes = { "$SCOPE" }, ttl = $TTL, negative_ttl = $NEGATIVE_TTL,
        }
    }
END
    }

    if (grep { /^module/ && $in->($_) } @ALL_VARIANTS, @ASKED_VARIANTS) {
        $load .= "load_module $module;\n";
        $http .= <<"END";
    apikey_redis 127.0.0.1:$port{redis};
    apikey_redis_keepalive 32;
    apikey_redis_prefix $PREFIX;
    apikey_last_used_interval off;
END
        $http .= "    apikey_cache zone=apikey_module:64m ttl=${TTL}s"
               . " negative_ttl=${NEGATIVE_TTL}s;\n"
            if grep { $in->($_) } qw(module module-policy module-rate
                                     module-cidrs);
        $http .= "    apikey_rate_limit_zone apikey_rate:64m;\n"
            if $in->('module-policy') || $in->('module-rate');
    }

    $loc .= <<"END" if $in->('none');
        location = /none {
            proxy_pass http://backend;
        }
END

    # what nginx itself pays to hand the upstream an identity: the headers
    # the module sets for the hot key, as constants
    $loc .= <<"END" if $in->('headers');
        location = /headers {
            proxy_set_header X-ApiKey-Id "$id_of{$hot}";
            proxy_set_header X-ApiKey-Name "bench key 0";
            proxy_set_header X-ApiKey-Org "acme";
            proxy_set_header X-ApiKey-Scopes "read:people write:people";
            proxy_set_header Authorization "";
            proxy_set_header Connection "";
            proxy_pass http://backend;
        }
END

    $loc .= <<"END" if $in->('module');
        location = /module {
            apikey on;
            apikey_scopes $SCOPE;
            proxy_pass http://backend;
        }
END

    $loc .= <<"END" if $in->('module-policy');
        location = /module-policy {
            apikey on;
            apikey_scopes $SCOPE;
            apikey_redis 127.0.0.1:$port{redis} db=$POLICY_DB;
            apikey_redis_prefix $POLICY_PREFIX;
            apikey_rate_limit zone=apikey_rate default=1000000r/s burst=1000
                              nodelay;
            proxy_pass http://backend;
        }
END

    $loc .= <<"END" if $in->('module-rate');
        location = /module-rate {
            apikey on;
            apikey_scopes $SCOPE;
            apikey_rate_limit zone=apikey_rate default=1000000r/s burst=1000
                              nodelay;
            proxy_pass http://backend;
        }
END

    $loc .= <<"END" if $in->('module-cidrs');
        location = /module-cidrs {
            apikey on;
            apikey_scopes $SCOPE;
            apikey_redis 127.0.0.1:$port{redis} db=$POLICY_DB;
            apikey_redis_prefix $POLICY_PREFIX;
            proxy_pass http://backend;
        }
END

    if ($in->('module-nocache')) {
        my $cached = 1;
        my $off = $cached ? "            apikey_cache off;\n" : '';
        $loc .= <<"END";
        location = /module-nocache {
            apikey on;
            apikey_scopes $SCOPE;
$off            proxy_pass http://backend;
        }
END
    }

    if ($in->('module-lastused')) {
        my $cached = 1;
        my $off = $cached ? "            apikey_cache off;\n" : '';
        $loc .= <<"END";
        location = /module-lastused {
            apikey on;
            apikey_scopes $SCOPE;
            apikey_last_used_interval 60s;
$off            proxy_pass http://backend;
        }
END
    }

    $loc .= <<"END" if $in->('lua') && !$cg;
        location = /lua {
            access_by_lua_block { require("apikey_bench").access() }
            proxy_pass http://backend;
        }
END

    $loc .= <<"END" if $in->('lua-cache') && !$cg;
        location = /lua-cache {
            access_by_lua_block { require("apikey_bench").access_cached() }
            proxy_pass http://backend;
        }
END

    $loc .= <<"END" if $in->('node') && !$cg;
        location = /node {
            auth_request /_auth;
            auth_request_set \$ak_id \$upstream_http_x_apikey_id;
            auth_request_set \$ak_name \$upstream_http_x_apikey_name;
            auth_request_set \$ak_org \$upstream_http_x_apikey_org;
            auth_request_set \$ak_scopes \$upstream_http_x_apikey_scopes;
            proxy_set_header X-ApiKey-Id \$ak_id;
            proxy_set_header X-ApiKey-Name \$ak_name;
            proxy_set_header X-ApiKey-Org \$ak_org;
            proxy_set_header X-ApiKey-Scopes \$ak_scopes;
            proxy_set_header Authorization "";
            proxy_set_header Connection "";
            proxy_pass http://backend;
        }

        location = /_auth {
            internal;
            proxy_pass http://authsvc;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
        }
END

    my $authsvc = $in->('node') && !$cg ? <<"END" : '';
    upstream authsvc {
        server 127.0.0.1:$port{node};
        keepalive 32;
        keepalive_requests 1000000;
    }
END

    return <<"END";
# generated by bench/bench.pl
$load
$procs
daemon off;
pid $dir/$name.pid;
error_log $dir/$elog warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;

$http
    upstream backend {
        server 127.0.0.1:$backend;
        keepalive 32;
        keepalive_requests 1000000;
    }
$authsvc
    server {
        listen 127.0.0.1:$backend;

        location / {
            return 200 "\$http_x_apikey_id\\n";
        }
    }

    server {
        listen 127.0.0.1:$listen;

        proxy_http_version 1.1;
        proxy_set_header Connection "";

$loc    }
}
END
}

# ---- checks -----------------------------------------------------------------

sub http_get {
    my ($path, $token) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $port{nginx}, Proto => 'tcp',
                                  Timeout => 5)
        or die "bench: nginx: $!\n";
    print $s "GET $path HTTP/1.0\r\nHost: bench\r\n"
        . (defined $token ? "Authorization: Bearer $token\r\n" : '')
        . "\r\n";
    local $/;
    my $r = <$s> // '';
    close $s;
    my ($status) = $r =~ m{^HTTP/1\.\d (\d{3})};
    my ($body) = $r =~ /\r\n\r\n(.*)\z/s;
    return ($status // 0, $body // '');
}

# every peer must let a good key through with its identity, and refuse
# a missing or unknown key, before it is timed
sub check_variants {
    my $some = $keys[int rand @keys];
    for my $v (@variants) {
        my @bad;
        my ($st, $body) = http_get("/$v", $hot);
        my $want = $v eq 'none' ? "\n" : "$id_of{$hot}\n";
        push @bad, "hot key: $st \"$body\"" if $st != 200 || $body ne $want;

        if ($v ne 'none' && $v ne 'headers') {
            ($st, $body) = http_get("/$v", $some);
            push @bad, "random key: $st \"$body\""
                if $st != 200 || $body ne "$id_of{$some}\n";
            ($st) = http_get("/$v", $unknown);
            push @bad, "unknown key: $st, not 401" if $st != 401;
            ($st) = http_get("/$v", undef);
            push @bad, "no key: $st, not 401" if $st != 401;
        }

        if (@bad) {
            die "bench: $v answers wrongly: " . join('; ', @bad) . "\n"
                . read_file("$dir/error.log");
        }
    }
}

# ---- measuring --------------------------------------------------------------

sub proc_ticks {
    my ($pid, $user_only) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh>;
    close $fh;
    $stat =~ s/^.*\)\s+//s;          # past "pid (comm)"
    my @f = split ' ', $stat;
    return $user_only ? $f[11] : $f[11] + $f[12];    # utime (+ stime)
}

sub sum_ticks_user {
    my $t = 0;
    $t += proc_ticks($_, 1) for @_;
    return $t;
}

sub nginx_workers {
    my @w;
    opendir my $dh, '/proc' or return;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh> // '';
        close $fh;
        push @w, $pid if $stat =~ /^\d+ \(.*\) \S (\d+)/ && $1 == $master;
    }
    closedir $dh;
    return @w;
}

sub helper_pids {
    my ($v) = @_;
    my @p;
    for my $pid (keys %child) {
        next unless $child{$pid} eq 'redis'
                    || ($child{$pid} eq 'node' && $v eq 'node');
        # the real process is timeout(1)'s child
        push @p, children_of($pid);
    }
    return @p;
}

sub children_of {
    my ($pid) = @_;
    my @p;
    opendir my $dh, '/proc' or return;
    for my $c (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$c/stat" or next;
        my $stat = <$fh> // '';
        close $fh;
        push @p, $c if $stat =~ /^\d+ \(.*\) \S (\d+)/ && $1 == $pid;
    }
    closedir $dh;
    return @p;
}

sub sum_ticks {
    my $t = 0;
    $t += proc_ticks($_) for @_;
    return $t;
}

sub wrk {
    my ($w, $v, $secs, @args) = @_;
    my $script = "$BENCH/wrk-$w.lua";
    my $file = $w eq 'hot' ? "$dir/hot.txt" : "$dir/keys.txt";
    my @cmd = ('timeout', '-k', '5', $secs + 60, 'wrk', "-t$threads",
               "-c$conns", "-d${secs}s", '--latency', '--timeout', '5s',
               '-s', $script, "http://127.0.0.1:$port{nginx}/$v", '--',
               $file, @args);
    my $pid = open my $fh, '-|', @cmd or die "bench: wrk: $!\n";
    my $text = '';
    while (my $line = <$fh>) {
        $text .= $line;
        if ($line =~ /^BENCH warm-up done/) {
            kill 'TERM', $pid;
            close $fh;
            return $text;
        }
    }
    close $fh;
    die "bench: wrk failed ($?):\n$text" if $?;
    return $text;
}

# busy ticks of the whole machine: (in processes, in interrupts); with
# interrupt time accounting, the loopback TCP work done in softirq is
# charged to no process
sub machine_ticks {
    open my $fh, '<', '/proc/stat' or return (0, 0);
    my $line = <$fh>;
    close $fh;
    my (undef, @t) = map { $_ // 0 } split ' ', $line;
    return ($t[0] + $t[1] + $t[2] + $t[7], $t[5] + $t[6]);
}

# CPU ticks of this script and its finished children (wrk)
sub own_ticks {
    my ($u, $s, $cu, $cs) = times;
    return ($u + $s + $cu + $cs) * $CLK_TCK;
}

sub measure {
    my ($w, $v, $secs) = @_;
    my @workers = nginx_workers();
    my @helpers = helper_pids($v);
    my @all = (@workers, helper_pids('node'), $master);

    my $nginx0 = sum_ticks(@workers);
    my $user0 = sum_ticks_user(@workers);
    my $help0 = sum_ticks(@helpers);
    my $ours0 = sum_ticks(@all) + own_ticks();
    my ($busy0, $irq0) = machine_ticks();
    my $hmget0 = hmget_calls();
    my $t0 = time;

    my $text = wrk($w, $v, $secs);

    my $t1 = time;
    my $hmget1 = hmget_calls();
    my ($busy1, $irq1) = machine_ticks();
    my $ours1 = sum_ticks(@all) + own_ticks();
    my $help1 = sum_ticks(@helpers);
    my $nginx1 = sum_ticks(@workers);
    my $user1 = sum_ticks_user(@workers);

    my ($line) = $text =~ /^BENCH (.*)$/m;
    die "bench: no result from wrk:\n$text" unless defined $line;
    my %m = $line =~ /(\w+)=([\d.]+)/g;
    die "bench: no request completed:\n$text" unless $m{requests};

    my $n = $m{requests};
    my %res = (
        rps   => $n / ($m{duration_us} / 1e6),
        p50   => $m{p50_us},
        p99   => $m{p99_us},
        cpu   => ($nginx1 - $nginx0) / $CLK_TCK * 1e6 / $n,
        user  => ($user1 - $user0) / $CLK_TCK * 1e6 / $n,
        help  => ($help1 - $help0) / $CLK_TCK * 1e6 / $n,
        irq   => ($irq1 - $irq0) / $CLK_TCK * 1e6 / $n,
        hmget => ($hmget1 - $hmget0) / $n,
        # cores busy with processes that are not part of the benchmark
        other => (($busy1 - $busy0) - ($ours1 - $ours0)) / $CLK_TCK
                 / ($t1 - $t0),
    );
    $res{other} = 0 if $res{other} < 0;

    my @err = map { $m{$_} ? "$m{$_} $_" : () }
              qw(connect read write status timeout);
    $res{error} = join(', ', @err) if @err;
    $res{requests} = $n;
    $res{nerrors} = 0;
    $res{nerrors} += $m{$_} for qw(connect read write status timeout);

    return \%res;
}

# ---- instructions per request ----------------------------------------------

# What the nginx worker executes per request, which neither a busy nor a
# shared machine blurs: a second nginx (one process, no master, no Lua, only
# the counted locations, the same Redis) under callgrind.  For each
# location: 200 requests to warm it up, the counters zeroed, 2000 requests
# with the hot key on one keep-alive connection, the counters dumped.
# Returns location => instructions per request.
sub count_instructions {
    my ($warm, $n) = (200, 2000);
    my %insns;

    write_file("$dir/callgrind.conf", nginx_conf('callgrind'));
    my $cmd = "$nginx -t -p $dir/ -c $dir/callgrind.conf"
            . " -e $dir/callgrind-error.log";
    my $t = `$cmd 2>&1`;
    die "bench: nginx -t failed for callgrind.conf:\n$t" if $?;

    my $pid = spawn('callgrind', 'valgrind', '--tool=callgrind',
                    "--callgrind-out-file=$dir/callgrind.out", $nginx,
                    '-p', "$dir/", '-c', "$dir/callgrind.conf",
                    '-e', "$dir/callgrind-error.log");
    wait_port($port{cg}, 'nginx under callgrind', 120);
    my ($vg) = children_of($pid);    # valgrind, timeout(1)'s child
    die "bench: no valgrind process\n" unless $vg;

    for my $v (@INSN_VARIANTS) {
        keepalive_requests("/$v", $warm);
        callgrind_control('-z', $vg);
        keepalive_requests("/$v", $n);
        callgrind_control('-d', "bench-$v", $vg);

        my ($file) = grep { read_file($_) =~ /^desc: Trigger: dump bench-$v$/m }
                     glob "$dir/callgrind.out*";
        die "bench: no callgrind dump for $v\n" unless defined $file;
        my ($total) = read_file($file) =~ /^(?:summary|totals): (\d+)/m;
        die "bench: no instruction count in $file\n" unless $total;
        $insns{$v} = $total / $n;
        printf "  callgrind %-13s %6.0f instructions/request\n", $v,
               $insns{$v};
    }

    kill 'TERM', $pid;
    waitpid $pid, 0;
    delete $child{$pid};

    return %insns;
}

sub callgrind_control {
    my @args = @_;
    my $out = `timeout 60 callgrind_control @args 2>&1`;
    die "bench: callgrind_control @args failed:\n$out" if $?;
}

# n requests with the hot key on one connection; each must be a 200 with
# the key's id, or the count means nothing
sub keepalive_requests {
    my ($path, $n) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $port{cg}, Proto => 'tcp',
                                  Timeout => 30)
        or die "bench: nginx under callgrind: $!\n";
    my $req = "GET $path HTTP/1.1\r\nHost: bench\r\n"
            . "Authorization: Bearer $hot\r\n\r\n";
    my $want = $path eq '/none' ? "\n" : "$id_of{$hot}\n";
    for (1 .. $n) {
        print $s $req;
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) {
            sysread($s, $buf, 65536, length $buf)
                or die "bench: nginx under callgrind closed on $path\n";
        }
        my ($head, $body) = split /\r\n\r\n/, $buf, 2;
        my ($len) = $head =~ /^Content-Length: (\d+)/mi;
        die "bench: $path under callgrind: no Content-Length\n"
            unless defined $len;
        while (length $body < $len) {
            sysread($s, $body, 65536, length $body)
                or die "bench: nginx under callgrind closed on $path\n";
        }
        die "bench: $path under callgrind answered \"$head\" \"$body\"\n"
            if $head !~ m{^HTTP/1\.1 200 } || $body ne $want;
    }
    close $s;
}

# ---- report -----------------------------------------------------------------

sub median {
    my @v = sort { $a <=> $b } @_;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub ratio {
    my ($x, $base) = @_;
    return '–' unless defined $base && $base > 0;
    return sprintf '%.2f', $x / $base;
}

sub cmd_version {
    my ($cmd, $re) = @_;
    my $v = `$cmd 2>&1`;
    return $v =~ $re ? $1 : '?';
}

sub deb_version {
    my ($pkg) = @_;
    my $v = `dpkg-query -W -f='\${Version}' $pkg 2>/dev/null`;
    return $v ne '' ? $v : 'not installed';
}

sub machine {
    my ($cpu) = read_file('/proc/cpuinfo') =~ /^model name\s*:\s*(.*)$/m;
    my ($mem) = read_file('/proc/meminfo') =~ /^MemTotal:\s*(\d+)/m;
    chomp(my $nproc = `nproc`);
    chomp(my $kernel = `uname -r`);
    chomp(my $commit = `git -C $ROOT rev-parse --short HEAD 2>/dev/null`);
    my $paths = 'config ngx_http_apikey_module.c src';
    my $src = `git -C $ROOT status --porcelain -- $paths 2>/dev/null`;
    my $dirty = $src ne '' ? ' (with uncommitted changes)' : '';
    my ($npm_redis) = read_file("$BENCH/node/package-lock.json")
        =~ m{"node_modules/redis":\s*\{\s*"version":\s*"([^"]+)"};

    my @m = (
        ['machine', sprintf('%s cores, %s, %.0f GiB', $nproc, $cpu // '?',
                            ($mem // 0) / 1048576)],
        ['kernel', $kernel],
        ['nginx', cmd_version("$nginx -v", qr{nginx/(\S+)})],
        ['apikey module', $with_module ? "commit $commit$dirty" : 'not run'],
        ['libnginx-mod-http-lua', deb_version('libnginx-mod-http-lua')],
        ['lua-nginx-redis', deb_version('lua-nginx-redis')],
        ['LuaJIT', deb_version('libluajit2-5.1-2')],
        ['Node.js', cmd_version('node --version', qr{v(\S+)})],
        ['npm redis', $npm_redis // '?'],
        ['Redis', cmd_version('redis-server --version', qr{v=(\S+)})],
        ['OpenSSL', cmd_version('openssl version', qr{OpenSSL (\S+)})],
        ['wrk', cmd_version('wrk -v', qr{wrk (\S+)})],
    );

    return join('', map { "| $_->[0] | $_->[1] |\n" } ['what', 'version'],
                ['---', '---'], @m);
}

# The counts, and what they come to in time: the timed hot runs give the
# worker's user CPU per request of "module", hence a time per instruction
sub insns_table {
    my $hot = $runs{hot} // {};
    my $med = sub {
        my ($v, $k) = @_;
        return undef unless $hot->{$v};
        return median(map { $_->{$k} } @{ $hot->{$v} });
    };
    my $user = $med->('module', 'user');
    my $ns = $user && $insns{module} ? $user * 1000 / $insns{module} : undef;
    my $floor = $med->('none', 'cpu');

    my $r = "### Instructions per request (callgrind, the hot key)\n\n"
          . "| location | instructions/request | Δ | Δ µs/request"
          . " | expected × base |\n"
          . "|---|--:|--:|--:|--:|\n";

    for my $v (@INSN_VARIANTS) {
        my $ref = $v eq 'none' ? undef
                : $v eq 'module' || $v eq 'headers' ? 'none' : 'module';
        my $d = defined $ref ? $insns{$v} - $insns{$ref} : undef;
        my $all = $insns{$v} - $insns{none};
        $r .= sprintf "| %s | %.0f | %s | %s | %s |\n",
            $VARIANT{$v}, $insns{$v},
            defined $d ? sprintf('%+.0f over %s', $d,
                                 $ref eq 'none' ? 'the baseline'
                                                : '`module`')
                       : '–',
            defined $d && $ns ? sprintf('%+.2f', $d * $ns / 1000) : '–',
            $floor && $ns ? sprintf('%.3f', $floor
                                    / ($floor + $all * $ns / 1000))
                          : '–';
    }

    $r .= "\n";
    if ($ns) {
        $r .= sprintf "In the timed hot-key runs the worker spent %.2f µs of"
                      . " user CPU per request with `module`, for %.0f"
                      . " instructions: %.3f ns each, which turns a Δ into"
                      . " time. **expected × base** is the baseline's nginx"
                      . " CPU per request (%.1f µs) over itself plus the"
                      . " location's extra instructions in time: the ratio"
                      . " the user-space work alone would give, without the"
                      . " noise of requests/s (and without the kernel's"
                      . " share of the longer headers).\n\n",
            $user, $insns{module}, $ns, $floor // 0;
    }

    return $r;
}

sub report {
    my $r = '';
    my $when = POSIX::strftime('%Y-%m-%d %H:%M UTC', gmtime);

    $r .= "Run of $when: $duration s per measurement after a warm-up,"
        . " $rounds rounds alternating the peers, medians shown;"
        . " wrk -t$threads -c$conns; nginx worker_processes $workers;"
        . " $nkeys keys in the random workload.\n\n";

    my @missing = grep { !$has->($_) } @ALL_VARIANTS;
    if (@missing) {
        $r .= "**Not run this time:** "
            . join(', ', map { "`$_`" } @missing) . ".\n\n";
    }

    for my $w (@workloads) {
        my %med;
        for my $v (@variants) {
            my @rs = @{ $runs{$w}{$v} };
            for my $k (qw(rps p50 p99 cpu help irq hmget other)) {
                $med{$v}{$k} = median(map { $_->{$k} } @rs);
            }
            $med{$v}{total} = median(map { $_->{cpu} + $_->{help}
                                           + $_->{irq} } @rs);
            my @rps = map { $_->{rps} } @rs;
            $med{$v}{spread} = sprintf '%.0f–%.0f',
                (sort { $a <=> $b } @rps)[0, -1];
            $med{$v}{error} = join('; ', map { $_->{error} // () } @rs);
        }
        my $base = $has->('none') ? $med{none} : undef;

        $r .= "### $WORKLOAD{$w}"
            . ($w eq 'random' ? " ($nkeys)" : '') . "\n\n"
            . "| peer | req/s | × base | req/s range | p50 µs | × base"
            . " | p99 µs | × base | Δp99 µs | nginx CPU µs/req"
            . " | Redis+service CPU µs/req | softirq µs/req"
            . " | auth CPU µs/req | HMGET/req |\n"
            . "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n";

        for my $v (@variants) {
            my $m = $med{$v};
            $r .= sprintf "| %s | %.0f | %s | %s | %.0f | %s | %.0f | %s"
                          . " | %s | %.1f | %.1f | %.1f | %s | %.2f |\n",
                $VARIANT{$v} . ($m->{error} ? " **(errors: $m->{error})**"
                                            : ''),
                $m->{rps}, ratio($m->{rps}, $base && $base->{rps}),
                $m->{spread},
                $m->{p50}, ratio($m->{p50}, $base && $base->{p50}),
                $m->{p99}, ratio($m->{p99}, $base && $base->{p99}),
                $base ? sprintf('%+.0f', $m->{p99} - $base->{p99}) : '–',
                $m->{cpu}, $m->{help}, $m->{irq},
                $base ? sprintf('%.1f', $m->{total} - $base->{total}) : '–',
                $m->{hmget};
        }

        # what one Redis core could serve: 1 s of Redis CPU per lookup's
        for my $v (grep { /^module-/ } @variants) {
            next unless $med{$v}{help} > 0;
            $r .= sprintf "\n%s: Redis spent %.1f µs of CPU per lookup (%.2f"
                          . " HMGET per request): one Redis core serves about"
                          . " %.0f such lookups per second.\n",
                $VARIANT{$v}, $med{$v}{help}, $med{$v}{hmget},
                1e6 / $med{$v}{help};
        }

        my @other = sort { $a <=> $b }
                    map { $_->{other} } map { @{ $runs{$w}{$_} } } @variants;
        $r .= sprintf "\nOther processes kept %.2f cores busy during the"
                      . " median run, %.2f at most.%s\n",
            median(@other), $other[-1],
            $other[-1] > 0.2 ? ' **The machine was not idle: these numbers'
                               . ' are noisier than they should be.**' : '';
        $r .= "\n";
    }

    if (@log) {
        my %what;
        for (@log) {
            my ($level, $msg) = /\[(\w+)\] \d+#\d+: (?:\*\d+ )?([^,]*)/;
            $msg =~ s/"[^"]*"/"..."/g if defined $msg;
            $what{"[$level] " . ($msg // '?')}++;
        }
        $r .= "nginx logged " . @log . " [error] or worse line(s) during"
            . " the run (warm-ups included):\n\n"
            . join('', map { "- $what{$_} × `$_`\n" }
                       sort { $what{$b} <=> $what{$a} } keys %what)
            . "\n";
    }

    $r .= insns_table() if %insns;

    $r .= "### Machine\n\n" . machine() . "\n";

    return $r;
}
