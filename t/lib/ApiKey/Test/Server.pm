package ApiKey::Test::Server;

# What the fake servers (Echo, FakeRedis, FastCGI, SlowProxy) share: a
# socket listening on 127.0.0.1 at a free port, a forked process serving
# it, and port, addr and stop.
#
#   package ApiKey::Test::Thing;
#   use parent 'ApiKey::Test::Server';
#   my $listen = $self->listen_socket(port => $o{port}, backlog => 512);
#   $self->fork_serving('thing', $listen, sub { _serve($listen) });

use strict;
use warnings;

use ApiKey::Test::Proc qw(listen_free fork_child stop_child);

sub listen_socket {
    my ($self, %o) = @_;
    (my $listen, $self->{port}) = listen_free(%o);
    return $listen;
}

sub fork_serving {
    my ($self, $name, $listen, $code) = @_;
    $self->{child} = fork_child(name => "$name:$self->{port}",
        code => $code);
    close $listen;
    return $self;
}

sub port { $_[0]->{port} }
sub addr { "127.0.0.1:$_[0]->{port}" }

sub stop {
    my ($self) = @_;
    stop_child($self->{child});
}

1;
