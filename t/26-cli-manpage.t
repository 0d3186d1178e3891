# The apikey(1) manual page (docs/apikey.1, in the apikey package) is
# written by hand from docs/cli.md: it names every command and option the
# tool and docs/cli.md know, and it is valid roff.

use lib 't/lib';
use ApiKey::Test;


my $root = project_root();

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

my $roff = slurp("$root/docs/apikey.1");
(my $man = $roff) =~ s/\\-/-/g;
my $md = slurp("$root/docs/cli.md");
my $usage = run_cli('--help')->{out};

my %options = map { $_ => 1 } ($md =~ /(--[a-z][a-z-]*)/g),
    ($usage =~ /(--[a-z][a-z-]*)/g);
for my $opt (sort keys %options) {
    like($man, qr/(?<![\w-])\Q$opt\E(?![\w-])/, "the man page has $opt");
}

my %commands = map { $_ => 1 } $md =~ /^## (\w+)$/mg,
    $usage =~ /^  (\w+) /mg;
delete @commands{qw(Global Output Exit)};
ok(keys %commands >= 7, 'docs/cli.md and --help name the commands');
for my $cmd (sort keys %commands) {
    like($man, qr/^\.SS \Q$cmd\E$/m, "the man page has a section on $cmd");
}

SKIP: {
    skip 'groff is not installed', 1 unless -x '/usr/bin/groff';
    my $warnings = `groff -man -Tutf8 -ww -z '$root/docs/apikey.1' 2>&1`;
    is($warnings, '', 'groff renders it without a warning');
}

done_testing();
