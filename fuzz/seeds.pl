#!/usr/bin/perl
# Writes the seed corpora in fuzz/corpus/<target>/, one file per seed named
# by what it holds.  The corpora are kept in git; run this again (from the
# top directory) only to change them.

use strict;
use warnings;

use lib 't/lib';
use ApiKey::Test::RESP qw(:all);
use Compress::Zlib ();

my @B62 = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');

# a key of the product's format, made from a fixed body: seeds are stable
sub key {
    my ($prefix, $body) = @_;
    my $crc = Compress::Zlib::crc32($prefix . $body);
    my $sum = '';
    for (1 .. 6) {
        $sum = $B62[$crc % 62] . $sum;
        $crc = int($crc / 62);
    }
    return $prefix . $body . $sum;
}

my $body = 'Zx8fQ2LmN0pR4sT6uV8wY1aB3cD5eF';
my $k = key('ak_', $body);

sub write_seeds {
    my ($target, %seeds) = @_;
    my $dir = "fuzz/corpus/$target";
    mkdir 'fuzz/corpus';
    mkdir $dir;
    unlink glob "$dir/*";
    for my $name (sort keys %seeds) {
        open(my $fh, '>', "$dir/$name") or die "$dir/$name: $!";
        binmode $fh;
        print {$fh} $seeds{$name};
        close $fh;
    }
}

write_seeds('token',
    'bearer-key'          => "Bearer $k",
    'bearer-lowercase'    => "bearer $k",
    'bearer-spaces'       => "Bearer   $k",
    'bearer-padding'      => "Bearer abc+/def==",
    'bearer-alone'        => 'Bearer',
    'bearer-space'        => 'Bearer ',
    'bearer-tab'          => "Bearer\t$k",
    'bearer-comma'        => "Bearer $k,Bearer $k",
    'bearer-two'          => "Bearer $k x",
    'bearer-quoted'       => qq{Bearer "$k"},
    'bearer-equals-first' => 'Bearer =abc',
    'bearer-ctl'          => "Bearer $k\x01",
    'bearer-high'         => "Bearer $k\xc3\xa9",
    'bearerxyz'           => 'Bearerxyz',
    'basic'               => 'Basic dXNlcjpwYXNz',
    'token-scheme'        => "Token $k",
    'empty'               => '',
    'long'                => 'Bearer ' . ('A' x 600),
);

write_seeds('key',
    'valid'               => "\x00$k",
    'valid-hmac'          => "\x11s3cret-value$k",
    'valid-long-prefix'   => "\x00" . key('abcdefghijklmno_', $body),
    'prefix-only'         => "\x00ak_",
    'prefix-org'          => "\x00acme_live_",
    'bad-checksum'        => "\x00" . substr($k, 0, -1) . 'x',
    'no-underscore'       => "\x00ak" . substr($k, 3),
    'short'               => "\x00ak_abc",
    'empty'               => "\x00",
    'hmac-empty'          => "\x01",
);

# a reply to the lookup's HMGET: id name org scopes expires_at revoked
# cidrs rate burst, and the one apikey_record_fields name fuzz_record.c
# asks for; fields not given are nil
my $NF = 10;

sub rec {
    my (@v) = @_;
    push @v, undef while @v < $NF;
    return resp_array(map { resp_bulk($_) } @v);
}

my $nils = join '', (resp_nil()) x ($NF - 1);

