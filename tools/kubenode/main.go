// Command kubenode is the test node of the kubernetes work type's end-to-end
// tests (make test-k8s): a virtual-kubelet node whose provider runs each
// pod's worker container command as a local process, and serves the
// kubelet's containerLogs and attach endpoints on 127.0.0.1 the way a real
// kubelet does (one RFC 3339 timestamp per line, sinceTime, follow). It
// also binds unscheduled pods to itself (no kube-scheduler runs), and
// reports pods it cannot run (a nodeSelector it does not match) with a
// FailedScheduling event, as the scheduler would.
//
// The annotation kubenode.receptor.mesh/cut-log-after: N cuts the pod's log
// streams at every N bytes of the container's output, each point once, as
// a log rotation or a dropped connection would: the stream that reaches
// the point ends there (mid-line, with a clean end of stream), the next
// one gets past it. (Cutting every stream N bytes after its start would
// make the log unreadable past the first second holding more than N
// bytes: sinceTime has second resolution, so each stream replays that
// second from its start and no reader could get further.)
//
// It is test equipment, not a kubelet: no images, no isolation.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

const cutAnnotation = "kubenode.receptor.mesh/cut-log-after"

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	name := flag.String("node", "kubenode", "node name")
	listen := flag.String("listen", "127.0.0.1:10250", "kubelet API address (HTTPS)")
	dir := flag.String("dir", "", "directory for container logs")
	flag.Parse()
	if err := run(*kubeconfig, *name, *listen, *dir); err != nil {
		log.Fatal(err)
	}
}

func run(kubeconfig, name, listen, dir string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return err
	}
	tlsCfg, err := selfSigned(host)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	p := &provider{dir: dir, pods: map[string]*proc{}}
	mux := http.NewServeMux()
	n, err := nodeutil.NewNode(name, func(nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		return p, nil, nil
	}, nodeutil.WithClient(cs), nodeutil.AttachProviderRoutes(mux), func(c *nodeutil.NodeConfig) error {
		c.HTTPListenAddr = listen
		c.TLSConfig = tlsCfg
		c.Handler = mux
		c.NumWorkers = 2
		c.NodeSpec.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
		c.NodeSpec.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
		c.NodeSpec.Status.Capacity = corev1.ResourceList{}
		return nil
	})
	if err != nil {
		return err
	}
	go schedule(ctx, cs, name)
	log.Printf("kubenode %s serving on %s", name, listen)
	err = n.Run(ctx)
	p.killAll()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// schedule binds pods without a node to this node, or reports why not.
