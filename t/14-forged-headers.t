# X-ApiKey-* headers forged by a client never reach the upstream, even
# spelt with underscores where nginx keeps such names
# (underscores_in_headers on, ignore_invalid_headers off): FastCGI, uwsgi,
# SCGI and most WSGI and Rack servers read X_ApiKey_Org as X-ApiKey-Org.

use lib 't/lib';
use ApiKey::Test;
use ApiKey::Test::FastCGI;

my $redis = start_redis();
my $fcgi = ApiKey::Test::FastCGI->start;

# a server for each setting under which nginx keeps X_ApiKey_Org
my $http = '';
for my $s (['PORT', 'underscores_in_headers on'],
    ['PORT2', 'ignore_invalid_headers off'])
{
    $http .= <<"EOF";
    server {
        listen 127.0.0.1:%%$s->[0]%%;
        $s->[1];
        apikey on;
        apikey_redis %%REDIS%%;

        location /proxy/ {
            proxy_pass http://%%ECHO%%;
        }

        location /fastcgi/ {
            fastcgi_pass %%FCGI%%;
        }
    }
EOF
}

my $nginx = start_nginx(redis => $redis, vars => { FCGI => $fcgi->addr },
    http => $http);

# a key without an organisation: nothing of ours replaces X-ApiKey-Org
my $token = new_token();
seed_key($redis, $token, id => 'k_no_org', scopes => 'read');

my @forged = ('X_ApiKey_Org' => 'acme', 'x_apikey_id' => 'evil',
    'X-APIKEY_Name' => 'evil', 'X_ApiKey-Scopes' => 'admin');

sub get {
    my ($port, $path) = @_;
    return http_request($port, 'GET', $path, @forged,
        Authorization => "Bearer $token");
}

for my $c (['underscores_in_headers on', $nginx->port],
    ['ignore_invalid_headers off', $nginx->port2])
{
    my ($what, $port) = @$c;

    subtest "$what, proxy_pass: no forged header reaches the upstream" => sub {
        my $res = get($port, '/proxy/x');
        is($res->status, 200, 'let through');
        my $up = $res->upstream or return fail('no upstream answer');
        my @ours = map { lc($_->[0]) . ": $_->[1]" } grep {
            (my $n = lc $_->[0]) =~ tr/_/-/;
            $n =~ /^x-apikey-/;
        } @{ $up->{list} };
        is_deeply(\@ours, ['x-apikey-id: k_no_org',
            'x-apikey-scopes: read'], 'only the key\'s own headers');
    };

    subtest "$what, fastcgi_pass: no forged param reaches the backend" => sub {
        my $res = get($port, '/fastcgi/x');
        is($res->status, 200, 'let through');
        is($res->header('x-fastcgi'), '1', 'the FastCGI responder answered');
        my @ours = grep { /^HTTP_X_APIKEY_/ } split /\n/, $res->body;
        is_deeply([sort @ours], ['HTTP_X_APIKEY_ID=k_no_org',
            'HTTP_X_APIKEY_SCOPES=read'], 'only the key\'s own params');
    };
}

done_testing;
