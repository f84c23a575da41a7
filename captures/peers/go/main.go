// go-peer: a Go crypto/tls client or server for captures/generate.sh (standard library only).
//
//	go-peer server -listen IP:PORT -tls 1.2|1.3 -cert PEM -key PEM [-ca PEM -client-auth none|request|require]
//	go-peer client -connect IP:PORT -tls 1.2|1.3 -sni NAME -ca PEM [-cert PEM -key PEM]
//
// Library defaults except what a scenario sets. Go's TLS 1.3 suites are not configurable; with
// AES hardware it prefers TLS_AES_128_GCM_SHA256. The server accepts one connection, reads one
// request, answers "HTTP/1.0 200 ok" and closes (close_notify, FIN); the client sends
// "GET / HTTP/1.0" and reads until the server closes. Each side prints one "handshake ok" line.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
}

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	}
	return fmt.Sprintf("0x%04x", v)
}

func summary(cs tls.ConnectionState, peer string) string {
	cert := "none"
	if len(cs.PeerCertificates) > 0 {
		cert = "CN=" + cs.PeerCertificates[0].Subject.CommonName
	}
	return fmt.Sprintf("handshake ok version=%s suite=%s %s=%s", versionName(cs.Version),
		tls.CipherSuiteName(cs.CipherSuite), peer, cert)
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "server" && os.Args[1] != "client") {
		fmt.Fprintln(os.Stderr, "usage: go-peer server|client -flag value ...")
		os.Exit(2)
	}
	role := os.Args[1]
	fs := flag.NewFlagSet(role, flag.ExitOnError)
	listen := fs.String("listen", "", "server address")
	connect := fs.String("connect", "", "address to connect to")
	ver := fs.String("tls", "1.3", "1.2 or 1.3")
	certFile := fs.String("cert", "", "certificate (PEM)")
	keyFile := fs.String("key", "", "private key (PEM)")
	caFile := fs.String("ca", "", "CA certificate (PEM)")
	sni := fs.String("sni", "", "server name")
	auth := fs.String("client-auth", "none", "none, request or require")
	keyLog := fs.String("keylog", "", "append the TLS secrets to this file (NSS key log format, KeyLogWriter)")
	fs.Parse(os.Args[2:])

	cfg := &tls.Config{}
	if *keyLog != "" {
		w, err := os.OpenFile(*keyLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fail("-keylog", err)
		}
		defer w.Close()
		cfg.KeyLogWriter = w
	}
	switch *ver {
	case "1.3":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	case "1.2":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	default:
		fail("-tls", fmt.Errorf("must be 1.2 or 1.3"))
	}
	if *certFile != "" {
		kp, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fail("certificate", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	var pool *x509.CertPool
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fail("CA", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fail("CA", fmt.Errorf("no certificate in %s", *caFile))
		}
	}

	if role == "server" {
		cfg.ClientCAs = pool
		switch *auth {
		case "none":
			cfg.ClientAuth = tls.NoClientCert
		case "request":
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		case "require":
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		default:
			fail("-client-auth", fmt.Errorf("%q", *auth))
		}
		ln, err := net.Listen("tcp4", *listen)
		if err != nil {
			fail("listen", err)
		}
		fmt.Println("listening")
		c, err := ln.Accept()
		if err != nil {
			fail("accept", err)
		}
		s := tls.Server(c, cfg)
		if err := s.Handshake(); err != nil {
			fail("handshake", err)
		}
		fmt.Println(summary(s.ConnectionState(), "client_cert"))
		r := bufio.NewReader(s)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				fail("request", err)
			}
			if line == "\r\n" {
				break
			}
		}
		io.WriteString(s, "HTTP/1.0 200 ok\r\nContent-Type: text/plain\r\n\r\nhello from the capture peer\n")
		s.Close()
		return
	}

	cfg.RootCAs = pool
	cfg.ServerName = *sni
	c, err := net.Dial("tcp4", *connect)
	if err != nil {
		fail("connect", err)
	}
	s := tls.Client(c, cfg)
	if err := s.Handshake(); err != nil {
		fail("handshake", err)
	}
	fmt.Println(summary(s.ConnectionState(), "server_cert"))
	io.WriteString(s, "GET / HTTP/1.0\r\n\r\n")
	resp, err := io.ReadAll(s)
	if err != nil && len(resp) == 0 {
		fail("response", err)
	}
	fmt.Println(strings.SplitN(string(resp), "\r\n", 2)[0])
	s.Close()
}
