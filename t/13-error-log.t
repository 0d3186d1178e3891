# The debug error log never holds a token or a secret (nginx core's own
# header dumps aside), across every kind of answer and a reload; that
# nothing is logged at alert, crit or emerg level, to the graceful stop,
# the harness checks at the end of every test.

use lib 't/lib';
use ApiKey::Test;

my $dir = test_dir();
open(my $fh, '>', "$dir/secret") or die $!;
print {$fh} "hmac-secret-value\n";
close $fh;

my $redis = start_redis(password => 'redis-pw-value');
my $http = <<'EOF';
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%% password=redis-pw-value;

        location /api/ {
            apikey on;
            apikey_scopes read:people;
            proxy_pass http://%%ECHO%%;
        }

        location ~ ^/w/(?<ws>[^/]+)/ {
            apikey on;
            apikey_org $ws;
            proxy_pass http://%%ECHO%%;
        }

        location /hmac/ {
            apikey on;
            apikey_hash_secret_file %%SECRET%%;
            proxy_pass http://%%ECHO%%;
        }

        location /pass/ {
            apikey on;
            apikey_hide_credentials off;
            proxy_pass http://%%ECHO%%;
        }

        location /down/ {
            apikey on;
            apikey_redis 127.0.0.1:%%CLOSED%%;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF
my $nginx = start_nginx(workers => 2, redis => $redis, http => $http,
    vars => { SECRET => "$dir/secret", CLOSED => free_port() });

my %t = map { $_ => new_token() } qw(good unknown expired revoked noscope
    otherorg hmac);
seed_key($redis, $t{good}, id => 'k_good', org => 'acme',
    scopes => 'read:people');
seed_key($redis, $t{expired}, id => 'k_exp', expires_at => now - 5);
seed_key($redis, $t{revoked}, id => 'k_rev', revoked => 1);
seed_key($redis, $t{noscope}, id => 'k_nos', scopes => 'write:people');
seed_key($redis, $t{otherorg}, id => 'k_oth', org => 'globex');
seed_key($redis, $t{hmac}, id => 'k_hmac', -secret => 'hmac-secret-value');

my @requests = (
    ['/api/x', 'good', 200], ['/api/x', 'unknown', 401],
    ['/api/x', 'expired', 401], ['/api/x', 'revoked', 401],
    ['/api/x', 'noscope', 403], ['/w/acme/x', 'good', 200],
    ['/w/acme/x', 'otherorg', 403], ['/hmac/x', 'hmac', 200],
    ['/pass/x', 'good', 200], ['/down/x', 'good', 503],
);

sub run_all {
    my ($label) = @_;
    for my $r (@requests) {
        my ($path, $which, $want) = @$r;
        is($nginx->get($path, Authorization => "Bearer $t{$which}")->status,
            $want, "$label: $path with the $which key: $want");
    }
}

run_all('first round');
$nginx->reload;
run_all('after a reload');

subtest 'no token, secret or password in the debug log' => sub {
    ok(scalar(grep { /\[debug\]/ } $nginx->log_entries) > 100,
        'the log is at debug level');
    error_log_clean($nginx, values %t);
    my @secrets = grep { /hmac-secret-value|redis-pw-value/ }
        $nginx->log_entries;
    is(scalar(@secrets), 0, 'no HMAC secret or Redis password')
        or diag(join "\n",
            map { s/hmac-secret-value|redis-pw-value/<SECRET>/gr } @secrets);
};

subtest 'a query-string token stays out of the info log after '
    . 'error_page 400' => sub {
    my $info = start_nginx(redis => $redis, log_level => 'info',
        http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%% password=redis-pw-value;
        apikey on;

        location /api/ {
            error_page 400 /refused/;
            proxy_pass http://%%ECHO%%;
        }

        location /staff-api/ {
            error_page 400 /staff/;
            proxy_pass http://%%ECHO%%;
        }

        location /refused/ {
            proxy_pass http://%%ECHO%%;
        }

        location /staff/ {
            apikey_redis_prefix staff:;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF
    my $q = new_token();
    for my $path ('/api/x', '/staff-api/x') {
        is($info->get("$path?access_token=$q")->status, 400,
            "$path?access_token=...: 400 from the error_page location");
        is($info->get("$path?access_token=$q",
            Authorization => "Bearer $t{good}")->status, 400,
            'and with a valid key in the header too');
    }
    is($info->get('/api/x', Authorization => "Bearer $t{unknown}")->status,
        401, 'an unknown key: 401');
    my @lines = $info->log_entries;
    ok((grep { /\[info\].*refused: invalid/ } @lines),
        'refusals are logged at info level');
    my @leaks = grep { index($_, $q) >= 0 } @lines;
    is(scalar(@leaks), 0, 'the query-string token is not in the error log')
        or diag(join "\n", map { s/\Q$q\E/<TOKEN>/gr } @leaks);
    $info->stop;
};

done_testing;
