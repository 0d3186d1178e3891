# The Debian packages from `make deb` on this machine, as an operator uses
# them: apt-get installs them, the packaged nginx loads the module through
# /etc/nginx/modules-enabled and answers one request with a key the packaged
# `apikey` made, and apt-get purge leaves nothing behind.
#
# Run as root by `make test-deb` (not by `make test`: it installs and purges
# packages, also when they were installed before). The system's nginx
# service is neither started nor stopped: the nginx here runs from a private
# prefix on a free loopback port. Its configuration includes every
# installed module's snippet, as Debian's nginx.conf does.

use lib 't/lib';
use ApiKey::Test;
use JSON::PP ();
use POSIX ();

my @PACKAGES = qw(libnginx-mod-http-apikey apikey);
my $SO = '/usr/lib/nginx/modules/ngx_http_apikey_module.so';
my $SNIPPET = '/usr/share/nginx/modules-available/mod-http-apikey.conf';
my $LINK = '/etc/nginx/modules-enabled/50-mod-http-apikey.conf';
my $CLI = '/usr/bin/apikey';

# (exit code, stdout and stderr) of a command run without stdin
sub run {
    my (@cmd) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}

# a step the rest depends on: stop here, loudly, when it fails
sub must {
    my ($ok, $name, $out) = @_;
    ok($ok, $name) and return;
    diag($out) if defined $out;
    BAIL_OUT("$name failed");
}

sub dpkg_status {
    my ($pkg) = @_;
    my ($rc, $out) = run('dpkg-query', '-W', '-f=${db:Status-Abbrev}', $pkg);
    return $rc ? 'unknown' : $out;
}

sub apt_get {
    local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
    return run('apt-get', '-y', '-q', '-o', 'DPkg::Lock::Timeout=300', @_);
}


must($> == 0, 'runs as root (it installs packages)');

my @debs = map { my $p = $_; glob(project_root() . "/build/deb/${p}_*.deb") }
    @PACKAGES;
must(@debs == 2, 'make deb built both packages',
    'no packages in build/deb: run `make deb` first');

my $purged;
END {
    # a failed step still leaves the machine without the packages
    local $?;
    apt_get('purge', @PACKAGES) if @debs == 2 && !$purged && $> == 0;
}


# Installation

my ($rc, $out) = apt_get('install', @debs);
must($rc == 0, 'apt-get install ./build/deb/*.deb', $out);

for my $pkg (@PACKAGES) {
    is(dpkg_status($pkg), 'ii ', "$pkg is installed");
}

my %files;
for my $pkg (@PACKAGES) {
    ($rc, $out) = run('dpkg', '-L', $pkg);
    must($rc == 0, "dpkg -L $pkg", $out);
    $files{$pkg} = [ grep { -f $_ || -l $_ } split /\n/, $out ];
}
my %has = map { $_ => 1 } map { @$_ } values %files;
ok($has{$_}, "the packages hold $_")
    for $SO, $SNIPPET, $CLI, '/usr/share/man/man1/apikey.1.gz',
        map { "/usr/share/ngx_http_apikey_module/console/$_" }
            qw(index.html console.css console.js);

is(readlink($LINK), $SNIPPET, "postinst links $LINK to the snippet");
open(my $fh, '<', $SNIPPET) or die "$SNIPPET: $!";
is(scalar(<$fh>), "load_module modules/ngx_http_apikey_module.so;\n",
    'the snippet loads the module the way Debian\'s own snippets do');
close $fh;


# The packaged nginx (the harness runs it with its own prefix and
# configuration, see ApiKey::Test::Nginx), loading the module only through
# the installed snippet.

my $redis = start_redis();
my %conf = (module => 0, redis => $redis,
    main => 'include /etc/nginx/modules-enabled/*.conf;',
    http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            apikey_redis %%REDIS%%;
            proxy_pass http://%%ECHO%%;
        }
    }
EOF

($rc, $out) = nginx_check(%conf);
must($rc == 0 && $out =~ /test is successful/,
    'nginx -t: the configuration loads the module from modules-enabled',
    $out);


# One key made by the packaged tool, one request with it, one without.

($rc, $out) = run($CLI, '--redis', $redis->addr, 'create', '--name', 'x',
    '--json');
must($rc == 0, "$CLI create --json", $out);
my ($json) = $out =~ /^(\{.*\})\s*$/m;
my $made = eval { JSON::PP->new->decode($json // '') };
must($made && $made->{key}, 'the tool printed the new key', $out);

my $nginx = start_nginx(%conf);

my $res = $nginx->get('/', Authorization => "Bearer $made->{key}");
is($res->status, 200, 'a request with the key gets 200')
    or diag($res->raw // $res->error);
is(eval { $res->upstream->header('x-apikey-id') }, $made->{id},
    'and reaches the upstream with the key\'s id');
answer_is($nginx->get('/'), 'missing');

$nginx->stop;
$redis->stop;
ok(!kill(0, $nginx->master), 'nginx stopped');


# Removal: nothing of the packages is left.

($rc, $out) = apt_get('purge', @PACKAGES);
ok($rc == 0, 'apt-get purge') or diag($out);
$purged = 1;

for my $pkg (@PACKAGES) {
    like(dpkg_status($pkg), qr/^(?:unknown|[up]n)/,
        "$pkg is neither installed nor has configuration left");
    my @left = grep { -e $_ || -l $_ } @{ $files{$pkg} };
    is_deeply(\@left, [], "no file of $pkg is left") or diag("@left");
}
ok(!-e $LINK && !-l $LINK, "$LINK is gone");
ok(!-l "$LINK.removed", "$LINK.removed is gone");

done_testing();
