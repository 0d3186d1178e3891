package ApiKey::Test;

# The test harness: one `use ApiKey::Test;` gives a test file Test::More,
# real Redis and nginx processes on loopback, a fake Redis for faults, an
# HTTP client and the module's documented answers.
#
#   use ApiKey::Test;
#   my $redis = start_redis();
#   my $token = new_token();
#   seed_key($redis, $token, id => 'k_1', scopes => 'read:people');
#   my $nginx = start_nginx(redis => $redis, http => <<'EOF');
#   server {
#       listen 127.0.0.1:%%PORT%%;
#       location /api/ { apikey on; apikey_redis %%REDIS%%;
#                        proxy_pass http://%%ECHO%%; }
#   }
#   EOF
#   my $res = $nginx->get('/api/x', Authorization => "Bearer $token");
#   is($res->upstream->header('x-apikey-id'), 'k_1');
#   answer_is($nginx->get('/api/x'), 'missing');
#
# Every process started here dies with the test (see ApiKey::Test::Proc).
#
# Environment:
#   APIKEY_TEST_MODULE          the module to load (build/ngx_http_apikey_module.so)
#   APIKEY_TEST_NGINX           the nginx binary (nginx)
#   APIKEY_TEST_NGINX_WRAPPER   a command prefix for nginx (valgrind ...)
#   APIKEY_TEST_TIME_FACTOR     scales timing tolerances (slack()) on slow runs
#   APIKEY_TEST_VALGRIND        nginx runs under valgrind: the default
#                               apikey_redis_timeout is scaled too (see
#                               ApiKey::Test::Nginx::_slow_defaults)
#   APIKEY_TEST_LIFETIME        seconds any child may live (300)
#   APIKEY_TEST_KEEP            keep the temporary directory (a failed
#                               test keeps it anyway)

use strict;
use warnings;

use Carp qw(croak);
use Compress::Zlib ();
use Digest::SHA qw(sha256_hex hmac_sha256_hex);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

use ApiKey::Test::Proc qw(free_port test_dir wait_until project_root slack);
use ApiKey::Test::RESP qw(:all);
use ApiKey::Test::Redis;
use ApiKey::Test::FakeRedis;
use ApiKey::Test::Nginx;
use ApiKey::Test::Echo;
use ApiKey::Test::HTTP qw(http_raw http_get http_request build_request);

our @EXPORT = (qw(start_redis start_nginx start_fake_redis nginx_check
    new_token key_hash seed_key answer_is answers answer_body run_cli
    run_cli_json
    error_log_clean now slack timing_ok free_port test_dir wait_until project_root
    http_raw http_get http_request build_request time sleep),
    @ApiKey::Test::RESP::EXPORT_OK);

sub import {
    my $caller = caller;
    strict->import;
    warnings->import;
    # make Test::More's functions available in the caller
    eval "package $caller; use Test::More; 1" or die $@;
    no strict 'refs';
    *{"${caller}::$_"} = \&{"ApiKey::Test::$_"}
        for grep { defined &{"ApiKey::Test::$_"} } @EXPORT;
    *{"${caller}::$_"} = \&{"ApiKey::Test::RESP::$_"}
        for @ApiKey::Test::RESP::EXPORT_OK;
    *{"${caller}::$_"} = \&{"Time::HiRes::$_"} for qw(time sleep);
    no warnings 'redefine';
    *{"${caller}::done_testing"} = \&done_testing_checked;
}

# The test file's done_testing: Test::More's, after the check of every
# nginx the test started (see ApiKey::Test::Nginx::check_logs).
sub done_testing_checked {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ApiKey::Test::Nginx->check_logs;
    return Test::More::done_testing(@_);
}


