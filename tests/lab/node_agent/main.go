// SPDX-License-Identifier: GPL-3.0-or-later
// Copyright: (c) 2026, homelab.longhorn_dr contributors

// Command lab-node-agent is the lab's node: a virtual-kubelet node controller (Node object,
// Lease in kube-node-lease, pod status) with a provider of the project's own that reports pods
// Running once their CSI volumes are attached, and runs `kubectl exec` through a command the
// lab supplies.  See README.md next to this file.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkklog "github.com/virtual-kubelet/virtual-kubelet/log/klogv2"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// argvFlag collects a repeatable flag: each occurrence is one argv element, in order.
type argvFlag []string

func (a *argvFlag) String() string     { return strings.Join(*a, " ") }
func (a *argvFlag) Set(v string) error { *a = append(*a, v); return nil }

type options struct {
	kubeconfig   string
	nodeName     string
	listenPort   int
	tlsCert      string
	tlsKey       string
	clientCA     string
	execCommand  argvFlag
	volumePoll   time.Duration
	statusPeriod time.Duration
}

func parseFlags() *options {
	o := &options{}
	klog.InitFlags(nil) // --v, --logtostderr ...: klog writes to stderr by default
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the node identity (user system:node:<node-name>, group system:nodes)")
	flag.StringVar(&o.nodeName, "node-name", "lab-node-1", "name of the Node object this agent registers and serves")
	flag.IntVar(&o.listenPort, "listen-port", 10250, "port of the kubelet API (HTTPS) on 127.0.0.1, advertised as the Node's daemonEndpoints.kubeletEndpoint.port")
	flag.StringVar(&o.tlsCert, "tls-cert-file", "", "serving certificate of the kubelet API (PEM)")
	flag.StringVar(&o.tlsKey, "tls-private-key-file", "", "key of the serving certificate (PEM)")
	flag.StringVar(&o.clientCA, "client-ca-file", "", "CA that signs the client certificates callers (the API server) must present")
	flag.Var(&o.execCommand, "exec-command", "argv prefix for `kubectl exec`, one element per occurrence (repeat the flag); "+
		"the agent runs <prefix...> NAMESPACE POD CONTAINER -- COMMAND ARGS...")
	flag.DurationVar(&o.volumePoll, "volume-poll-interval", 200*time.Millisecond, "how often a pending pod's volumes are re-checked")
	flag.DurationVar(&o.statusPeriod, "node-status-update-frequency", time.Minute, "how often the Node status is re-sent (the Lease is renewed every 10s regardless)")
	flag.Parse()
	if flag.NArg() != 0 {
		fail("unexpected arguments: %q", flag.Args())
	}
	for name, value := range map[string]string{"--kubeconfig": o.kubeconfig, "--tls-cert-file": o.tlsCert,
		"--tls-private-key-file": o.tlsKey, "--client-ca-file": o.clientCA, "--node-name": o.nodeName} {
		if value == "" {
			fail("%s is required", name)
		}
	}
	if len(o.execCommand) == 0 {
		fail("--exec-command is required (repeat it once per argv element)")
	}
	if o.listenPort <= 0 || o.listenPort > 65535 {
		fail("--listen-port %d is out of range", o.listenPort)
	}
	return o
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "lab-node-agent: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	o := parseFlags()
	vklog.L = vkklog.New(nil)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil && ctx.Err() == nil {
		klog.Errorf("lab-node-agent: %v", err)
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func run(ctx context.Context, o *options) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("reading --kubeconfig: %w", err)
	}
	restConfig.UserAgent = "lab-node-agent/" + o.nodeName
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}

	// Pods: only those bound to this node.  The Node authorizer lets a node list/watch pods
	// only with this field selector.
	podFactory := informers.NewSharedInformerFactoryWithOptions(client, time.Minute,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", o.nodeName).String()
		}))
	podInformer := podFactory.Core().V1().Pods()
	podInformer.Informer() // register before Start

	// The pod controller insists on secret/config map/service informers, for resolving
	// environment variables.  A node may not list secrets or config maps cluster-wide (the Node
	// authorizer only allows GETs of those its pods reference), and the agent does not resolve
	// environment (SkipDownwardAPIResolution below: the lab's exec sandbox builds its own), so
	// these informers are handed over but never started: no refused list/watch loops.
	idle := informers.NewSharedInformerFactory(client, 0)

	provider := newProvider(client, o.nodeName, o.execCommand, o.volumePoll)

	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&corev1client.EventSinkImpl{Interface: client.CoreV1().Events(corev1.NamespaceAll)})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: o.nodeName})
	provider.recorder = recorder

	podController, err := node.NewPodController(node.PodControllerConfig{
		PodClient:                 client.CoreV1(),
		PodInformer:               podInformer,
		EventRecorder:             recorder,
		Provider:                  provider,
		SecretInformer:            idle.Core().V1().Secrets(),
		ConfigMapInformer:         idle.Core().V1().ConfigMaps(),
		ServiceInformer:           idle.Core().V1().Services(),
		SkipDownwardAPIResolution: true,
	})
	if err != nil {
		return fmt.Errorf("creating the pod controller: %w", err)
	}

	nodeObject := nodeSpec(o.nodeName, o.listenPort)
	nodeController, err := node.NewNodeController(staticNodeProvider{}, nodeObject, client.CoreV1().Nodes(),
		node.WithNodeEnableLeaseV1(client.CoordinationV1().Leases(corev1.NamespaceNodeLease), node.DefaultLeaseDuration),
		node.WithNodeStatusUpdateInterval(o.statusPeriod),
		node.WithNodeStatusUpdateErrorHandler(func(ctx context.Context, err error) error {
			klog.Errorf("node status update failed (will retry): %v", err)
			return err
		}),
	)
	if err != nil {
		return fmt.Errorf("creating the node controller: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	stopServer, err := serveKubeletAPI(ctx, o, provider, podInformer.Lister())
	if err != nil {
		return err
	}
	defer stopServer()

	podFactory.Start(ctx.Done())
	go provider.run(ctx)
	go func() {
		if err := podController.Run(ctx, 2); err != nil && ctx.Err() == nil {
			klog.Errorf("pod controller stopped: %v", err)
		}
		cancel()
	}()
	select {
	case <-podController.Ready():
	case <-podController.Done():
		return podController.Err()
	case <-ctx.Done():
		return nil
	}
	klog.Infof("pod controller ready for node %s", o.nodeName)

	go func() {
		if err := nodeController.Run(ctx); err != nil && ctx.Err() == nil {
			klog.Errorf("node controller stopped: %v", err)
		}
		cancel()
	}()
	select {
	case <-nodeController.Ready():
		klog.Infof("node %s registered; kubelet API on https://127.0.0.1:%d", o.nodeName, o.listenPort)
	case <-nodeController.Done():
		return nodeController.Err()
	case <-ctx.Done():
		return nil
	}
	<-ctx.Done()
	<-podController.Done()
	<-nodeController.Done()
	if err := nodeController.Err(); err != nil && !isCanceled(err) {
		return err
	}
	return nil
}

func isCanceled(err error) bool {
	return err == context.Canceled || strings.Contains(err.Error(), context.Canceled.Error())
}
