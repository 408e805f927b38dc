package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/importer"
)

// generatedName is how messages about the generated file name it.
const generatedName = "<vipd import output>"

// nodeFiles collects --keepalived NAME=FILE in order.
type nodeFiles []importer.NodeFile

func (n *nodeFiles) String() string { return "" }

func (n *nodeFiles) Set(s string) error {
	name, path, ok := strings.Cut(s, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=FILE (NAME becomes the [[node]] name), got %q", s)
	}
	*n = append(*n, importer.NodeFile{Name: name, Path: path})
	return nil
}

// addresses collects --address NAME=IP.
type addresses map[string]netip.Addr

func (a addresses) String() string { return "" }

func (a addresses) Set(s string) error {
	name, ip, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=IP, got %q", s)
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Zone() != "" {
		return fmt.Errorf("%s: %q is not an IP address", name, ip)
	}
	if _, dup := a[name]; dup {
		return fmt.Errorf("%s is given twice", name)
	}
	a[name] = addr.Unmap()
	return nil
}

// cmdImport translates keepalived.conf and haproxy.cfg into a vipd TOML on
// stdout. Everything not carried over, and every choice made, goes to
// stderr (and into the TOML as comments). The exit code is 0 only when the
// output passes the validation of vipd check; 1 with file:line errors when
// something cannot be translated or the output does not validate; 2 for
// bad flags.
func cmdImport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		kas   nodeFiles
		addrs = addresses{}
	)
	fs.Var(&kas, "keepalived", "NAME=FILE: node NAME's keepalived.conf (repeat for every node)")
	haproxy := fs.String("haproxy", "", "the nodes' haproxy.cfg")
	fs.Var(addrs, "address", "NAME=IP: node NAME's address when its keepalived.conf has no unicast_src_ip (repeat)")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "vipd import: unexpected argument %q\n", pos[0])
		return 2
	}
	res, err := importer.Import(importer.Options{Keepalived: kas, HAProxy: *haproxy, Addresses: addrs})
	if res == nil {
		fmt.Fprintf(stderr, "vipd import: %v\n", err)
		return 2
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stderr, n)
	}
	if err != nil {
		printErrors(stderr, err)
		fmt.Fprintln(stderr, "vipd import: nothing written: fix the errors above")
		return 1
	}
	stdout.Write(res.TOML)
	cfg, err := config.Parse(generatedName, res.TOML)
	if err != nil {
		printErrors(stderr, err)
		fmt.Fprintln(stderr, "vipd import: the output above does not pass vipd check; fix the errors (lines of the output) by hand")
		return 1
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stderr, "vipd import: %d nodes, %d frontends, %d backends, %d trackers; %d notes; the output passes vipd check\n",
		len(cfg.Nodes), len(cfg.Frontends), len(cfg.Backends), len(cfg.Tracks), len(res.Notes))
	return 0
}

// printErrors prints each error of a join on its own "error: " line.
func printErrors(w io.Writer, err error) {
	errs := []error{err}
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		for _, line := range strings.Split(e.Error(), "\n") {
			fmt.Fprintf(w, "error: %s\n", line)
		}
	}
}
