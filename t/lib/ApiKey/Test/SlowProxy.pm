package ApiKey::Test::SlowProxy;

# A TCP proxy in front of a real Redis that holds back the replies of the
# connections that asked for a key record (sent HMGET), and only those:
# a lookup is answered late, with the record as it was when Redis read it,
# while the invalidation subscription (which never sends HMGET) flows.
#
#   my $slow = ApiKey::Test::SlowProxy->start(redis => $redis, delay => 0.5);
#   ... apikey_redis %%SLOW%%; ...   # vars => { SLOW => $slow->addr }

use strict;
use warnings;

use Carp qw(croak);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

use parent 'ApiKey::Test::Server';

sub start {
    my ($class, %o) = @_;
    my $self = bless { delay => $o{delay} // 0.5,
        target => $o{redis}->port }, $class;
    my $listen = $self->listen_socket;
    return $self->fork_serving('slow-proxy', $listen,
        sub { $self->_serve($listen) });
}

sub _serve {
    my ($self, $listen) = @_;
    $SIG{PIPE} = 'IGNORE';
    my $sel = IO::Select->new($listen);
    my %peer;      # fileno => { sock, other, to_client, slow, queue }
    my $drop = sub {
        my ($p) = @_;
        for my $s ($p->{sock}, $p->{other}) {
            next unless $peer{ fileno $s // -1 };
            delete $peer{ fileno $s };
            $sel->remove($s);
            close $s;
        }
    };
    for (;;) {
        my $now = time;
        # replies whose time has come
        for my $p (values %peer) {
            next unless $p->{to_client};
            while (@{ $p->{queue} } && $p->{queue}[0][0] <= $now) {
                my $chunk = shift @{ $p->{queue} };
                syswrite($p->{other}, $chunk->[1]);
            }
        }
        for my $s ($sel->can_read(0.005)) {
            if ($s == $listen) {
                my $c = $listen->accept or next;
                my $r = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                    PeerPort => $self->{target}, Proto => 'tcp')
                    or do { close $c; next };
                binmode $_ for $c, $r;
                my $state = { slow => 0 };
                $peer{ fileno $c } = { sock => $c, other => $r,
                    state => $state };
                $peer{ fileno $r } = { sock => $r, other => $c,
                    to_client => 1, state => $state, queue => [] };
                $sel->add($c, $r);
                next;
            }
            my $p = $peer{ fileno $s } or next;
            my $n = sysread($s, my $buf, 65536);
            if (!$n) {
                $drop->($p);
                next;
            }
            if ($p->{to_client}) {
                push @{ $p->{queue} }, [time
                    + ($p->{state}{slow} ? $self->{delay} : 0), $buf];
            } else {
                $p->{state}{slow} = 1 if $buf =~ /HMGET/i;
                syswrite($p->{other}, $buf);
            }
        }
    }
}


1;
