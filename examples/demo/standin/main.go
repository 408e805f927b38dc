// Command standin is the demo's stand-in control plane: what vipd sees of
// a kube-apiserver (TLS on 6443 answering /readyz) and of Talos apid (TCP
// on 50000), without a cluster.
//
//	standin pki   -dir DIR IP...          write ca.crt, tls.crt, tls.key (IP SANs)
//	standin serve -name cp1 -dir DIR      serve /readyz and /whoami on :6443, a banner on :50000
//	standin get   -ca FILE URL            print the body of an HTTPS GET (curl -s --cacert)
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: standin pki|serve|get ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "pki":
		err = pki(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
}

// pki writes a CA and one serving certificate valid for every IP given.
func pki(args []string) error {
	fs := flag.NewFlagSet("pki", flag.ExitOnError)
	dir := fs.String("dir", ".", "output directory")
	fs.Parse(args)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vipd-demo-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"kubernetes"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, s := range fs.Args() {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("not an IP: %q", s)
		}
		leaf.IPAddresses = append(leaf.IPAddresses, ip)
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	for name, block := range map[string]*pem.Block{
		"ca.crt":  {Type: "CERTIFICATE", Bytes: caDER},
		"tls.crt": {Type: "CERTIFICATE", Bytes: der},
		"tls.key": {Type: "EC PRIVATE KEY", Bytes: kb},
	} {
		if err := os.WriteFile(filepath.Join(*dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// serve answers like an API server on :6443 and like apid on :50000 until
// SIGTERM or SIGINT.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	name := fs.String("name", "cp", "name /whoami and the banner report")
	dir := fs.String("dir", ".", "directory with tls.crt and tls.key")
	fs.Parse(args)
	cert, err := tls.LoadX509KeyPair(filepath.Join(*dir, "tls.crt"), filepath.Join(*dir, "tls.key"))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (you are %s)\n", *name, r.RemoteAddr)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	ln, err := net.Listen("tcp", ":6443")
	if err != nil {
		return err
	}
	talos, err := net.Listen("tcp", ":50000")
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	go func() {
		for {
			c, err := talos.Accept()
			if err != nil {
				errc <- err
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				fmt.Fprintf(c, "%s apid stand-in\n", *name)
				io.Copy(c, c)
			}()
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case <-ctx.Done():
		talos.Close()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		return err
	}
}

// get is the client for machines without curl.
func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	caFile := fs.String("ca", "", "CA to verify the server against")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: standin get -ca FILE URL")
	}
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(*caFile); err != nil || !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("read CA %q: %v", *caFile, err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(fs.Arg(0))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", fs.Arg(0), resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}
