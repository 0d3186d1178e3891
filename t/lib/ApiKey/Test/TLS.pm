# A throwaway certificate authority for tests that speak TLS to Redis:
#
#   my $pki = ApiKey::Test::TLS->new;      # in the test's temp folder
#   $pki->dir;                              # ca.crt other.crt server.crt/key
#                                           # client.crt/key
#   my $r = $pki->redis(mtls => 1);         # redis-server with --tls-port
#   $r->{tls_port};
#
# server.crt names IP 127.0.0.1 and DNS redis.test; client.crt is for
# clientAuth; other.crt is a CA that signed nothing here.

package ApiKey::Test::TLS;

use strict;
use warnings;
use POSIX ();
use ApiKey::Test::Proc qw(free_port test_dir);
use ApiKey::Test::Redis ();

sub new {
    my ($class, %o) = @_;
    my $dir = $o{dir} // test_dir() . '/tls';
    mkdir $dir or die "$dir: $!" unless -d $dir;
    my $self = bless { dir => $dir }, $class;

    for my $ca (qw(ca other)) {
        openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days',
            '2', '-subj', "/CN=apikey test $ca", '-keyout', "$dir/$ca.key",
            '-out', "$dir/$ca.crt");
    }
    for my $c (['server', 'subjectAltName=IP:127.0.0.1,DNS:redis.test'],
        ['client', 'extendedKeyUsage=clientAuth'])
    {
        my ($name, $ext) = @$c;
        openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj',
            "/CN=apikey test $name", '-keyout', "$dir/$name.key",
            '-out', "$dir/$name.csr");
        open(my $fh, '>', "$dir/$name.ext") or die $!;
        print {$fh} "$ext\n";
        close $fh;
        openssl('x509', '-req', '-in', "$dir/$name.csr", '-CA',
            "$dir/ca.crt", '-CAkey', "$dir/ca.key", '-CAcreateserial',
            '-days', '2', '-extfile', "$dir/$name.ext",
            '-out', "$dir/$name.crt");
    }
    chmod 0644, glob("$dir/*");
    return $self;
}

sub dir { return $_[0]{dir} }

# the redis-server options that make it listen for TLS on $port
sub redis_args {
    my ($self, $port, %o) = @_;
    my $dir = $self->{dir};
    return ('--tls-port', $port,
        '--tls-cert-file', "$dir/server.crt",
        '--tls-key-file', "$dir/server.key",
        '--tls-ca-cert-file', "$dir/ca.crt",
        '--tls-auth-clients', $o{mtls} ? 'yes' : 'no');
}

# a redis-server with a TLS port beside its plain one
sub redis {
    my ($self, %o) = @_;
    my $tls = free_port();
    my $r = ApiKey::Test::Redis->start(
        args => [$self->redis_args($tls, %o), @{ $o{args} // [] }]);
    $r->{tls_port} = $tls;
    return $r;
}

sub openssl {
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT);
        exec('openssl', @_) or POSIX::_exit(127);
    }
    my $out = join '', <$fh>;
    close $fh;
    die "openssl @_: $out" if $?;
}

1;
