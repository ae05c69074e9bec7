package registry

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

const (
	testConfigType = "application/vnd.oci.image.config.v1+json"
	testLayerType  = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// desc renders a descriptor of content as JSON.
func descJSON(mediaType, content string) string {
	return `{"mediaType":"` + mediaType + `","digest":"` + digest.FromString(content).String() + `","size":` + strconv.Itoa(len(content)) + `}`
}

func TestParseManifestRefusals(t *testing.T) {
	cfg := descJSON(testConfigType, "config")
	layer := descJSON(testLayerType, "layer")
	goodDigest := digest.FromString("x").String()
	cases := []struct {
		name, contentType, payload string
	}{
		{"not json", MediaTypeOCIManifest, `{"schemaVersion":2,`},
		{"json but not an object", MediaTypeOCIManifest, `[1,2]`},
		{"schemaVersion missing", MediaTypeOCIManifest, `{"config":` + cfg + `,"layers":[]}`},
		{"schemaVersion 1", MediaTypeOCIManifest, `{"schemaVersion":1,"config":` + cfg + `,"layers":[]}`},
		{"schemaVersion a string", MediaTypeOCIManifest, `{"schemaVersion":"2","config":` + cfg + `,"layers":[]}`},
		{"content type disagrees with mediaType", MediaTypeOCIIndex,
			`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + cfg + `,"layers":[]}`},
		{"docker schema 1", "application/vnd.docker.distribution.manifest.v1+prettyjws",
			`{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}`},
		{"oci artifact manifest", "application/vnd.oci.artifact.manifest.v1+json",
			`{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","artifactType":"a/b","blobs":[]}`},
		{"unknown media type", "application/json", `{"schemaVersion":2,"config":` + cfg + `}`},
		{"no media type anywhere, ambiguous shape", "", `{"schemaVersion":2}`},
		{"image manifest without config", MediaTypeOCIManifest, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","layers":[` + layer + `]}`},
		{"docker manifest without config", MediaTypeDockerManifest, `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","layers":[]}`},
		{"image manifest with manifests", MediaTypeOCIManifest,
			`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + cfg + `,"layers":[],"manifests":[]}`},
		{"index with layers", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[],"layers":[]}`},
		{"index without manifests", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `"}`},
		{"index of manifests null", MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":null}`},
		{"docker manifest without mediaType", MediaTypeDockerManifest, `{"schemaVersion":2,"config":` + descJSON("application/vnd.docker.container.image.v1+json", "c") + `,"layers":[]}`},
		{"docker list without mediaType", MediaTypeDockerManifestList, `{"schemaVersion":2,"manifests":[]}`},
		{"docker list without manifests", MediaTypeDockerManifestList, `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifestList + `"}`},
		{"index with config", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[],"config":` + cfg + `}`},
		{"layer digest malformed", MediaTypeOCIManifest,
			`{"schemaVersion":2,"config":` + cfg + `,"layers":[{"mediaType":"` + testLayerType + `","digest":"sha256:nothex","size":1}]}`},
		{"layer digest of unknown algorithm", MediaTypeOCIManifest,
			`{"schemaVersion":2,"config":` + cfg + `,"layers":[{"mediaType":"` + testLayerType + `","digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":1}]}`},
		{"config without digest", MediaTypeOCIManifest, `{"schemaVersion":2,"config":{"mediaType":"` + testConfigType + `","size":2}}`},
		{"negative size", MediaTypeOCIManifest,
			`{"schemaVersion":2,"config":{"mediaType":"` + testConfigType + `","digest":"` + goodDigest + `","size":-1}}`},
		{"size not a number", MediaTypeOCIManifest,
			`{"schemaVersion":2,"config":{"mediaType":"` + testConfigType + `","digest":"` + goodDigest + `","size":"1"}}`},
		{"descriptor without mediaType", MediaTypeOCIManifest, `{"schemaVersion":2,"config":{"digest":"` + goodDigest + `","size":1}}`},
		{"descriptor mediaType malformed", MediaTypeOCIManifest,
			`{"schemaVersion":2,"config":{"mediaType":"no-slash","digest":"` + goodDigest + `","size":1}}`},
		{"index child malformed", MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":[{"mediaType":"` + MediaTypeOCIManifest + `","digest":"sha256:","size":1}]}`},
		{"artifactType malformed", MediaTypeOCIManifest, `{"schemaVersion":2,"artifactType":"bad type","config":` + cfg + `}`},
		{"subject malformed", MediaTypeOCIManifest,
			`{"schemaVersion":2,"config":` + cfg + `,"subject":{"mediaType":"` + MediaTypeOCIManifest + `","digest":"sha256:12","size":1}}`},
		{"subject of an algorithm the API cannot serve", MediaTypeOCIManifest,
			`{"schemaVersion":2,"config":` + cfg + `,"subject":{"mediaType":"` + MediaTypeOCIManifest + `","digest":"` + digest.SHA384.FromString("s").String() + `","size":1}}`},
		{"relative url", MediaTypeOCIManifest,
			`{"schemaVersion":2,"config":` + cfg + `,"layers":[{"mediaType":"` + testLayerType + `","digest":"` + goodDigest + `","size":1,"urls":["/relative"]}]}`},
		{"data not base64", MediaTypeOCIManifest,
			`{"schemaVersion":2,"config":{"mediaType":"` + testConfigType + `","digest":"` + goodDigest + `","size":1,"data":"!!"}}`},
		{"data not the content", MediaTypeOCIManifest,
			`{"schemaVersion":2,"config":{"mediaType":"` + testConfigType + `","digest":"` + goodDigest + `","size":1,"data":"` + base64.StdEncoding.EncodeToString([]byte("y")) + `"}}`},
		{"annotation not a string", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + cfg + `,"annotations":{"a":1}}`},
		{"content type unparsable", "application/", `{"schemaVersion":2,"config":` + cfg + `}`},
		{"too many objects", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + cfg + `,"layers":[` + strings.Repeat(layer+`,`, maxManifestObjects) + layer + `]}`},
		{"too many elements", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + cfg + `,"annotations":{` + strings.Repeat(`"a":"",`, maxManifestElements) + `"b":""}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseManifest([]byte(c.payload), c.contentType)
			if !errors.Is(err, ErrManifestInvalid) {
				t.Fatalf("got %v, want MANIFEST_INVALID", err)
			}
		})
	}
}

func TestParseManifestAccepts(t *testing.T) {
	cfg := descJSON(testConfigType, "config")
	layer := descJSON(testLayerType, "layer")
	child := descJSON(MediaTypeOCIManifest, "child")
	cases := []struct {
		name, contentType, payload, want string
	}{
		{"oci manifest by field", "", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + cfg + `,"layers":[` + layer + `]}`, MediaTypeOCIManifest},
		{"oci manifest by content type", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + cfg + `,"layers":[` + layer + `]}`, MediaTypeOCIManifest},
		{"content type with parameters", MediaTypeOCIManifest + "; charset=utf-8", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + cfg + `}`, MediaTypeOCIManifest},
		{"oci manifest inferred", "", `{"schemaVersion":2,"config":` + cfg + `,"layers":[]}`, MediaTypeOCIManifest},
		{"oci index inferred", "", `{"schemaVersion":2,"manifests":[` + child + `]}`, MediaTypeOCIIndex},
		{"empty index", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[]}`, MediaTypeOCIIndex},
		{"no layers at all", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + cfg + `}`, MediaTypeOCIManifest},
		{"docker manifest", MediaTypeDockerManifest, `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","config":` + descJSON("application/vnd.docker.container.image.v1+json", "c") + `,"layers":[]}`, MediaTypeDockerManifest},
		{"docker list", MediaTypeDockerManifestList, `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifestList + `","manifests":[` + descJSON(MediaTypeDockerManifest, "m") + `]}`, MediaTypeDockerManifestList},
		{"unknown fields kept", MediaTypeOCIManifest, `{"schemaVersion":2,"org.example.x":[1,{"y":null}],"config":` + cfg + `}`, MediaTypeOCIManifest},
		{"data that matches", MediaTypeOCIManifest, `{"schemaVersion":2,"config":{"mediaType":"` + testConfigType + `","digest":"` + digest.FromString("{}").String() + `","size":2,"data":"e30="}}`, MediaTypeOCIManifest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := parseManifest([]byte(c.payload), c.contentType)
			if err != nil {
				t.Fatal(err)
			}
			if m.mediaType != c.want {
				t.Fatalf("media type %q, want %q", m.mediaType, c.want)
			}
		})
	}
}

