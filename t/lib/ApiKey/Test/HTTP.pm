package ApiKey::Test::HTTP;

# A raw HTTP/1.1 client: sends bytes exactly as given and parses what comes
# back, with a timeout.  Nothing is normalised on the way out, so tests can
# send hostile requests.
#
#   my $res = http_raw($port, "GET / HTTP/1.0\r\n\r\n");
#   my $res = http_get($port, '/api/', Authorization => 'Bearer x');
#   my $c = ApiKey::Test::HTTP->new(port => $port);   # keep-alive
#   $c->get('/a', %headers); $c->get('/b');
#
#   $res->status, $res->header('www-authenticate'), $res->headers('x'),
#   $res->body, $res->raw, $res->elapsed, $res->error ('timeout', ...),
#   $res->upstream (what the echo upstream got), $res->verdict ('200 k_1')

use strict;
use warnings;

use Exporter 'import';
use Carp qw(croak);
use IO::Socket::INET;
use IO::Select;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);

use ApiKey::Test::Proc qw(slack);

our @EXPORT_OK = qw(http_raw http_get http_request build_request);

# a client's wait for an answer, scaled on slow runs as slack() is
our $TIMEOUT = slack(5);


# build_request($method, $path, @header_pairs): the header pairs keep their
# order and may repeat; Host and Connection are added unless given.
sub build_request {
    my ($method, $path, @h) = @_;
    my %seen;
    for (my $i = 0; $i < @h; $i += 2) {
        $seen{ lc $h[$i] } = 1;
    }
    my $req = "$method $path HTTP/1.1\r\n";
    $req .= "Host: localhost\r\n" unless $seen{host};
    $req .= "Connection: close\r\n" unless $seen{connection};
    for (my $i = 0; $i < @h; $i += 2) {
        $req .= "$h[$i]: $h[$i + 1]\r\n";
    }
    $req .= "\r\n";
    return $req;
}

sub http_raw {
    my ($port, $bytes, %o) = @_;
    my $c = __PACKAGE__->new(port => $port, %o);
    my $res = $c->request_raw($bytes);
    $c->close;
    return $res;
}

# http_request($port, $method, $path, @header_pairs [, body => ...]) is
# not offered: bodies go through http_raw.  GET helpers:
sub http_request {
    my ($port, $method, $path, @h) = @_;
    return http_raw($port, build_request($method, $path, @h),
        head => $method eq 'HEAD');
}

sub http_get {
    my ($port, $path, @h) = @_;
    return http_request($port, 'GET', $path, @h);
}


sub new {
    my ($class, %o) = @_;
    my $self = bless { port => $o{port}, timeout => $o{timeout} // $TIMEOUT,
        head => $o{head}, buf => '' }, $class;
    return $self;
}

sub _connect {
    my ($self) = @_;
    return $self->{sock} if $self->{sock};
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $self->{port}, Proto => 'tcp',
        Timeout => $self->{timeout})
        or croak "connect 127.0.0.1:$self->{port}: $!";
    binmode $sock;
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    $self->{buf} = '';
    $self->{connections}++;
    return $self->{sock} = $sock;
}

sub close {
    my ($self) = @_;
    CORE::close($self->{sock}) if $self->{sock};
    delete $self->{sock};
}

# How many TCP connections this client has opened so far.
sub connections { $_[0]->{connections} // 0 }

sub get {
    my ($self, $path, @h) = @_;
    return $self->request('GET', $path, @h);
}

# Keep-alive request on this client's connection (reopened if the server
# closed it).
sub request {
    my ($self, $method, $path, @h) = @_;
    my %seen;
    for (my $i = 0; $i < @h; $i += 2) {
        $seen{ lc $h[$i] } = 1;
    }
    push @h, Connection => 'keep-alive' unless $seen{connection};
    return $self->request_raw(build_request($method, $path, @h),
        head => $method eq 'HEAD');
}

sub request_raw {
    my ($self, $bytes, %o) = @_;
    $self->send_raw($bytes, %o);
    return $self->read_response;
}

# send_raw() then, later, read_response(): a request left in flight while
# the test does something else.
sub send_raw {
    my ($self, $bytes, %o) = @_;
    $self->{start} = time;
    $self->{head_only} = $o{head} // $self->{head};
    my $sock = $self->_connect;
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($sock, $bytes, length($bytes) - $off, $off);
        # the server may answer and close before reading everything
        last unless defined $n;
        $off += $n;
    }
    return $self;
}

sub read_response {
    my ($self) = @_;
    my $res = ApiKey::Test::HTTP::Response->new;
    $self->_read_response($res, $self->{head_only},
        $self->{start} + $self->{timeout});
    $res->{elapsed} = time - $self->{start};
    $self->close if $res->{error} || !$res->keepalive;
    return $res;
}

