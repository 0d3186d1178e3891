# auth_delay applies to the module's 401 answers, as to auth_basic's: a
# missing, unknown, expired or revoked key is answered only after the
# delay, with the module's own answer; other answers are not delayed.

use lib 't/lib';
use ApiKey::Test;

use IO::Socket::INET;

my $DELAY = 0.6;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        add_header X-Status $apikey_status always;
        apikey on;
        apikey_redis %%REDIS%%;
        auth_delay 600ms;

        location /api/ {
            apikey_scopes read;
            proxy_pass http://%%ECHO%%;
        }

        location /page/ {
            error_page 401 /page401;
            proxy_pass http://%%ECHO%%;
        }

        location = /page401 {
            apikey off;
            return 200 "a page of its own\n";
        }
    }
EOF

my $token = new_token();
seed_key($redis, $token, id => 'k_read', scopes => 'read');
my $write = new_token();
seed_key($redis, $write, id => 'k_write', scopes => 'write');
my $revoked = new_token();
seed_key($redis, $revoked, id => 'k_revoked', scopes => 'read', revoked => 1);

for my $c (['no key', 'missing', []],
    ['an unknown key', 'invalid', [Authorization => 'Bearer ' . new_token()]],
    ['a revoked key', 'invalid', [Authorization => "Bearer $revoked"]])
{
    my ($what, $answer, $h) = @$c;
    subtest "$what: the module's 401, after auth_delay" => sub {
        my $res = $nginx->get('/api/x', @$h);
        answer_is($res, $answer);
        cmp_ok($res->elapsed, '>=', $DELAY - 0.05,
            sprintf('answered after %.3f s', $res->elapsed));
    };
}

subtest 'an error_page for 401: nginx delays, the page answers' => sub {
    my $res = $nginx->get('/page/x');
    is($res->status, 401, 'status 401');
    is($res->body, "a page of its own\n", 'the error_page');
    cmp_ok($res->elapsed, '>=', $DELAY - 0.05,
        sprintf('answered after %.3f s', $res->elapsed));
};

timing_ok('a 403 is not delayed', sub {
    my $res = $nginx->get('/api/x', Authorization => "Bearer $write");
    return ($res->status == 403 && $res->elapsed < $DELAY / 2,
        sprintf('%d after %.3f s', $res->status, $res->elapsed));
});

timing_ok('a valid key is not delayed', sub {
    my $res = $nginx->get('/api/x', Authorization => "Bearer $token");
    return ($res->status == 200 && $res->elapsed < $DELAY / 2,
        sprintf('%d after %.3f s', $res->status, $res->elapsed));
});

subtest 'a client that goes away during the delay' => sub {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $nginx->port, Proto => 'tcp') or die "connect: $!";
    print {$s} "GET /api/x HTTP/1.1\r\nHost: localhost\r\n\r\n";
    sleep 0.1;
    close $s;
    sleep $DELAY;
    is($nginx->get('/api/x', Authorization => "Bearer $token")->status, 200,
        'nginx goes on serving');
};

done_testing;
