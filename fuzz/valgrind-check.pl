#!/usr/bin/perl
# valgrind-check.pl LOG...: reads the memcheck logs of nginx processes
# (one per process, --log-file=...%p) and fails (exit 1) when one holds
#
#   - a memory error (invalid read, write or free, a use of uninitialised
#     memory, a bad syscall argument, a mismatched free, overlapping
#     copies) with a frame of the module in its stack, or an invalid read,
#     write or free anywhere (the module may corrupt what nginx uses later);
#   - a block "definitely lost" that the module allocated.
#
# Other reports (nginx core's own leaks at exit, for instance) are counted
# and summarised, not fatal.  Each fatal record is printed in full.

use strict;
use warnings;

my $MODULE = qr/ngx_http_apikey|apikey_module\.so/;
my $ERROR = qr/^(?:Invalid (?:read|write|free)|Conditional jump or move
    |Use of uninitialised|Syscall param|Mismatched free|Source and
    destination overlap|Argument '\w+' of function \w+ has a fishy)/x;
my $ANYWHERE = qr/^Invalid (?:read|write|free)/;

my ($processes, $incomplete, %fatal, @order, %other) = (0, 0);

for my $file (@ARGV) {
    open(my $fh, '<', $file) or die "$file: $!\n";
    my $text = do { local $/; <$fh> };
    close $fh;
    $processes++;
    $incomplete++ unless $text =~ /ERROR SUMMARY/;
    (my $pid) = $text =~ /^==(\d+)==/m;
    $text =~ s/^==\d+== ?//mg;

    for my $record (split /\n\s*\n/, $text) {
        my ($head) = $record =~ /\A\s*(.*)/;
        next unless defined $head;
        my $leak = $head =~ /definitely lost in loss record/;
        next unless $leak || $head =~ $ERROR;
        my $mine = $record =~ $MODULE;
        if (($leak && $mine) || (!$leak && ($mine || $head =~ $ANYWHERE))) {
            # the same report from many workers is shown once
            (my $key = $record) =~ s/0x[0-9A-Fa-f]+//g;
            $key =~ s/[\d,]+//g;
            push @order, $key unless $fatal{$key};
            $fatal{$key}{record} //= $record;
            push @{ $fatal{$key}{files} }, $file;
        } else {
            (my $kind = $head) =~ s/^[\d,]+ (?:\([^)]*\) )?bytes in [\d,]+ //;
            $kind =~ s/^blocks? are //;
            $kind =~ s/ in loss record.*//;
            $other{$kind}++;
        }
    }
}

print "valgrind: $processes nginx processes checked";
print ", $incomplete without a final summary (killed)" if $incomplete;
print "\n";
for my $kind (sort keys %other) {
    print "  not the module's, not fatal: $other{$kind} x $kind\n";
}

if (@order) {
    print "\nvalgrind: " . scalar(@order) . " report(s) involving the "
        . "module:\n";
    for my $key (@order) {
        my $f = $fatal{$key};
        printf "\n--- in %d process(es), first %s\n%s\n",
            scalar @{ $f->{files} }, $f->{files}[0], $f->{record};
    }
    exit 1;
}

print "valgrind: no memory error and no definitely lost block in the "
    . "module\n";
exit 0;
