package importer

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// NodeFile is one node's keepalived.conf: Name becomes its [[node]] name.
type NodeFile struct {
	Name string
	Path string
}

// Options says what to import.
type Options struct {
	// Keepalived holds one file per node, in the order the nodes are
	// written.
	Keepalived []NodeFile
	// HAProxy is the haproxy.cfg the nodes share; "" for none.
	HAProxy string
	// Addresses gives nodes whose keepalived.conf has no unicast_src_ip
	// their address (--address NAME=IP).
	Addresses map[string]netip.Addr
	// BcryptCost hashes stats auth passwords; 0 means bcrypt.DefaultCost.
	BcryptCost int

	fs fileSystem // nil: the host's files
}

// Result is a translation.
type Result struct {
	// TOML is the vipd configuration, notes included as comments.
	TOML []byte
	// Notes are the directives not carried over and the choices made, in
	// file and line order.
	Notes []Note
}

// Import translates the keepalived and HAProxy configurations into one vipd
// configuration that serves every node. It fails with an errors.Join of
// *Error values (file:line and the fix) when something essential cannot be
// translated; it does not validate the result (config.Parse does).
func Import(o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	fs := o.fs
	if fs == nil {
		fs = osFS{}
	}
	cost := o.BcryptCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	r := &report{}
	b := &budget{}

	var files []*kaFile
	var readOK []bool
	for _, nf := range o.Keepalived {
		before := len(r.errs)
		stmts := parseKeepalived(fs, r, b, nf.Name, nf.Path)
		readOK = append(readOK, len(r.errs) == before)
		files = append(files, readKeepalived(r, nf.Name, nf.Path, stmts))
	}
	out := &outConfig{}
	m := &merger{r: r, files: files, addrs: o.Addresses, out: out}
	var groups []*instGroup
	if len(files) > 0 {
		m.alias = map[string]string{}
		groups = m.group()
		for i, f := range files {
			if len(f.instances) == 0 && readOK[i] {
				r.errorf(Pos{File: f.path}, "no vrrp_instance in %s (node %s); there is nothing to elect", f.path, f.node)
			}
		}
		if len(groups) > 0 {
			m.nodes(groups)
		}
	}
	nodeAddrs := map[netip.Addr]string{}
	for _, n := range out.Nodes {
		if n.Address.IsValid() {
			nodeAddrs[n.Address] = n.Name
		}
	}
	if o.HAProxy != "" {
		secs := parseHAProxy(fs, r, b, o.HAProxy)
		ha := translateHAProxy(r, secs, nodeAddrs, cost)
		out.Frontends, out.Backends, out.HTTP, out.MaxConn = ha.frontends, ha.backends, ha.http, ha.maxconn
	}
	if len(groups) > 0 {
		for _, f := range files {
			for _, g := range f.groups {
				r.notCarried(g.Pos, "", "vrrp_sync_group %s (%s): vipd has no sync groups yet, so these instances fail over independently; give them the same priorities and trackers so that they move together", g.Name, strings.Join(g.Instances, ", "))
			}
		}
		for _, g := range groups {
			m.instance(g)
		}
		m.shared()
		m.trackers(groups, out.Frontends)
		m.notify(groups)
	}
	bindFrontends(r, out, nodeAddrs)
	if err := r.err(); err != nil {
		return &Result{Notes: r.sortedNotes()}, err
	}
	var sources []string
	for _, nf := range o.Keepalived {
		sources = append(sources, fmt.Sprintf("%s: %s", nf.Name, nf.Path))
	}
	if o.HAProxy != "" {
		sources = append(sources, "haproxy.cfg: "+o.HAProxy)
	}
	notes := r.sortedNotes()
	return &Result{TOML: emit(out, notes, sources, m.alias), Notes: notes}, nil
}

// check validates the options themselves (the CLI's flags).
func (o Options) check() error {
	if len(o.Keepalived) == 0 && o.HAProxy == "" {
		return errors.New("nothing to import: give --keepalived NAME=FILE (one per node) and/or --haproxy FILE")
	}
	names := map[string]bool{}
	for _, nf := range o.Keepalived {
		switch {
		case nf.Name == "":
			return fmt.Errorf("--keepalived %s: give the node's name: --keepalived NAME=FILE", nf.Path)
		case nf.Path == "":
			return fmt.Errorf("--keepalived %s=: give the node's keepalived.conf", nf.Name)
		case names[nf.Name]:
			return fmt.Errorf("--keepalived %s: node %s is given twice", nf.Name, nf.Name)
		}
		names[nf.Name] = true
	}
	for n := range o.Addresses {
		if !names[n] {
			return fmt.Errorf("--address %s=...: no --keepalived %s=FILE names this node", n, n)
		}
	}
	return nil
}
