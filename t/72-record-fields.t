# apikey_record_fields: fields of the key record the module does not
# interpret, read in the same HMGET, cached with the record, and offered as
# $apikey_field_<name> to proxy_set_header, log_format and map.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::CacheTest;

my $redis = start_redis();
my $nginx = start_nginx(redis => $redis, http => <<'EOF');
    apikey_cache_zone zone=keys:1m ttl=60s;
    apikey_record_fields plan user_id;
    log_format fields "$apikey_id|$apikey_field_plan|$apikey_field_user_id";

    map $apikey_field_plan $plan_class {
        default  basic;
        gold     premium;
    }

    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;
        add_header X-Status $apikey_status always;

        location /a/ {
            apikey on;
            access_log %%DIR%%/fields.log fields;
            proxy_set_header X-Plan $apikey_field_plan;
            proxy_set_header X-User-Id $apikey_field_user_id;
            proxy_set_header X-Class $plan_class;
            proxy_pass http://%%ECHO%%;
        }

        location /own/ {
            apikey on;
            apikey_record_fields tier;
            proxy_set_header X-Plan $apikey_field_plan;
            proxy_set_header X-Tier $apikey_field_tier;
            proxy_pass http://%%ECHO%%;
        }

        location /cached/ {
            apikey on;
            apikey_cache keys;
            add_header X-Cache $apikey_cache_status always;
            proxy_set_header X-Plan $apikey_field_plan;
            proxy_set_header X-User-Id $apikey_field_user_id;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my $gold = new_token();
seed_key($redis, $gold, id => 'k_gold', plan => 'gold', user_id => 'u_42',
    tier => 't1');
my $plain = new_token();
seed_key($redis, $plain, id => 'k_plain');
my $odd = new_token();
seed_key($redis, $odd, id => 'k_odd', plan => "a\nX-Evil: 1");

sub get { return $nginx->get($_[0], Authorization => "Bearer $_[1]") }

subtest 'the fields reach the upstream' => sub {
    my $up = get('/a/x', $gold)->upstream;
    is($up->header('x-plan'), 'gold', '$apikey_field_plan');
    is($up->header('x-user-id'), 'u_42', '$apikey_field_user_id');
    is($up->header('x-class'), 'premium', 'through a map');
};

subtest 'an absent field is empty' => sub {
    my $up = get('/a/x', $plain)->upstream;
    ok(!$up->has('x-plan'), 'no X-Plan (an empty header is not sent)');
    is($up->header('x-class'), 'basic', 'the map\'s default');
};

subtest 'control characters cannot split a header' => sub {
    my $up = get('/a/x', $odd)->upstream;
    is($up->header('x-plan'), 'a?X-Evil: 1', 'replaced by "?"');
    ok(!$up->has('x-evil'), 'no header of its own');
};

subtest 'the fields in the access log' => sub {
    get('/a/log', $gold);
    my $log;
    wait_until(sub {
        $log = $nginx->_read($nginx->dir . '/fields.log') // '';
        $log =~ /k_gold/;
    }, slack(5));
    like($log, qr/^k_gold\|gold\|u_42$/m, '$apikey_field_* logged');
    get('/a/log', new_token());
    wait_until(sub {
        $log = $nginx->_read($nginx->dir . '/fields.log') // '';
        $log =~ /^-\|/m;
    }, slack(5));
    like($log, qr/^-\|-\|-$/m, 'an unknown key logs "-"');
};

subtest 'a location exposes its own list' => sub {
    my $up = get('/own/x', $gold)->upstream;
    is($up->header('x-tier'), 't1', 'its field');
    ok(!$up->has('x-plan'), 'not the fields of the http level');
};

subtest 'cached with the record' => sub {
    ApiKey::CacheTest::wait_live($nginx);
    my @r = map { get('/cached/x', $gold) } 1 .. 2;
    is(join(' ', map { $_->header('x-cache') } @r), 'MISS HIT',
        'a miss, then a hit');
    is(join(' ', map { $_->upstream->header('x-plan') } @r), 'gold gold',
        'the same field from Redis and from the cache');
    is(join(' ', map { $_->upstream->header('x-user-id') } @r),
        'u_42 u_42', 'the second field too');
};

subtest 'the apikey tool writes what nginx reads, and rotate keeps it' => sub {
    my $k = run_cli_json({ redis => $redis }, 'create', '--name', 'CLI',
        '--field', 'plan=gold', '--field', 'user_id=u_7',
        '--cidrs', '127.0.0.1 2001:db8::/32');
    is_deeply($k->{fields}, { plan => 'gold', user_id => 'u_7' },
        'create --json: the fields');
    is_deeply($k->{cidrs}, ['127.0.0.1', '2001:db8::/32'],
        'create --json: the networks');
    my $up = get('/a/x', $k->{key})->upstream;
    is($up && $up->header('x-plan'), 'gold', 'nginx reads the field');
    is($up && $up->header('x-user-id'), 'u_7', 'and the other');

    my $u = run_cli_json({ redis => $redis }, 'update', $k->{id},
        '--cidrs', '10.0.0.0/8', '--field', 'plan=', '--field', 'tier=t3');
    is_deeply($u->{fields}, { user_id => 'u_7', tier => 't3' },
        'update: one removed, one added');
    is_deeply($u->{cidrs}, ['10.0.0.0/8'], 'update: the new networks');
    is(get('/a/x', $k->{key})->status, 403, 'nginx: now outside');

    my $r = run_cli_json({ redis => $redis }, 'rotate', $k->{id});
    is_deeply([$r->{cidrs}, $r->{fields}],
        [['10.0.0.0/8'], { user_id => 'u_7', tier => 't3' }],
        'rotate: the new key has the same networks and fields');
    is(get('/a/x', $r->{key})->status, 403,
        'nginx: the new key is held to them');

    $u = run_cli_json({ redis => $redis }, 'update', $r->{id},
        '--cidrs', '');
    is_deeply($u->{cidrs}, [], 'update --cidrs "": none');
    is(get('/a/x', $r->{key})->status, 200, 'nginx: from anywhere');

    my $s = run_cli({ redis => $redis }, 'show', $r->{id});
    like($s->{out}, qr/^user_id\s+u_7$/m, 'show: a field is a row');
};

subtest 'the apikey tool refuses what nginx would not read' => sub {
    for my $c (
        [['--cidrs', '203.0.113.0/24 bogus'], qr/invalid --cidrs/],
        [['--cidrs', '203.0.113.0/24,10.0.0.0/8'], qr/invalid --cidrs/],
        [['--field', 'Plan=x'], qr/invalid --field "Plan=x"/],
        [['--field', 'scopes=x'], qr/invalid --field "scopes=x"/],
        [['--field', 'hint=x'], qr/invalid --field "hint=x"/],
        [['--field', 'plan'], qr/invalid --field "plan"/],
        [['--field', "plan=a\nb"], qr/invalid --field "plan"/],
        [['--field', 'plan=a', '--field', 'plan=b'],
            qr/--field plan is duplicate/])
    {
        my ($args, $re) = @$c;
        my $res = run_cli({ redis => $redis }, 'create', '--name', 'x',
            @$args);
        is($res->{code}, 2, "@$args: a usage error");
        like($res->{err}, $re, "@$args: saying $re");
    }
};

sub fails {
    my ($what, $http, $re) = @_;
    subtest "nginx -t: $what" => sub {
        my ($rc, $out) = nginx_check(http => $http);
        isnt($rc, 0, 'nginx -t fails');
        like($out, $re, "saying $re") or diag $out;
    };
}

for my $c (['an upper-case name', 'Plan', qr/invalid record field "Plan"/],
    ['a dash', 'a-b', qr/invalid record field "a-b": it must be 1 to 64 lowercase/],
    ['a field of the module', 'scopes',
        qr/"scopes": it is a field the module reads itself/],
    ['cidrs', 'cidrs', qr/"cidrs": it is a field the module reads/],
    ['a name too long', 'x' x 65, qr/must be 1 to 64 lowercase letters/],
    ['a name twice', 'plan plan', qr/duplicate record field "plan"/],
    ['33 names', join(' ', map { "f$_" } 1 .. 33),
        qr/at most 32 record fields/])
{
    my ($what, $args, $re) = @$c;
    fails($what, "apikey_record_fields $args;\n", $re);
}

fails('a variable of no such field', <<'EOF', qr/unknown "apikey_field_nope"/);
    apikey_record_fields plan;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            apikey on;
            proxy_set_header X-Nope $apikey_field_nope;
        }
    }
EOF

done_testing;
