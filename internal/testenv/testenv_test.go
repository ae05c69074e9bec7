package testenv

import (
	"bufio"
	"context"
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestS3ServesItsBucket(t *testing.T) {
	srv := S3(t)
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(srv.Endpoint),
		Region:       srv.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	ctx := context.Background()
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &srv.Bucket, Key: aws.String("a/b"), Body: strings.NewReader("hi")}); err != nil {
		t.Fatal(err)
	}
	out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &srv.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 1 || *out.Contents[0].Key != "a/b" {
		t.Fatalf("listing = %+v, want only a/b", out.Contents)
	}
}

func TestServersAreIndependentAndStop(t *testing.T) {
	var first, second S3Server
	t.Run("start", func(t *testing.T) {
		first, second = S3(t), S3(t)
		if first.Endpoint == second.Endpoint || first.AccessKey == second.AccessKey {
			t.Fatalf("two servers share an endpoint or keys: %+v %+v", first, second)
		}
	})
	for _, srv := range []S3Server{first, second} {
		if conn, err := net.Dial("tcp", strings.TrimPrefix(srv.Endpoint, "http://")); err == nil {
			conn.Close()
			t.Errorf("%s still answers after its test ended", srv.Endpoint)
		}
	}
}

func TestRedisAnswersPing(t *testing.T) {
	addr := Redis(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "+PONG\r\n" {
		t.Fatalf("PING answered %q, %v", line, err)
	}
}

func TestMissingBinarySkipsLocallyAndFailsInCI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("GOPATH", t.TempDir())
	t.Setenv("GOBIN", "")
	if _, err := findBinary("versitygw"); err == nil {
		t.Skip("versitygw found outside PATH and GOPATH; cannot simulate its absence")
	}
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		rec := &recorder{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); S3(rec) }()
		<-done
		if ci == "true" && !rec.failed {
			t.Errorf("CI=true: missing versitygw did not fail the test")
		}
		if ci == "" && !rec.skipped {
			t.Errorf("locally: missing versitygw did not skip the test")
		}
	}
}

// recorder observes Skip and Fatal without ending the real test.
type recorder struct {
	testing.TB
	failed, skipped bool
}

func (r *recorder) Helper()           {}
func (r *recorder) Skip(args ...any)  { r.skipped = true; runtime.Goexit() }
func (r *recorder) Fatal(args ...any) { r.failed = true; runtime.Goexit() }
