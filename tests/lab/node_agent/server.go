// SPDX-License-Identifier: GPL-3.0-or-later
// Copyright: (c) 2026, homelab.longhorn_dr contributors

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
)

// Identities allowed to use the kubelet API once their certificate is verified.  A kubelet
// with x509 client authentication and webhook authorization asks the API server whether the
// user may use nodes/proxy; the only caller here is the API server itself (CN
// system:kube-apiserver, O system:masters), which that check always allows, and the agent
// grants the same statically instead of a SubjectAccessReview per request.
const (
	apiServerUser = "system:kube-apiserver"
	mastersGroup  = "system:masters"
)

func authorized(cert *x509.Certificate) bool {
	return cert.Subject.CommonName == apiServerUser || slices.Contains(cert.Subject.Organization, mastersGroup)
}

// serveKubeletAPI serves exec, logs and the pod list on 127.0.0.1:--listen-port over HTTPS,
// requiring a client certificate signed by --client-ca-file.
func serveKubeletAPI(ctx context.Context, o *options, p *provider, pods corev1listers.PodLister) (func(), error) {
	caPEM, err := os.ReadFile(o.clientCA)
	if err != nil {
		return nil, fmt.Errorf("reading --client-ca-file: %w", err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("--client-ca-file %s holds no PEM certificate", o.clientCA)
	}
	pair, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("loading --tls-cert-file/--tls-private-key-file: %w", err)
	}
	tlsConfig := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    clientCAs,
		// The handshake fails without a certificate chaining to the CA with client-auth usage.
		ClientAuth: tls.RequireAndVerifyClientCert,
		// HTTP/1.1 only: exec upgrades the connection (SPDY or WebSocket).
		NextProtos: []string{"http/1.1"},
	}

	routes := api.PodHandler(api.PodHandlerConfig{
		RunInContainer:    p.RunInContainer,
		AttachToContainer: p.AttachToContainer,
		GetContainerLogs:  p.GetContainerLogs,
		GetPods:           p.GetPods,
		GetPodsFromKubernetes: func(context.Context) ([]*corev1.Pod, error) {
			return pods.List(labels.Everything())
		},
		StreamIdleTimeout:     4 * time.Hour, // kubelet's default streamingConnectionIdleTimeout
		StreamCreationTimeout: 30 * time.Second,
	}, false)

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		cert := r.TLS.VerifiedChains[0][0]
		if !authorized(cert) {
			klog.Warningf("kubelet API: refused %s %s for %q (groups %q)", r.Method, r.URL.Path, cert.Subject.CommonName, cert.Subject.Organization)
			http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=proxy)", cert.Subject.CommonName, r.Method), http.StatusForbidden)
			return
		}
		klog.V(3).Infof("kubelet API: %s %s by %q", r.Method, r.URL.Path, cert.Subject.CommonName)
		routes.ServeHTTP(w, r)
	})

	listener, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(o.listenPort)))
	if err != nil {
		return nil, fmt.Errorf("kubelet API listen: %w", err)
	}
	server := &http.Server{
		Handler:           handler,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		// No HTTP/2: exec upgrades an HTTP/1.1 connection.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() {
		if err := server.ServeTLS(listener, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.Errorf("kubelet API server stopped: %v", err)
		}
	}()
	return func() { _ = server.Close() }, nil
}
