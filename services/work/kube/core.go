package kube

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// The work type speaks to the core/v1 API only (pods, their log and attach
// subresources, events) through a REST client over a scheme that holds
// core/v1 alone. client-go's generated clientset would do the same calls,
// but importing it (or any of its typed clients) links the scheme of every
// API group, whose package initialisers cost about 20 ms of CPU at every
// start of every receptor and receptor-worker process, units of work or
// not (GODEBUG=inittrace=1; docs/performance.md).

// CoreAPI is the part of the core/v1 API a unit uses.
type CoreAPI interface {
	Pods(namespace string) PodAPI
	Events(namespace string) EventAPI
}

// PodAPI is the pods resource of one namespace. Its methods have the
// signatures of client-go's typed pod client, so that one satisfies it too.
type PodAPI interface {
	Create(ctx context.Context, pod *corev1.Pod, opts metav1.CreateOptions) (*corev1.Pod, error)
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// EventAPI is the events resource of one namespace.
type EventAPI interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.EventList, error)
}

// coreCodecs is the core/v1 scheme with its codecs.
type coreCodecs struct {
	scheme *runtime.Scheme
	codecs serializer.CodecFactory
	params runtime.ParameterCodec
}

// coreTypes is the core/v1 scheme with its codecs, made at first use.
var coreTypes = sync.OnceValue(func() *coreCodecs {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s)) // with meta/v1's options, lists, watch events and status
	return &coreCodecs{scheme: s, codecs: serializer.NewCodecFactory(s), params: runtime.NewParameterCodec(s)}
})

// coreClient is CoreAPI over a REST client of the API server.
type coreClient struct {
	rc *rest.RESTClient
}

// newCoreClient is a core/v1 client with cfg's server, credentials and
// rate limits, configured as client-go configures its own.
func newCoreClient(cfg *rest.Config) (*coreClient, error) {
	c := coreTypes()
	cc := *cfg
	gv := corev1.SchemeGroupVersion
	cc.GroupVersion = &gv
	cc.APIPath = "/api"
	cc.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(c.scheme, c.codecs).WithoutConversion()
	if cc.UserAgent == "" {
		cc.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(&cc)
	if err != nil {
		return nil, err
	}
	return &coreClient{rc: rc}, nil
}

func (c *coreClient) Pods(namespace string) PodAPI {
	return &corePods{rc: c.rc, ns: namespace}
}

func (c *coreClient) Events(namespace string) EventAPI {
	return &coreEvents{rc: c.rc, ns: namespace}
}

// logs opens the log of a pod's container.
func (c *coreClient) logs(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return c.rc.Get().Namespace(namespace).Resource("pods").Name(pod).SubResource("log").
		VersionedParams(opts, coreTypes().params).Stream(ctx)
}

// attachRequest is the attach subresource request of a pod's worker
// container, stdin only.
func (c *coreClient) attachRequest(namespace, pod string) *rest.Request {
	return c.rc.Post().Namespace(namespace).Resource("pods").Name(pod).SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{Container: WorkerContainer, Stdin: true}, coreTypes().params)
}

type corePods struct {
	rc *rest.RESTClient
	ns string
}

func (p *corePods) Create(ctx context.Context, pod *corev1.Pod, opts metav1.CreateOptions) (*corev1.Pod, error) {
	out := &corev1.Pod{}
	err := p.rc.Post().Namespace(p.ns).Resource("pods").VersionedParams(&opts, coreTypes().params).
		Body(pod).Do(ctx).Into(out)
	return out, err
}

func (p *corePods) List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	out := &corev1.PodList{}
	err := p.rc.Get().Namespace(p.ns).Resource("pods").VersionedParams(&opts, coreTypes().params).
		Timeout(timeoutOf(opts)).Do(ctx).Into(out)
	return out, err
}

func (p *corePods) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return p.rc.Get().Namespace(p.ns).Resource("pods").VersionedParams(&opts, coreTypes().params).
		Timeout(timeoutOf(opts)).Watch(ctx)
}

func (p *corePods) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return p.rc.Delete().Namespace(p.ns).Resource("pods").Name(name).Body(&opts).Do(ctx).Error()
}

type coreEvents struct {
	rc *rest.RESTClient
	ns string
}

func (e *coreEvents) List(ctx context.Context, opts metav1.ListOptions) (*corev1.EventList, error) {
	out := &corev1.EventList{}
	err := e.rc.Get().Namespace(e.ns).Resource("events").VersionedParams(&opts, coreTypes().params).
		Timeout(timeoutOf(opts)).Do(ctx).Into(out)
	return out, err
}

// timeoutOf is the server-side timeout a list or watch asks for, zero for
// none.
func timeoutOf(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}

// decodePod decodes a pod manifest (YAML or JSON). A manifest without
// apiVersion and kind is taken as a v1 Pod; another kind of the core group
// would decode into an object of its own, and is refused.
func decodePod(manifest []byte) (*corev1.Pod, error) {
	obj, gvk, err := coreTypes().codecs.UniversalDeserializer().Decode(manifest, nil, &corev1.Pod{})
	if err != nil {
		return nil, err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("the pod manifest is a %s, not a v1 Pod", gvk.Kind)
	}
	return pod, nil
}
