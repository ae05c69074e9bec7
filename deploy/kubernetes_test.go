package deploy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/imagebuild"
)

// What of the Kubernetes objects the tests read; the names are the API's.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`

	Data      map[string]string `yaml:"data"`      // ConfigMap
	Resources []string          `yaml:"resources"` // Kustomization, Component
	Patches   []struct {
		Patch string `yaml:"patch"`
	} `yaml:"patches"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"` // Deployment
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata meta `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
		// Service
		ServiceSelector map[string]string `yaml:"-"`
		Ports           []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
		// PodDisruptionBudget
		MaxUnavailable string `yaml:"maxUnavailable"`
		MinAvailable   string `yaml:"minAvailable"`
	} `yaml:"spec"`

	file string
}

type meta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int64 `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
		RunAsUser    *int64 `yaml:"runAsUser"`
		FSGroup      *int64 `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []volume    `yaml:"volumes"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name  string `yaml:"name"`
		Items []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"configMap"`
	EmptyDir *struct{} `yaml:"emptyDir"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env            []envVar `yaml:"env"`
	StartupProbe   *probe   `yaml:"startupProbe"`
	LivenessProbe  *probe   `yaml:"livenessProbe"`
	ReadinessProbe *probe   `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port's name
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

// readObjects reads every document of every YAML file in dir (not below).
func readObjects(t *testing.T, dir string) []*object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []*object
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(r)
		for i := 1; ; i++ {
			var node yaml.Node
			err := dec.Decode(&node)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s, document %d: %v", f, i, err)
			}
			o := &object{file: filepath.Base(f)}
			if err := node.Decode(o); err != nil {
				t.Fatalf("%s, document %d: %v", f, i, err)
			}
			var svc struct {
				Spec struct {
					Selector map[string]string `yaml:"selector"`
				} `yaml:"spec"`
			}
			if o.Kind == "Service" && node.Decode(&svc) == nil {
				o.Spec.ServiceSelector = svc.Spec.Selector
			}
			if o.APIVersion == "" || o.Kind == "" {
				t.Errorf("%s, document %d: no apiVersion or kind", f, i)
			}
			if o.Metadata.Name == "" && o.Kind != "Kustomization" && o.Kind != "Component" {
				t.Errorf("%s, document %d: a %s without a name", f, i, o.Kind)
			}
			objs = append(objs, o)
		}
		r.Close()
	}
	if len(objs) == 0 {
		t.Fatalf("no manifests in %s", dir)
	}
	return objs
}

func find(objs []*object, kind, name string) *object {
	for _, o := range objs {
		if o.Kind == kind && (name == "" || o.Metadata.Name == name) {
			return o
		}
	}
	return nil
}

// TestKustomizationsListEveryFile: each folder applies whole with
// kubectl apply -k, no manifest left out and none missing.
func TestKustomizationsListEveryFile(t *testing.T) {
	dirs, err := filepath.Glob("kubernetes/*")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("kubernetes/*/*/kustomization.yaml")
	for _, k := range more {
		dirs = append(dirs, filepath.Dir(k))
	}
	if len(dirs) < 3 {
		t.Fatalf("kustomizations in %v: want single, scale-out and its redis component", dirs)
	}
	for _, dir := range dirs {
		var k *object
		for _, o := range readObjects(t, dir) {
			if o.Kind == "Kustomization" || o.Kind == "Component" {
				k = o
			}
		}
		if k == nil {
			t.Errorf("%s: no kustomization.yaml", dir)
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		var want []string
		for _, f := range files {
			if b := filepath.Base(f); b != "kustomization.yaml" {
				want = append(want, b)
			}
		}
		got := slices.Sorted(slices.Values(k.Resources))
		if !slices.Equal(got, want) {
			t.Errorf("%s/kustomization.yaml lists %v, the folder holds %v", dir, got, want)
		}
	}
}

func TestKubernetesSingle(t *testing.T) {
	objs := readObjects(t, "kubernetes/single")
	w := checkLading(t, objs, "StatefulSet")
	if w.Spec.Replicas == nil || *w.Spec.Replicas != 1 {
		t.Errorf("replicas %s: the filesystem driver serves from one process", show(w.Spec.Replicas))
	}
}

func TestKubernetesScaleOut(t *testing.T) {
	objs := readObjects(t, "kubernetes/scale-out")
	w := checkLading(t, objs, "Deployment")
	if w.Spec.Replicas == nil || *w.Spec.Replicas < 2 {
		t.Errorf("replicas %s, want several", show(w.Spec.Replicas))
	}
	pdb := find(objs, "PodDisruptionBudget", "")
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget")
	}
	if !selects(pdb.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels) {
		t.Errorf("the PodDisruptionBudget selects %v, the pods are %v", pdb.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels)
	}
	if n, err := strconv.Atoi(pdb.Spec.MaxUnavailable); err != nil || n < 1 || n >= *w.Spec.Replicas {
		t.Errorf("the PodDisruptionBudget lets %q of %d replicas go at once", pdb.Spec.MaxUnavailable, *w.Spec.Replicas)
	}
	// The keys come from a Secret, never from the ConfigMap.
	c := w.Spec.Template.Spec.Containers[0]
	for _, name := range []string{"LADING_STORAGE_S3_ACCESSKEY", "LADING_STORAGE_S3_SECRETKEY"} {
		i := slices.IndexFunc(c.Env, func(e envVar) bool { return e.Name == name })
		if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s is not taken from a Secret", name)
		}
	}
	cfg, err := config.Parse("lading.yaml", []byte(find(objs, "ConfigMap", "").Data["lading.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.S3.AccessKey != "" || cfg.Storage.S3.SecretKey != "" {
		t.Error("the ConfigMap holds S3 credentials")
	}
}

// TestKubernetesRedisComponent: the component's Redis is where the
// variable it adds points lading, and the configuration takes that.
func TestKubernetesRedisComponent(t *testing.T) {
	objs := readObjects(t, "kubernetes/scale-out/redis")
	comp := find(objs, "Component", "")
	if comp == nil || len(comp.Patches) != 1 {
		t.Fatal("kubernetes/scale-out/redis: want a Component with one patch")
	}
	var ops []struct {
		Op, Path string
		Value    envVar
	}
	if err := yaml.Unmarshal([]byte(comp.Patches[0].Patch), &ops); err != nil || len(ops) != 1 {
		t.Fatalf("the patch: %v, %d operations", err, len(ops))
	}
	if ops[0].Op != "add" || ops[0].Path != "/spec/template/spec/containers/0/env/-" || ops[0].Value.Name != "LADING_REDIS_ADDR" {
		t.Fatalf("the patch %+v does not add LADING_REDIS_ADDR to lading's environment", ops[0])
	}
	scaleOut := readObjects(t, "kubernetes/scale-out")
	w := find(scaleOut, "Deployment", "lading")
	c := w.Spec.Template.Spec.Containers[0]
	cfg := loadConfig(t, find(scaleOut, "ConfigMap", "").Data["lading.yaml"], append(containerEnv(c), ops[0].Value.Name+"="+ops[0].Value.Value))
	host, port, err := net.SplitHostPort(cfg.Redis.Addr)
	if err != nil {
		t.Fatalf("redis.addr %q: %v", cfg.Redis.Addr, err)
	}
	svc := find(objs, "Service", host)
	if svc == nil {
		t.Fatalf("redis.addr names %s, the component has no such Service", host)
	}
	redis := find(objs, "Deployment", "")
	if redis == nil || !selects(svc.Spec.ServiceSelector, redis.Spec.Template.Metadata.Labels) || selects(svc.Spec.ServiceSelector, w.Spec.Template.Metadata.Labels) {
		t.Errorf("the Service %s selects %v: not Redis's pods alone", host, svc.Spec.ServiceSelector)
	}
	if len(svc.Spec.Ports) != 1 || strconv.Itoa(svc.Spec.Ports[0].Port) != port {
		t.Errorf("the Service %s serves %+v, lading calls port %s", host, svc.Spec.Ports, port)
	}
	// One Redis at a time, even in a rollout (two behind the Service
	// would hold two sets of locks), and one that never evicts: every key
	// has a TTL, locks too.
	if redis.Spec.Replicas == nil || *redis.Spec.Replicas != 1 || redis.Spec.Strategy.Type != "Recreate" {
		t.Errorf("Redis's Deployment: replicas %v, strategy %q; want 1 and Recreate", redis.Spec.Replicas, redis.Spec.Strategy.Type)
	}
	args := strings.Join(redis.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--maxmemory-policy noeviction") || !strings.Contains(args, "--maxmemory ") {
		t.Errorf("Redis's arguments %q: want a --maxmemory cap with --maxmemory-policy noeviction", args)
	}
}

// checkLading checks the workload of kind named lading against the
// configuration its ConfigMap holds, as the container sees it, and returns
// the workload.
func checkLading(t *testing.T, objs []*object, kind string) *object {
	t.Helper()
	w := find(objs, kind, "lading")
	if w == nil {
		t.Fatalf("no %s named lading", kind)
	}
	pod := w.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want lading alone", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != "lading" {
		t.Errorf("image %q: the kustomization's images entry names lading", c.Image)
	}
	if !selects(w.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels) {
		t.Errorf("the selector %v does not select the pods' labels %v", w.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels)
	}

	// The command: the image's entrypoint unless the container names one.
	argv := c.Command
	if len(argv) == 0 {
		argv = []string{imagebuild.Entrypoint}
	}
	argv = append(slices.Clone(argv), c.Args...)
	if len(argv) != 4 || (argv[0] != "lading" && argv[0] != imagebuild.BinaryPath) || argv[1] != "serve" || argv[2] != "--config" {
		t.Fatalf("the container runs %q, want lading serve --config FILE", argv)
	}
	configPath := argv[3]

	// The file is the ConfigMap's lading.yaml, where the volume mounts it.
	mounts := map[string]string{} // volume: mount path
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" {
			// A ConfigMap mounted by subPath is not updated in place.
			t.Errorf("volume %s mounted with subPath", m.Name)
		}
		mounts[m.Name] = m.MountPath
	}
	var data string
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil || path.Join(mounts[v.Name], path.Base(configPath)) != configPath {
			continue
		}
		key := path.Base(configPath)
		for _, it := range v.ConfigMap.Items {
			if it.Path == key {
				key = it.Key
			}
		}
		if cm := find(objs, "ConfigMap", v.ConfigMap.Name); cm != nil {
			data = cm.Data[key]
		}
	}
	if data == "" {
		t.Fatalf("--config %s: no ConfigMap's key is mounted there", configPath)
	}
	fileOnly, err := config.Parse("lading.yaml", []byte(data))
	if err != nil {
		t.Fatalf("the ConfigMap's lading.yaml:\n%v", err)
	}
	cfg := loadConfig(t, data, containerEnv(c))

	// Ports: the registry's and the debug listener's, which the probes
	// and the scrape use; not on loopback, which the kubelet cannot reach.
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	addrPort := portOf(t, "http.addr", cfg.HTTP.Addr)
	debugPort := portOf(t, "http.debugaddr", cfg.HTTP.DebugAddr)
	if ports["http"] != addrPort {
		t.Errorf("container port http is %d, http.addr %q", ports["http"], cfg.HTTP.Addr)
	}
	if ports["metrics"] != debugPort {
		t.Errorf("container port metrics is %d, http.debugaddr %q", ports["metrics"], cfg.HTTP.DebugAddr)
	}
	if host, _, _ := net.SplitHostPort(cfg.HTTP.DebugAddr); host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("http.debugaddr %q: the kubelet probes the pod's address", cfg.HTTP.DebugAddr)
	}
	for _, pr := range []struct {
		name, path string
		p          *probe
	}{{"startup", "/healthz", c.StartupProbe}, {"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("no %s probe over HTTP", pr.name)
			continue
		}
		port, err := strconv.Atoi(pr.p.HTTPGet.Port)
		if err != nil {
			port = ports[pr.p.HTTPGet.Port]
		}
		if pr.p.HTTPGet.Path != pr.path || port != debugPort {
			t.Errorf("%s probe on %s port %s, want %s on http.debugaddr's %d", pr.name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path, debugPort)
		}
	}
	// The start may wait minutes for a slow store before it listens
	// (checkFormat, each request tried 5 times for 30 s): the kubelet's
	// defaults (10 s, 3 failures) would restart it for ever.
	if sp := c.StartupProbe; sp != nil && sp.PeriodSeconds*sp.FailureThreshold < 180 {
		t.Errorf("the startup probe gives the start %d s, want at least 3 minutes", sp.PeriodSeconds*sp.FailureThreshold)
	}
	svc := find(objs, "Service", "lading")
	if svc == nil || !selects(svc.Spec.ServiceSelector, w.Spec.Template.Metadata.Labels) {
		t.Fatalf("no Service lading selecting the pods")
	}
	for _, sp := range svc.Spec.Ports {
		if _, ok := ports[sp.TargetPort]; !ok {
			t.Errorf("the Service's port %s targets %q, which the container does not name", sp.Name, sp.TargetPort)
		}
	}

	// A stop: readiness goes first, then the drain, then the waits after.
	if cfg.HTTP.ShutdownDelay < 2*time.Second {
		t.Errorf("http.shutdowndelay %v: the Service needs a few seconds to drop the pod", cfg.HTTP.ShutdownDelay)
	}
	budget := cfg.HTTP.ShutdownDelay + cfg.HTTP.DrainTimeout + 15*time.Second
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= budget {
		t.Errorf("terminationGracePeriodSeconds %s is not above the stop's %v", show(g), budget)
	}

	// Non-root, on a read-only root file system, with a writable /tmp.
	sc := pod.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != imagebuild.UID {
		t.Errorf("runAsNonRoot %s, runAsUser %s: want non-root, as the image's user %d", show(sc.RunAsNonRoot), show(sc.RunAsUser), imagebuild.UID)
	}
	if c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("readOnlyRootFilesystem %s, allowPrivilegeEscalation %s: want a read-only root, no privilege escalation",
			show(c.SecurityContext.ReadOnlyRootFilesystem), show(c.SecurityContext.AllowPrivilegeEscalation))
	}
	if !slices.ContainsFunc(pod.Volumes, func(v volume) bool {
		return v.EmptyDir != nil && mounts[v.Name] == "/tmp"
	}) {
		t.Error("no emptyDir at /tmp, where the collector spills its mark sets")
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}

	// Where the data goes: on the filesystem driver, a claim mounted at
	// the root itself (lading refuses a mount below it), and the file's
	// root the same as the image's variable, which outranks it.
	switch cfg.Storage.Driver {
	case "filesystem":
		root := cfg.Storage.Filesystem.Root
		if fileOnly.Storage.Filesystem.Root != root {
			t.Errorf("the ConfigMap's storage.filesystem.root %q is overruled by the environment's %q", fileOnly.Storage.Filesystem.Root, root)
		}
		var claimed bool
		for _, vct := range w.Spec.VolumeClaimTemplates {
			claimed = claimed || mounts[vct.Metadata.Name] == root
		}
		if !claimed {
			t.Errorf("no volume claim mounted at storage.filesystem.root %s (mounts %v)", root, mounts)
		}
		if sc.FSGroup == nil || *sc.FSGroup != imagebuild.GID {
			t.Errorf("fsGroup %s: the volume must be writable by the image's group %d", show(sc.FSGroup), imagebuild.GID)
		}
	case "s3":
		if len(w.Spec.VolumeClaimTemplates) > 0 {
			t.Error("a replica on S3 has a volume of its own")
		}
	default:
		t.Errorf("storage.driver %s", cfg.Storage.Driver)
	}
	return w
}

// containerEnv is what the container's process sees: the image's variables,
// then the container's, a Secret's value standing in as a placeholder.
func containerEnv(c container) []string {
	env := imagebuild.Env()
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			v = "from-secret-" + e.ValueFrom.SecretKeyRef.Key
		}
		env = append(env, e.Name+"="+v)
	}
	return env
}

// loadConfig validates data with env as lading serve --config does.
func loadConfig(t *testing.T, data string, env []string) *config.Config {
	t.Helper()
	file := filepath.Join(t.TempDir(), "lading.yaml")
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, env, nil)
	if err != nil {
		t.Fatalf("lading.yaml with the container's environment %q:\n%v", env, err)
	}
	return cfg
}

func portOf(t *testing.T, key, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil || n == 0 {
		t.Fatalf("%s %q: no port", key, addr)
	}
	return n
}

// show prints what a pointer to an optional field holds, or that it is unset.
func show[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// selects says whether a selector's labels are all among labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