func schedule(ctx context.Context, cs kubernetes.Interface, nodeName string) {
	reported := map[string]bool{}
	for ctx.Err() == nil {
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName="})
		if err == nil {
			for i := range pods.Items {
				pod := &pods.Items[i]
				if pod.DeletionTimestamp != nil {
					continue
				}
				if len(pod.Spec.NodeSelector) > 0 {
					key := pod.Namespace + "/" + pod.Name
					if !reported[key] {
						reported[key] = true
						reportUnschedulable(ctx, cs, pod)
					}
					continue
				}
				err := cs.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
					ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
					Target:     corev1.ObjectReference{Kind: "Node", Name: nodeName},
				}, metav1.CreateOptions{})
				if err != nil {
					log.Printf("binding %s/%s: %v", pod.Namespace, pod.Name, err)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func reportUnschedulable(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) {
	msg := "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
	now := metav1.Now()
	_, err := cs.CoreV1().Events(pod.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, APIVersion: "v1"},
		Reason:         "FailedScheduling", Message: msg, Type: corev1.EventTypeWarning,
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source: corev1.EventSource{Component: "kubenode-scheduler"},
	}, metav1.CreateOptions{})
	if err != nil {
		log.Printf("reporting %s/%s unschedulable: %v", pod.Namespace, pod.Name, err)
	}
}

// provider runs pods as local processes.
type provider struct {
	dir string

	mu     sync.Mutex
	pods   map[string]*proc
	notify func(*corev1.Pod)
}

type proc struct {
	cut   *cutPoints
	pod   *corev1.Pod
	cmd   *exec.Cmd
	stdin io.WriteCloser
	logs  *logFile
	done  chan struct{}
}

func key(ns, name string) string { return ns + "/" + name }

func (p *provider) NotifyPods(_ context.Context, f func(*corev1.Pod)) {
	p.mu.Lock()
	p.notify = f
	p.mu.Unlock()
}

func (p *provider) publish(pod *corev1.Pod) {
	p.mu.Lock()
	f := p.notify
	p.mu.Unlock()
	if f != nil {
		f(pod.DeepCopy())
	}
}

func workerIndex(pod *corev1.Pod) int {
	for i, c := range pod.Spec.Containers {
		if c.Name == "worker" {
			return i
		}
	}
	return 0
}

func (p *provider) CreatePod(_ context.Context, pod *corev1.Pod) error {
	pod = pod.DeepCopy()
	c := pod.Spec.Containers[workerIndex(pod)]
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(argv) == 0 {
		return errdefs.InvalidInput("kubenode runs commands, not images: the worker container needs a command")
	}
	logs, err := newLogFile(filepath.Join(p.dir, pod.Namespace+"_"+pod.Name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), envOf(c)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr := &proc{pod: pod, cmd: cmd, logs: logs, done: make(chan struct{})}
	if c.Stdin {
		if pr.stdin, err = cmd.StdinPipe(); err != nil {
			return err
		}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, HostIP: "127.0.0.1", PodIP: "127.0.0.1", StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	for _, ct := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: ct.Name, Image: ct.Image, Ready: true, Started: ptr(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	p.mu.Lock()
	p.pods[key(pod.Namespace, pod.Name)] = pr
	p.mu.Unlock()
	go p.wait(pr)
	p.publish(pod)
	return nil
}

func ptr[T any](v T) *T { return &v }

func envOf(c corev1.Container) []string {
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	return env
}

// wait records the process's exit in the pod's status.
func (p *provider) wait(pr *proc) {
	err := pr.cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if code < 0 {
			code = 137
		}
	}
	pr.logs.close()
	now := metav1.Now()
	p.mu.Lock()
	pod := pr.pod
	pod.Status.Phase = corev1.PodSucceeded
	if code != 0 {
		pod.Status.Phase = corev1.PodFailed
	}
	for i := range pod.Status.Conditions {
		if t := pod.Status.Conditions[i].Type; t == corev1.PodReady || t == corev1.ContainersReady {
			pod.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		started := cs.State.Running.StartedAt
		cs.Ready = false
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: int32(code), StartedAt: started, FinishedAt: now, Reason: reason(code),
		}}
	}
	snapshot := pod.DeepCopy()
	p.mu.Unlock()
	close(pr.done)
	p.publish(snapshot)
}

func reason(code int) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

func (p *provider) UpdatePod(context.Context, *corev1.Pod) error { return nil }

func (p *provider) DeletePod(_ context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	pr := p.pods[key(pod.Namespace, pod.Name)]
	p.mu.Unlock()
	if pr == nil {
		return errdefs.NotFound("pod not found")
	}
	_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
	<-pr.done
	p.mu.Lock()
	delete(p.pods, key(pod.Namespace, pod.Name))
	p.mu.Unlock()
	return nil
}

func (p *provider) killAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pods {
		_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
	}
}

func (p *provider) get(ns, name string) (*proc, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.pods[key(ns, name)]
	if pr == nil {
		return nil, errdefs.NotFoundf("pod %s/%s not found", ns, name)
	}
	return pr, nil
}

func (p *provider) GetPod(_ context.Context, ns, name string) (*corev1.Pod, error) {
	pr, err := p.get(ns, name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return pr.pod.DeepCopy(), nil
}

func (p *provider) GetPodStatus(ctx context.Context, ns, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

func (p *provider) GetPods(context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(p.pods))
	for _, pr := range p.pods {
		out = append(out, pr.pod.DeepCopy())
	}
	return out, nil
}

// AttachToContainer copies the attached stdin into the process's stdin
// and closes it at the end (the containers' stdinOnce).
func (p *provider) AttachToContainer(ctx context.Context, ns, name, _ string, attach api.AttachIO) error {
	pr, err := p.get(ns, name)
	if err != nil {
		return err
	}
	if pr.stdin == nil || attach.Stdin() == nil {
		return errdefs.InvalidInput("container has no stdin")
	}
	_, err = io.Copy(pr.stdin, attach.Stdin())
	_ = pr.stdin.Close()
	if errors.Is(err, syscall.EPIPE) {
		err = nil
	}
	return err
}

func (p *provider) RunInContainer(context.Context, string, string, string, []string, api.AttachIO) error {
	return errdefs.InvalidInput("exec is not supported by kubenode")
}

func (p *provider) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return nil, errNotSupported
}

func (p *provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, errNotSupported
}

func (p *provider) PortForward(context.Context, string, string, int32, io.ReadWriteCloser) error {
	return errNotSupported
}

var errNotSupported = errdefs.InvalidInput("not supported by kubenode")

// GetContainerLogs serves the worker's log like the kubelet: one
// timestamp per line when asked, lines from sinceTime's second on, and
// following until the process exited and everything was sent.
func (p *provider) GetContainerLogs(ctx context.Context, ns, name, _ string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	pr, err := p.get(ns, name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if pr.cut == nil {
		pr.cut = &cutPoints{}
		if v := pr.pod.Annotations[cutAnnotation]; v != "" {
			pr.cut.every, _ = strconv.ParseInt(v, 10, 64)
			pr.cut.next = pr.cut.every
		}
	}
	cut := pr.cut
	p.mu.Unlock()
	pipeR, pipeW := io.Pipe()
	go func() {
		err := pr.logs.serve(ctx, pipeW, opts, pr.done, cut)
		pipeW.CloseWithError(err)
	}()
	return pipeR, nil
}

// logFile stores a container's output as records "<unix nanos> <F|P> <bytes>\n":
// F ends a line, P is a fragment without its newline (the next record
// continues the line). A line's timestamp is its first record's.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func newLogFile(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, f: f}, nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := strconv.FormatInt(time.Now().UnixNano(), 10)
	var buf bytes.Buffer
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		tag, seg := "P", rest
		if i >= 0 {
			tag, seg = "F", rest[:i]
			rest = rest[i+1:]
		} else {
			rest = nil
		}
		buf.WriteString(ts + " " + tag + " ")
		buf.Write(seg)
		buf.WriteByte('\n')
	}
	if _, err := l.f.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (l *logFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.f.Close()
}

const fixedNano = "2006-01-02T15:04:05.000000000Z07:00"

// cutPoints are the offsets in the container's output where a log stream
// is cut: every `every` bytes (0: never), each once.
type cutPoints struct {
	mu    sync.Mutex
	every int64
	next  int64
}

// take reports where in content, which starts at output offset off, the
// stream is cut (-1: not in it), and uses that point up.
func (c *cutPoints) take(off int64, content []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.every <= 0 {
		return -1
	}
	for c.next < off {
		c.next += c.every
	}
	if c.next >= off+int64(len(content)) {
		return -1
	}
	at := int(c.next - off)
	c.next += c.every
	return at
}

func (l *logFile) serve(ctx context.Context, w io.Writer, opts api.ContainerLogOpts, exited <-chan struct{}, cut *cutPoints) error {
	f, err := os.Open(l.path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	since := opts.SinceTime.Truncate(time.Second)
	atLineStart, skipLine := true, false
	var off int64 // the container's output before this record
	var pending []byte
	for {
		chunk, err := br.ReadBytes('\n')
		pending = append(pending, chunk...)
		if err == nil {
			rec := pending
			pending = nil
			sp1 := bytes.IndexByte(rec, ' ')
			nanos, _ := strconv.ParseInt(string(rec[:sp1]), 10, 64)
			tag := rec[sp1+1]
			content := rec[sp1+3 : len(rec)-1]
			ts := time.Unix(0, nanos).UTC()
			var out []byte
			if atLineStart {
				skipLine = !opts.SinceTime.IsZero() && ts.Before(since)
				if opts.Timestamps {
					out = append(out, ts.Format(fixedNano)+" "...)
				}
			}
			body := content
			if tag == 'F' {
				body = append(content[:len(content):len(content)], '\n')
			}
			recOff := off
			off += int64(len(body))
			atLineStart = tag == 'F'
			if skipLine {
				continue
			}
			if at := cut.take(recOff, body); at >= 0 {
				log.Printf("cut log stream of %s at output byte %d", l.path, recOff+int64(at))
				_, werr := w.Write(append(out, body[:at]...))
				return werr // the stream ends early, as a rotated log or a dropped connection would
			}
			if _, err := w.Write(append(out, body...)); err != nil {
				return err
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		if !opts.Follow {
			return nil
		}
		select {
		case <-exited:
			// Read what was written before the exit, then stop.
			if len(pending) == 0 {
				if n, _ := br.Peek(1); len(n) == 0 {
					return nil
				}
			}
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// selfSigned is the kubelet API's certificate (the API server does not
// verify it without --kubelet-certificate-authority).
func selfSigned(host string) (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubenode"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP(host)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, nil
}