sub _fill {
    my ($self, $deadline) = @_;
    my $left = $deadline - time;
    return 'timeout' if $left <= 0;
    my $sel = IO::Select->new($self->{sock});
    return 'timeout' unless $sel->can_read($left);
    my $n = sysread($self->{sock}, $self->{buf}, 65536, length $self->{buf});
    return "read: $!" unless defined $n;
    return 'closed' if $n == 0;
    return undef;
}

sub _read_response {
    my ($self, $res, $head, $deadline) = @_;
    my $buf = \$self->{buf};
    my $end;
    until (($end = index($$buf, "\r\n\r\n")) >= 0) {
        my $err = $self->_fill($deadline);
        if ($err) {
            $res->{error} = $err;
            $res->{raw} = $$buf;
            return;
        }
    }
    my $raw_head = substr($$buf, 0, $end + 4, '');
    $res->{raw_head} = $raw_head;
    my @lines = split /\r\n/, $raw_head;
    my $status_line = shift @lines;
    if ($status_line !~ m{^HTTP/(\d\.\d) (\d{3})(?: (.*))?$}) {
        $res->{error} = "bad status line";
        $res->{raw} = $raw_head . $$buf;
        return;
    }
    @$res{qw(version status reason)} = ($1, $2 + 0, $3 // '');
    for my $l (@lines) {
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        push @{ $res->{header_list} }, [$k, $v];
        push @{ $res->{headers}{ lc $k } }, $v;
    }

    my $body = '';
    my $te = lc($res->header('transfer-encoding') // '');
    my $cl = $res->header('content-length');
    if ($head || $res->{status} == 204 || $res->{status} == 304
        || $res->{status} < 200)
    {
        # no body
    } elsif ($te =~ /chunked/) {
        for (;;) {
            my $i;
            until (($i = index($$buf, "\r\n")) >= 0) {
                my $err = $self->_fill($deadline);
                return $self->_fail($res, $raw_head, $body, $err) if $err;
            }
            my $size = hex substr($$buf, 0, $i);
            my $need = $i + 2 + $size + 2;
            while (length $$buf < $need) {
                my $err = $self->_fill($deadline);
                return $self->_fail($res, $raw_head, $body, $err) if $err;
            }
            $body .= substr($$buf, $i + 2, $size);
            substr($$buf, 0, $need, '');
            last if $size == 0;
        }
    } elsif (defined $cl) {
        while (length $$buf < $cl) {
            my $err = $self->_fill($deadline);
            return $self->_fail($res, $raw_head, $$buf, $err) if $err;
        }
        $body = substr($$buf, 0, $cl, '');
    } else {
        for (;;) {
            my $err = $self->_fill($deadline);
            last if $err && $err eq 'closed';
            return $self->_fail($res, $raw_head, $$buf, $err) if $err;
        }
        $body = $$buf;
        $$buf = '';
        $res->{closed} = 1;
    }
    $res->{body} = $body;
    $res->{raw} = $raw_head . $body;
}

sub _fail {
    my ($self, $res, $raw_head, $body, $err) = @_;
    $res->{error} = $err;
    $res->{body} = $body;
    $res->{raw} = $raw_head . $body;
    return;
}


package ApiKey::Test::HTTP::Response;

sub new { return bless { headers => {}, header_list => [] }, $_[0] }

sub status  { $_[0]->{status} }
sub body    { $_[0]->{body} }
sub raw     { $_[0]->{raw} }
sub error   { $_[0]->{error} }
sub elapsed { $_[0]->{elapsed} }

# First value of a header (case-insensitive name), or undef.
sub header {
    my ($self, $name) = @_;
    my $v = $self->{headers}{ lc $name };
    return $v ? $v->[0] : undef;
}

# Every value of a header, in order.
sub headers {
    my ($self, $name) = @_;
    return @{ $self->{headers}{ lc $name } // [] };
}

# The whole response with the Date header removed, to compare answers.
sub raw_without_date {
    my ($self) = @_;
    my $raw = $self->{raw} // '';
    $raw =~ s/^Date: [^\r\n]*\r\n//mi;
    return $raw;
}

sub keepalive {
    my ($self) = @_;
    return 0 if $self->{closed};
    my $conn = lc($self->header('connection') // '');
    return 0 if $conn eq 'close';
    return 1 if ($self->{version} // '') eq '1.1';
    return $conn eq 'keep-alive';
}

# The request the echo upstream received, parsed from the body: returns
# an ApiKey::Test::Echo::Request (see ApiKey::Test::Echo), or undef when
# the answer did not come from the echo upstream.
sub upstream {
    my ($self) = @_;
    return undef unless ($self->header('x-echo') // '') eq '1';
    require ApiKey::Test::Echo;
    return ApiKey::Test::Echo::Request->parse($self->{body});
}

# "200 k_id" when the echo upstream answered (the X-ApiKey-Id it got),
# otherwise the status and X-Status (a location's add_header
# $apikey_status): "401 invalid".
sub verdict {
    my ($self) = @_;
    return $self->status . ' ' . ($self->upstream
        ? $self->upstream->header('x-apikey-id') // '-'
        : $self->header('x-status') // '(none)');
}


1;
