# An internal redirect into a location that reads keys another way (another
# Redis, prefix, HMAC secret, key prefix or checksum rule) looks the key up
# again there: the first location's record does not answer for it.

use lib 't/lib';
use ApiKey::Test;

my $dir = test_dir();
open(my $fh, '>', "$dir/secret") or die "$dir/secret: $!";
print {$fh} "redirect-secret\n";
close $fh;

my $redis = start_redis();
my $redis2 = start_redis();

my $nginx = start_nginx(redis => $redis,
    vars => { REDIS2 => $redis2->addr, SECRET => "$dir/secret" },
    http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        add_header X-Status $apikey_status always;
        apikey on;
        apikey_redis %%REDIS%%;

        # partner locations: any key of the default prefix gets through
        location /try-files/       { try_files /none @staff; }
        location /try-files-uri/   { try_files /none /staff/x; }
        location /error-page/      { root %%DIR%%/none;
                                     error_page 404 = @staff; }
        location /accel/           { proxy_pass http://127.0.0.1:%%PORT2%%; }

        location /staff/ {
            apikey_redis_prefix staff:;
            apikey_scopes admin;
            proxy_pass http://%%ECHO%%;
        }

        location @staff {
            apikey_redis_prefix staff:;
            apikey_scopes admin;
            proxy_pass http://%%ECHO%%;
        }

        location /to-redis2/       { try_files /none @redis2; }
        location /to-hmac/         { try_files /none @hmac; }
        location /to-key-prefix/   { try_files /none @key_prefix; }
        location /to-checksum/     { try_files /none @checksum; }
        location /to-same/         { try_files /none @same; }

        location @redis2 {
            apikey_redis %%REDIS2%%;
            proxy_pass http://%%ECHO%%;
        }

        location @hmac {
            apikey_hash_secret_file %%SECRET%%;
            proxy_pass http://%%ECHO%%;
        }

        location @key_prefix {
            apikey_key_prefix sk_;
            proxy_pass http://%%ECHO%%;
        }

        location @checksum {
            apikey_key_checksum on;
            proxy_pass http://%%ECHO%%;
        }

        location @same {
            apikey_scopes read;
            proxy_pass http://%%ECHO%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT2%%;

        location / {
            add_header X-Accel-Redirect @staff;
            return 204;
        }
    }
EOF

# a partner key may do anything under the default prefix, and is nobody
# under staff:, in the second Redis, or under the HMAC secret
my $partner = new_token();
seed_key($redis, $partner, id => 'k_partner', scopes => '*');

# a key known both ways: which record answers shows where it was read
my $both = new_token();
seed_key($redis, $both, id => 'k_both_partner', scopes => '');
seed_key($redis, $both, id => 'k_both_staff', scopes => 'admin',
    -prefix => 'staff:');
seed_key($redis2, $both, id => 'k_both_redis2');
seed_key($redis, $both, id => 'k_both_hmac', -secret => 'redirect-secret');

my $sk = new_token(prefix => 'sk_');
seed_key($redis, $sk, id => 'k_sk');

# a record whose token fails the checksum: only a location that does not
# check finds it
(my $bad_sum = new_token()) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;
seed_key($redis, $bad_sum, id => 'k_bad_sum', scopes => 'read');

sub seen {
    my ($path, $t) = @_;
    return $nginx->get($path, Authorization => "Bearer $t")->verdict;
}

for my $c (['try_files to a named location', '/try-files/x'],
    ['try_files to a URI', '/try-files-uri/x'],
    ['error_page to a named location', '/error-page/x'],
    ['X-Accel-Redirect to a named location', '/accel/x'])
{
    my ($what, $path) = @$c;
    subtest "$what: the staff location reads staff: records" => sub {
        my $res = $nginx->get($path, Authorization => "Bearer $partner");
        answer_is($res, 'invalid',
            name => 'a partner key with "*" is not a staff key');
        is($res->header('x-status'), 'invalid', '$apikey_status = invalid');
        is(seen($path, $both), '200 k_both_staff',
            'a key with a staff: record is let through as that record');
    };
}

subtest 'another apikey_redis: the key is read from that server' => sub {
    is(seen('/to-redis2/x', $partner), '401 invalid',
        'a key only in the first Redis is refused');
    is(seen('/to-redis2/x', $both), '200 k_both_redis2',
        'a key in the second Redis is its record there');
};

subtest 'another apikey_hash_secret_file: the key is hashed again' => sub {
    is(seen('/to-hmac/x', $partner), '401 invalid',
        'a plain SHA-256 record is not used');
    is(seen('/to-hmac/x', $both), '200 k_both_hmac',
        'the HMAC record is found');
};

subtest 'another apikey_key_prefix: the format is checked again' => sub {
    is(seen('/to-key-prefix/x', $partner), '401 invalid',
        'an ak_ key is refused where sk_ keys are required');
    is(seen('/to-key-prefix/x', $sk), '200 k_sk', 'an sk_ key passes');
};

subtest 'apikey_key_checksum on: the checksum is checked again' => sub {
    is(seen('/to-same/x', $bad_sum), '200 k_bad_sum',
        'without the check the record is found');
    is(seen('/to-checksum/x', $bad_sum), '401 invalid',
        'with it the key is refused');
};

subtest 'the same rules: the record is reused, one lookup' => sub {
    my $key = key_hash($bad_sum);
    $redis->cmd('CONFIG', 'RESETSTAT');
    is(seen('/to-same/x', $bad_sum), '200 k_bad_sum', 'let through');
    my %info = map { /^(\w+):(.*?)\r?$/ ? ($1, $2) : () }
        split /\n/, $redis->cmd('INFO', 'commandstats');
    like($info{cmdstat_hmget} // '', qr/^calls=1,/, 'one HMGET');
};

done_testing;
