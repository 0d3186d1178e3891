# Key ids are unique: the apikey tool never overwrites the id index of
# another key (SET NX), it draws another id.  Ids are random, so the test
# makes the tool draw an id it drew before: OpenSSL's RAND_bytes() is
# replaced by a seeded stream (t/shim/seeded_rand.c, LD_PRELOAD), the id
# of a first run is given to another key, and a second run with the same
# seed must leave that key alone.

use lib 't/lib';
use ApiKey::Test;


my $redis = start_redis();

my $shim = test_dir() . '/seeded_rand.so';
system('cc', '-shared', '-fPIC', '-O2', '-o', $shim,
    project_root() . '/t/shim/seeded_rand.c') == 0
    or BAIL_OUT('cannot build t/shim/seeded_rand.c');

my %seeded = (env => { LD_PRELOAD => $shim, APIKEY_TEST_RAND_SEED => 42 });

sub apikey { return run_cli({ redis => $redis }, @_) }

sub apikey_json { return run_cli_json({ redis => $redis }, @_) }

sub seeded_create {
    return run_cli_json({ redis => $redis, %seeded }, 'create', '--name',
        'Seeded', '--org', 'acme');
}


my $first = seeded_create();
ok($first->{id}, "a seeded run draws $first->{id}");
$redis->cmd('FLUSHALL');

is(seeded_create()->{id}, $first->{id}, 'the same seed draws the same id');
$redis->cmd('FLUSHALL');

# another key holds the id the seeded run draws first
my $victim = new_token();
my $hash = seed_key($redis, $victim, id => $first->{id}, name => 'Victim',
    org => 'globex');
$hash =~ s/^apikey://;
$redis->cmd('SET', "apikey:id:$first->{id}", $hash);
$redis->cmd('SADD', 'apikey:ids', $first->{id});
$redis->cmd('SADD', 'apikey:org:globex', $first->{id});

my $second = seeded_create();

isnt($second->{id}, $first->{id}, "a taken id is not reused: $second->{id}");
is($redis->cmd('GET', "apikey:id:$first->{id}"), $hash,
    'the other key keeps its id index');
is(apikey_json('show', $first->{id})->{name}, 'Victim',
    'show finds the other key by its id');
is(apikey_json('show', $second->{id})->{name}, 'Seeded',
    'and the new key by its own');
is(apikey_json('verify', $second->{key})->{record}{id}, $second->{id},
    'the new key is recorded under its id');
is_deeply([sort map { $_->{id} } @{ apikey_json('list') }],
    [sort $first->{id}, $second->{id}], 'list shows both');

done_testing();
