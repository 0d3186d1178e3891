# Configuration errors are caught by `nginx -t` with an [emerg] line that
# names the directive or the bad value; good configurations pass.

use lib 't/lib';
use ApiKey::Test;

my $dir = test_dir();

sub write_file {
    my ($name, $content) = @_;
    open(my $fh, '>', "$dir/$name") or die "$dir/$name: $!";
    print {$fh} $content;
    close $fh;
    return "$dir/$name";
}

my $secret = write_file('secret', "s3cret\n");
my $empty = write_file('empty', '');
my $newline_only = write_file('newline-only', "\n");

sub conf {
    my ($in_location, $in_server) = @_;
    return <<"EOF";
    server {
        listen 127.0.0.1:%%PORT%%;
        @{[ $in_server // '' ]}
        location / {
            $in_location
            proxy_pass http://127.0.0.1:9;
        }
    }
EOF
}

sub accepts {
    my ($what, $in_location, $in_server) = @_;
    my ($rc, $out) = nginx_check(http => conf($in_location, $in_server));
    is($rc, 0, "accepted: $what") or diag $out;
}

sub rejects {
    my ($what, $in_location, $re, $in_server) = @_;
    subtest "rejected: $what" => sub {
        my ($rc, $out) = nginx_check(http => conf($in_location, $in_server));
        isnt($rc, 0, 'nginx -t fails');
        like($out, qr/\[emerg\]/, 'with an [emerg] line');
        like($out, $re, "saying $re") or diag $out;
    };
}

accepts('every directive with a valid value', <<"EOF");
            apikey on;
            apikey_realm "my api";
            apikey_redis 127.0.0.1:6379 db=2 user=nginx password=pw;
            apikey_redis_timeout 150ms;
            apikey_redis_keepalive 8;
            apikey_redis_prefix keys:;
            apikey_hash_secret_file $secret;
            apikey_scopes read:people write:people;
            apikey_org \$arg_org;
            apikey_upstream_headers off;
            apikey_hide_credentials off;
EOF
accepts('a host name, resolved when the configuration is read',
    'apikey on; apikey_redis localhost:6379;');
accepts('an IPv6 address', 'apikey on; apikey_redis [::1]:6379;');
accepts('a unix socket', 'apikey on; apikey_redis unix:/tmp/redis.sock;');
accepts('apikey_redis_keepalive 0 (no idle connections)',
    'apikey on; apikey_redis_keepalive 0;');
accepts('apikey and apikey_scopes inside limit_except',
    'apikey off; limit_except GET { apikey on; apikey_scopes write:x; }');
accepts('the directives at http level', 'apikey on;',
    'apikey_redis 127.0.0.1:6379; apikey_realm api;');

rejects('apikey maybe', 'apikey maybe;', qr/"maybe".*"apikey"|apikey.*maybe/);
rejects('apikey_upstream_headers maybe', 'apikey_upstream_headers maybe;',
    qr/apikey_upstream_headers/);
rejects('apikey_hide_credentials 1', 'apikey_hide_credentials 1;',
    qr/apikey_hide_credentials/);
rejects('apikey_redis_timeout abc', 'apikey_redis_timeout abc;',
    qr/apikey_redis_timeout/);
rejects('apikey_redis db=x', 'apikey_redis 127.0.0.1:6379 db=x;',
    qr/db=x/);
rejects('apikey_redis db=-1', 'apikey_redis 127.0.0.1:6379 db=-1;',
    qr/db=-1/);
rejects('apikey_redis with an unknown option',
    'apikey_redis 127.0.0.1:6379 foo=1;', qr/foo=1/);
rejects('apikey_redis with a port out of range',
    'apikey_redis 127.0.0.1:70000;', qr/70000/);
rejects('apikey_redis with an empty unix path', 'apikey_redis unix:;',
    qr/apikey_redis|unix:/);
rejects('apikey_redis_keepalive -1', 'apikey_redis_keepalive -1;',
    qr/apikey_redis_keepalive|"-1"/);
rejects('apikey_redis_keepalive abc', 'apikey_redis_keepalive abc;',
    qr/apikey_redis_keepalive|"abc"/);
rejects('apikey_hash_secret_file that does not exist',
    'apikey_hash_secret_file /nonexistent/secret;', qr{/nonexistent/secret});
rejects('an empty secret file', "apikey_hash_secret_file $empty;",
    qr/\Q$empty\E/);
rejects('a secret file holding only a newline',
    "apikey_hash_secret_file $newline_only;", qr/\Q$newline_only\E/);
rejects('apikey_realm with a double quote', q{apikey_realm 'a"b';},
    qr/apikey_realm/);
rejects('apikey_scopes without a scope', 'apikey_scopes;',
    qr/invalid number of arguments in "apikey_scopes"/);
rejects('apikey_realm inside limit_except',
    'limit_except GET { apikey_realm x; }',
    qr/"apikey_realm" directive is not allowed here/);

# apikey_cache_zone and apikey_cache NAME; apikey_cache zone= (the
# spelling from before apikey_cache_zone) declares and uses the zone
sub cache_conf {
    my ($http, $in_location, $in_server) = @_;
    return "$http\n" . conf("apikey on; $in_location",
        'apikey_redis 127.0.0.1:6379; ' . ($in_server // ''));
}

for (['apikey_cache_zone and apikey_cache NAME',
        'apikey_cache_zone zone=z:1m ttl=30s negative_ttl=0;',
        'apikey_cache z;'],
    ['a zone used before it is declared',
        'apikey_cache z; apikey_cache_zone zone=z:1m;', ''],
    ['apikey_cache zone= at http level, off in a location',
        'apikey_cache zone=z:1m ttl=30s;', 'apikey_cache off;'],
    ['apikey_cache zone= at http level, named in a location',
        'apikey_cache zone=z:1m;', 'apikey_cache z;'])
{
    my ($what, $http, $loc) = @$_;
    my ($rc, $out) = nginx_check(http => cache_conf($http, $loc));
    is($rc, 0, "accepted: $what") or diag $out;
}

for (['apikey_cache naming no zone', 'apikey_cache_zone zone=z:1m;',
        'apikey_cache y;', qr/unknown apikey_cache zone "y"/],
    ['apikey_cache with no zone declared', '', 'apikey_cache z;',
        qr/unknown apikey_cache zone "z"/],
    ['two zones', 'apikey_cache_zone zone=a:1m; apikey_cache_zone '
        . 'zone=b:1m;', '', qr/"apikey_cache_zone" directive is duplicate/],
    ['apikey_cache_zone and apikey_cache zone=', 'apikey_cache_zone '
        . 'zone=a:1m; apikey_cache zone=b:1m;', '',
        qr/"apikey_cache" directive is duplicate/],
    ['apikey_cache_zone without zone=', 'apikey_cache_zone ttl=1s;', '',
        qr/"apikey_cache_zone" needs zone=NAME:SIZE/],
    ['apikey_cache_zone in a server', '', '',
        qr/"apikey_cache_zone" directive is not allowed here/,
        'apikey_cache_zone zone=z:1m;'],
    ['apikey_cache zone= in a location', '', 'apikey_cache zone=z:1m;',
        qr/zone= is only valid at the http level/],
    ['a zone too small', 'apikey_cache_zone zone=z:8k;', '',
        qr/zone "zone=z:8k" is too small/],
    ['apikey_cache twice in a location', 'apikey_cache_zone zone=z:1m;',
        'apikey_cache z; apikey_cache off;',
        qr/"apikey_cache" directive is duplicate/])
{
    my ($what, $http, $loc, $re, $in_server) = @$_;
    subtest "rejected: $what" => sub {
        my ($rc, $out) = nginx_check(http => cache_conf($http, $loc,
            $in_server));
        isnt($rc, 0, 'nginx -t fails');
        like($out, qr/\[emerg\]/, 'with an [emerg] line');
        like($out, $re, "saying $re") or diag $out;
    };
}

for my $d ('apikey on', 'apikey_realm api', 'apikey_redis 127.0.0.1:6379',
    'apikey_redis_timeout 1s', 'apikey_redis_keepalive 4',
    'apikey_redis_prefix p:', "apikey_hash_secret_file $secret",
    'apikey_scopes a', 'apikey_org x', 'apikey_upstream_headers on',
    'apikey_hide_credentials on')
{
    my ($name) = split / /, $d;
    rejects("$name twice in one block", "$d; $d;",
        qr/"$name" directive is duplicate/);
}

accepts('apikey_metrics in a server without any apikey on', '',
    'apikey_metrics;');
rejects('apikey_metrics with a parameter', '',
    qr/invalid number of arguments in "apikey_metrics"/, 'apikey_metrics on;');
rejects('apikey_metrics twice in one block', '',
    qr/"apikey_metrics" directive is duplicate/,
    'apikey_metrics; apikey_metrics;');
# the module's own zone cannot be taken for a cache
rejects('apikey_cache naming the metrics zone',
    'apikey on; apikey_cache "apikey:metrics";', qr/"apikey:metrics"/);

# apikey_redis_upstream blocks: the block goes into the http{} text
sub block_conf {
    my ($block, $use) = @_;
    return "$block\n" . conf("apikey on; apikey_redis $use;");
}

sub block_check {
    my ($what, $block, $use, $re) = @_;
    my ($rc, $out) = nginx_check(http => block_conf($block, $use));
    if (!defined $re) {
        is($rc, 0, "accepted: $what") or diag $out;
        return;
    }
    subtest "rejected: $what" => sub {
        isnt($rc, 0, 'nginx -t fails');
        like($out, qr/\[emerg\]/, 'with an [emerg] line');
        like($out, $re, "saying $re") or diag $out;
    };
}

block_check('an apikey_redis_upstream block with every setting',
    "apikey_redis_upstream keys { server 127.0.0.1:6380; db 2;\n"
    . " auth user=nginx password=pw; tls on; tls_verify off;\n"
    . " tls_name redis.test; }", 'keys');
block_check('a block named like an address',
    'apikey_redis_upstream a:1 { server 127.0.0.1:6380; }', 'a:1',
    qr/invalid apikey_redis_upstream name "a:1"/);
block_check('two blocks of one name',
    "apikey_redis_upstream k { server 127.0.0.1:6380; }\n"
    . "apikey_redis_upstream k { server 127.0.0.1:6381; }", 'k',
    qr/duplicate apikey_redis_upstream "k"/);
block_check('a block without server', 'apikey_redis_upstream k { db 1; }',
    'k', qr/no "server", "sentinel" or "cluster" in apikey_redis_upstream "k"/);
block_check('tls_* without tls on',
    'apikey_redis_upstream k { server 127.0.0.1:6380; tls_name x; }', 'k',
    qr/tls_\* settings of apikey_redis_upstream "k" need "tls on"/);
block_check('tls on without a CA while tls_verify is on',
    'apikey_redis_upstream k { server 127.0.0.1:6380; tls on; }', 'k',
    qr/"tls_verify" is on .* but no "tls_trusted_certificate"/);
block_check('an unreadable CA file',
    "apikey_redis_upstream k { server 127.0.0.1:6380; tls on;\n"
    . " tls_trusted_certificate $dir/nothing.pem; }", 'k',
    qr/nothing\.pem/);
block_check('a certificate without its key',
    "apikey_redis_upstream k { server 127.0.0.1:6380; tls on;\n"
    . " tls_verify off; tls_certificate $dir/nothing.pem; }", 'k',
    qr/"tls_certificate" and "tls_certificate_key" go together/);
block_check('a cluster block with two seeds, auth and TLS',
    "apikey_redis_upstream k { cluster 127.0.0.1:7000;\n"
    . " cluster 127.0.0.1:7001; auth password=pw; tls on;\n"
    . " tls_verify off; }", 'k');
block_check('cluster mixed with server',
    "apikey_redis_upstream k { cluster 127.0.0.1:7000;\n"
    . " server 127.0.0.1:6380; }", 'k',
    qr/"cluster" cannot be mixed with "server" in apikey_redis_upstream "k"/);
block_check('cluster mixed with sentinel',
    "apikey_redis_upstream k { sentinel 127.0.0.1:26379;\n"
    . " sentinel_master m; cluster 127.0.0.1:7000; }", 'k',
    qr/"cluster" cannot be mixed with "sentinel" in apikey_redis_upstream/);
block_check('cluster with db',
    "apikey_redis_upstream k { cluster 127.0.0.1:7000; db 1; }", 'k',
    qr/"db" cannot be used with "cluster" in apikey_redis_upstream "k"/);
block_check('a bad cluster address',
    "apikey_redis_upstream k { cluster 127.0.0.1:99999; }", 'k',
    qr/invalid port in "apikey_redis" address "127.0.0.1:99999"/);
block_check('an unknown directive in the block',
    "apikey_redis_upstream k { server 127.0.0.1:6380; tls_wat on; }", 'k',
    qr/unknown directive or wrong number of parameters "tls_wat"/);
block_check('a bad db', "apikey_redis_upstream k { server 127.0.0.1:6380;"
    . " db x; }", 'k', qr/invalid database number "x"/);

done_testing;
