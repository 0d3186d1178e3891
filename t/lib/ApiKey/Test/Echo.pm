package ApiKey::Test::Echo;

# The echo upstream: a forked HTTP server on 127.0.0.1 that answers every
# request with 200, the header "X-Echo: 1" and, as the body, the request
# head exactly as it received it.  Tests see what reached the upstream:
#
#   my $echo = ApiKey::Test::Echo->start;
#   ... proxy_pass http://127.0.0.1:<$echo->port>; ...
#   my $up = $res->upstream;          # parsed from the response body
#   $up->header('x-apikey-id'); $up->headers('x-apikey-id'); $up->has('authorization')
#   $echo->hits;                      # requests received so far

use strict;
use warnings;

use Carp qw(croak);
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use Time::HiRes qw(time sleep);

use parent 'ApiKey::Test::Server';
use ApiKey::Test::Proc qw(test_dir wait_until);

sub start {
    my ($class, %o) = @_;
    my $self = bless { dir => $o{dir} // test_dir() }, $class;
    my $listen = $self->listen_socket(port => $o{port}, backlog => 512);
    $self->{log} = "$self->{dir}/echo-$self->{port}.log";
    open(my $fh, '>', $self->{log}) or croak "$self->{log}: $!";
    close $fh;
    return $self->fork_serving('echo', $listen,
        sub { _serve($listen, $self->{log}) });
}

# Requests received so far, as ApiKey::Test::Echo::Request objects.
sub requests {
    my ($self) = @_;
    open(my $fh, '<', $self->{log}) or return ();
    my @r;
    while (my $line = <$fh>) {
        next unless $line =~ /\n\z/;     # a line being written
        push @r, ApiKey::Test::Echo::Request->parse(
            JSON::PP->new->decode($line)->{head});
    }
    return @r;
}

sub hits {
    my ($self) = @_;
    open(my $fh, '<', $self->{log}) or return 0;
    my $n = 0;
    $n++ while <$fh>;
    return $n;
}


sub _serve {
    my ($listen, $logfile) = @_;
    $SIG{PIPE} = 'IGNORE';
    open(my $log, '>>', $logfile) or die "$logfile: $!";
    $log->autoflush(1);
    my $json = JSON::PP->new->canonical;
    my $sel = IO::Select->new($listen);
    my %conn;    # fileno => { sock, buf }
    for (;;) {
        for my $s ($sel->can_read(1)) {
            if ($s == $listen) {
                my $c = $listen->accept or next;
                binmode $c;
                $c->blocking(0);
                $conn{ fileno $c } = { sock => $c, buf => '' };
                $sel->add($c);
                next;
            }
            my $st = $conn{ fileno $s };
            my $n = sysread($s, $st->{buf}, 65536, length $st->{buf});
            if (!$n) {
                next if !defined $n && $!{EAGAIN};
                $sel->remove($s);
                delete $conn{ fileno $s };
                close $s;
                next;
            }
            my $end = index($st->{buf}, "\r\n\r\n");
            next if $end < 0;
            my $head = substr($st->{buf}, 0, $end + 4);
            my ($cl) = $head =~ /^Content-Length:\s*(\d+)/mi;
            next if length($st->{buf}) < $end + 4 + ($cl // 0);

            print {$log} $json->encode({ head => $head }), "\n";
            my $resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                . "X-Echo: 1\r\nContent-Length: " . length($head)
                . "\r\nConnection: close\r\n\r\n" . $head;
            $s->blocking(1);
            syswrite($s, $resp);
            $sel->remove($s);
            delete $conn{ fileno $s };
            close $s;
        }
    }
}


package ApiKey::Test::Echo::Request;

# A request head as the upstream received it.

sub parse {
    my ($class, $head) = @_;
    my $self = bless { raw => $head // '', headers => {}, list => [] },
        $class;
    my @lines = split /\r\n/, $self->{raw};
    $self->{request_line} = shift(@lines) // '';
    for my $l (@lines) {
        my ($k, $v) = $l =~ /^([^:]+):[ \t]*(.*?)[ \t]*$/ or next;
        push @{ $self->{list} }, [$k, $v];
        push @{ $self->{headers}{ lc $k } }, $v;
    }
    return $self;
}

sub raw          { $_[0]->{raw} }
sub request_line { $_[0]->{request_line} }

sub header {
    my ($self, $name) = @_;
    my $v = $self->{headers}{ lc $name };
    return $v ? $v->[0] : undef;
}

sub headers {
    my ($self, $name) = @_;
    return @{ $self->{headers}{ lc $name } // [] };
}

sub has {
    my ($self, $name) = @_;
    return exists $self->{headers}{ lc $name };
}

# Every header whose name starts with a prefix (case-insensitive), as
# [name, value] pairs in order.
sub with_prefix {
    my ($self, $prefix) = @_;
    return grep { lc(substr($_->[0], 0, length $prefix)) eq lc $prefix }
        @{ $self->{list} };
}


1;