write_seeds('record',
    'record'              => "\xff" . rec('k_1', 'CI export', 'acme',
        'read:people write:people', '0', undef),
    'record-expires'      => "\xff" . rec('k_1', undef, undef, '*',
        '1893456000', '0'),
    'record-revoked'      => "\xff" . rec('k_1', 'n', 'o', 's', undef, '1'),
    'record-pieces'       => "\x02" . rec('k_2', 'x', undef, 'read:*',
        undef, undef),
    'record-bytewise'     => "\x00" . rec('k_3', undef, undef, undef,
        undef, undef),
    'record-none'         => "\xff" . resp_array((resp_nil()) x $NF),
    'record-rate'         => "\xff" . rec('k_1', (undef) x 6, '100r/s',
        '20'),
    'record-rate-minute'  => "\xff" . rec('k_1', (undef) x 6, '6000r/m'),
    'record-bad-rate'     => "\xff" . rec('k_1', (undef) x 6, '1r/h', '-1'),
    'record-cidrs'        => "\xff" . rec('k_1', 'n', 'o', 's', '0', '0',
        '203.0.113.0/24 2001:db8::/32', undef, undef, 'gold'),
    'record-bad-cidrs'    => "\xff" . rec('k_1', undef, undef, undef, undef,
        undef, "10.0.0.0/8\r\nX: 1", undef, undef, "a\nb"),
    'record-empty-id'     => "\xff" . rec('', 'x', 'y', 'z', '0', '0'),
    'record-ctl'          => "\xff" . rec("k\r\nX: 1", "a\0b", "\x7f",
        "\e[31m", undef, undef),
    'record-bad-expiry'   => "\xff" . rec('k_1', undef, undef, undef,
        '99999999999999999999', undef),
    'record-neg-expiry'   => "\xff" . rec('k_1', undef, undef, undef, '-1',
        undef),
    'two-records'         => "\xff" . rec('k_1', (undef) x 5)
        . rec('k_2', (undef) x 5),
    'error'               => "\xff" . resp_error('ERR boom'),
    'wrongtype'           => "\xff" . resp_error('WRONGTYPE Operation '
        . 'against a key holding the wrong kind of value'),
    'noauth'              => "\xff" . resp_error('NOAUTH Authentication '
        . 'required.'),
    'status'              => "\xff" . resp_status('OK'),
    'integer'             => "\xff" . resp_int(42),
    'nil'                 => "\xff" . resp_nil(),
    'nil-array'           => "\xff" . resp_nil_array(),
    'empty-array'         => "\xff" . resp_array(),
    'one-field-short'     => "\xff" . resp_array(map { resp_bulk('k') }
        1 .. $NF - 1),
    'integer-field'       => "\xff" . resp_array(resp_int(1), $nils),
    'nested'              => "\xff" . resp_array(rec('k_1'), $nils),
    'deep'                => "\xff" . ("*1\r\n" x 9) . resp_bulk('k'),
    'big-bulk'            => "\xff" . resp_array(resp_bulk('x' x 5000),
        $nils),
    'cut'                 => "\xff" . substr(rec('k_1', 'n', (undef) x 4),
        0, 17),
    'garbage'             => "\xff" . "HTTP/1.1 200 OK\r\n\r\n",
    'resp3-map'           => "\xff" . "%1\r\n+id\r\n+k_1\r\n",
    'auth-ok-then-record' => "\xff" . resp_status('OK')
        . rec('k_1', (undef) x 5),
);

# the admin API's bodies: the first byte is the kind (0 create, 1 update,
# 2 rotate)
write_seeds('admin',
    'create'    => "\x00" . '{"name":"Nightly Score Export","scopes":'
        . '["read:people","write:*"],"org":"acme","expires_in_days":30}',
    'create-at' => "\x00" . '{"name":"x","expires_at":'
        . '"2030-01-01T00:00:00Z"}',
    'update'    => "\x01" . '{"name":"y","scopes":[],"expires_at":null}',
    'rotate'    => "\x02" . '{"grace_seconds":3600}',
    'control'   => "\x00" . '{"name":"a\u0007b"}',
    'org-patch' => "\x01" . '{"org":"x"}',
    'utf8'      => "\x00" . qq({"name":"\xc3\xa9t\xc3\xa9",)
        . '"expires_in_days":0}',
);

# the rate and burst fields' parser
write_seeds('rate',
    'per-second'          => '100r/s',
    'per-minute'          => '6000r/m',
    'one'                 => '1r/m',
    'max'                 => '1000000r/s',
    'over-max'            => '1000001r/s',
    'zero'                => '0r/s',
    'hour'                => '1r/h',
    'no-unit'             => '10',
    'burst'               => '20',
    'burst-zero'          => '0',
    'negative'            => '-1',
    'space'               => ' 1r/s',
    'long'                => ('9' x 40) . 'r/s',
    'empty'               => '',
);

# the client address first (a family byte, 0 for IPv4, 1 for IPv6, and 16
# address bytes), then the "cidrs" field
my $v4 = "\x00" . pack('C4', 203, 0, 113, 9) . ("\x00" x 12);
my $v6 = "\x01" . pack('H32', '20010db8000000000000000000000005');

write_seeds('cidrs',
    'v4-inside'           => $v4 . '203.0.113.0/24',
    'v4-outside'          => $v4 . '10.0.0.0/8 198.51.100.0/24',
    'v4-bare'             => $v4 . '203.0.113.9',
    'v6-inside'           => $v6 . '2001:db8::/32',
    'v6-bare'             => $v6 . '2001:db8::5 ::1',
    'mixed'               => $v6 . '203.0.113.0/24  2001:db8::/32',
    'mapped-net'          => $v4 . '::ffff:203.0.113.0/120',
    'malformed-word'      => $v4 . '203.0.113.0/24 nonsense',
    'malformed-prefix'    => $v4 . '203.0.113.0/33',
    'long-v6'             => $v6
        . 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128',
    'spaces'              => $v4 . '   ',
);
