# The console page (console/) served beside the admin API, used in
# headless Chromium as staff use it: create a key, read it once, use it,
# find it gone after a reload, revoke it after a confirmation, and see it
# refused; names that look like markup stay text; a phone's screen.
#
# The walk itself is t/browser/console-test.js (puppeteer-core driving
# Debian's chromium); each of its checks is one result here.  Screenshots
# go to the test's directory, which is kept when the test fails.
# `make test-browser` installs chromium and puppeteer-core and runs this.

use lib 't/lib';
use ApiKey::Test;

use JSON::PP ();


my $root = project_root();
my $chromium = $ENV{APIKEY_TEST_CHROMIUM} || '/usr/bin/chromium';
my $modules = "$root/build/browser/node_modules";

my @missing;
push @missing, $chromium unless -x $chromium;
push @missing, 'node' unless grep { -x "$_/node" } split /:/, $ENV{PATH};
push @missing, "puppeteer-core in $modules"
    unless -d "$modules/puppeteer-core";

if (@missing) {
    my $why = 'missing ' . join(', ', @missing)
        . ': `make test-browser` installs them';

    # a CI machine that lacks them has not tested the console
    if (($ENV{CI} // '') !~ /^(|0|false|no)$/i) {
        fail("the browser test can run: $why");
        done_testing();
        exit;
    }

    plan skip_all => $why;
}


my $redis = start_redis();

my $nginx = start_nginx(redis => $redis, http => <<"EOF");
    server {
        listen 127.0.0.1:%%PORT%%;
        apikey_redis %%REDIS%%;

        location /admin/keys/ {
            allow 127.0.0.1;
            deny all;

            apikey_admin on;
            apikey_admin_scopes read:people write:people read:interviews;
            apikey_admin_prefix ck_;
        }

        # the test's nginx has no mime.types
        location /admin/console/ {
            alias $root/console/;
            types {
                text/html               html;
                text/css                css;
                application/javascript  js;
            }
        }

        # the same page beside an admin API that does not cap scopes
        location /open/keys/ {
            allow 127.0.0.1;
            deny all;

            apikey_admin on;
        }

        location /open/console/ {
            alias $root/console/;
            types {
                text/html               html;
                text/css                css;
                application/javascript  js;
            }
        }

        location /api/ {
            apikey on;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

my $base = 'http://127.0.0.1:' . $nginx->port;
my $dir = test_dir();


# the walk, with its checks as they come
my $id;
my $pid = open(my $out, '-|') // die "fork: $!";

if ($pid == 0) {
    open(STDERR, '>', "$dir/browser.err");
    %ENV = (%ENV,
        CONSOLE_URL => "$base/admin/console/",
        OPEN_URL    => "$base/open/console/",
        API_URL     => "$base/api/people",
        OUT_DIR     => $dir,
        CHROMIUM    => $chromium,
        TIME_FACTOR => $ENV{APIKEY_TEST_TIME_FACTOR} || 1,
        NODE_PATH   => $modules,
        HOME        => $dir);
    exec('timeout', '-k', '5', int(slack(120)), 'node',
        "$root/t/browser/console-test.js") or POSIX::_exit(127);
}

my $checks = 0;

while (my $line = <$out>) {
    my $r = eval { JSON::PP->new->decode($line) };

    if (!$r) {
        fail('the walk prints one result a line');
        diag($line);
        next;
    }

    if (exists $r->{id}) {
        $id = $r->{id};
        next;
    }

    $checks++;
    ok($r->{ok}, $r->{name}) or diag($r->{diag} // '');
}

close $out;
is($? >> 8, 0, 'the walk ended well') or do {
    open(my $err, '<', "$dir/browser.err");
    local $/;
    diag(<$err> // '');
};
cmp_ok($checks, '>=', 40, "the walk ran its checks ($checks)");


subtest 'the key made in the page is a key of the apikey tool' => sub {
    ok($id, 'the page listed its id') or return;
    my $k = run_cli_json({ redis => $redis }, 'show', $id);
    is($k->{name}, 'Console test key', 'its name');
    is_deeply($k->{scopes}, ['read:people'], 'its scope');
    is($k->{state}, 'revoked', 'revoked from the page');
    ok(!exists $k->{key}, 'and the tool does not show the key either');
};


done_testing();
