package registry

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/url"
	"slices"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The manifest media types the registry accepts. OCI artifacts (helm charts,
// signatures, SBOMs) are OCI image manifests or indexes with an artifactType,
// so these four cover every current client; the short-lived OCI artifact
// manifest and Docker schema 1 are refused.
const (
	MediaTypeOCIManifest        = v1.MediaTypeImageManifest
	MediaTypeOCIIndex           = v1.MediaTypeImageIndex
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// acceptedMediaTypes are the media types a manifest is stored under. They
// must keep differing in length: the record cache tells records apart by
// their size (manifestCache).
var acceptedMediaTypes = []string{MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList}

// Layers the client is told not to upload: the image spec's non-distributable
// types and Docker's foreign layers. A manifest may name them without the
// registry holding their bytes.
var nondistributable = map[string]bool{
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": true,
	"application/vnd.docker.image.rootfs.foreign.diff.tar":         true,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    true,
}

// validMediaType checks the image spec's grammar for media types (RFC
// 6838, restricted names): type/subtype, each 1 to 127 characters that
// start with a letter or digit. By hand, as every descriptor of every push
// meets it: a regular expression cost a microsecond each.
func validMediaType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && restrictedName(typ) && restrictedName(sub)
}

func restrictedName(s string) bool {
	if len(s) == 0 || len(s) > 127 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("!#$&^_.+-", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// manifestDoc is the union of the four accepted formats: each is a subset.
// Pointers and nil slices tell a missing field from an empty one.
type manifestDoc struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// parsedManifest is a manifest that passed structural validation.
type parsedManifest struct {
	mediaType string
	// typed: the payload names its media type. Untyped bytes are OCI (see
	// resolveMediaType), but an earlier version stored some as Docker: a
	// push of such bytes may rewrite their record's media type.
	typed        bool
	artifactType string
	config       *v1.Descriptor
	layers       []v1.Descriptor
	manifests    []v1.Descriptor
	subject      *v1.Descriptor
	annotations  map[string]string
}

// isIndex reports whether the manifest lists other manifests.
func (m *parsedManifest) isIndex() bool {
	return m.mediaType == MediaTypeOCIIndex || m.mediaType == MediaTypeDockerManifestList
}

// referrerType is the artifactType a referrers listing shows for the
// manifest: its own, else (image manifests only) its config's media type.
func (m *parsedManifest) referrerType() string {
	if m.artifactType != "" || m.isIndex() || m.config == nil {
		return m.artifactType
	}
	return m.config.MediaType
}

// reference is a descriptor the manifest points at, and how the registry
// must hold it for the manifest to be accepted.
type reference struct {
	desc v1.Descriptor
	kind referenceKind
}

type referenceKind int

const (
	// refBlob must be a blob linked into the repository.
	refBlob referenceKind = iota
	// refManifest must be a manifest of the repository (a linked blob is
	// accepted too, for indexes that list non-manifest content).
	refManifest
	// refExternal is fetched from elsewhere (non-distributable layers) or
	// may come later (a subject): the registry need not hold it.
	refExternal
)

// references lists what the manifest points at, in document order.
func (m *parsedManifest) references() []reference {
	var refs []reference
	if m.config != nil {
		refs = append(refs, reference{*m.config, refBlob})
	}
	for _, l := range m.layers {
		kind := refBlob
		if nondistributable[l.MediaType] {
			kind = refExternal
		}
		refs = append(refs, reference{l, kind})
	}
	for _, c := range m.manifests {
		refs = append(refs, reference{c, refManifest})
	}
	if m.subject != nil {
		refs = append(refs, reference{*m.subject, refExternal})
	}
	return refs
}

func manifestInvalid(format string, args ...any) *Error {
	return newError(CodeManifestInvalid, format, args...)
}

// maxManifestObjects and maxManifestElements bound a manifest's JSON
// (descriptors, platforms, annotations): far above any image's (Docker
// allows 127 layers), far below what would make one push's decoding cost
// hundreds of MiB.
const (
	maxManifestObjects  = 10_000
	maxManifestElements = 100_000
)

// parseManifest checks payload's structure. contentType is the request's
// Content-Type; it names the media type when the payload does not, and must
// agree with it when both do. Every failure is MANIFEST_INVALID.
func parseManifest(payload []byte, contentType string) (*parsedManifest, error) {
	// Decoded, an object or an element costs tens to hundreds of bytes for
	// the few of its JSON: a manifest of 4 MiB of "{}," took 500 MiB. The
	// counts include braces and commas inside strings, so they are loose.
	if n := bytes.Count(payload, []byte("{")); n > maxManifestObjects {
		return nil, manifestInvalid("manifest holds %d JSON objects, more than the %d allowed", n, maxManifestObjects)
	}
	if n := bytes.Count(payload, []byte(",")); n > maxManifestElements {
		return nil, manifestInvalid("manifest holds %d JSON elements, more than the %d allowed", n, maxManifestElements)
	}
	var doc manifestDoc
	if err := json.Unmarshal(payload, &doc); err != nil {
		return nil, manifestInvalid("manifest is not valid JSON for a manifest: %v", err)
	}
	mediaType, err := resolveMediaType(&doc, contentType)
	if err != nil {
		return nil, err
	}
	if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
		return nil, manifestInvalid("schemaVersion must be 2")
	}
	m := &parsedManifest{mediaType: mediaType, typed: doc.MediaType != "", annotations: doc.Annotations}
	isOCI := mediaType == MediaTypeOCIManifest || mediaType == MediaTypeOCIIndex
	if isOCI {
		// Docker formats predate artifacts and referrers: those fields mean
		// nothing there and are ignored rather than half-honoured.
		m.artifactType = doc.ArtifactType
		m.subject = doc.Subject
		if m.artifactType != "" && !validMediaType(m.artifactType) {
			return nil, manifestInvalid("invalid artifactType %q", m.artifactType)
		}
	}
	switch mediaType {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		// A manifest that also carries "manifests" could be read as an index
		// by a client that ignores mediaType: refuse the ambiguity.
		if doc.Manifests != nil {
			return nil, manifestInvalid("an image manifest must not have a manifests field")
		}
		if doc.Config == nil {
			return nil, manifestInvalid("an image manifest must have a config")
		}
		m.config, m.layers = doc.Config, doc.Layers
	case MediaTypeOCIIndex, MediaTypeDockerManifestList:
		if doc.Config != nil || doc.Layers != nil {
			return nil, manifestInvalid("an index must not have config or layers fields")
		}
		// The image spec requires the field (an empty list will do).
		if doc.Manifests == nil {
			return nil, manifestInvalid("an index must have a manifests field")
		}
		m.manifests = doc.Manifests
	}
	for _, r := range m.references() {
		if err := validateDescriptor(r.desc); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// resolveMediaType picks the manifest's media type from the payload's
// mediaType field and the request's Content-Type.
func resolveMediaType(doc *manifestDoc, contentType string) (string, error) {
	declared := doc.MediaType
	requested := ""
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return "", manifestInvalid("invalid Content-Type %q", contentType)
		}
		requested = mt // ParseMediaType lower-cases; registered types are lower case
	}
	switch {
	case declared != "" && requested != "" && !strings.EqualFold(declared, requested):
		return "", manifestInvalid("Content-Type %q does not match the manifest's mediaType %q", requested, declared)
	case declared == "" && requested == "":
		// The OCI formats make mediaType optional; their shapes are distinct.
		switch {
		case doc.Config != nil && doc.Manifests == nil:
			declared = MediaTypeOCIManifest
		case doc.Manifests != nil && doc.Config == nil && doc.Layers == nil:
			declared = MediaTypeOCIIndex
		default:
			return "", manifestInvalid("manifest has no mediaType and the request no Content-Type")
		}
	case declared == "" && (requested == MediaTypeDockerManifest || requested == MediaTypeDockerManifestList):
		// Docker's formats require the field (Docker's own registry refuses
		// them without it). Untyped bytes are thus always OCI, and the same
		// bytes always get the same record whatever the request.
		return "", manifestInvalid("a Docker manifest must carry its mediaType field (%s)", requested)
	case declared == "":
		declared = requested
	}
	if slices.Contains(acceptedMediaTypes, declared) {
		return declared, nil
	}
	return "", manifestInvalid("unsupported manifest media type %q (accepted: %s)", declared, strings.Join(acceptedMediaTypes, ", "))
}

// validateDescriptor checks one descriptor against the image spec.
func validateDescriptor(d v1.Descriptor) error {
	if !validMediaType(d.MediaType) {
		return manifestInvalid("descriptor %s has an invalid mediaType %q", d.Digest, d.MediaType)
	}
	if err := validateDigest(d.Digest); err != nil {
		return manifestInvalid("descriptor has an invalid digest %q: %v", d.Digest, err)
	}
	if d.Size < 0 {
		return manifestInvalid("descriptor %s has a negative size", d.Digest)
	}
	if d.ArtifactType != "" && !validMediaType(d.ArtifactType) {
		return manifestInvalid("descriptor %s has an invalid artifactType %q", d.Digest, d.ArtifactType)
	}
	for _, u := range d.URLs {
		if p, err := url.Parse(u); err != nil || !p.IsAbs() {
			return manifestInvalid("descriptor %s has an invalid url %q", d.Digest, u)
		}
	}
	// Embedded data must be the content itself (image spec, descriptor.md).
	if len(d.Data) > 0 && (int64(len(d.Data)) != d.Size || d.Digest.Algorithm().FromBytes(d.Data) != d.Digest) {
		return manifestInvalid("descriptor %s: data does not match its digest and size", d.Digest)
	}
	return nil
}
