package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3Server is a running S3 endpoint and a bucket created for the caller.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT; use path-style addressing
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
}

const versitygwInstall = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// StartS3 starts versitygw and creates an empty bucket. The returned function
// stops the server and removes its data.
func StartS3() (S3Server, func(), error) {
	path, err := findBinary("versitygw")
	if err != nil {
		return S3Server{}, nil, fmt.Errorf("%w: %v (install: %s)", ErrNotInstalled, err, versitygwInstall)
	}
	dir, err := os.MkdirTemp("", "lading-s3-")
	if err != nil {
		return S3Server{}, nil, err
	}
	srv := S3Server{Region: "us-east-1", AccessKey: randomHex(10), SecretKey: randomHex(20), Bucket: "lading-test"}
	p, err := start(server{
		name: "versitygw",
		path: path,
		args: func(port int) []string {
			return []string{"--port", "127.0.0.1:" + strconv.Itoa(port), "--quiet", "posix", dir}
		},
		env: cleanEnv("ROOT_ACCESS_KEY="+srv.AccessKey, "ROOT_SECRET_KEY="+srv.SecretKey),
		dir: dir,
		// Creating the bucket with this server's random keys proves that the
		// process answering is ours, not another one that holds the port.
		ready: func(addr string, _ int) error { return createBucket(srv, "http://"+addr) },
	})
	if err != nil {
		os.RemoveAll(dir)
		return S3Server{}, nil, err
	}
	srv.Endpoint = "http://" + p.addr
	stop := func() {
		p.stop()
		os.RemoveAll(dir)
	}
	return srv, stop, nil
}

func createBucket(srv S3Server, endpoint string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	client := s3.New(s3.Options{
		BaseEndpoint:     aws.String(endpoint),
		Region:           srv.Region,
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		RetryMaxAttempts: 1,
	})
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(srv.Bucket)})
	// An earlier check's create that landed though its answer came too
	// late: the bucket is there, made with this server's keys.
	var owned *types.BucketAlreadyOwnedByYou
	if errors.As(err, &owned) {
		return nil
	}
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
