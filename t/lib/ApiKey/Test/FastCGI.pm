package ApiKey::Test::FastCGI;

# A FastCGI responder on 127.0.0.1: a forked process that answers every
# request with 200 and, as the body, the params it received, one
# "NAME=VALUE" a line.  Tests see what a FastCGI (or WSGI, Rack) backend
# would read as the request's headers:
#
#   my $fcgi = ApiKey::Test::FastCGI->start;
#   ... fastcgi_pass 127.0.0.1:<$fcgi->port>; ...
#   my %p = ApiKey::Test::FastCGI::params($res->body);
#   $p{HTTP_X_APIKEY_ID};

use strict;
use warnings;

use Carp qw(croak);
use IO::Socket::INET;

use parent 'ApiKey::Test::Server';

use constant {
    FCGI_BEGIN_REQUEST => 1,
    FCGI_END_REQUEST   => 3,
    FCGI_PARAMS        => 4,
    FCGI_STDIN         => 5,
    FCGI_STDOUT        => 6,
};

sub start {
    my ($class) = @_;
    my $self = bless {}, $class;
    my $listen = $self->listen_socket;
    return $self->fork_serving('fastcgi', $listen, sub { _serve($listen) });
}

# The params of a response body, as a hash (the last of a repeated name).
sub params {
    my ($body) = @_;
    return map { /^([^=]*)=(.*)$/ ? ($1, $2) : () } split /\n/, $body // '';
}


sub _read_exactly {
    my ($s, $len) = @_;
    my $buf = '';
    while (length($buf) < $len) {
        my $n = sysread($s, $buf, $len - length($buf), length $buf);
        return undef unless $n;
    }
    return $buf;
}

sub _record {
    my ($type, $id, $content) = @_;
    my $pad = (8 - length($content) % 8) % 8;
    return pack('CCnnCC', 1, $type, $id, length $content, $pad, 0)
        . $content . ("\0" x $pad);
}

sub _decode_params {
    my ($data) = @_;
    my @p;
    my $len = sub {
        my $b = ord substr($data, 0, 1);
        if ($b < 128) {
            substr($data, 0, 1, '');
            return $b;
        }
        my $l = unpack('N', substr($data, 0, 4, '')) & 0x7fffffff;
        return $l;
    };
    while (length $data) {
        my $nl = $len->();
        my $vl = $len->();
        push @p, [substr($data, 0, $nl, ''), substr($data, 0, $vl, '')];
    }
    return @p;
}

sub _serve {
    my ($listen) = @_;
    $SIG{PIPE} = 'IGNORE';
    while (my $c = $listen->accept) {
        binmode $c;
        my ($id, $params) = (1, '');
        for (;;) {
            my $h = _read_exactly($c, 8) // last;
            my (undef, $type, $rid, $clen, $plen) = unpack('CCnnCC', $h);
            my $content = _read_exactly($c, $clen + $plen) // last;
            $content = substr($content, 0, $clen);
            $id = $rid;
            $params .= $content if $type == FCGI_PARAMS;
            next unless $type == FCGI_STDIN && $clen == 0;

            my $body = join '',
                map { "$_->[0]=$_->[1]\n" } _decode_params($params);
            my $out = "Status: 200 OK\r\nContent-Type: text/plain\r\n"
                . "X-FastCGI: 1\r\n\r\n" . $body;
            syswrite($c, _record(FCGI_STDOUT, $id, $out)
                . _record(FCGI_STDOUT, $id, '')
                . _record(FCGI_END_REQUEST, $id, pack('NCx3', 0, 0)));
            last;
        }
        close $c;
    }
}


1;
