# Expiry and revocation are read from the record on every lookup: a key
# that expires or is revoked is refused on the next request.

use lib 't/lib';
use ApiKey::Test;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        add_header X-Status $apikey_status always;

        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

sub status_for {
    my ($token) = @_;
    my $res = $nginx->get('/api/x', Authorization => "Bearer $token");
    return $res->status . ' ' . ($res->header('x-status') // '(none)');
}

my @tokens;
sub key_with {
    my (%f) = @_;
    my $t = new_token();
    push @tokens, $t;
    seed_key($redis, $t, id => 'k_' . scalar(@tokens), %f);
    return $t;
}

my @cases = (
    ['expires_at in the past',        [expires_at => now - 3600], '401 expired'],
    ['expires_at one second ago',     [expires_at => now - 1],    '401 expired'],
    ['expires_at in the future',      [expires_at => now + 3600], '200 ok'],
    ['expires_at 0 (never)',          [expires_at => 0],           '200 ok'],
    ['expires_at empty (never)',      [expires_at => ''],          '200 ok'],
    ['no expires_at (never)',         [],                          '200 ok'],
    ['revoked = 1',                   [revoked => 1],              '401 revoked'],
    ['revoked = 0',                   [revoked => 0],              '200 ok'],
    ['revoked empty',                 [revoked => ''],             '200 ok'],
    ['revoked and expired',  [revoked => 1, expires_at => now - 60],
        qr/^401 (?:revoked|expired)$/],
);

for my $c (@cases) {
    my ($what, $fields, $want) = @$c;
    my $t = key_with(@$fields);
    if (ref $want) {
        like(status_for($t), $want, "$what: refused");
    } else {
        is(status_for($t), $want, "$what: $want");
    }
}

subtest 'revoking a key takes effect on the next request' => sub {
    my $t = key_with(name => 'soon revoked');
    is(status_for($t), '200 ok', 'works before');
    $redis->cmd('HSET', key_hash($t), 'revoked', '1');
    is(status_for($t), '401 revoked', 'refused right after');
    answer_is($nginx->get('/api/x', Authorization => "Bearer $t"),
        'invalid', name => 'revoked');
};

subtest 'deleting a record takes effect on the next request' => sub {
    my $t = key_with();
    is(status_for($t), '200 ok', 'works before');
    $redis->cmd('DEL', key_hash($t));
    is(status_for($t), '401 invalid', 'refused right after');
};

subtest 'a key that expires while in use is refused from then on' => sub {
    my $at = now + 1;
    my $t = key_with(expires_at => $at);
    is(status_for($t), '200 ok', 'works before its expiry');
    sleep($at + 1.05 - time) if time < $at + 1.05;
    is(status_for($t), '401 expired', 'refused after');
};

subtest 'changing expires_at to the future brings a key back' => sub {
    my $t = key_with(expires_at => now - 10);
    is(status_for($t), '401 expired', 'expired');
    $redis->cmd('HSET', key_hash($t), 'expires_at', now + 3600);
    is(status_for($t), '200 ok', 'valid again');
};

subtest 'the error log stays clean' => sub {
    error_log_clean($nginx, @tokens);
};

done_testing;
