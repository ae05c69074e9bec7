package s3

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Config says where and how the driver stores objects. The zero value of
// every optional field is a sensible default.
type Config struct {
	// Endpoint is the S3 API's base URL ("https://s3.example.com"); empty
	// means AWS S3 itself.
	Endpoint string
	// Region is the bucket's region; empty means the SDK's default (the
	// AWS_REGION environment variable or the shared config), or us-east-1
	// with a custom Endpoint.
	Region string
	Bucket string
	// Prefix is prepended to every key, so one bucket can hold several
	// registries or other data.
	Prefix string
	// ForcePathStyle addresses the bucket as endpoint/bucket rather than
	// bucket.endpoint, which most self-hosted S3 servers need.
	ForcePathStyle bool
	// AccessKey and SecretKey are static credentials; leave both empty for
	// the SDK's default chain (environment, shared files, instance role).
	AccessKey string
	SecretKey string
	// StorageClass for new objects ("STANDARD", "STANDARD_IA", ...); empty
	// leaves it to the bucket.
	StorageClass string
	// ServerSideEncryption is "AES256" or "aws:kms"; empty leaves it to the
	// bucket. KMSKeyID picks the key for aws:kms.
	ServerSideEncryption string
	KMSKeyID             string
	// PartSize is the size of multipart upload parts when data streams in;
	// 0 means DefaultPartSize. Together with S3's limit of 10,000 parts it
	// bounds the largest object a writer can produce.
	PartSize int64
	// Redirect lets blob downloads go straight to the object store.
	Redirect RedirectConfig
}

// RedirectConfig turns on presigned GET URLs for RedirectURL.
type RedirectConfig struct {
	// Expiry is how long a presigned URL stays valid; 0 disables redirects.
	Expiry time.Duration
}

const (
	// MinPartSize is S3's smallest allowed part, except for the last one.
	MinPartSize = 5 << 20
	// DefaultPartSize balances memory per writer against request count.
	DefaultPartSize = 16 << 20
	maxPartSize     = 5 << 30
	maxPresign      = 7 * 24 * time.Hour
	// maxPrefixLength keeps every key, including the writer tree's below
	// the longest path, within S3's 1024 bytes.
	maxPrefixLength = 64
)

func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Bucket == "" {
		bad("bucket is required")
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("endpoint %q is not an http(s) URL", c.Endpoint)
		}
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		bad("accesskey and secretkey must be set together")
	}
	if p := strings.Trim(c.Prefix, "/"); len(p) > maxPrefixLength {
		bad("prefix %q is longer than %d bytes", c.Prefix, maxPrefixLength)
	}
	if err := validatePrefix(c.Prefix); err != nil {
		bad("prefix %q: %v", c.Prefix, err)
	}
	if c.StorageClass != "" && !slices.Contains(types.StorageClass("").Values(), types.StorageClass(c.StorageClass)) {
		bad("unknown storageclass %q", c.StorageClass)
	}
	if c.ServerSideEncryption != "" && !slices.Contains(types.ServerSideEncryption("").Values(), types.ServerSideEncryption(c.ServerSideEncryption)) {
		bad("unknown serversideencryption %q", c.ServerSideEncryption)
	}
	if c.KMSKeyID != "" && c.ServerSideEncryption != string(types.ServerSideEncryptionAwsKms) {
		bad("kmskeyid needs serversideencryption aws:kms")
	}
	if c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > maxPartSize) {
		bad("partsize %d is outside [%d, %d]", c.PartSize, MinPartSize, maxPartSize)
	}
	if c.Redirect.Expiry < 0 || c.Redirect.Expiry > maxPresign {
		bad("redirect expiry %v is outside [0, %v]", c.Redirect.Expiry, maxPresign)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("s3 config: %w", err)
	}
	return nil
}

// validatePrefix keeps prefixes to plain key segments, so keys stay valid
// for every server and the hidden writer tree cannot collide with them.
func validatePrefix(p string) error {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("empty or relative segment")
		}
		if strings.ContainsFunc(seg, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
		}) {
			return errors.New("character outside [A-Za-z0-9._-]")
		}
	}
	return nil
}
