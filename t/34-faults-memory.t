# Requests that wait for the same lookup get one record and one status:
# when memory runs out while the reply is read, it is an error for all of
# them, and nothing half-read is cached as a valid record.
#
# A malloc() shim (LD_PRELOAD) makes the first allocation of one unusual
# size fail in each nginx process; a key whose name is that long needs one
# such allocation to be read.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

use IO::Socket::INET;

plan skip_all => 'the malloc shim does not mix with sanitizers or valgrind'
    if $ENV{APIKEY_TEST_SANITIZER} || $ENV{APIKEY_TEST_VALGRIND}
    || $ENV{APIKEY_TEST_NGINX_WRAPPER};

my $SIZE = 7777;
my $dir = test_dir();

open(my $fh, '>', "$dir/failmalloc.c") or die "$dir/failmalloc.c: $!";
print {$fh} <<"EOF";
#include <stddef.h>

extern void *__libc_malloc(size_t size);

static int  failed;

void *
malloc(size_t size)
{
    if (size == $SIZE && !failed) {
        failed = 1;
        return NULL;
    }

    return __libc_malloc(size);
}
EOF
close $fh;
system('cc', '-shared', '-fPIC', '-O2', '-o', "$dir/failmalloc.so",
    "$dir/failmalloc.c") == 0 or BAIL_OUT('cannot build the malloc shim');

my $redis = start_redis();
my $nginx = do {
    local $ENV{LD_PRELOAD} = "$dir/failmalloc.so";
    start_cached_nginx(redis => $redis, workers => 1,
        server => 'location /name/ { apikey on; '
            . 'add_header X-Name $apikey_name always; }');
};
mkdir "$dir/www/name";
$nginx->expect_log(qr/\[emerg\] .*malloc\($SIZE\) failed/);

my $token = new_token();
seed_key($redis, $token, id => 'k_long', name => 'n' x $SIZE);

sub send_request {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $nginx->port, Proto => 'tcp') or die "connect: $!";
    print {$s} "GET /name/x HTTP/1.0\r\nHost: localhost\r\n"
        . "Authorization: Bearer $token\r\n\r\n";
    return $s;
}

sub status_of {
    my ($s) = @_;
    local $/;
    my $answer = <$s> // '';
    return $answer =~ m{^HTTP/1\.\d (\d{3})} ? $1 : 'none';
}

subtest 'two requests of one lookup, the parse runs out of memory' => sub {
    # both requests wait for the one lookup while Redis is stopped
    $redis->pause;
    my @s = map { send_request() } 1 .. 2;
    sleep 0.2;
    $redis->resume;
    my @status = map { status_of($_) } @s;
    is($status[0], $status[1], "both requests get the same answer (@status)");
    is($status[0], 503, 'an error: the record could not be read');
};

subtest 'what is cached afterwards is the whole record' => sub {
    my $res = $nginx->get('/name/x', Authorization => "Bearer $token");
    is($res->status, 404, 'let through (no such file)');
    is(length($res->header('x-name') // ''), $SIZE, 'with its whole name');
    $res = $nginx->get('/name/x', Authorization => "Bearer $token");
    is(length($res->header('x-name') // ''), $SIZE, 'and again');
};

done_testing;
