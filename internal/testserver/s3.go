package testserver

import "github.com/lading-registry/lading/internal/testenv"

// S3Env is the environment that makes `lading serve` keep everything in
// the bucket of s3, as replicas sharing that bucket do. Pass it in
// Options.Env.
func S3Env(s3 testenv.S3Server) []string {
	return []string{
		"LADING_STORAGE_DRIVER=s3",
		"LADING_STORAGE_S3_ENDPOINT=" + s3.Endpoint,
		"LADING_STORAGE_S3_REGION=" + s3.Region,
		"LADING_STORAGE_S3_BUCKET=" + s3.Bucket,
		"LADING_STORAGE_S3_ACCESSKEY=" + s3.AccessKey,
		"LADING_STORAGE_S3_SECRETKEY=" + s3.SecretKey,
		"LADING_STORAGE_S3_FORCEPATHSTYLE=true",
	}
}
