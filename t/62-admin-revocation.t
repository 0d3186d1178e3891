# A revocation (DELETE) or a change (PATCH) made over the admin API is
# obeyed by every worker within 100 ms, with the cache on: two workers
# serve a key made over HTTP from their caches, the write goes to the
# admin location, and every request sent 100 ms after its answer came is
# refused.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

use JSON::PP ();

my $WORKERS = 2;
my $BOUND = 0.1;       # seconds, the product's promise

my $redis = start_redis();
my $nginx = start_cached_nginx(redis => $redis, workers => $WORKERS,
    cache => 'zone=apikeys:1m ttl=60s', quiet => 1, server => <<'EOF');
        location /admin/keys/ {
            apikey_admin on;
        }
EOF

my @tokens;

sub admin {
    my ($method, $path, $body) = @_;
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\n";
    $req .= "Content-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\n" if defined $body;
    return http_raw($nginx->port, $req . "\r\n" . ($body // ''));
}

sub create_key {
    my $res = admin('POST', '/admin/keys/', JSON::PP->new->encode({
        name => 'Revoked over HTTP', scopes => ['read:people'] }));
    die 'create: ' . $res->status unless $res->status == 201;
    my $k = JSON::PP->new->decode($res->body);
    push @tokens, $k->{key};
    return $k;
}

# Warms both workers' caches with the key, makes the write, and goes on
# asking until every worker answered 5 requests sent $BOUND after the
# write's answer; returns the lag of the last request let in, and whether
# every late one was refused.
sub try_write {
    my ($path, $k, $method, $body, $refused) = @_;
    my $b = ApiKey::Burst->new(port => $nginx->port, conns => 16);
    my $req = sub { ($path, Authorization => "Bearer $k->{key}") };
    settle($nginx, $redis);
    my @warm = $b->run(request => $req, timeout => 3, until => sub {
        my %w;
        $w{ worker_of($_) }++ for grep { $_->{status} == 200 } @{ $_[0] };
        return $WORKERS == grep { $_ >= 3 } values %w;
    });
    my ($done, $status, %seen);
    my @rows = $b->run(request => $req, timeout => 5,
        tick => sub {
            return if $done;
            $status = admin($method, "/admin/keys/$k->{id}", $body)->status;
            $done = time;
        },
        until => sub {
            return 0 unless $done;
            $seen{ worker_of($_) }++
                for grep { $_->{sent} >= $done + $BOUND && !$_->{seen}++ }
                    @{ $_[0] };
            return $WORKERS == grep { $_ >= 5 } values %seen;
        });
    $b->close;
    my @allowed = grep { $_->{status} == 200 } @rows;
    my $last = $done;
    for (@allowed) { $last = $_->{sent} if $_->{sent} > $last }
    my @late = grep { $_->{sent} >= $done + $BOUND } @rows;
    return { lag => $last - $done, status => $status,
        warm => scalar(grep { $_->{status} == 200 } @warm),
        late => scalar @late,
        late_bad => scalar(grep { $_->{status} != $refused } @late) };
}

sub check_tries {
    my ($name, $make) = @_;
    my @all;
    timing_ok("$name: every worker obeys within " . $BOUND * 1000
        . ' ms of the answer, worst of 5 keys', sub {
        my @t = map { $make->() } 1 .. 5;
        push @all, @t;
        my ($worst) = sort { $b <=> $a } map { $_->{lag} } @t;
        return ($worst < slack($BOUND),
            sprintf('worst %.1f ms', $worst * 1000));
    }, 2);
    is(scalar(grep { !$_->{warm} } @all), 0,
        "$name: before the write, the key is let in");
    is(scalar(grep { $_->{status} != 200 } @all), 0,
        "$name: the admin API answered 200");
    is(scalar(grep { $_->{late_bad} || !$_->{late} } @all), 0,
        "$name: from " . $BOUND * 1000 . ' ms on, every answer refuses');
}


subtest 'DELETE: the key is refused on every worker' => sub {
    check_tries('DELETE', sub {
        try_write('/api/x', create_key(), 'DELETE', undef, 401);
    });
};

subtest 'PATCH of the scopes: seen by every worker' => sub {
    check_tries('PATCH scopes', sub {
        try_write('/people/x', create_key(), 'PATCH',
            '{"scopes":["read:other"]}', 403);
    });
};

done_testing();
