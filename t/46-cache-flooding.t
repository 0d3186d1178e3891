# A client who chooses its tokens cannot slow the apikey_cache zone down
# nor empty it: tokens ground so that their SHA-256 digests share the low
# bits an unseeded index would take still spread over the zone (every
# lookup walks a few entries, as the debug log tells), and a flood of
# unknown keys cannot push the known keys out of the zone: the oldest
# unknown keys make room for the new ones.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

use Digest::SHA qw(sha256);

my $redis = start_redis();

my @tokens;

sub hmgets { return $redis->calls('hmget') }

# Unknown tokens whose digests would all share one bucket of a zone of
# $buckets buckets if the index were the digest's low bits (its first
# bytes, little-endian): about $buckets hashes per token.
sub colliding_tokens {
    my ($n, $buckets) = @_;
    my (@t, $want);
    while (@t < $n) {
        my $t = new_token();
        my $low = unpack('V', sha256($t)) & ($buckets - 1);
        $want //= $low;
        push @t, $t if $low == $want;
    }
    return @t;
}

# The longest walk of the lookups logged after $mark.
sub longest_walk {
    my ($nginx, $mark) = @_;
    my @n = $nginx->error_log_since($mark)
        =~ /apikey cache: lookup walked (\d+) entries/g;
    my $max = 0;
    $_ > $max and $max = $_ for @n;
    return (scalar(@n), $max);
}

subtest 'tokens that collide in the low bits of their digest: every '
    . 'lookup walks a few entries' => sub {
    # 64k: 128 buckets, the low 7 bits of the digest unseeded
    my $nginx = start_cached_nginx(redis => $redis, workers => 1,
        cache => 'zone=flood:64k negative_ttl=60s');
    ok(scalar(grep { /\[debug\]/ } $nginx->log_entries) > 0,
        'the log is at debug level') or return;
    my @flood = colliding_tokens(100, 128);
    push @tokens, @flood;
    my $c = $nginx->client;

    my $mark = $nginx->mark;
    my $h0 = hmgets();
    my @s = map { $c->get('/api/x', Authorization => "Bearer $_")->status }
        @flood;
    is(scalar(grep { $_ != 401 } @s), 0, '100 unknown keys refused');
    is(hmgets() - $h0, 100, 'each asked of Redis once');

    $h0 = hmgets();
    @s = map { $c->get('/api/x', Authorization => "Bearer $_")->status }
        @flood;
    is(scalar(grep { $_ != 401 } @s), 0, 'refused again ...');
    is(hmgets() - $h0, 0, '... from the cache');

    my ($n, $max) = longest_walk($nginx, $mark);
    is($n, 200, '200 lookups in the zone');
    cmp_ok($max, '<=', 8, "the longest walked $max entries");
    error_log_clean($nginx, @tokens);
    $nginx->stop;
};

subtest 'a flood of unknown keys does not push known keys out of the '
    . 'zone' => sub {
    my $nginx = start_cached_nginx(redis => $redis, workers => 1,
        cache => 'zone=tiny:32k negative_ttl=60s', quiet => 1);
    my @known = map { new_token() } 1 .. 20;
    push @tokens, @known;
    seed_key($redis, $known[$_], id => "k_known$_") for 0 .. $#known;
    my $c = $nginx->client;
    my $ids = sub {
        join ' ', map { $c->get('/api/x', Authorization => "Bearer $_")
            ->header('x-id') // '-' } @known;
    };
    my $want = join ' ', map { "k_known$_" } 0 .. $#known;

    is($ids->(), $want, '20 known keys let in');
    my $h0 = hmgets();
    is($ids->(), $want, 'again ...');
    is(hmgets() - $h0, 0, '... from the cache');

    my @unknown = map { new_token() } 1 .. 1000;
    push @tokens, @unknown;
    my @s = map { $c->get('/api/x', Authorization => "Bearer $_")->status }
        @unknown;
    is(scalar(grep { $_ != 401 } @s), 0, '1000 unknown keys refused');

    $h0 = hmgets();
    is($ids->(), $want, 'the known keys are let in after the flood ...');
    is(hmgets() - $h0, 0, '... still from the cache');

    # a 32k zone has 64 buckets: room for the 64 latest unknown keys
    $h0 = hmgets();
    @s = map { $c->get('/api/x', Authorization => "Bearer $_")->status }
        @unknown[-50 .. -1];
    is(scalar(grep { $_ != 401 } @s), 0, 'the 50 latest unknown keys are '
        . 'refused ...');
    is(hmgets() - $h0, 0, '... from the cache: the oldest made room');
    error_log_clean($nginx, @tokens);
    $nginx->stop;
};

done_testing;