# timing_ok($name, sub { ...; return ($ok, "what was measured") }, $tries):
# a timing bound holds in at least one of $tries (3) attempts, so that a
# loaded machine's scheduling does not fail a test while a module that
# really waits still does; every attempt's measure is shown on failure.
sub timing_ok {
    my ($name, $code, $tries) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $tries //= 3;
    my @seen;
    for my $n (1 .. $tries) {
        my ($ok, $what) = $code->();
        push @seen, $what;
        return pass($n == 1 ? "$name ($what)"
            : "$name ($what, attempt $n of $tries)") if $ok;
    }
    fail($name);
    diag("attempt $_: $seen[$_ - 1]") for 1 .. @seen;
    return 0;
}

# Unix seconds, as records hold them (Time::HiRes::time is fractional).
sub now () { return CORE::time() }

sub start_redis      { return ApiKey::Test::Redis->start(@_) }
sub start_nginx      { return ApiKey::Test::Nginx->start(@_) }
sub start_fake_redis { return ApiKey::Test::FakeRedis->start(@_) }
sub nginx_check      { return ApiKey::Test::Nginx->check(@_) }


# run_cli(@args) or run_cli({ redis => $r, stdin => $text, env => {...} },
# @args): { code, out, err } of one run of build/apikey, under a bound in
# time, with APIKEY_REDIS unset; with redis => $r, "--redis <address>"
# comes first.
sub run_cli {
    my $o = ref $_[0] eq 'HASH' ? shift : {};
    my @args = @_;
    my $dir = test_dir();
    my $cli = project_root() . '/build/apikey';
    die "\n\n*** $cli is missing: run `make cli` first ***\n\n"
        unless -x $cli;
    open(my $in, '>', "$dir/cli.in") or die "cli.in: $!";
    print {$in} $o->{stdin} // '';
    close $in;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', "$dir/cli.in");
        open(STDOUT, '>', "$dir/cli.out");
        open(STDERR, '>', "$dir/cli.err");
        delete $ENV{APIKEY_REDIS};
        %ENV = (%ENV, %{ $o->{env} // {} });
        unshift @args, '--redis', $o->{redis}->addr if $o->{redis};
        exec('timeout', '30', $cli, @args) or exit 127;
    }
    waitpid($pid, 0);
    my %r = (code => $? >> 8);
    for my $f (qw(out err)) {
        open(my $fh, '<', "$dir/cli.$f") or die "cli.$f: $!";
        local $/;
        $r{$f} = <$fh>;
    }
    return \%r;
}

# The decoded --json output of run_cli(); dies if the command failed.
sub run_cli_json {
    my $r = run_cli(@_, '--json');
    die "apikey @_ --json failed ($r->{code}): $r->{err}" if $r->{code};
    return JSON::PP->new->decode($r->{out});
}


# A key in the product's format: prefix, 30 base62 characters, then the
# CRC32 of everything before, as 6 base62 digits.
my @B62 = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');

sub new_token {
    my (%o) = @_;
    my $prefix = $o{prefix} // 'ak_';
    my $body = join '', map { $B62[int rand 62] } 1 .. 30;
    my $crc = Compress::Zlib::crc32($prefix . $body);
    my $sum = '';
    for (1 .. 6) {
        $sum = $B62[$crc % 62] . $sum;
        $crc = int($crc / 62);
    }
    return $prefix . $body . $sum;
}

# The Redis key name of a token's record.
sub key_hash {
    my ($token, %o) = @_;
    my $hex = defined $o{secret} ? hmac_sha256_hex($token, $o{secret})
        : sha256_hex($token);
    return ($o{prefix} // 'apikey:') . $hex;
}

# seed_key($redis, $token, field => value, ...): writes the key's record.
# Options among the fields: -prefix => 'x:', -secret => 'hmac secret',
# -db => N (SELECT first, on real Redis).
sub seed_key {
    my ($redis, $token, %f) = @_;
    my %o = map { substr($_, 1) => delete $f{$_} } grep { /^-/ } keys %f;
    croak "seed_key: no fields" unless %f;
    my $key = key_hash($token, %o);
    if (defined $o{db}) {
        my $c = $redis->connect;
        $c->cmd('SELECT', $o{db});
        $c->cmd('DEL', $key);
        $c->cmd('HSET', $key, %f);
        $c->close;
    } else {
        $redis->cmd('DEL', $key);
        $redis->cmd('HSET', $key, %f);
    }
    return $key;
}


# The module's answers, as behaviour.md and RFC 6750 define them.
my %ANSWER = (
    missing => [401, 'Bearer realm="%s"',
        '{"error":"unauthorized","error_description":"API key required"}'],
    malformed => [400, 'Bearer realm="%s", error="invalid_request"',
        '{"error":"invalid_request",'
        . '"error_description":"malformed Authorization header"}'],
    invalid => [401, 'Bearer realm="%s", error="invalid_token"',
        '{"error":"invalid_token","error_description":"invalid API key"}'],
    insufficient_scope => [403,
        'Bearer realm="%s", error="insufficient_scope", scope="%s"',
        '{"error":"insufficient_scope",'
        . '"error_description":"API key lacks a required scope"}'],
    org_mismatch => [403, 'Bearer realm="%s", error="insufficient_scope"',
        '{"error":"insufficient_scope",'
        . '"error_description":"API key not valid for this organisation"}'],
    ip_not_allowed => [403, undef,
        '{"error":"ip_not_allowed",'
        . '"error_description":"client address not allowed for this API key"}'],
    error => [503, undef,
        '{"error":"temporarily_unavailable",'
        . '"error_description":"API key store unavailable"}'],
);
$ANSWER{$_} = $ANSWER{invalid} for qw(expired revoked);

sub answers { return sort keys %ANSWER }

sub answer_body {
    my ($name) = @_;
    return $ANSWER{$name}[2] . "\n";
}

# answer_is($res, $name, realm => 'api', scope => 'a b', name => 'text'):
# status, WWW-Authenticate (absent for 503, with Retry-After: 1 instead,
# and for ip_not_allowed), Content-Type and body, each as its own
# assertion.
sub answer_is {
    my ($res, $what, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $a = $ANSWER{$what} or croak "answer_is: unknown answer '$what'";
    my $label = $o{name} // $what;
    my ($status, $challenge, $body) = @$a;
    if (defined $res->error) {
        fail("$label: no complete answer (" . $res->error . ")");
        return 0;
    }
    my $ok = 1;
    $ok &= is($res->status, $status, "$label: status $status");
    if (defined $challenge) {
        no warnings qw(redundant);
        my $want = sprintf($challenge, $o{realm} // 'api',
            $o{scope} // '');
        $ok &= is_deeply([$res->headers('www-authenticate')], [$want],
            "$label: WWW-Authenticate: $want");
    } else {
        $ok &= is_deeply([$res->headers('www-authenticate')], [],
            "$label: no WWW-Authenticate");
        $ok &= is($res->header('retry-after'), $status == 503 ? '1' : undef,
            "$label: Retry-After: " . ($status == 503 ? '1' : 'none'));
    }
    $ok &= is($res->header('content-type'), 'application/json',
        "$label: Content-Type: application/json");
    $ok &= is($res->body, "$body\n", "$label: body");
    $ok &= ok(!defined $res->header('x-echo'),
        "$label: the upstream did not answer");
    return $ok;
}


# error_log_clean($nginx, @tokens): none of the tokens in the error log,
# except in nginx core's own header dumps ("http header:" for each request
# header as received, "http proxy header:" for the whole head sent
# upstream, which spans lines).  [alert], [crit] and [emerg] are checked
# at the end of every test by the harness itself (done_testing).
sub error_log_clean {
    my ($nginx, @tokens) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = 1;
    my @leaks;
    for my $entry ($nginx->log_entries) {
        next if $entry =~ /^[^\n]*http (?:proxy )?header:/;
        for my $t (grep { defined && length } @tokens) {
            next if index($entry, $t) < 0;
            # show where, never the token itself
            (my $shown = $entry) =~ s/\Q$t\E/<TOKEN>/g;
            push @leaks, $shown;
        }
    }
    $ok &= is(scalar(@leaks), 0, 'no token in the debug error log')
        or diag(join "\n", @leaks[0 .. ($#leaks < 9 ? $#leaks : 9)]);
    return $ok;
}

1;
