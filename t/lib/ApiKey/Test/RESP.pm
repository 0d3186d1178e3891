package ApiKey::Test::RESP;

# RESP2 encoding and decoding, shared by the Redis client used for seeding
# and by the fake Redis server.

use strict;
use warnings;

use Exporter 'import';

our @EXPORT_OK = qw(resp_command resp_status resp_error resp_int resp_bulk
    resp_nil resp_array resp_nil_array resp_parse resp_error_obj
    is_resp_error);
our %EXPORT_TAGS = (all => \@EXPORT_OK);


# A command as Redis clients send it: an array of bulk strings.
sub resp_command {
    return resp_array(map { resp_bulk($_) } @_);
}

sub resp_status { return "+$_[0]\r\n" }
sub resp_error  { return "-$_[0]\r\n" }
sub resp_int    { return ":$_[0]\r\n" }
sub resp_nil    { return "\$-1\r\n" }
sub resp_nil_array { return "*-1\r\n" }

sub resp_bulk {
    my ($s) = @_;
    return resp_nil() unless defined $s;
    return '$' . length($s) . "\r\n$s\r\n";
}

# resp_array(@encoded_elements): the elements are already encoded replies.
sub resp_array {
    return '*' . scalar(@_) . "\r\n" . join('', @_);
}


# An error reply, decoded: a blessed object that stringifies to its text.
package ApiKey::Test::RESP::Error {
    use overload '""' => sub { $_[0]->{message} }, fallback => 1;
    sub new { my ($class, $m) = @_; return bless { message => $m }, $class }
    sub message { $_[0]->{message} }
}

sub resp_error_obj { return ApiKey::Test::RESP::Error->new($_[0]) }

sub is_resp_error {
    return ref $_[0] && ref $_[0] eq 'ApiKey::Test::RESP::Error';
}


# resp_parse(\$buffer): decodes one value from the start of the buffer and
# removes it.  Returns (1, $value) when a whole value was there, () when more
# bytes are needed.  Status replies decode to strings, errors to
# ApiKey::Test::RESP::Error, nil to undef, arrays to array references.
# Dies on a protocol error.
sub resp_parse {
    my ($bufref) = @_;
    my $pos = 0;
    my @r = _parse($bufref, \$pos);
    return () unless @r;
    substr($$bufref, 0, $pos, '');
    return (1, $r[0]);
}

sub _line {
    my ($bufref, $posref) = @_;
    my $end = index($$bufref, "\r\n", $$posref);
    return undef if $end < 0;
    my $line = substr($$bufref, $$posref, $end - $$posref);
    $$posref = $end + 2;
    return $line;
}

sub _parse {
    my ($bufref, $posref) = @_;
    return () if length($$bufref) <= $$posref;
    my $start = $$posref;
    my $type = substr($$bufref, $$posref, 1);
    $$posref++;
    my $line = _line($bufref, $posref);
    if (!defined $line) {
        $$posref = $start;
        return ();
    }
    if ($type eq '+') {
        return ($line);
    }
    if ($type eq '-') {
        return (resp_error_obj($line));
    }
    if ($type eq ':') {
        die "RESP: bad integer '$line'\n" unless $line =~ /^-?\d+$/;
        return ($line + 0);
    }
    if ($type eq '$') {
        die "RESP: bad bulk length '$line'\n" unless $line =~ /^-?\d+$/;
        return (undef) if $line < 0;
        if (length($$bufref) < $$posref + $line + 2) {
            $$posref = $start;
            return ();
        }
        my $s = substr($$bufref, $$posref, $line);
        die "RESP: bulk not terminated by CRLF\n"
            unless substr($$bufref, $$posref + $line, 2) eq "\r\n";
        $$posref += $line + 2;
        return ($s);
    }
    if ($type eq '*') {
        die "RESP: bad array length '$line'\n" unless $line =~ /^-?\d+$/;
        return (undef) if $line < 0;
        my @a;
        for (1 .. $line) {
            my @e = _parse($bufref, $posref);
            if (!@e) {
                $$posref = $start;
                return ();
            }
            push @a, $e[0];
        }
        return (\@a);
    }
    die sprintf("RESP: unexpected type byte 0x%02x\n", ord $type);
}


1;