func TestManifestReferences(t *testing.T) {
	nd := `{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"` + digest.FromString("nd").String() + `","size":2,"urls":["https://example.com/nd"]}`
	foreign := `{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"` + digest.FromString("f").String() + `","size":1}`
	subject := descJSON(MediaTypeOCIManifest, "subject")
	p := `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + descJSON(testConfigType, "c") + `,"layers":[` +
		descJSON(testLayerType, "l") + `,` + nd + `,` + foreign + `],"subject":` + subject + `}`
	m, err := parseManifest([]byte(p), "")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []referenceKind
	for _, r := range m.references() {
		kinds = append(kinds, r.kind)
	}
	want := []referenceKind{refBlob, refBlob, refExternal, refExternal, refExternal}
	if len(kinds) != len(want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("kinds %v, want %v", kinds, want)
		}
	}
	if m.referrerType() != testConfigType {
		t.Fatalf("referrer type %q, want the config's media type", m.referrerType())
	}
}

func TestDockerFormatsIgnoreSubject(t *testing.T) {
	p := `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","artifactType":"a/b","config":` +
		descJSON("application/vnd.docker.container.image.v1+json", "c") + `,"subject":` + descJSON(MediaTypeOCIManifest, "s") + `}`
	m, err := parseManifest([]byte(p), MediaTypeDockerManifest)
	if err != nil {
		t.Fatal(err)
	}
	if m.subject != nil || m.artifactType != "" {
		t.Fatalf("a Docker manifest got subject %v, artifactType %q", m.subject, m.artifactType)
	}
}
